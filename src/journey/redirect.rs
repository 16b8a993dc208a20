//! Following redirects as browsers do: up to the step's limit, each hop on the connection of the
//! origin it goes to, with the method rules of RFC 9110 (303 becomes GET; 301 and 302 after a
//! POST become GET, as browsers do; 307 and 308 keep the method and body), cookies set on any hop
//! kept, and `Authorization` never carried to another origin. A loop or the limit is an error of
//! the step, with the chain in its message.

use http::Method;
use http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, COOKIE, HOST};

use super::{FlowCtx, VirtualUser};
use crate::http::{BodyPolicy, ErrorClass, Exchange, Outgoing};
use crate::scenario::plan::{Origin, Request};

/// Follows the redirects of `ex`, the answer to `first`; returns the last exchange (its latency, byte counts and `sent_at`
/// cover the chain), the hops followed and the origin that answered last.
pub(super) async fn follow(
    r: &Request,
    first: &Outgoing,
    vu: &mut VirtualUser,
    ctx: &FlowCtx,
    mut ex: Exchange,
    policy: BodyPolicy,
) -> (Exchange, u32, usize) {
    let mut origin_id = r.origin;
    if !applies(r, &ex) {
        return (ex, 0, origin_id);
    }
    let plan = &ctx.plan;
    let first_sent = ex.sent_at;
    let (mut bytes_in, mut bytes_out, mut decoded) = (0u64, 0u64, 0u64);
    let mut method = r.method.clone();
    let mut keep_body = true;
    let mut path = first.target.as_str().to_string();
    let mut chain = vec![format!("{}{path}", origin_of(plan, vu, origin_id).base)];
    let mut hops = 0u32;
    while is_redirect(&ex) {
        let Some(location) = ex.headers.get_str("location").map(str::to_string) else {
            break;
        };
        vu.store_cookies(origin_id, &ex.headers);
        let here = origin_of(plan, vu, origin_id).clone();
        let (next, next_path) = match resolve(&here, &path, &location) {
            Ok(x) => x,
            Err(m) => {
                ex.error = Some((ErrorClass::Protocol, m));
                break;
            }
        };
        let url = format!("{}{next_path}", next.base);
        if chain.contains(&url) {
            ex.error = Some((
                ErrorClass::Protocol,
                format!("redirect loop: {} → {url}", chain.join(" → ")),
            ));
            break;
        }
        chain.push(url);
        if hops >= r.redirects {
            ex.error = Some((
                ErrorClass::Protocol,
                format!(
                    "more than {} redirects (the step's limit): {}",
                    r.redirects,
                    chain.join(" → ")
                ),
            ));
            break;
        }
        let status = ex.status.unwrap_or(302);
        if (status == 303 && method != Method::HEAD)
            || (matches!(status, 301 | 302) && method == Method::POST)
        {
            method = Method::GET;
            keep_body = false;
        }
        let next_id = origin_index(plan, vu, &next);
        let Ok(mut req) = super::request::build(r, vu, ctx) else {
            break;
        };
        let Ok(target) = next_path.parse() else {
            ex.error = Some((
                ErrorClass::Protocol,
                format!("the redirect to `{location}` is not a valid URI"),
            ));
            break;
        };
        req.method = method.clone();
        req.target = target;
        req.set(HOST, next.authority.clone());
        if next_id != r.origin {
            // Credentials meant for one origin are never sent to another.
            req.remove(&AUTHORIZATION);
        }
        req.remove(&COOKIE);
        if let Some(c) = vu.cookie_header(next_id) {
            req.push(COOKIE, c);
        }
        if !keep_body {
            req.remove(&CONTENT_TYPE);
            req.remove(&CONTENT_LENGTH);
            req.body = bytes::Bytes::new();
        }
        bytes_in += ex.bytes_in;
        bytes_out += ex.bytes_out;
        decoded += ex.bytes_decoded;
        super::request::server_timing(ctx, ctx.key_base + r.id.0 as usize, vu, &ex.headers);
        ex = ctx
            .client
            .send(
                &mut vu.conns,
                next_id,
                &next,
                &req,
                policy,
                &mut vu.buf,
                r.timeout,
            )
            .await;
        hops += 1;
        origin_id = next_id;
        path = next_path;
    }
    ex.sent_at = first_sent;
    ex.bytes_in += bytes_in;
    ex.bytes_out += bytes_out;
    ex.bytes_decoded += decoded;
    (ex, hops, origin_id)
}

/// Whether `ex` is a redirect that step `r` follows.
pub(super) fn applies(r: &Request, ex: &Exchange) -> bool {
    r.redirects > 0 && is_redirect(ex)
}

fn is_redirect(ex: &Exchange) -> bool {
    ex.error.is_none() && matches!(ex.status, Some(301 | 302 | 303 | 307 | 308))
}

fn origin_of<'a>(plan: &'a crate::scenario::Plan, vu: &'a VirtualUser, id: usize) -> &'a Origin {
    match plan.origins.get(id) {
        Some(o) => o,
        None => &vu.extra_origins[id - plan.origins.len()],
    }
}

/// The slot of `o`: a plan origin with the same scheme, host and port, or one this user met.
fn origin_index(plan: &crate::scenario::Plan, vu: &mut VirtualUser, o: &Origin) -> usize {
    let same = |x: &Origin| x.https == o.https && x.host == o.host && x.port == o.port;
    if let Some(i) = plan.origins.iter().position(same) {
        return i;
    }
    if let Some(i) = vu.extra_origins.iter().position(same) {
        return plan.origins.len() + i;
    }
    vu.extra_origins.push(o.clone());
    plan.origins.len() + vu.extra_origins.len() - 1
}

/// The origin and path a `Location` leads to from `path` on `here`.
fn resolve(here: &Origin, path: &str, location: &str) -> Result<(Origin, String), String> {
    let location = location.trim();
    let absolute = if let Some(rest) = location.strip_prefix("//") {
        Some(format!(
            "{}://{rest}",
            if here.https { "https" } else { "http" }
        ))
    } else if location.contains("://") {
        Some(location.to_string())
    } else {
        None
    };
    if let Some(url) = absolute {
        let (scheme, rest) = url.split_once("://").unwrap_or(("http", ""));
        let cut = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, p) = rest.split_at(cut);
        let origin =
            crate::scenario::validate::parse_origin("redirect", &format!("{scheme}://{authority}"))
                .map_err(|e| format!("the redirect to `{location}` cannot be followed: {e}"))?;
        let p = if p.is_empty() {
            "/".to_string()
        } else if p.starts_with('?') {
            format!("/{p}")
        } else {
            p.to_string()
        };
        return Ok((origin, p));
    }
    let p = if location.starts_with('/') {
        location.to_string()
    } else {
        // Relative to the current path's folder.
        let dir = path.split('?').next().unwrap_or("/");
        let dir = &dir[..dir.rfind('/').map_or(0, |i| i + 1)];
        format!("{}{location}", if dir.is_empty() { "/" } else { dir })
    };
    Ok((here.clone(), p))
}
