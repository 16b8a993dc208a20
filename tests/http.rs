//! The HTTP client against real sockets: TLS, HTTP/2 by ALPN, keep-alive and new connections.

use crate::util::*;

fn run(srv: &TestServer, url: &str, defaults: &str, flow: &str) -> stampede::report::RunResult {
    let d = dir();
    let s = write(
        d.path(),
        "s.yaml",
        &format!(
            "target: {url}\ndefaults: {{ {defaults} }}\njourneys:\n  j:\n    - {{ name: a, get: /ok }}\n    - {{ name: b, get: /ok }}\nflows:\n  f: {{ journey: j, {flow} }}\n"
        ),
    );
    let _ = srv;
    run_scenario(&s, &d.path().join("out")).1
}

#[test]
fn tls_with_insecure_speaks_http2_by_alpn() {
    let srv = start_server(ServerConfig {
        tls: true,
        ..Default::default()
    });
    let url = format!("https://localhost:{}", srv.addr.port());
    let r = run(&srv, &url, "insecure: true", "vus: 2, per_vu_iterations: 5");
    assert_eq!(flow(&r, "f").iterations_ok, 10, "{:?}", r.error_examples);
    let versions = srv.seen.versions.lock().unwrap().clone();
    assert!(versions.iter().all(|v| v == "HTTP/2.0"), "{versions:?}");
    // TLS time is measured when a connection is made: once per VU with keep-alive.
    assert_eq!(step(&r, "f.a").tls.as_ref().unwrap().count, 2);
}

#[test]
fn tls_with_http1_forced_uses_http11() {
    let srv = start_server(ServerConfig {
        tls: true,
        ..Default::default()
    });
    let url = format!("https://localhost:{}", srv.addr.port());
    let r = run(
        &srv,
        &url,
        "insecure: true, http: http1",
        "vus: 1, iterations: 3",
    );
    assert_eq!(flow(&r, "f").iterations_ok, 3);
    assert!(
        srv.seen
            .versions
            .lock()
            .unwrap()
            .iter()
            .all(|v| v == "HTTP/1.1")
    );
}

#[test]
fn an_untrusted_certificate_is_a_tls_error_of_the_step() {
    let srv = start_server(ServerConfig {
        tls: true,
        ..Default::default()
    });
    let url = format!("https://localhost:{}", srv.addr.port());
    let r = run(&srv, &url, "insecure: false", "vus: 1, iterations: 2");
    assert_eq!(step(&r, "f.a").errors.get("tls"), Some(&2));
    assert_eq!(srv.seen.arrivals("/ok").len(), 0);
}

#[test]
fn keep_alive_reuses_one_connection_per_virtual_user() {
    let srv = start_server(ServerConfig::default());
    let r = run(
        &srv,
        &srv.url(),
        "keep_alive: true",
        "vus: 3, per_vu_iterations: 4",
    );
    assert_eq!(flow(&r, "f").iterations_ok, 12);
    assert_eq!(
        srv.seen
            .connections
            .load(std::sync::atomic::Ordering::SeqCst),
        3
    );
    assert_eq!(step(&r, "f.a").connect.as_ref().unwrap().count, 3);
}

#[test]
fn without_keep_alive_each_iteration_opens_a_connection() {
    let srv = start_server(ServerConfig::default());
    let r = run(
        &srv,
        &srv.url(),
        "keep_alive: false",
        "vus: 3, per_vu_iterations: 4",
    );
    assert_eq!(flow(&r, "f").iterations_ok, 12);
    assert_eq!(
        srv.seen
            .connections
            .load(std::sync::atomic::Ordering::SeqCst),
        12
    );
}

#[test]
fn requests_say_they_come_from_stampede_unless_the_scenario_says_otherwise() {
    let srv = start_server(ServerConfig::default());
    let d = dir();
    let ua = format!("stampede/{}", env!("CARGO_PKG_VERSION"));
    let s = write_scenario(
        d.path(),
        &srv.url(),
        &format!(
            "journeys:\n  j:\n    - {{ name: plain, get: /echo, check: {{ json: {{ \"$.headers['user-agent']\": '{ua}' }} }} }}\n    - {{ name: own, get: /echo, headers: {{ user-agent: probe/1 }}, check: {{ json: {{ \"$.headers['user-agent']\": probe/1 }} }} }}\nflows:\n  f: {{ journey: j, vus: 1, iterations: 3, duration: 10s }}\n"
        ),
    );
    let (_, r) = run_scenario(&s, &d.path().join("out"));
    for key in ["f.plain", "f.own"] {
        let st = step(&r, key);
        assert_eq!(
            (st.requests, st.checks_failed),
            (3, 0),
            "{key}: {:?}",
            r.error_examples
        );
    }
}

#[test]
fn the_lean_client_and_hyper_give_the_same_results_on_one_kept_alive_connection() {
    let mut seen = Vec::new();
    for client in ["lean", "hyper"] {
        let srv = start_server(ServerConfig::default());
        let d = dir();
        let s = write_scenario(
            d.path(),
            &srv.url(),
            &format!(
                "defaults: {{ client: {client}, on_error: continue, accept_encoding: browser }}\njourneys:\n  j:\n    - {{ name: ok, get: /ok, check: {{ json: {{ $.ok: true }} }} }}\n    - {{ name: echo, post: /echo, json: {{ a: 1 }}, extract: {{ m: $.method }}, check: {{ json: {{ $.body: '{{\"a\":1}}' }} }} }}\n    - {{ name: down, get: '/status?code=503' }}\n    - {{ name: head, head: /ok }}\nflows:\n  f: {{ journey: j, vus: 1, per_vu_iterations: 5 }}\n"
            ),
        );
        let (code, _, r, _) = run_bin_scenario(&s, &[]);
        assert_exit(code, 0, &r, &format!("{client}: {:?}", r.error_examples));
        let counts: Vec<(u64, u64, u64)> = ["f.ok", "f.echo", "f.down", "f.head"]
            .iter()
            .map(|k| {
                let st = step(&r, k);
                (st.requests, st.failed, st.checks_passed)
            })
            .collect();
        let connections = srv
            .seen
            .connections
            .load(std::sync::atomic::Ordering::SeqCst);
        seen.push((counts, connections));
    }
    assert_eq!(seen[0], seen[1], "lean, then hyper");
    assert_eq!(
        seen[0].1, 1,
        "one connection, kept alive across 20 requests"
    );
    assert_eq!(seen[0].0[2], (5, 5, 0), "503 is a status error on both");
}
