//! Renderers of a [`RunResult`]: the terminal summary, `results.json`, the HdrHistogram interval
//! log and the live progress display. None of them touches the HTTP, journey or schedule modules;
//! they read results only.

pub mod capacity;
pub mod csv;
pub mod hlog;
pub mod html;
pub mod interaction;
pub mod junit;

pub mod progress;
mod svg;
pub mod terminal;
pub mod text;

use std::path::Path;

pub use crate::model::RunResult;

/// A result file could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// Writing failed.
    #[error("cannot write `{path}`: {source}")]
    Write {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Reading failed.
    #[error("cannot read `{path}`: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a results file.
    #[error("`{path}` is not a stampede results file: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// Writes `results.json` atomically (temporary file, then rename), so a crash never leaves half
/// a file.
pub fn write_json(result: &RunResult, path: &Path) -> Result<(), ReportError> {
    let err = |source| ReportError::Write {
        path: path.display().to_string(),
        source,
    };
    let text = serde_json::to_string_pretty(result).map_err(|e| err(std::io::Error::other(e)))?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

/// Writes a text file atomically (temporary file, then rename).
pub fn write_text(path: &Path, text: &str) -> Result<(), ReportError> {
    let err = |source| ReportError::Write {
        path: path.display().to_string(),
        source,
    };
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

/// Writes every result file into `dir`: `results.json`, `junit.xml`, `intervals.csv`,
/// `report.html`. Returns
/// the problems; each file is attempted even when another failed.
pub fn write_all(result: &RunResult, dir: &Path) -> Vec<ReportError> {
    let mut errors = Vec::new();
    if let Err(e) = write_json(result, &dir.join("results.json")) {
        errors.push(e);
    }
    if let Err(e) = write_text(&dir.join("junit.xml"), &junit::render(result)) {
        errors.push(e);
    }
    if let Err(e) = write_text(&dir.join("intervals.csv"), &csv::render(result)) {
        errors.push(e);
    }
    if let Err(e) = write_text(&dir.join("report.html"), &html::render(result)) {
        errors.push(e);
    }
    errors
}

/// Reads a `results.json`.
pub fn read_json(path: &Path) -> Result<RunResult, ReportError> {
    let text = std::fs::read_to_string(path).map_err(|source| ReportError::Read {
        path: path.display().to_string(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| ReportError::Parse {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

/// The JSON Schema of `results.json`.
pub fn results_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(RunResult)).unwrap_or_default()
}
