//! Differential tests: one corpus of raw responses, every framing case and malformed ones, each
//! split at every read boundary, through the lean path and through hyper; both must agree on
//! status, headers, body bytes and error class.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderMap, Method, Request};
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::Lean;
use crate::http::{BodyPolicy, ErrorClass, Exchange, StageCell, classify};

/// A connection whose server is a script: once the request is written, reads return the
/// pieces in order, then end of file (a server does not answer before it is asked).
struct Scripted {
    pieces: VecDeque<Vec<u8>>,
    asked: bool,
    waiting: Option<std::task::Waker>,
}

impl Scripted {
    fn new(pieces: Vec<Vec<u8>>) -> Scripted {
        Scripted {
            pieces: pieces.into(),
            asked: false,
            waiting: None,
        }
    }
}

impl AsyncRead for Scripted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if !self.asked {
            self.waiting = Some(cx.waker().clone());
            return Poll::Pending;
        }
        if let Some(mut p) = self.pieces.pop_front() {
            let n = p.len().min(buf.remaining());
            buf.put_slice(&p[..n]);
            if n < p.len() {
                self.pieces.push_front(p.split_off(n));
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Scripted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        b: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.asked = true;
        if let Some(w) = self.waiting.take() {
            w.wake();
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

fn request(method: &Method) -> Request<Full<Bytes>> {
    let mut r = Request::new(Full::new(Bytes::new()));
    *r.method_mut() = method.clone();
    *r.uri_mut() = http::Uri::from_static("/x");
    r.headers_mut()
        .insert(http::header::HOST, http::HeaderValue::from_static("t"));
    r
}

fn headers(h: &HeaderMap) -> Vec<(String, String)> {
    h.iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

async fn lean(pieces: Vec<Vec<u8>>, method: &Method) -> Seen {
    let mut l = Lean::new(Box::pin(Scripted::new(pieces)));
    let now = Instant::now();
    let mut ex = Exchange {
        sent_at: now,
        head_at: None,
        done_at: now,
        connect: None,
        tls: None,
        status: None,
        headers: HeaderMap::new(),
        error: None,
        bytes_in: 0,
        bytes_out: 0,
        bytes_decoded: 0,
        sent: true,
        stale: false,
    };
    let mut buf = Vec::new();
    let policy = BodyPolicy {
        keep: true,
        max_bytes: 1 << 20,
    };
    match l
        .exchange(
            &request(method),
            false,
            &mut ex,
            policy,
            &mut buf,
            &StageCell::default(),
        )
        .await
    {
        Ok(_) => Seen::Answer(ex.status.unwrap_or(0), headers(&ex.headers), buf),
        Err((class, _)) => Seen::Failed(class),
    }
}

async fn reference(pieces: Vec<Vec<u8>>, method: &Method) -> Seen {
    let io = TokioIo::new(Scripted::new(pieces));
    let Ok((mut s, conn)) = hyper::client::conn::http1::handshake::<_, Full<Bytes>>(io).await
    else {
        return Seen::Failed(ErrorClass::Internal);
    };
    tokio::spawn(conn);
    match s.send_request(request(method)).await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let h = headers(resp.headers());
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
    let now = Instant::now();
    let mut ex = Exchange {
        sent_at: now,
        head_at: None,
        done_at: now,
        connect: None,
        tls: None,
        status: None,
        headers: HeaderMap::new(),
        error: None,
        bytes_in: 0,
        bytes_out: 0,
        bytes_decoded: 0,
        sent: true,
        stale: false,
    };
    let mut buf = Vec::new();
    let policy = BodyPolicy {
        keep: true,
        max_bytes: 1000,
    };
    let r = l
        .exchange(
            &request(&Method::GET),
            false,
            &mut ex,
            policy,
            &mut buf,
            &StageCell::default(),
        )
        .await;
    assert_eq!(r.map_err(|e| e.0), Err(ErrorClass::BodyTooLarge));
    assert!(buf.len() <= 1000);
    assert!(l.is_closed());
}
