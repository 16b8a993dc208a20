//! stampede: a journey-based, mixed-workload HTTP load generator whose latency numbers can be
//! trusted.
//!
//! # Layout
//!
//! - [`scenario`]: YAML in, a validated [`scenario::Plan`] out (or every problem with its
//!   `file:line:column`). Templates and scripts are compiled here, once.
//! - [`script`]: the sandboxed Rhai engine, helper functions, per-virtual-user scopes.
//! - [`schedule`]: when iterations start: open (arrival-rate curves) and closed (looping virtual
//!   users) executors, one per flow, on one run clock.
//! - [`journey`]: one iteration of one virtual user: requests, checks, extraction, think times,
//!   loops, conditions, retries.
//! - [`timer`]: a precise one-shot timer (timerfd) for every wait the generator makes.
//! - [`http`]: the hyper client: per-VU connections, TLS, phase timings, error classes.
//! - [`metrics`]: per-thread HDR recorders merged by a collector each interval.
//! - [`model`]: the results vocabulary every layer reads: `RunResult` (`results.json`), error
//!   classes, histograms and their codec, threshold expressions.
//! - [`units`]: typed durations, rates and percentages, and how they are written.
//! - [`report`]: renderers of results: terminal summary, interval log, progress, JUnit, CSV, HTML.
//! - [`run`]: orchestration of one run: clock, flows, graceful stop, signals, assembly of the
//!   result.
//! - [`demo`]: the built-in wallet service used by `stampede demo` and the tests.
//! - [`analysis`]: thresholds (the gate) and comparisons, on results only.
//! - [`cli`]: argument parsing and the commands; [`exit`]: exit codes.

pub mod analysis;
pub mod cli;
pub mod demo;
pub mod deploy;
pub mod exit;
pub mod http;
pub mod import;
pub mod journey;
pub mod metrics;
pub mod model;
pub mod report;
pub mod run;
pub mod scenario;
pub mod schedule;
pub mod script;
pub mod secret;
pub mod timer;
pub mod units;
