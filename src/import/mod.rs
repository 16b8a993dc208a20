//! `stampede import FILE.har`: a browser recording turned into a journey.
//!
//! One step per request to the recorded origin (static assets and other hosts left out unless
//! asked for), paths relative to a `target:` so `--target` points the journey elsewhere, the
//! headers that carry meaning (not the browser's own), bodies, think times from the recorded
//! gaps, and a status check per step. Then the part recorders leave to users: **correlation**
//! (`correlate`). A value a response issued (a token in a JSON body, a header, an HTML hidden
//! input) that a later request sends back becomes an `extract` on the step that received it and a
//! `{{ template }}` where it is sent, so the journey works against a server that issues fresh
//! values. Credentials the recording holds (an `Authorization` no response issued, passwords in
//! bodies, cookies) become variables left empty for the user to fill; no recorded secret is
//! copied into the YAML.

mod correlate;
mod har;

use std::fmt::Write as _;

use serde_json::Value;
use serde_yaml::{Mapping, Value as Yaml};

pub use har::{Har, HarError};

use correlate::Found;

/// What to keep from the recording.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// The origin to keep (`https://shop.example.com`); by default the page's origin.
    pub origin: Option<String>,
    /// Keep static assets (scripts, styles, images, fonts).
    pub keep_static: bool,
    /// Keep requests to other hosts (absolute URLs).
    pub keep_third_party: bool,
    /// The journey's (and flow's) name.
    pub name: String,
}

/// The imported scenario and what the import did.
#[derive(Debug)]
pub struct Imported {
    /// The scenario text.
    pub yaml: String,
    /// What was kept, left out, correlated and replaced, one line each, for the user.
    pub report: Vec<String>,
}

/// Headers a browser adds on its own, or that the client computes: never copied.
const NOISE: [&str; 26] = [
    "accept-encoding",
    "accept-language",
    "cache-control",
    "connection",
    "content-length",
    "cookie",
    "dnt",
    "host",
    "if-modified-since",
    "if-none-match",
    "keep-alive",
    "origin",
    "pragma",
    "priority",
    "referer",
    "te",
    "upgrade-insecure-requests",
    "user-agent",
    "sec-ch-ua",
    "sec-ch-ua-mobile",
    "sec-ch-ua-platform",
    "sec-fetch-dest",
    "sec-fetch-mode",
    "sec-fetch-site",
    "sec-fetch-user",
    "x-requested-with",
];

/// File extensions of static assets.
const STATIC: [&str; 16] = [
    "css", "js", "mjs", "map", "png", "jpg", "jpeg", "gif", "svg", "ico", "webp", "avif", "woff",
    "woff2", "ttf", "eot",
];

/// Names of body fields and headers whose recorded values are credentials.
fn is_secret_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [
        "password", "passwd", "secret", "apikey", "api_key", "api-key",
    ]
    .iter()
    .any(|s| n.contains(s))
        || ["pwd", "otp", "pin"]
            .iter()
            .any(|s| n == *s || n.ends_with(&format!("_{s}")) || n.ends_with(&format!("-{s}")))
        || n == "authorization"
        || n == "proxy-authorization"
}

/// One request kept for the journey.
#[derive(Debug)]
struct Step {
    name: String,
    method: String,
    /// Path and query for the main origin, the whole URL otherwise.
    url: String,
    headers: Vec<(String, String)>,
    body: Option<Body>,
    status: u16,
    /// Seconds between the previous kept request's end and this one's start.
    gap_s: f64,
    extract: Vec<(String, Yaml)>,
    entry: usize,
}

#[derive(Debug)]
enum Body {
    Json(Value),
    Form(Vec<(String, String)>),
    Text(String),
}

/// Imports a parsed recording.
pub fn import(har: &Har, o: &ImportOptions) -> Result<Imported, HarError> {
    let entries = &har.log.entries;
    if entries.is_empty() {
        return Err(HarError::Empty);
    }
    let origin = match &o.origin {
        Some(x) => x.trim_end_matches('/').to_string(),
        None => har::main_origin(entries).ok_or(HarError::NoOrigin)?,
    };
    let mut report = Vec::new();
    let (mut statics, mut others) = (0, 0);
    let mut steps: Vec<Step> = Vec::new();
    let mut last_end: Option<f64> = None;
    for (i, e) in entries.iter().enumerate() {
        let Some((e_origin, path)) = har::split_url(&e.request.url) else {
            continue;
        };
        let ours = e_origin == origin;
        if !ours && !o.keep_third_party {
            others += 1;
            continue;
        }
        if !o.keep_static && is_static(&path, &e.response.content.mime_type) {
            statics += 1;
            continue;
        }
        let start = har::seconds(&e.started_date_time).unwrap_or(0.0);
        let gap_s = last_end.map_or(0.0, |end| (start - end).max(0.0));
        last_end = Some(start + e.time.max(0.0) / 1000.0);
        let headers = e
            .request
            .headers
            .iter()
            .filter(|h| {
                let n = h.name.to_ascii_lowercase();
                !n.starts_with(':') && !NOISE.contains(&n.as_str())
            })
            .map(|h| (h.name.to_ascii_lowercase(), h.value.clone()))
            .filter(|(n, _)| n != "content-type" || e.request.post_data.is_some())
            .collect();
        steps.push(Step {
            name: String::new(),
            method: e.request.method.to_ascii_lowercase(),
            url: if ours { path } else { e.request.url.clone() },
            headers,
            body: e.request.post_data.as_ref().map(body_of),
            status: e.response.status,
            gap_s,
            extract: Vec::new(),
            entry: i,
        });
    }
    if steps.is_empty() {
        return Err(HarError::NothingKept {
            origin,
            statics,
            others,
        });
    }
    name_steps(&mut steps);
    report.push(format!(
        "kept {} requests to {origin}; left out {statics} static assets and {others} requests to other hosts{}",
        steps.len(),
        if statics + others > 0 {
            " (--keep-static, --keep-third-party keep them)"
        } else {
            ""
        }
    ));
    let mut vars: Vec<(String, String)> = Vec::new();
    correlate_steps(har, &mut steps, &mut vars, &mut report);
    let yaml = render(&origin, o, &steps, &vars);
    Ok(Imported { yaml, report })
}

fn is_static(path: &str, mime: &str) -> bool {
    let p = path.split(['?', '#']).next().unwrap_or(path);
    let ext = p.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    ext.is_some_and(|e| STATIC.contains(&e.as_str()))
        || mime.starts_with("image/")
        || mime.starts_with("font/")
        || mime.starts_with("text/css")
        || mime.contains("javascript")
}

fn body_of(p: &har::PostData) -> Body {
    let mime = p.mime_type.to_ascii_lowercase();
    if mime.contains("json")
        && let Ok(v) = serde_json::from_str::<Value>(&p.text)
    {
        return Body::Json(v);
    }
    if mime.contains("x-www-form-urlencoded") {
        let pairs = url_pairs(&p.text);
        if !pairs.is_empty() {
            return Body::Form(pairs);
        }
    }
    Body::Text(p.text.clone())
}

/// `a=1&b=x%20y` as decoded pairs.
fn url_pairs(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Step names from method and path (`post_auth_login`), made unique.
fn name_steps(steps: &mut [Step]) {
    let mut used: Vec<String> = Vec::new();
    for s in steps.iter_mut() {
        let path = s.url.split(['?', '#']).next().unwrap_or("");
        let path = path.rsplit("://").next().unwrap_or(path);
        let mut base = ident(&format!("{}_{}", s.method, path));
        while base.contains("__") {
            base = base.replace("__", "_");
        }
        let base: String = base.trim_matches('_').chars().take(40).collect();
        s.name = unique(&base, &mut used);
    }
}

/// Lower-case letters, digits and `_` only.
fn ident(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// Finds the values later requests send back, turns them into extractions and templates, and
/// replaces the credentials nothing issued with variables.
fn correlate_steps(
    har: &Har,
    steps: &mut [Step],
    vars: &mut Vec<(String, String)>,
    report: &mut Vec<String>,
) {
    let mut issued: Vec<Found> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for i in 0..steps.len() {
        // What this request sends that an earlier response issued.
        for f in &issued {
            let uses = substitute(&mut steps[i], &f.value, &format!("{{{{ {} }}}}", f.var));
            if uses > 0 && !steps[f.step].extract.iter().any(|(n, _)| *n == f.var) {
                let spec = f.source.extract_spec();
                steps[f.step].extract.push((f.var.clone(), spec));
                report.push(format!(
                    "correlated `{}`: {} of step {} → sent by step {}",
                    f.var,
                    f.source.describe(),
                    steps[f.step].name,
                    steps[i].name
                ));
            } else if uses > 0 {
                report.push(format!(
                    "  `{}` is also sent by step {}",
                    f.var, steps[i].name
                ));
            }
        }
        replace_secrets(&mut steps[i], vars, report);
        uncorrelated(&steps[i], report);
        // What this response issues, for the requests after it.
        let entry = &har.log.entries[steps[i].entry];
        for (source, value) in correlate::candidates(entry) {
            if issued.iter().any(|f| f.value == value) {
                continue;
            }
            let var = unique(&source.name(), &mut names);
            issued.push(Found {
                step: i,
                source,
                value,
                var,
            });
        }
    }
}

/// Values a request sends that look issued (long, letters and digits mixed) but that no earlier
/// response held: a browser script computed them, or the recording left the response out. They
/// are named (never shown) so the user can make them with a script step.
fn uncorrelated(s: &Step, report: &mut Vec<String>) {
    let opaque = |v: &str| {
        v.len() >= 16
            && !v.contains("{{")
            && !v.contains(char::is_whitespace)
            && v.chars().any(|c| c.is_ascii_digit())
            && v.chars().any(|c| c.is_ascii_alphabetic())
    };
    let mut places: Vec<String> = Vec::new();
    for (name, value) in &s.headers {
        let v = value.rsplit(' ').next().unwrap_or(value);
        if opaque(v) {
            places.push(format!("header {name}"));
        }
    }
    if let Some((_, q)) = s.url.split_once('?') {
        for (k, v) in url_pairs(q) {
            if opaque(&v) {
                places.push(format!("query {k}"));
            }
        }
    }
    match &s.body {
        Some(Body::Json(Value::Object(m))) => {
            for (k, v) in m {
                if v.as_str().is_some_and(opaque) {
                    places.push(format!("body field {k}"));
                }
            }
        }
        Some(Body::Form(pairs)) => {
            for (k, v) in pairs {
                if opaque(v) {
                    places.push(format!("form field {k}"));
                }
            }
        }
        _ => {}
    }
    for p in places {
        report.push(format!(
            "could not correlate the {p} of step {}: no earlier response issued its value (a browser \
             script may compute it; a `script:` step can), so it is sent as recorded",
            s.name
        ));
    }
}

fn unique(base: &str, names: &mut Vec<String>) -> String {
    let base = ident(base);
    let base = if base.starts_with(|c: char| c.is_ascii_alphabetic()) {
        base
    } else {
        format!("v_{base}")
    };
    let mut name = base.clone();
    let mut n = 2;
    while names.contains(&name) {
        name = format!("{base}_{n}");
        n += 1;
    }
    names.push(name.clone());
    name
}

/// Replaces `value` by `template` everywhere in a request; returns how many places.
fn substitute(s: &mut Step, value: &str, template: &str) -> usize {
    let mut n = 0;
    let mut swap = |text: &mut String| {
        if text.contains(value) {
            *text = text.replace(value, template);
            n += 1;
        }
    };
    swap(&mut s.url);
    for (_, v) in &mut s.headers {
        swap(v);
    }
    match &mut s.body {
        Some(Body::Json(v)) => n += substitute_json(v, value, template),
        Some(Body::Form(pairs)) => {
            for (_, v) in pairs {
                swap(v);
            }
        }
        Some(Body::Text(t)) => swap(t),
        None => {}
    }
    n
}

fn substitute_json(v: &mut Value, value: &str, template: &str) -> usize {
    match v {
        Value::String(s) if s.contains(value) => {
            *s = s.replace(value, template);
            1
        }
        Value::Number(x) if x.to_string() == value => {
            *v = Value::String(template.to_string());
            1
        }
        Value::Array(a) => a
            .iter_mut()
            .map(|x| substitute_json(x, value, template))
            .sum(),
        Value::Object(m) => m
            .values_mut()
            .map(|x| substitute_json(x, value, template))
            .sum(),
        _ => 0,
    }
}

/// Credentials the recording holds that no response issued: replaced by empty variables.
fn replace_secrets(s: &mut Step, vars: &mut Vec<(String, String)>, report: &mut Vec<String>) {
    let mut names: Vec<String> = vars.iter().map(|(n, _)| n.clone()).collect();
    let step = s.name.clone();
    let mut declare = |base: &str, what: String, vars: &mut Vec<(String, String)>| {
        let var = unique(base, &mut names);
        report.push(format!(
            "replaced a recorded secret with `{var}` ({what} of step {step}): set it in `vars` or a feeder"
        ));
        vars.push((var.clone(), String::new()));
        format!("{{{{ {var} }}}}")
    };
    for (name, value) in &mut s.headers {
        if is_secret_name(name) && !value.contains("{{") {
            let (scheme, _) = value.split_once(' ').unwrap_or(("", ""));
            let t = declare(
                if name == "authorization" {
                    "authorization"
                } else {
                    name
                },
                format!("header {name}"),
                vars,
            );
            *value = if scheme.is_empty() {
                t
            } else {
                format!("{scheme} {t}")
            };
        }
    }
    match &mut s.body {
        Some(Body::Json(v)) => secret_json(v, &mut |k| declare(k, format!("body field {k}"), vars)),
        Some(Body::Form(pairs)) => {
            for (k, v) in pairs {
                if is_secret_name(k) && !v.contains("{{") {
                    *v = declare(k, format!("form field {k}"), vars);
                }
            }
        }
        _ => {}
    }
}

fn secret_json(v: &mut Value, declare: &mut dyn FnMut(&str) -> String) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                match x {
                    Value::String(s) if is_secret_name(k) && !s.contains("{{") => {
                        *s = declare(k);
                    }
                    other => secret_json(other, declare),
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| secret_json(x, declare)),
        _ => {}
    }
}

fn y(s: &str) -> Yaml {
    Yaml::String(s.to_string())
}

/// The scenario text: a header comment, then target, vars, the journey and one flow.
fn render(origin: &str, o: &ImportOptions, steps: &[Step], vars: &[(String, String)]) -> String {
    let name = if o.name.is_empty() {
        "recorded"
    } else {
        &o.name
    };
    let mut journey = Vec::new();
    for s in steps {
        if s.gap_s >= 0.1 {
            let mut think = Mapping::new();
            think.insert(
                y("think"),
                y(&format!("{}ms", (s.gap_s * 10.0).round() as u64 * 100)),
            );
            journey.push(Yaml::Mapping(think));
        }
        let mut m = Mapping::new();
        m.insert(y("name"), y(&s.name));
        m.insert(y(&s.method), y(&s.url));
        if !s.headers.is_empty() {
            let mut h = Mapping::new();
            for (k, v) in &s.headers {
                h.insert(y(k), y(v));
            }
            m.insert(y("headers"), Yaml::Mapping(h));
        }
        match &s.body {
            Some(Body::Json(v)) => {
                m.insert(y("json"), serde_yaml::to_value(v).unwrap_or(Yaml::Null));
            }
            Some(Body::Form(pairs)) => {
                let mut f = Mapping::new();
                for (k, v) in pairs {
                    f.insert(y(k), y(v));
                }
                m.insert(y("form"), Yaml::Mapping(f));
            }
            Some(Body::Text(t)) => {
                m.insert(y("body"), y(t));
            }
            None => {}
        }
        if !s.extract.is_empty() {
            let mut x = Mapping::new();
            for (k, v) in &s.extract {
                x.insert(y(k), v.clone());
            }
            m.insert(y("extract"), Yaml::Mapping(x));
        }
        let mut check = Mapping::new();
        check.insert(y("status"), Yaml::Number(s.status.into()));
        m.insert(y("check"), Yaml::Mapping(check));
        journey.push(Yaml::Mapping(m));
    }
    let mut top = Mapping::new();
    top.insert(y("name"), y(name));
    top.insert(y("target"), y(origin));
    if !vars.is_empty() {
        let mut v = Mapping::new();
        for (k, val) in vars {
            v.insert(y(k), y(val));
        }
        top.insert(y("vars"), Yaml::Mapping(v));
    }
    let mut journeys = Mapping::new();
    journeys.insert(y(name), Yaml::Sequence(journey));
    top.insert(y("journeys"), Yaml::Mapping(journeys));
    let mut flow = Mapping::new();
    flow.insert(y("journey"), y(name));
    flow.insert(y("vus"), Yaml::Number(1.into()));
    flow.insert(y("per_vu_iterations"), Yaml::Number(1.into()));
    let mut flows = Mapping::new();
    flows.insert(y(name), Yaml::Mapping(flow));
    top.insert(y("flows"), Yaml::Mapping(flows));
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Imported from a browser recording by `stampede import`: one user runs the journey once.\n\
         # Point it elsewhere with --target; raise the load in `flows`. Empty `vars` are recorded\n\
         # secrets left out: fill them in (or read them from a feeder) before running."
    );
    out.push_str(&serde_yaml::to_string(&Yaml::Mapping(top)).unwrap_or_default());
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_values_decode() {
        assert_eq!(
            url_pairs("a=1&b=x%20y+z&c"),
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "x y z".into()),
                ("c".into(), String::new())
            ]
        );
        assert_eq!(decode("%zz%4"), "%zz%4");
    }

    #[test]
    fn a_cookie_sent_back_in_a_header_is_extracted_as_a_cookie() {
        let har = Har::parse(
            r#"{"log":{"entries":[
              {"request":{"method":"GET","url":"https://a.example/","headers":[]},
               "response":{"status":200,"headers":[{"name":"Set-Cookie","value":"csrftoken=ck-1234567890; Path=/"}],
                           "content":{"mimeType":"text/html","text":"<p>hi</p>"}}},
              {"request":{"method":"POST","url":"https://a.example/save","headers":[{"name":"X-CSRFToken","value":"ck-1234567890"},{"name":"Cookie","value":"csrftoken=ck-1234567890"}]},
               "response":{"status":200,"headers":[],"content":{"mimeType":"application/json","text":"{}"}}}
            ]}}"#,
        )
        .unwrap();
        let out = import(&har, &ImportOptions::default()).unwrap();
        assert!(!out.yaml.contains("ck-1234567890"), "{}", out.yaml);
        assert!(out.yaml.contains("cookie: csrftoken"), "{}", out.yaml);
        assert!(
            out.yaml.contains("x-csrftoken: '{{ csrftoken }}'"),
            "{}",
            out.yaml
        );
    }

    #[test]
    fn secrets_are_named_by_their_fields() {
        for n in [
            "password",
            "user_password",
            "Authorization",
            "api_key",
            "pin",
        ] {
            assert!(is_secret_name(n), "{n}");
        }
        for n in ["user", "amount", "spinach"] {
            assert!(!is_secret_name(n), "{n}");
        }
    }
}
