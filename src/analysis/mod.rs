//! Analyses of results: they read [`RunResult`](crate::model::RunResult) values only, never
//! the engine.

pub mod capacity;
pub mod compare;
pub mod interaction;
pub mod load;
pub mod selfcheck;
pub mod stats;
pub mod threshold;
pub mod trend;
