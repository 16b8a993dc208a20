//! A request step: render, send, check, extract, retry, record.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::HeaderValue;
use http::uri::PathAndQuery;
use rand::Rng;
use rhai::Dynamic;

use super::check::Response;
use super::failure::{Place, fail};
use super::{FlowCtx, VirtualUser};
use crate::http::{BodyPolicy, ErrorClass, Exchange, Headers, Outgoing};
use crate::metrics::RequestSample;
use crate::scenario::plan::{Body, Check, ExtractSource, HeaderTemplate, Request, Retry};
use crate::scenario::template::{Missing, RenderCtx};

/// Runs a request step (with its retries); true when it succeeded.
pub(super) async fn execute(
    r: &Request,
    vu: &mut VirtualUser,
    ctx: &FlowCtx,
    due_at: Instant,
) -> bool {
    let key = ctx.key_base + r.id.0 as usize;
    let mut due = due_at;
    let mut attempt = 0u32;
    let mut replayed = false;
    loop {
        let built;
        let req = match ctx.prebuilt.get(key, r, &ctx.plan) {
            // The same bytes for every user every time, unless the user holds cookies.
            Some(req) if !vu.has_cookies(r.origin) => req,
            _ => match build(r, vu, ctx) {
                Ok(req) => {
                    built = req;
                    &built
                }
                Err(msg) => {
                    template_failed(ctx, vu, key, due, attempt > 0, msg);
                    return false;
                }
            },
        };
        let plan = &ctx.plan;
        let origin = &plan.origins[r.origin];
        let policy = BodyPolicy {
            keep: r.keeps_body,
            max_bytes: plan.settings.max_body_bytes,
        };
        let batch = ctx.registry.batch_mark(ctx.is_live());
        let mut ex = ctx
            .client
            .send(
                &mut vu.conns,
                r.origin,
                origin,
                req,
                policy,
                &mut vu.buf,
                r.timeout,
            )
            .await;
        if ex.stale && !replayed {
            // Sent on a keep-alive connection the server had just closed: send it again at once,
            // still timed from the same due time (the user is still waiting).
            replayed = true;
            continue;
        }
        // Every hop of a redirect chain is part of this step. Boxed, and only when there is a
        // redirect: following one takes a second send's state, which every request would
        // otherwise carry in its user's task.
        // (The exchange stays where it is unless a redirect replaces it: moving it is a copy.)
        let (hops, last_origin) = if super::redirect::applies(r, &ex) {
            let (last, hops, origin) =
                Box::pin(super::redirect::follow(r, req, vu, ctx, ex, policy)).await;
            ex = last;
            (hops, origin)
        } else {
            (0, r.origin)
        };
        vu.work.requests += 1 + u64::from(hops);
        vu.work.bytes += ex.bytes_in + ex.bytes_out;
        let mut cookies_dropped = 0;
        if ex.error.is_none() {
            cookies_dropped = vu.store_cookies(last_origin, &ex.headers);
            server_timing(ctx, key, vu, &ex.headers);
        }
        let latency = ex.done_at.saturating_duration_since(due);
        let (passed, failure) = evaluate(r, vu, &ex, latency);
        let error = ex
            .error
            .as_ref()
            .map(|(c, _)| *c)
            .or(failure.as_ref().map(|(c, _)| *c));
        let sample = RequestSample {
            latency,
            service: ex.done_at.saturating_duration_since(ex.sent_at),
            ttfb: ex.head_at.map(|h| h.saturating_duration_since(ex.sent_at)),
            connect: ex.connect,
            tls: ex.tls,
            status: ex.status,
            error,
            bytes_in: ex.bytes_in,
            bytes_decoded: ex.bytes_decoded,
            redirects: hops,
            messages: (0, 0),
            bytes_out: ex.bytes_out,
            retry: attempt > 0,
            checks: (passed, failure.is_some() as u32),
            cookies_dropped,
            sent: ex.sent,
        };
        ctx.registry
            .request(key, &sample, ctx.registry.overlapped(batch));
        let Some(class) = error else { return true };
        let message = || match (&ex.error, &failure) {
            (Some((_, m)), _) | (None, Some((_, m))) => m.clone(),
            _ => String::new(),
        };
        fail(ctx, Some(vu), Place::Step(key), class, message);
        match &r.retry {
            Some(policy) if attempt < policy.max && should_retry(policy, class, ex.status) => {
                let pause = backoff(policy, attempt, &mut vu.rng);
                due = Instant::now() + pause;
                due += vu.wait_until(due).await;
                attempt += 1;
            }
            _ => return false,
        }
    }
}

/// Records a response's `Server-Timing` metrics for the step and the iteration (parsed only
/// when the response carries the header).
pub(super) fn server_timing(ctx: &FlowCtx, key: usize, vu: &mut VirtualUser, headers: &Headers) {
    if let Some(st) = headers.get_str("server-timing") {
        let mut metrics = Vec::new();
        crate::http::server_timing::parse(st, &mut metrics);
        ctx.registry.server_timing(key, &metrics);
        vu.tally(&metrics);
    }
}

/// Counts a request that could not be built (a template variable unset, a rendered value that
/// is no valid header or URI) on step key `key`.
pub(super) fn template_failed(
    ctx: &FlowCtx,
    vu: &VirtualUser,
    key: usize,
    due: Instant,
    retry: bool,
    msg: String,
) {
    ctx.registry
        .request(key, &failed_sample(due, ErrorClass::Template, retry), None);
    fail(
        ctx,
        Some(vu),
        Place::Step(key),
        ErrorClass::Template,
        || msg,
    );
}

pub(super) fn failed_sample(due: Instant, class: ErrorClass, retry: bool) -> RequestSample {
    RequestSample {
        latency: Instant::now().saturating_duration_since(due),
        error: Some(class),
        retry,
        ..RequestSample::default()
    }
}

fn should_retry(p: &Retry, class: ErrorClass, status: Option<u16>) -> bool {
    match class {
        ErrorClass::Timeout => p.timeout,
        ErrorClass::Reset => p.reset,
        // Broken framing or a malformed response repeats on a retry: retrying only multiplies
        // the load on a server that is already wrong.
        ErrorClass::Protocol => false,
        ErrorClass::ConnectRefused | ErrorClass::Connect | ErrorClass::Tls => p.connect,
        ErrorClass::Status | ErrorClass::Check => status
            .is_some_and(|s| p.statuses.contains(&s) || (p.any_5xx && (500..600).contains(&s))),
        _ => false,
    }
}

/// Exponential backoff within the policy's range, with full jitter (AWS's recommendation: it
/// spreads retries of many users instead of synchronising them).
fn backoff(p: &Retry, attempt: u32, rng: &mut impl Rng) -> Duration {
    let cap = p.backoff.high.as_secs_f64();
    let base = p.backoff.low.as_secs_f64() * 2f64.powi(attempt.min(30) as i32);
    let top = base.min(cap).max(p.backoff.low.as_secs_f64());
    Duration::from_secs_f64(
        p.backoff.low.as_secs_f64().min(top)
            + (top - p.backoff.low.as_secs_f64()).max(0.0) * rng.random::<f64>(),
    )
}

/// What templates read: the virtual user's variables and feeder rows. (Feeder names only word a
/// message about a row that was never drawn, which the journey's draws rule out.)
pub(super) fn render_ctx(vu: &VirtualUser) -> RenderCtx<'_> {
    RenderCtx {
        scope: &vu.scope,
        rows: &vu.rows,
        feed_names: &[],
        vu: vu.id,
        iteration: vu.iteration,
    }
}

/// The requests of a run that render the same every time for every user: a fixed path,
/// literal headers and body, no `traceparent`. Each is made once, on first use, and sent as it
/// is (frozen, so that a connection which sent it last time sends the same bytes again) by any
/// user without cookies for its origin: W1's request cost 1,000 instructions to build and
/// write each time.
#[derive(Debug)]
pub struct Prebuilt(Vec<std::sync::OnceLock<Option<Outgoing>>>);

impl Prebuilt {
    /// Room for `steps` step keys.
    pub fn new(steps: usize) -> Prebuilt {
        Prebuilt((0..steps).map(|_| std::sync::OnceLock::new()).collect())
    }

    /// The request of step key `key` (the request `r`), if it never changes.
    fn get(&self, key: usize, r: &Request, plan: &crate::scenario::Plan) -> Option<&Outgoing> {
        self.0.get(key)?.get_or_init(|| prebuild(r, plan)).as_ref()
    }
}

/// `r` as [`build`] makes it for a user without cookies, if nothing in it is rendered.
fn prebuild(r: &Request, plan: &crate::scenario::Plan) -> Option<Outgoing> {
    let target = r.fixed_target.clone()?;
    if plan.settings.traceparent {
        return None;
    }
    let origin = plan.origins.get(r.origin)?;
    let mut out = Outgoing::new(r.method.clone(), target, r.headers.len() + 2);
    out.push(http::header::HOST, origin.authority.clone());
    for (name, value) in &r.headers {
        match value {
            HeaderTemplate::Static(v) => out.set(name.clone(), v.clone()),
            HeaderTemplate::Dynamic(_) => return None,
        }
    }
    out.body = match &r.body {
        Body::Empty => Bytes::new(),
        Body::Static(b, ct) => literal_body(&mut out, b, ct.as_ref()),
        Body::Dynamic(..) | Body::Multipart(..) => return None,
    };
    Some(out.frozen())
}

/// Renders `r` for `vu`: the target, the headers in order (`Host` first, then the step's, the
/// cookie jar's, `traceparent`, the body's type) and the body.
pub(super) fn build(r: &Request, vu: &mut VirtualUser, ctx: &FlowCtx) -> Result<Outgoing, String> {
    let plan = &ctx.plan;
    let origin = &plan.origins[r.origin];
    let target = match &r.fixed_target {
        Some(t) => t.clone(),
        None => {
            let mut scratch = std::mem::take(&mut vu.scratch);
            scratch.clear();
            let rendered = r.path.render(&render_ctx(vu), &mut scratch);
            let target = rendered.map(|()| PathAndQuery::try_from(&scratch[..]));
            vu.scratch = scratch;
            target
                .map_err(describe_missing)?
                .map_err(|e| format!("rendered path is not a valid URI: {e}"))?
        }
    };
    let mut out = Outgoing::new(r.method.clone(), target, r.headers.len() + 4);
    out.push(http::header::HOST, origin.authority.clone());
    for (name, value) in &r.headers {
        let v = match value {
            HeaderTemplate::Static(v) => v.clone(),
            HeaderTemplate::Dynamic(t) => {
                let mut text = Vec::with_capacity(64);
                t.render(&render_ctx(vu), &mut text)
                    .map_err(describe_missing)?;
                HeaderValue::from_maybe_shared(Bytes::from(text))
                    .map_err(|_| format!("header `{name}` rendered to an invalid value"))?
            }
        };
        out.set(name.clone(), v);
    }
    if let Some(v) = vu.cookie_header(r.origin) {
        out.set(http::header::COOKIE, v);
    }
    if plan.settings.traceparent {
        let span: u64 = vu.rng.random::<u64>() | 1;
        let tp = format!("00-{:032x}-{span:016x}-01", vu.trace_id);
        if let Ok(v) = HeaderValue::from_str(&tp) {
            out.set(http::HeaderName::from_static("traceparent"), v);
        }
    }
    out.body = match &r.body {
        Body::Empty => Bytes::new(),
        Body::Static(b, ct) => literal_body(&mut out, b, ct.as_ref()),
        Body::Dynamic(t, ct) => {
            if let Some(ct) = ct {
                out.set(http::header::CONTENT_TYPE, ct.clone());
            }
            let mut body = Vec::with_capacity(256);
            t.render(&render_ctx(vu), &mut body)
                .map_err(describe_missing)?;
            Bytes::from(body)
        }
        Body::Multipart(m, ct) => {
            out.set(http::header::CONTENT_TYPE, ct.clone());
            let mut body = Vec::with_capacity(m.fixed_len() + 256);
            let rc = render_ctx(vu);
            for piece in &m.pieces {
                match piece {
                    crate::scenario::plan::MultipartPiece::Bytes(b) => body.extend_from_slice(b),
                    crate::scenario::plan::MultipartPiece::Field(t) => {
                        let from = body.len();
                        t.render(&rc, &mut body).map_err(describe_missing)?;
                        // A value (perhaps extracted from a response) holding the boundary
                        // would end its part early and smuggle parts in.
                        let fence = format!("--{}", m.boundary);
                        if body[from..]
                            .windows(fence.len())
                            .any(|w| w == fence.as_bytes())
                        {
                            return Err(
                                "a multipart field rendered to text that contains the body's boundary".into(),
                            );
                        }
                    }
                }
            }
            Bytes::from(body)
        }
    };
    Ok(out)
}

/// A literal body, its `Content-Type` (if it has one) set on `out`.
fn literal_body(out: &mut Outgoing, body: &Bytes, content_type: Option<&HeaderValue>) -> Bytes {
    if let Some(ct) = content_type {
        out.set(http::header::CONTENT_TYPE, ct.clone());
    }
    body.clone()
}

pub(super) fn describe_missing(m: Missing) -> String {
    format!("{m}: it was never extracted or assigned before this step")
}

/// Runs checks and extractions; returns the number of checks passed and the first failure.
fn evaluate(
    r: &Request,
    vu: &mut VirtualUser,
    ex: &Exchange,
    latency: Duration,
) -> (u32, Option<(ErrorClass, String)>) {
    let Some(status) = ex.status else {
        return (0, None);
    };
    if ex.error.is_some() {
        return (0, None);
    }
    // A body that does not parse makes every JSON check and extraction fail with why, rather
    // than with "is nothing".
    let (json, not_json) = if r.parses_json {
        match serde_json::from_slice::<serde_json::Value>(&vu.buf) {
            Ok(v) => (Some(v), None),
            Err(e) => (None, Some(format!("the body is not JSON ({e})"))),
        }
    } else {
        (None, None)
    };
    let resp = Response {
        status,
        json: json.as_ref(),
        not_json: not_json.as_deref(),
        body: &vu.buf,
        headers: &ex.headers,
        latency,
    };
    let mut passed = 0u32;
    let mut failure: Option<(ErrorClass, String)> = None;
    let mut fail = |class: ErrorClass, msg: String| {
        failure.get_or_insert((class, msg));
    };
    let has_status_check = r.checks.iter().any(|c| matches!(c, Check::Status(_)));
    if !has_status_check && status >= 400 {
        fail(
            ErrorClass::Status,
            format!("status {status}{}", super::check::excerpt(resp.body)),
        );
    }
    for check in &r.checks {
        match check.judge(&resp) {
            Ok(()) => passed += 1,
            Err(msg) => fail(ErrorClass::Check, msg),
        }
    }
    let mut found = Vec::with_capacity(r.extract.len());
    for e in &r.extract {
        let cookie = vu
            .cookies
            .iter()
            .find(|(o, k, _)| {
                *o == r.origin && matches!(&e.source, ExtractSource::Cookie(c) if c == k)
            })
            .map(|(_, _, v)| v.as_str());
        match e.find(&resp, cookie) {
            Ok(v) => found.push((e.var.clone(), v)),
            Err(msg) => {
                found.push((e.var.clone(), Dynamic::UNIT));
                fail(ErrorClass::Check, msg);
            }
        }
    }
    // Stored after the response is no longer borrowed: an extraction that found nothing unsets
    // its variable, so a later step cannot send a stale value.
    for (var, v) in found {
        vu.scope.set_or_push(var, v);
    }
    (passed, failure)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::metrics::{KeyTable, Registry};
    use crate::scenario::plan::Step;

    fn ctx(text: &str) -> FlowCtx {
        let plan =
            crate::scenario::load_str(std::path::Path::new("t.yaml"), text, &Default::default());
        let plan = Arc::new(plan.unwrap());
        let keys = Arc::new(KeyTable::from_plan(&plan));
        FlowCtx {
            client: crate::http::Client::new(&plan.settings),
            prebuilt: Arc::new(Prebuilt::new(keys.steps)),
            registry: Arc::new(Registry::new(keys)),
            plan,
            flow: 0,
            key_base: 0,
        }
    }

    fn requests(ctx: &FlowCtx) -> Vec<&Request> {
        ctx.plan.journeys[0]
            .steps
            .iter()
            .filter_map(|s| match s {
                Step::Request(r) => Some(&**r),
                _ => None,
            })
            .collect()
    }

    fn parts(o: &Outgoing) -> (String, String, Vec<(String, Vec<u8>)>, Bytes) {
        let headers = o
            .headers()
            .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()));
        (
            o.method.to_string(),
            o.target.to_string(),
            headers.collect(),
            o.body.clone(),
        )
    }

    #[test]
    fn a_prebuilt_request_is_what_build_makes_and_only_literal_ones_are_prebuilt() {
        let ctx = ctx(concat!(
            "target: http://127.0.0.1:9\ndefaults: { traceparent: false, headers: { x-app: web } }\n",
            "journeys:\n  j:\n",
            "    - { name: a, post: /orders?x=1, headers: { accept: text/plain }, json: { qty: 2 } }\n",
            "    - { name: b, get: \"/u/{{ vu }}\" }\n",
            "    - { name: c, get: /c, headers: { x-user: \"{{ vu }}\" } }\n",
            "    - { name: d, post: /d, json: { who: \"{{ vu }}\" } }\n",
            "flows:\n  f: { journey: j, vus: 1, duration: 1s }\n",
        ));
        let mut vu = VirtualUser::new(&ctx.plan, 0, 0).unwrap();
        let reqs = requests(&ctx);
        let a = prebuild(reqs[0], &ctx.plan).expect("a literal request is prebuilt");
        let built = build(reqs[0], &mut vu, &ctx).unwrap();
        assert_eq!(parts(&a), parts(&built));
        assert_ne!(a.stamp(), 0);
        for r in &reqs[1..] {
            assert!(prebuild(r, &ctx.plan).is_none(), "{} renders", r.id.0);
        }
        let traced = super::tests::ctx(
            "target: http://127.0.0.1:9\njourneys:\n  j: [ { name: a, get: /a } ]\nflows:\n  f: { journey: j, vus: 1, duration: 1s }\n",
        );
        assert!(
            prebuild(requests(&traced)[0], &traced.plan).is_none(),
            "traceparent differs each time"
        );
    }
}
