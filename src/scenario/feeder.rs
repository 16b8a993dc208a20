//! Data feeders: rows from CSV or JSON-lines files, handed to virtual users.
//!
//! Files are read once at load, so a ragged row or a missing file is an input error before any
//! traffic. Rows are shared (`Arc`), so handing one to a virtual user copies a pointer.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use rand::Rng;

use crate::model::Segment;

/// One row: values in column order.
pub type Row = Arc<Vec<String>>;

/// How rows are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// The next row for every iteration, across all virtual users.
    Sequential,
    /// A random row for every iteration.
    Random,
    /// Each virtual user takes its own row for its whole life.
    Unique,
}

/// What happens after the last row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnExhausted {
    /// Start again from the first row.
    Wrap,
    /// Fail the iteration (or virtual user, for `unique`) with a clear error.
    Error,
}

/// A loaded feeder.
#[derive(Debug)]
pub struct Feeder {
    /// The name used in templates.
    pub name: String,
    /// Column names.
    pub columns: Vec<String>,
    /// The rows.
    pub rows: Vec<Row>,
    /// How rows are drawn.
    pub pick: Pick,
    /// What happens after the last row.
    pub on_exhausted: OnExhausted,
    cursor: AtomicUsize,
    /// A split run's segment: this process hands out only the rows it owns.
    stripe: OnceLock<Segment>,
}

/// Running out of rows with `on_exhausted: error`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("feeder `{name}` ran out of rows ({rows} rows); set `on_exhausted: wrap` to reuse them")]
pub struct Exhausted {
    /// Feeder name.
    pub name: String,
    /// How many rows it had.
    pub rows: usize,
}

/// A problem reading a feeder file: the message and, where known, the 1-based line.
#[derive(Debug, Clone)]
pub struct FeedError {
    /// Line in the data file, when the problem is in a row.
    pub line: Option<u64>,
    /// What is wrong.
    pub message: String,
}

impl Feeder {
    /// Builds a feeder from already-read rows.
    pub fn new(
        name: &str,
        columns: Vec<String>,
        rows: Vec<Row>,
        pick: Pick,
        on_exhausted: OnExhausted,
    ) -> Feeder {
        Feeder {
            name: name.to_string(),
            columns,
            rows,
            pick,
            on_exhausted,
            cursor: AtomicUsize::new(0),
            stripe: OnceLock::new(),
        }
    }

    /// Makes this feeder hand out only `segment`'s rows (row n when the segment owns n), once,
    /// before any user draws: the segments of a split run then never share a `unique` row, and
    /// `sequential` rows go round the file in the same order as one process would.
    pub fn stripe(&self, segment: Segment) {
        let _ = self.stripe.set(segment);
    }

    /// Index of a column.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }

    /// The next row: per iteration for `sequential` and `random`; for `unique`, called once per
    /// virtual user, so each user takes a row no other user has.
    pub fn draw(&self) -> Result<Row, Exhausted> {
        let n = self.rows.len();
        let exhausted = || Exhausted {
            name: self.name.clone(),
            rows: n,
        };
        if n == 0 {
            return Err(exhausted());
        }
        let i = match self.pick {
            Pick::Random => rand::rng().random_range(0..n),
            Pick::Sequential | Pick::Unique => {
                let k = self.cursor.fetch_add(1, Ordering::Relaxed);
                match self.stripe.get() {
                    Some(seg) => usize::try_from(seg.global(k as u64)).unwrap_or(usize::MAX),
                    None => k,
                }
            }
        };
        if i >= n && self.on_exhausted == OnExhausted::Error {
            return Err(exhausted());
        }
        Ok(self.rows[i % n].clone())
    }
}

/// Reads a CSV file with a header row; every row must have as many fields as the header.
pub fn read_csv(path: &Path) -> Result<(Vec<String>, Vec<Row>), FeedError> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .from_path(path)
        .map_err(|e| FeedError {
            line: None,
            message: format!("cannot read `{}`: {e}", path.display()),
        })?;
    let columns: Vec<String> = reader
        .headers()
        .map_err(|e| csv_error(path, &e))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    if columns.iter().all(String::is_empty) {
        return Err(FeedError {
            line: Some(1),
            message: format!("`{}` has no header row", path.display()),
        });
    }
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| csv_error(path, &e))?;
        rows.push(Arc::new(record.iter().map(str::to_string).collect()));
    }
    if rows.is_empty() {
        return Err(FeedError {
            line: None,
            message: format!("`{}` has a header but no rows", path.display()),
        });
    }
    Ok((columns, rows))
}

fn csv_error(path: &Path, e: &csv::Error) -> FeedError {
    let line = e.position().map(csv::Position::line);
    let message = match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => {
            format!(
                "`{}`: a row has {len} fields, the header has {expected_len}",
                path.display()
            )
        }
        csv::ErrorKind::Utf8 { .. } => format!("`{}` is not UTF-8 text", path.display()),
        _ => format!("`{}`: {e}", path.display()),
    };
    FeedError { line, message }
}

/// Reads a JSON-lines file: one object per line; columns are every key seen, in first-seen order.
pub fn read_jsonl(path: &Path) -> Result<(Vec<String>, Vec<Row>), FeedError> {
    let text = std::fs::read_to_string(path).map_err(|e| FeedError {
        line: None,
        message: format!("cannot read `{}`: {e}", path.display()),
    })?;
    let mut columns: Vec<String> = Vec::new();
    let mut objects = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let lineno = i as u64 + 1;
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| FeedError {
            line: Some(lineno),
            message: format!("`{}`: not JSON: {e}", path.display()),
        })?;
        let serde_json::Value::Object(map) = v else {
            return Err(FeedError {
                line: Some(lineno),
                message: format!("`{}`: expected a JSON object on each line", path.display()),
            });
        };
        for k in map.keys() {
            if !columns.contains(k) {
                columns.push(k.clone());
            }
        }
        objects.push(map);
    }
    if objects.is_empty() {
        return Err(FeedError {
            line: None,
            message: format!("`{}` has no rows", path.display()),
        });
    }
    let rows = objects
        .into_iter()
        .map(|m| {
            Arc::new(
                columns
                    .iter()
                    .map(|c| match m.get(c) {
                        Some(serde_json::Value::String(s)) => s.clone(),
                        Some(serde_json::Value::Null) | None => String::new(),
                        Some(other) => other.to_string(),
                    })
                    .collect(),
            )
        })
        .collect();
    Ok((columns, rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feeder(pick: Pick, on: OnExhausted) -> Feeder {
        let rows = (0..3).map(|i| Arc::new(vec![i.to_string()])).collect();
        Feeder::new("f", vec!["id".into()], rows, pick, on)
    }

    #[test]
    fn sequential_wraps_or_errors() {
        let f = feeder(Pick::Sequential, OnExhausted::Wrap);
        let got: Vec<String> = (0..5).map(|_| f.draw().unwrap()[0].clone()).collect();
        assert_eq!(got, ["0", "1", "2", "0", "1"]);
        let f = feeder(Pick::Sequential, OnExhausted::Error);
        for _ in 0..3 {
            f.draw().unwrap();
        }
        assert!(
            f.draw()
                .unwrap_err()
                .to_string()
                .contains("ran out of rows")
        );
    }

    #[test]
    fn unique_gives_each_vu_its_own_row() {
        let f = feeder(Pick::Unique, OnExhausted::Error);
        let rows: Vec<String> = (0..3).map(|_| f.draw().unwrap()[0].clone()).collect();
        assert_eq!(rows, ["0", "1", "2"]);
        assert!(f.draw().is_err(), "a fourth user finds no row of its own");
    }

    #[test]
    fn csv_rejects_ragged_rows_with_a_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("u.csv");
        std::fs::write(&p, "name,pw\nann,1\nbob\n").unwrap();
        let e = read_csv(&p).unwrap_err();
        assert_eq!(e.line, Some(3));
        assert!(e.message.contains("1 fields"), "{}", e.message);
    }

    #[test]
    fn jsonl_collects_columns() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("u.jsonl");
        std::fs::write(&p, "{\"a\":1}\n{\"b\":\"x\",\"a\":2}\n").unwrap();
        let (cols, rows) = read_jsonl(&p).unwrap();
        assert_eq!(cols, ["a", "b"]);
        assert_eq!(*rows[1], ["2", "x"]);
        std::fs::write(&p, "[1]\n").unwrap();
        assert_eq!(read_jsonl(&p).unwrap_err().line, Some(1));
    }
}
