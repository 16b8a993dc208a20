//! `{{ name }}` templates, compiled once at load into literal and variable segments.
//!
//! Names are resolved at compile time into [`VarRef`]s (a virtual-user variable, a feeder column or
//! a built-in), so rendering does no parsing and an unknown name is a validation error. Rendering
//! appends to a caller-owned buffer; a variable that is unset at run time is a [`Missing`] error of
//! the step, never a panic.
//!
//! JSON bodies are compiled from the YAML value: a string that is exactly one placeholder inserts
//! the variable's JSON value (`amount: "{{ amount }}"` sends a number when `amount` is a number);
//! placeholders inside longer strings are JSON-escaped.

use std::fmt::Write as _;
use std::sync::Arc;

use rhai::{Dynamic, ImmutableString, Scope};

/// What a placeholder reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VarRef {
    /// A virtual-user variable (extracted, scripted or from `vars`).
    Var(ImmutableString),
    /// A column of a feeder's current row.
    Feed {
        /// Feeder index in the plan.
        feeder: usize,
        /// Column index in the feeder.
        field: usize,
    },
    /// The virtual user's number within its flow.
    VuId,
    /// The virtual user's iteration counter.
    Iteration,
    /// A fresh random UUID v4.
    Uuid,
    /// Milliseconds since the Unix epoch.
    TimestampMs,
}

/// How a value is written into the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    /// As text.
    None,
    /// As a JSON value (strings quoted, numbers bare).
    JsonValue,
    /// Escaped for the inside of a JSON string.
    JsonString,
    /// Percent-encoded for a query string.
    Url,
}

#[derive(Debug, Clone, PartialEq)]
enum Seg {
    Lit(String),
    Var(VarRef, Escape),
}

/// A compiled template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    segs: Vec<Seg>,
}

/// A placeholder with no value at render time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("variable `{0}` is not set")]
pub struct Missing(pub String);

/// A template that could not be compiled; `offset` is the byte offset in the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    /// Byte offset of the problem within the template text.
    pub offset: usize,
    /// What is wrong.
    pub message: String,
}

/// The values a template reads from.
#[derive(Debug)]
pub struct RenderCtx<'a> {
    /// The virtual user's variables.
    pub scope: &'a Scope<'static>,
    /// Each feeder's current row for this virtual user (`None`: not drawn).
    pub rows: &'a [Option<Arc<Vec<String>>>],
    /// Feeder names and columns, for messages.
    pub feed_names: &'a [(String, Vec<String>)],
    /// Virtual user number.
    pub vu: u64,
    /// Iteration number.
    pub iteration: u64,
}

/// Names inside `{{ }}` in `text`, with their byte offsets (for validation without resolving).
pub fn placeholders(text: &str) -> Result<Vec<(usize, &str)>, TemplateError> {
    let mut out = Vec::new();
    let mut rest = 0;
    while let Some(open) = text[rest..].find("{{") {
        let start = rest + open;
        let Some(close) = text[start + 2..].find("}}") else {
            return Err(TemplateError {
                offset: start,
                message: "`{{` is not closed: expected `}}`".into(),
            });
        };
        let name = text[start + 2..start + 2 + close].trim();
        let valid = !name.is_empty()
            && name.split('.').count() <= 2
            && name.split('.').all(|p| {
                !p.is_empty()
                    && p.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            });
        if !valid {
            return Err(TemplateError {
                offset: start,
                message: format!(
                    "`{{{{ {name} }}}}` is not a variable name: expected `{{{{ name }}}}` or `{{{{ feeder.field }}}}`"
                ),
            });
        }
        out.push((start, name));
        rest = start + 2 + close + 2;
    }
    Ok(out)
}

impl Template {
    /// Compiles text, resolving each name with `resolve`, which returns an error message for an
    /// unknown name.
    pub fn compile(
        text: &str,
        escape: Escape,
        resolve: &mut dyn FnMut(&str) -> Result<VarRef, String>,
    ) -> Result<Template, TemplateError> {
        let mut segs = Vec::new();
        push_text(&mut segs, text, escape, resolve)?;
        Ok(Template { segs })
    }

    /// Compiles a JSON value into a template producing JSON text.
    pub fn compile_json(
        value: &serde_json::Value,
        resolve: &mut dyn FnMut(&str) -> Result<VarRef, String>,
    ) -> Result<Template, TemplateError> {
        let mut segs = Vec::new();
        push_json(&mut segs, value, resolve)?;
        Ok(Template { segs })
    }

    /// A template with no placeholders.
    pub fn literal(text: &str) -> Template {
        Template {
            segs: vec![Seg::Lit(text.to_string())],
        }
    }

    /// Appends literal text.
    pub fn push_literal(&mut self, text: &str) {
        push_lit(&mut self.segs, text);
    }

    /// Appends another template.
    pub fn append(&mut self, other: Template) {
        for seg in other.segs {
            match seg {
                Seg::Lit(s) => push_lit(&mut self.segs, &s),
                v => self.segs.push(v),
            }
        }
    }

    /// The whole text when there are no placeholders.
    pub fn as_literal(&self) -> Option<&str> {
        match self.segs.as_slice() {
            [] => Some(""),
            [Seg::Lit(s)] => Some(s),
            _ => None,
        }
    }

    /// Appends the rendering to `out`.
    pub fn render(&self, ctx: &RenderCtx<'_>, out: &mut Vec<u8>) -> Result<(), Missing> {
        for seg in &self.segs {
            match seg {
                Seg::Lit(s) => out.extend_from_slice(s.as_bytes()),
                Seg::Var(v, esc) => render_var(v, *esc, ctx, out)?,
            }
        }
        Ok(())
    }

    /// What the placeholders read, in order.
    pub fn refs(&self) -> impl Iterator<Item = &VarRef> {
        self.segs.iter().filter_map(|s| match s {
            Seg::Var(v, _) => Some(v),
            Seg::Lit(_) => None,
        })
    }

    /// Renders into a new string (for the rare callers off the hot path).
    pub fn render_string(&self, ctx: &RenderCtx<'_>) -> Result<String, Missing> {
        let mut out = Vec::new();
        self.render(ctx, &mut out)?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }
}

fn push_lit(segs: &mut Vec<Seg>, s: &str) {
    if s.is_empty() {
        return;
    }
    if let Some(Seg::Lit(last)) = segs.last_mut() {
        last.push_str(s);
    } else {
        segs.push(Seg::Lit(s.to_string()));
    }
}

fn push_text(
    segs: &mut Vec<Seg>,
    text: &str,
    escape: Escape,
    resolve: &mut dyn FnMut(&str) -> Result<VarRef, String>,
) -> Result<(), TemplateError> {
    let mut last = 0;
    for (offset, name) in placeholders(text)? {
        push_lit(segs, &escape_literal(&text[last..offset], escape));
        let v = resolve(name).map_err(|message| TemplateError { offset, message })?;
        segs.push(Seg::Var(v, escape));
        let close = text[offset..]
            .find("}}")
            .map_or(text.len(), |c| offset + c + 2);
        last = close;
    }
    push_lit(segs, &escape_literal(&text[last..], escape));
    Ok(())
}

/// Written text escaped as a rendered value would be (a query or form value's `&` and spaces
/// are data, not separators).
fn escape_literal(lit: &str, escape: Escape) -> String {
    match escape {
        Escape::JsonString => json_escape(lit),
        Escape::Url => {
            let mut out = Vec::with_capacity(lit.len());
            url_encode(lit, &mut out);
            String::from_utf8_lossy(&out).into_owned()
        }
        Escape::None | Escape::JsonValue => lit.to_string(),
    }
}

fn json_escape(s: &str) -> String {
    let quoted = serde_json::Value::String(s.to_string()).to_string();
    quoted[1..quoted.len() - 1].to_string()
}

fn push_json(
    segs: &mut Vec<Seg>,
    value: &serde_json::Value,
    resolve: &mut dyn FnMut(&str) -> Result<VarRef, String>,
) -> Result<(), TemplateError> {
    match value {
        serde_json::Value::String(s) => {
            let names = placeholders(s)?;
            let whole = names.len() == 1 && s.trim().starts_with("{{") && s.trim().ends_with("}}");
            if whole {
                let v =
                    resolve(names[0].1).map_err(|message| TemplateError { offset: 0, message })?;
                segs.push(Seg::Var(v, Escape::JsonValue));
            } else {
                push_lit(segs, "\"");
                push_text(segs, s, Escape::JsonString, resolve)?;
                push_lit(segs, "\"");
            }
        }
        serde_json::Value::Array(items) => {
            push_lit(segs, "[");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    push_lit(segs, ",");
                }
                push_json(segs, item, resolve)?;
            }
            push_lit(segs, "]");
        }
        serde_json::Value::Object(map) => {
            push_lit(segs, "{");
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    push_lit(segs, ",");
                }
                push_lit(segs, &serde_json::Value::String(k.clone()).to_string());
                push_lit(segs, ":");
                push_json(segs, v, resolve)?;
            }
            push_lit(segs, "}");
        }
        other => push_lit(segs, &other.to_string()),
    }
    Ok(())
}

fn missing_name(v: &VarRef, ctx: &RenderCtx<'_>) -> String {
    match v {
        VarRef::Var(n) => n.to_string(),
        VarRef::Feed { feeder, field } => ctx
            .feed_names
            .get(*feeder)
            .map(|(n, cols)| format!("{n}.{}", cols.get(*field).map_or("?", |c| c.as_str())))
            .unwrap_or_else(|| "feeder".into()),
        _ => "built-in".into(),
    }
}

fn render_var(
    v: &VarRef,
    esc: Escape,
    ctx: &RenderCtx<'_>,
    out: &mut Vec<u8>,
) -> Result<(), Missing> {
    let mut num = String::new();
    let text: &str = match v {
        VarRef::Var(name) => {
            let value = ctx
                .scope
                .get(name.as_str())
                .filter(|d| !d.is_unit())
                .ok_or_else(|| Missing(missing_name(v, ctx)))?;
            return write_dynamic(value, esc, out);
        }
        VarRef::Feed { feeder, field } => ctx
            .rows
            .get(*feeder)
            .and_then(|r| r.as_ref())
            .and_then(|r| r.get(*field))
            .map(String::as_str)
            .ok_or_else(|| Missing(missing_name(v, ctx)))?,
        VarRef::VuId => {
            let _ = write!(num, "{}", ctx.vu);
            return write_number(&num, esc, out);
        }
        VarRef::Iteration => {
            let _ = write!(num, "{}", ctx.iteration);
            return write_number(&num, esc, out);
        }
        VarRef::TimestampMs => {
            let ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis());
            let _ = write!(num, "{ms}");
            return write_number(&num, esc, out);
        }
        VarRef::Uuid => {
            num = uuid::Uuid::new_v4().to_string();
            &num
        }
    };
    write_str(text, esc, out);
    Ok(())
}

fn write_number(text: &str, esc: Escape, out: &mut Vec<u8>) -> Result<(), Missing> {
    out.extend_from_slice(text.as_bytes());
    let _ = esc;
    Ok(())
}

fn write_str(text: &str, esc: Escape, out: &mut Vec<u8>) {
    match esc {
        Escape::None => out.extend_from_slice(text.as_bytes()),
        Escape::JsonString => out.extend_from_slice(json_escape(text).as_bytes()),
        Escape::JsonValue => out.extend_from_slice(
            serde_json::Value::String(text.to_string())
                .to_string()
                .as_bytes(),
        ),
        Escape::Url => url_encode(text, out),
    }
}

fn write_dynamic(d: &Dynamic, esc: Escape, out: &mut Vec<u8>) -> Result<(), Missing> {
    if let Some(s) = d.read_lock::<ImmutableString>() {
        write_str(s.as_str(), esc, out);
    } else if let Ok(i) = d.as_int() {
        let _ = write!(Utf8Sink(out), "{i}");
    } else if let Ok(f) = d.as_float() {
        let _ = write!(Utf8Sink(out), "{f}");
    } else if let Ok(b) = d.as_bool() {
        out.extend_from_slice(if b { b"true" } else { b"false" });
    } else {
        let json = crate::script::to_json(d).to_string();
        match esc {
            Escape::JsonValue => out.extend_from_slice(json.as_bytes()),
            _ => write_str(&json, esc, out),
        }
    }
    Ok(())
}

struct Utf8Sink<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Utf8Sink<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn url_encode(text: &str, out: &mut Vec<u8>) {
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b);
        } else {
            let _ = write!(Utf8Sink(out), "%{b:02X}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(name: &str) -> Result<VarRef, String> {
        match name {
            "vu" => Ok(VarRef::VuId),
            "users.name" => Ok(VarRef::Feed {
                feeder: 0,
                field: 1,
            }),
            n if n.starts_with("bad") => Err(format!("unknown variable `{n}`")),
            n => Ok(VarRef::Var(n.into())),
        }
    }

    fn render(t: &Template, scope: &Scope<'static>) -> Result<String, Missing> {
        let rows = [Some(Arc::new(vec!["7".to_string(), "ann".to_string()]))];
        let names = [(
            "users".to_string(),
            vec!["id".to_string(), "name".to_string()],
        )];
        let ctx = RenderCtx {
            scope,
            rows: &rows,
            feed_names: &names,
            vu: 3,
            iteration: 9,
        };
        t.render_string(&ctx)
    }

    #[test]
    fn text_templates_mix_literals_vars_feeds_and_builtins() {
        let t = Template::compile(
            "/u/{{ users.name }}/{{token}}?vu={{ vu }}",
            Escape::None,
            &mut resolve,
        )
        .unwrap();
        let mut scope = Scope::new();
        scope.push("token", ImmutableString::from("abc"));
        assert_eq!(render(&t, &scope).unwrap(), "/u/ann/abc?vu=3");
    }

    #[test]
    fn query_and_form_values_are_encoded_literals_and_all() {
        // The README promises `query:` and `form:` values URL-encoded: `&`, `+`, `=`, spaces
        // and non-ASCII in the written text too, not only in what a variable renders.
        let t = Template::compile("a&b=c d+e café {{ token }}", Escape::Url, &mut resolve).unwrap();
        let mut scope = Scope::new();
        scope.push("token", ImmutableString::from("x/y"));
        assert_eq!(
            render(&t, &scope).unwrap(),
            "a%26b%3Dc%20d%2Be%20caf%C3%A9%20x%2Fy"
        );
    }

    #[test]
    fn unset_variable_is_an_error_not_a_panic() {
        let t = Template::compile("Bearer {{ token }}", Escape::None, &mut resolve).unwrap();
        assert_eq!(render(&t, &Scope::new()), Err(Missing("token".into())));
        let mut scope = Scope::new();
        scope.push("token", ());
        assert_eq!(render(&t, &scope), Err(Missing("token".into())));
    }

    #[test]
    fn json_bodies_keep_types_and_escape_strings() {
        let v: serde_json::Value = serde_json::json!({ "amount": "{{ amount }}", "memo": "hi \"{{ who }}\"", "n": [1, true] });
        let t = Template::compile_json(&v, &mut resolve).unwrap();
        let mut scope = Scope::new();
        scope.push("amount", 10.5_f64);
        scope.push("who", ImmutableString::from("a\"b"));
        let out = render(&t, &scope).unwrap();
        let parsed: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(parsed["amount"], serde_json::json!(10.5));
        assert_eq!(parsed["memo"], serde_json::json!("hi \"a\"b\""));
        assert_eq!(parsed["n"], serde_json::json!([1, true]));
    }

    #[test]
    fn compile_errors_point_at_the_placeholder() {
        let e = Template::compile("ab {{ nope", Escape::None, &mut resolve).unwrap_err();
        assert_eq!(e.offset, 3);
        let e = Template::compile("x{{ bad_one }}", Escape::None, &mut resolve).unwrap_err();
        assert_eq!(e.offset, 1);
        assert!(e.message.contains("bad_one"));
        assert!(Template::compile("{{ a b }}", Escape::None, &mut resolve).is_err());
    }

    #[test]
    fn url_escape_encodes_reserved_characters() {
        let t = Template::compile("{{ q }}", Escape::Url, &mut resolve).unwrap();
        let mut scope = Scope::new();
        scope.push("q", ImmutableString::from("a b&c"));
        assert_eq!(render(&t, &scope).unwrap(), "a%20b%26c");
    }
}
