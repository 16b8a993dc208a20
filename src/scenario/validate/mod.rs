//! Raw scenario → [`Plan`], collecting every problem with its position.
//!
//! Never stops at the first problem: each section, journey and flow is checked on its own, and
//! everything found is returned together (k6's `Validate() []error`). It never mutates its input.

mod flows;
mod globals;
mod multipart;
mod overrides;
mod request;
mod steps;
mod thresholds;
mod transport;
mod ws;

pub use globals::parse_origin;
pub use overrides::{ForFlow, Overrides};
pub use request::{MAX_JSONPATH_BYTES, MAX_JSONPATH_FILTERS, parse_json_path};
use steps::collect_names;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use http::HeaderName;
use regex::Regex;
use rhai::ImmutableString;

use super::diagnostic::{Diagnostic, Diagnostics};
use super::feeder::{Feeder, Pick};
use super::plan::*;
use super::raw::*;
use super::source::{LocationIndex, Pos, join_key};
use crate::secret::Secrets;
use crate::units::Span;

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
    /// `defaults.redirects`, for steps that do not set their own.
    redirects: u32,
    secrets: Secrets,
    /// Whether the file has flow entries (some may have failed to parse and are reported already).
    pub(crate) flows_written: bool,
    /// A default target was given but is invalid (reported once; relative paths say no more).
    target_invalid: bool,
    /// Every origin requests go to: the named targets first, then absolute URLs as found.
    origins: Vec<Origin>,
    /// Files read besides scripts and feeders (certificates, bodies), for the digest and `k8s`.
    files: Vec<ScenarioFile>,
    /// Target names (`default` for `target`) → index in `origins`.
    named: HashMap<String, usize>,
}

/// What every journey's steps are validated against: the raw scenario (for includes), the names
/// templates may read, the settings and the compiled script library.
#[derive(Clone, Copy)]
struct Shared<'s> {
    raw: &'s RawScenario,
    names: &'s Names<'s>,
    settings: &'s Settings,
    scripts: &'s crate::script::Scripts,
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
            redirects: 10,
            secrets: Secrets::default(),
            flows_written: false,
            target_invalid: false,
            origins: Vec::new(),
            named: HashMap::new(),
            files: Vec::new(),
        }
    }

    /// Reads a file the scenario names (relative to its folder) and records it; an unreadable
    /// one is an error at `path`.
    fn read_file(&mut self, path: &str, file: &str, kind: FileKind) -> Option<Vec<u8>> {
        match std::fs::read(self.dir.join(file)) {
            Ok(bytes) => {
                let f = ScenarioFile {
                    path: file.to_string(),
                    kind,
                };
                if !self.files.contains(&f) {
                    self.files.push(f);
                }
                Some(bytes)
            }
            Err(e) => {
                self.err(
                    path,
                    format!(
                        "cannot read `{file}` (relative to the scenario's folder, {}): {e}",
                        self.dir.display()
                    ),
                );
                None
            }
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
        self.redirects = settings.redirects;
        self.default_headers = self.compile_default_headers(&raw.defaults);
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
                    self.named.insert("default".into(), self.origins.len());
                    self.origins.push(o);
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
                    self.named.insert(name.clone(), self.origins.len());
                    self.origins.push(o);
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
            let cx = Shared {
                raw,
                names: &names,
                settings: &settings,
                scripts: &scripts,
            };
            let steps = self.steps(rj.steps(), &steps_path, &mut jc, &cx);
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
        for (key, journey, kind) in [
            ("setup", &raw.setup, FlowKind::Setup),
            ("teardown", &raw.teardown, FlowKind::Teardown),
        ] {
            let Some(j) = journey else { continue };
            if raw.flows.contains_key(key) {
                self.err(
                    &join_key("flows", key),
                    format!("a flow may not be called `{key}`: the `{key}` journey's results go by that name"),
                );
                continue;
            }
            match journey_index.get(j) {
                Some(&ji) => flows.push(Flow::hook(key, ji, kind)),
                None => {
                    let hint = super::diagnostic::did_you_mean(
                        j,
                        journey_index.keys().map(String::as_str),
                    )
                    .map(|c| format!("did you mean `{c}`?"));
                    self.err_hint(key, format!("`{key}` names undefined journey `{j}`"), hint);
                }
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
        // Setup and teardown can be named by thresholds (under their own names only).
        let mut flow_steps = flow_steps;
        for (name, journey) in [("setup", &raw.setup), ("teardown", &raw.teardown)] {
            if let Some(ji) = journey.as_ref().and_then(|j| journey_index.get(j)) {
                let steps = journeys[*ji]
                    .requests
                    .iter()
                    .map(|r| r.name.as_str())
                    .collect();
                flow_steps.push((name, "", steps));
            }
        }
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
            origins: std::mem::take(&mut self.origins),
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
            shared: std::sync::OnceLock::new(),
            segment: crate::model::Segment::WHOLE,
            digest: String::new(),
            files: std::mem::take(&mut self.files),
        };
        if !self.apply_overrides(&mut plan, ov) {
            return None;
        }
        Some(plan)
    }
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
