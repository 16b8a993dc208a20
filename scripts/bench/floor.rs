//! The least CPU a load generator can spend on W2 and W3 here: one thread, one blocking
//! keep-alive connection, no runtime, no epoll, no histogram, requests written from fixed bytes
//! and responses framed by Content-Length alone. It is not a tool anyone should use (it cannot
//! overlap requests, handles no other framing and keeps no results but counts); it is the floor
//! under every real generator's CPU per request, so a goal below it cannot be met by any design.
//!
//! Built by `scripts/bench/suite.py` with `rustc -O` (std only). Usage:
//!   floor ping    HOST:PORT RATE SECONDS   # W2: GET /ping at RATE arrivals/s
//!   floor journey HOST:PORT RATE SECONDS   # W3: login, balance (Bearer), exchange per arrival
//! Prints one JSON line: requests answered 200, journeys completed, errors, late (arrivals started
//! over 1 ms late) and elapsed seconds. A request that fails is not counted as sent; the
//! connection is opened again once, and the run stops if that fails too, so a broken connection
//! cannot make requests look cheap.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

unsafe extern "C" {
    fn prctl(option: i32, ...) -> i32;
}
/// PR_SET_TIMERSLACK: without it the kernel may wake a sleeper up to 50 µs late.
const PR_SET_TIMERSLACK: i32 = 29;

struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    /// Sends `req` and reads one response; returns (status, body range in `buf`).
    fn exchange(&mut self, req: &[u8]) -> std::io::Result<(u16, std::ops::Range<usize>)> {
        self.stream.write_all(req)?;
        let mut filled = 0;
        loop {
            if filled == self.buf.len() {
                self.buf.resize(self.buf.len() * 2, 0);
            }
            let n = self.stream.read(&mut self.buf[filled..])?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            filled += n;
            let Some(head_end) = find(&self.buf[..filled], b"\r\n\r\n") else {
                continue;
            };
            let head = &self.buf[..head_end];
            let len = content_length(head).ok_or(std::io::ErrorKind::InvalidData)?;
            let end = head_end + 4 + len;
            if filled < end {
                continue;
            }
            let status = std::str::from_utf8(&head[9..12])
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            return Ok((status, head_end + 4..end));
        }
    }
}

/// One W3 journey: login, the balance with the token, the exchange of that balance. Counts each
/// answered request; false at the first that fails.
fn journey(
    conn: &mut Conn,
    host: &str,
    n: u64,
    req: &mut Vec<u8>,
    body: &mut Vec<u8>,
    requests: &mut u64,
) -> bool {
    body.clear();
    write!(body, "{{\"user\":\"u{}\",\"password\":\"secret\"}}", n % 500).ok();
    post(host, "/auth/login", "", body, req);
    let Some(token) = answer(conn, req, "token") else {
        return false;
    };
    *requests += 1;
    let auth = format!("authorization: Bearer {}\r\n", String::from_utf8_lossy(&token));
    req.clear();
    write!(req, "GET /wallet/balance HTTP/1.1\r\nhost: {host}\r\n{auth}\r\n").ok();
    let Some(usdt) = answer(conn, req, "USDT") else {
        return false;
    };
    *requests += 1;
    body.clear();
    body.extend_from_slice(b"{\"from\":\"USDT\",\"to\":\"TON\",\"amount\":\"");
    body.extend_from_slice(&usdt);
    body.extend_from_slice(b"\"}");
    post(host, "/exchange", &auth, body, req);
    let ok = matches!(conn.exchange(req), Ok((200, _)));
    *requests += u64::from(ok);
    ok
}

/// The field `key` of a 200 response's body to `req`; None when the exchange failed.
fn answer(conn: &mut Conn, req: &[u8], key: &str) -> Option<Vec<u8>> {
    match conn.exchange(req) {
        Ok((200, r)) => Some(field(&conn.buf[r], key).to_vec()),
        _ => None,
    }
}

/// Opens a new connection after a failed exchange; false when the target refuses it.
fn reconnect(conn: &mut Conn, host: &str) -> bool {
    match TcpStream::connect(host) {
        Ok(stream) => {
            stream.set_nodelay(true).ok();
            conn.stream = stream;
            true
        }
        Err(_) => false,
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn content_length(head: &[u8]) -> Option<usize> {
    for line in head.split(|&b| b == b'\n') {
        if line.len() > 15 && line[..15].eq_ignore_ascii_case(b"content-length:") {
            return std::str::from_utf8(&line[15..]).ok()?.trim().parse().ok();
        }
    }
    None
}

/// The text of a JSON string or number field `"key":value` in `body` (enough for nginx's fixed
/// bodies, no more).
fn field<'a>(body: &'a [u8], key: &str) -> &'a [u8] {
    let pat = format!("\"{key}\":");
    let Some(at) = find(body, pat.as_bytes()) else {
        return b"";
    };
    let rest = &body[at + pat.len()..];
    let rest = rest.strip_prefix(b"\"").unwrap_or(rest);
    let end = rest
        .iter()
        .position(|&b| b == b'"' || b == b',' || b == b'}')
        .unwrap_or(rest.len());
    &rest[..end]
}

fn post(host: &str, path: &str, headers: &str, body: &[u8], out: &mut Vec<u8>) {
    out.clear();
    write!(
        out,
        "POST {path} HTTP/1.1\r\nhost: {host}\r\n{headers}content-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .ok();
    out.extend_from_slice(body);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 5 {
        eprintln!("usage: floor ping|journey HOST:PORT RATE SECONDS");
        std::process::exit(2);
    }
    let (mode, host) = (args[1].as_str(), args[2].as_str());
    let (Ok(rate), Ok(secs)) = (args[3].parse::<f64>(), args[4].parse::<f64>()) else {
        eprintln!("floor: RATE and SECONDS are numbers");
        std::process::exit(2);
    };
    // SAFETY: prctl with PR_SET_TIMERSLACK takes an integer and touches no memory of ours.
    unsafe { prctl(PR_SET_TIMERSLACK, 1u64) };
    let stream = match TcpStream::connect(host) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("floor: cannot connect to {host}: {e}");
            std::process::exit(1);
        }
    };
    stream.set_nodelay(true).ok();
    let mut conn = Conn {
        stream,
        buf: vec![0; 4096],
    };
    let ping = format!("GET /ping HTTP/1.1\r\nhost: {host}\r\n\r\n").into_bytes();
    let (mut requests, mut journeys, mut errors, mut late) = (0u64, 0u64, 0u64, 0u64);
    let mut req = Vec::with_capacity(512);
    let mut body = Vec::with_capacity(256);
    let start = Instant::now();
    let total = (rate * secs) as u64;
    for n in 0..total {
        let due = start + Duration::from_secs_f64(n as f64 / rate);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        } else if now - due > Duration::from_millis(1) {
            late += 1;
        }
        let ok = if mode == "ping" {
            let ok = matches!(conn.exchange(&ping), Ok((200, _)));
            requests += u64::from(ok);
            ok
        } else {
            let ok = journey(&mut conn, host, n, &mut req, &mut body, &mut requests);
            journeys += u64::from(ok);
            ok
        };
        if !ok {
            errors += 1;
            if !reconnect(&mut conn, host) {
                break;
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "{{\"requests\":{requests},\"journeys\":{journeys},\"errors\":{errors},\"late\":{late},\"elapsed\":{elapsed:.3}}}"
    );
}
