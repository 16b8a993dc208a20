//! A raw HTTP/1.1 server on 127.0.0.1:0 whose every response is written by the test: a closure
//! gets the request's number (from 0, over all connections) and path, and returns the bytes to
//! send. It records the largest request head it read, to show what a client sent.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

type Respond = dyn Fn(u64, &str) -> Vec<u8> + Send + Sync;

/// A running scripted server.
pub struct Scripted {
    /// Its address.
    pub addr: SocketAddr,
    /// Requests read.
    pub requests: Arc<AtomicU64>,
    /// The largest request head read, in bytes.
    pub max_head: Arc<AtomicU64>,
    _server: super::ServerThread,
}

impl Scripted {
    /// Base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Starts a server answering every request with `respond(n, path)`; an empty answer closes the
/// connection without a word.
pub fn start(respond: impl Fn(u64, &str) -> Vec<u8> + Send + Sync + 'static) -> Scripted {
    let respond: Arc<Respond> = Arc::new(respond);
    let requests = Arc::new(AtomicU64::new(0));
    let max_head = Arc::new(AtomicU64::new(0));
    let (r, m) = (requests.clone(), max_head.clone());
    let server = super::serve_on_thread(move |s| serve(s, respond.clone(), r.clone(), m.clone()));
    Scripted {
        addr: server.addr,
        requests,
        max_head,
        _server: server,
    }
}

/// The bytes of a 200 response with `headers` (each ending in CRLF) and `body`.
pub fn ok_with(headers: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n{headers}\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

async fn serve(
    mut s: TcpStream,
    respond: Arc<Respond>,
    requests: Arc<AtomicU64>,
    max_head: Arc<AtomicU64>,
) {
    let mut buf = Vec::new();
    loop {
        let end = loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break end;
            }
            let mut chunk = [0u8; 16384];
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        max_head.fetch_max(end as u64 + 4, Ordering::SeqCst);
        let head = String::from_utf8_lossy(&buf[..end]).to_string();
        buf.drain(..end + 4);
        let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
        let n = requests.fetch_add(1, Ordering::SeqCst);
        let answer = respond(n, &path);
        if answer.is_empty() || s.write_all(&answer).await.is_err() {
            return;
        }
    }
}
