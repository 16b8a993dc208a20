//! The scenario file exactly as written: serde types with `deny_unknown_fields`, no meaning attached.
//!
//! Values that need interpretation (rates, durations, templates) stay text here; `validate` turns
//! them into the typed [`Plan`](super::plan::Plan) and reports every problem with its position.
//! These types also generate the JSON Schema (`stampede schema`), so their doc comments are the
//! descriptions editors show.

use std::borrow::Cow;
use std::fmt;

use indexmap::IndexMap;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

/// A visitor for values written either as text or as a map (`think: 2s` or
/// `think: { uniform: 1s..3s }`), so each such type states its two forms and nothing else.
struct TextOrMap<T, M> {
    expecting: &'static str,
    from_text: fn(String) -> T,
    from_map: fn(M) -> T,
}

impl<T, M> TextOrMap<T, M> {
    fn new(expecting: &'static str, from_text: fn(String) -> T, from_map: fn(M) -> T) -> Self {
        TextOrMap {
            expecting,
            from_text,
            from_map,
        }
    }
}

impl<'de, T, M: Deserialize<'de>> Visitor<'de> for TextOrMap<T, M> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        Ok((self.from_text)(v.to_string()))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        M::deserialize(de::value::MapAccessDeserializer::new(map)).map(self.from_map)
    }
}

/// The keys a scenario file may have at its top (the fields of [`RawScenario`]; a test keeps the
/// two the same).
pub const TOP_KEYS: [&str; 13] = [
    "name",
    "setup",
    "teardown",
    "description",
    "target",
    "targets",
    "defaults",
    "vars",
    "data",
    "scripts",
    "journeys",
    "flows",
    "thresholds",
];

/// A whole scenario file.
#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawScenario {
    /// Name of the scenario, shown in reports.
    #[serde(default)]
    pub name: Option<String>,
    /// Free text shown in reports.
    #[serde(default)]
    pub description: Option<String>,
    /// Base URL of the system under test (overridable with `--target` or `STAMPEDE_TARGET`).
    #[serde(default)]
    pub target: Option<String>,
    /// Named base URLs for systems made of several services; steps pick one with `target:`.
    #[serde(default)]
    pub targets: IndexMap<String, String>,
    /// Settings that apply to every request and flow unless overridden.
    #[serde(default)]
    pub defaults: RawDefaults,
    /// Initial variables of every virtual user (visible in templates and scripts). A value is
    /// literal, or a map `{ env: NAME, default: .., secret: true }` that reads an environment
    /// variable, or `{ value: .., secret: true }`; secret values never reach any output.
    #[serde(default)]
    pub vars: IndexMap<String, serde_json::Value>,
    /// Data feeders by name; `{{ name.field }}` reads the current row.
    #[serde(default)]
    pub data: IndexMap<String, RawFeeder>,
    /// Rhai script files whose functions are available to every script step; their top-level
    /// statements run once per virtual user, to initialise its state.
    #[serde(default)]
    pub scripts: Vec<String>,
    /// Journeys by name: ordered steps one virtual user performs as one iteration.
    #[serde(default)]
    pub journeys: IndexMap<String, RawJourney>,
    /// Flows by name: a journey bound to a load model. All flows run at once.
    #[serde(default)]
    pub flows: IndexMap<String, RawFlow>,
    /// Pass/fail criteria per metric key (globs allowed), e.g. `trade.exchange: ["p99 < 400ms"]`.
    #[serde(default)]
    pub thresholds: IndexMap<String, Vec<RawThreshold>>,
    /// A journey run once before the load (k6's `setup()`): what it extracts, every virtual user
    /// can read; when it fails, no load is sent and the run fails.
    pub setup: Option<String>,
    /// A journey run once after the load, when setup succeeded (k6's `teardown()`): its results
    /// are reported and do not change the load's verdict.
    pub teardown: Option<String>,
}

/// A threshold: an expression, or a map that can also stop the run early.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum RawThreshold {
    /// Just the expression, e.g. `p99 < 400ms`.
    Expr(String),
    /// The expression with options.
    Full(RawThresholdFull),
}

/// A threshold with options.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawThresholdFull {
    /// The expression, e.g. `errors < 1%`.
    pub threshold: String,
    /// Stop the run as soon as the threshold fails (checked every interval).
    #[serde(default)]
    pub abort_on_fail: bool,
    /// Do not check live before this long into the run (default 10s).
    pub delay: Option<String>,
}

impl RawThreshold {
    /// The expression text.
    pub fn expr(&self) -> &str {
        match self {
            RawThreshold::Expr(e) => e,
            RawThreshold::Full(f) => &f.threshold,
        }
    }
}

impl<'de> Deserialize<'de> for RawThreshold {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TextOrMap::<Self, RawThresholdFull>::new(
            "an expression like \"p99 < 400ms\", or a map with `threshold`, `abort_on_fail`, `delay`",
            RawThreshold::Expr,
            RawThreshold::Full,
        ))
    }
}

impl JsonSchema for RawThreshold {
    fn schema_name() -> Cow<'static, str> {
        "Threshold".into()
    }
    fn json_schema(g: &mut SchemaGenerator) -> Schema {
        let full = g.subschema_for::<RawThresholdFull>();
        json_schema!({ "anyOf": [{ "type": "string" }, full] })
    }
}

/// Defaults for requests and flows.
#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawDefaults {
    /// Per-request timeout (default 10s).
    pub timeout: Option<String>,
    /// Headers sent with every request.
    #[serde(default)]
    pub headers: IndexMap<String, String>,
    /// How long in-flight iterations may finish after the load ends (default 10s).
    pub graceful_stop: Option<String>,
    /// Accept any TLS certificate (for self-signed test systems).
    pub insecure: Option<bool>,
    /// `auto` (ALPN decides, default), `http1` or `http2`.
    pub http: Option<String>,
    /// Keep connections open across iterations (default true); false opens a new one per iteration.
    pub keep_alive: Option<bool>,
    /// What a failed request does to its iteration: `abort` (default) or `continue`.
    pub on_error: Option<String>,
    /// Largest response body read for extraction or checks, in bytes (default 10 MiB).
    pub max_body_bytes: Option<u64>,
    /// Any failed check fails the run (exit 1), as a threshold would (default false).
    pub checks_gate: Option<bool>,
    /// Send a W3C `traceparent` header on every request (default true).
    pub traceparent: Option<bool>,
    /// Redirects each request follows (default 10; 0 to see the 3xx itself).
    pub redirects: Option<u32>,
    /// Send `Accept-Encoding` with every request: a list (`gzip, br`) or `browser` for what
    /// Chromium sends (gzip, deflate, br, zstd). Off unless set, like k6; encoded responses are
    /// decoded before extraction and checks either way.
    pub accept_encoding: Option<String>,
    /// Open model: how late an arrival may start so that arrivals close together share one
    /// wake-up. Unset: none up to 10,000/s, above that about eight arrivals per wake-up and at
    /// most 500us. `0s` wakes for every arrival at any rate.
    pub arrival_slack: Option<String>,
    /// Host names dialled at a fixed address, like curl's `--resolve`: `api.example.com:
    /// 10.0.0.5` (or `name:port: address:port`). TLS server name and `Host` keep the name.
    #[serde(default)]
    pub hosts: IndexMap<String, String>,
    /// Proxy for every request (`http://user:pass@host:port`), or `none`. Unset: `HTTP_PROXY`,
    /// `HTTPS_PROXY` and `NO_PROXY` decide, and loopback targets never use them.
    pub proxy: Option<String>,
    /// PEM certificate (chain) presented when a server asks for one (mutual TLS), relative to the
    /// scenario.
    pub client_cert: Option<String>,
    /// PEM private key of `client_cert`.
    pub client_key: Option<String>,
    /// The HTTP/1.1 client: `lean` (default; stampede's own, cheaper per request and per user)
    /// or `hyper` (the reference it is tested against). HTTP/2 is always hyper's.
    pub client: Option<String>,
}

/// A data feeder: rows from a CSV or JSON-lines file.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawFeeder {
    /// CSV file with a header row, relative to the scenario file.
    pub csv: Option<String>,
    /// JSON-lines file (one object per line), relative to the scenario file.
    pub jsonl: Option<String>,
    /// `sequential` (default), `random` or `unique` (each virtual user keeps its own row).
    pub pick: Option<String>,
    /// When rows run out: `wrap` (default for sequential) or `error` (default for unique).
    pub on_exhausted: Option<String>,
}

/// A journey: a list of steps, or a map with hooks.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum RawJourney {
    /// Just the steps.
    Steps(Vec<RawStep>),
    /// Steps with hooks.
    Full(RawJourneyFull),
}

/// A journey with Rhai hooks around each iteration.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawJourneyFull {
    /// Rhai run before each iteration.
    pub before: Option<String>,
    /// Rhai run after each iteration, even when it failed.
    pub after: Option<String>,
    /// The steps.
    pub steps: Vec<RawStep>,
}

impl RawJourney {
    /// The steps, whichever form was written.
    pub fn steps(&self) -> &[RawStep] {
        match self {
            RawJourney::Steps(s) => s,
            RawJourney::Full(f) => &f.steps,
        }
    }
}

impl<'de> Deserialize<'de> for RawJourney {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawJourney;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a list of steps, or a map with `steps` (and optional `before`/`after`)",
                )
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<RawJourney, A::Error> {
                Vec::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(RawJourney::Steps)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawJourney, A::Error> {
                RawJourneyFull::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(RawJourney::Full)
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for RawJourney {
    fn schema_name() -> Cow<'static, str> {
        "Journey".into()
    }
    fn json_schema(g: &mut SchemaGenerator) -> Schema {
        let steps = g.subschema_for::<Vec<RawStep>>();
        let full = g.subschema_for::<RawJourneyFull>();
        json_schema!({ "anyOf": [steps, full] })
    }
}

/// One step. Exactly one of the kind keys is set: a method (`get`, `post`, …), `think`, `script`,
/// `group`, `loop`, `if` or `include`.
#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawStep {
    /// Step name, unique within the journey; metric key `flow.name`. Required for requests.
    pub name: Option<String>,
    /// GET this path or URL.
    pub get: Option<String>,
    /// POST to this path or URL.
    pub post: Option<String>,
    /// PUT to this path or URL.
    pub put: Option<String>,
    /// PATCH this path or URL.
    pub patch: Option<String>,
    /// DELETE this path or URL.
    pub delete: Option<String>,
    /// HEAD this path or URL.
    pub head: Option<String>,
    /// OPTIONS this path or URL.
    pub options: Option<String>,
    /// Open a WebSocket at this path or `ws://` / `wss://` URL (relative paths go to the target,
    /// `https` targets as `wss`), then run its `steps`.
    pub ws: Option<String>,
    /// WebSocket subprotocols offered (`Sec-WebSocket-Protocol`).
    #[serde(default)]
    pub subprotocols: Vec<String>,
    /// What a `ws` step does on its connection: `send`, `expect`, `hold`, `close`.
    pub steps: Option<Vec<RawWsAction>>,
    /// Which named target a relative path goes to (default: `target`).
    pub target: Option<String>,
    /// Request headers (templates allowed in values).
    #[serde(default)]
    pub headers: IndexMap<String, String>,
    /// Query parameters appended to the path (templates allowed in values).
    #[serde(default)]
    pub query: IndexMap<String, String>,
    /// JSON body; a string that is exactly `{{ var }}` inserts the variable's JSON value.
    pub json: Option<serde_json::Value>,
    /// Form body (`application/x-www-form-urlencoded`).
    pub form: Option<IndexMap<String, String>>,
    /// Raw body text (templates allowed).
    pub body: Option<String>,
    /// A file sent as the body, as is (no templating; read once at load, relative to the scenario).
    pub body_file: Option<String>,
    /// A `multipart/form-data` body: templated text fields and files.
    pub multipart: Option<RawMultipart>,
    /// Values taken from the response into virtual-user variables.
    #[serde(default)]
    pub extract: IndexMap<String, RawExtract>,
    /// Conditions the response must meet; a failure is an error of this step.
    pub check: Option<RawCheck>,
    /// Retry policy for this request.
    pub retry: Option<RawRetry>,
    /// Timeout for this request (overrides the default).
    pub timeout: Option<String>,
    /// Redirects this request follows (overrides the default; 0 to check the 3xx itself).
    pub redirects: Option<u32>,
    /// Pause: `2s`, `{ uniform: 1s..3s }`, `{ normal: { mean: 2s, stddev: 500ms } }`,
    /// `{ exponential: 2s }`.
    pub think: Option<RawThink>,
    /// Rhai statements run in the virtual user's scope.
    pub script: Option<String>,
    /// A named group of steps.
    pub group: Option<Vec<RawStep>>,
    /// Repeat steps a number of times or while a condition holds.
    #[serde(rename = "loop")]
    pub repeat: Option<RawLoop>,
    /// A Rhai condition; `then` runs when true, `else` otherwise.
    #[serde(rename = "if")]
    pub condition: Option<String>,
    /// Steps for a true `if`.
    pub then: Option<Vec<RawStep>>,
    /// Steps for a false `if`.
    #[serde(rename = "else")]
    pub otherwise: Option<Vec<RawStep>>,
    /// Runs the steps of another journey here.
    pub include: Option<String>,
}

/// One thing a `ws` step does on its connection; exactly one key besides `name`.
#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawWsAction {
    /// For `expect`: its metric key (`flow.name`; default `<ws step>-expect<N>`).
    pub name: Option<String>,
    /// A text message (templates allowed); a map or list is sent as JSON, like `json:` bodies.
    pub send: Option<serde_json::Value>,
    /// Wait for a message that matches, within a time.
    pub expect: Option<RawWsExpect>,
    /// Keep listening this long, counting messages (`5s`).
    pub hold: Option<String>,
    /// Close the connection with this code (`1000`, or `true` for 1000).
    pub close: Option<serde_json::Value>,
}

/// What an `expect` waits for: every condition given must hold for one message.
#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawWsExpect {
    /// JSONPath equalities, like a check's `json`.
    #[serde(default)]
    pub json: IndexMap<String, serde_json::Value>,
    /// A regex the message must match.
    pub regex: Option<String>,
    /// How long to wait (default: the step's timeout).
    pub within: Option<String>,
    /// Values taken from the matching message, like a request's `extract`.
    #[serde(default)]
    pub extract: IndexMap<String, RawExtract>,
}

/// A `multipart/form-data` body.
#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawMultipart {
    /// Text fields by name (templates allowed).
    #[serde(default)]
    pub fields: IndexMap<String, String>,
    /// File parts by field name.
    #[serde(default)]
    pub files: IndexMap<String, RawFilePart>,
}

/// One file part of a multipart body.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawFilePart {
    /// The file, relative to the scenario (read once at load).
    pub path: String,
    /// Its `Content-Type` (default: from the extension, else `application/octet-stream`).
    pub content_type: Option<String>,
    /// The file name sent (default: the path's last component).
    pub filename: Option<String>,
}

/// Where an extracted value comes from.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum RawExtract {
    /// A JSONPath (RFC 9535) into a JSON body, e.g. `$.token`.
    Path(String),
    /// One of the explicit forms.
    Spec(RawExtractSpec),
}

/// Explicit extraction: exactly one source.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawExtractSpec {
    /// JSONPath into the JSON body.
    pub json: Option<String>,
    /// Regex over the body; the first capture group (or the whole match).
    pub regex: Option<String>,
    /// A response header's value.
    pub header: Option<String>,
    /// A cookie set by the response.
    pub cookie: Option<String>,
    /// The value is a credential: it is masked in every output.
    #[serde(default)]
    pub secret: bool,
}

impl<'de> Deserialize<'de> for RawExtract {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TextOrMap::<Self, RawExtractSpec>::new(
            "a JSONPath like `$.token`, or a map with one of json, regex, header, cookie",
            RawExtract::Path,
            RawExtract::Spec,
        ))
    }
}

impl JsonSchema for RawExtract {
    fn schema_name() -> Cow<'static, str> {
        "Extract".into()
    }
    fn json_schema(g: &mut SchemaGenerator) -> Schema {
        let spec = g.subschema_for::<RawExtractSpec>();
        json_schema!({ "anyOf": [{ "type": "string" }, spec] })
    }
}

/// Response checks.
#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCheck {
    /// Expected status code, or a list of acceptable ones.
    pub status: Option<OneOrMany<u16>>,
    /// JSONPath → expected value.
    #[serde(default)]
    pub json: IndexMap<String, serde_json::Value>,
    /// JSONPaths that must match at least one node.
    #[serde(default)]
    pub exists: Vec<String>,
    /// Text the body must contain.
    pub body_contains: Option<String>,
    /// Headers that must be present (name → expected value, or `~` for any value).
    #[serde(default)]
    pub headers: IndexMap<String, Option<String>>,
    /// Latency budget: a slower response fails the check.
    pub max_latency: Option<String>,
}

/// Retry policy.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRetry {
    /// Retries after the first attempt.
    pub max: u32,
    /// What to retry on: status codes, `5xx`, `timeout`, `reset`, `connect`.
    #[serde(default)]
    pub on: Vec<Scalar>,
    /// Backoff range, doubled per attempt within it, with full jitter (`100ms..2s`).
    pub backoff: Option<String>,
}

/// A think time.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum RawThink {
    /// A constant pause, e.g. `2s`.
    Fixed(String),
    /// A random pause.
    Random(RawThinkRandom),
}

/// A random think time: exactly one distribution.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawThinkRandom {
    /// Uniform over a range, e.g. `1s..3s`.
    pub uniform: Option<String>,
    /// Normal with a mean and standard deviation (never below zero).
    pub normal: Option<RawNormal>,
    /// Exponential with this mean.
    pub exponential: Option<String>,
}

/// Normal distribution parameters.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawNormal {
    /// Mean pause.
    pub mean: String,
    /// Standard deviation.
    pub stddev: String,
}

impl<'de> Deserialize<'de> for RawThink {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TextOrMap::<Self, RawThinkRandom>::new(
            "a duration like `2s`, or a map with uniform, normal or exponential",
            RawThink::Fixed,
            RawThink::Random,
        ))
    }
}

impl JsonSchema for RawThink {
    fn schema_name() -> Cow<'static, str> {
        "Think".into()
    }
    fn json_schema(g: &mut SchemaGenerator) -> Schema {
        let random = g.subschema_for::<RawThinkRandom>();
        json_schema!({ "anyOf": [{ "type": "string" }, random] })
    }
}

/// A loop.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawLoop {
    /// Run the steps this many times.
    pub count: Option<u64>,
    /// Run the steps while this Rhai condition holds.
    #[serde(rename = "while")]
    pub while_: Option<String>,
    /// Upper bound on `while` rounds (default 1000).
    pub max: Option<u64>,
    /// The steps to repeat.
    pub steps: Vec<RawStep>,
}

/// A flow: a journey bound to a load model.
#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawFlow {
    /// The journey each iteration runs.
    pub journey: Option<String>,
    /// Open model: arrivals per unit of time, constant (`50/s`) or stages.
    pub rate: Option<OneOrStages>,
    /// Open model: `uniform` (default) or `poisson` spacing of arrivals.
    pub arrivals: Option<String>,
    /// Open model: most virtual users at once; an arrival that finds none free is dropped.
    pub max_vus: Option<u64>,
    /// Closed model: virtual users looping, constant (`10`) or stages.
    pub vus: Option<OneOrStages>,
    /// Closed model: one iteration every this long per virtual user (late ones run at once).
    pub pace: Option<String>,
    /// Closed model: pause between a virtual user's iterations.
    pub think: Option<RawThink>,
    /// Either model: stop after this many iterations in total (an open flow: arrivals).
    pub iterations: Option<u64>,
    /// Closed model: each virtual user runs this many iterations, then stops.
    pub per_vu_iterations: Option<u64>,
    /// Delay from the start of the run before this flow starts.
    pub start: Option<String>,
    /// How long a constant-rate or constant-VU flow runs.
    pub duration: Option<String>,
    /// `live` (default) or `background` (batch work competing with live traffic).
    pub kind: Option<String>,
    /// Tags attached to every sample of this flow.
    #[serde(default)]
    pub tags: IndexMap<String, String>,
    /// Seed for this flow's random choices (Poisson arrivals, think times).
    pub seed: Option<u64>,
}

/// A load level: either one constant value or a list of stages.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum OneOrStages {
    /// A constant rate or VU count.
    One(Scalar),
    /// A curve made of stages.
    Stages(Vec<RawStage>),
}

impl<'de> Deserialize<'de> for OneOrStages {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OneOrStages;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a value like `50/s` or `10`, or a list of stages")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<OneOrStages, A::Error> {
                Vec::deserialize(de::value::SeqAccessDeserializer::new(seq))
                    .map(OneOrStages::Stages)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<OneOrStages, E> {
                Ok(OneOrStages::One(Scalar(v.to_string())))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<OneOrStages, E> {
                Ok(OneOrStages::One(Scalar(v.to_string())))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<OneOrStages, E> {
                Ok(OneOrStages::One(Scalar(v.to_string())))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<OneOrStages, E> {
                Ok(OneOrStages::One(Scalar(v.to_string())))
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for OneOrStages {
    fn schema_name() -> Cow<'static, str> {
        "Load".into()
    }
    fn json_schema(g: &mut SchemaGenerator) -> Schema {
        let stages = g.subschema_for::<Vec<RawStage>>();
        json_schema!({ "anyOf": [{ "type": ["string", "number"] }, stages] })
    }
}

/// One stage of a curve: `{ to: X, over: T }` ramps, `{ hold: T }` holds, `{ at: X }` jumps
/// (with an optional `hold`), `{ sine: … }` oscillates.
#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawStage {
    /// Ramp linearly to this level…
    pub to: Option<Scalar>,
    /// …over this long.
    pub over: Option<String>,
    /// Keep the level for this long.
    pub hold: Option<String>,
    /// Jump to this level at once.
    pub at: Option<Scalar>,
    /// Oscillate around the current level (a diurnal curve).
    pub sine: Option<RawSine>,
}

/// A sine stage: `level ± amplitude` with a period, for a duration.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSine {
    /// Peak deviation from the current level (same unit as the level).
    pub amplitude: Scalar,
    /// Length of one full wave.
    pub period: String,
    /// How long the stage lasts.
    #[serde(rename = "for")]
    pub length: String,
}

/// A scalar written as text or a number; kept as text until validation gives it a unit.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct Scalar(pub String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number or a short text value")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for Scalar {
    fn schema_name() -> Cow<'static, str> {
        "Scalar".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": ["string", "number"] })
    }
}

/// One value or a list of them (`status: 200` or `status: [200, 201]`).
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    /// A single value.
    One(T),
    /// Several values.
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    /// The values as a vector.
    pub fn into_vec(self) -> Vec<T> {
        match self {
            OneOrMany::One(v) => vec![v],
            OneOrMany::Many(v) => v,
        }
    }
}

impl<'de> Deserialize<'de> for OneOrMany<u16> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OneOrMany<u16>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a status code like 200, or a list like [200, 201]")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                u16::try_from(v)
                    .map(OneOrMany::One)
                    .map_err(|_| E::custom(format!("status {v} is out of range")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                u16::try_from(v)
                    .map(OneOrMany::One)
                    .map_err(|_| E::custom(format!("status {v} is out of range")))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                Vec::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(OneOrMany::Many)
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for OneOrMany<u16> {
    fn schema_name() -> Cow<'static, str> {
        "StatusCodes".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "anyOf": [{ "type": "integer" }, { "type": "array", "items": { "type": "integer" } }] })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_keys_are_the_scenario_fields() {
        let schema = serde_json::to_value(schemars::schema_for!(RawScenario)).unwrap();
        let mut fields: Vec<&str> = schema["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        fields.sort_unstable();
        let mut keys = TOP_KEYS.to_vec();
        keys.sort_unstable();
        assert_eq!(fields, keys);
    }
}
