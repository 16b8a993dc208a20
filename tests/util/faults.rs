//! A hostile HTTP/1.1 server on raw sockets (127.0.0.1:0): each path misbehaves in one way.
//!
//! - `/ok` → a normal keep-alive 200
//! - `/hang` → reads the request, never answers
//! - `/reset-headers` → half a status line, then a TCP reset
//! - `/reset-body` → headers promising 1000 bytes, 10 bytes, then a reset
//! - `/stall` → waits 3 s before the headers
//! - `/trickle` → a 40-byte body, one byte every 25 ms
//! - `/malformed` → a response that is not HTTP
//! - `/close` → a normal keep-alive 200, then closes the connection (no `Connection: close`)
//! - `/huge?mb=N` → an N MiB body (1 GiB without `mb`), streamed
//! - `/short` → `Content-Length: 100`, 50 bytes, then a clean close
//! - `/long` → `Content-Length: 10`, 50 bytes
//! - `/burst` → 503 for 5 requests out of every 10, 200 otherwise

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A running fault server.
pub struct FaultServer {
    /// Its address.
    pub addr: SocketAddr,
    /// Requests seen.
    pub requests: Arc<AtomicU64>,
    _server: super::ServerThread,
}

impl FaultServer {
    /// Base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Starts the server on its own runtime thread.
pub fn start() -> FaultServer {
    let requests = Arc::new(AtomicU64::new(0));
    let counter = requests.clone();
    let server = super::serve_on_thread(move |stream| serve(stream, counter.clone()));
    FaultServer {
        addr: server.addr,
        requests,
        _server: server,
    }
}

/// Reads one request head (and a Content-Length body); returns the path, or None at EOF.
async fn read_request(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap_or(0))
                })
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let mut chunk = [0u8; 4096];
                let n = s.read(&mut chunk).await.ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            buf.drain(..end + 4 + len);
            return head.split_whitespace().nth(1).map(|p| p.to_string());
        }
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn reset(s: TcpStream) {
    // Linger 0 makes the close send RST instead of FIN. (Deprecated because a non-zero linger
    // blocks the thread on drop; zero never does.)
    #[allow(deprecated)]
    let _ = s.set_linger(Some(Duration::ZERO));
    drop(s);
}

const OK: &[u8] =
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{\"ok\":true}";

async fn serve(mut s: TcpStream, counter: Arc<AtomicU64>) {
    let mut buf = Vec::new();
    while let Some(path) = read_request(&mut s, &mut buf).await {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        let mb: u64 = path
            .split_once("?mb=")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(1024);
        let path = path.split('?').next().unwrap_or("").to_string();
        match path.as_str() {
            "/ok" => {
                if s.write_all(OK).await.is_err() {
                    return;
                }
            }
            "/hang" => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                return;
            }
            "/reset-headers" => {
                let _ = s.write_all(b"HTTP/1.1 20").await;
                let _ = s.flush().await;
                tokio::time::sleep(Duration::from_millis(20)).await;
                reset(s);
                return;
            }
            "/reset-body" => {
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n0123456789")
                    .await;
                let _ = s.flush().await;
                tokio::time::sleep(Duration::from_millis(20)).await;
                reset(s);
                return;
            }
            "/stall" => {
                tokio::time::sleep(Duration::from_secs(3)).await;
                if s.write_all(OK).await.is_err() {
                    return;
                }
            }
            "/trickle" => {
                if s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 40\r\n\r\n")
                    .await
                    .is_err()
                {
                    return;
                }
                for _ in 0..40 {
                    tokio::time::sleep(Duration::from_millis(25)).await;
                    if s.write_all(b"x").await.is_err() {
                        return;
                    }
                }
            }
            "/malformed" => {
                let _ = s.write_all(b"this is not HTTP at all\r\n\r\n").await;
                return;
            }
            "/close" => {
                let _ = s.write_all(OK).await;
                let _ = s.shutdown().await;
                return;
            }
            "/huge" => {
                let total: u64 = mb << 20;
                let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {total}\r\n\r\n");
                if s.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = vec![b'z'; 256 * 1024];
                let mut sent = 0;
                while sent < total {
                    if s.write_all(&chunk).await.is_err() {
                        return;
                    }
                    sent += chunk.len() as u64;
                }
            }
            "/short" => {
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n")
                    .await;
                let _ = s.write_all(&[b'a'; 50]).await;
                let _ = s.shutdown().await;
                return;
            }
            "/long" => {
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n")
                    .await;
                if s.write_all(&[b'b'; 50]).await.is_err() {
                    return;
                }
            }
            "/burst" => {
                let resp: &[u8] = if n % 10 < 5 {
                    b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n"
                } else {
                    OK
                };
                if s.write_all(resp).await.is_err() {
                    return;
                }
            }
            _ => {
                let _ = s
                    .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
                    .await;
            }
        }
    }
}
