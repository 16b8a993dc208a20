//! Raw scenario → [`Plan`], collecting every problem with its position.
//!
//! Never stops at the first problem: each section, journey and flow is checked on its own, and
//! everything found is returned together (k6's `Validate() []error`). It never mutates its input.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method};
use indexmap::IndexMap;
use regex::Regex;
use rhai::ImmutableString;
use serde_json_path::JsonPath;

use super::diagnostic::{Diagnostic, Diagnostics, did_you_mean};
use super::feeder::{self, Feeder, OnExhausted, Pick};
use super::plan::*;
use super::raw::*;
use super::source::{LocationIndex, Pos, join_index, join_key};
use super::template::{Escape, Template, VarRef, placeholders};
use crate::scenario::curve::{Curve, Piece, Shape};
use crate::script::{Origin as ScriptOrigin, Scripts};
use crate::secret::{CREDENTIAL_HEADERS, Secrets};
use crate::units::{Rate, Span, SpanRange};

/// Values from the command line or environment that change how a scenario loads.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// Replaces the scenario's `target`.
    pub target: Option<String>,
    /// Multiplies every rate and VU count.
    pub scale: Option<f64>,
    /// Caps the run's length; also the length of constant flows without their own `duration`.
    pub duration: Option<Duration>,
    /// Runs only these flows (by name); the others are validated but left out of the plan.
    pub only: Option<Vec<String>>,
}

/// Default `arrival_slack`: one wake-up per 0.5 ms at most at high rates, lag well under 1 ms.
const DEFAULT_ARRIVAL_SLACK: Duration = Duration::from_micros(500);

const BUILTINS: [&str; 4] = ["vu", "iteration", "uuid", "timestamp_ms"];
const METHODS: [&str; 7] = ["get", "post", "put", "patch", "delete", "head", "options"];

static ASSIGNED: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"(?m)(?:\blet\s+|\bconst\s+|^|[;{]\s*)([A-Za-z_][A-Za-z0-9_]*)\s*(?:[-+*/]?=)[^=]")
        .ok()
});

/// Names a Rhai text leaves set (a superset is fine: it only widens what templates may use). A
/// library file's top-level `let`s last (they set up each user), so `lets` counts them; a snippet's
/// die with it (its scope is rewound), so for snippets only assignments without `let` count.
fn assigned_names(text: &str, lets: bool) -> impl Iterator<Item = &str> {
    ASSIGNED.as_ref().into_iter().flat_map(move |re| {
        re.captures_iter(text)
            .filter(move |c| {
                lets || c.get(0).is_some_and(|m| {
                    let head = m
                        .as_str()
                        .trim_start_matches([';', '{', ' ', '\t', '\n', '\r']);
                    !(head.starts_with("let") || head.starts_with("const"))
                })
            })
            .filter_map(|c| c.get(1))
            .map(|m| m.as_str())
    })
}

pub(crate) struct Validator<'a> {
    file: &'a Path,
    dir: PathBuf,
    text: &'a str,
    idx: &'a LocationIndex,
    diags: Diagnostics,
    default_headers: Vec<(HeaderName, HeaderTemplate)>,
    secrets: Secrets,
    /// Whether the file has flow entries (some may have failed to parse and are reported already).
    pub(crate) flows_written: bool,
    /// A default target was given but is invalid (reported once; relative paths say no more).
    target_invalid: bool,
}

struct JourneyCtx {
    requests: Vec<RequestInfo>,
    names: HashMap<String, Pos>,
    feeders: BTreeSet<usize>,
    stack: Vec<String>,
    include_site: Option<String>,
}

struct Names<'p> {
    known: &'p HashSet<String>,
    feeders: &'p [Arc<Feeder>],
    /// The scenario's text, to recognise a name only a snippet's `let` declares.
    source: &'p str,
}

impl<'a> Validator<'a> {
    pub(crate) fn new(file: &'a Path, text: &'a str, idx: &'a LocationIndex) -> Validator<'a> {
        let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
        Validator {
            file,
            dir,
            text,
            idx,
            diags: Diagnostics::default(),
            default_headers: Vec::new(),
            secrets: Secrets::default(),
            flows_written: false,
            target_invalid: false,
        }
    }

    pub(crate) fn into_diags(self) -> Diagnostics {
        self.diags
    }

    fn err(&mut self, path: &str, msg: impl Into<String>) {
        let pos = self.idx.value(path);
        self.diags.push(Diagnostic::new(self.file, pos, msg));
    }

    fn err_key(&mut self, path: &str, msg: impl Into<String>) {
        let pos = self.idx.key(path);
        self.diags.push(Diagnostic::new(self.file, pos, msg));
    }

    fn err_hint(&mut self, path: &str, msg: impl Into<String>, hint: Option<String>) {
        let pos = self.idx.value(path);
        let mut d = Diagnostic::new(self.file, pos, msg);
        d.hint = hint;
        self.diags.push(d);
    }

    pub(crate) fn push(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    fn span(&mut self, path: &str, text: &str) -> Option<Duration> {
        match text.parse::<Span>() {
            Ok(s) => Some(s.get()),
            Err(e) => {
                self.err(path, e.0);
                None
            }
        }
    }

    fn positive_span(&mut self, path: &str, text: &str) -> Option<Duration> {
        let d = self.span(path, text)?;
        if d.is_zero() {
            self.err(path, format!("`{text}` must be longer than zero"));
            return None;
        }
        Some(d)
    }

    /// Builds the plan; `None` when anything was wrong (the problems are in `self.diags`).
    pub(crate) fn build(&mut self, raw: &RawScenario, ov: &Overrides) -> Option<Plan> {
        let before = self.diags.0.len();
        let settings = self.settings(&raw.defaults);
        self.default_headers = self.compile_default_headers(&raw.defaults);
        let mut origins = Vec::new();
        let mut named: HashMap<String, usize> = HashMap::new();
        let default_target = ov
            .target
            .clone()
            .or_else(|| {
                std::env::var("STAMPEDE_TARGET")
                    .ok()
                    .filter(|s| !s.is_empty())
            })
            .or_else(|| raw.target.clone());
        if let Some(url) = &default_target {
            match parse_origin("default", url) {
                Ok(o) => {
                    named.insert("default".into(), origins.len());
                    origins.push(o);
                }
                Err(e) => {
                    let from = if ov.target.is_some() {
                        "--target"
                    } else {
                        "target"
                    };
                    self.err("target", format!("invalid {from} URL `{url}`: {e}"));
                    self.target_invalid = true;
                }
            }
        }
        for (name, url) in &raw.targets {
            match parse_origin(name, url) {
                Ok(o) => {
                    named.insert(name.clone(), origins.len());
                    origins.push(o);
                }
                Err(e) => self.err(
                    &format!("targets.{name}"),
                    format!("invalid URL `{url}` for target `{name}`: {e}"),
                ),
            }
        }

        let feeders = self.feeders(&raw.data);
        let scripts = self.scripts(&raw.scripts);
        let vars = self.vars(&raw.vars);

        // Every name something can set: vars, extractions, script assignments.
        let mut known: HashSet<String> = raw.vars.keys().cloned().collect();
        for j in raw.journeys.values() {
            if let RawJourney::Full(f) = j {
                for h in [&f.before, &f.after].into_iter().flatten() {
                    known.extend(assigned_names(h, false).map(str::to_string));
                }
            }
            collect_names(j.steps(), &mut known);
        }
        for path in &raw.scripts {
            if let Ok(text) = std::fs::read_to_string(self.dir.join(path)) {
                known.extend(assigned_names(&text, true).map(str::to_string));
            }
        }
        let names = Names {
            known: &known,
            feeders: &feeders,
            source: self.text,
        };

        let mut journeys = Vec::new();
        let mut journey_index = HashMap::new();
        for (name, rj) in &raw.journeys {
            if !valid_name(name) {
                self.err_key(
                    &format!("journeys.{name}"),
                    format!("journey name `{name}` may use only letters, digits, `_` and `-`"),
                );
            }
            let mut jc = JourneyCtx {
                requests: Vec::new(),
                names: HashMap::new(),
                feeders: BTreeSet::new(),
                stack: vec![name.clone()],
                include_site: None,
            };
            let base = format!("journeys.{name}");
            let steps_path = match rj {
                RawJourney::Steps(_) => base.clone(),
                RawJourney::Full(_) => join_key(&base, "steps"),
            };
            let problems_before = self.diags.0.len();
            let steps = self.steps(
                rj.steps(),
                &steps_path,
                &mut jc,
                raw,
                &names,
                &mut origins,
                &named,
                &settings,
                &scripts,
            );
            let (before, after) = match rj {
                RawJourney::Full(f) => (
                    f.before.as_ref().and_then(|t| {
                        self.snippet(
                            &scripts,
                            t,
                            &join_key(&base, "before"),
                            false,
                            &names,
                            &mut jc,
                        )
                    }),
                    f.after.as_ref().and_then(|t| {
                        self.snippet(
                            &scripts,
                            t,
                            &join_key(&base, "after"),
                            false,
                            &names,
                            &mut jc,
                        )
                    }),
                ),
                RawJourney::Steps(_) => (None, None),
            };
            // Only when nothing else went wrong: a request that failed validation is reported already.
            if jc.requests.is_empty()
                && self.diags.0.len() == problems_before
                && !self.target_invalid
            {
                self.err(
                    &base,
                    format!(
                        "journey `{name}` has no request step: an iteration would send nothing"
                    ),
                );
            }
            let feeders_used = jc
                .feeders
                .iter()
                .copied()
                .filter(|&i| feeders[i].pick != Pick::Unique)
                .collect();
            journey_index.insert(name.clone(), journeys.len());
            journeys.push(Journey {
                name: name.clone(),
                steps,
                before,
                after,
                requests: jc.requests,
                feeders: feeders_used,
            });
        }

        let mut flows = Vec::new();
        if raw.flows.is_empty() && !self.flows_written {
            self.err("", "the scenario has no flows: add a `flows:` section binding a journey to a load model");
        }
        for (name, rf) in &raw.flows {
            if let Some(f) = self.flow(name, rf, &journey_index, raw, ov) {
                flows.push(f);
            }
        }

        let flow_steps: Vec<(&str, &str, Vec<&str>)> = raw
            .flows
            .iter()
            .map(|(name, f)| {
                let steps = f
                    .journey
                    .as_ref()
                    .and_then(|j| journey_index.get(j))
                    .map(|&ji| {
                        journeys[ji]
                            .requests
                            .iter()
                            .map(|r| r.name.as_str())
                            .collect()
                    })
                    .unwrap_or_default();
                (name.as_str(), f.journey.as_deref().unwrap_or(""), steps)
            })
            .collect();
        let thresholds = self.thresholds(&raw.thresholds, &flow_steps);

        if self.diags.0.len() > before {
            return None;
        }
        let declared = known
            .iter()
            .filter(|n| !raw.vars.contains_key(*n))
            .map(|n| ImmutableString::from(n.as_str()))
            .collect();
        let mut plan = Plan {
            name: raw.name.clone().unwrap_or_else(|| {
                self.file
                    .file_stem()
                    .map_or("scenario".into(), |s| s.to_string_lossy().into_owned())
            }),
            description: raw.description.clone(),
            source: self.file.to_path_buf(),
            origins,
            settings,
            vars,
            declared,
            feeders,
            scripts: Arc::new({
                let mut scripts = scripts;
                scripts.set_secrets(self.secrets.clone());
                scripts
            }),
            journeys,
            flows,
            thresholds,
            secrets: std::mem::take(&mut self.secrets),
        };
        if let Some(only) = &ov.only {
            let known: Vec<&str> = plan.flows.iter().map(|f| f.name.as_str()).collect();
            let unknown: Vec<&String> = only
                .iter()
                .filter(|n| !known.contains(&n.as_str()))
                .collect();
            if !unknown.is_empty() {
                let names = unknown
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ");
                self.err(
                    "flows",
                    format!(
                        "--only names unknown flows {names}; the scenario has: {}",
                        known.join(", ")
                    ),
                );
                return None;
            }
            plan.flows.retain(|f| only.contains(&f.name));
        }
        if let Some(k) = ov.scale {
            plan.scale(k);
        }
        if let Some(d) = ov.duration {
            plan.limit_duration(d);
        }
        Some(plan)
    }

    fn thresholds(
        &mut self,
        raw: &IndexMap<String, Vec<RawThreshold>>,
        flows: &[(&str, &str, Vec<&str>)],
    ) -> Vec<crate::model::threshold::Threshold> {
        use crate::model::threshold::{Expr, Metric, Threshold, matching_keys};
        let mut out = Vec::new();
        for (pattern, list) in raw {
            let kp = format!("thresholds.{pattern}");
            let keys = matching_keys(pattern, flows.iter().map(|(f, j, s)| (*f, *j, s.clone())));
            if keys.is_empty() {
                let candidates: Vec<String> = flows
                    .iter()
                    .flat_map(|(f, _, steps)| {
                        std::iter::once(f.to_string())
                            .chain(steps.iter().map(move |s| format!("{f}.{s}")))
                    })
                    .collect();
                let hint = did_you_mean(pattern, candidates.iter().map(String::as_str))
                    .map(|c| format!("did you mean `{c}`?"))
                    .or_else(|| Some("keys are `flow` (all its requests), `flow.step` and `flow.iteration`; `*` is a wildcard".into()));
                let pos = self.idx.key(&kp);
                let mut d = Diagnostic::new(
                    self.file,
                    pos,
                    format!("threshold key `{pattern}` matches no flow or step"),
                );
                d.hint = hint;
                self.diags.push(d);
                continue;
            }
            for (i, t) in list.iter().enumerate() {
                let tp = join_index(&kp, i);
                let (text, abort_on_fail, delay) = match t {
                    RawThreshold::Expr(e) => (e.clone(), false, None),
                    RawThreshold::Full(f) => {
                        (f.threshold.clone(), f.abort_on_fail, f.delay.clone())
                    }
                };
                let expr_path = if matches!(t, RawThreshold::Full(_)) {
                    join_key(&tp, "threshold")
                } else {
                    tp.clone()
                };
                let expr = match text.parse::<Expr>() {
                    Ok(e) => e,
                    Err(e) => {
                        self.err(&expr_path, e.to_string());
                        continue;
                    }
                };
                let flow_metric = matches!(expr.metric, Metric::Rate | Metric::Dropped);
                if flow_metric && !pattern.contains('*') && pattern.contains('.') {
                    self.err(
                        &expr_path,
                        format!("`{text}` applies to flows: use the flow's key, not `{pattern}`"),
                    );
                    continue;
                }
                let delay = match delay {
                    Some(d) => match self.span(&join_key(&tp, "delay"), &d) {
                        Some(d) => d,
                        None => continue,
                    },
                    None => Duration::from_secs(10),
                };
                out.push(Threshold {
                    pattern: pattern.clone(),
                    text,
                    expr,
                    abort_on_fail,
                    delay,
                });
            }
        }
        out
    }

    fn settings(&mut self, d: &RawDefaults) -> Settings {
        let mut s = Settings {
            timeout: Duration::from_secs(10),
            graceful_stop: Duration::from_secs(10),
            insecure: d.insecure.unwrap_or(false),
            http: HttpVersion::Auto,
            keep_alive: d.keep_alive.unwrap_or(true),
            on_error: OnError::Abort,
            max_body_bytes: d.max_body_bytes.unwrap_or(10 << 20),
            traceparent: d.traceparent.unwrap_or(true),
            checks_gate: d.checks_gate.unwrap_or(false),
            arrival_slack: DEFAULT_ARRIVAL_SLACK,
        };
        if let Some(t) = &d.arrival_slack {
            match self.span("defaults.arrival_slack", t) {
                Some(v) if v <= Duration::from_millis(100) => s.arrival_slack = v,
                Some(_) => self.err(
                    "defaults.arrival_slack",
                    "arrival_slack must be at most 100ms: it is lateness the run adds on purpose",
                ),
                None => {}
            }
        }
        if let Some(t) = &d.timeout {
            s.timeout = self
                .positive_span("defaults.timeout", t)
                .unwrap_or(s.timeout);
        }
        if let Some(t) = &d.graceful_stop {
            s.graceful_stop = self
                .span("defaults.graceful_stop", t)
                .unwrap_or(s.graceful_stop);
        }
        match d.http.as_deref() {
            None | Some("auto") => {}
            Some("http1") => s.http = HttpVersion::Http1,
            Some("http2") => s.http = HttpVersion::Http2,
            Some(other) => self.err(
                "defaults.http",
                format!("unknown HTTP version `{other}`: expected auto, http1 or http2"),
            ),
        }
        match d.on_error.as_deref() {
            None | Some("abort") => {}
            Some("continue") => s.on_error = OnError::Continue,
            Some(other) => self.err(
                "defaults.on_error",
                format!("unknown on_error `{other}`: expected abort or continue"),
            ),
        }
        for name in d.headers.keys() {
            if HeaderName::from_bytes(name.as_bytes()).is_err() {
                self.err_key(
                    &format!("defaults.headers.{name}"),
                    format!("`{name}` is not a valid header name"),
                );
            }
        }
        s
    }

    fn feeders(&mut self, data: &IndexMap<String, RawFeeder>) -> Vec<Arc<Feeder>> {
        let mut out = Vec::new();
        for (name, f) in data {
            let path = format!("data.{name}");
            if !valid_name(name) || BUILTINS.contains(&name.as_str()) {
                self.err_key(&path, format!("feeder name `{name}` must be letters, digits, `_` or `-`, and not a built-in"));
            }
            let pick = match f.pick.as_deref() {
                None | Some("sequential") => Pick::Sequential,
                Some("random") => Pick::Random,
                Some("unique") => Pick::Unique,
                Some(other) => {
                    self.err(
                        &join_key(&path, "pick"),
                        format!("unknown pick `{other}`: expected sequential, random or unique"),
                    );
                    Pick::Sequential
                }
            };
            let on_exhausted = match f.on_exhausted.as_deref() {
                None if pick == Pick::Unique => OnExhausted::Error,
                None | Some("wrap") => OnExhausted::Wrap,
                Some("error") => OnExhausted::Error,
                Some(other) => {
                    self.err(
                        &join_key(&path, "on_exhausted"),
                        format!("unknown on_exhausted `{other}`: expected wrap or error"),
                    );
                    OnExhausted::Wrap
                }
            };
            let (key, file, result) = match (&f.csv, &f.jsonl) {
                (Some(c), None) => ("csv", c, feeder::read_csv(&self.dir.join(c))),
                (None, Some(j)) => ("jsonl", j, feeder::read_jsonl(&self.dir.join(j))),
                _ => {
                    self.err(
                        &path,
                        format!("feeder `{name}` needs exactly one of `csv` or `jsonl`"),
                    );
                    continue;
                }
            };
            match result {
                Ok((columns, rows)) => out.push(Arc::new(Feeder::new(
                    name,
                    columns,
                    rows,
                    pick,
                    on_exhausted,
                ))),
                Err(e) => {
                    let file_path = self.dir.join(file);
                    match e.line {
                        Some(line) if file_path.exists() => {
                            self.push(Diagnostic::new(
                                &file_path,
                                Pos {
                                    line: line as usize,
                                    col: 1,
                                },
                                e.message,
                            ));
                        }
                        _ => self.err(&join_key(&path, key), e.message),
                    }
                    // Keep indices aligned with names so later lookups still resolve.
                    out.push(Arc::new(Feeder::new(
                        name,
                        Vec::new(),
                        Vec::new(),
                        pick,
                        on_exhausted,
                    )));
                }
            }
        }
        out
    }

    fn scripts(&mut self, files: &[String]) -> Scripts {
        let mut scripts = Scripts::new();
        for (i, f) in files.iter().enumerate() {
            let path = self.dir.join(f);
            match std::fs::read_to_string(&path) {
                Ok(text) => {
                    if let Err(e) = scripts.add_file(&path, &text) {
                        self.push(Diagnostic::new(
                            &path,
                            Pos {
                                line: e.line,
                                col: e.col,
                            },
                            format!("Rhai: {}", e.message),
                        ));
                    }
                }
                Err(e) => self.err(
                    &join_index("scripts", i),
                    format!("cannot read script `{}`: {e}", path.display()),
                ),
            }
        }
        scripts
    }

    fn script_origin(&self, path: &str) -> ScriptOrigin {
        let pos = self.idx.value(path);
        // A block scalar (`script: |`) starts on the next line.
        let line_text = self
            .text
            .lines()
            .nth(pos.line.saturating_sub(1))
            .unwrap_or("");
        let at = line_text
            .get(pos.col.saturating_sub(1)..)
            .unwrap_or("")
            .trim_start();
        if at.starts_with('|') || at.starts_with('>') {
            ScriptOrigin {
                file: self.file.to_path_buf(),
                first_line: pos.line + 1,
                first_col: 1,
            }
        } else {
            ScriptOrigin {
                file: self.file.to_path_buf(),
                first_line: pos.line,
                first_col: pos.col,
            }
        }
    }

    fn snippet(
        &mut self,
        scripts: &Scripts,
        text: &str,
        path: &str,
        condition: bool,
        names: &Names<'_>,
        jc: &mut JourneyCtx,
    ) -> Option<crate::script::Snippet> {
        for (i, f) in names.feeders.iter().enumerate() {
            if text.contains(&format!("{}.", f.name)) {
                jc.feeders.insert(i);
            }
        }
        let origin = self.script_origin(path);
        let result = if condition {
            scripts.compile_condition(text, origin)
        } else {
            scripts.compile(text, origin)
        };
        match result {
            Ok(s) => Some(s),
            Err(e) => {
                self.push(Diagnostic::new(
                    self.file,
                    Pos {
                        line: e.line,
                        col: e.col,
                    },
                    format!("Rhai: {}", e.message),
                ));
                None
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn steps(
        &mut self,
        raw_steps: &[RawStep],
        path: &str,
        jc: &mut JourneyCtx,
        raw: &RawScenario,
        names: &Names<'_>,
        origins: &mut Vec<Origin>,
        named: &HashMap<String, usize>,
        settings: &Settings,
        scripts: &Scripts,
    ) -> Vec<Step> {
        let mut out = Vec::new();
        for (i, s) in raw_steps.iter().enumerate() {
            let p = join_index(path, i);
            if let Some(target) = &s.include {
                if step_kinds(s).len() > 1 || s.name.is_some() {
                    self.err(&p, "an `include` step takes no other keys");
                }
                let Some(inc) = raw.journeys.get(target) else {
                    let hint = did_you_mean(target, raw.journeys.keys().map(String::as_str))
                        .map(|c| format!("did you mean `{c}`?"));
                    self.err_hint(
                        &join_key(&p, "include"),
                        format!("include of undefined journey `{target}`"),
                        hint,
                    );
                    continue;
                };
                if jc.stack.contains(target) {
                    let chain = jc.stack.join(" → ");
                    self.err(
                        &join_key(&p, "include"),
                        format!("include cycle: {chain} → {target}"),
                    );
                    continue;
                }
                jc.stack.push(target.clone());
                let outer = jc.include_site.clone();
                if outer.is_none() {
                    jc.include_site = Some(join_key(&p, "include"));
                }
                let inc_path = match inc {
                    RawJourney::Steps(_) => format!("journeys.{target}"),
                    RawJourney::Full(_) => format!("journeys.{target}.steps"),
                };
                let inner = self.steps(
                    inc.steps(),
                    &inc_path,
                    jc,
                    raw,
                    names,
                    origins,
                    named,
                    settings,
                    scripts,
                );
                jc.include_site = outer;
                jc.stack.pop();
                out.extend(inner);
                continue;
            }
            if let Some(step) = self.step(s, &p, jc, raw, names, origins, named, settings, scripts)
            {
                out.push(step);
            }
        }
        out
    }

    #[allow(clippy::too_many_arguments)]
    fn step(
        &mut self,
        s: &RawStep,
        p: &str,
        jc: &mut JourneyCtx,
        raw: &RawScenario,
        names: &Names<'_>,
        origins: &mut Vec<Origin>,
        named: &HashMap<String, usize>,
        settings: &Settings,
        scripts: &Scripts,
    ) -> Option<Step> {
        let kinds = step_kinds(s);
        if kinds.is_empty() {
            self.err(p, "a step needs one of: get, post, put, patch, delete, head, options, think, script, group, loop, if, include");
            return None;
        }
        if kinds.len() > 1 {
            self.err(
                p,
                format!(
                    "a step does one thing, but this one has {}",
                    kinds.join(", ")
                ),
            );
            return None;
        }
        let kind = kinds[0];
        if !METHODS.contains(&kind) {
            let request_only: Vec<&str> = [
                ("target", s.target.is_some()),
                ("headers", !s.headers.is_empty()),
                ("query", !s.query.is_empty()),
                ("json", s.json.is_some()),
                ("form", s.form.is_some()),
                ("body", s.body.is_some()),
                ("extract", !s.extract.is_empty()),
                ("check", s.check.is_some()),
                ("retry", s.retry.is_some()),
                ("timeout", s.timeout.is_some()),
            ]
            .into_iter()
            .filter_map(|(k, set)| set.then_some(k))
            .collect();
            if let Some(k) = request_only.first() {
                self.err_key(
                    &join_key(p, k),
                    format!("`{k}` applies only to request steps, not to `{kind}`"),
                );
            }
            if kind != "if" && (s.then.is_some() || s.otherwise.is_some()) {
                self.err(p, "`then` and `else` belong to an `if` step");
            }
        }
        if let Some(name) = &s.name {
            if !valid_name(name) {
                self.err(&join_key(p, "name"), format!("step name `{name}` may use only letters, digits, `_` and `-` (it becomes a metric key)"));
            } else if name == "iteration" {
                self.err(&join_key(p, "name"), "`iteration` is reserved for the whole-journey metric; choose another step name");
            } else {
                let here = match &jc.include_site {
                    Some(site) => self.idx.value(site),
                    None => self.idx.value(&join_key(p, "name")),
                };
                if let Some(first) = jc.names.get(name) {
                    let journey = jc.stack.first().cloned().unwrap_or_default();
                    self.diags.push(Diagnostic::new(
                        self.file,
                        here,
                        format!("duplicate step name `{name}` in journey `{journey}` (first used at line {})", first.line),
                    ).with_hint("step names are metric keys and must be unique within a journey"));
                } else {
                    jc.names.insert(name.clone(), here);
                }
            }
        }
        match kind {
            "think" => s
                .think
                .as_ref()
                .and_then(|t| self.think(t, &join_key(p, "think")))
                .map(Step::Think),
            "script" => {
                let text = s.script.as_deref().unwrap_or_default();
                self.snippet(scripts, text, &join_key(p, "script"), false, names, jc)
                    .map(Step::Script)
            }
            "group" => {
                let inner = s.group.as_deref().unwrap_or_default();
                Some(Step::Group(self.steps(
                    inner,
                    &join_key(p, "group"),
                    jc,
                    raw,
                    names,
                    origins,
                    named,
                    settings,
                    scripts,
                )))
            }
            "loop" => {
                let l = s.repeat.as_ref()?;
                let lp = join_key(p, "loop");
                let condition = match (&l.count, &l.while_) {
                    (Some(_), None) => None,
                    (None, Some(c)) => {
                        Some(self.snippet(scripts, c, &join_key(&lp, "while"), true, names, jc)?)
                    }
                    _ => {
                        self.err(&lp, "a loop needs exactly one of `count` or `while`");
                        return None;
                    }
                };
                let steps = self.steps(
                    &l.steps,
                    &join_key(&lp, "steps"),
                    jc,
                    raw,
                    names,
                    origins,
                    named,
                    settings,
                    scripts,
                );
                Some(Step::Loop(Box::new(Loop {
                    count: l.count,
                    condition,
                    max: l.max.unwrap_or(1000),
                    steps,
                })))
            }
            "if" => {
                let cond = s.condition.as_deref().unwrap_or_default();
                let condition = self.snippet(scripts, cond, &join_key(p, "if"), true, names, jc);
                if s.then.is_none() {
                    self.err(p, "an `if` step needs `then:` steps");
                }
                let then = self.steps(
                    s.then.as_deref().unwrap_or_default(),
                    &join_key(p, "then"),
                    jc,
                    raw,
                    names,
                    origins,
                    named,
                    settings,
                    scripts,
                );
                let otherwise = self.steps(
                    s.otherwise.as_deref().unwrap_or_default(),
                    &join_key(p, "else"),
                    jc,
                    raw,
                    names,
                    origins,
                    named,
                    settings,
                    scripts,
                );
                Some(Step::If(Box::new(If {
                    condition: condition?,
                    then,
                    otherwise,
                })))
            }
            method => self
                .request(s, p, method, jc, names, origins, named, settings)
                .map(|r| Step::Request(Box::new(r))),
        }
    }

    fn think(&mut self, t: &RawThink, p: &str) -> Option<Think> {
        match t {
            RawThink::Fixed(s) => self.span(p, s).map(Think::Fixed),
            RawThink::Random(r) => match (&r.uniform, &r.normal, &r.exponential) {
                (Some(u), None, None) => match u.parse::<SpanRange>() {
                    Ok(range) => Some(Think::Uniform(range)),
                    Err(e) => {
                        self.err(&join_key(p, "uniform"), e.0);
                        None
                    }
                },
                (None, Some(n), None) => {
                    let mean = self.span(&join_key(p, "normal.mean"), &n.mean);
                    let stddev = self.span(&join_key(p, "normal.stddev"), &n.stddev);
                    Some(Think::Normal {
                        mean: mean?,
                        stddev: stddev?,
                    })
                }
                (None, None, Some(e)) => self
                    .positive_span(&join_key(p, "exponential"), e)
                    .map(Think::Exponential),
                _ => {
                    self.err(
                        p,
                        "a think time needs exactly one of uniform, normal or exponential",
                    );
                    None
                }
            },
        }
    }

    fn resolver<'n>(
        &self,
        names: &'n Names<'n>,
        jc: &'n mut JourneyCtx,
    ) -> impl FnMut(&str) -> Result<VarRef, String> + 'n {
        move |name: &str| {
            if let Some((feed, field)) = name.split_once('.') {
                let Some((fi, f)) = names
                    .feeders
                    .iter()
                    .enumerate()
                    .find(|(_, f)| f.name == feed)
                else {
                    if feed == "env" {
                        return Err("use the env(\"NAME\") helper in a script step for environment variables".into());
                    }
                    let hint = did_you_mean(feed, names.feeders.iter().map(|f| f.name.as_str()))
                        .map(|c| format!("; did you mean `{c}`?"))
                        .unwrap_or_default();
                    return Err(format!(
                        "`{feed}` is not a feeder (define it under `data:`){hint}"
                    ));
                };
                jc.feeders.insert(fi);
                if f.columns.is_empty() {
                    // The feeder failed to load; that problem is already reported.
                    return Ok(VarRef::Feed {
                        feeder: fi,
                        field: 0,
                    });
                }
                return match f.column(field) {
                    Some(ci) => Ok(VarRef::Feed {
                        feeder: fi,
                        field: ci,
                    }),
                    None => Err(format!(
                        "feeder `{feed}` has no column `{field}` (it has: {})",
                        f.columns.join(", ")
                    )),
                };
            }
            match name {
                "vu" => Ok(VarRef::VuId),
                "iteration" => Ok(VarRef::Iteration),
                "uuid" => Ok(VarRef::Uuid),
                "timestamp_ms" => Ok(VarRef::TimestampMs),
                n if names.known.contains(n) => Ok(VarRef::Var(n.into())),
                n => {
                    let declared_by_let = names.source.contains(&format!("let {n} "))
                        || names.source.contains(&format!("let {n}="));
                    let hint = if declared_by_let {
                        format!(
                            "; a snippet's `let {n}` is local to that snippet: write `{n} = …` \
                             without `let` to keep the value for later steps"
                        )
                    } else {
                        did_you_mean(n, names.known.iter().map(String::as_str))
                            .map(|c| format!("; did you mean `{c}`?"))
                            .unwrap_or_default()
                    };
                    Err(format!(
                        "nothing sets variable `{n}`: no `vars` entry, extraction or script assigns it{hint}"
                    ))
                }
            }
        }
    }

    fn template(
        &mut self,
        text: &str,
        path: &str,
        esc: Escape,
        names: &Names<'_>,
        jc: &mut JourneyCtx,
    ) -> Option<Template> {
        let result = {
            let mut r = self.resolver(names, jc);
            Template::compile(text, esc, &mut r)
        };
        match result {
            Ok(t) => Some(t),
            Err(e) => {
                let mut pos = self.idx.value(path);
                // Point into the string when it sits on one line.
                let line = self
                    .text
                    .lines()
                    .nth(pos.line.saturating_sub(1))
                    .unwrap_or("");
                if let Some(found) = line
                    .get(pos.col.saturating_sub(1)..)
                    .and_then(|rest| rest.find(&text[e.offset..]))
                {
                    pos.col += found;
                }
                self.diags.push(Diagnostic::new(self.file, pos, e.message));
                None
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn request(
        &mut self,
        s: &RawStep,
        p: &str,
        method: &str,
        jc: &mut JourneyCtx,
        names: &Names<'_>,
        origins: &mut Vec<Origin>,
        named: &HashMap<String, usize>,
        settings: &Settings,
    ) -> Option<Request> {
        let url_path = join_key(p, method);
        let url = match method {
            "get" => s.get.as_deref(),
            "post" => s.post.as_deref(),
            "put" => s.put.as_deref(),
            "patch" => s.patch.as_deref(),
            "delete" => s.delete.as_deref(),
            "head" => s.head.as_deref(),
            _ => s.options.as_deref(),
        }
        .unwrap_or_default();
        let name = match &s.name {
            Some(n) => n.clone(),
            None => {
                self.err_hint(
                    p,
                    "a request step needs a `name` (it becomes the metric key `flow.name`)",
                    Some("add e.g. `name: login`".into()),
                );
                return None;
            }
        };
        let mut ok = true;
        // Which server, and the path part.
        let (origin, path_text) = if url.starts_with("http://") || url.starts_with("https://") {
            let after_scheme = url.find("://").map_or(0, |i| i + 3);
            let path_start = url[after_scheme..]
                .find('/')
                .map_or(url.len(), |i| after_scheme + i);
            let (base, rest) = url.split_at(path_start);
            if base.contains("{{") {
                self.err(
                    &url_path,
                    "templates are not allowed in the scheme, host or port of a URL",
                );
                return None;
            }
            match parse_origin(base, base) {
                Ok(o) => {
                    let idx = origins
                        .iter()
                        .position(|x| x.base == o.base && x.prefix.is_empty())
                        .unwrap_or_else(|| {
                            origins.push(o);
                            origins.len() - 1
                        });
                    (idx, if rest.is_empty() { "/" } else { rest })
                }
                Err(e) => {
                    self.err(&url_path, format!("invalid URL `{url}`: {e}"));
                    return None;
                }
            }
        } else if url.starts_with('/') {
            let target = s.target.as_deref().unwrap_or("default");
            match named.get(target) {
                Some(&i) => (i, url),
                None if target == "default" && self.target_invalid => return None,
                None if target == "default" => {
                    self.err_hint(
                        &url_path,
                        format!("`{url}` is a relative path but the scenario has no `target`"),
                        Some("set `target: http://host:port` or pass --target".into()),
                    );
                    return None;
                }
                None => {
                    let hint = did_you_mean(target, named.keys().map(String::as_str))
                        .map(|c| format!("did you mean `{c}`?"));
                    self.err_hint(
                        &join_key(p, "target"),
                        format!("unknown target `{target}`: define it under `targets:`"),
                        hint,
                    );
                    return None;
                }
            }
        } else {
            self.err(
                &url_path,
                format!(
                    "`{url}` is neither a path starting with `/` nor an http:// or https:// URL"
                ),
            );
            return None;
        };
        let prefix = origins[origin].prefix.clone();
        let mut path = Template::literal(&prefix);
        match self.template(path_text, &url_path, Escape::None, names, jc) {
            Some(t) => path.append(t),
            None => ok = false,
        }
        let mut sep = if path_text.contains('?') { '&' } else { '?' };
        for (k, v) in &s.query {
            path.push_literal(&sep.to_string());
            sep = '&';
            let mut key = Vec::new();
            super::template::url_encode(k, &mut key);
            path.push_literal(&String::from_utf8_lossy(&key));
            path.push_literal("=");
            match self.template(
                v,
                &join_key(&join_key(p, "query"), k),
                Escape::Url,
                names,
                jc,
            ) {
                Some(t) => path.append(t),
                None => ok = false,
            }
        }

        // Headers: defaults, then the step's (same name replaces).
        let mut headers: Vec<(HeaderName, HeaderTemplate)> = Vec::new();
        for (name, v) in &self.default_headers {
            headers.push((name.clone(), v.clone_template()));
        }
        let mut has_content_type = headers.iter().any(|(n, _)| n == http::header::CONTENT_TYPE);
        for (k, v) in &s.headers {
            let hp = join_key(&join_key(p, "headers"), k);
            let Ok(hn) = HeaderName::from_bytes(k.as_bytes()) else {
                self.err_key(&hp, format!("`{k}` is not a valid header name"));
                ok = false;
                continue;
            };
            let Some(t) = self.template(v, &hp, Escape::None, names, jc) else {
                ok = false;
                continue;
            };
            let ht = match t.as_literal() {
                Some(lit) => match HeaderValue::from_str(lit) {
                    Ok(hv) => HeaderTemplate::Static(hv),
                    Err(_) => {
                        self.err(&hp, format!("`{lit}` is not a valid header value"));
                        ok = false;
                        continue;
                    }
                },
                None => HeaderTemplate::Dynamic(t),
            };
            self.note_credential(&hn, &ht);
            if hn == http::header::CONTENT_TYPE {
                has_content_type = true;
            }
            headers.retain(|(n, _)| *n != hn);
            headers.push((hn, ht));
        }
        let ct = |v: &'static str| (!has_content_type).then(|| HeaderValue::from_static(v));

        let bodies = [s.json.is_some(), s.form.is_some(), s.body.is_some()]
            .iter()
            .filter(|b| **b)
            .count();
        if bodies > 1 {
            self.err(
                p,
                "a request has one body: use one of `json`, `form` or `body`",
            );
            ok = false;
        }
        let body = if let Some(j) = &s.json {
            let r = {
                let mut r = self.resolver(names, jc);
                Template::compile_json(j, &mut r)
            };
            match r {
                Ok(t) => to_body(t, ct("application/json")),
                Err(e) => {
                    self.err(&join_key(p, "json"), e.message);
                    ok = false;
                    Body::Empty
                }
            }
        } else if let Some(form) = &s.form {
            let mut t = Template::literal("");
            for (i, (k, v)) in form.iter().enumerate() {
                if i > 0 {
                    t.push_literal("&");
                }
                let mut key = Vec::new();
                super::template::url_encode(k, &mut key);
                t.push_literal(&String::from_utf8_lossy(&key));
                t.push_literal("=");
                match self.template(
                    v,
                    &join_key(&join_key(p, "form"), k),
                    Escape::Url,
                    names,
                    jc,
                ) {
                    Some(vt) => t.append(vt),
                    None => ok = false,
                }
            }
            to_body(t, ct("application/x-www-form-urlencoded"))
        } else if let Some(b) = &s.body {
            match self.template(b, &join_key(p, "body"), Escape::None, names, jc) {
                Some(t) => to_body(t, None),
                None => {
                    ok = false;
                    Body::Empty
                }
            }
        } else {
            Body::Empty
        };

        let mut extract = Vec::new();
        for (var, e) in &s.extract {
            let ep = join_key(&join_key(p, "extract"), var);
            if BUILTINS.contains(&var.as_str()) || !valid_ident(var) {
                self.err_key(&ep, format!("`{var}` cannot be a variable name: use letters, digits and `_`, not starting with a digit, and not a built-in"));
                ok = false;
                continue;
            }
            let source = match e {
                RawExtract::Path(path) => self
                    .json_path(path, &ep)
                    .map(|jp| ExtractSource::Json(jp, path.clone())),
                RawExtract::Spec(spec) => {
                    if spec.secret {
                        self.secrets.add_var(var);
                    }
                    match (&spec.json, &spec.regex, &spec.header, &spec.cookie) {
                        (Some(j), None, None, None) => self
                            .json_path(j, &join_key(&ep, "json"))
                            .map(|jp| ExtractSource::Json(jp, j.clone())),
                        (None, Some(r), None, None) => match Regex::new(r) {
                            Ok(re) => Some(ExtractSource::Regex(re)),
                            Err(err) => {
                                self.err(
                                    &join_key(&ep, "regex"),
                                    format!("invalid regex: {}", first_line(&err.to_string())),
                                );
                                None
                            }
                        },
                        (None, None, Some(h), None) => match HeaderName::from_bytes(h.as_bytes()) {
                            Ok(hn) => Some(ExtractSource::Header(hn)),
                            Err(_) => {
                                self.err(
                                    &join_key(&ep, "header"),
                                    format!("`{h}` is not a valid header name"),
                                );
                                None
                            }
                        },
                        (None, None, None, Some(c)) => Some(ExtractSource::Cookie(c.clone())),
                        _ => {
                            self.err(
                                &ep,
                                "an extraction needs exactly one of json, regex, header or cookie",
                            );
                            None
                        }
                    }
                }
            };
            match source {
                Some(source) => extract.push(Extract {
                    var: var.as_str().into(),
                    source,
                }),
                None => ok = false,
            }
        }

        let mut checks = Vec::new();
        if let Some(c) = &s.check {
            let cp = join_key(p, "check");
            if let Some(st) = &c.status {
                let codes = st.clone().into_vec();
                if codes.is_empty() || codes.iter().any(|c| !(100..=599).contains(c)) {
                    self.err(
                        &join_key(&cp, "status"),
                        "status codes must be between 100 and 599",
                    );
                    ok = false;
                }
                checks.push(Check::Status(codes));
            }
            for (path, expected) in &c.json {
                match self.json_path(path, &join_key(&join_key(&cp, "json"), path)) {
                    Some(jp) => checks.push(Check::JsonEq(jp, path.clone(), expected.clone())),
                    None => ok = false,
                }
            }
            for (i, path) in c.exists.iter().enumerate() {
                match self.json_path(path, &join_index(&join_key(&cp, "exists"), i)) {
                    Some(jp) => checks.push(Check::Exists(jp, path.clone())),
                    None => ok = false,
                }
            }
            if let Some(b) = &c.body_contains {
                checks.push(Check::BodyContains(b.clone()));
            }
            for (h, v) in &c.headers {
                match HeaderName::from_bytes(h.as_bytes()) {
                    Ok(hn) => checks.push(Check::Header(hn, v.clone())),
                    Err(_) => {
                        self.err_key(
                            &join_key(&join_key(&cp, "headers"), h),
                            format!("`{h}` is not a valid header name"),
                        );
                        ok = false;
                    }
                }
            }
            if let Some(m) = &c.max_latency {
                match self.positive_span(&join_key(&cp, "max_latency"), m) {
                    Some(d) => checks.push(Check::MaxLatency(d)),
                    None => ok = false,
                }
            }
        }

        let retry = s
            .retry
            .as_ref()
            .and_then(|r| self.retry(r, &join_key(p, "retry")));
        let timeout = match &s.timeout {
            Some(t) => self.positive_span(&join_key(p, "timeout"), t)?,
            None => settings.timeout,
        };
        if !ok {
            return None;
        }
        let keeps_body = extract
            .iter()
            .any(|e| matches!(e.source, ExtractSource::Json(..) | ExtractSource::Regex(_)))
            || checks.iter().any(|c| {
                matches!(
                    c,
                    Check::JsonEq(..) | Check::Exists(..) | Check::BodyContains(_)
                )
            });
        let parses_json = extract
            .iter()
            .any(|e| matches!(e.source, ExtractSource::Json(..)))
            || checks
                .iter()
                .any(|c| matches!(c, Check::JsonEq(..) | Check::Exists(..)));
        let id = StepId(jc.requests.len() as u32);
        let method =
            Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap_or(Method::GET);
        jc.requests.push(RequestInfo {
            name,
            method: method.clone(),
            url: url.to_string(),
        });
        Some(Request {
            id,
            method,
            origin,
            path,
            headers,
            body,
            extract,
            checks,
            retry,
            timeout,
            keeps_body,
            parses_json,
        })
    }

    fn json_path(&mut self, text: &str, path: &str) -> Option<JsonPath> {
        match parse_json_path(text) {
            Ok(jp) => Some(jp),
            Err(e) => {
                let hint = text
                    .split('.')
                    .skip(1)
                    .find(|seg| seg.contains('-') && !seg.contains('['))
                    .map(|seg| {
                        format!("names with `-` need brackets: `['{seg}']` instead of `.{seg}`")
                    });
                let msg = format!("invalid JSONPath `{text}`: {}", first_line(&e.to_string()));
                self.err_hint(path, msg, hint);
                None
            }
        }
    }

    fn retry(&mut self, r: &RawRetry, p: &str) -> Option<Retry> {
        let mut out = Retry {
            max: r.max,
            statuses: Vec::new(),
            any_5xx: false,
            timeout: false,
            reset: false,
            connect: false,
            backoff: SpanRange {
                low: Duration::from_millis(100),
                high: Duration::from_secs(2),
            },
        };
        if r.on.is_empty() {
            out.any_5xx = true;
            out.timeout = true;
            out.reset = true;
            out.connect = true;
        }
        for (i, on) in r.on.iter().enumerate() {
            match on.0.as_str() {
                "5xx" => out.any_5xx = true,
                "timeout" => out.timeout = true,
                "reset" => out.reset = true,
                "connect" => out.connect = true,
                n => match n.parse::<u16>() {
                    Ok(code) if (100..=599).contains(&code) => out.statuses.push(code),
                    _ => {
                        self.err(&join_index(&join_key(p, "on"), i), format!("cannot retry on `{n}`: expected a status code, 5xx, timeout, reset or connect"));
                        return None;
                    }
                },
            }
        }
        if let Some(b) = &r.backoff {
            match b.parse::<SpanRange>() {
                Ok(range) => out.backoff = range,
                Err(e) => {
                    self.err(&join_key(p, "backoff"), e.0);
                    return None;
                }
            }
        }
        Some(out)
    }

    fn flow(
        &mut self,
        name: &str,
        f: &RawFlow,
        journeys: &HashMap<String, usize>,
        raw: &RawScenario,
        ov: &Overrides,
    ) -> Option<Flow> {
        let p = format!("flows.{name}");
        let mut ok = true;
        if !valid_name(name) {
            self.err_key(&p, format!("flow name `{name}` may use only letters, digits, `_` and `-` (it becomes a metric key)"));
            ok = false;
        }
        let journey = match &f.journey {
            None => {
                self.err(&p, format!("flow `{name}` needs a `journey`"));
                None
            }
            Some(j) => match journeys.get(j) {
                Some(&i) => Some(i),
                None => {
                    let hint = did_you_mean(j, raw.journeys.keys().map(String::as_str))
                        .map(|c| format!("did you mean `{c}`?"));
                    if raw.journeys.contains_key(j) {
                        // Defined but invalid: its own errors are reported already.
                    } else {
                        self.err_hint(
                            &join_key(&p, "journey"),
                            format!("flow `{name}` uses undefined journey `{j}`"),
                            hint,
                        );
                    }
                    None
                }
            },
        };
        let duration = match &f.duration {
            Some(d) => self.positive_span(&join_key(&p, "duration"), d),
            None => ov.duration,
        };
        let start = f
            .start
            .as_ref()
            .and_then(|s| self.span(&join_key(&p, "start"), s))
            .unwrap_or_default();
        let kind = match f.kind.as_deref() {
            None | Some("live") => FlowKind::Live,
            Some("background") => FlowKind::Background,
            Some(other) => {
                self.err(
                    &join_key(&p, "kind"),
                    format!("unknown flow kind `{other}`: expected live or background"),
                );
                ok = false;
                FlowKind::Live
            }
        };
        let model = match (&f.rate, &f.vus) {
            (Some(_), Some(_)) => {
                self.err(&p, format!("flow `{name}` sets both `rate` (open model) and `vus` (closed model): choose one"));
                None
            }
            (None, None) => {
                self.err_hint(
                    &p,
                    format!("flow `{name}` needs a load model"),
                    Some("set `rate: 50/s` (open) or `vus: 10` (closed)".into()),
                );
                None
            }
            (Some(rate), None) => {
                for (k, set) in [
                    ("pace", f.pace.is_some()),
                    ("think", f.think.is_some()),
                    ("iterations", f.iterations.is_some()),
                    ("per_vu_iterations", f.per_vu_iterations.is_some()),
                ] {
                    if set {
                        self.err_key(&join_key(&p, k), format!("`{k}` applies to closed flows (`vus`); an open flow's pace is its `rate`"));
                        ok = false;
                    }
                }
                let arrivals = match f.arrivals.as_deref() {
                    None | Some("uniform") => Arrivals::Uniform,
                    Some("poisson") => Arrivals::Poisson,
                    Some(other) => {
                        self.err(
                            &join_key(&p, "arrivals"),
                            format!("unknown arrivals `{other}`: expected uniform or poisson"),
                        );
                        ok = false;
                        Arrivals::Uniform
                    }
                };
                let curve = self.curve(rate, &join_key(&p, "rate"), duration, true, &p);
                if f.max_vus == Some(0) {
                    self.err(&join_key(&p, "max_vus"), "max_vus must be at least 1");
                    ok = false;
                }
                curve.map(|curve| {
                    let peak = curve.peak();
                    LoadModel::Open(Open {
                        curve,
                        arrivals,
                        max_vus: f.max_vus.unwrap_or_else(|| default_max_vus(peak)),
                    })
                })
            }
            (None, Some(vus)) => {
                for (k, set) in [
                    ("arrivals", f.arrivals.is_some()),
                    ("max_vus", f.max_vus.is_some()),
                ] {
                    if set {
                        self.err_key(
                            &join_key(&p, k),
                            format!("`{k}` applies to open flows (`rate`)"),
                        );
                        ok = false;
                    }
                }
                let pace = f
                    .pace
                    .as_ref()
                    .and_then(|t| self.positive_span(&join_key(&p, "pace"), t));
                let think = f
                    .think
                    .as_ref()
                    .and_then(|t| self.think(t, &join_key(&p, "think")));
                let bounded = f.iterations.is_some() || f.per_vu_iterations.is_some();
                // An iteration-bounded batch without a duration may run up to a day.
                let duration = duration.or(bounded.then_some(Duration::from_secs(86_400)));
                for (k, v) in [
                    ("iterations", f.iterations),
                    ("per_vu_iterations", f.per_vu_iterations),
                ] {
                    if v == Some(0) {
                        self.err(&join_key(&p, k), format!("`{k}` must be at least 1"));
                        ok = false;
                    }
                }
                self.curve(vus, &join_key(&p, "vus"), duration, false, &p)
                    .map(|curve| {
                        LoadModel::Closed(Closed {
                            curve,
                            pace,
                            think,
                            iterations: f.iterations,
                            per_vu_iterations: f.per_vu_iterations,
                        })
                    })
            }
        };
        if !ok {
            return None;
        }
        let seed = f.seed.unwrap_or_else(|| {
            name.bytes().fold(0xcbf29ce484222325, |h, b| {
                (h ^ b as u64).wrapping_mul(0x100000001b3)
            })
        });
        Some(Flow {
            name: name.to_string(),
            journey: journey?,
            model: model?,
            start,
            kind,
            tags: f.tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            seed,
        })
    }

    /// Parses a level: a rate (`50/s`) for open flows or a VU count for closed ones.
    fn level(&mut self, s: &Scalar, path: &str, is_rate: bool) -> Option<f64> {
        if is_rate {
            match s.0.parse::<Rate>() {
                Ok(r) => Some(r.get()),
                Err(e) => {
                    self.err(path, e.0);
                    None
                }
            }
        } else {
            match s.0.trim().parse::<i64>() {
                Ok(n) if n >= 0 => Some(n as f64),
                Ok(n) => {
                    self.err(
                        path,
                        format!("VU count {n} is negative: expected 0 or more"),
                    );
                    None
                }
                Err(_) => {
                    self.err(
                        path,
                        format!(
                            "invalid VU count `{}`: expected a whole number like 10",
                            s.0
                        ),
                    );
                    None
                }
            }
        }
    }

    fn curve(
        &mut self,
        load: &OneOrStages,
        path: &str,
        duration: Option<Duration>,
        is_rate: bool,
        flow_path: &str,
    ) -> Option<Curve> {
        let what = if is_rate { "rate" } else { "VU count" };
        let curve = match load {
            OneOrStages::One(s) => {
                let level = self.level(s, path, is_rate)?;
                let Some(d) = duration else {
                    if self.idx.has(&join_key(flow_path, "duration")) {
                        // A duration was written but did not parse; that is reported already.
                        return None;
                    }
                    self.err_hint(flow_path, format!("a constant {what} needs a `duration` (or stages)"), Some("add `duration: 1m`, pass --duration, or use stages like `[{ to: 50/s, over: 30s }, { hold: 2m }]`".into()));
                    return None;
                };
                Curve::constant(level, d.as_secs_f64())
            }
            OneOrStages::Stages(stages) => {
                if stages.is_empty() {
                    self.err(path, format!("the {what} has no stages"));
                    return None;
                }
                let mut pieces = Vec::new();
                let mut cur = 0.0;
                let mut ok = true;
                for (i, st) in stages.iter().enumerate() {
                    let sp = join_index(path, i);
                    match (&st.to, &st.over, &st.hold, &st.at, &st.sine) {
                        (Some(to), Some(over), None, None, None) => {
                            let level = self.level(to, &join_key(&sp, "to"), is_rate);
                            let len = self.span(&join_key(&sp, "over"), over);
                            match (level, len) {
                                (Some(l), Some(d)) => {
                                    pieces.push(Piece {
                                        len: d.as_secs_f64(),
                                        shape: Shape::Linear { from: cur, to: l },
                                    });
                                    cur = l;
                                }
                                _ => ok = false,
                            }
                        }
                        (None, None, Some(hold), None, None) => {
                            match self.span(&join_key(&sp, "hold"), hold) {
                                Some(d) => pieces.push(Piece {
                                    len: d.as_secs_f64(),
                                    shape: Shape::Linear { from: cur, to: cur },
                                }),
                                None => ok = false,
                            }
                        }
                        (None, None, hold, Some(at), None) => {
                            match self.level(at, &join_key(&sp, "at"), is_rate) {
                                Some(l) => cur = l,
                                None => ok = false,
                            }
                            if let Some(h) = hold {
                                match self.span(&join_key(&sp, "hold"), h) {
                                    Some(d) => pieces.push(Piece {
                                        len: d.as_secs_f64(),
                                        shape: Shape::Linear { from: cur, to: cur },
                                    }),
                                    None => ok = false,
                                }
                            }
                        }
                        (None, None, None, None, Some(sine)) => {
                            let swp = join_key(&sp, "sine");
                            let amp =
                                self.level(&sine.amplitude, &join_key(&swp, "amplitude"), is_rate);
                            let period =
                                self.positive_span(&join_key(&swp, "period"), &sine.period);
                            let len = self.span(&join_key(&swp, "for"), &sine.length);
                            match (amp, period, len) {
                                (Some(a), Some(per), Some(l)) if a <= cur => pieces.push(Piece {
                                    len: l.as_secs_f64(),
                                    shape: Shape::Sine {
                                        base: cur,
                                        amplitude: a,
                                        period: per.as_secs_f64(),
                                    },
                                }),
                                (Some(_), Some(_), Some(_)) => {
                                    self.err(&join_key(&swp, "amplitude"), format!("the amplitude exceeds the current {what}, so the curve would go below zero"));
                                    ok = false;
                                }
                                _ => ok = false,
                            }
                        }
                        (Some(_), None, None, None, None) => {
                            self.err(&sp, "a `to` stage needs `over` (how long the ramp takes)");
                            ok = false;
                        }
                        _ => {
                            self.err(&sp, "a stage is one of `{ to: X, over: T }`, `{ hold: T }`, `{ at: X }`, `{ at: X, hold: T }` or `{ sine: { amplitude, period, for } }`");
                            ok = false;
                        }
                    }
                }
                if !ok {
                    return None;
                }
                let curve = Curve::new(pieces);
                match duration {
                    Some(d) if d.as_secs_f64() < curve.len() => curve.truncated(d.as_secs_f64()),
                    _ => curve,
                }
            }
        };
        if curve.peak() <= 0.0 || curve.total() <= 0.0 {
            let zero = if is_rate {
                "the rate is zero"
            } else {
                "the VU count is zero"
            };
            self.err(
                path,
                format!("{zero} for the whole flow, so it would never run an iteration"),
            );
            return None;
        }
        Some(curve)
    }
}

impl HeaderTemplate {
    fn clone_template(&self) -> HeaderTemplate {
        match self {
            HeaderTemplate::Static(v) => HeaderTemplate::Static(v.clone()),
            HeaderTemplate::Dynamic(t) => HeaderTemplate::Dynamic(t.clone()),
        }
    }
}

impl Validator<'_> {
    /// Marks what a credential header (Authorization and the like) carries as secret.
    fn note_credential(&mut self, name: &HeaderName, value: &HeaderTemplate) {
        if !CREDENTIAL_HEADERS.contains(&name.as_str()) {
            return;
        }
        match value {
            HeaderTemplate::Static(v) => {
                if let Ok(text) = v.to_str() {
                    self.secrets.add_literal(text);
                }
            }
            HeaderTemplate::Dynamic(t) => {
                for r in t.refs() {
                    match r {
                        VarRef::Var(n) => self.secrets.add_var(n),
                        VarRef::Feed { feeder, field }
                            if !self.secrets.fields.contains(&(*feeder, *field)) =>
                        {
                            self.secrets.fields.push((*feeder, *field));
                        }
                        _ => {}
                    }
                }
            }
        }
    }

    /// Initial variables: literal values, or `{ env: NAME, default: .., secret: true }` /
    /// `{ value: .., secret: true }` specs.
    fn vars(
        &mut self,
        raw: &IndexMap<String, serde_json::Value>,
    ) -> Vec<(ImmutableString, serde_json::Value)> {
        const SPEC_KEYS: [&str; 4] = ["env", "value", "default", "secret"];
        let mut out = Vec::with_capacity(raw.len());
        for (name, v) in raw {
            let p = join_key("vars", name);
            let spec = v.as_object().filter(|m| {
                !m.is_empty()
                    && m.keys().all(|k| SPEC_KEYS.contains(&k.as_str()))
                    && (m.contains_key("env") || m.contains_key("value"))
            });
            let Some(spec) = spec else {
                out.push((name.as_str().into(), v.clone()));
                continue;
            };
            let secret = match spec.get("secret") {
                None => false,
                Some(serde_json::Value::Bool(b)) => *b,
                Some(_) => {
                    self.err(&join_key(&p, "secret"), "`secret` must be true or false");
                    false
                }
            };
            let value = match (spec.get("env"), spec.get("value")) {
                (Some(_), Some(_)) => {
                    self.err_key(
                        &p,
                        format!("variable `{name}` has both `env` and `value`: keep one"),
                    );
                    continue;
                }
                (Some(serde_json::Value::String(env)), None) => match std::env::var(env) {
                    Ok(text) => serde_json::Value::String(text),
                    Err(_) => match spec.get("default") {
                        Some(d) => d.clone(),
                        None => {
                            self.err(
                                &join_key(&p, "env"),
                                format!("environment variable `{env}` is not set: export it, or give `default:`"),
                            );
                            continue;
                        }
                    },
                },
                (Some(_), None) => {
                    self.err(
                        &join_key(&p, "env"),
                        "`env` must name an environment variable",
                    );
                    continue;
                }
                (None, Some(v)) => v.clone(),
                (None, None) => continue,
            };
            if secret {
                self.secrets.add_var(name);
                match &value {
                    serde_json::Value::String(s) => self.secrets.add_literal(s),
                    other => self.secrets.add_literal(&other.to_string()),
                }
            }
            out.push((name.as_str().into(), value));
        }
        out
    }

    /// Compiles `defaults.headers`; they must be literal, since a template there could not be
    /// checked against any one journey's variables.
    fn compile_default_headers(&mut self, d: &RawDefaults) -> Vec<(HeaderName, HeaderTemplate)> {
        let v = self;
        let mut out = Vec::new();
        for (k, val) in &d.headers {
            let Ok(name) = HeaderName::from_bytes(k.as_bytes()) else {
                continue;
            };
            if !placeholders(val).map(|p| p.is_empty()).unwrap_or(false) {
                v.err(
                    &format!("defaults.headers.{k}"),
                    "default header values must be literal; put templated headers on the steps",
                );
                continue;
            }
            match HeaderValue::from_str(val) {
                Ok(hv) => {
                    let ht = HeaderTemplate::Static(hv);
                    v.note_credential(&name, &ht);
                    out.push((name, ht));
                }
                Err(_) => v.err(
                    &format!("defaults.headers.{k}"),
                    format!("`{val}` is not a valid header value"),
                ),
            }
        }
        out
    }
}

fn to_body(t: Template, ct: Option<HeaderValue>) -> Body {
    match t.as_literal() {
        Some(lit) => Body::Static(Bytes::from(lit.to_string()), ct),
        None => Body::Dynamic(t, ct),
    }
}

fn default_max_vus(peak_rate: f64) -> u64 {
    // Enough for every arrival of two seconds at peak to be in flight at once, at least 100.
    ((peak_rate * 2.0).ceil() as u64).max(100)
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn valid_ident(s: &str) -> bool {
    s.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn step_kinds(s: &RawStep) -> Vec<&'static str> {
    let mut k = Vec::new();
    for (name, set) in [
        ("get", s.get.is_some()),
        ("post", s.post.is_some()),
        ("put", s.put.is_some()),
        ("patch", s.patch.is_some()),
        ("delete", s.delete.is_some()),
        ("head", s.head.is_some()),
        ("options", s.options.is_some()),
        ("think", s.think.is_some()),
        ("script", s.script.is_some()),
        ("group", s.group.is_some()),
        ("loop", s.repeat.is_some()),
        ("if", s.condition.is_some()),
        ("include", s.include.is_some()),
    ] {
        if set {
            k.push(name);
        }
    }
    k
}

fn collect_names(steps: &[RawStep], out: &mut HashSet<String>) {
    for s in steps {
        out.extend(s.extract.keys().cloned());
        if let Some(sc) = &s.script {
            out.extend(assigned_names(sc, false).map(str::to_string));
        }
        for inner in [&s.group, &s.then, &s.otherwise].into_iter().flatten() {
            collect_names(inner, out);
        }
        if let Some(l) = &s.repeat {
            collect_names(&l.steps, out);
        }
    }
}

/// Longest JSONPath accepted, in bytes.
pub const MAX_JSONPATH_BYTES: usize = 1024;
/// Most filter selectors (`[?…]`) in one JSONPath.
pub const MAX_JSONPATH_FILTERS: usize = 8;

/// Parses a JSONPath. serde_json_path 0.7 can panic (`unreachable!`) on some malformed paths
/// (found by fuzzing); a scenario must never crash validation, so a panic is an invalid path.
///
/// Its parser also backtracks for seconds on deeply nested filters (also found by fuzzing), so a
/// path longer than [`MAX_JSONPATH_BYTES`] or with more than [`MAX_JSONPATH_FILTERS`] filter
/// selectors is refused before parsing; real extractions are far smaller.
pub fn parse_json_path(text: &str) -> Result<JsonPath, String> {
    if text.len() > MAX_JSONPATH_BYTES || text.matches("[?").count() > MAX_JSONPATH_FILTERS {
        return Err(format!(
            "too complex: at most {MAX_JSONPATH_BYTES} bytes and {MAX_JSONPATH_FILTERS} filter selectors (`[?…]`)"
        ));
    }
    let previous = std::panic::take_hook();
    // Keep the parser's panic message off the user's terminal; the diagnostic says what matters.
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(|| JsonPath::parse(text));
    std::panic::set_hook(previous);
    match result {
        Ok(Ok(p)) => Ok(p),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("the JSONPath parser could not handle it".to_string()),
    }
}

/// Parses `http[s]://host[:port][/prefix]` into an origin.
pub fn parse_origin(name: &str, url: &str) -> Result<Origin, String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e: http::uri::InvalidUri| e.to_string())?;
    let https = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        Some(other) => {
            return Err(format!(
                "unsupported scheme `{other}`: expected http or https"
            ));
        }
        None => return Err("expected an absolute URL like http://127.0.0.1:8080".into()),
    };
    let host = uri
        .host()
        .filter(|h| !h.is_empty())
        .ok_or("the URL has no host")?;
    // The `http` crate reads a port that does not fit 16 bits as no port at all: a typo like
    // `:65536` must not silently become port 80 and load another service, so read it from the
    // authority's text.
    let written = uri
        .authority()
        .map(|a| a.as_str())
        .and_then(|a| a.rsplit_once(':'))
        // In `[::1]` the last colon is inside the brackets: no port was written.
        .filter(|(h, _)| !h.contains('[') || h.ends_with(']'))
        .map(|(_, p)| p);
    let port = match written {
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("port `{p}` is not a TCP port (1 to 65535)"))?,
        None => {
            if https {
                443
            } else {
                80
            }
        }
    };
    if uri.query().is_some() {
        return Err("a target URL cannot have a query string".into());
    }
    let prefix = uri.path().trim_end_matches('/').to_string();
    let authority = uri.authority().map(|a| a.as_str()).unwrap_or(host);
    let authority = HeaderValue::from_str(authority)
        .map_err(|_| "the host is not a valid header value".to_string())?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let base = format!(
        "{}://{}",
        if https { "https" } else { "http" },
        uri.authority().map_or(host.as_str(), |a| a.as_str())
    );
    Ok(Origin {
        name: name.to_string(),
        https,
        host,
        port,
        authority,
        base,
        prefix,
    })
}
