//! Scenario files: YAML in, a validated [`Plan`] out, or every problem with its position.
//!
//! Loading is three passes over one text: serde_yaml parses it into a value (syntax errors carry
//! their line and column), a [`LocationIndex`] records where every value stands, and each section,
//! journey and flow is deserialized on its own (so one bad flow does not hide another's problems)
//! before [`validate`] builds the plan.

pub mod curve;
pub mod diagnostic;
pub mod feeder;
pub mod plan;
pub mod quick;
pub mod raw;
pub mod settings;
pub mod socket;
pub mod source;
mod teach;
pub mod template;
pub mod transport;
pub mod validate;

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

pub use diagnostic::{Diagnostic, Diagnostics};
pub use plan::Plan;
pub use source::{LocationIndex, Pos};
pub use validate::{ForFlow, Overrides};

use diagnostic::did_you_mean;
use raw::{RawFlow, RawJourney, RawScenario};

/// Largest scenario file accepted; anything bigger is surely not a hand-written scenario.
pub const MAX_SCENARIO_BYTES: u64 = 4 << 20;

/// Why a scenario could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("cannot read scenario `{path}`: {source}")]
    Read {
        /// The path given.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file was read but has problems.
    #[error("{0}")]
    Invalid(Diagnostics),
}

/// Reads, validates and resolves a scenario file.
pub fn load(path: &Path, ov: &Overrides) -> Result<Plan, ScenarioError> {
    let read_err = |source| ScenarioError::Read {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read_err)?;
    if meta.len() > MAX_SCENARIO_BYTES {
        let d = Diagnostic::new(
            path,
            Pos { line: 1, col: 1 },
            format!(
                "the file is {} bytes; scenarios are limited to {MAX_SCENARIO_BYTES} bytes",
                meta.len()
            ),
        );
        return Err(ScenarioError::Invalid(Diagnostics(vec![d])));
    }
    let bytes = std::fs::read(path).map_err(read_err)?;
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let offset = e.utf8_error().valid_up_to();
            let prefix = &e.as_bytes()[..offset];
            let line = prefix.iter().filter(|&&b| b == b'\n').count() + 1;
            let col = prefix.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
            let d = Diagnostic::new(
                path,
                Pos { line, col },
                "the file is not UTF-8 text (binary data?)",
            );
            return Err(ScenarioError::Invalid(Diagnostics(vec![d])));
        }
    };
    load_str(path, &text, ov).map_err(ScenarioError::Invalid)
}

/// Validates scenario text as if read from `path` (relative files resolve next to it).
pub fn load_str(path: &Path, text: &str, ov: &Overrides) -> Result<Plan, Diagnostics> {
    let mut diags = Diagnostics::default();
    let mut value: serde_yaml::Value = match serde_yaml::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            let mut pos = e.location().map_or(Pos { line: 1, col: 1 }, |l| Pos {
                line: l.line(),
                col: l.column(),
            });
            let msg = strip_location(&e.to_string());
            // serde_yaml places a duplicate key at its mapping's start; point at the duplicate
            // itself (the index keeps a key's last occurrence).
            if let Some((at, key)) = msg.rsplit_once("duplicate entry with key \"") {
                let at = at.trim_end().trim_end_matches(':');
                let key = key.trim_end_matches('"');
                pos = LocationIndex::build(text).key(&source::join_key(at, key));
            }
            let (msg, hint) = if msg.starts_with("duplicate entry") {
                (format!("invalid YAML: {msg}"), None)
            } else {
                teach::syntax_error(text, pos, &msg)
            };
            let d = Diagnostic::new(path, pos, msg);
            diags.push(match hint {
                Some(h) => d.with_hint(h),
                None => d,
            });
            return Err(diags);
        }
    };
    if value.is_null() {
        diags.push(Diagnostic::new(
            path,
            Pos { line: 1, col: 1 },
            "the scenario is empty: expected a map with `journeys` and `flows`",
        ));
        return Err(diags);
    }
    if let Err(e) = value.apply_merge() {
        diags.push(Diagnostic::new(
            path,
            Pos { line: 1, col: 1 },
            format!("invalid YAML merge: {e}"),
        ));
        return Err(diags);
    }
    let idx = LocationIndex::build(text);
    let serde_yaml::Value::Mapping(mut top) = value else {
        diags.push(Diagnostic::new(
            path,
            Pos { line: 1, col: 1 },
            "expected a map at the top of the scenario (name, target, journeys, flows, …)",
        ));
        return Err(diags);
    };
    let journeys_v = top.remove("journeys");
    let flows_v = top.remove("flows");
    let flows_written = flows_v
        .as_ref()
        .and_then(|v| v.as_mapping())
        .is_some_and(|m| !m.is_empty());
    // An unknown top-level key (a misspelled `flows:`) is reported, then left out, so the rest
    // of the file is still read: its `target` must not be lost and blamed in other errors.
    let unknown: Vec<serde_yaml::Value> = top
        .keys()
        .filter(|k| k.as_str().is_none_or(|k| !raw::TOP_KEYS.contains(&k)))
        .cloned()
        .collect();
    if !unknown.is_empty() {
        if let Err(d) =
            section::<RawScenario>(path, &idx, "", serde_yaml::Value::Mapping(top.clone()))
        {
            diags.push(d);
        }
        for k in &unknown {
            top.remove(k);
        }
    }
    let mut raw: RawScenario = match section(path, &idx, "", serde_yaml::Value::Mapping(top)) {
        Ok(r) => r,
        Err(d) => {
            diags.push(d);
            RawScenario::default()
        }
    };
    let mut broken = !diags.is_empty();
    if let Some(j) = journeys_v {
        match entries::<RawJourney>(path, &idx, "journeys", j) {
            Ok((ok, errs)) => {
                broken |= !errs.is_empty();
                diags.0.extend(errs);
                raw.journeys = ok;
            }
            Err(d) => {
                broken = true;
                diags.push(d);
            }
        }
    }
    if let Some(f) = flows_v {
        match entries::<RawFlow>(path, &idx, "flows", f) {
            Ok((ok, errs)) => {
                broken |= !errs.is_empty();
                diags.0.extend(errs);
                raw.flows = ok;
            }
            Err(d) => {
                broken = true;
                diags.push(d);
            }
        }
    }
    let mut v = validate::Validator::new(path, text, &idx);
    v.flows_written = flows_written;
    let plan = v.build(&raw, ov);
    diags.0.extend(v.into_diags().0);
    if broken {
        // Structural errors make some semantic findings (an "undefined" journey that failed to
        // parse) echoes of the real problem; keep only those that still stand on their own.
        diags
            .0
            .retain(|d| !d.message.contains("undefined journey") || !raw.journeys.is_empty());
    }
    diags.finish();
    match plan {
        Some(mut p) if diags.is_empty() => {
            let file = |kind| {
                move |path: &String| plan::ScenarioFile {
                    path: path.clone(),
                    kind,
                }
            };
            p.files = raw
                .scripts
                .iter()
                .map(file(plan::FileKind::Script))
                .chain(
                    raw.data
                        .values()
                        .filter_map(|f| f.csv.as_ref().or(f.jsonl.as_ref()))
                        .map(file(plan::FileKind::Data)),
                )
                .chain(std::mem::take(&mut p.files))
                .collect();
            p.digest = digest(path, text, &p.files, ov);
            Ok(p)
        }
        _ => Err(diags),
    }
}

/// SHA-256 of the scenario text, the files it reads (scripts, data) and the overrides that shape
/// the plan (hex). Two processes with the same digest run the same plan, so their segments can
/// be merged.
fn digest(path: &Path, text: &str, files: &[plan::ScenarioFile], ov: &Overrides) -> String {
    use sha2::{Digest as _, Sha256};
    let mut h = Sha256::new();
    h.update(text.as_bytes());
    h.update([0]);
    let dir = path.parent().unwrap_or(Path::new("."));
    for f in files {
        h.update(f.path.as_bytes());
        h.update([0]);
        h.update(std::fs::read(dir.join(&f.path)).unwrap_or_default());
        h.update([0]);
    }
    let shape = Overrides {
        segment: None,
        ..ov.clone()
    };
    h.update(format!("{shape:?}").as_bytes());
    hex::encode(h.finalize())
}

/// Deserializes each entry of a map section on its own, so every broken entry is reported.
#[allow(clippy::type_complexity)]
fn entries<T: DeserializeOwned>(
    path: &Path,
    idx: &LocationIndex,
    name: &str,
    v: serde_yaml::Value,
) -> Result<(indexmap::IndexMap<String, T>, Vec<Diagnostic>), Diagnostic> {
    let serde_yaml::Value::Mapping(m) = v else {
        if v.is_null() {
            return Ok((indexmap::IndexMap::new(), Vec::new()));
        }
        return Err(Diagnostic::new(
            path,
            idx.value(name),
            format!("`{name}` must be a map of names to definitions"),
        ));
    };
    let mut ok = indexmap::IndexMap::new();
    let mut errs = Vec::new();
    for (k, v) in m {
        let key = match k {
            serde_yaml::Value::String(s) => s,
            other => {
                let text = serde_yaml::to_string(&other)
                    .unwrap_or_default()
                    .trim()
                    .to_string();
                errs.push(Diagnostic::new(
                    path,
                    idx.value(name),
                    format!("`{text}` is not a valid name in `{name}`"),
                ));
                continue;
            }
        };
        let p = source::join_key(name, &key);
        match section::<T>(path, idx, &p, v) {
            Ok(t) => {
                ok.insert(key, t);
            }
            Err(d) => errs.push(d),
        }
    }
    Ok((ok, errs))
}

/// Deserializes one value found at `prefix`, turning serde's error into a positioned diagnostic.
fn section<T: DeserializeOwned>(
    path: &Path,
    idx: &LocationIndex,
    prefix: &str,
    v: serde_yaml::Value,
) -> Result<T, Diagnostic> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let mut p = prefix.to_string();
        for seg in e.path() {
            match seg {
                serde_path_to_error::Segment::Map { key } => p = source::join_key(&p, key),
                serde_path_to_error::Segment::Seq { index } => p = source::join_index(&p, *index),
                _ => {}
            }
        }
        let msg = strip_location(&e.inner().to_string());
        if let Some(rest) = msg.strip_prefix("unknown field `") {
            let field = rest.split('`').next().unwrap_or_default();
            let expected: Vec<&str> = rest
                .split_once("expected ")
                .map(|(_, list)| list.split('`').skip(1).step_by(2).collect())
                .unwrap_or_default();
            let key_path = if p.ends_with(field) {
                p.clone()
            } else {
                source::join_key(&p, field)
            };
            let mut d = Diagnostic::new(path, idx.key(&key_path), format!("unknown key `{field}`"));
            d.hint = match did_you_mean(field, expected.iter().copied()) {
                Some(c) => Some(format!("did you mean `{c}`?")),
                None if !expected.is_empty() => {
                    Some(format!("expected one of: {}", expected.join(", ")))
                }
                None => None,
            };
            return d;
        }
        if let Some(rest) = msg.strip_prefix("missing field `") {
            let field = rest.split('`').next().unwrap_or_default();
            return Diagnostic::new(path, idx.value(&p), format!("missing key `{field}`"));
        }
        let key = p.rsplit('.').next().unwrap_or_default();
        let key = key.split('[').next().unwrap_or(key);
        match teach::type_error(key, &msg) {
            Some((m, hint)) => {
                let d = Diagnostic::new(path, idx.value(&p), m);
                match hint {
                    Some(h) => d.with_hint(h),
                    None => d,
                }
            }
            None => Diagnostic::new(path, idx.value(&p), msg),
        }
    })
}

fn strip_location(msg: &str) -> String {
    match msg.find(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

/// The JSON Schema of the scenario format, generated from the raw types.
pub fn json_schema() -> serde_json::Value {
    let schema = schemars::schema_for!(RawScenario);
    serde_json::to_value(&schema).unwrap_or_default()
}
