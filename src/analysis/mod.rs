//! Analyses of results: they read [`RunResult`](crate::report::RunResult) values only, never
//! the engine.

pub mod compare;
pub mod interaction;
pub mod selfcheck;
pub mod stats;
pub mod threshold;
pub mod trend;
