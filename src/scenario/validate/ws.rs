//! `ws` steps: the upgrade request (validated as a request step is: target, path, query,
//! headers, timeout) and its actions `send`, `expect`, `hold` and `close`.

use http::{HeaderValue, Method};
use regex::Regex;

use super::super::plan::*;
use super::super::raw::*;
use super::super::source::{join_index, join_key};
use super::super::template::{Escape, Template};
use super::*;

impl Validator<'_> {
    pub(super) fn ws_step(
        &mut self,
        s: &RawStep,
        p: &str,
        jc: &mut JourneyCtx,
        cx: &Shared<'_>,
    ) -> Option<WsStep> {
        let open = self.request(s, p, "ws", jc, cx)?;
        let ws_name = jc.requests[open.id.0 as usize].name.clone();
        let mut ok = true;
        let subprotocols = if s.subprotocols.is_empty() {
            None
        } else {
            let joined = s.subprotocols.join(", ");
            match HeaderValue::from_str(&joined) {
                Ok(v)
                    if s.subprotocols
                        .iter()
                        .all(|p| !p.is_empty() && !p.contains([',', ' '])) =>
                {
                    Some(v)
                }
                _ => {
                    self.err(
                        &join_key(p, "subprotocols"),
                        "subprotocols are tokens like `prices.v1`: no spaces or commas",
                    );
                    ok = false;
                    None
                }
            }
        };
        let Some(raw_actions) = &s.steps else {
            self.err_hint(
                p,
                "a `ws` step needs `steps`: what it does on the connection",
                Some("e.g. `steps: [ { send: '{\"subscribe\": \"BTC\"}' }, { expect: { json: { $.type: tick } } } ]`".into()),
            );
            return None;
        };
        let mut actions = Vec::new();
        let mut expects = 0;
        let mut closed_at: Option<usize> = None;
        for (i, a) in raw_actions.iter().enumerate() {
            let ap = join_index(&join_key(p, "steps"), i);
            if let Some(at) = closed_at {
                self.err(
                    &ap,
                    format!("nothing can follow `close` (step {}): the socket is closed; open another with a later `ws` step", at + 1),
                );
                ok = false;
                break;
            }
            if a.close.is_some() {
                closed_at = Some(i);
            }
            let set: Vec<&str> = [
                ("send", a.send.is_some()),
                ("expect", a.expect.is_some()),
                ("hold", a.hold.is_some()),
                ("close", a.close.is_some()),
            ]
            .into_iter()
            .filter_map(|(k, set)| set.then_some(k))
            .collect();
            if set.len() != 1 {
                self.err(
                    &ap,
                    format!(
                        "a WebSocket step does one of send, expect, hold or close{}",
                        if set.is_empty() {
                            String::new()
                        } else {
                            format!(", but this one has {}", set.join(", "))
                        }
                    ),
                );
                ok = false;
                continue;
            }
            if a.name.is_some() && a.expect.is_none() {
                self.err_key(
                    &join_key(&ap, "name"),
                    "only an `expect` has a name (its metric key)",
                );
                ok = false;
            }
            let action = if let Some(v) = &a.send {
                self.ws_send(v, &join_key(&ap, "send"), cx, jc)
                    .map(WsAction::Send)
            } else if let Some(h) = &a.hold {
                self.positive_span(&join_key(&ap, "hold"), h)
                    .map(WsAction::Hold)
            } else if let Some(c) = &a.close {
                let code = match c {
                    serde_json::Value::Bool(true) => Some(1000),
                    serde_json::Value::Number(n) => n
                        .as_u64()
                        .and_then(|n| u16::try_from(n).ok())
                        .filter(|n| *n == 1000 || (3000..=4999).contains(n)),
                    _ => None,
                };
                if code.is_none() {
                    self.err(
                        &join_key(&ap, "close"),
                        "close takes `true` (1000) or a code a client may send: 1000, or 3000 to 4999",
                    );
                }
                code.map(WsAction::Close)
            } else if let Some(e) = &a.expect {
                expects += 1;
                let name = a
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("{ws_name}-expect{expects}"));
                self.ws_expect(e, &name, &ap, open.timeout, jc)
                    .map(|x| WsAction::Expect(Box::new(x)))
            } else {
                None
            };
            match action {
                Some(a) => actions.push(a),
                None => ok = false,
            }
        }
        ok.then_some(WsStep {
            open,
            subprotocols,
            actions,
        })
    }

    fn ws_send(
        &mut self,
        v: &serde_json::Value,
        p: &str,
        cx: &Shared<'_>,
        jc: &mut JourneyCtx,
    ) -> Option<Template> {
        match v {
            serde_json::Value::String(text) => self.template(text, p, Escape::None, cx.names, jc),
            serde_json::Value::Object(_) | serde_json::Value::Array(_) => {
                let r = {
                    let mut r = self.resolver(cx.names, jc);
                    Template::compile_json(v, &mut r)
                };
                match r {
                    Ok(t) => Some(t),
                    Err(e) => {
                        self.err(p, e.message);
                        None
                    }
                }
            }
            _ => {
                self.err(p, "send takes text, or a map or list sent as JSON");
                None
            }
        }
    }

    fn ws_expect(
        &mut self,
        e: &RawWsExpect,
        name: &str,
        ap: &str,
        timeout: std::time::Duration,
        jc: &mut JourneyCtx,
    ) -> Option<WsExpect> {
        let p = join_key(ap, "expect");
        let mut ok = true;
        if !valid_name(name) {
            self.err(
                &join_key(ap, "name"),
                format!(
                    "`{name}` may use only letters, digits, `_` and `-` (it becomes a metric key)"
                ),
            );
            ok = false;
        } else {
            let here = self.idx.value(&join_key(ap, "name"));
            ok &= self.claim_step_name(name, here, jc);
        }
        let mut json = Vec::new();
        for (path, expected) in &e.json {
            match self.json_path(path, &join_key(&join_key(&p, "json"), path)) {
                Some(jp) => json.push(Check::JsonEq(jp, path.clone(), expected.clone())),
                None => ok = false,
            }
        }
        let regex = match &e.regex {
            None => None,
            Some(r) => match Regex::new(r) {
                Ok(re) => Some(re),
                Err(err) => {
                    self.err(
                        &join_key(&p, "regex"),
                        format!(
                            "invalid regex: {}",
                            err.to_string().lines().last().unwrap_or_default()
                        ),
                    );
                    ok = false;
                    None
                }
            },
        };
        let within = match &e.within {
            Some(w) => self.positive_span(&join_key(&p, "within"), w),
            None => Some(timeout),
        };
        let extract = self.extractions(&e.extract, &p);
        for (var, x) in &e.extract {
            if let RawExtract::Spec(spec) = x
                && (spec.header.is_some() || spec.cookie.is_some())
            {
                self.err_key(
                    &join_key(&join_key(&p, "extract"), var),
                    "a message has no headers or cookies: extract with a JSONPath or a regex",
                );
                ok = false;
            }
        }
        let (Some(within), Some(extract)) = (within, extract) else {
            return None;
        };
        if !ok {
            return None;
        }
        let id = StepId(jc.requests.len() as u32);
        jc.requests.push(RequestInfo {
            name: name.to_string(),
            method: Method::from_bytes(b"WS").unwrap_or(Method::GET),
            url: "expect".to_string(),
        });
        Some(WsExpect {
            id,
            json,
            regex,
            within,
            extract,
        })
    }
}
