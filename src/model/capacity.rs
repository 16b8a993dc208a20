//! `capacity.json`: what `stampede capacity` found — the knee of the whole mix, what broke first,
//! every step with its evidence, and the scaling law (its JSON Schema is published by
//! `stampede schema --capacity`).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A whole capacity search.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct CapacityResult {
    /// `stampede <version>`.
    pub tool: String,
    /// Scenario name.
    pub scenario: String,
    /// The SLOs as given (`p99 < 250ms`, `traders.exchange: errors < 1%`).
    pub slo: Vec<String>,
    /// Background flows kept at their own level while the rest scaled.
    pub hold_background: bool,
    /// Measured length of a step in seconds (after its warm-up).
    pub step_s: f64,
    /// Warm-up at the start of every step, left out of its verdict, in seconds.
    pub warmup_s: f64,
    /// Bisection stops when the highest pass and lowest failure are this close (relative).
    pub resolution: f64,
    /// How the search ended.
    pub outcome: Outcome,
    /// One sentence on the outcome, naming its evidence.
    pub summary: String,
    /// The highest factor that passed every SLO, with its absolute levels.
    pub knee: Option<Knee>,
    /// The lowest factor that failed, when one did.
    pub first_failure: Option<f64>,
    /// What broke first at the lowest failing factor.
    pub first_break: Option<Break>,
    /// Every step in the order it ran.
    pub steps: Vec<Step>,
    /// The Universal Scalability Law fitted to each closed flow's users and throughput.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub usl: Vec<UslFit>,
    /// Each open flow's linear range: where achieved stops following offered, where p99 leaves
    /// its low-load level.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub open: Vec<OpenScaling>,
    /// `Server-Timing` of the first key to break, per call: lowest level, knee, first failure.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub server_timing: Vec<TimingShift>,
}

/// How a capacity search ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The knee lies between a passing and a failing factor closer than the resolution.
    #[default]
    Found,
    /// The scenario as written (factor 1) already breaks an SLO; the knee below it was searched.
    BrokenAsWritten,
    /// The generator was the limit at some step: the knee lies beyond what this machine offers.
    GeneratorLimited,
    /// Every factor up to `--max-factor` passed.
    BeyondMaxFactor,
    /// A step stayed undecided after its extensions: the knee is bracketed less tightly.
    Undecided,
    /// Stopped by Ctrl-C or SIGTERM.
    Interrupted,
    /// A step could not run (the scenario no longer loads, the results cannot be written); the
    /// summary says why.
    Failed,
}

/// The knee: the highest factor that passed.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Knee {
    /// Multiple of the scenario as written.
    pub factor: f64,
    /// Each flow's absolute level at the knee.
    pub flows: BTreeMap<String, FlowLevel>,
}

/// A flow's level: `{"rate_per_s": R}` for open flows, `{"vus": N}` for closed ones.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum FlowLevel {
    /// Arrivals per second.
    Rate {
        /// Arrivals per second.
        rate_per_s: f64,
    },
    /// Virtual users.
    Vus {
        /// Virtual users.
        vus: u64,
    },
}

/// What broke first.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Break {
    /// The key (`flow.step`, `flow.iteration`, or a flow).
    pub key: String,
    /// `latency`, `errors`, `drops` or another measure.
    pub kind: BreakKind,
    /// What was observed against which SLO.
    pub reason: String,
}

/// Which way a key broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BreakKind {
    /// A latency SLO.
    Latency,
    /// An error-rate SLO.
    Errors,
    /// An open flow dropped arrivals (every user busy waiting on the target).
    Drops,
    /// Another SLO (checks, rate).
    Other,
}

/// One steady level of the whole mix.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Step {
    /// Position in the search (1-based); the results are under `steps/NN/`.
    pub index: usize,
    /// Multiple of the scenario as written.
    pub factor: f64,
    /// Measured seconds (after the warm-up).
    pub measured_s: f64,
    /// Per flow: the level offered, the iterations achieved per second, dropped arrivals.
    pub flows: BTreeMap<String, FlowStep>,
    /// Per key: percentiles with their intervals, and errors.
    pub keys: Vec<KeyStep>,
    /// Every SLO on every key it matched, with its evidence.
    pub checks: Vec<SloCheck>,
    /// The step's verdict.
    pub verdict: StepVerdict,
    /// Why the generator could not be trusted, when it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub untrustworthy: Option<String>,
}

/// A flow at one step.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct FlowStep {
    /// The level offered.
    pub offered: FlowLevel,
    /// Iterations that ended without failing, per second of the measured window.
    pub achieved_per_s: f64,
    /// Open flows: arrivals planned.
    pub planned: u64,
    /// Open flows: arrivals dropped (every user busy).
    pub dropped: u64,
}

/// A key at one step.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct KeyStep {
    /// `flow.step`.
    pub key: String,
    /// Requests.
    pub requests: u64,
    /// Median latency (µs) with its 95% interval.
    pub p50_us: [u64; 3],
    /// p99 latency (µs) with its 95% interval: `[estimate, low, high]`.
    pub p99_us: [u64; 3],
    /// Share of failed requests.
    pub error_share: f64,
}

/// One SLO judged on one key.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct SloCheck {
    /// The SLO as given.
    pub slo: String,
    /// The key it was judged on.
    pub key: String,
    /// The observed value, readable.
    pub observed: String,
    /// The 95% interval of the observed value, readable, when the measure has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// Pass, fail or undecided.
    pub outcome: SloOutcome,
    /// How far the observed value is past the limit (observed ÷ limit for `<` SLOs): ranks the
    /// keys that broke.
    pub severity: f64,
}

/// An SLO's outcome on a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SloOutcome {
    /// The whole interval is on the passing side.
    Pass,
    /// The whole interval is on the failing side.
    Fail,
    /// The interval straddles the limit.
    Undecided,
}

/// A step's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepVerdict {
    /// Every SLO passed on every key.
    Pass,
    /// An SLO failed (or an open flow dropped arrivals).
    Fail,
    /// No SLO failed, but an interval straddled its limit.
    Undecided,
    /// The generator was the limit: no verdict on the target.
    Untrustworthy,
    /// Stopped by Ctrl-C before its end: judged on nothing.
    Interrupted,
}

/// The Universal Scalability Law fitted to a closed flow: X(N) = λN / (1 + σ(N−1) + κN(N−1)).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct UslFit {
    /// The flow.
    pub flow: String,
    /// Throughput of one user (iterations/s).
    pub lambda: f64,
    /// Contention (serialisation): 0 is perfectly parallel.
    pub sigma: f64,
    /// Coherency (crosstalk): above 0, throughput peaks and then falls.
    pub kappa: f64,
    /// Users at peak throughput, √((1−σ)/κ), when κ > 0.
    pub peak_users: Option<f64>,
    /// Coefficient of determination of the fitted throughput against the measured.
    pub r_squared: f64,
    /// Steps the fit used.
    pub points: usize,
    /// The reading: where scaling stops being linear.
    pub reading: String,
}

/// An open flow's linear range.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct OpenScaling {
    /// The flow.
    pub flow: String,
    /// The highest offered rate whose achieved rate was within 1% of it.
    pub linear_up_to_per_s: Option<f64>,
    /// The lowest offered rate at which a key's p99 left its low-load level (its lower bound
    /// above 1.5 × the lowest step's p99 upper bound), and the key.
    pub p99_rises_at_per_s: Option<f64>,
    /// The key whose p99 rose first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_key: Option<String>,
    /// The reading.
    pub reading: String,
}

/// A `Server-Timing` metric of one key, per call, at the lowest level run, at the knee and at the
/// first failure.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct TimingShift {
    /// The key.
    pub key: String,
    /// Metric name (`db`, `pool-wait`).
    pub name: String,
    /// Mean milliseconds per call at the lowest factor run.
    pub base_ms: f64,
    /// At the knee (highest pass), when a level passed.
    pub knee_ms: Option<f64>,
    /// At the lowest failing factor, when one failed.
    pub fail_ms: Option<f64>,
}
