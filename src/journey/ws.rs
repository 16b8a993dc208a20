//! A WebSocket step: open the user's connection (or reuse the one it has to that URL), then
//! send, expect, hold and close, each failure counted on its key and never a panic.
//!
//! Metrics: the step's key counts one execution per run of the step, with the handshake as its
//! latency when it opened a connection (a reused one has no latency), and the messages and bytes
//! of the whole step; each `expect` has a key of its own whose latency is the round trip from the
//! last `send` before it (or from its own start, with none) to the matching message.

use std::time::{Duration, Instant};

use rhai::Dynamic;

use super::check::Response;
use super::failure::{Place, fail};
use super::request::build;
use super::{FlowCtx, VirtualUser};
use crate::http::ErrorClass;
use crate::http::ws::{WsConn, WsMessage};
use crate::metrics::RequestSample;
use crate::scenario::plan::{WsAction, WsExpect, WsStep};

type Fail = (ErrorClass, String);

/// Runs a `ws` step due at `due`; true when everything in it succeeded.
pub(super) async fn execute(w: &WsStep, vu: &mut VirtualUser, ctx: &FlowCtx, due: Instant) -> bool {
    let key = ctx.key_base + w.open.id.0 as usize;
    let batch = ctx.registry.batch_mark(ctx.is_live());
    let req = match build(&w.open, vu, ctx) {
        Ok(r) => r,
        Err(msg) => {
            super::request::template_failed(ctx, vu, key, due, false, msg);
            return false;
        }
    };
    let path = req.target.as_str().to_string();
    let mut sample = RequestSample::default();
    let origin = w.open.origin;
    let found = vu
        .ws
        .iter()
        .position(|(o, p, _)| *o == origin && *p == path);
    let conn = match found {
        Some(i) => vu.ws.swap_remove(i).2,
        None => {
            let (parts, _) = req.to_request(None, false).into_parts();
            let mut up = http::Request::from_parts(parts, ());
            // Reports call the step `WS`; on the wire the upgrade is a GET (RFC 6455 §4.1).
            *up.method_mut() = http::Method::GET;
            let o = &ctx.plan.origins[origin];
            let scheme = if o.https { "wss" } else { "ws" };
            let authority = o.authority.to_str().unwrap_or(&o.host);
            if let Ok(uri) = format!("{scheme}://{authority}{path}").parse() {
                *up.uri_mut() = uri;
            }
            if let Some(p) = &w.subprotocols {
                up.headers_mut()
                    .insert(http::header::SEC_WEBSOCKET_PROTOCOL, p.clone());
            }
            let open = ctx
                .client
                .ws_open(&ctx.plan.origins[origin], up, w.open.timeout)
                .await;
            sample.sent = open.sent;
            sample.latency = open.done_at.saturating_duration_since(due);
            sample.service = open.done_at.saturating_duration_since(open.sent_at);
            sample.ttfb = open.status.map(|_| sample.service);
            sample.connect = open.connect;
            sample.tls = open.tls;
            sample.status = open.status;
            vu.work.requests += 1;
            if open.error.is_none() {
                vu.store_cookies(origin, &open.headers);
            }
            match (open.conn, open.error) {
                (Some(c), _) => c,
                (None, error) => {
                    let (class, msg) = error.unwrap_or((
                        ErrorClass::Protocol,
                        "the WebSocket handshake failed".into(),
                    ));
                    sample.error = Some(class);
                    ctx.registry
                        .request(key, &sample, ctx.registry.overlapped(batch));
                    fail(ctx, Some(vu), Place::Step(key), class, || msg);
                    return false;
                }
            }
        }
    };
    let mut run = Run {
        conn: Some(conn),
        last_send: None,
        messages: (0, 0),
        bytes: (0, 0),
    };
    let mut ok = true;
    let mut step_error: Option<Fail> = None;
    for action in &w.actions {
        let Some(c) = run.conn.as_mut() else {
            step_error = Some((
                ErrorClass::WsClosed,
                "the WebSocket was already closed by an earlier `close`".into(),
            ));
            break;
        };
        match action {
            WsAction::Send(t) => {
                let mut out = Vec::with_capacity(128);
                let rendered = t.render(&super::request::render_ctx(vu), &mut out);
                if let Err(m) = rendered {
                    step_error = Some((ErrorClass::Template, super::request::describe_missing(m)));
                    break;
                }
                let text = String::from_utf8_lossy(&out).into_owned();
                let n = text.len() as u64;
                if let Err(e) = c.send_text(text, w.open.timeout).await {
                    step_error = Some(e);
                    break;
                }
                run.messages.1 += 1;
                run.bytes.1 += n;
                run.last_send = Some(Instant::now());
            }
            WsAction::Hold(d) => {
                let until = tokio::time::Instant::now() + *d;
                loop {
                    match tokio::time::timeout_at(until, c.recv()).await {
                        Err(_) => break,
                        Ok(Ok(m)) => {
                            run.messages.0 += 1;
                            run.bytes.0 += m.len() as u64;
                        }
                        Ok(Err(e)) => {
                            step_error = Some(e);
                            break;
                        }
                    }
                }
                if step_error.is_some() {
                    break;
                }
            }
            WsAction::Close(code) => {
                if let Some(c) = run.conn.take()
                    && let Err(e) = c
                        .close(*code, w.open.timeout.min(Duration::from_secs(2)))
                        .await
                {
                    step_error = Some(e);
                    break;
                }
            }
            WsAction::Expect(x) => {
                if !expect(x, &mut run, vu, ctx).await {
                    ok = false;
                    break;
                }
            }
        }
    }
    sample.messages = run.messages;
    sample.bytes_in = run.bytes.0;
    sample.bytes_decoded = run.bytes.0;
    sample.bytes_out = run.bytes.1;
    vu.work.bytes += run.bytes.0 + run.bytes.1;
    if let Some((class, msg)) = step_error {
        sample.error = Some(class);
        ctx.registry
            .request(key, &sample, ctx.registry.overlapped(batch));
        fail(ctx, Some(vu), Place::Step(key), class, || msg);
        // A connection in an unknown state is not kept.
        return false;
    }
    ctx.registry
        .request(key, &sample, ctx.registry.overlapped(batch));
    if ok && let Some(c) = run.conn.take() {
        vu.ws.push((origin, path, c));
    }
    ok
}

/// The state of one run of a `ws` step.
struct Run {
    conn: Option<WsConn>,
    last_send: Option<Instant>,
    /// (received, sent).
    messages: (u64, u64),
    /// (received, sent).
    bytes: (u64, u64),
}

/// Waits for a message that matches `x`, recording the round trip on its key; true on a match
/// (whose extractions then hold).
async fn expect(x: &WsExpect, run: &mut Run, vu: &mut VirtualUser, ctx: &FlowCtx) -> bool {
    let key = ctx.key_base + x.id.0 as usize;
    let batch = ctx
        .registry
        .overlapped(ctx.registry.batch_mark(ctx.is_live()));
    let start = run.last_send.take().unwrap_or_else(Instant::now);
    let deadline = tokio::time::Instant::now() + x.within;
    let mut sample = RequestSample {
        sent: true,
        ..RequestSample::default()
    };
    let mut last: Option<String> = None;
    let Some(conn) = run.conn.as_mut() else {
        return false;
    };
    let outcome: Result<(u32, Vec<(rhai::ImmutableString, Dynamic)>), Fail> = loop {
        let m = match tokio::time::timeout_at(deadline, conn.recv()).await {
            Err(_) => {
                break Err((
                    ErrorClass::Timeout,
                    format!(
                        "no message matched within {:?}{}",
                        x.within,
                        last.as_deref()
                            .map(|l| format!("; the last one was {l}"))
                            .unwrap_or_else(|| "; none arrived".into())
                    ),
                ));
            }
            Ok(Err(e)) => break Err(e),
            Ok(Ok(m)) => m,
        };
        run.messages.0 += 1;
        run.bytes.0 += m.len() as u64;
        let body: &[u8] = match &m {
            WsMessage::Text(t) => t.as_bytes(),
            WsMessage::Binary(b) => b,
        };
        if let Some(found) = matches(x, body, start.elapsed()) {
            break Ok(found);
        }
        last = Some(
            super::check::excerpt(body)
                .trim_start_matches("; body: ")
                .to_string(),
        );
    };
    sample.latency = start.elapsed();
    sample.service = sample.latency;
    match outcome {
        Ok((passed, found)) => {
            sample.checks = (passed, 0);
            ctx.registry.request(key, &sample, batch);
            for (var, v) in found {
                vu.scope.set_or_push(var, v);
            }
            true
        }
        Err((class, msg)) => {
            // A timeout keeps its latency (the whole `within`), as an HTTP timeout does.
            sample.error = Some(class);
            ctx.registry.request(key, &sample, batch);
            fail(ctx, Some(vu), Place::Step(key), class, || msg);
            false
        }
    }
}

/// Whether a message meets every condition of `x`; then the checks it passed and what it
/// extracts. A message that matches but cannot be extracted from does not match.
fn matches(
    x: &WsExpect,
    body: &[u8],
    latency: Duration,
) -> Option<(u32, Vec<(rhai::ImmutableString, Dynamic)>)> {
    if let Some(re) = &x.regex
        && !re.is_match(&String::from_utf8_lossy(body))
    {
        return None;
    }
    let needs_json = !x.json.is_empty()
        || x.extract
            .iter()
            .any(|e| matches!(e.source, crate::scenario::plan::ExtractSource::Json(..)));
    let json = if needs_json {
        Some(serde_json::from_slice::<serde_json::Value>(body).ok()?)
    } else {
        None
    };
    let headers = crate::http::Headers::default();
    let resp = Response {
        status: 101,
        json: json.as_ref(),
        not_json: None,
        body,
        headers: &headers,
        latency,
    };
    if x.json.iter().any(|c| c.judge(&resp).is_err()) {
        return None;
    }
    let mut found = Vec::with_capacity(x.extract.len());
    for e in &x.extract {
        found.push((e.var.clone(), e.find(&resp, None).ok()?));
    }
    Some((x.json.len() as u32 + x.regex.is_some() as u32, found))
}

/// Closes the user's WebSockets at the end of its iteration (a close frame each, not waited on).
pub(super) async fn close_all(vu: &mut VirtualUser) {
    // A polite close, but the user does not wait on a server that ignores it.
    for (_, _, c) in vu.ws.drain(..) {
        let _ = c.close(1000, Duration::from_millis(100)).await;
    }
}
