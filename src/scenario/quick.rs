//! A scenario from a URL: `stampede run http://host/path` builds a one-step, one-flow scenario as
//! YAML text, which then loads like any file (one validation, one set of messages) and which
//! `--print-scenario` shows, so the user can save it and grow it into a journey.

use std::time::Duration;

use serde_yaml::{Mapping, Value};

use crate::units::Span;

/// What a URL run asks for.
#[derive(Debug, Clone, Default)]
pub struct Quick {
    /// The URL (scheme, host, port, path and query).
    pub url: String,
    /// HTTP method (`GET` when empty).
    pub method: String,
    /// `Name: value` headers.
    pub headers: Vec<String>,
    /// The request body.
    pub body: Option<String>,
    /// Arrivals per second: an open flow.
    pub rate: Option<f64>,
    /// Virtual users: a closed flow (10 when neither this nor `rate` is given).
    pub vus: Option<u64>,
    /// Iterations (requests) in all.
    pub iterations: Option<u64>,
    /// How long (10 s unless iterations bound the run).
    pub duration: Option<Duration>,
    /// Threshold expressions on the request.
    pub thresholds: Vec<String>,
}

/// Whether a command-line argument is a URL rather than a scenario file.
pub fn is_url(arg: &str) -> bool {
    let lower = arg.to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

/// Virtual users of a URL run that names neither a rate nor users.
pub const DEFAULT_VUS: u64 = 10;
/// Length of a URL run that names neither a duration nor iterations.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(10);

fn s(v: impl Into<String>) -> Value {
    Value::String(v.into())
}

/// The scenario YAML for a URL run.
pub fn scenario(q: &Quick) -> Result<String, String> {
    let uri: http::Uri = q
        .url
        .parse()
        .map_err(|e| format!("`{}` is not a URL: {e}", q.url))?;
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return Err(format!(
            "`{}` needs a scheme and a host, like http://127.0.0.1:8080/ping",
            q.url
        ));
    };
    // `uri.path_and_query()` keeps `?x=1` without its `/` for `http://host?x=1`.
    let path = match uri.query() {
        Some(query) => format!("{}?{query}", uri.path()),
        None => uri.path().to_string(),
    };
    let texts = [q.url.as_str(), q.body.as_deref().unwrap_or("")];
    if texts
        .into_iter()
        .chain(q.headers.iter().map(String::as_str))
        .any(|t| t.contains("{{"))
    {
        return Err(
            "`{{` in a URL run's URL, header or body would be a template: write a scenario for templates (start from --print-scenario)".into(),
        );
    }
    let method = if q.method.is_empty() {
        "get".to_string()
    } else {
        q.method.to_ascii_lowercase()
    };
    const METHODS: [&str; 7] = ["get", "post", "put", "patch", "delete", "head", "options"];
    if !METHODS.contains(&method.as_str()) {
        return Err(format!(
            "method `{}` is not one stampede sends: expected one of {}",
            q.method,
            METHODS.map(str::to_ascii_uppercase).join(", ")
        ));
    }
    let mut step = Mapping::new();
    step.insert(s("name"), s("request"));
    step.insert(s(method.clone()), s(path.clone()));
    if !q.headers.is_empty() {
        let mut h = Mapping::new();
        for line in &q.headers {
            let Some((k, v)) = line.split_once(':') else {
                return Err(format!("header `{line}` needs a colon: `Name: value`"));
            };
            h.insert(s(k.trim()), s(v.trim()));
        }
        step.insert(s("headers"), Value::Mapping(h));
    }
    if let Some(b) = &q.body {
        step.insert(s("body"), s(b.clone()));
    }
    let mut flow = Mapping::new();
    flow.insert(s("journey"), s("quick"));
    match (q.rate, q.vus) {
        (Some(_), Some(_)) => {
            return Err(
                "--rate and --vus choose between an open and a closed flow: give one".into(),
            );
        }
        (Some(r), None) => {
            flow.insert(s("rate"), s(format!("{r}/s")));
        }
        (None, vus) => {
            flow.insert(s("vus"), Value::from(vus.unwrap_or(DEFAULT_VUS)));
        }
    }
    match (q.duration, q.iterations) {
        (d, Some(n)) => {
            // Open or closed, the flow ends after n iterations (or its duration, if shorter).
            flow.insert(s("iterations"), Value::from(n));
            if let Some(d) = d {
                flow.insert(s("duration"), s(Span(d).to_string()));
            }
        }
        (d, None) => {
            flow.insert(
                s("duration"),
                s(Span(d.unwrap_or(DEFAULT_DURATION)).to_string()),
            );
        }
    }
    let mut journeys = Mapping::new();
    journeys.insert(s("quick"), Value::Sequence(vec![Value::Mapping(step)]));
    let mut flows = Mapping::new();
    flows.insert(s("quick"), Value::Mapping(flow));
    let mut doc = Mapping::new();
    doc.insert(s("name"), s("quick"));
    doc.insert(
        s("description"),
        s(format!("{} {}", method.to_ascii_uppercase(), q.url)),
    );
    doc.insert(s("target"), s(format!("{scheme}://{authority}")));
    doc.insert(s("journeys"), Value::Mapping(journeys));
    doc.insert(s("flows"), Value::Mapping(flows));
    if !q.thresholds.is_empty() {
        let mut t = Mapping::new();
        t.insert(
            s("quick.request"),
            Value::Sequence(q.thresholds.iter().map(|x| s(x.clone())).collect()),
        );
        doc.insert(s("thresholds"), Value::Mapping(t));
    }
    serde_yaml::to_string(&Value::Mapping(doc)).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_becomes_a_one_step_scenario() {
        let y = scenario(&Quick {
            url: "http://127.0.0.1:8080/ping?x=1".into(),
            method: "post".into(),
            headers: vec!["x-api-key: k".into()],
            body: Some("{}".into()),
            rate: Some(50.0),
            thresholds: vec!["p99 < 200ms".into()],
            ..Quick::default()
        })
        .unwrap();
        assert!(y.contains("target: http://127.0.0.1:8080"), "{y}");
        assert!(
            y.contains("post: /ping?x=1") && y.contains("rate: 50/s"),
            "{y}"
        );
        assert!(
            y.contains("x-api-key: k") && y.contains("quick.request"),
            "{y}"
        );
        assert!(
            scenario(&Quick {
                url: "127.0.0.1:8080".into(),
                ..Quick::default()
            })
            .is_err()
        );
        assert!(
            scenario(&Quick {
                url: "http://h/".into(),
                method: "TRACE".into(),
                ..Quick::default()
            })
            .is_err()
        );
    }
}
