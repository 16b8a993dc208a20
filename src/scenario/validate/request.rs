//! Request steps: method and URL, headers, bodies, checks, extraction (JSONPath, regex), retries.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method};
use indexmap::IndexMap;
use regex::Regex;
use serde_json_path::JsonPath;

use super::super::diagnostic::did_you_mean;
use super::super::plan::*;
use super::super::raw::*;
use super::super::source::{join_index, join_key};

/// The `User-Agent` every request carries unless the scenario sets one.
const USER_AGENT: &str = concat!("stampede/", env!("CARGO_PKG_VERSION"));
use super::super::template::{Escape, Template};
use super::*;
use crate::units::SpanRange;

impl Validator<'_> {
    pub(super) fn request(
        &mut self,
        s: &RawStep,
        p: &str,
        method: &str,
        jc: &mut JourneyCtx,
        cx: &Shared<'_>,
    ) -> Option<Request> {
        let Shared {
            names, settings, ..
        } = *cx;
        let url_path = join_key(p, method);
        let url = match method {
            "get" => s.get.as_deref(),
            "post" => s.post.as_deref(),
            "put" => s.put.as_deref(),
            "patch" => s.patch.as_deref(),
            "delete" => s.delete.as_deref(),
            "head" => s.head.as_deref(),
            "ws" => s.ws.as_deref(),
            _ => s.options.as_deref(),
        }
        .unwrap_or_default();
        let written = url;
        // A WebSocket URL is its HTTP upgrade request's URL.
        let ws_url = url
            .strip_prefix("ws://")
            .map(|r| format!("http://{r}"))
            .or_else(|| url.strip_prefix("wss://").map(|r| format!("https://{r}")));
        let url = ws_url.as_deref().unwrap_or(url);
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
                    let idx = self
                        .origins
                        .iter()
                        .position(|x| x.base == o.base && x.prefix.is_empty())
                        .unwrap_or_else(|| {
                            self.origins.push(o);
                            self.origins.len() - 1
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
            match self.named.get(target) {
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
                    let hint = did_you_mean(target, self.named.keys().map(String::as_str))
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
                    "`{url}` is neither a path starting with `/` nor an {} URL",
                    if method == "ws" {
                        "ws:// or wss://"
                    } else {
                        "http:// or https://"
                    }
                ),
            );
            return None;
        };
        let prefix = self.origins[origin].prefix.clone();
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
            super::super::template::url_encode(k, &mut key);
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
        // A path with no placeholders is checked and parsed once, here, not per request.
        let fixed_target = match path.as_literal().map(http::uri::PathAndQuery::try_from) {
            Some(Ok(t)) => Some(t),
            Some(Err(e)) => {
                self.err(
                    &url_path,
                    format!(
                        "`{url}` is not a valid path and query ({e}): percent-encode such characters (a space is `%20`), or give values under `query:`, which encodes them"
                    ),
                );
                ok = false;
                None
            }
            None => None,
        };

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
        // Load-test traffic says what it is, so a target's owners can tell it in their logs and
        // rules (k6 and oha do the same); a `user-agent` in `defaults` or the step replaces it.
        if !headers.iter().any(|(n, _)| n == http::header::USER_AGENT) {
            headers.push((
                http::header::USER_AGENT,
                HeaderTemplate::Static(HeaderValue::from_static(USER_AGENT)),
            ));
        }
        let ct = |v: &'static str| (!has_content_type).then(|| HeaderValue::from_static(v));

        let bodies = [
            s.json.is_some(),
            s.form.is_some(),
            s.body.is_some(),
            s.body_file.is_some(),
            s.multipart.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if bodies > 1 {
            self.err(
                p,
                "a request has one body: use one of `json`, `form`, `body`, `body_file` or `multipart`",
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
                super::super::template::url_encode(k, &mut key);
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
        } else if let Some(file) = &s.body_file {
            match self.read_file(&join_key(p, "body_file"), file, FileKind::Data) {
                Some(bytes) => Body::Static(
                    Bytes::from(bytes),
                    ct(super::multipart::content_type_of(file)),
                ),
                None => {
                    ok = false;
                    Body::Empty
                }
            }
        } else if let Some(m) = &s.multipart {
            match self.multipart(m, &join_key(p, "multipart"), names, jc) {
                Some((mp, content_type)) => Body::Multipart(Arc::new(mp), {
                    // The boundary is the body's own: a content type written in `headers`
                    // would not name it.
                    if has_content_type {
                        self.err(
                            &join_key(p, "headers"),
                            "a multipart body sets its own content-type (with its boundary): remove the header",
                        );
                        ok = false;
                    }
                    content_type
                }),
                None => {
                    ok = false;
                    Body::Empty
                }
            }
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

        let extract = match self.extractions(&s.extract, p) {
            Some(e) => e,
            None => {
                ok = false;
                Vec::new()
            }
        };

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
            url: written.to_string(),
        });
        Some(Request {
            id,
            method,
            origin,
            path,
            fixed_target,
            headers,
            body,
            extract,
            checks,
            retry,
            timeout,
            keeps_body,
            parses_json,
            redirects: s.redirects.unwrap_or(self.redirects),
        })
    }

    /// The extractions under `p.extract`; `None` when any is invalid (each reported).
    pub(super) fn extractions(
        &mut self,
        raw: &IndexMap<String, RawExtract>,
        p: &str,
    ) -> Option<Vec<Extract>> {
        let mut extract = Vec::new();
        let mut ok = true;
        for (var, e) in raw {
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
        ok.then_some(extract)
    }

    pub(super) fn json_path(&mut self, text: &str, path: &str) -> Option<JsonPath> {
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

    pub(super) fn retry(&mut self, r: &RawRetry, p: &str) -> Option<Retry> {
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
}

pub(super) fn to_body(t: Template, ct: Option<HeaderValue>) -> Body {
    match t.as_literal() {
        Some(lit) => Body::Static(Bytes::from(lit.to_string()), ct),
        None => Body::Dynamic(t, ct),
    }
}

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

impl HeaderTemplate {
    pub(super) fn clone_template(&self) -> HeaderTemplate {
        match self {
            HeaderTemplate::Static(v) => HeaderTemplate::Static(v.clone()),
            HeaderTemplate::Dynamic(t) => HeaderTemplate::Dynamic(t.clone()),
        }
    }
}

/// Longest JSONPath accepted, in bytes.
pub const MAX_JSONPATH_BYTES: usize = 1024;
/// Most filter selectors (`[?…]`) in one JSONPath.
pub const MAX_JSONPATH_FILTERS: usize = 8;
