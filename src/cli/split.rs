//! A run split across processes: `stampede merge` joins the segments' results.

use std::path::{Path, PathBuf};

use super::CliError;
use super::execute::exit_for;
use crate::exit::Exit;
use crate::report;

/// Merges the segments, writes every result file, prints the summary and returns the exit code a
/// single run with these results would have had.
pub(super) fn merge(segments: &[PathBuf], out: &Path, quiet: bool) -> Result<Exit, CliError> {
    let merged = crate::run::merge(segments, out).map_err(|e| CliError::Input(e.to_string()))?;
    let write_failed = !merged.write_errors.is_empty();
    for e in &merged.write_errors {
        eprintln!("error: {e}");
    }
    if !quiet {
        say!("{}", report::terminal::render(&merged.result));
        sayln!(
            "\nmerged {} segments into {}",
            merged.result.merged.len(),
            out.display()
        );
    }
    Ok(exit_for(&merged.result, write_failed))
}
