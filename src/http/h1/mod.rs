//! The lean HTTP/1.1 client path (the default for HTTP/1.1; hyper stays the reference, for
//! HTTP/2, and behind `defaults.client: hyper`): the request written from one reused buffer,
//! the response read into a buffer that starts at 2 KiB, grows only for a large head and is
//! given back after it, bodies decoded by [`parse`] and handed straight to the step's
//! buffer (or counted and dropped). No task, channel or oneshot per request: the user's own task does the I/O.

pub mod parse;

use std::io::Write as _;
use std::pin::Pin;
use std::time::Instant;

use bytes::{Buf as _, BytesMut};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::dial::Forward;
use super::outgoing::Outgoing;
use super::{BodyPolicy, ErrorClass, Exchange, Fail, Io, PEEK_BYTES, Stage, StageCell};
use parse::{BodyDecoder, H1Error, framing, head_cut, parse_head};

/// A read buffer's starting size; it grows for a large head and shrinks back after.
const READ_START: usize = 2048;
/// How long a connection must have been idle before it is probed for a close before reuse.
const PROBE_AFTER_IDLE: std::time::Duration = std::time::Duration::from_millis(10);
/// A buffer larger than this is given back after the exchange.
const KEEP_AT_MOST: usize = 16 * 1024;

/// One HTTP/1.1 connection on the lean path.
pub(super) struct Lean {
    io: Pin<Box<dyn Io>>,
    /// Read into, and consumed from the front: a head is split off it (its bytes shared, not
    /// copied, with the response's headers) and a body advanced past. Once the headers are
    /// dropped, reserving room takes the same memory back.
    rbuf: BytesMut,
    /// Whether `rbuf` grew past `KEEP_AT_MOST` during this exchange. A `BytesMut`'s capacity is
    /// the room after its read position, not the size of its memory, so it cannot tell once the
    /// head has been split off.
    grown: bool,
    wbuf: Vec<u8>,
    closed: bool,
    /// When the last exchange ended (set by the caller, who reads the clock then anyway).
    pub(super) last_used: Option<Instant>,
    /// The stamp of the frozen request `wbuf` holds, and whether it asks to close: sent again,
    /// it is not written again.
    written: (u64, bool),
}

impl Lean {
    pub(super) fn new(io: Pin<Box<dyn Io>>) -> Lean {
        Lean {
            io,
            rbuf: BytesMut::new(),
            grown: false,
            wbuf: Vec::new(),
            closed: false,
            last_used: None,
            written: (0, false),
        }
    }

    /// Whether the connection can take no more requests (the server said close, or it failed).
    pub(super) fn is_closed(&self) -> bool {
        self.closed
    }

    /// Sends `req` and reads its response into `ex` (and the body into `buf` per `policy`).
    /// `Ok(true)` means the connection was stale: it was reused and closed before any byte of
    /// an answer came back, so the request may be sent again on a fresh one.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn exchange(
        &mut self,
        req: &Outgoing,
        forward: Option<&Forward>,
        reused: bool,
        ex: &mut Exchange,
        policy: BodyPolicy,
        buf: &mut Vec<u8>,
        stage: &StageCell,
    ) -> Result<bool, Fail> {
        // Until proven otherwise, a failure leaves the connection unusable.
        self.closed = true;
        let head_request = req.method == http::Method::HEAD;
        // A kept-alive connection must be silent before a request: if the server closed it
        // (or sent something nobody asked for), it is replaced before anything is sent.
        // Back-to-back requests skip the probe (a syscall each): a server closes idle
        // connections after seconds, not within the moment since the last answer.
        // (Measured from the exchange's start, which `ex` already holds: a clock read less.)
        let idle = self
            .last_used
            .is_none_or(|t| ex.sent_at.saturating_duration_since(t) >= PROBE_AFTER_IDLE);
        if reused && idle && !self.is_quiet().await {
            return Ok(true);
        }
        let closes = self.write_request(req, forward);
        let written = async {
            self.io.write_all(&self.wbuf).await?;
            // TLS may keep encrypted bytes until flushed.
            self.io.flush().await
        };
        if let Err(e) = written.await {
            return if reused { Ok(true) } else { Err(io_fail(&e)) };
        }
        if self.wbuf.capacity() > KEEP_AT_MOST {
            self.wbuf = Vec::new();
            self.written = (0, false);
        }
        self.rbuf.clear();
        // Room for a whole small response in one read. The last response's head has usually
        // been dropped by now (not during a redirect chain), so this moves back to the start of
        // the same memory rather than allocating.
        self.rbuf.reserve(READ_START);
        // The head, after any 1xx interim responses.
        let (head, head_bytes) = loop {
            // Nothing to parse before the first read (a parse of nothing cost as much as one).
            let parsed = if self.rbuf.is_empty() {
                None
            } else {
                parse_head(&self.rbuf).map_err(h1_fail)?
            };
            match parsed {
                Some(h) => {
                    let bytes = self.rbuf.split_to(h.len).freeze();
                    ex.bytes_in += h.len as u64;
                    if (100..200).contains(&h.status) && h.status != 101 {
                        continue;
                    }
                    break (h, bytes);
                }
                None => {
                    let got = self.fill().await;
                    match got {
                        Ok(0) | Err(_) if reused && ex.bytes_in == 0 && self.rbuf.is_empty() => {
                            return Ok(true);
                        }
                        Ok(0) => return Err(h1_fail(head_cut())),
                        Ok(_) => {}
                        Err(e) => return Err(io_fail(&e)),
                    }
                }
            }
        };
        // A head whose framing is broken is no response at all (as hyper sees it).
        let framed = framing(&head, head_request).map_err(h1_fail)?;
        ex.head_at = Some(Instant::now());
        stage.set(Stage::Body);
        ex.status = Some(head.status);
        let keeps_alive = !closes && head.keeps_alive() && framed != parse::Framing::Close;
        ex.headers = head.into_headers(head_bytes);
        let mut decoder = BodyDecoder::new(framed);
        buf.clear();
        loop {
            let mut sink = |data: &[u8]| -> Result<(), H1Error> {
                if policy.keep {
                    if buf.len() as u64 + data.len() as u64 > policy.max_bytes {
                        return Err(H1Error {
                            class: ErrorClass::BodyTooLarge,
                            message: format!(
                                "response body exceeds max_body_bytes ({} bytes)",
                                policy.max_bytes
                            ),
                        });
                    }
                    buf.extend_from_slice(data);
                } else if buf.len() < PEEK_BYTES {
                    let n = (PEEK_BYTES - buf.len()).min(data.len());
                    buf.extend_from_slice(&data[..n]);
                }
                Ok(())
            };
            let used = decoder.decode(&self.rbuf, &mut sink).map_err(h1_fail)?;
            ex.bytes_in += used as u64;
            self.rbuf.advance(used);
            if decoder.is_done() {
                break;
            }
            match self.fill().await {
                Ok(0) => {
                    decoder.eof().map_err(h1_fail)?;
                    break;
                }
                Ok(_) => {}
                Err(e) => return Err(io_fail(&e)),
            }
        }
        // Bytes after the response that nobody asked for: the connection's framing is lost.
        self.closed = !keeps_alive || !self.rbuf.is_empty();
        // A buffer grown for a large head is given back; the usual 2 KiB stays for the next
        // request (giving it back too saved 0.4 KiB per user in W4, for an allocation each time).
        if std::mem::take(&mut self.grown) {
            self.rbuf = BytesMut::new();
        }
        super::decode_kept(ex, policy, buf)?;
        Ok(false)
    }

    /// Reads more into `rbuf`, growing it only when it is full (a large head).
    async fn fill(&mut self) -> std::io::Result<usize> {
        if self.rbuf.capacity() == self.rbuf.len() {
            self.rbuf.reserve(self.rbuf.len().max(READ_START));
            // Right after growing, the room counts from where the head began (or from the
            // start of new memory), so it is close to the memory's size.
            self.grown |= self.rbuf.capacity() > KEEP_AT_MOST;
        }
        self.io.read_buf(&mut self.rbuf).await
    }

    /// Whether nothing waits to be read on an idle connection (no close, no stray bytes).
    async fn is_quiet(&mut self) -> bool {
        let mut probe = [0u8; 1];
        let mut rb = tokio::io::ReadBuf::new(&mut probe);
        let io = &mut self.io;
        std::future::poll_fn(|cx| match io.as_mut().poll_read(cx, &mut rb) {
            std::task::Poll::Pending => std::task::Poll::Ready(true),
            std::task::Poll::Ready(_) => std::task::Poll::Ready(false),
        })
        .await
    }

    /// Puts `req` into `wbuf` (unless it is the frozen request already there: `forward`
    /// belongs to the connection, so the bytes would be the same); returns whether the request
    /// asks to close the connection.
    fn write_request(&mut self, req: &Outgoing, forward: Option<&Forward>) -> bool {
        if req.stamp() != 0 && self.written.0 == req.stamp() && !self.wbuf.is_empty() {
            return self.written.1;
        }
        let closes = self.serialize(req, forward);
        self.written = (req.stamp(), closes);
        closes
    }

    /// Writes the request into `wbuf`, framing its body as hyper does: no length for an empty
    /// body (and no `Transfer-Encoding`), a `Transfer-Encoding` the user set kept and ending in
    /// `chunked` (the body then sent as one chunk), a `Content-Length` the user set kept, else
    /// `content-length` added. A forwarding proxy gets the absolute form and its credentials.
    /// Returns whether the request asked to close the connection.
    fn serialize(&mut self, req: &Outgoing, forward: Option<&Forward>) -> bool {
        let w = &mut self.wbuf;
        let body = &req.body[..];
        w.clear();
        w.extend_from_slice(req.method.as_str().as_bytes());
        w.push(b' ');
        if let Some(f) = forward {
            w.extend_from_slice(f.base.as_bytes());
        }
        w.extend_from_slice(req.target.as_str().as_bytes());
        w.extend_from_slice(b" HTTP/1.1\r\n");
        let te = req.get(&http::header::TRANSFER_ENCODING);
        let chunked = !body.is_empty() && te.is_some();
        let mut closes = false;
        let mut has_length = false;
        // The proxy's credentials replace a `Proxy-Authorization` the step set, in its place,
        // as `HeaderMap::insert` does on hyper's path; else they go last.
        let proxy_auth = forward.and_then(|f| f.auth.as_ref());
        let user_set =
            proxy_auth.is_some() && req.get(&http::header::PROXY_AUTHORIZATION).is_some();
        let appended = proxy_auth
            .filter(|_| !user_set)
            .map(|v| (&http::header::PROXY_AUTHORIZATION, v));
        for (name, value) in req.headers().chain(appended) {
            let value = match proxy_auth {
                Some(auth) if *name == http::header::PROXY_AUTHORIZATION => auth,
                _ => value,
            };
            if *name == http::header::TRANSFER_ENCODING && body.is_empty() {
                continue;
            }
            if *name == http::header::CONTENT_LENGTH {
                if chunked {
                    continue;
                }
                has_length = true;
            }
            if *name == http::header::CONNECTION {
                closes |= value
                    .to_str()
                    .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")));
            }
            w.extend_from_slice(name.as_str().as_bytes());
            w.extend_from_slice(b": ");
            w.extend_from_slice(value.as_bytes());
            if *name == http::header::TRANSFER_ENCODING
                && !value
                    .to_str()
                    .ok()
                    .and_then(|v| v.rsplit(',').next())
                    .is_some_and(|t| t.trim().eq_ignore_ascii_case("chunked"))
            {
                w.extend_from_slice(b", chunked");
            }
            w.extend_from_slice(b"\r\n");
        }
        if !body.is_empty() && !chunked && !has_length {
            let _ = write!(w, "content-length: {}\r\n", body.len());
        }
        w.extend_from_slice(b"\r\n");
        if chunked {
            let _ = write!(w, "{:x}\r\n", body.len());
            w.extend_from_slice(body);
            w.extend_from_slice(b"\r\n0\r\n\r\n");
        } else {
            w.extend_from_slice(body);
        }
        closes
    }
}

fn h1_fail(e: H1Error) -> Fail {
    (e.class, e.message)
}

fn io_fail(e: &std::io::Error) -> Fail {
    use std::io::ErrorKind::*;
    let class = match e.kind() {
        _ if e.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()) => ErrorClass::Tls,
        TimedOut => ErrorClass::Timeout,
        InvalidData => ErrorClass::Protocol,
        _ => ErrorClass::Reset,
    };
    (class, format!("connection error: {e}"))
}

#[cfg(test)]
mod tests;
