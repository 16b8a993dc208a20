//! Claims the README and the design make that no other test held (issue #21): each through the
//! real binary against a server started here, asserting the behaviour itself, not the exit code
//! a busy machine's self-checks may change.

use std::time::Duration;

use crate::util::faults;
use crate::util::*;

/// Runs `body` (journeys, flows, …) against `srv` through the binary with `extra` arguments.
fn run_against(
    url: &str,
    body: &str,
    extra: &[&str],
) -> (i32, String, stampede::report::RunResult) {
    let d = dir();
    let s = write_scenario(d.path(), url, body);
    let (code, stderr, r, _) = run_bin_scenario(&s, extra);
    (code, stderr, r)
}

#[test]
fn max_latency_checks_fail_slow_responses_and_pass_fast_ones() {
    let srv = start_server(ServerConfig::default());
    let (_, _, r) = run_against(
        &srv.url(),
        "defaults: { on_error: continue }\njourneys:\n  j:\n    - { name: slow, get: '/slow?ms=300', check: { max_latency: 100ms } }\n    - { name: fast, get: /ok, check: { max_latency: 2s } }\nflows:\n  f: { journey: j, vus: 1, per_vu_iterations: 3 }\n",
        &[],
    );
    let slow = step(&r, "f.slow");
    assert_eq!(
        (slow.checks_failed, slow.errors.get("check")),
        (3, Some(&3))
    );
    assert!(
        r.error_examples
            .iter()
            .any(|e| e.message.contains("over budget 100ms"))
    );
    let fast = step(&r, "f.fast");
    assert_eq!((fast.checks_passed, fast.failed), (3, 0));
}

#[test]
fn think_time_pauses_between_steps_and_between_iterations() {
    let srv = start_server(ServerConfig::default());
    // A step `think` is inside the iteration; a flow `think` is between iterations, outside it.
    let (_, _, r) = run_against(
        &srv.url(),
        "journeys:\n  inner: [ { name: a, get: /ok }, { think: 200ms }, { name: b, get: /echo } ]\n  outer: [ { name: c, get: '/status?code=200' } ]\nflows:\n  inner: { journey: inner, vus: 1, per_vu_iterations: 3 }\n  outer: { journey: outer, vus: 1, per_vu_iterations: 4, think: 200ms }\n",
        &[],
    );
    let inner = hist(flow(&r, "inner").iteration.as_ref().unwrap());
    assert!(inner.min() >= 200_000, "iteration min {} us", inner.min());
    assert!(
        hist(step(&r, "inner.b").latency.as_ref().unwrap()).max() < 150_000,
        "the pause is not charged to the next request"
    );
    assert!(hist(flow(&r, "outer").iteration.as_ref().unwrap()).max() < 150_000);
    let mut at = srv.seen.arrivals("/status");
    at.sort();
    assert_eq!(at.len(), 4);
    for w in at.windows(2) {
        assert!(
            w[1] - w[0] >= Duration::from_millis(195),
            "gap {:?}",
            w[1] - w[0]
        );
    }
}

#[test]
fn http2_is_what_http_http2_sends_and_auto_falls_back() {
    // The test server speaks HTTP/1.1 only (prior-knowledge HTTP/2 would fail the handshake),
    // so `http: http2` must fail there and `auto` must not.
    let srv = start_server(ServerConfig::default());
    let body = |v: &str| {
        format!(
            "defaults: {{ http: {v}, timeout: 2s }}\njourneys:\n  j: [ {{ name: a, get: /ok }} ]\nflows:\n  f: {{ journey: j, vus: 1, per_vu_iterations: 2 }}\n"
        )
    };
    let (_, _, r) = run_against(&srv.url(), &body("http2"), &[]);
    assert_eq!(step(&r, "f.a").failed, 2, "{:?}", r.error_examples);
    let (_, _, r) = run_against(&srv.url(), &body("auto"), &[]);
    assert_eq!(step(&r, "f.a").failed, 0);
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
fn stampede_target_fills_in_a_missing_target_and_target_flag_beats_it() {
    let srv = start_server(ServerConfig::default());
    let other = start_server(ServerConfig::default());
    let d = dir();
    let s = write(
        d.path(),
        "s.yaml",
        "journeys:\n  j: [ { name: a, get: /ok } ]\nflows:\n  f: { journey: j, vus: 1, per_vu_iterations: 3 }\n",
    );
    let run = |env: Option<&str>, flag: Option<&str>| {
        let mut c = std::process::Command::new(bin());
        c.args(["run", s.to_str().unwrap(), "--quiet"])
            .env_remove("STAMPEDE_TARGET");
        if let Some(e) = env {
            c.env("STAMPEDE_TARGET", e);
        }
        if let Some(f) = flag {
            c.args(["--target", f]);
        }
        c.output().unwrap()
    };
    let none = run(None, None);
    assert_eq!(none.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&none.stderr).contains("target"));
    run(Some(&srv.url()), None);
    assert_eq!(srv.seen.ok("/ok"), 3);
    run(Some(&srv.url()), Some(&other.url()));
    assert_eq!((srv.seen.ok("/ok"), other.seen.ok("/ok")), (3, 3));
    // A port the URL cannot hold is an input error, never port 80.
    let typo = run(None, Some("http://127.0.0.1:99999"));
    assert_eq!(typo.status.code(), Some(2));
    let err = String::from_utf8_lossy(&typo.stderr);
    assert!(
        err.contains("port `99999` is not a TCP port") && !err.contains("no `target`"),
        "{err}"
    );
}

#[test]
fn scale_multiplies_rates_and_virtual_users() {
    let srv = start_server(ServerConfig::default());
    let (_, _, r) = run_against(
        &srv.url(),
        "journeys:\n  j: [ { name: a, get: /ok } ]\n  k: [ { name: b, get: '/slow?ms=300' } ]\nflows:\n  open: { journey: j, rate: 40/s, duration: 2s }\n  closed: { journey: k, vus: 4, duration: 2s }\n",
        &["--scale", "50%"],
    );
    assert_eq!(flow(&r, "open").planned, 40);
    assert_eq!(srv.seen.arrivals("/ok").len(), 40);
    let peak = srv
        .seen
        .concurrency
        .lock()
        .unwrap()
        .iter()
        .map(|(_, n)| *n)
        .max()
        .unwrap();
    assert!(
        peak <= 3,
        "at most 2 closed users (+1 open request) in flight: {peak}"
    );
}

#[test]
fn demo_only_runs_one_flow_of_the_demo() {
    let d = dir();
    let out = d.path().join("out");
    let (code, stdout, stderr) = run_bin(&[
        "demo",
        "--only",
        "signups",
        "--duration",
        "2s",
        "--out",
        out.to_str().unwrap(),
        "--no-progress",
    ]);
    assert_ne!(code, 2, "{stderr}");
    let r = stampede::report::read_json(&out.join("results.json")).unwrap();
    let names: Vec<&str> = r.flows.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["signups"], "{stdout}");
    assert!(flow(&r, "signups").planned > 0);
    let (code, _, stderr) = run_bin(&["demo", "--scenario", "nope"]);
    assert_eq!(code, 2, "{stderr}");
}

#[test]
fn demo_target_serves_the_wallet_until_interrupted() {
    use std::io::{BufRead, Read, Write};
    let mut child = std::process::Command::new(bin())
        .args([
            "demo-target",
            "--listen",
            "127.0.0.1:0",
            "--auth-cost",
            "50",
            "--accounting-ms",
            "1",
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("demo-target says where it listens")
            .unwrap();
        if let Some(rest) = line.split("http://").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        s,
        "GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    signal(&child, "INT");
    assert_eq!(child.wait().unwrap().code(), Some(130));
}

/// Runs a scenario through the real binary pinned to CPU 0 (`--out OUT --quiet`): its exit code
/// and results.
fn run_on_cpu0(
    scenario: &std::path::Path,
    out: &std::path::Path,
) -> (Option<i32>, stampede::report::RunResult) {
    let status = std::process::Command::new("taskset")
        .args(["-c", "0", bin(), "run"])
        .arg(scenario)
        .arg("--out")
        .arg(out)
        .arg("--quiet")
        .status()
        .unwrap();
    let r = stampede::report::read_json(&out.join("results.json")).unwrap();
    (status.code(), r)
}

#[test]
fn a_generator_short_of_cpu_fails_the_saturation_self_check_with_exit_3() {
    // Four users run a small script and a request to a closed port in a tight loop on one CPU:
    // the runtime never idles.
    let d = dir();
    let s = write_scenario(
        d.path(),
        "http://127.0.0.1:9",
        "defaults: { on_error: continue }\njourneys:\n  j:\n    - script: 'let a = 0; for i in 0..300 { a += i; }'\n    - { name: a, get: /x, timeout: 100ms }\nflows:\n  f: { journey: j, vus: 4, duration: 2s }\n",
    );
    let (code, r) = run_on_cpu0(&s, &d.path().join("out"));
    assert_eq!(code, Some(3));
    let sat = self_check(&r, "saturation");
    assert!(
        !sat.passed && sat.detail.contains("ran out of CPU"),
        "{}",
        sat.detail
    );
}

#[test]
fn a_generator_that_stalls_fails_the_schedule_lag_self_check_with_exit_3() {
    let srv = start_server(ServerConfig::default());
    let d = dir();
    let out = d.path().join("out");
    let s = write_scenario(
        d.path(),
        &srv.url(),
        "journeys:\n  j: [ { name: a, get: /ok } ]\nflows:\n  f: { journey: j, rate: 100/s, duration: 3s }\n",
    );
    let mut child = run_command(&s, &out).spawn().unwrap();
    wait_for("the run's first requests", || {
        srv.seen.arrivals("/ok").len() >= 50
    });
    // The generator itself stops for 300 ms (as a starved machine would), then goes on.
    signal(&child, "STOP");
    std::thread::sleep(Duration::from_millis(300));
    signal(&child, "CONT");
    assert_eq!(child.wait().unwrap().code(), Some(3));
    let r = stampede::report::read_json(&out.join("results.json")).unwrap();
    let lag = self_check(&r, "schedule_lag");
    assert!(
        !lag.passed && lag.detail.contains("could not keep its schedule"),
        "{}",
        lag.detail
    );
}

#[test]
fn results_json_follows_the_published_schema() {
    // A rich run: thresholds, self-checks, trends, Server-Timing, a background flow's batch split.
    let srv = start_server(ServerConfig::default());
    let d = dir();
    let s = write_scenario(
        d.path(),
        &srv.url(),
        "defaults: { on_error: continue }\njourneys:\n  j: [ { name: a, get: /ok }, { name: b, get: '/status?code=503' } ]\n  bg: [ { name: c, get: '/slow?ms=50' } ]\nflows:\n  f: { journey: j, rate: 30/s, duration: 3s, arrivals: poisson, seed: 3 }\n  batch: { journey: bg, kind: background, vus: 1, duration: 3s }\nthresholds:\n  f.a: [ \"p99 < 1s\" ]\n  \"*\": [ \"errors < 1%\" ]\n",
    );
    let out = d.path().join("out");
    let _ = run_bin(&[
        "run",
        s.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    let (code, schema, _) = run_bin(&["schema", "--results"]);
    assert_eq!(code, 0);
    let schema_path = write(d.path(), "schema.json", &schema);
    let check = std::process::Command::new("python3")
        .args([
            "-c",
            "import json,sys,jsonschema; jsonschema.validate(json.load(open(sys.argv[1])), json.load(open(sys.argv[2])))",
            out.join("results.json").to_str().unwrap(),
            schema_path.to_str().unwrap(),
        ])
        .output()
        .expect("python3 with jsonschema (.ci/run installs it)");
    assert!(
        check.status.success(),
        "results.json does not follow its schema: {}",
        String::from_utf8_lossy(&check.stderr)
    );
}

#[test]
fn traceparent_is_w3c_and_one_trace_per_iteration() {
    let srv = start_server(ServerConfig::default());
    let (_, _, r) = run_against(
        &srv.url(),
        r#"vars: { last_trace: "" }
journeys:
  j:
    - { name: one, get: /echo, extract: { tp1: $.headers.traceparent } }
    - { name: two, get: /echo, extract: { tp2: $.headers.traceparent } }
    - script: |
        let a = tp1.split("-"); let b = tp2.split("-");
        if a.len() != 4 || a[0] != "00" || a[1].len() != 32 || a[2].len() != 16 || a[3] != "01" { throw "bad " + tp1; }
        for c in (a[1] + a[2]).to_chars() { if !"0123456789abcdef".contains(c) { throw "not hex: " + tp1; } }
        if b[1] != a[1] { throw "two traces in one iteration"; }
        if b[2] == a[2] { throw "one span id for two requests"; }
        if a[1] == last_trace { throw "a trace reused by the next iteration"; }
        last_trace = a[1];
flows: { f: { journey: j, vus: 2, per_vu_iterations: 5 } }
"#,
        &[],
    );
    assert_eq!(flow(&r, "f").iterations_ok, 10, "{:?}", r.error_examples);
    let (_, _, r) = run_against(
        &srv.url(),
        "defaults: { traceparent: false }\njourneys:\n  j:\n    - { name: one, get: /echo, extract: { hs: $.headers } }\n    - script: 'if \"traceparent\" in hs { throw \"sent\"; }'\nflows: { f: { journey: j, vus: 1, per_vu_iterations: 2 } }\n",
        &[],
    );
    assert_eq!(flow(&r, "f").iterations_ok, 2, "{:?}", r.error_examples);
}

#[test]
fn retries_on_timeout_reset_and_connect_back_off_between_attempts() {
    let srv = faults::start();
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (_, _, r) = run_against(
        &srv.url(),
        &format!(
            "defaults: {{ timeout: 300ms }}\njourneys:\n  t: [ {{ name: t, get: /hang, retry: {{ max: 2, on: [timeout], backoff: 200ms..200ms }} }} ]\n  r: [ {{ name: r, get: /reset-headers, retry: {{ max: 2, on: [reset], backoff: 200ms..200ms }} }} ]\n  c: [ {{ name: c, get: \"http://{dead}/x\", retry: {{ max: 2, on: [connect], backoff: 200ms..200ms }} }} ]\nflows:\n  t: {{ journey: t, vus: 1, per_vu_iterations: 2 }}\n  r: {{ journey: r, vus: 1, per_vu_iterations: 2 }}\n  c: {{ journey: c, vus: 1, per_vu_iterations: 2 }}\n"
        ),
        &[],
    );
    for (key, class) in [
        ("t.t", "timeout"),
        ("r.r", "reset"),
        ("c.c", "connect_refused"),
    ] {
        let s = step(&r, key);
        assert_eq!((s.requests, s.retries), (6, 4), "{key}");
        assert_eq!(s.errors.get(class), Some(&6), "{key}: {:?}", s.errors);
    }
    // Two 200 ms pauses in every iteration (and three 300 ms timeouts in the timeout flow).
    for (f, least) in [("t", 1_300_000), ("r", 400_000), ("c", 400_000)] {
        let it = hist(flow(&r, f).iteration.as_ref().unwrap());
        assert!(it.min() >= least, "{f}: iteration min {} us", it.min());
    }
    assert_eq!(srv.requests.load(std::sync::atomic::Ordering::SeqCst), 12);
}

#[test]
fn requests_never_sent_or_never_connected_are_counted_but_not_timed() {
    let srv = start_server(ServerConfig::default());
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    // `who` is declared by the script but never set (the branch is never taken): a template
    // error at run time, before anything is sent. The second step's port refuses connections.
    let (_, _, r) = run_against(
        &srv.url(),
        &format!(
            "defaults: {{ on_error: continue }}\njourneys:\n  j:\n    - script: 'if false {{ who = \"x\"; }}'\n    - {{ name: me, get: '/echo?u={{{{ who }}}}' }}\n    - {{ name: gone, get: 'http://{dead}/x' }}\nflows:\n  f: {{ journey: j, vus: 1, per_vu_iterations: 3 }}\n"
        ),
        &[],
    );
    let me = step(&r, "f.me");
    assert_eq!((me.requests, me.errors.get("template")), (3, Some(&3)));
    assert!(
        me.latency.is_none(),
        "a request never sent has no latency: {:?}",
        me.latency
    );
    let gone = step(&r, "f.gone");
    assert_eq!(gone.errors.get("connect_refused"), Some(&3));
    assert!(
        gone.latency.is_none(),
        "a refused connection has no latency"
    );
    assert!(srv.seen.arrivals("/echo").is_empty());
}

#[test]
fn each_open_arrival_takes_its_own_unique_row_and_every_arrival_is_accounted_for() {
    let srv = start_server(ServerConfig::default());
    let d = dir();
    write(d.path(), "users.csv", "name\nu1\nu2\nu3\nu4\nu5\n");
    // One pooled user serves all ten arrivals; each arrival is a new user of the system and takes
    // a row of its own, so five arrivals run and five fail for want of a row.
    let s = write_scenario(
        d.path(),
        &srv.url(),
        "data:\n  users: { csv: users.csv, pick: unique }\ndefaults: { on_error: continue }\njourneys:\n  j: [ { name: a, get: '/user/{{ users.name }}', check: { status: 200 } } ]\nflows:\n  f: { journey: j, rate: 20/s, duration: 500ms, max_vus: 1 }\n",
    );
    let (_, _, r, _) = run_bin_scenario(&s, &[]);
    let f = flow(&r, "f");
    assert_eq!(f.planned, 10);
    assert_eq!(
        f.iterations_ok + f.iterations_failed + f.dropped + f.interrupted,
        f.planned,
        "{f:?}"
    );
    let mut seen: Vec<String> = (1..=5)
        .filter(|i| srv.seen.arrivals(&format!("/user/u{i}")).len() == 1)
        .map(|i| format!("u{i}"))
        .collect();
    seen.sort();
    assert_eq!(
        seen.len() as u64,
        f.iterations_ok,
        "one arrival per row: {seen:?}"
    );
    assert!(f.iterations_ok >= 4, "{f:?}");
}

#[test]
fn a_saturated_generator_fails_its_cpu_check_even_when_the_graceful_stop_waits() {
    // Four users loop on a script and a closed port on one CPU (the runtime never idles), while
    // one slow request holds the run 3 s into its graceful stop. The saturation is judged over
    // the load: the idle wait afterwards once diluted it under the limit (exit 0).
    let srv = start_server(ServerConfig::default());
    let d = dir();
    let s = write_scenario(
        d.path(),
        "http://127.0.0.1:9",
        &format!(
            "targets: {{ slow: \"{}\" }}\ndefaults: {{ on_error: continue, graceful_stop: 10s }}\njourneys:\n  j:\n    - script: 'let a = 0; for i in 0..300 {{ a += i; }}'\n    - {{ name: a, get: /x, timeout: 100ms }}\n  s: [ {{ name: wait, get: '/slow?ms=3000', target: slow, timeout: 10s }} ]\nflows:\n  f: {{ journey: j, vus: 4, duration: 2s }}\n  hold: {{ journey: s, vus: 1, iterations: 1, duration: 2s }}\n",
            srv.url()
        ),
    );
    let (code, r) = run_on_cpu0(&s, &d.path().join("out"));
    assert!(
        r.duration_s > 2.5,
        "the run waited for the slow request: {}",
        r.duration_s
    );
    let sat = self_check(&r, "saturation");
    assert!(!sat.passed, "{}", sat.detail);
    assert_eq!(code, Some(3));
}

#[test]
fn two_runs_of_one_scenario_send_different_traces() {
    // The response body (with the traceparent the server saw) is in a failed check's message.
    let srv = start_server(ServerConfig::default());
    let body = "defaults: { on_error: continue }\njourneys:\n  j: [ { name: e, get: /echo, check: { status: 201 } } ]\nflows: { f: { journey: j, vus: 1, per_vu_iterations: 1 } }\n";
    let trace = |r: &stampede::report::RunResult| {
        let m = &r.error_examples[0].message;
        let at = m.find("traceparent").unwrap_or_else(|| panic!("{m}"));
        m[at..].split('-').nth(1).unwrap().to_string()
    };
    let (_, _, a) = run_against(&srv.url(), body, &[]);
    let (_, _, b) = run_against(&srv.url(), body, &[]);
    assert_eq!(trace(&a).len(), 32);
    assert_ne!(trace(&a), trace(&b), "the same trace id in two runs");
}
