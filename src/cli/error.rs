//! The one error path of the command line: every command returns `Result<Exit, CliError>`, and
//! [`CliError::report`] is the only place that prints a failure. Every variant is the user's to
//! fix (a file, an argument, this machine), so every one ends the process with exit 2.

use crate::demo::DemoError;
use crate::report::ReportError;
use crate::report::hlog::LogError;
use crate::run::RunError;
use crate::scenario::ScenarioError;

/// Why a command could not do its job.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The scenario did not load; its diagnostics already carry `file:line:column`.
    #[error("{0}")]
    Scenario(#[from] ScenarioError),
    /// A results file could not be read or written.
    #[error("error: {0}")]
    Report(#[from] ReportError),
    /// An interval log could not be recovered.
    #[error("error: {0}")]
    Log(#[from] LogError),
    /// The run could not start (its output folder, disk space, runtime).
    #[error("error: {0}")]
    Run(#[from] RunError),
    /// The demo wallet could not start.
    #[error("error: cannot start the demo wallet: {0}")]
    Demo(#[from] DemoError),
    /// Anything else the user must fix, worded as what went wrong, where, and what to do.
    #[error("error: {0}")]
    Input(String),
    /// Several of the above, each reported.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Many(Vec<CliError>),
}

impl CliError {
    /// Prints the error to stderr: the one place a command's failure is shown.
    pub fn report(&self) {
        eprintln!("{self}");
    }

    /// `Ok` for no errors, the one error, or all of them.
    pub fn all(mut errors: Vec<CliError>) -> Result<(), CliError> {
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(CliError::Many(errors)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_errors_are_each_reported_once() {
        let e = CliError::all(vec![
            CliError::Input("first".into()),
            CliError::Input("second".into()),
        ])
        .unwrap_err();
        assert_eq!(e.to_string(), "error: first\nerror: second");
        assert!(CliError::all(Vec::new()).is_ok());
    }
}
