//! Responses a server controls, through the real client path: the input is written as the raw
//! response to one request over a loopback connection (framing: Content-Length, chunked with
//! extensions and trailers, close-delimited; any head at all), then its `Server-Timing` goes
//! through the registry's capped recording and its `Set-Cookie` headers into a user's jar.
//! Whatever the bytes, the exchange must end as a response or an error class, never a panic.
#![no_main]

use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use stampede::http::{BodyPolicy, Client, Connections, Outgoing};
use stampede::journey::VirtualUser;
use stampede::metrics::{KeyTable, Registry};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Harness {
    rt: tokio::runtime::Runtime,
    plan: stampede::scenario::Plan,
    registry: Registry,
    client: Client,
    next: Arc<Mutex<Vec<u8>>>,
}

static HARNESS: LazyLock<Harness> = LazyLock::new(|| {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let next = Arc::new(Mutex::new(Vec::new()));
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    let serving = next.clone();
    rt.spawn(async move {
        // One answer per connection: read the request head, write the input, close.
        while let Ok((mut s, _)) = listener.accept().await {
            let answer = serving.lock().unwrap().clone();
            tokio::spawn(async move {
                let mut head = [0u8; 4096];
                let _ = s.read(&mut head).await;
                let _ = s.write_all(&answer).await;
                let _ = s.shutdown().await;
            });
        }
    });
    let text = format!(
        "target: http://{addr}\njourneys:\n  j: [ {{ name: a, get: /x }} ]\nflows:\n  f: {{ journey: j, vus: 1, per_vu_iterations: 1 }}\n"
    );
    let plan = stampede::scenario::load_str(
        std::path::Path::new("fuzz.yaml"),
        &text,
        &Default::default(),
    )
    .unwrap();
    let registry = Registry::new(Arc::new(KeyTable::from_plan(&plan)));
    // Built once: its TLS settings load the system's roots. HTTP/1.1 goes through the lean
    // path, the default; the `h1` target fuzzes its parser alone.
    let client = Client::new(&plan.settings);
    Harness { rt, plan, registry, client, next }
});

fuzz_target!(|data: &[u8]| {
    let h = &*HARNESS;
    *h.next.lock().unwrap() = data.to_vec();
    let mut conns = Connections::default();
    let mut buf = Vec::new();
    let origin = &h.plan.origins[0];
    let mut req = Outgoing::new(http::Method::GET, http::uri::PathAndQuery::from_static("/x"), 1);
    req.set(http::header::HOST, origin.authority.clone());
    let policy = BodyPolicy { keep: true, max_bytes: 1 << 20 };
    let ex = h.rt.block_on(h.client.send(&mut conns, 0, origin, &req, policy, &mut buf, Duration::from_secs(2)));
    assert!(ex.done_at >= ex.sent_at && ex.done_at <= Instant::now());
    if let Some(st) = ex.headers.get_str("server-timing") {
        let mut metrics = Vec::new();
        stampede::http::server_timing::parse(st, &mut metrics);
        h.registry.server_timing(0, &metrics);
        let timings = &h.registry.collect().steps[0].timings;
        assert!(timings.list.len() <= stampede::metrics::MAX_TIMING_NAMES + 1);
    }
    if let Ok(mut vu) = VirtualUser::new(&h.plan, 1, 1) {
        vu.store_cookies(0, &ex.headers);
        assert!(vu.cookies.len() <= 180);
    }
});
