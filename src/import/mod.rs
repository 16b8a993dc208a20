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
mod secrets;

use std::fmt::Write as _;

use serde_json::Value;
use serde_yaml::{Mapping, Value as Yaml};

pub use har::{Har, HarError};

use correlate::Found;
use secrets::{env_name, replace_secrets};

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

/// Names the scenario reserves for built-in values.
const BUILTINS: [&str; 4] = ["vu", "iteration", "uuid", "timestamp_ms"];

/// Methods a scenario step can have.
const METHODS: [&str; 7] = ["get", "post", "put", "patch", "delete", "head", "options"];

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
        let method = e.request.method.to_ascii_lowercase();
        let preflight = method == "options"
            && e.request
                .headers
                .iter()
                .any(|h| h.name.eq_ignore_ascii_case("access-control-request-method"));
        if preflight {
            continue;
        }
        // A recorded `{{` would be read as a template: such a request cannot be written as
        // recorded, so it is named and left out rather than written wrong.
        let braces = e.request.url.contains("{{")
            || e.request.headers.iter().any(|h| h.value.contains("{{"))
            || e.request
                .post_data
                .as_ref()
                .is_some_and(|p| p.text.contains("{{"));
        if braces {
            report.push(format!(
                "left out {} {}: it sends a literal `{{{{`, which a scenario reads as a template; write that step by hand",
                e.request.method, path
            ));
            continue;
        }
        if !METHODS.contains(&method.as_str()) {
            report.push(format!(
                "left out {} {}: a step cannot send that method",
                e.request.method, path
            ));
            continue;
        }
        // A gap is a think time only when both times are readable, and at most 10 minutes.
        let start = har::seconds(&e.started_date_time);
        let gap_s = match (start, last_end) {
            (Some(s), Some(end)) => (s - end).clamp(0.0, 600.0),
            _ => 0.0,
        };
        last_end = start.map(|s| s + e.time.max(0.0) / 1000.0);
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
            method,
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
    // Browsers post `JSON.stringify` output as text/plain when a script sets no type.
    if let Ok(v @ (Value::Object(_) | Value::Array(_))) = serde_json::from_str::<Value>(&p.text) {
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
/// replaces the credentials nothing issued with variables (one per value).
fn correlate_steps(
    har: &Har,
    steps: &mut [Step],
    vars: &mut Vec<(String, String)>,
    report: &mut Vec<String>,
) {
    let mut issued: Vec<Found> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    let mut secrets: Vec<(String, String)> = Vec::new();
    for i in 0..steps.len() {
        // What this request sends that an earlier response issued; longest first, so a token
        // is matched whole before a shorter value it contains.
        let mut order: Vec<usize> = (0..issued.len()).collect();
        order.sort_by_key(|&k| std::cmp::Reverse(issued[k].value.len()));
        for k in order {
            let f = &issued[k];
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
        replace_secrets(&mut steps[i], &mut secrets, &mut names, report);
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
    // A secret found in one place is replaced wherever else it was recorded (a token in a
    // header and in a query string is one variable), and so are cookie values the browser
    // sent, outside the cookie jar.
    for e in &har.log.entries {
        for h in e
            .request
            .headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("cookie"))
        {
            for c in h.value.split(';') {
                if let Some((name, value)) = c.split_once('=')
                    && value.trim().len() >= 6
                    && !secrets.iter().any(|(v, _)| v == value.trim())
                {
                    let var = unique(name.trim(), &mut names);
                    secrets.push((value.trim().to_string(), var));
                }
            }
        }
    }
    for (value, var) in &secrets {
        let template = format!("{{{{ {var} }}}}");
        let mut used = 0;
        for s in steps.iter_mut() {
            used += substitute(s, value, &template);
        }
        if !vars.iter().any(|(v, _)| v == var) && (used > 0 || vars_declared(steps, var)) {
            vars.push((var.clone(), String::new()));
        }
    }
}

/// Whether any step reads `var`.
fn vars_declared(steps: &[Step], var: &str) -> bool {
    let t = format!("{{{{ {var} }}}}");
    steps.iter().any(|s| {
        s.url.contains(&t)
            || s.headers.iter().any(|(_, v)| v.contains(&t))
            || match &s.body {
                Some(Body::Json(v)) => v.to_string().contains(&t),
                Some(Body::Form(p)) => p.iter().any(|(_, v)| v.contains(&t)),
                Some(Body::Text(x)) => x.contains(&t),
                None => false,
            }
    })
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
    for (name, value) in s.headers.iter().filter(|(n, _)| n.starts_with("x-")) {
        if opaque(value) {
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
    let base = if base.starts_with(|c: char| c.is_ascii_alphabetic())
        && !BUILTINS.contains(&base.as_str())
    {
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

/// Characters that continue a token: a match next to one is part of a longer value.
fn token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-_.+/=%".contains(c)
}

/// Replaces whole occurrences of `value` in `text` by `template`, outside the templates already
/// written; returns how many.
fn replace_whole(text: &mut String, value: &str, template: &str) -> usize {
    if value.is_empty() || !text.contains(value) {
        return 0;
    }
    let mut out = String::with_capacity(text.len());
    let (mut n, mut rest) = (0, text.as_str());
    while let Some(at) = rest.find(value) {
        let before = &rest[..at];
        // Inside `{{ … }}` when the last `{{` before the match is not closed yet.
        let inside = before
            .rfind("{{")
            .is_some_and(|o| !before[o..].contains("}}"))
            || out.rfind("{{").is_some_and(|o| !out[o..].contains("}}")) && before.is_empty();
        let prev = before
            .chars()
            .next_back()
            .or_else(|| out.chars().next_back());
        let next = rest[at + value.len()..].chars().next();
        out.push_str(before);
        if inside || prev.is_some_and(token_char) || next.is_some_and(token_char) {
            out.push_str(value);
        } else {
            out.push_str(template);
            n += 1;
        }
        rest = &rest[at + value.len()..];
    }
    out.push_str(rest);
    if n > 0 {
        *text = out;
    }
    n
}

/// Replaces `value` (as recorded, or percent-encoded) by `template` everywhere in a request;
/// returns how many places.
fn substitute(s: &mut Step, value: &str, template: &str) -> usize {
    let mut encoded = Vec::new();
    crate::scenario::template::url_encode(value, &mut encoded);
    let encoded = String::from_utf8_lossy(&encoded).into_owned();
    let mut n = 0;
    let mut swap = |text: &mut String| {
        n += replace_whole(text, value, template);
        if encoded != value {
            n += replace_whole(text, &encoded, template);
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
        Value::String(s) => replace_whole(s, value, template),
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

fn y(s: &str) -> Yaml {
    Yaml::String(s.to_string())
}

/// The scenario text: a header comment, then target, vars, the journey and one flow.
fn render(origin: &str, o: &ImportOptions, steps: &[Step], vars: &[(String, String)]) -> String {
    let clean = ident(&o.name);
    let clean = clean.trim_matches('_');
    let name = if clean.is_empty() { "recorded" } else { clean };
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
        // No status recorded (a cancelled request): no check. A 304 answered a conditional
        // request whose validators are not replayed, so 200 is as right.
        // The browser followed a redirect itself, and the recording holds the next request as
        // an entry of its own: the step checks the 3xx rather than following it.
        if (300..400).contains(&s.status) && s.status != 304 {
            m.insert(y("redirects"), Yaml::Number(0.into()));
        }
        if (100..600).contains(&s.status) {
            let mut check = Mapping::new();
            let status = if s.status == 304 {
                Yaml::Sequence(vec![Yaml::Number(200.into()), Yaml::Number(304.into())])
            } else {
                Yaml::Number(s.status.into())
            };
            check.insert(y("status"), status);
            m.insert(y("check"), Yaml::Mapping(check));
        }
        journey.push(Yaml::Mapping(m));
    }
    let mut top = Mapping::new();
    top.insert(y("name"), y(name));
    top.insert(y("target"), y(origin));
    if !vars.is_empty() {
        let mut v = Mapping::new();
        for (k, _) in vars {
            // Read from the environment and masked in every output. Unset, it is a placeholder
            // that names the variable: the scenario validates as imported, and a forgotten
            // credential shows at the server as what it is, never as a recorded secret.
            let mut spec = Mapping::new();
            spec.insert(y("env"), y(&env_name(k)));
            spec.insert(y("default"), y(&format!("set-{}", env_name(k))));
            spec.insert(y("secret"), Yaml::Bool(true));
            v.insert(y(k), Yaml::Mapping(spec));
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
         # Point it elsewhere with --target; raise the load in `flows`. `vars` are the recorded\n\
         # secrets, left out: set their environment variables (STAMPEDE_…) before running; unset,\n\
         # each sends a placeholder that names it."
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
    fn a_recorded_template_is_left_out_and_named() {
        let har = Har::parse(
            r#"{"log":{"entries":[
              {"request":{"method":"GET","url":"https://a.example/","headers":[]},
               "response":{"status":200,"headers":[],"content":{"mimeType":"text/html","text":"hi"}}},
              {"request":{"method":"POST","url":"https://a.example/greet","headers":[],
                          "postData":{"mimeType":"text/plain","text":"Hello {{ name }}"}},
               "response":{"status":200,"headers":[],"content":{"mimeType":"text/plain","text":"ok"}}}
            ]}}"#,
        )
        .unwrap();
        let out = import(&har, &ImportOptions::default()).unwrap();
        assert!(!out.yaml.contains("greet"), "{}", out.yaml);
        assert!(
            out.report
                .iter()
                .any(|l| l.contains("left out POST /greet")),
            "{:?}",
            out.report
        );
    }
}
