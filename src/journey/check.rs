//! Checks and extractions judged against one response. Each check says whether it held and, when
//! it did not, why (the message kept as the step's `check` example); an extraction finds its value
//! or says what it looked for.

use std::time::Duration;

use crate::http::Headers;
use rhai::{Dynamic, ImmutableString};
use serde_json::Value;

use crate::scenario::plan::{Check, Extract, ExtractSource};

/// What checks and extractions read of a response.
pub(super) struct Response<'a> {
    /// The status code.
    pub status: u16,
    /// The body parsed as JSON, when the step reads JSON and it parsed.
    pub json: Option<&'a Value>,
    /// Why the body is not JSON, when the step reads JSON and it did not parse.
    pub not_json: Option<&'a str>,
    /// The body as received (possibly cut at the step's body limit).
    pub body: &'a [u8],
    /// The response headers.
    pub headers: &'a Headers,
    /// The request's latency, from its due time.
    pub latency: Duration,
}

/// The start of a body for a message: `; body: {"error":"user required"}`, on one line, cut at
/// 200 characters; nothing for an empty body. (Messages are masked where they are counted.)
pub(super) fn excerpt(body: &[u8]) -> String {
    if body.is_empty() {
        return String::new();
    }
    // At most 800 bytes are read, however long the kept body; the message ends with the cut,
    // so a secret the cut splits is still masked (`secret::mask` hides a secret's start at the
    // end of a message).
    let head = &body[..body.len().min(800)];
    let text = String::from_utf8_lossy(head);
    let one_line: String = text
        .chars()
        .take(200)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    format!("; body: {}", one_line.trim())
}

impl Response<'_> {
    /// `what`, followed by why the body could not be read as JSON when that is the reason.
    fn unparsed(&self, what: String) -> String {
        match self.not_json {
            Some(why) => format!("{what}: {why}"),
            None => what,
        }
    }
}

impl Check {
    /// `Ok` when the check holds for `r`, else the message that says what was found instead.
    pub(super) fn judge(&self, r: &Response<'_>) -> Result<(), String> {
        let fail = |held: bool, msg: &dyn Fn() -> String| if held { Ok(()) } else { Err(msg()) };
        match self {
            Check::Status(codes) => fail(codes.contains(&r.status), &|| {
                format!("status {}, expected {codes:?}{}", r.status, excerpt(r.body))
            }),
            Check::JsonEq(path, text, expected) => {
                let got = r.json.and_then(|j| path.query(j).first().cloned());
                let held = got.as_ref().is_some_and(|g| json_equal(g, expected));
                fail(held, &|| match (&got, r.not_json) {
                    (None, Some(why)) => format!("{text} cannot be read: {why}"),
                    _ => {
                        let got = got
                            .as_ref()
                            .map_or_else(|| "nothing".to_string(), Value::to_string);
                        format!("{text} is {got}, expected {expected}")
                    }
                })
            }
            Check::Exists(path, text) => {
                let held = r.json.is_some_and(|j| !path.query(j).is_empty());
                fail(held, &|| r.unparsed(format!("{text} matched nothing")))
            }
            Check::BodyContains(needle) => fail(contains(r.body, needle.as_bytes()), &|| {
                format!("body does not contain {needle:?}")
            }),
            Check::Header(name, expected) => {
                let held = match (r.headers.get(name.as_str()), expected) {
                    (Some(v), Some(e)) => v == e.as_bytes(),
                    (Some(_), None) => true,
                    (None, _) => false,
                };
                fail(held, &|| format!("header {name} missing or different"))
            }
            Check::MaxLatency(budget) => fail(r.latency <= *budget, &|| {
                format!("latency {:?} over budget {budget:?}", r.latency)
            }),
        }
    }
}

impl Extract {
    /// The extracted value, or the message that says what was looked for and not found.
    /// `cookie` is the user's cookie of that name for the step's origin, when it has one.
    pub(super) fn find(&self, r: &Response<'_>, cookie: Option<&str>) -> Result<Dynamic, String> {
        let text = |s: &str| Dynamic::from(ImmutableString::from(s));
        let value = match &self.source {
            ExtractSource::Json(path, _) => r
                .json
                .and_then(|j| path.query(j).first().map(crate::script::from_json)),
            // An invalid byte in the body must not hide the text around it: match over the
            // body with invalid sequences replaced (no copy when it is valid UTF-8).
            ExtractSource::Regex(re) => re
                .captures(&String::from_utf8_lossy(r.body))
                .and_then(|c| c.get(1).or_else(|| c.get(0)))
                .map(|m| text(m.as_str())),
            ExtractSource::Header(h) => r.headers.get_str(h.as_str()).map(text),
            ExtractSource::Cookie(_) => cookie.map(text),
        };
        match value {
            Some(v) if !v.is_unit() => Ok(v),
            _ => {
                let what = match &self.source {
                    ExtractSource::Json(_, text) => text.clone(),
                    ExtractSource::Regex(re) => format!("regex {}", re.as_str()),
                    ExtractSource::Header(h) => format!("header {h}"),
                    ExtractSource::Cookie(c) => format!("cookie {c}"),
                };
                let msg = format!("extract `{}`: {what} found nothing", self.var);
                Err(if matches!(self.source, ExtractSource::Json(..)) {
                    r.unparsed(msg)
                } else {
                    msg
                })
            }
        }
    }
}

/// JSON equality as a scenario means it: numbers by value, and a number equal to its text form
/// (YAML `5` and JSON `"5"`).
fn json_equal(got: &Value, expected: &Value) -> bool {
    match (got, expected) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (Value::Number(a), Value::String(b)) => b.parse::<f64>().ok() == a.as_f64(),
        _ => got == expected,
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::validate::parse_json_path;

    fn response<'a>(
        status: u16,
        json: Option<&'a Value>,
        body: &'a [u8],
        headers: &'a Headers,
    ) -> Response<'a> {
        Response {
            status,
            json,
            not_json: None,
            body,
            headers,
            latency: Duration::from_millis(20),
        }
    }

    #[test]
    fn each_check_holds_or_says_what_it_found() {
        let json: Value = serde_json::json!({ "status": "filled", "qty": 5 });
        let mut map = http::HeaderMap::new();
        map.insert("x-env", "prod".parse().unwrap());
        let headers = Headers::from(map);
        let r = response(201, Some(&json), br#"{"status":"filled"}"#, &headers);
        let path = |p: &str| parse_json_path(p).unwrap();

        assert!(Check::Status(vec![200, 201]).judge(&r).is_ok());
        assert_eq!(
            Check::Status(vec![200]).judge(&r).unwrap_err(),
            r#"status 201, expected [200]; body: {"status":"filled"}"#,
            "the start of the body says why"
        );
        let eq = |p: &str, v: Value| Check::JsonEq(path(p), p.to_string(), v);
        assert!(eq("$.status", "filled".into()).judge(&r).is_ok());
        // A number equals its text form.
        assert!(eq("$.qty", "5".into()).judge(&r).is_ok());
        assert_eq!(
            eq("$.status", "open".into()).judge(&r).unwrap_err(),
            "$.status is \"filled\", expected \"open\""
        );
        assert_eq!(
            eq("$.nope", 1.into()).judge(&r).unwrap_err(),
            "$.nope is nothing, expected 1"
        );
        assert!(
            Check::Exists(path("$.qty"), "$.qty".into())
                .judge(&r)
                .is_ok()
        );
        assert!(Check::BodyContains("filled".into()).judge(&r).is_ok());
        assert!(Check::BodyContains("open".into()).judge(&r).is_err());
        let header = |v: Option<&str>| Check::Header("x-env".parse().unwrap(), v.map(Into::into));
        assert!(header(None).judge(&r).is_ok());
        assert!(header(Some("prod")).judge(&r).is_ok());
        assert!(header(Some("dev")).judge(&r).is_err());
        assert!(
            Check::MaxLatency(Duration::from_millis(20))
                .judge(&r)
                .is_ok()
        );
        assert!(
            Check::MaxLatency(Duration::from_millis(19))
                .judge(&r)
                .is_err()
        );
    }

    #[test]
    fn a_body_that_is_not_json_is_the_reason_a_json_check_gives() {
        let headers = Headers::default();
        let r = Response {
            not_json: Some("the body is not JSON (expected value at line 1 column 1)"),
            ..response(200, None, b"<html>", &headers)
        };
        let exists = Check::Exists(parse_json_path("$.id").unwrap(), "$.id".into());
        assert_eq!(
            exists.judge(&r).unwrap_err(),
            "$.id matched nothing: the body is not JSON (expected value at line 1 column 1)"
        );
    }

    #[test]
    fn extraction_finds_its_value_or_names_what_it_looked_for() {
        let json: Value = serde_json::json!({ "token": "t-1" });
        let headers = Headers::default();
        let r = response(200, Some(&json), b"id=42;", &headers);
        let extract = |source| Extract {
            var: "v".into(),
            source,
        };
        let token = extract(ExtractSource::Json(
            parse_json_path("$.token").unwrap(),
            "$.token".into(),
        ));
        assert_eq!(token.find(&r, None).unwrap().to_string(), "t-1");
        let id = extract(ExtractSource::Regex(
            regex::Regex::new("id=(\\d+)").unwrap(),
        ));
        assert_eq!(id.find(&r, None).unwrap().to_string(), "42");
        let sid = extract(ExtractSource::Cookie("sid".into()));
        assert_eq!(sid.find(&r, Some("abc")).unwrap().to_string(), "abc");
        assert_eq!(
            sid.find(&r, None).unwrap_err(),
            "extract `v`: cookie sid found nothing"
        );
    }
}
