//! Helpers shared by the integration tests: a loopback test server with scripted behaviours,
//! in-process and real-binary runners, and per-test folders.

#![allow(dead_code)]

pub mod faults;
pub mod proxy;
pub mod scripted;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use stampede::exit::Exit;
use stampede::report::RunResult;

/// What the test server saw.
#[derive(Debug, Default)]
pub struct Seen {
    /// Arrival time of every request, by path.
    pub arrivals: Mutex<HashMap<String, Vec<Instant>>>,
    /// Requests in flight right now.
    pub in_flight: AtomicU64,
    /// (arrival, in flight including this one) for every request.
    pub concurrency: Mutex<Vec<(Instant, u64)>>,
    /// Requests answered with 2xx, by path.
    pub ok: Mutex<HashMap<String, u64>>,
    /// When the first request arrived.
    pub first: Mutex<Option<Instant>>,
    /// Connections accepted.
    pub connections: AtomicU64,
    /// Requests to `/flaky`.
    pub flaky: AtomicU64,
    /// The lock `/lock-read` and `/lock-write` share.
    pub lock: tokio::sync::Mutex<()>,
    /// HTTP versions of the requests, e.g. "HTTP/2.0".
    pub versions: Mutex<Vec<String>>,
    /// The slots of `/pool`, made on its first request from `ServerConfig::pool`.
    pub pool: std::sync::OnceLock<tokio::sync::Semaphore>,
    /// How long each `/pool` request held its slot.
    pub held: Mutex<Vec<Duration>>,
}

impl Seen {
    /// Arrival times for a path.
    pub fn arrivals(&self, path: &str) -> Vec<Instant> {
        self.arrivals
            .lock()
            .unwrap()
            .get(path)
            .cloned()
            .unwrap_or_default()
    }
    /// 2xx answers for a path.
    pub fn ok(&self, path: &str) -> u64 {
        self.ok.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

/// Behaviour knobs of the test server.
#[derive(Debug, Clone, Default)]
pub struct ServerConfig {
    /// Serve TLS with a fresh self-signed certificate for `localhost`, offering h2 and http/1.1.
    pub tls: bool,
    /// `/stall` holds every request that arrives in [first + from, first + from + len) until
    /// the window ends: a server-wide pause, like a long GC.
    pub stall: Option<(Duration, Duration)>,
    /// Slots of `/pool` (4 when unset).
    pub pool: Option<usize>,
}

/// A loopback listener (127.0.0.1:0) served on its own runtime thread; stops when dropped.
pub struct ServerThread {
    /// Its address.
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for ServerThread {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Binds 127.0.0.1:0 and hands every accepted connection to `on_conn`, each on its own task of a
/// two-worker runtime.
pub fn serve_on_thread<F, Fut>(on_conn: F) -> ServerThread
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    serve_on_thread_at("127.0.0.1:0", on_conn)
}

/// [`serve_on_thread`] on another loopback address (`[::1]:0`).
pub fn serve_on_thread_at<F, Fut>(bind: &str, on_conn: F) -> ServerThread
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let std_listener = std::net::TcpListener::bind(bind).unwrap();
    std_listener.set_nonblocking(true).unwrap();
    let addr = std_listener.local_addr().unwrap();
    let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
            loop {
                tokio::select! {
                    a = listener.accept() => {
                        let Ok((stream, _)) = a else { continue };
                        tokio::spawn(on_conn(stream));
                    }
                    _ = &mut rx => break,
                }
            }
        });
        rt.shutdown_timeout(Duration::from_millis(100));
    });
    ServerThread {
        addr,
        stop: Some(tx),
        thread: Some(thread),
    }
}

/// A running test server on 127.0.0.1:0.
pub struct TestServer {
    /// Its address.
    pub addr: SocketAddr,
    /// What it saw.
    pub seen: Arc<Seen>,
    _server: ServerThread,
}

impl TestServer {
    /// Base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Starts a test server with the routes below on its own runtime thread.
///
/// - `GET /ok` → 200 `{"ok":true}`
/// - `POST /login` `{"user":U}` → `{"token":"tok-U"}`
/// - `GET /secure` → 200 only with `Authorization: Bearer tok-…`, else 401
/// - `POST /signed` → 200 only when `x-signature` is the hex HMAC-SHA256 of the body keyed by the
///   bearer token, else 401
/// - `GET /slow?ms=N` → waits N ms, then 200
/// - `GET /stall` → 200, held while the configured stall window is open
/// - `GET /status?code=N` → status N
/// - `GET /flaky` → 503 for half of the requests, 200 otherwise
/// - `GET /pool?ms=N` → waits for one of `ServerConfig::pool` slots (4) and holds it N ms (20),
///   with `Server-Timing: pool-wait, db`
/// - `GET /creep` → slower by 4 ms for every second since the server's first request
/// - `GET /lock-read`, `GET /lock-write?ms=N` → share one lock, held 1 ms and N ms (15): readers suffer
///   only when writers run beside them
/// - `ANY /echo` → `{"method","query","body","headers":{cookie,content-type,traceparent,…}}`
/// - `GET /setcookie` → sets `sid=abc123` and `theme=dark`
/// - `GET /user/NAME` → 200 (the path records who called)
pub fn start_server(cfg: ServerConfig) -> TestServer {
    let seen = Arc::new(Seen::default());
    let tls = cfg.tls.then(tls_acceptor);
    let seen2 = seen.clone();
    let server = serve_on_thread(move |stream| {
        seen2.connections.fetch_add(1, Ordering::SeqCst);
        let (seen, cfg, tls) = (seen2.clone(), cfg.clone(), tls.clone());
        async move {
            let svc = service_fn(move |req| {
                let (seen, cfg) = (seen.clone(), cfg.clone());
                async move { Ok::<_, Infallible>(route(&seen, &cfg, req).await) }
            });
            match tls {
                None => {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                }
                Some(acceptor) => {
                    let Ok(stream) = acceptor.accept(stream).await else {
                        return;
                    };
                    if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
                        let _ = hyper::server::conn::http2::Builder::new(
                            hyper_util::rt::TokioExecutor::new(),
                        )
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                    } else {
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), svc)
                            .await;
                    }
                }
            }
        }
    });
    TestServer {
        addr: server.addr,
        seen,
        _server: server,
    }
}

/// A TLS acceptor with a fresh self-signed certificate for `localhost` (h2 and http/1.1 offered).
pub fn tls_acceptor() -> tokio_rustls::TlsAcceptor {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config))
}

fn reply(code: u16, body: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = StatusCode::from_u16(code).unwrap();
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

fn query(req: &Request<Incoming>, key: &str) -> Option<String> {
    req.uri()
        .query()?
        .split('&')
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")).map(str::to_string))
}

async fn route(seen: &Seen, cfg: &ServerConfig, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let now = Instant::now();
    let path = req.uri().path().to_string();
    seen.versions
        .lock()
        .unwrap()
        .push(format!("{:?}", req.version()));
    let first = *seen.first.lock().unwrap().get_or_insert(now);
    seen.arrivals
        .lock()
        .unwrap()
        .entry(path.clone())
        .or_default()
        .push(now);
    let inflight = seen.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    seen.concurrency.lock().unwrap().push((now, inflight));
    let bearer = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    let echo_headers: serde_json::Map<String, serde_json::Value> = [
        "cookie",
        "content-type",
        "traceparent",
        "authorization",
        "x-user",
        "x-api-key",
        "user-agent",
        "proxy-authorization",
        "accept-encoding",
        "host",
    ]
    .iter()
    .filter_map(|h| {
        req.headers()
            .get(*h)
            .and_then(|v| v.to_str().ok())
            .map(|v| (h.to_string(), serde_json::json!(v)))
    })
    .collect();
    let method = req.method().to_string();
    let raw_query = req.uri().query().unwrap_or("").to_string();
    let sig = req
        .headers()
        .get("x-signature")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let ms = query(&req, "ms").and_then(|v| v.parse::<u64>().ok());
    let code = query(&req, "code").and_then(|v| v.parse::<u16>().ok());
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let resp = match path.as_str() {
        "/ok" => reply(200, r#"{"ok":true}"#),
        "/login" => {
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            match v["user"].as_str() {
                Some(u) => reply(
                    200,
                    &serde_json::json!({ "token": format!("tok-{u}") }).to_string(),
                ),
                None => reply(400, r#"{"error":"no user"}"#),
            }
        }
        "/secure" => match bearer {
            Some(t) if t.starts_with("tok-") => reply(200, r#"{"balance":100}"#),
            _ => reply(401, r#"{"error":"unauthorized"}"#),
        },
        "/signed" => {
            let good = bearer.as_deref().is_some_and(|t| {
                let want = hex::encode(stampede::script::hmac_sha256(
                    t,
                    &String::from_utf8_lossy(&body),
                ));
                sig.as_deref() == Some(want.as_str())
            });
            if good {
                reply(200, r#"{"status":"filled"}"#)
            } else {
                reply(401, r#"{"error":"bad signature"}"#)
            }
        }
        "/slow" => {
            tokio::time::sleep(Duration::from_millis(ms.unwrap_or(100))).await;
            reply(200, r#"{"ok":true}"#)
        }
        "/stall" => {
            if let Some((from, len)) = cfg.stall {
                let (open, close) = (first + from, first + from + len);
                if now >= open && now < close {
                    tokio::time::sleep_until(tokio::time::Instant::from_std(close)).await;
                }
            }
            reply(200, r#"{"ok":true}"#)
        }
        "/status" => reply(code.unwrap_or(500), r#"{"status":"x"}"#),
        "/pool" => {
            // A pool of slots, each held `ms`: at most slots ÷ hold requests per second, the
            // rest queue. Server-Timing reports the wait for a slot and the work in it.
            let slots = seen
                .pool
                .get_or_init(|| tokio::sync::Semaphore::new(cfg.pool.unwrap_or(4)));
            let asked = Instant::now();
            let Ok(_slot) = slots.acquire().await else {
                return reply(500, r#"{"error":"closed"}"#);
            };
            let got = Instant::now();
            tokio::time::sleep(Duration::from_millis(ms.unwrap_or(20))).await;
            let held = got.elapsed();
            seen.held.lock().unwrap().push(held);
            let mut r = reply(200, r#"{"ok":true}"#);
            r.headers_mut().insert(
                "server-timing",
                http::HeaderValue::from_str(&format!(
                    "pool-wait;dur={:.3}, db;dur={:.3}",
                    (got - asked).as_secs_f64() * 1000.0,
                    held.as_secs_f64() * 1000.0
                ))
                .unwrap(),
            );
            r
        }
        "/creep" => {
            // 2 ms, plus 4 ms for every second since the first request: latency creeping up.
            let waited = 2.0 + 4.0 * now.saturating_duration_since(first).as_secs_f64();
            tokio::time::sleep(Duration::from_secs_f64(waited / 1000.0)).await;
            reply(200, r#"{"ok":true}"#)
        }
        "/lock-read" => {
            let _held = seen.lock.lock().await;
            tokio::time::sleep(Duration::from_millis(1)).await;
            reply(200, r#"{"ok":true}"#)
        }
        "/lock-write" => {
            let _held = seen.lock.lock().await;
            tokio::time::sleep(Duration::from_millis(ms.unwrap_or(15))).await;
            reply(200, r#"{"ok":true}"#)
        }
        "/flaky" => {
            // Fails half the time, by a hash of the request number: even, deterministic.
            let n = seen.flaky.fetch_add(1, Ordering::SeqCst);
            let h = n.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(29);
            if h.is_multiple_of(2) {
                reply(503, r#"{"error":"busy"}"#)
            } else {
                reply(200, r#"{"ok":true}"#)
            }
        }
        "/echo" => reply(
            200,
            &serde_json::json!({
                "method": method,
                "query": raw_query,
                "body": String::from_utf8_lossy(&body),
                "headers": echo_headers,
            })
            .to_string(),
        ),
        "/setcookie" => {
            let mut r = reply(200, r#"{"ok":true}"#);
            r.headers_mut().append(
                http::header::SET_COOKIE,
                http::HeaderValue::from_static("sid=abc123; Path=/; HttpOnly"),
            );
            r.headers_mut().append(
                http::header::SET_COOKIE,
                http::HeaderValue::from_static("theme=dark"),
            );
            r
        }
        p if p.starts_with("/user/") => reply(200, r#"{"ok":true}"#),
        _ => reply(404, r#"{"error":"not found"}"#),
    };
    seen.in_flight.fetch_sub(1, Ordering::SeqCst);
    if resp.status().is_success() {
        *seen.ok.lock().unwrap().entry(path).or_default() += 1;
    }
    resp
}

/// A per-test folder.
pub fn dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// Writes a scenario file into `dir`.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// Runs the CLI in-process.
pub fn run_cli(args: &[&str]) -> Exit {
    let mut full = vec!["stampede"];
    full.extend_from_slice(args);
    stampede::cli::run(stampede::cli::Cli::try_parse_from(full).unwrap())
}

/// Runs a scenario in-process with `--out`, returning the exit code and results.
pub fn run_scenario(path: &Path, out: &Path) -> (Exit, RunResult) {
    run_scenario_with(path, out, &[])
}

/// [`run_scenario`] with more arguments (`--interval 500ms`, `--warmup 1s`).
pub fn run_scenario_with(path: &Path, out: &Path, extra: &[&str]) -> (Exit, RunResult) {
    let mut args = vec![
        "run",
        path.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ];
    args.extend_from_slice(extra);
    let exit = run_cli(&args);
    let result = stampede::report::read_json(&out.join("results.json")).unwrap();
    (exit, result)
}

/// Whether the tests run as root, which namespaces (`unshare`) need. CI and the development
/// machines do; elsewhere the test is skipped with a message, but never under `CI`.
pub fn root_or_skip(what: &str) -> bool {
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"));
    if !root {
        assert!(
            std::env::var("CI").is_err(),
            "CI must run this test as root"
        );
        eprintln!("skipped: {what} needs root");
    }
    root
}

/// Writes `s.yaml` in `dir`: `target: {target}`, then `body` (journeys, flows, ...).
pub fn write_scenario(dir: &Path, target: &str, body: &str) -> PathBuf {
    write(dir, "s.yaml", &format!("target: {target}\n{body}"))
}

/// Writes `s.yaml` in `dir`: one journey `j` of one step `ok` (GET /ok on `srv`) and one flow
/// `f` running it with the given load model, e.g. `"rate: 50/s, duration: 5s"`.
pub fn ok_scenario(dir: &Path, srv: &TestServer, model: &str) -> PathBuf {
    write_scenario(
        dir,
        &srv.url(),
        &format!(
            "journeys:\n  j: [ {{ name: ok, get: /ok }} ]\nflows:\n  f: {{ journey: j, {model} }}\n"
        ),
    )
}

/// The path of the real binary.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_stampede")
}

/// Runs the real binary and returns (exit code, stdout, stderr).
pub fn run_bin(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(bin())
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A flow's results by name.
pub fn flow<'a>(r: &'a RunResult, name: &str) -> &'a stampede::model::FlowResult {
    r.flows
        .iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("no flow {name}"))
}

/// A step's results by `flow.step`.
pub fn step<'a>(r: &'a RunResult, key: &str) -> &'a stampede::model::StepResult {
    r.flows
        .iter()
        .flat_map(|f| &f.steps)
        .find(|s| s.key == key)
        .unwrap_or_else(|| panic!("no step {key}"))
}

/// Decodes a stored histogram.
pub fn hist(l: &stampede::model::Latency) -> hdrhistogram::Histogram<u64> {
    stampede::model::codec::decode(&l.histogram).unwrap()
}

/// Runs the real binary, sampling its peak resident memory (`VmHWM`) while it runs; returns
/// (exit code, stdout, stderr, peak RSS in KiB as last read).
pub fn run_bin_measured(args: &[&str]) -> (i32, String, String, u64) {
    let mut child = std::process::Command::new(bin())
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status_path = format!("/proc/{}/status", child.id());
    let (out, err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let read_all = |mut r: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let (out, err) = (read_all(Box::new(out)), read_all(Box::new(err)));
    let mut peak = 0;
    let code = loop {
        if let Ok(text) = std::fs::read_to_string(&status_path)
            && let Some(kib) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            peak = peak.max(kib);
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status.code().unwrap_or(-1);
        }
        // Sampling memory, not waiting for an event: the loop ends when the process does.
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    (code, out.join().unwrap(), err.join().unwrap(), peak)
}

/// Runs a scenario through the real binary with `--out DIR/out --quiet`, returning the exit code,
/// stderr, the results and the peak RSS in KiB.
pub fn run_bin_scenario(scenario: &Path, extra: &[&str]) -> (i32, String, RunResult, u64) {
    let out = scenario.parent().unwrap().join("out");
    let mut args = vec![
        "run",
        scenario.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ];
    args.extend_from_slice(extra);
    let (code, _, stderr, peak) = run_bin_measured(&args);
    let r = stampede::report::read_json(&out.join("results.json"))
        .unwrap_or_else(|e| panic!("no results.json ({e}); exit {code}, stderr: {stderr}"));
    (code, stderr, r, peak)
}

/// The real binary set up as `run SCENARIO --out OUT --quiet`, to spawn.
pub fn run_command(scenario: &Path, out: &Path) -> std::process::Command {
    let mut c = std::process::Command::new(bin());
    c.args([
        "run",
        scenario.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    c
}

/// Sends `sig` (`INT`, `TERM`, `KILL`) to a child process.
pub fn signal(child: &std::process::Child, sig: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{sig}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Asserts that a run ended with exit code `want`, or with 3 when one of its self-checks failed:
/// on a busy 2-core machine the generator's own checks (lag, CPU) may fail a healthy run, and
/// exit 3 then takes precedence. The self-checks have tests of their own; this keeps the others
/// about the behaviour they test.
pub fn assert_exit(code: i32, want: i32, r: &RunResult, context: &str) {
    if code == 3 && want != 3 {
        let failed: Vec<&str> = r
            .self_checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| c.detail.as_str())
            .collect();
        assert!(
            !failed.is_empty(),
            "exit 3 with every self-check passed: {context}"
        );
        eprintln!(
            "note: exit 3 instead of {want} (a self-check failed on this machine: {failed:?})"
        );
        return;
    }
    assert_eq!(code, want, "{context}");
}

/// Polls `ready` every few milliseconds until it holds, failing after 20 s with `what`: the wait
/// for an event another process or thread makes visible (a file written, a request arrived).
pub fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ready() {
        assert!(Instant::now() < deadline, "waited 20 s for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A run's self-check by name.
pub fn self_check<'a>(r: &'a RunResult, name: &str) -> &'a stampede::model::SelfCheck {
    r.self_checks
        .iter()
        .find(|c| c.check == name)
        .unwrap_or_else(|| panic!("no self-check {name}: {:?}", r.self_checks))
}
