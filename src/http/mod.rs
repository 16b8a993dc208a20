//! The HTTP client: hyper connections owned by each virtual user, with phase timings.
//!
//! No pool is shared between virtual users: each holds at most one connection per origin in its
//! [`Connections`], kept alive across iterations (like a browser tab), so connection reuse and
//! churn behave like real users and no lock is shared on the request path. A keep-alive connection
//! the server closed between requests is replaced once, transparently, when hyper hands the unsent
//! request back; any other failure is classified into an [`ErrorClass`] and returned as data.
//!
//! Response bodies are streamed: counted and dropped unless the step extracts from them, in which
//! case they are kept up to `max_body_bytes` and a larger body is a `BodyTooLarge` error.

mod deadline;
pub mod decode;
mod dial;
pub mod h1;
pub mod headers;
mod outgoing;
pub mod server_timing;
mod tls;
pub mod ws;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Response;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

pub use crate::model::ErrorClass;
pub use headers::Headers;
pub use outgoing::Outgoing;

use crate::scenario::plan::{H1Client, HttpVersion, Origin, Settings};
use crate::scenario::transport::Transport;

/// Client settings shared by every virtual user of a run (TLS configuration is built once).
#[derive(Debug, Clone)]
pub struct Client {
    tls_h2: Arc<rustls::ClientConfig>,
    tls_h1: Arc<rustls::ClientConfig>,
    version: HttpVersion,
    transport: Arc<Transport>,
    /// HTTP/1.1 on the lean path ([`h1`]) rather than hyper's.
    lean: bool,
}

/// Any byte stream a connection runs on (plain TCP or TLS).
pub(crate) trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

enum Sender {
    H1(http1::SendRequest<Full<Bytes>>),
    H2(http2::SendRequest<Full<Bytes>>),
    /// The lean HTTP/1.1 path ([`h1`]).
    Lean(Box<h1::Lean>),
}

impl Sender {
    fn is_closed(&self) -> bool {
        match self {
            Sender::H1(s) => s.is_closed(),
            Sender::H2(s) => s.is_closed(),
            Sender::Lean(l) => l.is_closed(),
        }
    }
}

/// An HTTP/1 connection's I/O state machine, driven inside the virtual user's own task.
type Driver = Pin<Box<dyn Future<Output = Result<(), hyper::Error>> + Send>>;

struct Conn {
    sender: Sender,
    /// HTTP/1 only. Polled by [`drive`] while the user waits on this connection, instead of in
    /// a spawned task: one task per user instead of two, and no cross-task wake-up per request.
    /// Between requests nobody polls it, which is fine: an idle HTTP/1 connection has nothing
    /// to do, and a close by the server is seen when the next request is sent.
    driver: Option<Driver>,
    /// Set when a proxy forwards this connection's requests: they go in absolute form.
    forward: Option<Box<dial::Forward>>,
}

/// One virtual user's open connections, one slot per origin.
#[derive(Default)]
pub struct Connections {
    slots: Slots,
    /// The user's one request timer.
    deadline: deadline::Deadline,
}

/// One slot per origin.
#[derive(Default)]
struct Slots(Vec<Option<Conn>>);

impl std::fmt::Debug for Connections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connections")
            .field("open", &self.slots.0.iter().filter(|s| s.is_some()).count())
            .finish()
    }
}

impl Connections {
    /// Closes every connection (for `keep_alive: false`, between iterations).
    pub fn close_all(&mut self) {
        self.slots.0.clear();
    }
}

impl Slots {
    fn slot(&mut self, i: usize) -> &mut Option<Conn> {
        if self.0.len() <= i {
            self.0.resize_with(i + 1, || None);
        }
        &mut self.0[i]
    }
}

/// The outcome of one request attempt.
#[derive(Debug)]
pub struct Exchange {
    /// When the attempt started (connection set-up included).
    pub sent_at: Instant,
    /// When the response head arrived.
    pub head_at: Option<Instant>,
    /// When the last byte arrived (or the failure happened).
    pub done_at: Instant,
    /// TCP connect time, if this attempt connected.
    pub connect: Option<Duration>,
    /// TLS handshake time, if this attempt made one.
    pub tls: Option<Duration>,
    /// Status code.
    pub status: Option<u16>,
    /// Response headers (empty on failure).
    pub headers: Headers,
    /// Failure, with a message for the report.
    pub error: Option<(ErrorClass, String)>,
    /// Bytes received (head approximated from decoded headers, plus body).
    pub bytes_in: u64,
    /// Bytes sent (head approximated, plus body).
    pub bytes_out: u64,
    /// Bytes received once the body is decoded (`Content-Encoding`): the same as `bytes_in`
    /// unless the step read an encoded body.
    pub bytes_decoded: u64,
    /// Whether the request was handed to a connection (false when connecting failed): only a
    /// sent request has a latency to record.
    pub sent: bool,
    /// The request went out on a reused keep-alive connection that closed before any byte of a
    /// response came back: the server most likely closed it while idle, as the request crossed.
    /// hyper cannot return a request it has written, so the caller rebuilds it and sends it once
    /// more on a fresh connection (what browsers do in this case). Also set when an HTTP/2
    /// server said it did not process the request ([`is_unprocessed`]).
    pub stale: bool,
}

impl Exchange {
    /// An attempt that starts at `sent_at` and will send `bytes_out`: nothing happened yet.
    pub fn starting(sent_at: Instant, bytes_out: u64) -> Exchange {
        Exchange {
            sent_at,
            head_at: None,
            done_at: sent_at,
            connect: None,
            tls: None,
            status: None,
            headers: Headers::default(),
            error: None,
            bytes_in: 0,
            bytes_out,
            bytes_decoded: 0,
            sent: false,
            stale: false,
        }
    }
}

/// How to read the response body.
#[derive(Debug, Clone, Copy)]
pub struct BodyPolicy {
    /// Keep the body in the caller's buffer.
    pub keep: bool,
    /// Largest body kept.
    pub max_bytes: u64,
}

type Fail = (ErrorClass, String);

/// Where an exchange is, so a timeout can say what did not finish.
#[derive(Debug, Clone, Copy)]
#[repr(u8)]
enum Stage {
    Sending,
    Connecting,
    Handshake,
    Body,
}

/// A [`Stage`] that the exchange's future updates and the timeout reads (an atomic only because
/// the future must be `Send`; one task touches it).
#[derive(Debug, Default)]
struct StageCell(std::sync::atomic::AtomicU8);

impl StageCell {
    fn set(&self, s: Stage) {
        self.0.store(s as u8, std::sync::atomic::Ordering::Relaxed);
    }
    fn get(&self) -> Stage {
        match self.0.load(std::sync::atomic::Ordering::Relaxed) {
            1 => Stage::Connecting,
            2 => Stage::Handshake,
            3 => Stage::Body,
            _ => Stage::Sending,
        }
    }
}

impl Client {
    /// Builds TLS settings once (`insecure` accepts any certificate; the client certificate,
    /// host overrides and proxies come from `settings.transport`).
    pub fn new(settings: &Settings) -> Client {
        let t = &settings.transport;
        let id = t.identity.as_deref();
        let tls_h2 = Arc::new(tls::config(settings.insecure, &[b"h2", b"http/1.1"], id));
        let tls_h1 = Arc::new(tls::config(settings.insecure, &[b"http/1.1"], id));
        Client {
            tls_h2,
            tls_h1,
            version: settings.http,
            transport: Arc::new(t.clone()),
            lean: settings.client == H1Client::Lean,
        }
    }

    /// Sends one request on the VU's connection to `origin` (opening one if needed) and reads the
    /// response. Never panics and never returns `Err`: failures are in [`Exchange::error`].
    #[allow(clippy::too_many_arguments)]
    pub async fn send(
        &self,
        conns: &mut Connections,
        origin_id: usize,
        origin: &Origin,
        req: &Outgoing,
        body: BodyPolicy,
        buf: &mut Vec<u8>,
        timeout: Duration,
    ) -> Exchange {
        let sent_at = Instant::now();
        let mut ex = Exchange::starting(sent_at, req.wire_size());
        let mut sent_on_reused = false;
        let mut unprocessed = false;
        // Where the exchange was when the timeout hit, for its message.
        let stage = StageCell::default();
        let Connections { slots, deadline } = conns;
        // A deadline from the start already read (no clock read of its own), on the user's
        // one timer (no timer-wheel entry per request).
        let due = sent_at
            .checked_add(timeout)
            .unwrap_or_else(|| sent_at + Duration::from_secs(100 * 365 * 86_400));
        // Pinned where it is made: moving it into the timer's future copied it each time.
        let outcome = {
            let work = std::pin::pin!(async {
                // At most one retry, only for a reused connection that turned out stale.
                for _ in 0..2 {
                    let slot = slots.slot(origin_id);
                    let reused = matches!(slot, Some(c) if !c.sender.is_closed());
                    if !reused {
                        *slot = None;
                        // Boxed: connects are rare, so their state should not sit in every
                        // virtual user's future between requests.
                        let (conn, connect, tls) = Box::pin(self.connect(origin, &stage)).await?;
                        stage.set(Stage::Sending);
                        ex.connect = Some(connect);
                        ex.tls = tls;
                        *slots.slot(origin_id) = Some(conn);
                    }
                    let Some(conn) = slots.slot(origin_id).as_mut() else {
                        break;
                    };
                    sent_on_reused = reused;
                    ex.sent = true;
                    let Sender::Lean(l) = &mut conn.sender else {
                        // Boxed: hyper's futures are larger than the lean path's, and would size
                        // every user's task even where no request takes hyper's path.
                        let attempt =
                            hyper_exchange(conn, origin, req, reused, &mut ex, body, buf, &stage);
                        match Box::pin(attempt).await {
                            Attempt::Done(result) => return result,
                            Attempt::Stale => {
                                *slots.slot(origin_id) = None;
                                continue;
                            }
                            Attempt::Unprocessed(fail) => {
                                unprocessed = true;
                                return Err(fail);
                            }
                        }
                    };
                    stage.set(Stage::Sending);
                    // The lean path decides staleness itself (nothing came back on a reused
                    // connection) and replays once here; a failure after that is final.
                    sent_on_reused = false;
                    let fwd = conn.forward.as_deref();
                    match l
                        .exchange(req, fwd, reused, &mut ex, body, buf, &stage)
                        .await
                    {
                        Ok(false) => {
                            if l.is_closed() {
                                *slots.slot(origin_id) = None;
                            }
                            return Ok(());
                        }
                        // The server had closed the idle connection: once more, fresh.
                        Ok(true) => {
                            *slots.slot(origin_id) = None;
                            continue;
                        }
                        Err(e) => return Err(e),
                    }
                }
                Err((
                    ErrorClass::Reset,
                    "connection closed before the request could be sent".into(),
                ))
            });
            deadline.run(due, work).await
        };
        ex.done_at = Instant::now();
        if ex.bytes_decoded == 0 {
            ex.bytes_decoded = ex.bytes_in;
        }
        match outcome {
            Some(Ok(())) => {
                // A lean connection's last use is this exchange's end, already read.
                if let Some(Conn {
                    sender: Sender::Lean(l),
                    ..
                }) = slots.slot(origin_id)
                {
                    l.last_used = Some(ex.done_at);
                }
            }
            Some(Err(fail)) => {
                *slots.slot(origin_id) = None;
                ex.stale = unprocessed
                    || (sent_on_reused && ex.head_at.is_none() && fail.0 == ErrorClass::Reset);
                ex.error = Some(fail);
            }
            None => {
                // The connection is in an unknown state mid-exchange: never reuse it.
                *slots.slot(origin_id) = None;
                let what = match stage.get() {
                    Stage::Connecting => format!("connecting to {}:{}", origin.host, origin.port),
                    Stage::Handshake => format!("TLS handshake with {}", origin.host),
                    Stage::Sending => "no response head".to_string(),
                    Stage::Body => "the response body was not complete".to_string(),
                };
                ex.error = Some((
                    ErrorClass::Timeout,
                    format!("{what} within the step's timeout ({timeout:?})"),
                ));
            }
        }
        ex
    }

    async fn connect(
        &self,
        origin: &Origin,
        stage: &StageCell,
    ) -> Result<(Conn, Duration, Option<Duration>), Fail> {
        stage.set(Stage::Connecting);
        let start = Instant::now();
        let h2c = self.version == HttpVersion::Http2;
        let (stream, via) = dial::open(&self.transport, origin, h2c).await?;
        if origin.https {
            stage.set(Stage::Handshake);
        }
        let connect = start.elapsed();
        // The TLS and HTTP/2 paths are boxed on their own: their futures are kilobytes, and
        // when thousands of users connect at once a plain HTTP/1 connect should not pay for them.
        if origin.https {
            let (conn, tls) = Box::pin(self.tls_connect(origin, stream)).await?;
            Ok((conn, connect, Some(tls)))
        } else {
            let mut conn = handshake(stream, h2c, self.lean).await?;
            if let dial::Via::Forward(f) = via {
                conn.forward = Some(f);
            }
            Ok((conn, connect, None))
        }
    }

    async fn tls_connect(
        &self,
        origin: &Origin,
        stream: TcpStream,
    ) -> Result<(Conn, Duration), Fail> {
        let tls_start = Instant::now();
        let config = match self.version {
            HttpVersion::Http1 => self.tls_h1.clone(),
            _ => self.tls_h2.clone(),
        };
        let tls = tls_over(config, origin, stream).await?;
        let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
        let tls_time = tls_start.elapsed();
        let conn = handshake(tls, h2, self.lean).await?;
        Ok((conn, tls_time))
    }
}

/// How an attempt on one of hyper's connections ended.
enum Attempt {
    /// Answered, or failed for good.
    Done(Result<(), Fail>),
    /// The reused connection had closed and the request was not sent: send it on a new one.
    Stale,
    /// An HTTP/2 server said it did not process the request.
    Unprocessed(Fail),
}

/// One request on a hyper connection (HTTP/2, or HTTP/1.1 under `defaults.client: hyper`).
#[allow(clippy::too_many_arguments)]
async fn hyper_exchange(
    conn: &mut Conn,
    origin: &Origin,
    req: &Outgoing,
    reused: bool,
    ex: &mut Exchange,
    body: BodyPolicy,
    buf: &mut Vec<u8>,
    stage: &StageCell,
) -> Attempt {
    let driver = &mut conn.driver;
    let result = match &mut conn.sender {
        Sender::H1(s) => match drive(driver, s.ready()).await {
            Ok(()) => {
                // A forwarding proxy reads the target from the request line.
                let fwd = conn.forward.as_deref();
                let mut r = req.to_request(fwd.map(|f| f.base.as_str()), false);
                if let Some(auth) = fwd.and_then(|f| f.auth.clone()) {
                    r.headers_mut()
                        .insert(http::header::PROXY_AUTHORIZATION, auth);
                }
                drive(driver, s.try_send_request(r)).await
            }
            // The server closed the idle connection: replace it.
            Err(_) if reused => return Attempt::Stale,
            Err(e) => return Attempt::Done(Err(classify(&e))),
        },
        Sender::H2(s) => match s.ready().await {
            // HTTP/2 needs the full URI for :scheme and :authority.
            Ok(()) => {
                s.try_send_request(req.to_request(Some(&origin.base), true))
                    .await
            }
            Err(_) if reused => return Attempt::Stale,
            Err(e) => return Attempt::Done(Err(classify(&e))),
        },
        Sender::Lean(_) => {
            return Attempt::Done(Err((
                ErrorClass::Internal,
                "a lean connection was given to hyper".into(),
            )));
        }
    };
    match result {
        Ok(resp) => {
            stage.set(Stage::Body);
            Attempt::Done(read_response(resp, ex, body, buf, driver).await)
        }
        Err(mut e) => match e.take_message() {
            // Unsent: it is made again from `req` on a fresh connection.
            Some(_) if reused => Attempt::Stale,
            _ if is_unprocessed(e.error()) => {
                let (_, why) = classify(e.error());
                Attempt::Unprocessed((
                    ErrorClass::Reset,
                    format!("the server did not process the request: {why}"),
                ))
            }
            _ => Attempt::Done(Err(classify(e.error()))),
        },
    }
}

/// A TLS session with `origin` over `stream`, its name as the server name (SNI).
async fn tls_over(
    config: Arc<rustls::ClientConfig>,
    origin: &Origin,
    stream: TcpStream,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, Fail> {
    let name = rustls::pki_types::ServerName::try_from(origin.host.clone()).map_err(|e| {
        (
            ErrorClass::Tls,
            format!("`{}` is not a valid TLS server name: {e}", origin.host),
        )
    })?;
    tokio_rustls::TlsConnector::from(config)
        .connect(name, stream)
        .await
        .map_err(|e| {
            (
                ErrorClass::Tls,
                format!("TLS handshake with {}: {e}", origin.host),
            )
        })
}

async fn handshake<T>(io: T, h2: bool, lean: bool) -> Result<Conn, Fail>
where
    T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    if lean && !h2 {
        return Ok(Conn {
            sender: Sender::Lean(Box::new(h1::Lean::new(Box::pin(io)))),
            driver: None,
            forward: None,
        });
    }
    if h2 {
        // Boxed: the HTTP/2 handshake's state is large; HTTP/1's is small.
        Box::pin(handshake_h2(io)).await
    } else {
        handshake_h1(io).await
    }
}

async fn handshake_h2<T>(io: T) -> Result<Conn, Fail>
where
    T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (sender, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(io))
        .await
        .map_err(|e| classify(&e))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(Conn {
        sender: Sender::H2(sender),
        driver: None,
        forward: None,
    })
}

async fn handshake_h1<T>(io: T) -> Result<Conn, Fail>
where
    T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (sender, conn) = http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| classify(&e))?;
    Ok(Conn {
        sender: Sender::H1(sender),
        driver: Some(Box::pin(conn)),
        forward: None,
    })
}

async fn read_response(
    resp: Response<Incoming>,
    ex: &mut Exchange,
    policy: BodyPolicy,
    buf: &mut Vec<u8>,
    driver: &mut Option<Driver>,
) -> Result<(), Fail> {
    ex.head_at = Some(Instant::now());
    let (parts, mut body) = resp.into_parts();
    ex.status = Some(parts.status.as_u16());
    ex.headers = Headers::from(parts.headers);
    ex.bytes_in = ex.headers.wire_size() + 17;
    buf.clear();
    while let Some(frame) = drive(driver, body.frame()).await {
        let frame = frame.map_err(|e| classify(&e))?;
        if let Ok(data) = frame.into_data() {
            ex.bytes_in += data.len() as u64;
            if policy.keep {
                if buf.len() as u64 + data.len() as u64 > policy.max_bytes {
                    return Err((
                        ErrorClass::BodyTooLarge,
                        format!(
                            "response body exceeds max_body_bytes ({} bytes)",
                            policy.max_bytes
                        ),
                    ));
                }
                buf.extend_from_slice(&data);
            } else if buf.len() < PEEK_BYTES {
                let n = (PEEK_BYTES - buf.len()).min(data.len());
                buf.extend_from_slice(&data[..n]);
            }
        }
    }
    decode_kept(ex, policy, buf)
}

/// Undoes `Content-Encoding` on a kept body. Only a body the step reads is decoded: decoding
/// one nobody reads would cost CPU for nothing (its decoded size is then not known, and
/// `bytes_decoded` counts it as received).
fn decode_kept(ex: &mut Exchange, policy: BodyPolicy, buf: &mut Vec<u8>) -> Result<(), Fail> {
    if policy.keep
        && let Some(decoded) = decode::decode(&ex.headers, buf, policy.max_bytes)?
    {
        ex.bytes_decoded = (ex.bytes_in - buf.len() as u64).saturating_add(decoded.len() as u64);
        *buf = decoded;
    }
    Ok(())
}

/// The start of a body kept even when the step does not read it (a copy of at most this many
/// bytes into a reused buffer), so that a failed check can show the answer that explains it
/// (`{"error":"user required"}`).
pub const PEEK_BYTES: usize = 256;

/// Polls `fut` together with the connection's driver, in the caller's task, until `fut` is done.
///
/// The driver does the connection's reading and writing; `fut` waits on what it produces (the
/// response head, a body frame, readiness for the next request). When the driver finishes (the
/// server closed the connection, or it failed), it is dropped at once: that drops whatever
/// `fut` waits on, so `fut` fails instead of waiting for ever.
async fn drive<F: Future>(driver: &mut Option<Driver>, fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(move |cx| {
        if let Poll::Ready(out) = fut.as_mut().poll(cx) {
            return Poll::Ready(out);
        }
        let Some(d) = driver.as_mut() else {
            return Poll::Pending;
        };
        if d.as_mut().poll(cx).is_ready() {
            *driver = None;
        }
        // What the driver just did (a response read, a request accepted) is usually what
        // `fut` waits for: look again now rather than after a trip through the scheduler.
        fut.as_mut().poll(cx)
    })
    .await
}

/// Whether an HTTP/2 server said it never processed the request, which makes it safe to send
/// again (RFC 9113 §8.7): it refused the stream (`REFUSED_STREAM`), or it went away with a last
/// stream id below this one (every stream a `GOAWAY` cuts off has a higher id).
pub fn is_unprocessed(e: &hyper::Error) -> bool {
    let mut src: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = src {
        if let Some(h2) = s.downcast_ref::<h2::Error>() {
            return h2.is_remote()
                && (h2.is_go_away() || h2.reason() == Some(h2::Reason::REFUSED_STREAM));
        }
        src = s.source();
    }
    false
}

/// Maps a hyper error to an error class, looking through its sources for I/O errors.
pub fn classify(e: &hyper::Error) -> Fail {
    let class = if e.is_timeout() {
        ErrorClass::Timeout
    } else if e.is_parse() || e.is_parse_status() || e.is_parse_too_large() {
        ErrorClass::Protocol
    } else if e.is_incomplete_message()
        || e.is_closed()
        || e.is_canceled()
        || e.is_body_write_aborted()
    {
        ErrorClass::Reset
    } else {
        let mut src: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
        let mut class = ErrorClass::Protocol;
        while let Some(s) = src {
            if let Some(io) = s.downcast_ref::<std::io::Error>() {
                use std::io::ErrorKind::*;
                class = match io.kind() {
                    // rustls reports its failures as I/O errors (of kind InvalidData).
                    _ if io
                        .get_ref()
                        .is_some_and(|inner| inner.is::<rustls::Error>()) =>
                    {
                        ErrorClass::Tls
                    }
                    ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof => {
                        ErrorClass::Reset
                    }
                    TimedOut => ErrorClass::Timeout,
                    // hyper's body decoder: a bad chunk size, an over-long chunk extension, too
                    // many trailers. The server broke framing, and it will again on a retry.
                    InvalidData | InvalidInput => ErrorClass::Protocol,
                    _ => ErrorClass::Reset,
                };
                break;
            }
            src = s.source();
        }
        class
    };
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    (class, msg)
}

/// Whether a failed `connect` (or socket creation) says the generator's machine ran out of a local
/// resource rather than the target refusing: EADDRNOTAVAIL (no free ephemeral port for this
/// destination), EMFILE/ENFILE (file descriptors), ENOBUFS/ENOMEM (kernel buffers).
pub fn is_local_exhaustion(e: &std::io::Error) -> bool {
    const EADDRNOTAVAIL: i32 = 99;
    const EMFILE: i32 = 24;
    const ENFILE: i32 = 23;
    const ENOBUFS: i32 = 105;
    const ENOMEM: i32 = 12;
    e.kind() == std::io::ErrorKind::AddrNotAvailable
        || (cfg!(target_os = "linux")
            && matches!(
                e.raw_os_error(),
                Some(EADDRNOTAVAIL | EMFILE | ENFILE | ENOBUFS | ENOMEM)
            ))
}
