//! Values a response issues that later requests may send back: where each came from and how a
//! scenario extracts it again.

use serde_json::Value;
use serde_yaml::{Mapping, Value as Yaml};

use super::har::Entry;

/// The shortest value worth correlating: shorter ones (`1`, `true`, `en`) match by chance.
pub(super) const MIN_LEN: usize = 8;

/// Response headers that describe the response, never a value to send back.
const PLAIN_HEADERS: [&str; 6] = [
    "x-powered-by",
    "x-frame-options",
    "x-content-type-options",
    "x-xss-protection",
    "x-cache",
    "x-served-by",
];

/// Where an issued value was found in a response.
#[derive(Debug, Clone)]
pub(super) enum Source {
    /// A JSON body, at this JSONPath, under this key.
    Json {
        /// JSONPath (RFC 9535).
        path: String,
        /// The last key on the path.
        key: String,
    },
    /// A response header.
    Header(String),
    /// A cookie the response set (`Set-Cookie`), sent back somewhere other than the cookie
    /// jar's `Cookie` header (a double-submit CSRF token).
    Cookie(String),
    /// An HTML hidden input (`<input type="hidden" name=… value=…>`), by name, with the regex
    /// that finds its value.
    Hidden {
        /// The input's name.
        name: String,
        /// A regex whose first group is its value.
        regex: String,
    },
}

/// An issued value: the step whose response issued it, where, the value, and its variable.
#[derive(Debug)]
pub(super) struct Found {
    /// Index of the step.
    pub(super) step: usize,
    /// Where in the response.
    pub(super) source: Source,
    /// The value as recorded.
    pub(super) value: String,
    /// The variable it becomes.
    pub(super) var: String,
}

impl Source {
    /// A variable name for it.
    pub(super) fn name(&self) -> String {
        match self {
            Source::Json { key, .. } => key.clone(),
            Source::Header(h) => h.trim_start_matches("x-").to_string(),
            Source::Cookie(c) => c.clone(),
            Source::Hidden { name, .. } => name.clone(),
        }
    }

    /// The `extract` entry that finds it again (secret: an issued token is a credential).
    pub(super) fn extract_spec(&self) -> Yaml {
        let mut m = Mapping::new();
        let (k, v) = match self {
            Source::Json { path, .. } => ("json", path.clone()),
            Source::Header(h) => ("header", h.clone()),
            Source::Cookie(c) => ("cookie", c.clone()),
            Source::Hidden { regex, .. } => ("regex", regex.clone()),
        };
        m.insert(Yaml::String(k.into()), Yaml::String(v));
        m.insert(Yaml::String("secret".into()), Yaml::Bool(true));
        Yaml::Mapping(m)
    }

    /// In words, for the import's report.
    pub(super) fn describe(&self) -> String {
        match self {
            Source::Json { path, .. } => format!("JSON {path}"),
            Source::Header(h) => format!("header {h}"),
            Source::Cookie(c) => format!("cookie {c}"),
            Source::Hidden { name, .. } => format!("hidden input {name}"),
        }
    }
}

/// Every value a response issues that is long enough to correlate, in the order found.
pub(super) fn candidates(e: &Entry) -> Vec<(Source, String)> {
    let mut out = Vec::new();
    for h in &e.response.headers {
        let n = h.name.to_ascii_lowercase();
        if n.starts_with("x-") && !PLAIN_HEADERS.contains(&n.as_str()) && usable(&h.value) {
            out.push((Source::Header(n), h.value.clone()));
        } else if n == "set-cookie"
            && let Some((name, value)) = h.value.split(';').next().and_then(|c| c.split_once('='))
            && usable(value.trim())
        {
            out.push((
                Source::Cookie(name.trim().to_string()),
                value.trim().to_string(),
            ));
        }
    }
    let Some(body) = e.response.content.body() else {
        return out;
    };
    let mime = e.response.content.mime_type.to_ascii_lowercase();
    if mime.contains("json")
        && let Ok(v) = serde_json::from_str::<Value>(&body)
    {
        json_values(&v, "$", "", &mut out);
    } else if mime.contains("html") {
        hidden_inputs(&body, &mut out);
    }
    out
}

/// Long enough, one word, and with a digit (or long): `approved`, `application/json` are words
/// a later request may hold by chance; tokens and ids carry digits.
fn usable(v: &str) -> bool {
    v.len() >= MIN_LEN
        && !v.contains(char::is_whitespace)
        && (v.chars().any(|c| c.is_ascii_digit()) || v.len() >= 20)
}

fn json_values(v: &Value, path: &str, key: &str, out: &mut Vec<(Source, String)>) {
    match v {
        Value::String(s) if usable(s) => out.push((
            Source::Json {
                path: path.to_string(),
                key: key.to_string(),
            },
            s.clone(),
        )),
        Value::Number(n) if usable(&n.to_string()) => out.push((
            Source::Json {
                path: path.to_string(),
                key: key.to_string(),
            },
            n.to_string(),
        )),
        Value::Object(m) => {
            for (k, x) in m {
                let ident = k.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                    && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                let p = if ident {
                    format!("{path}.{k}")
                } else {
                    format!("{path}['{}']", k.replace('\\', "\\\\").replace('\'', "\\'"))
                };
                json_values(x, &p, k, out);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate().take(50) {
                json_values(x, &format!("{path}[{i}]"), key, out);
            }
        }
        _ => {}
    }
}

fn hidden_inputs(html: &str, out: &mut Vec<(Source, String)>) {
    let Ok(tag) = regex::Regex::new(r#"(?is)<input\b[^>]*>"#) else {
        return;
    };
    let Ok(attr) = regex::Regex::new(r#"(?is)\b(type|name|value)\s*=\s*["']([^"']*)["']"#) else {
        return;
    };
    for t in tag.find_iter(html) {
        let (mut kind, mut name, mut value, mut name_first) = (None, None, None, false);
        for c in attr.captures_iter(t.as_str()) {
            let v = c[2].to_string();
            match c[1].to_ascii_lowercase().as_str() {
                "type" => kind = Some(v.to_ascii_lowercase()),
                "name" => {
                    name_first = value.is_none();
                    name = Some(v);
                }
                _ => value = Some(v),
            }
        }
        if let (Some("hidden"), Some(name), Some(value)) = (kind.as_deref(), name, value)
            && usable(&value)
        {
            let n = regex::escape(&name);
            let regex = if name_first {
                format!(r#"name=["']{n}["'][^>]*value=["']([^"']*)["']"#)
            } else {
                format!(r#"value=["']([^"']*)["'][^>]*name=["']{n}["']"#)
            };
            out.push((Source::Hidden { name, regex }, value));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_inputs_give_a_regex_that_finds_them_again() {
        let html = r#"<form><input type="hidden" name="csrf_token" value="a1b2c3d4e5"><input name="q" value="short"></form>"#;
        let mut out = Vec::new();
        hidden_inputs(html, &mut out);
        assert_eq!(out.len(), 1);
        let Source::Hidden { name, regex } = &out[0].0 else {
            panic!()
        };
        assert_eq!(name, "csrf_token");
        let re = regex::Regex::new(regex).unwrap();
        assert_eq!(&re.captures(html).unwrap()[1], "a1b2c3d4e5");
    }

    #[test]
    fn json_values_carry_their_paths() {
        let v: Value = serde_json::from_str(
            r#"{"data":{"token":"tok-1234567","odd key":"abc123defg"},"n":1}"#,
        )
        .unwrap();
        let mut out = Vec::new();
        json_values(&v, "$", "", &mut out);
        let mut paths: Vec<String> = out
            .iter()
            .map(|(s, _)| match s {
                Source::Json { path, .. } => path.clone(),
                _ => String::new(),
            })
            .collect();
        paths.sort();
        assert_eq!(paths, ["$.data.token", "$.data['odd key']"]);
    }
}
