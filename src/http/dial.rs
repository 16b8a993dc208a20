//! Opening a connection's TCP stream: `defaults.hosts` overrides, proxies (a `CONNECT` tunnel,
//! or forwarding in absolute form), and connect failures classified, a full local machine told
//! apart from a refusing target.

use std::net::SocketAddr;

use http::HeaderValue;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::{ErrorClass, Fail, is_local_exhaustion};
use crate::scenario::plan::Origin;
use crate::scenario::transport::{Proxy, Transport};

/// How a connection reaches its origin.
#[derive(Debug)]
pub(super) enum Via {
    /// Straight to the origin (or through a `CONNECT` tunnel, which is the same to the caller).
    Direct,
    /// To a proxy that takes plain HTTP/1.1 requests in absolute form.
    Forward(Box<Forward>),
}

/// What a request forwarded by a proxy carries.
#[derive(Debug)]
pub(super) struct Forward {
    /// `http://authority` for the request line: the overridden address when `defaults.hosts`
    /// names the host, so that the proxy dials the same place a direct connection would.
    pub base: String,
    /// `Proxy-Authorization`, when the proxy URL had credentials.
    pub auth: Option<HeaderValue>,
}

/// Opens a stream to `origin`, through its proxy if one applies. `tunnel` asks for a `CONNECT`
/// tunnel even without TLS (HTTP/2 by prior knowledge cannot be forwarded).
pub(super) async fn open(
    t: &Transport,
    origin: &Origin,
    tunnel: bool,
) -> Result<(TcpStream, Via), Fail> {
    let overridden = t.hosts.lookup(&origin.host, origin.port);
    let Some(proxy) = t
        .proxies
        .for_target(origin.https, &origin.host, overridden.map(|a| a.ip()))
    else {
        let stream = match overridden {
            Some(addr) => connect_any(&origin.host, [addr]).await?,
            None => tcp_connect(&origin.host, origin.port).await?,
        };
        return Ok((stream, Via::Direct));
    };
    let mut stream = match t.hosts.lookup(&proxy.host, proxy.port) {
        Some(addr) => connect_any(&proxy.host, [addr]).await,
        None => tcp_connect(&proxy.host, proxy.port).await,
    }
    .map_err(|(class, why)| (class, format!("proxy {proxy}: {why}")))?;
    let authority = match overridden {
        Some(addr) => addr.to_string(),
        None if origin.host.contains(':') => format!("[{}]:{}", origin.host, origin.port),
        None => format!("{}:{}", origin.host, origin.port),
    };
    // A forwarded request names its target in the request line, and a proxy must prefer that
    // to `Host` (RFC 9112 §3.2.2): an overridden host would reach the origin under its address,
    // so it goes through a tunnel, where `Host` keeps the name.
    if origin.https || tunnel || overridden.is_some() {
        connect_tunnel(&mut stream, proxy, &authority).await?;
        Ok((stream, Via::Direct))
    } else {
        Ok((
            stream,
            Via::Forward(Box::new(Forward {
                base: format!("http://{authority}"),
                auth: proxy.auth.clone(),
            })),
        ))
    }
}

/// The longest `CONNECT` answer read: a proxy's answer head is a few hundred bytes.
const MAX_CONNECT_HEAD: usize = 16 * 1024;

/// Asks the proxy for a tunnel to `authority` and reads its answer.
async fn connect_tunnel(s: &mut TcpStream, proxy: &Proxy, authority: &str) -> Result<(), Fail> {
    let mut head = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
    if let Some(auth) = &proxy.auth {
        head.push_str("Proxy-Authorization: ");
        head.push_str(auth.to_str().unwrap_or_default());
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    let io = |e: std::io::Error| {
        (
            ErrorClass::Connect,
            format!("proxy {proxy}: CONNECT {authority}: {e}"),
        )
    };
    s.write_all(head.as_bytes()).await.map_err(io)?;
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    // Read only what the answer head holds: after a 2xx the proxy sends nothing until the
    // client speaks, so a read never swallows bytes of the tunnel.
    let end = loop {
        let n = s.read(&mut chunk).await.map_err(io)?;
        if n == 0 {
            return Err((
                ErrorClass::Connect,
                format!(
                    "proxy {proxy} closed the connection instead of answering CONNECT {authority}"
                ),
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > MAX_CONNECT_HEAD {
            return Err((
                ErrorClass::Protocol,
                format!("proxy {proxy} answered CONNECT with a head over {MAX_CONNECT_HEAD} bytes"),
            ));
        }
    };
    let mut headers = [httparse::EMPTY_HEADER; 100];
    let mut resp = httparse::Response::new(&mut headers);
    let code = match resp.parse(&buf[..end]) {
        Ok(httparse::Status::Complete(_)) => resp.code.unwrap_or(0),
        Err(httparse::Error::TooManyHeaders) => {
            return Err((
                ErrorClass::Protocol,
                format!("proxy {proxy} answered CONNECT {authority} with over 100 header fields"),
            ));
        }
        _ => {
            return Err((
                ErrorClass::Protocol,
                format!(
                    "proxy {proxy} answered CONNECT {authority} with something that is not HTTP"
                ),
            ));
        }
    };
    match code {
        // A refusal may carry a body (an HTML page): it is not read, the connection is dropped.
        200..=299 if end != buf.len() => Err((
            ErrorClass::Protocol,
            format!("proxy {proxy} sent bytes after its CONNECT answer, before the client spoke"),
        )),
        200..=299 => Ok(()),
        407 => Err((
            ErrorClass::Connect,
            format!(
                "proxy {proxy} wants credentials (407) for CONNECT {authority}: put them in the proxy URL, http://user:password@host:port"
            ),
        )),
        _ => Err((
            ErrorClass::Connect,
            format!(
                "proxy {proxy} refused CONNECT {authority}: {code} {}",
                resp.reason.unwrap_or("")
            ),
        )),
    }
}

async fn tcp_connect(host: &str, port: u16) -> Result<TcpStream, Fail> {
    let addrs = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| (ErrorClass::Connect, format!("cannot resolve {host}: {e}")))?;
    connect_any(host, addrs).await
}

/// Connects to the first of `addrs` that accepts.
async fn connect_any(
    host: &str,
    addrs: impl IntoIterator<Item = SocketAddr>,
) -> Result<TcpStream, Fail> {
    let mut last: Option<Fail> = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Err(e) => {
                if is_local_exhaustion(&e) {
                    // Trying the next address would fail the same way, and this is no
                    // statement about the target.
                    return Err((
                        ErrorClass::Generator,
                        format!(
                            "connect to {addr}: {e}: this machine ran out of local ports or file descriptors (see the connection churn self-check)"
                        ),
                    ));
                }
                let class = if e.kind() == std::io::ErrorKind::ConnectionRefused {
                    ErrorClass::ConnectRefused
                } else {
                    ErrorClass::Connect
                };
                last = Some((class, format!("connect to {addr}: {e}")));
            }
        }
    }
    Err(last.unwrap_or((
        ErrorClass::Connect,
        format!("{host} resolved to no address"),
    )))
}
