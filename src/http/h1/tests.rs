//! Differential tests: one corpus of raw responses, every framing case and malformed ones, each
//! split at every read boundary, through the lean path and through hyper; both must agree on
//! status, headers, body bytes and error class. Compiled only under #[cfg(test)] (see `mod tests`
//! in h1/mod.rs).

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::Method;
use http::uri::PathAndQuery;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::Lean;
use crate::http::dial::Forward;
use crate::http::{BodyPolicy, ErrorClass, Exchange, Headers, Outgoing, StageCell, classify};

/// A connection whose server is a script: each request written releases its answer (in the
/// given read pieces); with no answer released the server is silent, and with none left it has
/// closed. Everything written is kept, to compare what each client sent.
struct Scripted {
    answers: VecDeque<VecDeque<Vec<u8>>>,
    readable: VecDeque<Vec<u8>>,
    waiting: Option<std::task::Waker>,
    written: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
}

impl Scripted {
    fn new(pieces: Vec<Vec<u8>>) -> Scripted {
        Scripted::answering(vec![pieces])
    }

    fn answering(answers: Vec<Vec<Vec<u8>>>) -> Scripted {
        Scripted {
            answers: answers.into_iter().map(VecDeque::from).collect(),
            readable: VecDeque::new(),
            waiting: None,
            written: Default::default(),
        }
    }
}

impl AsyncRead for Scripted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.readable.pop_front() {
            Some(mut p) => {
                let n = p.len().min(buf.remaining());
                buf.put_slice(&p[..n]);
                if n < p.len() {
                    self.readable.push_front(p.split_off(n));
                }
                Poll::Ready(Ok(()))
            }
            // Silent until asked again.
            None if !self.answers.is_empty() => {
                self.waiting = Some(cx.waker().clone());
                Poll::Pending
            }
            None => Poll::Ready(Ok(())),
        }
    }
}

impl AsyncWrite for Scripted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        b: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.written
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(b);
        if self.readable.is_empty()
            && let Some(next) = self.answers.pop_front()
        {
            self.readable = next;
            if let Some(w) = self.waiting.take() {
                w.wake();
            }
        }
        Poll::Ready(Ok(b.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// What a client made of a response.
#[derive(Debug, PartialEq)]
enum Seen {
    Answer(u16, Vec<(String, String)>, Vec<u8>),
    Failed(ErrorClass),
}

fn request(method: &Method) -> Outgoing {
    let mut r = Outgoing::new(method.clone(), PathAndQuery::from_static("/x"), 1);
    r.set(http::header::HOST, http::HeaderValue::from_static("t"));
    r
}

/// The fields by name, each name's values in the order received (a `HeaderMap` groups a
/// name's values where a raw head keeps them interleaved with others).
fn headers(h: &Headers) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = h
        .to_pairs()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
        .collect();
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    pairs
}

/// One exchange on `l` keeping at most `max_bytes` of body (0: the body is not kept), as
/// `Client::send` makes it; returns its outcome, the exchange and the kept body.
async fn exchange(
    l: &mut Lean,
    req: &Outgoing,
    forward: Option<&Forward>,
    reused: bool,
    max_bytes: u64,
) -> (Result<bool, crate::http::Fail>, Exchange, Vec<u8>) {
    let mut ex = empty_exchange();
    let mut buf = Vec::new();
    let policy = BodyPolicy {
        keep: max_bytes > 0,
        max_bytes,
    };
    let stage = StageCell::default();
    let r = l
        .exchange(req, forward, reused, &mut ex, policy, &mut buf, &stage)
        .await;
    (r, ex, buf)
}

async fn lean(pieces: Vec<Vec<u8>>, method: &Method) -> Seen {
    let mut l = Lean::new(Box::pin(Scripted::new(pieces)));
    match exchange(&mut l, &request(method), None, false, 1 << 20).await {
        (Ok(_), ex, buf) => Seen::Answer(ex.status.unwrap_or(0), headers(&ex.headers), buf),
        (Err((class, _)), _, _) => Seen::Failed(class),
    }
}

async fn reference(pieces: Vec<Vec<u8>>, method: &Method) -> Seen {
    let io = TokioIo::new(Scripted::new(pieces));
    let Ok((mut s, conn)) = hyper::client::conn::http1::handshake::<_, Full<Bytes>>(io).await
    else {
        return Seen::Failed(ErrorClass::Internal);
    };
    tokio::spawn(conn);
    match s
        .send_request(request(method).to_request(None, false))
        .await
    {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let h = headers(&Headers::from(resp.headers().clone()));
            match resp.into_body().collect().await {
                Ok(b) => Seen::Answer(status, h, b.to_bytes().to_vec()),
                Err(e) => Seen::Failed(classify(&e).0),
            }
        }
        Err(e) => Seen::Failed(classify(&e).0),
    }
}

/// Every framing case of RFC 9112, and broken ones; `true` for a `HEAD` request.
const CORPUS: &[(&str, &[u8], bool)] = &[
    ("length", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello", false),
    ("length zero", b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false),
    ("length twice, equal", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok", false),
    (
        "chunked, extensions, trailers",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;x=y\r\nWiki\r\n5\r\npedia\r\n0\r\nT: 1\r\n\r\n",
        false,
    ),
    ("chunked, upper-case size", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nA\r\n0123456789\r\n0\r\n\r\n", false),
    ("close-delimited", b"HTTP/1.1 200 OK\r\n\r\nuntil the end", false),
    ("HTTP/1.0", b"HTTP/1.0 200 OK\r\n\r\nold", false),
    ("interim 100", b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false),
    ("204", b"HTTP/1.1 204 No Content\r\n\r\n", false),
    ("304 with a length", b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", false),
    ("HEAD with a length", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", true),
    ("500 with a body", b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\noops", false),
    ("bare LF", b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok", false),
    ("bytes after the body", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA", false),
    ("bad chunk size", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", false),
    ("chunk longer than its size", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n", false),
    ("body cut", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", false),
    ("chunked cut", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", false),
    ("head cut", b"HTTP/1.1 200 OK\r\nContent-Le", false),
    ("nothing at all", b"", false),
    ("not HTTP", b"SMTP ready\r\n\r\n", false),
    ("conflicting lengths", b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", false),
    ("length not a number", b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", false),
    ("header without a colon", b"HTTP/1.1 200 OK\r\nbroken\r\n\r\n", false),
    ("leading zeros in a chunk size", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n000000000000000000005\r\nhello\r\n0\r\n\r\n", false),
    ("junk after a chunk size", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5 x\r\nhello\r\n0\r\n\r\n", false),
    ("space before an extension", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5 ;a=b\r\nhello\r\n0\r\n\r\n", false),
    ("chunked then a comma", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked,\r\n\r\n5\r\nhello\r\n0\r\n\r\n", false),
    ("HTTP/1.0 with transfer-encoding", b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", false),
    ("status below 100", b"HTTP/1.1 099 Odd\r\nContent-Length: 0\r\n\r\n", false),
    ("two interim responses", b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx", false),
    // Framing is read in the one pass over the fields: names in any case, lists, codings.
    ("names in upper case", b"HTTP/1.1 200 OK\r\nCONTENT-LENGTH: 2\r\nCONNECTION: KEEP-ALIVE\r\n\r\nok", false),
    ("length as a list", b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok", false),
    ("length list that disagrees", b"HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\nok", false),
    ("length beyond u64", b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\nok", false),
    ("length in non-ASCII space", b"HTTP/1.1 200 OK\r\nContent-Length: 2\xa0\r\n\r\nok", false),
    ("gzip then chunked", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", false),
    ("chunked then gzip", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\nuntil the end", false),
    ("transfer-encoding beats a length", b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", false),
];

/// The response in every two-piece split, and one byte at a time.
fn splits(raw: &[u8]) -> Vec<Vec<Vec<u8>>> {
    let mut out: Vec<Vec<Vec<u8>>> = (1..raw.len())
        .map(|i| vec![raw[..i].to_vec(), raw[i..].to_vec()])
        .collect();
    out.push(vec![raw.to_vec()]);
    out.push(raw.iter().map(|b| vec![*b]).collect());
    out.retain(|p| p.iter().all(|piece| !piece.is_empty()) || raw.is_empty());
    out
}

#[tokio::test]
async fn the_lean_path_reads_every_response_as_hyper_does() {
    for (name, raw, head) in CORPUS {
        let method = if *head { Method::HEAD } else { Method::GET };
        for pieces in splits(raw) {
            let shape: Vec<usize> = pieces.iter().map(Vec::len).collect();
            let ours = lean(pieces.clone(), &method).await;
            let theirs = reference(pieces, &method).await;
            assert_eq!(ours, theirs, "{name}, read as pieces of {shape:?}");
        }
    }
}

#[tokio::test]
async fn a_body_over_the_limit_is_body_too_large_and_memory_stays_bounded() {
    let mut raw = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n".to_vec();
    raw.extend(std::iter::repeat_n(b'x', 100_000));
    let mut l = Lean::new(Box::pin(Scripted::new(vec![raw])));
    let (r, _, buf) = exchange(&mut l, &request(&Method::GET), None, false, 1000).await;
    assert_eq!(r.map_err(|e| e.0), Err(ErrorClass::BodyTooLarge));
    assert!(buf.len() <= 1000);
    assert!(l.is_closed());
}

fn empty_exchange() -> Exchange {
    let mut ex = Exchange::starting(Instant::now(), 0);
    ex.sent = true;
    ex
}

/// Two requests on one kept-alive connection: wrong framing or a wrong keep-alive decision
/// shows in the second answer.
#[tokio::test]
async fn a_kept_alive_connection_carries_the_next_answer_as_in_hyper() {
    let next = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nbye".to_vec();
    for (name, raw, head) in CORPUS.iter().filter(|(n, ..)| {
        [
            "length",
            "length zero",
            "chunked, extensions, trailers",
            "204",
            "304 with a length",
            "HEAD with a length",
            "interim 100",
            "leading zeros in a chunk size",
        ]
        .contains(n)
    }) {
        let method = if *head { Method::HEAD } else { Method::GET };
        // Lean: the second request on the same connection.
        let mut l = Lean::new(Box::pin(Scripted::answering(vec![
            vec![raw.to_vec()],
            vec![next.clone()],
        ])));
        let mut lean_seen = Vec::new();
        for (i, m) in [method.clone(), Method::GET].iter().enumerate() {
            let (r, ex, buf) = exchange(&mut l, &request(m), None, i > 0, 1 << 20).await;
            assert_eq!(r.map_err(|e| e.1), Ok(false), "{name}: request {i}");
            assert!(!l.is_closed(), "{name}: kept alive after request {i}");
            lean_seen.push((ex.status, buf));
        }
        // hyper: the same two requests.
        let io = TokioIo::new(Scripted::answering(vec![
            vec![raw.to_vec()],
            vec![next.clone()],
        ]));
        let (mut s, conn) = hyper::client::conn::http1::handshake::<_, Full<Bytes>>(io)
            .await
            .unwrap();
        tokio::spawn(conn);
        let mut hyper_seen = Vec::new();
        for m in [method.clone(), Method::GET] {
            s.ready().await.unwrap();
            let resp = s
                .send_request(request(&m).to_request(None, false))
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let body = resp
                .into_body()
                .collect()
                .await
                .unwrap()
                .to_bytes()
                .to_vec();
            hyper_seen.push((Some(status), body));
        }
        assert_eq!(lean_seen, hyper_seen, "{name}");
    }
}

/// What each client writes for the same requests: the same bytes, framing included.
#[tokio::test]
async fn the_lean_path_writes_requests_as_hyper_does() {
    let answer = b"HTTP/1.1 204 No Content\r\n\r\n".to_vec();
    let mut cases: Vec<(Outgoing, Option<Forward>)> = Vec::new();
    let proxy = || Forward {
        base: "http://shop.test:8080".into(),
        auth: Some(http::HeaderValue::from_static("Basic dTpw")),
    };
    for (method, body, header, forward) in [
        (Method::GET, "", None, None),
        (Method::POST, "", None, None),
        (Method::POST, "{\"a\":1}", None, None),
        (Method::HEAD, "", None, None),
        (
            Method::PUT,
            "data",
            Some(("transfer-encoding", "gzip")),
            None,
        ),
        (
            Method::PUT,
            "data",
            Some(("transfer-encoding", "chunked")),
            None,
        ),
        (
            Method::GET,
            "",
            Some(("transfer-encoding", "chunked")),
            None,
        ),
        (Method::POST, "data", Some(("content-length", "4")), None),
        (Method::GET, "", Some(("connection", "close")), None),
        (Method::POST, "data", None, Some(proxy())),
        (
            Method::GET,
            "",
            Some(("proxy-authorization", "Basic c3RlcA==")),
            Some(proxy()),
        ),
    ] {
        let mut r = Outgoing::new(method, PathAndQuery::from_static("/x?y=1"), 2);
        r.body = Bytes::from(body);
        r.set(http::header::HOST, http::HeaderValue::from_static("t"));
        if let Some((k, v)) = header {
            r.set(
                http::HeaderName::from_static(k),
                http::HeaderValue::from_static(v),
            );
        }
        cases.push((r, forward));
    }
    for (req, forward) in cases {
        let what = format!("{req:?} {forward:?}");
        let lean_io = Scripted::new(vec![answer.clone()]);
        let lean_written = lean_io.written.clone();
        let mut l = Lean::new(Box::pin(lean_io));
        let _ = exchange(&mut l, &req, forward.as_ref(), false, 0).await;
        let hyper_io = Scripted::new(vec![answer.clone()]);
        let hyper_written = hyper_io.written.clone();
        let (mut s, conn) =
            hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(hyper_io))
                .await
                .unwrap();
        tokio::spawn(conn);
        // What `Client::send` hands hyper for the same request.
        let mut theirs = req.to_request(forward.as_ref().map(|f| f.base.as_str()), false);
        if let Some(auth) = forward.and_then(|f| f.auth) {
            theirs
                .headers_mut()
                .insert(http::header::PROXY_AUTHORIZATION, auth);
        }
        let _ = s.send_request(theirs).await;
        let ours = String::from_utf8_lossy(&lean_written.lock().unwrap()).into_owned();
        let theirs = String::from_utf8_lossy(&hyper_written.lock().unwrap()).into_owned();
        assert_eq!(ours, theirs, "{what}");
    }
}

#[tokio::test]
async fn a_frozen_request_is_sent_again_as_written_and_any_other_is_written_anew() {
    let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_vec();
    let io = Scripted::answering(vec![vec![ok.clone()]; 5]);
    let written = io.written.clone();
    let mut l = Lean::new(Box::pin(io));
    let a = request(&Method::GET).frozen();
    let mut b = a.clone();
    b.set(http::header::ACCEPT, http::HeaderValue::from_static("*/*"));
    let c = request(&Method::DELETE).frozen();
    for req in [&a, &a, &b, &c, &a] {
        let (r, ex, _) = exchange(&mut l, req, None, false, 0).await;
        assert!(r.is_ok() && ex.status == Some(200), "{r:?}");
    }
    let sent = String::from_utf8_lossy(&written.lock().unwrap()).into_owned();
    let (get, delete) = (
        "GET /x HTTP/1.1\r\nhost: t\r\n\r\n",
        "DELETE /x HTTP/1.1\r\nhost: t\r\n\r\n",
    );
    let with_accept = "GET /x HTTP/1.1\r\nhost: t\r\naccept: */*\r\n\r\n";
    assert_eq!(sent, [get, get, with_accept, delete, get].concat());
}

/// A read buffer grown for a large head is given back after the exchange, the usual one kept.
/// (A `BytesMut`'s capacity after the head is split off is only the room left: a 24 KiB head
/// grows the buffer to 32 KiB and leaves about 8 KiB of room, which looked small enough to keep.)
#[tokio::test]
async fn a_buffer_grown_for_a_large_head_is_given_back_and_a_small_one_kept() {
    let big = format!(
        "HTTP/1.1 200 OK\r\nx-big: {}\r\nContent-Length: 2\r\n\r\nok",
        "a".repeat(24 * 1024)
    );
    let small = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nbye".to_vec();
    let mut l = Lean::new(Box::pin(Scripted::answering(vec![
        vec![small.clone()],
        vec![big.into_bytes()],
        vec![small],
    ])));
    let (r, ex, buf) = exchange(&mut l, &request(&Method::GET), None, false, 1 << 20).await;
    assert_eq!(
        (r.map_err(|e| e.1), buf.as_slice()),
        (Ok(false), &b"bye"[..])
    );
    drop(ex);
    assert!(l.rbuf.capacity() > 0, "the usual buffer is kept");
    let (r, ex, buf) = exchange(&mut l, &request(&Method::GET), None, true, 1 << 20).await;
    assert_eq!(
        (r.map_err(|e| e.1), buf.as_slice()),
        (Ok(false), &b"ok"[..])
    );
    assert_eq!(ex.headers.get("x-big").map(<[u8]>::len), Some(24 * 1024));
    drop(ex);
    assert_eq!(l.rbuf.capacity(), 0, "the grown buffer is given back");
    let (r, _, buf) = exchange(&mut l, &request(&Method::GET), None, true, 1 << 20).await;
    assert_eq!(
        (r.map_err(|e| e.1), buf.as_slice()),
        (Ok(false), &b"bye"[..])
    );
}
