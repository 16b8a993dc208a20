//! Exit codes, in one place (DESIGN.md: 0 passed · 1 gate failed · 2 invalid input · 3 run not
//! trustworthy · 130 interrupted; and 4 for a `compare` bound the data cannot decide).

use std::process::ExitCode;

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything passed.
    Passed = 0,
    /// A threshold or gated check failed.
    GateFailed = 1,
    /// The scenario, a script or the arguments are invalid (or results cannot be written).
    InvalidInput = 2,
    /// The generator itself was the bottleneck; the numbers cannot be trusted.
    Untrustworthy = 3,
    /// `compare --fail-if`: a bound the data cannot decide (too few intervals, too much noise).
    Undecided = 4,
    /// Stopped by Ctrl-C or SIGTERM (results were still written).
    Interrupted = 130,
}

impl Exit {
    /// The numeric code.
    pub fn code(self) -> u8 {
        self as u8
    }
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e.code())
    }
}
