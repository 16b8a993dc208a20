//! WebSocket connections (RFC 6455) owned by a virtual user: opened over the same dialling and
//! TLS as HTTP (host overrides, proxies, client certificates), then messages sent and received
//! with every failure classified, never a panic.

use std::pin::Pin;
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use http::Request;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::{Client, ErrorClass, Fail, Io, dial};
use crate::scenario::plan::Origin;

/// An open WebSocket.
pub struct WsConn {
    stream: WebSocketStream<Pin<Box<dyn Io>>>,
}

impl std::fmt::Debug for WsConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WsConn")
    }
}

/// How an opening handshake went.
#[derive(Debug)]
pub struct WsOpen {
    /// The connection, when the server switched protocols.
    pub conn: Option<WsConn>,
    /// When the attempt started.
    pub sent_at: Instant,
    /// When the handshake finished (or failed).
    pub done_at: Instant,
    /// TCP connect time.
    pub connect: Option<Duration>,
    /// TLS handshake time.
    pub tls: Option<Duration>,
    /// The handshake's status (101 when accepted).
    pub status: Option<u16>,
    /// The handshake answer's headers.
    pub headers: super::Headers,
    /// Why it failed.
    pub error: Option<Fail>,
    /// Whether the upgrade request left (false when connecting failed).
    pub sent: bool,
}

/// A message received.
#[derive(Debug)]
pub enum WsMessage {
    /// A text message.
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
}

impl WsMessage {
    /// Its payload size.
    pub fn len(&self) -> usize {
        match self {
            WsMessage::Text(t) => t.len(),
            WsMessage::Binary(b) => b.len(),
        }
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The largest message accepted: a price tick is bytes, a snapshot kilobytes; a server that
/// sends more is broken or hostile, and the user's memory stays bounded.
const MAX_MESSAGE: usize = 16 << 20;

impl Client {
    /// Opens a WebSocket to `origin` with the upgrade request `req` (its URI is the path; the
    /// handshake headers are added here), within `timeout`.
    pub async fn ws_open(
        &self,
        origin: &Origin,
        mut req: Request<()>,
        timeout: Duration,
    ) -> WsOpen {
        let sent_at = Instant::now();
        let mut out = WsOpen {
            conn: None,
            sent_at,
            done_at: sent_at,
            connect: None,
            tls: None,
            status: None,
            headers: super::Headers::default(),
            error: None,
            sent: false,
        };
        let h = req.headers_mut();
        h.insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("Upgrade"),
        );
        h.insert(
            http::header::UPGRADE,
            http::HeaderValue::from_static("websocket"),
        );
        h.insert(
            http::header::SEC_WEBSOCKET_VERSION,
            http::HeaderValue::from_static("13"),
        );
        if let Ok(key) = tokio_tungstenite::tungstenite::handshake::client::generate_key().parse() {
            h.insert(http::header::SEC_WEBSOCKET_KEY, key);
        }
        let work = async {
            let start = Instant::now();
            let (stream, _) = dial::open(&self.transport, origin, true).await?;
            out.connect = Some(start.elapsed());
            let io: Pin<Box<dyn Io>> = if origin.https {
                let tls_start = Instant::now();
                // WebSocket upgrades are HTTP/1.1 (RFC 8441 over HTTP/2 is rare).
                let s = super::tls_over(self.tls_h1.clone(), origin, stream).await?;
                out.tls = Some(tls_start.elapsed());
                Box::pin(s)
            } else {
                Box::pin(stream)
            };
            out.sent = true;
            let config = WebSocketConfig::default()
                .max_message_size(Some(MAX_MESSAGE))
                .max_frame_size(Some(MAX_MESSAGE));
            match tokio_tungstenite::client_async_with_config(req, io, Some(config)).await {
                Ok((stream, resp)) => {
                    out.status = Some(resp.status().as_u16());
                    out.headers = resp.headers().clone().into();
                    Ok(WsConn { stream })
                }
                Err(WsError::Http(resp)) => {
                    out.status = Some(resp.status().as_u16());
                    out.headers = resp.headers().clone().into();
                    Err((
                        ErrorClass::Status,
                        format!(
                            "the WebSocket handshake was refused: status {}, expected 101",
                            resp.status().as_u16()
                        ),
                    ))
                }
                Err(e) => Err(classify(e, "the WebSocket handshake")),
            }
        };
        match tokio::time::timeout(timeout, work).await {
            Ok(Ok(conn)) => out.conn = Some(conn),
            Ok(Err(fail)) => out.error = Some(fail),
            Err(_) => {
                out.error = Some((
                    ErrorClass::Timeout,
                    format!(
                        "the WebSocket handshake did not finish within the step's timeout ({timeout:?})"
                    ),
                ))
            }
        }
        out.done_at = Instant::now();
        out
    }
}

impl WsConn {
    /// Sends a text message, within `timeout` (a server that stops reading fills the socket's
    /// buffers, and the send would wait for ever).
    pub async fn send_text(&mut self, text: String, timeout: Duration) -> Result<(), Fail> {
        match tokio::time::timeout(timeout, self.stream.send(Message::text(text))).await {
            Ok(r) => r.map_err(|e| classify(e, "sending a message")),
            Err(_) => Err((
                ErrorClass::Timeout,
                format!(
                    "sending a message did not finish within {timeout:?}: the server is not reading"
                ),
            )),
        }
    }

    /// The next data message (pings are answered and skipped). A close by the server is an
    /// error that names its code.
    pub async fn recv(&mut self) -> Result<WsMessage, Fail> {
        loop {
            match self.stream.next().await {
                None => {
                    return Err((
                        ErrorClass::WsClosed,
                        "the server closed the WebSocket's connection without a close frame".into(),
                    ));
                }
                Some(Err(e)) => return Err(classify(e, "reading a message")),
                Some(Ok(Message::Text(t))) => return Ok(WsMessage::Text(t.as_str().to_string())),
                Some(Ok(Message::Binary(b))) => return Ok(WsMessage::Binary(b.to_vec())),
                Some(Ok(Message::Close(frame))) => {
                    let why = match frame {
                        Some(f) => format!("{} {}", u16::from(f.code), f.reason.as_str()),
                        None => "no code".to_string(),
                    };
                    return Err((
                        ErrorClass::WsClosed,
                        format!("the server closed the WebSocket ({})", why.trim()),
                    ));
                }
                Some(Ok(_)) => {}
            }
        }
    }

    /// Closes with `code`: sends the close frame and reads until the server's answering one,
    /// all within `wait` (a server that never answers is then simply dropped).
    pub async fn close(mut self, code: u16, wait: Duration) -> Result<(), Fail> {
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: "".into(),
        };
        let closing = async {
            self.stream
                .close(Some(frame))
                .await
                .map_err(|e| classify(e, "closing"))?;
            while let Some(Ok(_)) = self.stream.next().await {}
            Ok(())
        };
        tokio::time::timeout(wait, closing).await.unwrap_or(Ok(()))
    }
}

fn classify(e: WsError, doing: &str) -> Fail {
    let class = match &e {
        WsError::ConnectionClosed
        | WsError::AlreadyClosed
        | WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => ErrorClass::WsClosed,
        WsError::Io(io) => match io.kind() {
            std::io::ErrorKind::TimedOut => ErrorClass::Timeout,
            _ if io
                .get_ref()
                .is_some_and(|inner| inner.is::<rustls::Error>()) =>
            {
                ErrorClass::Tls
            }
            _ => ErrorClass::Reset,
        },
        WsError::Tls(_) => ErrorClass::Tls,
        WsError::Capacity(_) => ErrorClass::BodyTooLarge,
        WsError::Http(_) => ErrorClass::Status,
        _ => ErrorClass::Protocol,
    };
    (class, format!("{doing}: {e}"))
}
