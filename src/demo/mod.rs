//! The built-in demo target: a custodial wallet API that breaks the way startup architectures do
//! (every flow synchronous, one shared database behind a small pool). `stampede demo` runs it
//! in-process on 127.0.0.1:0 with the launch scenario; `stampede demo-target` serves it alone; the
//! integration tests use it as a realistic target.
//!
//! Routes: `POST /auth/login`, `GET /wallet/balance`, `POST /exchange`, `GET /reports/daily`,
//! `GET /metrics` (Prometheus text), `GET /health`. Every response carries `Server-Timing`
//! (`db`, `db-queries`, `pool-wait`). An `x-signature` header, when present, must be the
//! hex HMAC-SHA256 of the body keyed by the bearer token.

pub mod feed;
pub mod wallet;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use wallet::{Answer, DbTiming, Pool};

/// Settings of the demo service.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    /// Database connections in the pool.
    pub pool_size: usize,
    /// PBKDF2 iterations per login (CPU cost).
    pub auth_cost: u32,
    /// Make balance reads scan a growing, unindexed table (latency creeps up).
    pub degrade: bool,
    /// How long an exchange waits, inside its database transaction, for the (simulated)
    /// accounting service it calls synchronously.
    pub accounting_ms: u64,
}

impl Default for DemoConfig {
    fn default() -> Self {
        DemoConfig {
            pool_size: 8,
            auth_cost: 75_000,
            degrade: false,
            accounting_ms: 10,
        }
    }
}

/// Command-line form of [`DemoConfig`].
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Database connections in the pool.
    #[arg(long, default_value_t = 8)]
    pub pool_size: usize,
    /// PBKDF2 iterations per login.
    #[arg(long, default_value_t = 75_000)]
    pub auth_cost: u32,
    /// Milliseconds an exchange waits, inside its transaction, for the accounting service.
    #[arg(long, default_value_t = 10)]
    pub accounting_ms: u64,
    /// Balance reads scan a growing unindexed table, so latency creeps up under flat load.
    #[arg(long)]
    pub degrade: bool,
}

impl From<DemoArgs> for DemoConfig {
    fn from(a: DemoArgs) -> Self {
        DemoConfig {
            pool_size: a.pool_size,
            auth_cost: a.auth_cost,
            degrade: a.degrade,
            accounting_ms: a.accounting_ms,
        }
    }
}

/// Why the demo could not start.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// Database set-up failed.
    #[error(transparent)]
    Db(#[from] wallet::DbError),
    /// I/O (temporary folder, socket).
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

struct Metrics {
    registry: Registry,
    requests: Family<Vec<(String, String)>, Counter>,
    pool_in_use: Gauge,
    pool_waiters: Gauge,
    pool_wait: Histogram,
}

/// The running service's state.
pub struct Wallet {
    pool: Arc<Pool>,
    cfg: DemoConfig,
    metrics: Metrics,
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for Wallet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wallet").field("cfg", &self.cfg).finish()
    }
}

impl Wallet {
    /// Creates a fresh database in a temporary folder and seeds it.
    pub fn new(cfg: DemoConfig) -> Result<Arc<Wallet>, DemoError> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("wallet.db");
        wallet::seed(&path, &cfg)?;
        let pool = Arc::new(Pool::open(&path, cfg.pool_size)?);
        let mut registry = Registry::default();
        let requests = Family::<Vec<(String, String)>, Counter>::default();
        let pool_in_use = Gauge::default();
        let pool_waiters = Gauge::default();
        let pool_wait = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        registry.register(
            "wallet_requests",
            "Requests by route and status",
            requests.clone(),
        );
        registry.register(
            "wallet_pool_in_use",
            "Database connections in use",
            pool_in_use.clone(),
        );
        registry.register(
            "wallet_pool_waiters",
            "Requests waiting for a database connection",
            pool_waiters.clone(),
        );
        registry.register(
            "wallet_pool_wait_seconds",
            "Time spent waiting for a database connection",
            pool_wait.clone(),
        );
        Ok(Arc::new(Wallet {
            pool,
            cfg,
            metrics: Metrics {
                registry,
                requests,
                pool_in_use,
                pool_waiters,
                pool_wait,
            },
            _dir: dir,
        }))
    }
}

/// Serves the wallet on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    wallet: Arc<Wallet>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let w = wallet.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let w = w.clone();
                        async move {
                            if req.uri().path() == "/ws/prices" && req.method() == Method::GET {
                                return Ok::<_, Infallible>(feed::upgrade(w.pool.clone(), req));
                            }
                            Ok::<_, Infallible>(handle(&w, req).await)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .with_upgrades()
                        .await;
                });
            }
            _ = &mut shutdown => break,
        }
    }
}

fn bearer(req: &Request<Incoming>) -> Option<String> {
    req.headers()
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(|t| t.trim().to_string())
}

fn respond(status: u16, body: &Value, t: DbTiming) -> Response<Full<Bytes>> {
    let timing = format!(
        "db;dur={:.2}, db-queries;desc=\"{}\", pool-wait;dur={:.2}, lock-wait;dur={:.2}",
        t.db.as_secs_f64() * 1000.0,
        t.queries,
        t.pool_wait.as_secs_f64() * 1000.0,
        t.lock_wait.as_secs_f64() * 1000.0
    );
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = r.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = http::HeaderValue::from_str(&timing) {
        h.insert(http::HeaderName::from_static("server-timing"), v);
    }
    r
}

async fn handle(w: &Wallet, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let route = match (req.method(), req.uri().path()) {
        (&Method::POST, "/auth/login") => "login",
        (&Method::GET, "/wallet/balance") => "balance",
        (&Method::POST, "/exchange") => "exchange",
        (&Method::GET, "/reports/daily") => "report",
        (&Method::GET, "/metrics") => "metrics",
        (&Method::GET, "/health") => "health",
        _ => "unknown",
    };
    let token = bearer(&req);
    let signature = req
        .headers()
        .get("x-signature")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = match Limited::new(req.into_body(), 64 * 1024).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return respond(
                413,
                &json!({ "error": "body too large or broken" }),
                DbTiming::default(),
            );
        }
    };
    let parse = |b: &Bytes| serde_json::from_slice::<Value>(b).unwrap_or(Value::Null);
    let needs_token = matches!(route, "balance" | "exchange");
    let a: Answer = match (route, &token) {
        ("health", _) => Answer {
            status: 200,
            body: json!({ "ok": true }),
            timing: DbTiming::default(),
        },
        ("metrics", _) => {
            let mut text = String::new();
            w.metrics
                .pool_in_use
                .set(w.pool.in_use.load(Ordering::Relaxed));
            w.metrics
                .pool_waiters
                .set(w.pool.waiting.load(Ordering::Relaxed));
            let _ = encode(&mut text, &w.metrics.registry);
            let mut r = Response::new(Full::new(Bytes::from(text)));
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            return r;
        }
        ("unknown", _) => Answer {
            status: 404,
            body: json!({ "error": "no such route" }),
            timing: DbTiming::default(),
        },
        (_, None) if needs_token => Answer {
            status: 401,
            body: json!({ "error": "missing bearer token" }),
            timing: DbTiming::default(),
        },
        (_, Some(t))
            if needs_token
                && signature
                    .as_deref()
                    .is_some_and(|s| !signature_ok(t, &body, s)) =>
        {
            Answer {
                status: 401,
                body: json!({ "error": "bad x-signature" }),
                timing: DbTiming::default(),
            }
        }
        ("login", _) => wallet::login(&w.pool, &w.cfg, &parse(&body)).await,
        ("balance", Some(t)) => wallet::balance(&w.pool, &w.cfg, t.clone()).await,
        ("exchange", Some(t)) => wallet::exchange(&w.pool, &w.cfg, t.clone(), &parse(&body)).await,
        ("report", _) => wallet::daily_report(&w.pool).await,
        _ => Answer {
            status: 400,
            body: json!({ "error": "bad request" }),
            timing: DbTiming::default(),
        },
    };
    w.metrics
        .requests
        .get_or_create(&vec![
            ("route".into(), route.into()),
            ("status".into(), a.status.to_string()),
        ])
        .inc();
    if a.timing.queries > 0 {
        w.metrics
            .pool_wait
            .observe(a.timing.pool_wait.as_secs_f64());
    }
    respond(a.status, &a.body, a.timing)
}

fn signature_ok(token: &str, body: &[u8], sig: &str) -> bool {
    let expected = hex::encode(crate::script::hmac_sha256(
        token,
        &String::from_utf8_lossy(body),
    ));
    expected.eq_ignore_ascii_case(sig.trim())
}

/// Starts the wallet on its own runtime thread, bound to `addr`; returns the bound address and a
/// handle that stops the service when dropped.
pub fn spawn(addr: SocketAddr, cfg: DemoConfig) -> Result<(SocketAddr, DemoHandle), DemoError> {
    let wallet = Wallet::new(cfg)?;
    let std_listener = std::net::TcpListener::bind(addr)?;
    std_listener.set_nonblocking(true)?;
    let bound = std_listener.local_addr()?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("demo-wallet".into())
        .spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                let Ok(listener) = TcpListener::from_std(std_listener) else {
                    return;
                };
                serve(listener, wallet, async {
                    let _ = rx.await;
                })
                .await;
            });
            rt.shutdown_timeout(std::time::Duration::from_millis(100));
        })?;
    Ok((
        bound,
        DemoHandle {
            stop: Some(tx),
            thread: Some(thread),
        },
    ))
}

/// Stops the demo service when dropped.
#[derive(Debug)]
pub struct DemoHandle {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for DemoHandle {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Files of the demo scenarios, embedded so `stampede demo` works from any folder.
pub const DEMO_FILES: [(&str, &str); 5] = [
    (
        "scenarios/usdt-launch.yaml",
        include_str!("../../scenarios/usdt-launch.yaml"),
    ),
    (
        "scenarios/smoke.yaml",
        include_str!("../../scenarios/smoke.yaml"),
    ),
    (
        "scenarios/soak.yaml",
        include_str!("../../scenarios/soak.yaml"),
    ),
    (
        "scripts/wallet.rhai",
        include_str!("../../scripts/wallet.rhai"),
    ),
    (
        "scenarios/data/users.csv",
        include_str!("../../scenarios/data/users.csv"),
    ),
];

/// Writes the embedded demo files into `dir`; returns the path of scenario `name`.
pub fn write_demo_files(dir: &Path, name: &str) -> std::io::Result<PathBuf> {
    for (rel, text) in DEMO_FILES {
        let p = dir.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(p, text)?;
    }
    Ok(dir.join(format!("scenarios/{name}.yaml")))
}
