//! The lean HTTP/1.1 response reader's pure half: a head parsed by `httparse` (the parser hyper
//! uses), the body's framing decided from it (RFC 9112 §6), and a body decoder for
//! `Content-Length`, chunked coding (extensions and trailers) and close-delimited bodies. It
//! consumes the bytes it is given and says what it still needs, so tests and the fuzzer drive it
//! without any I/O, split at any boundary.

use bytes::Bytes;

use crate::http::headers::{Field, Headers, bit, eq_lower, known, text};
use crate::model::ErrorClass;

/// The largest response head accepted (status line and headers): hyper's default buffer limit.
pub const MAX_HEAD: usize = 8192 + 4096 * 100;
/// The most header fields accepted (hyper's default).
pub const MAX_HEADERS: usize = 100;
/// The longest header name `http::HeaderName` takes.
const MAX_NAME: usize = (1 << 16) - 1;
/// The longest chunk-size line, extensions included.
const MAX_CHUNK_LINE: usize = 4096;
/// The most trailer bytes accepted after the last chunk.
const MAX_TRAILERS: usize = 16 * 1024;
/// The most trailer fields accepted (hyper's limit).
const MAX_TRAILER_FIELDS: usize = 100;

/// Why a response cannot be read; its class is what the hyper path reports for the same bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct H1Error {
    /// `protocol` for broken framing, `reset` for a message cut short.
    pub class: ErrorClass,
    /// What was wrong.
    pub message: String,
}

fn protocol(message: impl Into<String>) -> H1Error {
    H1Error {
        class: ErrorClass::Protocol,
        message: message.into(),
    }
}

fn incomplete(what: &str) -> H1Error {
    H1Error {
        class: ErrorClass::Reset,
        message: format!("the connection closed before the {what} was complete"),
    }
}

/// A parsed response head.
#[derive(Debug)]
pub struct Head {
    /// Status code.
    pub status: u16,
    /// `1` for HTTP/1.1, `0` for HTTP/1.0.
    pub minor: u8,
    /// Where each header field is in the head's bytes (see [`Head::into_headers`]).
    fields: Vec<Field>,
    /// Bytes of the head, final blank line included.
    pub len: usize,
    /// What framing and keep-alive depend on, gathered as the fields were read (looking them
    /// up again afterwards cost W1 more than parsing the head did).
    conn: Tokens,
    /// The `Content-Length` values, checked.
    length: Length,
    /// With `Transfer-Encoding`: whether its last coding is `chunked`.
    chunked: Option<bool>,
}

/// The `Connection` tokens that matter.
#[derive(Debug, Default, Clone, Copy)]
struct Tokens {
    close: bool,
    keep_alive: bool,
}

impl Tokens {
    /// Adds one `Connection` field's comma-separated tokens. A value of one token, the usual
    /// case, is compared whole (no check for text, no split); a field value holds no CR, the
    /// one byte `eq_lower` could take for a letter or `-`.
    fn add(&mut self, value: &[u8]) {
        if eq_lower(value, b"keep-alive") {
            self.keep_alive = true;
        } else if eq_lower(value, b"close") {
            self.close = true;
        } else {
            for token in text(value).into_iter().flat_map(|v| v.split(',')) {
                let token = token.trim();
                self.close |= token.eq_ignore_ascii_case("close");
                self.keep_alive |= token.eq_ignore_ascii_case("keep-alive");
            }
        }
    }
}

/// What the `Content-Length` fields said.
#[derive(Debug, Default)]
enum Length {
    #[default]
    Absent,
    Is(u64),
    /// Not a number, or two different numbers: why.
    Broken(String),
}

impl Length {
    /// Adds one field's value: a comma-separated list of equal numbers.
    fn add(&mut self, value: &[u8]) {
        if matches!(self, Length::Broken(_)) {
            return;
        }
        for part in value.split(|b| *b == b',') {
            let digits = part.trim_ascii();
            let n = if digits.is_empty() {
                None
            } else {
                digits.iter().try_fold(0u64, |n, d| {
                    let d = d.is_ascii_digit().then(|| u64::from(d - b'0'))?;
                    n.checked_mul(10)?.checked_add(d)
                })
            };
            *self = match (n, &*self) {
                (None, _) => Length::Broken(format!(
                    "invalid content-length {:?}",
                    String::from_utf8_lossy(digits)
                )),
                (Some(n), Length::Is(l)) if *l != n => {
                    Length::Broken("conflicting content-length values".into())
                }
                (Some(n), _) => Length::Is(n),
            };
            if matches!(self, Length::Broken(_)) {
                return;
            }
        }
    }
}

impl Head {
    /// Whether the connection can carry another request after this response: HTTP/1.1 unless
    /// `Connection: close`, HTTP/1.0 only with `Connection: keep-alive`.
    pub fn keeps_alive(&self) -> bool {
        // `close` wins over `keep-alive`, as in hyper; a 101 hands the connection over.
        self.status != 101 && !self.conn.close && (self.minor != 0 || self.conn.keep_alive)
    }
}

impl Head {
    /// The header fields, given the head's bytes: the first [`Head::len`] bytes it was parsed
    /// from. The caller hands them over rather than the parser copying them, so that the lean
    /// path can split them off its read buffer without a copy or an allocation.
    pub fn into_headers(self, head: Bytes) -> Headers {
        Headers::raw(head, self.fields)
    }
}

/// Parses a head from the start of `buf`: `None` when more bytes are needed.
pub fn parse_head(buf: &[u8]) -> Result<Option<Head>, H1Error> {
    // Left uninitialised for httparse to fill: writing 100 empty headers first was a tenth of
    // the head's cost.
    let mut fields =
        [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut resp,
        buf,
        &mut fields,
    );
    let len = match parsed {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if buf.len() > MAX_HEAD {
                return Err(protocol(format!(
                    "the response head is over {MAX_HEAD} bytes"
                )));
            }
            return Ok(None);
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(protocol(format!(
                "the response has more than {MAX_HEADERS} header fields"
            )));
        }
        Err(e) => return Err(protocol(format!("invalid response head: {e}"))),
    };
    if len > MAX_HEAD {
        return Err(protocol(format!(
            "the response head is over {MAX_HEAD} bytes"
        )));
    }
    let status = resp.code.unwrap_or(0);
    if status < 100 {
        return Err(protocol(format!("invalid status code {status}")));
    }
    let minor = resp.version.unwrap_or(1);
    // The head is kept as bytes with each field's place in them; a `HeaderMap` is built by no
    // one on this path (see `http::headers`). httparse has checked every name (a token) and
    // value (no control byte but tab), which is all `HeaderName` and `HeaderValue` check,
    // bar a name's length.
    let mut fields = Vec::with_capacity(resp.headers.len());
    let base = buf.as_ptr() as usize;
    // httparse's names and values are slices of `buf` within its first `len` bytes, and `len`
    // is at most `MAX_HEAD`, so a place that passes the test fits in a `u32`.
    let place = |part: &[u8]| -> Option<(u32, u32)> {
        let at = (part.as_ptr() as usize).wrapping_sub(base);
        let end = at.wrapping_add(part.len());
        (at <= end && end <= len).then_some((at as u32, end as u32))
    };
    let (mut conn, mut length, mut chunked) = (Tokens::default(), Length::Absent, None);
    for h in resp.headers.iter() {
        if h.name.len() > MAX_NAME {
            return Err(protocol(format!("invalid header name {:?}", h.name)));
        }
        let b = known(h.name.as_bytes());
        match b {
            bit::CONNECTION => conn.add(h.value),
            bit::CONTENT_LENGTH => length.add(h.value),
            // Only the last coding of the last field frames the message (as hyper reads it).
            bit::TRANSFER_ENCODING => {
                chunked = Some(
                    text(h.value)
                        .and_then(|v| v.rsplit(',').next())
                        .is_some_and(|t| t.trim().eq_ignore_ascii_case("chunked")),
                );
            }
            _ => {}
        }
        match (place(h.name.as_bytes()), place(h.value)) {
            (Some(name), Some(value)) => fields.push(Field::new(name, value, b)),
            _ => return Err(protocol("a header field lies outside the response head")),
        }
    }
    Ok(Some(Head {
        status,
        minor,
        fields,
        len,
        conn,
        length,
        chunked,
    }))
}

/// How a response's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (`HEAD`, 1xx, 204, 304).
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Everything until the server closes.
    Close,
}

/// The body's framing (RFC 9112 §6.3). `head_request`: the request was a `HEAD`.
pub fn framing(head: &Head, head_request: bool) -> Result<Framing, H1Error> {
    if head_request || head.status < 200 || head.status == 204 || head.status == 304 {
        return Ok(Framing::Empty);
    }
    if let Some(chunked) = head.chunked {
        if head.minor == 0 {
            return Err(protocol("transfer-encoding in an HTTP/1.0 response"));
        }
        // Any other last coding is read to the close.
        return Ok(if chunked {
            Framing::Chunked
        } else {
            Framing::Close
        });
    }
    match &head.length {
        Length::Broken(why) => Err(protocol(why.clone())),
        Length::Is(0) => Ok(Framing::Empty),
        Length::Is(n) => Ok(Framing::Length(*n)),
        Length::Absent => Ok(Framing::Close),
    }
}

/// Decodes a body in pieces.
#[derive(Debug, Clone)]
pub struct BodyDecoder {
    state: State,
    trailer_fields: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Done,
    Length(u64),
    Close,
    /// Reading a chunk-size line: the size so far, whether a digit came, the line's length.
    Size {
        size: u64,
        digit: bool,
        line: usize,
    },
    /// Whitespace after the size, before `;` or CR.
    SizeWs {
        size: u64,
        line: usize,
    },
    /// Extensions until CR.
    Ext {
        size: u64,
        line: usize,
    },
    /// Expecting the LF that ends the size line.
    SizeLf {
        size: u64,
    },
    Data(u64),
    DataCr,
    DataLf,
    /// At the start of a trailer line (or the final blank line); `total` trailer bytes so far.
    TrailerStart {
        total: usize,
    },
    /// Inside a trailer line.
    Trailer {
        total: usize,
    },
    TrailerLf {
        total: usize,
        blank: bool,
    },
}

impl BodyDecoder {
    /// A decoder for this framing.
    pub fn new(f: Framing) -> BodyDecoder {
        let state = match f {
            Framing::Empty | Framing::Length(0) => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::Size {
                size: 0,
                digit: false,
                line: 0,
            },
            Framing::Close => State::Close,
        };
        BodyDecoder {
            state,
            trailer_fields: 0,
        }
    }

    /// Whether the body is complete.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes from `input`, handing body bytes to `out`; returns how many bytes of `input` it
    /// used. It stops at the body's end, so what follows is left for the next response.
    pub fn decode(
        &mut self,
        input: &[u8],
        out: &mut impl FnMut(&[u8]) -> Result<(), H1Error>,
    ) -> Result<usize, H1Error> {
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            self.state = match self.state {
                State::Done => return Ok(i),
                State::Close => {
                    out(&input[i..])?;
                    return Ok(input.len());
                }
                State::Length(left) | State::Data(left) => {
                    let n = (left.min((input.len() - i) as u64)) as usize;
                    out(&input[i..i + n])?;
                    i += n;
                    let rest = left - n as u64;
                    self.state = match (self.state, rest) {
                        (State::Length(_), 0) => State::Done,
                        (State::Length(_), l) => State::Length(l),
                        (_, 0) => State::DataCr,
                        (_, l) => State::Data(l),
                    };
                    continue;
                }
                State::Size { size, digit, line } => {
                    if line >= MAX_CHUNK_LINE {
                        return Err(protocol("a chunk-size line is too long"));
                    }
                    match ((b as char).to_digit(16), b) {
                        (Some(d), _) => State::Size {
                            size: size
                                .checked_mul(16)
                                .and_then(|s| s.checked_add(u64::from(d)))
                                .ok_or_else(|| protocol("a chunk size overflows"))?,
                            digit: true,
                            line: line + 1,
                        },
                        _ if !digit => return Err(protocol("a chunk size is not hexadecimal")),
                        (None, b'\r') => State::SizeLf { size },
                        (None, b';') => State::Ext {
                            size,
                            line: line + 1,
                        },
                        (None, b' ' | b'\t') => State::SizeWs {
                            size,
                            line: line + 1,
                        },
                        _ => return Err(protocol("invalid byte in a chunk size")),
                    }
                }
                State::SizeWs { size, line } => {
                    if line >= MAX_CHUNK_LINE {
                        return Err(protocol("a chunk-size line is too long"));
                    }
                    match b {
                        b' ' | b'\t' => State::SizeWs {
                            size,
                            line: line + 1,
                        },
                        b';' => State::Ext {
                            size,
                            line: line + 1,
                        },
                        b'\r' => State::SizeLf { size },
                        _ => return Err(protocol("invalid byte after a chunk size")),
                    }
                }
                State::Ext { size, line } => {
                    if line >= MAX_CHUNK_LINE {
                        return Err(protocol("a chunk extension is too long"));
                    }
                    match b {
                        b'\r' => State::SizeLf { size },
                        b'\n' => return Err(protocol("a chunk-size line ends without CR")),
                        _ => State::Ext {
                            size,
                            line: line + 1,
                        },
                    }
                }
                State::SizeLf { size } => match (b, size) {
                    (b'\n', 0) => State::TrailerStart { total: 0 },
                    (b'\n', n) => State::Data(n),
                    _ => return Err(protocol("a chunk-size line ends without LF")),
                },
                State::DataCr if b == b'\r' => State::DataLf,
                State::DataCr => return Err(protocol("a chunk's data is longer than its size")),
                State::DataLf if b == b'\n' => State::Size {
                    size: 0,
                    digit: false,
                    line: 0,
                },
                State::DataLf => return Err(protocol("a chunk's data does not end with CRLF")),
                State::TrailerStart { total } | State::Trailer { total } => {
                    if total >= MAX_TRAILERS {
                        return Err(protocol(format!(
                            "the trailers are over {MAX_TRAILERS} bytes"
                        )));
                    }
                    let blank = matches!(self.state, State::TrailerStart { .. });
                    match b {
                        b'\r' => State::TrailerLf {
                            total: total + 1,
                            blank,
                        },
                        b'\n' => return Err(protocol("a trailer line ends without CR")),
                        _ => {
                            if blank {
                                self.trailer_fields += 1;
                                if self.trailer_fields > MAX_TRAILER_FIELDS {
                                    return Err(protocol(format!(
                                        "more than {MAX_TRAILER_FIELDS} trailer fields"
                                    )));
                                }
                            }
                            State::Trailer { total: total + 1 }
                        }
                    }
                }
                State::TrailerLf { total, blank } => match (b, blank) {
                    (b'\n', true) => State::Done,
                    (b'\n', false) => State::TrailerStart { total: total + 1 },
                    _ => return Err(protocol("a trailer line ends without LF")),
                },
            };
            i += 1;
        }
        Ok(i)
    }

    /// The server closed the connection: fine for a close-delimited body, else the body was cut.
    pub fn eof(&mut self) -> Result<(), H1Error> {
        match self.state {
            State::Done => Ok(()),
            State::Close => {
                self.state = State::Done;
                Ok(())
            }
            _ => Err(incomplete("response body")),
        }
    }
}

/// The error for a connection closed before a complete head.
pub fn head_cut() -> H1Error {
    incomplete("response head")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(f: Framing, input: &[u8], step: usize) -> Result<(Vec<u8>, usize), H1Error> {
        let mut d = BodyDecoder::new(f);
        let mut body = Vec::new();
        let mut used = 0;
        for piece in input.chunks(step.max(1)) {
            let n = d.decode(piece, &mut |b| {
                body.extend_from_slice(b);
                Ok(())
            })?;
            used += n;
            if n < piece.len() {
                break;
            }
        }
        if !d.is_done() {
            d.eof()?;
        }
        Ok((body, used))
    }

    #[test]
    fn chunked_bodies_with_extensions_and_trailers_decode_at_any_split() {
        let wire =
            b"4;ext=1\r\nWiki\r\n5 \r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        for step in 1..wire.len() {
            let (body, used) = decode_all(Framing::Chunked, wire, step).unwrap();
            assert_eq!(body, b"Wikipedia in\r\n\r\nchunks.", "split {step}");
            assert_eq!(&wire[used..], b"NEXT", "split {step}");
        }
    }

    #[test]
    fn broken_framing_is_a_protocol_error_and_a_cut_is_a_reset() {
        for bad in [
            &b"zz\r\n"[..],
            b"4\r\nWikiX\r\n",
            b"4\nWiki",
            b"11111111111111111\r\n",
            b"5 x\r\nhello\r\n",
        ] {
            let e = decode_all(Framing::Chunked, bad, 64).unwrap_err();
            assert_eq!(e.class, ErrorClass::Protocol, "{bad:?}: {e:?}");
        }
        let e = decode_all(Framing::Chunked, b"4\r\nWi", 64).unwrap_err();
        assert_eq!(e.class, ErrorClass::Reset);
        let e = decode_all(Framing::Length(10), b"short", 64).unwrap_err();
        assert_eq!(e.class, ErrorClass::Reset);
        assert_eq!(
            decode_all(Framing::Close, b"all of it", 3).unwrap().0,
            b"all of it"
        );
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let head = |text: &str| parse_head(text.as_bytes()).unwrap().unwrap();
        let f = |text: &str, is_head| framing(&head(text), is_head);
        assert_eq!(
            f("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n", false),
            Ok(Framing::Length(5))
        );
        assert_eq!(
            f("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n", true),
            Ok(Framing::Empty)
        );
        assert_eq!(
            f("HTTP/1.1 204 No Content\r\n\r\n", false),
            Ok(Framing::Empty)
        );
        assert_eq!(
            f(
                "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\ncontent-length: 3\r\n\r\n",
                false
            ),
            Ok(Framing::Chunked)
        );
        assert_eq!(f("HTTP/1.0 200 OK\r\n\r\n", false), Ok(Framing::Close));
        assert_eq!(
            f("HTTP/1.1 200 OK\r\ncontent-length: 5, 5\r\n\r\n", false),
            Ok(Framing::Length(5))
        );
        assert!(
            f(
                "HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\n",
                false
            )
            .is_err()
        );
        assert!(f("HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n", false).is_err());
        assert!(!head("HTTP/1.0 200 OK\r\n\r\n").keeps_alive());
        assert!(head("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n").keeps_alive());
        assert!(!head("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n").keeps_alive());
        assert_eq!(
            parse_head(b"HTTP/1.1 200 OK\r\nx: y\r\n")
                .unwrap()
                .map(|h| h.len),
            None
        );
        assert!(parse_head(b"HTTP/1.1 abc\r\n\r\n").is_err());
    }

    #[test]
    fn connection_tokens_are_read_whole_or_listed_in_any_case() {
        let head = |text: &str| parse_head(text.as_bytes()).unwrap().unwrap();
        let alive = |value: &str| {
            head(&format!("HTTP/1.0 200 OK\r\nConnection: {value}\r\n\r\n")).keeps_alive()
        };
        for yes in [
            "keep-alive",
            "Keep-Alive",
            "KEEP-ALIVE",
            "upgrade, keep-alive",
            " x ,keep-alive",
        ] {
            assert!(alive(yes), "{yes}");
        }
        // `close` wins; a near miss or a longer token is no token at all.
        for no in [
            "close",
            "Close",
            "keep-alive, close",
            "keep-alivex",
            "keep-aliv",
            "keep_alive",
            "keep-alive\u{e9}",
            "upgrade",
        ] {
            assert!(!alive(no), "{no}");
        }
        assert!(!head("HTTP/1.1 200 OK\r\nConnection: CLOSE\r\n\r\n").keeps_alive());
        assert!(head("HTTP/1.1 200 OK\r\nConnection: closed\r\n\r\n").keeps_alive());
    }
}
