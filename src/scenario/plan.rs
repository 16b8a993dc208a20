//! The validated, typed model of a scenario: what the engine runs.
//!
//! Everything here is resolved: journeys have their includes inlined, templates and scripts are
//! compiled, names are indices, units are typed. Nothing in a `Plan` is parsed again at run time.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method};
use regex::Regex;
use rhai::ImmutableString;
use serde_json_path::JsonPath;

use super::feeder::{Feeder, Pick};
pub use super::settings::{ArrivalSlack, H1Client, HttpVersion, OnError, Settings};
pub use super::socket::{WsAction, WsExpect, WsStep};
use super::template::Template;
use crate::model::Segment;
use crate::model::threshold::Limit;
use crate::scenario::curve::Curve;
use crate::script::{Scripts, Snippet};
use crate::units::{Span, SpanRange};

/// A runnable scenario.
#[derive(Debug)]
pub struct Plan {
    /// Scenario name.
    pub name: String,
    /// Scenario description.
    pub description: Option<String>,
    /// The scenario file.
    pub source: PathBuf,
    /// Servers requests go to; a request names one by index.
    pub origins: Vec<Origin>,
    /// Run-wide settings.
    pub settings: Settings,
    /// Initial virtual-user variables.
    pub vars: Vec<(ImmutableString, serde_json::Value)>,
    /// Names every virtual user declares at start (unset), so scripts may assign them.
    pub declared: Vec<ImmutableString>,
    /// Data feeders.
    pub feeders: Vec<Arc<Feeder>>,
    /// The Rhai engine and library.
    pub scripts: Arc<Scripts>,
    /// Journeys.
    pub journeys: Vec<Journey>,
    /// Flows.
    pub flows: Vec<Flow>,
    /// Thresholds (evaluated by `analysis::threshold`).
    pub thresholds: Vec<crate::model::threshold::Threshold>,
    /// What must never reach an output.
    pub secrets: crate::secret::Secrets,
    /// What the setup journey left in its user's variables, for every user to start with (set
    /// once, after setup, before any load).
    pub shared: std::sync::OnceLock<Vec<(ImmutableString, rhai::Dynamic)>>,
    /// The share of a split run this process runs ([`Plan::split`]).
    pub segment: Segment,
    /// SHA-256 (hex) of the scenario text, the files it reads and the overrides that shaped this
    /// plan: what the segments of one split run must agree on.
    pub digest: String,
    /// The files the scenario reads, as written: relative to its folder.
    pub files: Vec<ScenarioFile>,
}

/// `Accept-Encoding` for `defaults.accept_encoding: browser`: what Chromium sends.
pub const BROWSER_ACCEPT_ENCODING: &str = "gzip, deflate, br, zstd";

/// The content codings the client undoes (`http::decode`).
pub const DECODABLE: [&str; 5] = ["gzip", "x-gzip", "deflate", "br", "zstd"];

/// A file a scenario reads besides itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioFile {
    /// Its path as written, relative to the scenario's folder.
    pub path: String,
    /// What it holds.
    pub kind: FileKind,
}

/// What a scenario's file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A Rhai script library.
    Script,
    /// A feeder's rows (which may hold credentials).
    Data,
}

/// A server: scheme, host and port, plus a path prefix from the target URL.
#[derive(Debug, Clone)]
pub struct Origin {
    /// `default`, a named target, or the URL for absolute step URLs.
    pub name: String,
    /// TLS or not.
    pub https: bool,
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// The `Host` header value.
    pub authority: HeaderValue,
    /// `https://host:port` for HTTP/2 request URIs.
    pub base: String,
    /// Path prefix from the target URL (`/api` in `http://h/api`), without a trailing slash.
    pub prefix: String,
}

/// Index of a request within its journey; with the flow it forms a metric key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StepId(pub u32);

/// A journey: what one iteration does.
#[derive(Debug)]
pub struct Journey {
    /// Name.
    pub name: String,
    /// Steps, includes inlined.
    pub steps: Vec<Step>,
    /// Hook run before each iteration.
    pub before: Option<Snippet>,
    /// Hook run after each iteration.
    pub after: Option<Snippet>,
    /// Every request step, by `StepId`.
    pub requests: Vec<RequestInfo>,
    /// Feeders drawn per iteration (sequential and random ones this journey reads).
    pub feeders: Vec<usize>,
}

/// What reports say about a request step.
#[derive(Debug, Clone)]
pub struct RequestInfo {
    /// Step name (unique in the journey).
    pub name: String,
    /// HTTP method.
    pub method: Method,
    /// Path or URL as written.
    pub url: String,
}

/// One step of a journey.
#[derive(Debug)]
pub enum Step {
    /// An HTTP request.
    Request(Box<Request>),
    /// A pause.
    Think(Think),
    /// Rhai statements.
    Script(Snippet),
    /// A named group.
    Group(Vec<Step>),
    /// A loop.
    Loop(Box<Loop>),
    /// A conditional.
    If(Box<If>),
    /// A WebSocket: opened (or reused), then its actions.
    Ws(Box<WsStep>),
}

/// An HTTP request step.
#[derive(Debug)]
pub struct Request {
    /// Its id in the journey.
    pub id: StepId,
    /// Method.
    pub method: Method,
    /// Index into `Plan::origins`.
    pub origin: usize,
    /// Path and query (origin-form), prefix included.
    pub path: Template,
    /// `path` checked and parsed at load, when it has no placeholders.
    pub fixed_target: Option<http::uri::PathAndQuery>,
    /// Headers, defaults merged in.
    pub headers: Vec<(HeaderName, HeaderTemplate)>,
    /// Body.
    pub body: Body,
    /// Extractions.
    pub extract: Vec<Extract>,
    /// Checks.
    pub checks: Vec<Check>,
    /// Retry policy.
    pub retry: Option<Retry>,
    /// Timeout for one attempt.
    pub timeout: Duration,
    /// Whether the response body must be kept (extraction or checks read it).
    pub keeps_body: bool,
    /// Redirects it follows (the step's, else the default).
    pub redirects: u32,
    /// Whether the body must be parsed as JSON.
    pub parses_json: bool,
}

/// A header value, pre-built when it has no placeholders.
#[derive(Debug)]
pub enum HeaderTemplate {
    /// Fixed value (cloning is a reference-count bump).
    Static(HeaderValue),
    /// Rendered per request.
    Dynamic(Template),
}

/// A request body.
#[derive(Debug)]
pub enum Body {
    /// No body.
    Empty,
    /// Fixed bytes with an optional content type.
    Static(Bytes, Option<HeaderValue>),
    /// Rendered per request.
    Dynamic(Template, Option<HeaderValue>),
    /// `multipart/form-data`, with its content type (which names the boundary).
    Multipart(Arc<Multipart>, HeaderValue),
}

/// A multipart body: bytes fixed at load (part heads, literal fields, files) and the templated
/// fields between them.
#[derive(Debug)]
pub struct Multipart {
    /// In order.
    pub pieces: Vec<MultipartPiece>,
    /// The boundary: a rendered field that contains `--` and it would end its part early.
    pub boundary: String,
}

/// A piece of a [`Multipart`] body.
#[derive(Debug)]
pub enum MultipartPiece {
    /// Sent as is.
    Bytes(Bytes),
    /// A field's value, rendered per request.
    Field(Template),
}

impl Multipart {
    /// The bytes fixed at load (a lower bound of the body's size).
    pub fn fixed_len(&self) -> usize {
        self.pieces
            .iter()
            .map(|p| match p {
                MultipartPiece::Bytes(b) => b.len(),
                MultipartPiece::Field(_) => 0,
            })
            .sum()
    }
}

/// One extraction into a variable.
#[derive(Debug)]
pub struct Extract {
    /// Variable name.
    pub var: ImmutableString,
    /// Where the value comes from.
    pub source: ExtractSource,
}

/// Where an extracted value comes from.
#[derive(Debug)]
pub enum ExtractSource {
    /// First node matched by a JSONPath (written form kept for messages).
    Json(JsonPath, String),
    /// First capture group (or whole match) of a regex over the body.
    Regex(Regex),
    /// A response header.
    Header(HeaderName),
    /// A cookie set by the response.
    Cookie(String),
}

/// One check on a response.
#[derive(Debug)]
pub enum Check {
    /// Status must be one of these.
    Status(Vec<u16>),
    /// First node at the path must equal the value.
    JsonEq(JsonPath, String, serde_json::Value),
    /// The path must match something.
    Exists(JsonPath, String),
    /// The body must contain the text.
    BodyContains(String),
    /// The header must be present (and equal the value when given).
    Header(HeaderName, Option<String>),
    /// The response must arrive within the budget (measured from the due time).
    MaxLatency(Duration),
}

/// Retry policy of a request.
#[derive(Debug, Clone)]
pub struct Retry {
    /// Retries after the first attempt.
    pub max: u32,
    /// Statuses that are retried.
    pub statuses: Vec<u16>,
    /// Any 5xx is retried.
    pub any_5xx: bool,
    /// Timeouts are retried.
    pub timeout: bool,
    /// Resets and protocol errors are retried.
    pub reset: bool,
    /// Connection failures are retried.
    pub connect: bool,
    /// Backoff bounds.
    pub backoff: SpanRange,
}

/// A pause.
#[derive(Debug, Clone, Copy)]
pub enum Think {
    /// Always this long.
    Fixed(Duration),
    /// Uniform in a range.
    Uniform(SpanRange),
    /// Normal, clamped at zero.
    Normal {
        /// Mean.
        mean: Duration,
        /// Standard deviation.
        stddev: Duration,
    },
    /// Exponential with this mean.
    Exponential(Duration),
}

/// A loop step.
#[derive(Debug)]
pub struct Loop {
    /// Fixed count.
    pub count: Option<u64>,
    /// Condition checked before each round.
    pub condition: Option<Snippet>,
    /// Bound on rounds of a `while` loop.
    pub max: u64,
    /// Body.
    pub steps: Vec<Step>,
}

/// A conditional step.
#[derive(Debug)]
pub struct If {
    /// Condition.
    pub condition: Snippet,
    /// Steps when true.
    pub then: Vec<Step>,
    /// Steps when false.
    pub otherwise: Vec<Step>,
}

pub use crate::model::FlowKind;

/// A flow: a journey under a load model.
#[derive(Debug)]
pub struct Flow {
    /// Name.
    pub name: String,
    /// Index into `Plan::journeys`.
    pub journey: usize,
    /// Load model.
    pub model: LoadModel,
    /// Offset from the run start.
    pub start: Duration,
    /// Live or background.
    pub kind: FlowKind,
    /// Tags attached to every sample.
    pub tags: Vec<(String, String)>,
    /// Seed for arrivals and think times.
    pub seed: u64,
}

/// How a flow generates load.
#[derive(Debug, Clone)]
pub enum LoadModel {
    /// Arrivals on a rate curve, independent of responses.
    Open(Open),
    /// Virtual users looping.
    Closed(Closed),
}

/// A flow's load level: arrivals per second or virtual users.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Level {
    /// Arrivals per second (open flows).
    Rate(f64),
    /// Virtual users (closed flows).
    Vus(u64),
}

impl Level {
    /// The level `k` times higher (VUs rounded, at least one).
    pub fn times(self, k: f64) -> Level {
        match self {
            Level::Rate(r) => Level::Rate(r * k),
            Level::Vus(n) => Level::Vus(((n as f64) * k).round().max(1.0) as u64),
        }
    }
}

/// Open-model settings.
#[derive(Debug, Clone)]
pub struct Open {
    /// Arrivals per second over time.
    pub curve: Curve,
    /// Spacing of arrivals.
    pub arrivals: Arrivals,
    /// Most virtual users at once.
    pub max_vus: u64,
    /// Arrivals after which the load ends (`iterations`, `--iterations`): the executor stops at
    /// the n-th, and [`Plan::cut_open_iterations`] cuts the curve there once the overrides
    /// have set the rate, so a scale changes how fast they come, never how many.
    pub iterations: Option<u64>,
}

impl Open {
    /// The arrivals the flow sends: its `iterations`, or what its curve holds when that is
    /// fewer (a Poisson curve's expected count).
    pub fn planned_arrivals(&self) -> u64 {
        let held = self.curve.arrivals();
        self.iterations.map_or(held, |n| n.min(held))
    }

    /// Whether [`Open::planned_arrivals`] is exact: uniform arrivals, or a count the curve holds
    /// (a Poisson flow's count is otherwise random).
    pub fn exact_count(&self) -> bool {
        self.arrivals == Arrivals::Uniform
            || self.iterations.is_some_and(|n| n <= self.curve.arrivals())
    }
}

/// Arrival spacing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrivals {
    /// Evenly spaced.
    Uniform,
    /// Exponential gaps (a Poisson process).
    Poisson,
}

/// Closed-model settings.
#[derive(Debug, Clone)]
pub struct Closed {
    /// Virtual users over time.
    pub curve: Curve,
    /// One iteration per VU every this long.
    pub pace: Option<Duration>,
    /// Pause between a VU's iterations.
    pub think: Option<Think>,
    /// Total iterations across VUs.
    pub iterations: Option<u64>,
    /// Iterations per VU.
    pub per_vu_iterations: Option<u64>,
}

/// Whether any step waits: a think time, or a request that may back off before a retry.
fn waits(steps: &[Step]) -> bool {
    steps.iter().any(|s| match s {
        Step::Think(_) => true,
        Step::Request(r) => r.retry.is_some(),
        Step::Group(inner) => waits(inner),
        Step::Loop(l) => waits(&l.steps),
        Step::If(i) => waits(&i.then) || waits(&i.otherwise),
        Step::Script(_) => false,
        Step::Ws(w) => w
            .actions
            .iter()
            .any(|a| matches!(a, WsAction::Hold(_) | WsAction::Expect(_))),
    })
}

fn collect_origins(steps: &[Step], out: &mut Vec<usize>) {
    for s in steps {
        match s {
            Step::Request(r) => {
                if !out.contains(&r.origin) {
                    out.push(r.origin);
                }
            }
            Step::Group(inner) => collect_origins(inner, out),
            Step::Loop(l) => collect_origins(&l.steps, out),
            Step::If(i) => {
                collect_origins(&i.then, out);
                collect_origins(&i.otherwise, out);
            }
            Step::Ws(w) => {
                if !out.contains(&w.open.origin) {
                    out.push(w.open.origin);
                }
            }
            Step::Think(_) | Step::Script(_) => {}
        }
    }
}

impl Flow {
    /// The `setup` or `teardown` journey as a flow of one user and one iteration, so it has
    /// results rows of its own.
    pub fn hook(name: &str, journey: usize, kind: FlowKind) -> Flow {
        Flow {
            name: name.to_string(),
            journey,
            model: LoadModel::Closed(Closed {
                curve: Curve::constant(1.0, 1.0),
                pace: None,
                think: None,
                iterations: Some(1),
                per_vu_iterations: None,
            }),
            start: Duration::ZERO,
            kind,
            tags: Vec::new(),
            seed: 0,
        }
    }

    /// A flow of the load (live or background), not the setup or teardown.
    pub fn is_load(&self) -> bool {
        matches!(self.kind, FlowKind::Live | FlowKind::Background)
    }

    /// How long the flow generates load.
    pub fn length(&self) -> Duration {
        let secs = match &self.model {
            LoadModel::Open(o) => o.curve.len(),
            LoadModel::Closed(c) => c.curve.len(),
        };
        Duration::from_secs_f64(secs)
    }

    /// One line describing the load model, for `validate` and reports.
    pub fn describe(&self) -> String {
        match self.kind {
            FlowKind::Setup => {
                return "once, before the load; every user reads what it extracts".into();
            }
            FlowKind::Teardown => return "once, after the load (when setup succeeded)".into(),
            FlowKind::Live | FlowKind::Background => {}
        }
        let start = if self.start.is_zero() {
            String::new()
        } else {
            format!(", starts at {}", Span(self.start))
        };
        let kind = if self.kind == FlowKind::Background {
            " [background]"
        } else {
            ""
        };
        match &self.model {
            LoadModel::Open(o) => format!(
                "open, {} arrivals, peak {:.2}/s over {}{}, max {} VUs, {}{} iterations{start}{kind}",
                match o.arrivals {
                    Arrivals::Uniform => "uniform",
                    Arrivals::Poisson => "Poisson",
                },
                o.curve.peak(),
                // Poisson's cut leaves room for the n-th arrival; the executor stops there.
                if o.iterations.is_some() && o.arrivals == Arrivals::Poisson {
                    "at most "
                } else {
                    ""
                },
                Span(self.length()),
                o.max_vus,
                if o.iterations.is_some() && o.exact_count() {
                    ""
                } else {
                    "~"
                },
                o.planned_arrivals(),
            ),
            LoadModel::Closed(c) => {
                let pacing = match (c.pace, c.think) {
                    (Some(p), _) => format!("paced every {}", Span(p)),
                    (None, Some(_)) => "looping with think time".to_string(),
                    (None, None) => "looping back to back".to_string(),
                };
                let vus = c.curve.peak().round() as u64;
                let over = if self.until_done() {
                    "until its iterations are done".to_string()
                } else {
                    format!("over {}", Span(self.length()))
                };
                let limit = match (c.iterations, c.per_vu_iterations, c.pace) {
                    (Some(n), _, _) => format!(", {n} iterations in total"),
                    (None, Some(n), _) => {
                        format!(", {n} iterations per VU ({} in all)", n.saturating_mul(vus))
                    }
                    (None, None, Some(p)) => format!(
                        ", ~{} iterations",
                        (c.curve.total() / p.as_secs_f64()).floor() as u64
                    ),
                    _ => String::new(),
                };
                format!("closed, peak {vus} VUs {over}, {pacing}{limit}{start}{kind}")
            }
        }
    }

    /// A closed flow bounded by iterations and no duration: it ends when they are done, and
    /// its length is only the cap ([`ITERATIONS_CAP`]) that keeps a stuck target from holding
    /// the run for ever.
    pub fn until_done(&self) -> bool {
        match &self.model {
            LoadModel::Closed(c) => {
                (c.iterations.is_some() || c.per_vu_iterations.is_some())
                    && self.length() >= ITERATIONS_CAP
            }
            LoadModel::Open(_) => false,
        }
    }
}

/// How long an iteration-bounded closed flow without a `duration` may run.
pub const ITERATIONS_CAP: Duration = Duration::from_secs(86_400);

impl Plan {
    /// Sockets the plan can hold open at once: every virtual user at peak keeps one connection
    /// per origin its journey talks to.
    pub fn sockets_needed(&self) -> u64 {
        self.flows
            .iter()
            .map(|f| {
                let vus = match &f.model {
                    LoadModel::Open(o) => o.max_vus,
                    LoadModel::Closed(c) => c.curve.peak().ceil() as u64,
                };
                let mut origins: Vec<usize> = Vec::new();
                collect_origins(&self.journeys[f.journey].steps, &mut origins);
                vus * origins.len().max(1) as u64
            })
            .sum()
    }

    /// Precise timers the plan can hold at once: one per virtual user at peak that ever waits
    /// (think time, retry backoff, a closed flow's pace or think), each a file descriptor.
    pub fn timers_needed(&self) -> u64 {
        self.flows
            .iter()
            .map(|f| match &f.model {
                LoadModel::Open(o) if waits(&self.journeys[f.journey].steps) => o.max_vus,
                LoadModel::Closed(c)
                    if c.pace.is_some()
                        || c.think.is_some()
                        || waits(&self.journeys[f.journey].steps) =>
                {
                    c.curve.peak().ceil() as u64
                }
                _ => 0,
            })
            .sum()
    }

    /// The index of the setup or teardown flow.
    pub fn hook(&self, kind: FlowKind) -> Option<usize> {
        self.flows.iter().position(|f| f.kind == kind)
    }

    /// The time from run start to the end of the last flow's load.
    pub fn load_length(&self) -> Duration {
        self.flows
            .iter()
            .filter(|f| f.is_load())
            .map(|f| f.start + f.length())
            .max()
            .unwrap_or_default()
    }

    /// Multiplies every rate and VU count by `k`.
    pub fn scale(&mut self, k: f64) {
        for f in self.flows.iter_mut().filter(|f| f.is_load()) {
            match &mut f.model {
                LoadModel::Open(o) => {
                    o.curve = o.curve.scaled(k);
                    o.max_vus = ((o.max_vus as f64) * k).ceil().max(1.0) as u64;
                }
                LoadModel::Closed(c) => c.curve = c.curve.scaled(k),
            }
        }
    }

    /// Ends each open flow with `iterations` at its last one. Uniform arrivals: the curve is
    /// cut just before arrival n+1 would be due, so the last of the n keeps a whole gap of slack
    /// for a late wake-up. Poisson arrivals land at a random point of the curve's integral (a
    /// sum of n unit exponentials), so the cut leaves room for them (ten standard deviations) and
    /// the executor stops at the n-th. A curve that holds fewer arrivals is left as it is (its
    /// duration ends it first).
    pub fn cut_open_iterations(&mut self) {
        for f in &mut self.flows {
            if let LoadModel::Open(o) = &mut f.model
                && let Some(n) = o.iterations
            {
                let n = n as f64;
                let x = match o.arrivals {
                    Arrivals::Uniform => n - 0.01,
                    Arrivals::Poisson => n + 10.0 * n.sqrt() + 10.0,
                };
                if let Some(t) = o.curve.time_of(x) {
                    // Rounded up to a whole millisecond, so the plan reads `5s`, not
                    // `4999.900ms`: the executor's count still ends the arrivals at the n-th.
                    let t = ((t * 1000.0).ceil() / 1000.0).min(o.curve.len());
                    o.curve = o.curve.truncated(t);
                }
            }
        }
    }

    /// Every flow's level as written: its peak rate (open) or peak VU count (closed).
    pub fn levels(&self) -> Vec<Level> {
        self.flows
            .iter()
            .map(|f| match &f.model {
                LoadModel::Open(o) => Level::Rate(o.curve.peak()),
                LoadModel::Closed(c) => Level::Vus(c.curve.peak().round().max(1.0) as u64),
            })
            .collect()
    }

    /// Turns every flow into one steady level of `len`, all starting at once: `k` times its peak
    /// rate (and `max_vus`) or VU count, background flows at their own peak when `hold_background`.
    /// Scaled flows lose their iteration limits, so every level lasts the whole `len`.
    pub fn steady(&mut self, k: f64, len: Duration, hold_background: bool) {
        let secs = len.as_secs_f64();
        for f in self.flows.iter_mut().filter(|f| f.is_load()) {
            let held = hold_background && f.kind == FlowKind::Background;
            let k = if held { 1.0 } else { k };
            f.start = Duration::ZERO;
            match &mut f.model {
                LoadModel::Open(o) => {
                    o.curve = Curve::constant(o.curve.peak() * k, secs);
                    o.max_vus = ((o.max_vus as f64) * k).ceil().max(1.0) as u64;
                    if !held {
                        o.iterations = None;
                    }
                }
                LoadModel::Closed(c) => {
                    let vus = (c.curve.peak() * k).round().max(1.0);
                    c.curve = Curve::constant(vus, secs);
                    // A held job keeps its shape (a one-shot batch stays one shot).
                    if !held {
                        c.iterations = None;
                        c.per_vu_iterations = None;
                    }
                }
            }
        }
        self.cut_open_iterations();
    }

    /// Makes this plan one segment of a split run: open flows keep every `count`-th arrival and
    /// closed flows every `count`-th user (in the executors, which also divide an open flow's
    /// `max_vus`, rounded up, and a shared iteration budget among the segments that own a
    /// user: [`Segment::budget`]), and feeders hand out
    /// the rows this segment owns, so no `unique` row is used by two segments.
    pub fn split(&mut self, segment: Segment) {
        self.segment = segment;
        if segment.is_whole() {
            return;
        }
        for feeder in &self.feeders {
            feeder.stripe(segment);
        }
        // A segment judges its own share: `rate > 80/s` over three segments is `> 26.7/s` each
        // (live `abort_on_fail` included). Shares and latencies need no scaling. The text as
        // written stays, for the merge to judge the whole again.
        let k = f64::from(segment.count);
        for t in &mut self.thresholds {
            t.expr.limit = match t.expr.limit {
                Limit::Count(c) => Limit::Count(c / k),
                Limit::PerSecond(r) => Limit::PerSecond(r / k),
                other => other,
            };
        }
    }

    /// What one segment of a split run takes of each load flow, in words (`validate
    /// --segment`).
    pub fn shares(&self) -> Vec<String> {
        let seg = self.segment;
        let c = u64::from(seg.count.max(1));
        let owned = |what: &str| {
            format!(
                "{what} {}, {}, {}, … (every {} from the {})",
                seg.index + 1,
                seg.global(1) + 1,
                seg.global(2) + 1,
                ordinal(c),
                ordinal(u64::from(seg.index) + 1)
            )
        };
        // Every segment's count, so an uneven split (3 users over 4 segments) shows.
        let all = |total: u64| {
            if c > 16 {
                return String::new();
            }
            let each: Vec<String> = (0..seg.count)
                .map(|index| {
                    Segment {
                        index,
                        count: seg.count,
                    }
                    .share(total)
                    .to_string()
                })
                .collect();
            format!(" [segments 0–{}: {}]", c - 1, each.join(", "))
        };
        let mut out = Vec::new();
        for f in self.flows.iter().filter(|f| f.is_load()) {
            let text = match &f.model {
                LoadModel::Open(o) => {
                    let total = o.planned_arrivals();
                    let poisson = if !o.exact_count() {
                        " (a Poisson flow: about that many)"
                    } else {
                        ""
                    };
                    format!(
                        "{}: {} of {total} arrivals{poisson}, up to {} users{}",
                        owned("arrivals"),
                        seg.share(total),
                        seg.max_vus(o.max_vus),
                        all(total)
                    )
                }
                LoadModel::Closed(c) => {
                    let peak = (c.curve.peak() + 1e-9).floor() as u64;
                    let mut t = format!(
                        "{}: {} of {peak} users at peak{}",
                        owned("users"),
                        seg.share(peak),
                        all(peak)
                    );
                    if let Some(n) = c.iterations {
                        t.push_str(&format!(
                            ", {} of the flow's {n} iterations",
                            seg.budget(n, peak)
                        ));
                    }
                    if let Some(n) = c.per_vu_iterations {
                        t.push_str(&format!(", {n} per user"));
                    }
                    t
                }
            };
            out.push(format!("flow {}: {text}", f.name));
        }
        for feeder in &self.feeders {
            if matches!(feeder.pick, Pick::Unique | Pick::Sequential) {
                let n = feeder.rows.len() as u64;
                out.push(format!(
                    "feeder {}: {}: {} of its {n} rows",
                    feeder.name,
                    owned("rows"),
                    seg.share(n)
                ));
            }
        }
        out
    }

    /// Cuts every flow off `d` after the run start.
    pub fn limit_duration(&mut self, d: Duration) {
        for f in self.flows.iter_mut().filter(|f| f.is_load()) {
            let left = d.saturating_sub(f.start).as_secs_f64();
            match &mut f.model {
                LoadModel::Open(o) => o.curve = o.curve.truncated(left),
                LoadModel::Closed(c) => c.curve = c.curve.truncated(left),
            }
        }
    }
}

fn ordinal(n: u64) -> String {
    let suffix = match (n % 10, n % 100) {
        (1, 11) | (2, 12) | (3, 13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}
