//! A forward proxy on 127.0.0.1:0 for the proxy tests: `CONNECT` tunnels and absolute-form
//! requests, each recorded, optionally behind Basic credentials (a refusal carries an HTML body,
//! as Squid's does). It dials loopback only, resolving `shop.test` to 127.0.0.1 itself.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{ServerThread, serve_on_thread};

/// What the proxy saw.
#[derive(Debug, Default)]
pub struct ProxySeen {
    /// The authority of every `CONNECT`.
    pub connects: Mutex<Vec<String>>,
    /// The request line and `Host` of every forwarded request.
    pub forwarded: Mutex<Vec<(String, String)>>,
    /// Requests refused for want of credentials.
    pub refused: Mutex<u64>,
}

/// A running proxy.
pub struct TestProxy {
    /// Its address.
    pub addr: SocketAddr,
    /// What it saw.
    pub seen: Arc<ProxySeen>,
    _server: ServerThread,
}

/// Starts a proxy; with `auth`, only requests whose `Proxy-Authorization` is exactly it pass.
pub fn start(auth: Option<String>) -> TestProxy {
    let seen = Arc::new(ProxySeen::default());
    let seen2 = seen.clone();
    let server = serve_on_thread(move |client| {
        let (seen, auth) = (seen2.clone(), auth.clone());
        async move {
            let _ = serve(client, &seen, auth.as_deref()).await;
        }
    });
    TestProxy {
        addr: server.addr,
        seen,
        _server: server,
    }
}

async fn serve(mut client: TcpStream, seen: &ProxySeen, auth: Option<&str>) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let end = loop {
        let mut chunk = [0u8; 4096];
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let line = lines.next().unwrap_or_default().to_string();
    let header = |name: &str| {
        head.split("\r\n").skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    };
    if let Some(want) = auth
        && header("proxy-authorization").as_deref() != Some(want)
    {
        *seen.refused.lock().unwrap() += 1;
        client
            .write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"t\"\r\nContent-Type: text/html\r\nContent-Length: 20\r\n\r\n<html>denied</html>\n")
            .await?;
        return Ok(());
    }
    let mut parts = line.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (authority, rest_of_line) = if method == "CONNECT" {
        seen.connects.lock().unwrap().push(target.to_string());
        (target.to_string(), None)
    } else {
        let Some(after) = target.strip_prefix("http://") else {
            client
                .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                .await?;
            return Ok(());
        };
        let (authority, path) = after.split_at(after.find('/').unwrap_or(after.len()));
        seen.forwarded
            .lock()
            .unwrap()
            .push((line.clone(), header("host").unwrap_or_default()));
        (
            authority.to_string(),
            Some(format!(
                "{method} {} HTTP/1.1",
                if path.is_empty() { "/" } else { path }
            )),
        )
    };
    // Loopback only: the tests never send traffic anywhere else. The proxy resolves the tests'
    // name `shop.test` itself, as a real proxy resolves what its clients cannot.
    let authority = match authority.strip_prefix("shop.test:") {
        Some(port) => format!("127.0.0.1:{port}"),
        None => authority,
    };
    let addr: SocketAddr = match authority.parse() {
        Ok(a) if SocketAddr::ip(&a).is_loopback() => a,
        _ => {
            client
                .write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
                .await?;
            return Ok(());
        }
    };
    let mut upstream = TcpStream::connect(addr).await?;
    match rest_of_line {
        None => {
            client
                .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                .await?;
            upstream.write_all(&buf[end..]).await?;
        }
        Some(first) => {
            // Only the first request of the connection is rewritten: the tests send one.
            let rest = &head[line.len()..];
            upstream.write_all(first.as_bytes()).await?;
            upstream.write_all(rest.as_bytes()).await?;
            upstream.write_all(&buf[end..]).await?;
        }
    }
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}
