//! The credentials a recording holds: which names are secret, and how their recorded values
//! become environment variables (one per value), so no recorded secret reaches the YAML.

use serde_json::Value;

use super::{Body, Step, decode, unique};

/// Names of body fields and headers whose recorded values are credentials.
pub(super) fn is_secret_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [
        "password",
        "passwd",
        "secret",
        "apikey",
        "api_key",
        "api-key",
        "token",
        "credential",
    ]
    .iter()
    .any(|s| n.contains(s))
        || n.split(|c: char| !c.is_ascii_alphanumeric()).any(|w| {
            [
                "pwd",
                "pass",
                "otp",
                "pin",
                "auth",
                "authorization",
                "session",
                "sessionid",
                "sid",
                "jwt",
                "cookie",
                "bearer",
                "key",
            ]
            .contains(&w)
        })
}

/// Text left when the templates and an auth scheme are taken out: what a secret still holds
/// literally.
fn literal_part(v: &str) -> String {
    let v = v.trim();
    // `Bearer …`, `Basic …`: the scheme is not the secret.
    let v = v
        .split_once(' ')
        .filter(|(scheme, _)| scheme.chars().all(|c| c.is_ascii_alphabetic()))
        .map_or(v, |(_, rest)| rest);
    let mut out = String::new();
    let mut rest = v;
    while let Some(o) = rest.find("{{") {
        out.push_str(&rest[..o]);
        rest = rest[o..].find("}}").map_or("", |c| &rest[o + c + 2..]);
    }
    out.push_str(rest);
    out.trim().to_string()
}

/// Credentials the recording holds that no response issued: replaced by variables, one per
/// value (`secrets` maps each recorded value to its variable).
pub(super) fn replace_secrets(
    s: &mut Step,
    secrets: &mut Vec<(String, String)>,
    names: &mut Vec<String>,
    report: &mut Vec<String>,
) {
    let step = s.name.clone();
    let mut declare = |base: &str, value: &str, what: String| -> String {
        let var = match secrets.iter().find(|(v, _)| v == value) {
            Some((_, var)) => var.clone(),
            None => {
                let var = unique(base, names);
                report.push(format!(
                    "replaced a recorded secret with `{var}` ({what} of step {step}): set {} before running",
                    env_name(&var)
                ));
                secrets.push((value.to_string(), var.clone()));
                var
            }
        };
        format!("{{{{ {var} }}}}")
    };
    for (name, value) in &mut s.headers {
        let lit = literal_part(value);
        if is_secret_name(name) && !lit.is_empty() {
            let t = declare(name, &lit, format!("header {name}"));
            *value = value.replacen(&lit, &t, 1);
        }
    }
    if let Some((path, query)) = s.url.clone().split_once('?') {
        let mut parts = Vec::new();
        for kv in query.split('&') {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            let lit = literal_part(v);
            if is_secret_name(&decode(k)) && !lit.is_empty() {
                let t = declare(&decode(k), &decode(&lit), format!("query {}", decode(k)));
                parts.push(format!("{k}={}", v.replacen(&lit, &t, 1)));
            } else {
                parts.push(kv.to_string());
            }
        }
        s.url = format!("{path}?{}", parts.join("&"));
    }
    match &mut s.body {
        Some(Body::Json(v)) => secret_json(v, &mut |k, value| {
            declare(k, value, format!("body field {k}"))
        }),
        Some(Body::Form(pairs)) => {
            for (k, v) in pairs {
                let lit = literal_part(v);
                if is_secret_name(k) && !lit.is_empty() {
                    let t = declare(k, &lit, format!("form field {k}"));
                    *v = v.replacen(&lit, &t, 1);
                }
            }
        }
        Some(Body::Text(t)) => {
            let lower = t.to_ascii_lowercase();
            let holds = ["password", "passwd", "secret", "token", "api_key", "apikey"]
                .iter()
                .any(|w| lower.contains(w));
            if holds && !literal_part(t).is_empty() {
                let whole = t.clone();
                *t = declare("body", &whole, "the body (it mentions a credential)".into());
            }
        }
        None => {}
    }
}

fn secret_json(v: &mut Value, declare: &mut dyn FnMut(&str, &str) -> String) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                let literal = match &*x {
                    Value::String(s) => Some(literal_part(s)),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                };
                match literal {
                    Some(lit) if is_secret_name(k) && !lit.is_empty() => {
                        let whole = match &*x {
                            Value::String(s) if literal_part(s) == *s => s.clone(),
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        *x = Value::String(declare(k, &whole));
                    }
                    _ => secret_json(x, declare),
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| secret_json(x, declare)),
        _ => {}
    }
}

/// The environment variable a secret variable is read from.
pub(super) fn env_name(var: &str) -> String {
    format!("STAMPEDE_{}", var.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

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
