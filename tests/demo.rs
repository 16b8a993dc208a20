//! The demo wallet as a target: the shipped scenarios run green against it through the real
//! binary, and its contract (auth, funds, signatures, Server-Timing, metrics) holds.

use std::net::SocketAddr;
use std::path::Path;

use stampede::demo::{DemoConfig, DemoHandle, spawn};

use crate::util::*;

/// A demo wallet with cheap logins (tests run unoptimised builds).
fn wallet() -> (String, DemoHandle) {
    let cfg = DemoConfig {
        auth_cost: 50,
        accounting_ms: 1,
        ..DemoConfig::default()
    };
    let (addr, handle) = spawn(SocketAddr::from(([127, 0, 0, 1], 0)), cfg).unwrap();
    (format!("http://{addr}"), handle)
}

fn scenario(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(name)
        .to_str()
        .unwrap()
        .to_string()
}

fn assert_green(r: &stampede::report::RunResult) {
    for f in &r.flows {
        assert_eq!(
            f.iterations_failed, 0,
            "flow {}: {:?}",
            f.name, r.error_examples
        );
        assert!(f.errors.is_empty(), "flow {}: {:?}", f.name, f.errors);
        for s in &f.steps {
            assert_eq!(s.failed, 0, "{}: {:?}", s.key, r.error_examples);
            assert_eq!(s.checks_failed, 0, "{}", s.key);
        }
    }
}

#[test]
fn smoke_scenario_is_green_against_the_demo_through_the_binary() {
    let (url, _wallet) = wallet();
    let d = dir();
    let out = d.path().join("out");
    let (code, _, err) = run_bin(&[
        "run",
        &scenario("smoke.yaml"),
        "--target",
        &url,
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    let r = stampede::report::read_json(&out.join("results.json")).unwrap();
    assert_exit(code, 0, &r, &err);
    assert_green(&r);
    let checks: u64 = r
        .flows
        .iter()
        .flat_map(|f| &f.steps)
        .map(|s| s.checks_passed)
        .sum();
    assert!(checks >= 50 * 7, "{checks} checks passed");
    assert_eq!(flow(&r, "smoke").iterations_ok, 50);
}

#[test]
fn the_launch_and_soak_scenarios_run_green_briefly() {
    let (url, _wallet) = wallet();
    for (name, duration) in [("usdt-launch.yaml", "9s"), ("soak.yaml", "2s")] {
        let d = dir();
        let out = d.path().join("out");
        let (code, _, err) = run_bin(&[
            "run",
            &scenario(name),
            "--target",
            &url,
            "--duration",
            duration,
            "--out",
            out.to_str().unwrap(),
            "--quiet",
        ]);
        let r = stampede::report::read_json(&out.join("results.json")).unwrap();
        assert_exit(code, 0, &r, &format!("{name}: {err}"));
        assert_green(&r);
        assert!(
            r.flows.iter().all(|f| f.iterations_ok + f.interrupted > 0),
            "{name}: every flow ran"
        );
        if name == "usdt-launch.yaml" {
            // The watchers' price feed pushed ticks they matched.
            let feed = step(&r, "watchers.prices");
            assert!(feed.messages_in > 0, "{feed:?}");
            assert!(step(&r, "watchers.first_tick").requests > 0);
        }
    }
}

#[test]
fn the_wallet_keeps_its_contract() {
    let (url, _wallet) = wallet();
    let d = dir();
    let s = write(
        d.path(),
        "contract.yaml",
        &format!(
            r#"
target: {url}
journeys:
  j:
    - name: bad_password
      post: /auth/login
      json: {{ user: user00001, password: nope }}
      check: {{ status: 401 }}
    - name: login
      post: /auth/login
      json: {{ user: user00002, password: password }}
      extract: {{ token: $.token, timing: {{ header: server-timing }} }}
      check: {{ status: 200 }}
    - script: |
        if !timing.contains("db-queries;desc=") || !timing.contains("pool-wait;dur=") {{ throw "Server-Timing: " + timing; }}
    - name: no_token
      post: /exchange
      json: {{ from: USDT, to: TON, amount: 1 }}
      check: {{ status: 401 }}
    - name: too_much
      post: /exchange
      headers: {{ authorization: "Bearer {{{{ token }}}}" }}
      json: {{ from: USDT, to: TON, amount: 1000000 }}
      check: {{ status: 422, json: {{ $.error: insufficient funds }} }}
    - name: bad_signature
      post: /exchange
      headers: {{ authorization: "Bearer {{{{ token }}}}", x-signature: deadbeef }}
      json: {{ from: USDT, to: TON, amount: 1 }}
      check: {{ status: 401 }}
    - name: exchange
      post: /exchange
      headers: {{ authorization: "Bearer {{{{ token }}}}" }}
      json: {{ from: USDT, to: TON, amount: 2.5 }}
      check: {{ status: 200, json: {{ $.status: filled, $.received: 0.5 }} }}
    - name: balance
      get: /wallet/balance
      headers: {{ authorization: "Bearer {{{{ token }}}}" }}
      check: {{ status: 200, exists: [$.USDT, $.TON, $.BTC] }}
    - name: report
      get: /reports/daily
      check: {{ status: 200, exists: ["$.assets[0].volume"] }}
    - name: metrics
      get: /metrics
      check: {{ status: 200, body_contains: "wallet_pool_wait_seconds" }}
flows:
  f: {{ journey: j, vus: 1, iterations: 1 }}
"#
        ),
    );
    let (exit, r) = run_scenario(&s, &d.path().join("out"));
    assert_exit(exit.code() as i32, 0, &r, "");
    assert_green(&r);
    assert_eq!(flow(&r, "f").iterations_ok, 1);
}

#[test]
fn server_timing_shows_the_work_behind_one_trade() {
    let (url, _wallet) = wallet();
    let d = dir();
    let s = write(
        d.path(),
        "trade.yaml",
        &format!(
            r#"
target: {url}
journeys:
  trade:
    - name: login
      post: /auth/login
      json: {{ user: user00042, password: password }}
      extract: {{ token: $.token }}
    - name: balance
      get: /wallet/balance
      headers: {{ authorization: "Bearer {{{{ token }}}}" }}
    - name: exchange
      post: /exchange
      headers: {{ authorization: "Bearer {{{{ token }}}}" }}
      json: {{ from: USDT, to: TON, amount: 1 }}
flows:
  traders: {{ journey: trade, vus: 2, per_vu_iterations: 10 }}
"#
        ),
    );
    let (_, r) = run_scenario(&s, &d.path().join("out"));
    let f = flow(&r, "traders");
    assert_eq!(f.iterations_ok, 20, "{:?}", r.error_examples);
    let work = f.work.as_ref().unwrap();
    assert_eq!(work.requests_mean, 3.0);
    assert_eq!(work.steps_mean, 3.0);
    assert!(work.bytes_mean > 500.0, "{}", work.bytes_mean);
    let queries = work
        .per_iteration
        .iter()
        .find(|t| t.name == "db-queries")
        .unwrap();
    let per_step: f64 = f
        .steps
        .iter()
        .map(|s| {
            s.server_timing
                .iter()
                .find(|t| t.name == "db-queries")
                .map_or(0.0, |t| t.count_mean)
        })
        .sum();
    assert!(
        queries.count_mean >= 10.0,
        "login + balance + exchange queries: {}",
        queries.count_mean
    );
    assert!(
        (queries.count_mean - per_step).abs() < 1e-9,
        "per iteration = sum over steps"
    );
    let db = work.per_iteration.iter().find(|t| t.name == "db").unwrap();
    assert_eq!(db.duration.as_ref().unwrap().count, 20);
    // Ranked by share of the database time. The exchange (its accounting call inside the
    // transaction) takes far more per call than the balance read; login's session write is of
    // the exchange's order, so which of those two leads depends on the machine's load (it
    // flipped under CI once) and is not asserted.
    assert!(
        r.db_load.windows(2).all(|w| w[0].share >= w[1].share),
        "{:?}",
        r.db_load
    );
    let per_call = |key: &str| {
        r.db_load
            .iter()
            .find(|d| d.key == key)
            .map_or(0.0, |d| d.per_call_ms)
    };
    assert!(
        per_call("traders.exchange") > 5.0 * per_call("traders.balance"),
        "{:?}",
        r.db_load
    );
    assert_eq!(
        r.db_load.last().map(|d| d.key.as_str()),
        Some("traders.balance"),
        "{:?}",
        r.db_load
    );
    let total: f64 = r.db_load.iter().map(|d| d.share).sum();
    assert!((total - 1.0).abs() < 1e-9);
}
