//! Where each value of a scenario file stands: a map from a value's path (`flows.signups.rate[0].to`)
//! to its line and column.
//!
//! serde gives typed values without positions, so semantic checks (an undefined journey, a duplicate
//! step name) would have nothing to point at. This index is built from the YAML parser's marked
//! events in one pass and is only consulted when a problem is reported; it never feeds the model.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// A 1-based line and column in a source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub col: usize,
}

/// Positions of every key and value in one YAML document, by path.
#[derive(Debug, Default)]
pub struct LocationIndex {
    values: HashMap<String, Pos>,
    keys: HashMap<String, Pos>,
}

impl LocationIndex {
    /// Indexes `text`; a document the YAML parser rejects yields an empty index (serde reports the
    /// syntax error with its own position).
    pub fn build(text: &str) -> LocationIndex {
        let mut builder = Builder::default();
        let mut parser = Parser::new_from_str(text);
        if parser.load(&mut builder, false).is_err() {
            return LocationIndex::default();
        }
        builder.index
    }

    /// Position of the value at `path`, or of its nearest indexed ancestor.
    pub fn value(&self, path: &str) -> Pos {
        let mut p = path;
        loop {
            if let Some(pos) = self.values.get(p) {
                return *pos;
            }
            match parent(p) {
                Some(up) => p = up,
                None => return Pos { line: 1, col: 1 },
            }
        }
    }

    /// True when a value stands at exactly `path`.
    pub fn has(&self, path: &str) -> bool {
        self.values.contains_key(path)
    }

    /// Position of the key that introduces `path` (falls back to the value's position).
    pub fn key(&self, path: &str) -> Pos {
        self.keys
            .get(path)
            .copied()
            .unwrap_or_else(|| self.value(path))
    }
}

/// Strips the last segment of a path (`a.b[2]` → `a.b`, `a.b` → `a`, `a` → ``).
pub fn parent(path: &str) -> Option<&str> {
    if path.is_empty() {
        return None;
    }
    let cut = path.rfind(['.', '[']).unwrap_or(0);
    Some(&path[..cut])
}

/// Appends a mapping key to a path.
pub fn join_key(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Appends a sequence index to a path.
pub fn join_index(path: &str, index: usize) -> String {
    format!("{path}[{index}]")
}

enum Frame {
    Map {
        path: String,
        key: Option<(String, Pos)>,
    },
    Seq {
        path: String,
        next: usize,
    },
}

#[derive(Default)]
struct Builder {
    index: LocationIndex,
    stack: Vec<Frame>,
}

fn to_pos(m: Marker) -> Pos {
    Pos {
        line: m.line(),
        col: m.col() + 1,
    }
}

impl Builder {
    /// Returns the path of a node starting now, or `None` when the node is a mapping key.
    fn enter_node(&mut self, scalar: Option<&str>, pos: Pos) -> Option<String> {
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Seq { path, next }) => {
                let p = join_index(path, *next);
                *next += 1;
                Some(p)
            }
            Some(Frame::Map { path, key }) => match key.take() {
                Some((k, key_pos)) => {
                    let p = join_key(path, &k);
                    self.index.keys.insert(p.clone(), key_pos);
                    Some(p)
                }
                None => {
                    // A key: remember it; complex (non-scalar) keys are indexed under "?".
                    // Block mappings are marked at their first `:`; point them at their first
                    // key instead, where a reader looks.
                    if let Some(p) = self.index.values.get_mut(path.as_str())
                        && (pos.line, pos.col) < (p.line, p.col)
                    {
                        *p = pos;
                    }
                    *key = Some((scalar.unwrap_or("?").to_string(), pos));
                    None
                }
            },
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let pos = to_pos(mark);
        match ev {
            Event::Scalar(ref text, ..) => {
                if let Some(p) = self.enter_node(Some(text), pos) {
                    self.index.values.entry(p).or_insert(pos);
                }
            }
            Event::Alias(_) => {
                if let Some(p) = self.enter_node(None, pos) {
                    self.index.values.entry(p).or_insert(pos);
                }
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                let is_map = matches!(ev, Event::MappingStart(..));
                let path = self
                    .enter_node(None, pos)
                    .unwrap_or_else(|| "?".to_string());
                self.index.values.entry(path.clone()).or_insert(pos);
                self.stack.push(if is_map {
                    Frame::Map { path, key: None }
                } else {
                    Frame::Seq { path, next: 0 }
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_nested_keys_and_sequences() {
        let text =
            "name: x\nflows:\n  a:\n    rate:\n      - { to: 5/s, over: 2s }\n      - hold: 3s\n";
        let idx = LocationIndex::build(text);
        assert_eq!(idx.value("name"), Pos { line: 1, col: 7 });
        assert_eq!(idx.key("flows.a"), Pos { line: 3, col: 3 });
        assert_eq!(idx.value("flows.a.rate[0].to"), Pos { line: 5, col: 15 });
        assert_eq!(idx.value("flows.a.rate[1].hold"), Pos { line: 6, col: 15 });
        // Unknown paths fall back to the nearest ancestor.
        assert_eq!(idx.value("flows.a.rate[1].nope"), Pos { line: 6, col: 9 });
    }

    #[test]
    fn parent_strips_one_segment() {
        assert_eq!(parent("a.b[2]"), Some("a.b"));
        assert_eq!(parent("a.b"), Some("a"));
        assert_eq!(parent("a"), Some(""));
        assert_eq!(parent(""), None);
    }
}
