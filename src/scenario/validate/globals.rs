//! The scenario's global sections: `defaults` (settings and default headers), `data` (feeders),
//! `scripts`, `vars`, and target URLs.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue};
use indexmap::IndexMap;
use rhai::ImmutableString;

use super::super::diagnostic::Diagnostic;
use super::super::feeder::{self, Feeder, OnExhausted, Pick};
use super::super::plan::*;
use super::super::raw::*;
use super::super::source::{Pos, join_index, join_key};
use super::super::template::{VarRef, placeholders};
use super::*;
use crate::script::{Origin as ScriptOrigin, Scripts};
use crate::secret::CREDENTIAL_HEADERS;

impl Validator<'_> {
    pub(super) fn settings(&mut self, d: &RawDefaults) -> Settings {
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
            arrival_slack: ArrivalSlack::Auto,
            redirects: d.redirects.unwrap_or(10),
            transport: self.transport(d),
            client: H1Client::Lean,
        };
        match d.client.as_deref() {
            None | Some("lean") => {}
            Some("hyper") => s.client = H1Client::Hyper,
            Some(other) => self.err(
                "defaults.client",
                format!("unknown client `{other}`: expected lean or hyper"),
            ),
        }
        if let Some(t) = &d.arrival_slack {
            match self.span("defaults.arrival_slack", t) {
                Some(v) if v <= Duration::from_millis(100) => {
                    s.arrival_slack = ArrivalSlack::Fixed(v)
                }
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

    pub(super) fn feeders(&mut self, data: &IndexMap<String, RawFeeder>) -> Vec<Arc<Feeder>> {
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

    pub(super) fn scripts(&mut self, files: &[String]) -> Scripts {
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

    pub(super) fn script_origin(&self, path: &str) -> ScriptOrigin {
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

    /// Marks what a credential header (Authorization and the like) carries as secret.
    pub(super) fn note_credential(&mut self, name: &HeaderName, value: &HeaderTemplate) {
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
    pub(super) fn vars(
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
    pub(super) fn compile_default_headers(
        &mut self,
        d: &RawDefaults,
    ) -> Vec<(HeaderName, HeaderTemplate)> {
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
        if let Some(ae) = &d.accept_encoding {
            let text = if ae.trim() == "browser" {
                crate::scenario::plan::BROWSER_ACCEPT_ENCODING.to_string()
            } else {
                ae.clone()
            };
            let unknown: Vec<&str> = text
                .split(',')
                .map(|c| c.split(';').next().unwrap_or("").trim())
                .filter(|c| {
                    !c.is_empty()
                        && *c != "identity"
                        && *c != "*"
                        && !crate::scenario::plan::DECODABLE.contains(c)
                })
                .collect();
            if !unknown.is_empty() {
                v.err(
                    "defaults.accept_encoding",
                    format!(
                        "stampede cannot decode {}: use gzip, deflate, br, zstd, or `browser`",
                        unknown.join(", ")
                    ),
                );
            } else if let Ok(hv) = HeaderValue::from_str(&text)
                && !out.iter().any(|(n, _)| n == http::header::ACCEPT_ENCODING)
            {
                out.push((http::header::ACCEPT_ENCODING, HeaderTemplate::Static(hv)));
            }
        }
        out
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
