//! `results.json`: the one model every renderer reads (versioned; its JSON Schema is published by
//! `stampede schema --results`).
//!
//! Percentiles are stored for reading, and each histogram is stored whole (V2 + DEFLATE, base64)
//! so that later tools can merge runs exactly or recompute any percentile.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::codec;
use super::hist::{Hist, quantile_ci};
use super::segment::{Gates, Segment, SegmentSummary};
use super::{ErrorClass, FlowKind, ModelKind, SelfCheckName};

/// Version of the results format; bumped on incompatible changes.
pub const SCHEMA_VERSION: u32 = 1;

/// A whole run.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct RunResult {
    /// Results format version.
    pub schema_version: u32,
    /// `stampede <version>`.
    pub tool: String,
    /// Scenario name.
    pub scenario: String,
    /// Scenario file.
    pub source: String,
    /// Wall-clock start, milliseconds since the Unix epoch.
    pub started_at_unix_ms: u64,
    /// Seconds from start to the last result.
    pub duration_s: f64,
    /// True when the run was stopped by a signal.
    pub interrupted: bool,
    /// Length of one interval in seconds.
    pub interval_s: f64,
    /// Seconds at the start left out of every total (whole intervals of warm-up); the interval
    /// rows still cover them.
    #[serde(default, skip_serializing_if = "is_zero_f64")]
    pub warmup_s: f64,
    /// Per-flow results.
    pub flows: Vec<FlowResult>,
    /// One example message per (key, error class).
    pub error_examples: Vec<ErrorExampleResult>,
    /// Per-interval summaries per key, for charts and trends.
    pub intervals: Vec<IntervalRow>,
    /// Where the run happened.
    pub environment: Environment,
    /// Every threshold evaluated on every key it matches (and failed checks, when gated).
    #[serde(default)]
    pub thresholds: Vec<Verdict>,
    /// The generator's own load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator: Option<Generator>,
    /// Latency trends per key (creeping latency at flat throughput).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trends: Vec<Trend>,
    /// Steps ranked by their share of the server-reported `db` time (`Server-Timing`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub db_load: Vec<DbShare>,
    /// Checks that the generator offered the planned load and was not the bottleneck.
    #[serde(default)]
    pub self_checks: Vec<SelfCheck>,
    /// Why the run stopped early, when a threshold with `abort_on_fail` failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aborted: Option<String>,
    /// This run's id; the segments of one split run share it (`--run-id`, or made from the
    /// scenario digest and `--start-at`).
    #[serde(default)]
    pub run_id: String,
    /// SHA-256 of the scenario text and of the options that shape its plan (`--rate`,
    /// `--scale`, …): segments of one run must have the same.
    #[serde(default)]
    pub scenario_digest: String,
    /// The share of a split run this result covers (absent: the whole plan).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<Segment>,
    /// The shared start instant (`--start-at`), milliseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at_unix_ms: Option<u64>,
    /// With `--start-at`: how long after that instant this process began its schedule, in
    /// milliseconds (0 when it was ready in time). Arrivals due before then were missed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_late_ms: Option<f64>,
    /// The thresholds as written, so `stampede merge` judges merged data without the scenario.
    #[serde(default)]
    pub gates: Gates,
    /// A merged run: each segment's own figures (`stampede merge`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merged: Vec<SegmentSummary>,
}

fn is_zero_f64(v: &f64) -> bool {
    *v == 0.0
}

impl RunResult {
    /// True when every threshold held.
    pub fn passed(&self) -> bool {
        self.thresholds.iter().all(|v| v.passed)
    }

    /// True when every self-check passed: the numbers can be trusted.
    pub fn trustworthy(&self) -> bool {
        self.self_checks.iter().all(|c| c.passed)
    }
}

/// How busy the generator itself was.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct Generator {
    /// Worker threads of the run's runtime.
    pub workers: usize,
    /// Share of the load (start to the load's end or Ctrl-C) the workers spent running tasks (0–1).
    pub busy_share: f64,
    /// TCP connections opened during the run.
    #[serde(default)]
    pub connections_opened: u64,
    /// The most connections opened per second in any interval (connection churn).
    #[serde(default)]
    pub peak_connections_per_s: f64,
    /// Size of this machine's ephemeral port range, when known (Linux).
    #[serde(default)]
    pub local_ports: Option<u64>,
    /// Requests that failed because this machine ran out of ports or file descriptors.
    #[serde(default)]
    pub local_failures: u64,
}

/// One self-check's outcome.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct SelfCheck {
    /// `schedule_lag`, `poisson_fit`, `internal`, `saturation` or `connection_churn`.
    #[schemars(with = "String")]
    pub check: SelfCheckName,
    /// The flow it is about, if any.
    pub flow: Option<String>,
    /// Whether it passed.
    pub passed: bool,
    /// What was measured against what limit, in words.
    pub detail: String,
}

/// One threshold evaluated on one key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Verdict {
    /// The key pattern as written.
    pub pattern: String,
    /// The key it was evaluated on.
    pub key: String,
    /// The expression as written.
    pub threshold: String,
    /// The observed value, readable (`512ms`, `1.2%`).
    pub observed: String,
    /// The observed value as a number (seconds for durations, 0–1 for shares).
    pub observed_value: Option<f64>,
    /// The limit, readable.
    pub limit: String,
    /// Whether it held.
    pub passed: bool,
    /// Why there is no observed value (no samples, not applicable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// One flow's results.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct FlowResult {
    /// Flow name.
    pub name: String,
    /// `live` or `background`.
    #[schemars(with = "String")]
    pub kind: FlowKind,
    /// Journey name.
    pub journey: String,
    /// The load model, in words.
    pub model: String,
    /// `open` or `closed`.
    #[schemars(with = "String")]
    pub model_kind: ModelKind,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// Iterations that completed without failure.
    pub iterations_ok: u64,
    /// Iterations with a failed step.
    pub iterations_failed: u64,
    /// Iterations cut off at the end.
    pub interrupted: u64,
    /// Open model: arrivals the schedule called for.
    pub planned: u64,
    /// Open model: arrivals that found no free virtual user.
    pub dropped: u64,
    /// Completed iterations per second over the flow's active time.
    pub iteration_rate: f64,
    /// Whole-iteration latency from due time.
    pub iteration: Option<Latency>,
    /// The generator's own schedule lag: start minus the later of the due time and the moment a
    /// user was free to start (first iterations of users started together excluded).
    pub schedule_lag: Option<Latency>,
    /// Lateness the target caused: paced users still busy with an earlier, overrunning iteration
    /// when the next one was due (already in the iterations' latency, timed from due).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_lag: Option<Latency>,
    /// The generator's lateness on each user's first iteration, when users start together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup_lag: Option<Latency>,
    /// Open flows that dropped arrivals: why, and what would have avoided it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropped_cause: Option<String>,
    /// Open flows: the lateness the plan allows on purpose (`arrival_slack`), in microseconds,
    /// which the schedule-lag self-check adds to its bound.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub arrival_slack_us: u64,
    /// Failures outside requests (script, feed) by class.
    #[schemars(with = "BTreeMap<String, u64>")]
    pub errors: BTreeMap<ErrorClass, u64>,
    /// Poisson flows: dispersion of the actual arrivals (the goodness-of-fit self-check).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poisson: Option<PoissonFit>,
    /// A segment of a split Poisson flow: its arrivals per bin of 20 expected arrivals of the
    /// whole flow. A segment's share of a Poisson process is not Poisson, so the fit is judged
    /// by `stampede merge` on the segments' bins added up.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arrival_bins: Vec<u32>,
    /// A split run's segment that started after `--start-at`: arrivals due before it started,
    /// counted in `planned` and `dropped` too.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub missed_at_start: u64,
    /// Work per iteration: requests and server-reported metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work: Option<Work>,
    /// Per-step results.
    pub steps: Vec<StepResult>,
}

/// One request step's results.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct StepResult {
    /// `flow.step`.
    pub key: String,
    /// Step name.
    pub name: String,
    /// Method.
    pub method: String,
    /// Path or URL as written.
    pub url: String,
    /// Requests sent (retries included).
    pub requests: u64,
    /// Of which retries.
    pub retries: u64,
    /// Requests sent per logical request (1 + retries / first attempts): the load retries add.
    pub amplification: f64,
    /// Failed requests.
    pub failed: u64,
    /// Failures by class.
    #[schemars(with = "BTreeMap<String, u64>")]
    pub errors: BTreeMap<ErrorClass, u64>,
    /// Responses by status code.
    pub statuses: BTreeMap<String, u64>,
    /// Requests per second over the flow's active time.
    pub rate: f64,
    /// Bytes received (on the wire).
    pub bytes_in: u64,
    /// Bytes received with `Content-Encoding` undone, for bodies the step read (others count
    /// as received).
    #[serde(default)]
    pub bytes_decoded: u64,
    /// Redirects followed (every hop is part of the step: its latency runs to the last
    /// response).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub redirects: u64,
    /// WebSocket messages received (a `ws` step's whole session; bytes are in `bytes_in`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub messages_in: u64,
    /// WebSocket messages sent.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub messages_out: u64,
    /// Bytes sent.
    pub bytes_out: u64,
    /// Checks passed.
    pub checks_passed: u64,
    /// Checks failed.
    pub checks_failed: u64,
    /// Latency from due time (what users felt).
    pub latency: Option<Latency>,
    /// Service time from the actual send.
    pub service_time: Option<Latency>,
    /// Time to first byte.
    pub ttfb: Option<Latency>,
    /// Connect time (requests that opened a connection).
    pub connect: Option<Latency>,
    /// TLS handshake time.
    pub tls: Option<Latency>,
    /// Server-reported metrics from `Server-Timing` headers (at most 32 names; the rest are
    /// counted under `(other)`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub server_timing: Vec<TimingResult>,
    /// Cookies the jar's browser-like limits dropped (over 4 KiB, or beyond 180 per origin).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cookies_dropped: u64,
    /// Live steps beside background flows: latency with and without batch work in flight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<BatchSplit>,
}

impl FlowResult {
    /// A closed flow without `pace`: each user starts its next iteration when the last ended, so
    /// a stalled target delays the users instead of queueing requests, and the latency cannot
    /// show the queue (coordinated omission by construction).
    pub fn closed_loop(&self) -> bool {
        self.is_load()
            && self.model_kind == ModelKind::Closed
            && !self.model.contains("paced every")
    }

    /// A flow of the load (live or background), not the setup or teardown.
    pub fn is_load(&self) -> bool {
        matches!(self.kind, FlowKind::Live | FlowKind::Background)
    }
}

/// A live step's latency while background iterations were in flight, against while none was.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct BatchSplit {
    /// Latency while at least one background iteration ran.
    pub during: Latency,
    /// Latency while none ran.
    pub without: Latency,
    /// Two-sided Mann–Whitney U p-value between the two (requests are not fully independent,
    /// so read it as a strength of evidence, not an exact probability).
    pub p_value: f64,
    /// p99 during ÷ p99 without.
    pub p99_ratio: f64,
    /// Whether the batch work measurably slows this step (p < 0.01 and the median up by more
    /// than 10% and 1 ms).
    pub interferes: bool,
}

/// A `Server-Timing` metric aggregated over a step's responses (or a flow's iterations).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct TimingResult {
    /// Metric name (`db`, `db-queries`, `pool-wait`, …).
    pub name: String,
    /// Responses (or iterations) that reported it.
    pub reported: u64,
    /// Its durations, when it has them.
    pub duration: Option<Latency>,
    /// Sum of its durations in milliseconds.
    pub total_ms: f64,
    /// Sum of its numeric descriptions (counts such as queries).
    pub count_total: f64,
    /// Mean count per response (or per iteration).
    pub count_mean: f64,
    /// Reports whose duration was absurd (negative, not finite, over a day) and was dropped.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub ignored: u64,
}

/// What one iteration of a flow costs: requests and server-reported work.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Work {
    /// Iterations measured.
    pub iterations: u64,
    /// Mean requests per iteration (retries included).
    pub requests_mean: f64,
    /// Median requests per iteration.
    pub requests_p50: u64,
    /// Most requests in one iteration.
    pub requests_max: u64,
    /// Mean steps executed per iteration (loops and conditions make it vary).
    pub steps_mean: f64,
    /// Mean bytes sent and received per iteration.
    pub bytes_mean: f64,
    /// Median bytes per iteration.
    pub bytes_p50: u64,
    /// Server-reported metrics totalled per iteration.
    pub per_iteration: Vec<TimingResult>,
}

/// A step's share of the server-reported database time of the whole run.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct DbShare {
    /// `flow.step`.
    pub key: String,
    /// Responses that reported `db`.
    pub calls: u64,
    /// Total `db` time, milliseconds.
    pub total_ms: f64,
    /// Mean `db` time per call, milliseconds.
    pub per_call_ms: f64,
    /// Share of all steps' `db` time (0–1).
    pub share: f64,
}

/// A latency distribution (microseconds).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Latency {
    /// Samples.
    pub count: u64,
    /// Smallest.
    pub min_us: u64,
    /// Mean.
    pub mean_us: f64,
    /// Median.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 95th percentile.
    pub p95_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Largest.
    pub max_us: u64,
    /// The histogram: base64 of HdrHistogram V2 + DEFLATE.
    pub histogram: String,
    /// 95% confidence intervals of p50, p95 and p99 (µs), from order statistics: ranks
    /// n·q ± 1.96·√(n·q·(1−q)). They assume independent samples, so read them as a lower bound
    /// on the uncertainty.
    #[serde(default)]
    pub ci95: [[u64; 2]; 3],
}

impl Latency {
    /// Summarises a histogram; `None` when it is empty.
    pub fn from_hist(h: Option<&Hist>) -> Option<Latency> {
        let h = h?;
        if h.is_empty() {
            return None;
        }
        Some(Latency {
            count: h.len(),
            min_us: h.min(),
            mean_us: h.mean(),
            p50_us: h.value_at_quantile(0.5),
            p90_us: h.value_at_quantile(0.9),
            p95_us: h.value_at_quantile(0.95),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
            histogram: codec::encode(h),
            ci95: [0.5, 0.95, 0.99].map(|q| quantile_ci(h, q)),
        })
    }
}

/// How Poisson-like an open flow's actual arrivals were.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct PoissonFit {
    /// Variance over mean of arrivals per bin of 20 expected arrivals (≈ 1 for Poisson).
    pub dispersion_index: f64,
    /// Bins counted.
    pub bins: u64,
    /// Largest deviation of the index from 1 that chance explains (3 standard errors).
    pub tolerance: f64,
}

impl PoissonFit {
    /// The fit of arrivals counted per bin of [`POISSON_BIN`] expected arrivals; the last bin
    /// is partial and left out. `None` under 10 whole bins.
    pub fn from_bins(bins: &[u32]) -> Option<PoissonFit> {
        let whole = &bins[..bins.len().saturating_sub(1)];
        let k = whole.len();
        if k < 10 {
            return None;
        }
        let mean = whole.iter().map(|&c| f64::from(c)).sum::<f64>() / k as f64;
        let var = whole
            .iter()
            .map(|&c| (f64::from(c) - mean).powi(2))
            .sum::<f64>()
            / (k - 1) as f64;
        (mean > 0.0).then(|| PoissonFit {
            dispersion_index: var / mean,
            bins: k as u64,
            tolerance: 3.0 * (2.0 / (k - 1) as f64).sqrt(),
        })
    }
}

/// Expected arrivals per bin of the Poisson fit.
pub const POISSON_BIN: f64 = 20.0;

/// The first message seen for an error class on a key.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ErrorExampleResult {
    /// `flow.step` or `flow`.
    pub key: String,
    /// Error class.
    #[schemars(with = "String")]
    pub class: ErrorClass,
    /// Message.
    pub message: String,
}

/// One interval's summary for one key.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct IntervalRow {
    /// Seconds from the run start to the interval's end.
    pub t: f64,
    /// `flow.step`, or `flow.iteration` for whole iterations.
    pub key: String,
    /// Requests (or iterations) completed in the interval.
    pub count: u64,
    /// Of which failed.
    pub errors: u64,
    /// Median latency.
    pub p50_us: u64,
    /// 95th percentile.
    pub p95_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// Largest.
    pub max_us: u64,
    /// Flow rows only: busy virtual users at the interval's end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_vus: Option<u64>,
    /// Flow rows only: target level (arrivals/s or VUs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<f64>,
    /// Step rows: attempts in the interval that were retries.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retries: u64,
    /// Flow rows only: dropped arrivals in the interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropped: Option<u64>,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// The machine the run happened on.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct Environment {
    /// Operating system.
    pub os: String,
    /// CPU architecture.
    pub arch: String,
    /// Logical CPUs.
    pub cpus: usize,
    /// Host name, when known.
    pub hostname: Option<String>,
}

impl Environment {
    /// This machine.
    pub fn current() -> Environment {
        Environment {
            os: std::env::consts::OS.into(),
            arch: std::env::consts::ARCH.into(),
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            hostname: std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|s| s.trim().to_string()),
        }
    }
}

/// The trend of one key.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Trend {
    /// `flow.step` or `flow.iteration`.
    pub key: String,
    /// Intervals used.
    pub points: usize,
    /// p50 slope, relative per minute (0.041 = +4.1%/min), with its 95% interval.
    pub p50_per_min: [f64; 3],
    /// p95 slope, relative per minute, with its 95% interval.
    pub p95_per_min: [f64; 3],
    /// The key's own throughput slope, relative per minute, with its 95% interval.
    pub throughput_per_min: [f64; 3],
    /// The system's load slope (requests of every flow per interval), relative per minute, with
    /// its 95% interval: what "flat" is judged on.
    #[serde(default)]
    pub load_per_min: [f64; 3],
    /// Latency rising significantly while throughput is flat.
    pub creeping: bool,
    /// One sentence for people.
    pub verdict: String,
}
