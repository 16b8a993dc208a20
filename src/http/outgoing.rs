//! A request as a journey renders it: method, origin-form target, headers in the order they go
//! out, body. The lean HTTP/1.1 path writes it straight into its reused buffer; hyper (HTTP/2,
//! and `defaults.client: hyper`) is handed an `http::Request` made from it. Keeping the
//! headers in a short list rather than a `HeaderMap` saves hashing every name of every request
//! on the lean path, where nothing looks a header up by name but the framing rules.

use bytes::Bytes;
use http::uri::PathAndQuery;
use http::{HeaderName, HeaderValue, Method, Request, Uri, header};
use http_body_util::Full;

/// One request, ready to send on any connection to its origin.
#[derive(Debug)]
pub struct Outgoing {
    /// The method.
    pub method: Method,
    /// Path and query, in origin form (a proxy's absolute form is made when it is written).
    pub target: PathAndQuery,
    /// Headers in sending order; [`Outgoing::set`] keeps each name once.
    headers: Vec<(HeaderName, HeaderValue)>,
    /// The body (empty for none).
    pub body: Bytes,
    /// Non-zero for a request made once and sent unchanged many times ([`Outgoing::frozen`]):
    /// a connection that wrote it last time can send the same bytes again.
    stamp: u64,
}

/// The last stamp handed out.
static STAMPS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl Clone for Outgoing {
    /// A copy may be changed, so it does not keep the original's stamp.
    fn clone(&self) -> Outgoing {
        Outgoing {
            method: self.method.clone(),
            target: self.target.clone(),
            headers: self.headers.clone(),
            body: self.body.clone(),
            stamp: 0,
        }
    }
}

impl Outgoing {
    /// A request with no headers and no body, with room for `headers` headers.
    pub fn new(method: Method, target: PathAndQuery, headers: usize) -> Outgoing {
        Outgoing {
            method,
            target,
            headers: Vec::with_capacity(headers),
            body: Bytes::new(),
            stamp: 0,
        }
    }

    /// The same request, stamped as one that will be sent unchanged: whoever holds it may only
    /// read it (behind `&`), and its copies are not stamped.
    pub fn frozen(mut self) -> Outgoing {
        self.stamp = STAMPS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        self
    }

    /// The stamp of a [`frozen`](Outgoing::frozen) request, 0 for any other.
    pub(crate) fn stamp(&self) -> u64 {
        self.stamp
    }

    /// Sets `name` to `value`, replacing the value it had (in its place), else appending it.
    pub fn set(&mut self, name: HeaderName, value: HeaderValue) {
        match self.headers.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.headers.push((name, value)),
        }
    }

    /// Appends `name: value` without looking for an earlier one (the caller knows it is new).
    pub fn push(&mut self, name: HeaderName, value: HeaderValue) {
        self.headers.push((name, value));
    }

    /// Removes `name`.
    pub fn remove(&mut self, name: &HeaderName) {
        self.headers.retain(|(n, _)| n != name);
    }

    /// The value of `name`, if set.
    pub fn get(&self, name: &HeaderName) -> Option<&HeaderValue> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// The headers in sending order.
    pub fn headers(&self) -> impl Iterator<Item = (&HeaderName, &HeaderValue)> {
        self.headers.iter().map(|(n, v)| (n, v))
    }

    /// Roughly the bytes it takes on the wire (request line, headers, body), for byte counts.
    pub fn wire_size(&self) -> u64 {
        let head: usize = self
            .headers
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 4)
            .sum();
        (self.method.as_str().len() + self.target.as_str().len() + 12 + head + 2 + self.body.len())
            as u64
    }

    /// The same request for hyper. `base` (`scheme://authority`) makes the URI absolute, for
    /// HTTP/2 (which then takes the authority from it rather than from `Host`) and for a
    /// forwarding proxy; `h2` leaves `Host` out, as HTTP/2 carries it as `:authority`.
    pub fn to_request(&self, base: Option<&str>, h2: bool) -> Request<Full<Bytes>> {
        let uri = match base {
            Some(b) => format!("{b}{}", self.target)
                .parse()
                .unwrap_or_else(|_| Uri::from(self.target.clone())),
            None => Uri::from(self.target.clone()),
        };
        let mut req = Request::new(Full::new(self.body.clone()));
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = uri;
        let map = req.headers_mut();
        map.reserve(self.headers.len());
        for (n, v) in &self.headers {
            if h2 && n == header::HOST {
                continue;
            }
            map.append(n.clone(), v.clone());
        }
        req
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &'static str) -> Outgoing {
        Outgoing::new(Method::GET, PathAndQuery::from_static(path), 4)
    }

    #[test]
    fn set_replaces_in_place_and_remove_drops() {
        let mut o = get("/a?b=1");
        o.set(header::HOST, HeaderValue::from_static("x"));
        o.set(header::ACCEPT, HeaderValue::from_static("*/*"));
        o.set(header::HOST, HeaderValue::from_static("y"));
        let names: Vec<_> = o.headers().map(|(n, v)| format!("{n}={v:?}")).collect();
        assert_eq!(names, ["host=\"y\"", "accept=\"*/*\""]);
        o.remove(&header::HOST);
        assert!(o.get(&header::HOST).is_none());
        assert_eq!(o.get(&header::ACCEPT).unwrap(), "*/*");
    }

    #[test]
    fn hyper_gets_the_same_request_and_http2_no_host() {
        let mut o = get("/p?q=1");
        o.set(header::HOST, HeaderValue::from_static("shop.test"));
        o.set(header::COOKIE, HeaderValue::from_static("a=1"));
        o.body = Bytes::from_static(b"hi");
        let r = o.to_request(None, false);
        assert_eq!(r.uri(), "/p?q=1");
        assert_eq!(r.headers()["host"], "shop.test");
        assert_eq!(r.headers().len(), 2);
        let r = o.to_request(Some("http://shop.test:8080"), true);
        assert_eq!(r.uri(), "http://shop.test:8080/p?q=1");
        assert!(r.headers().get("host").is_none());
        assert_eq!(r.headers()["cookie"], "a=1");
        assert_eq!(
            o.wire_size(),
            (3 + 6 + 12 + (4 + 9 + 4) + (6 + 3 + 4) + 2 + 2) as u64
        );
    }
}
