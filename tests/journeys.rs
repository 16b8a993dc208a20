//! Journeys: extraction and reuse, Rhai-signed requests, several flows at once.

use crate::util::*;

const TOKEN_JOURNEY: &str = r#"
journeys:
  j:
    - name: login
      post: /login
      json: { user: "u{{ vu }}" }
      extract: { token: $.token }
      check: { status: 200 }
    - name: secure
      get: /secure
      headers: { authorization: "Bearer {{ token }}" }
      check: { status: 200, json: { $.balance: 100 } }
    - script: |
        payload = json_stringify(#{ amount: 5, pair: "USDT/TON" });
        signature = hmac_sha256_hex(KEY, payload);
    - name: signed
      post: /signed
      headers: { authorization: "Bearer {{ token }}", x-signature: "{{ signature }}", content-type: application/json }
      body: "{{ payload }}"
      check: { status: 200 }
flows:
  f: { journey: j, rate: 20/s, duration: 2s }
"#;

fn run_token_journey(key_expr: &str) -> (stampede::report::RunResult, TestServer) {
    let srv = start_server(ServerConfig::default());
    let d = dir();
    let s = write_scenario(
        d.path(),
        &srv.url(),
        &TOKEN_JOURNEY.replace("KEY", key_expr),
    );
    let (_, r) = run_scenario(&s, &d.path().join("out"));
    (r, srv)
}

#[test]
fn extracted_token_is_reused_and_rhai_signs_the_body() {
    let (r, srv) = run_token_journey("token");
    let f = flow(&r, "f");
    assert_eq!(f.iterations_ok, 40);
    assert_eq!(f.iterations_failed, 0);
    for k in ["f.login", "f.secure", "f.signed"] {
        assert_eq!(step(&r, k).failed, 0, "{k}");
    }
    assert_eq!(srv.seen.ok("/secure"), 40);
    assert_eq!(srv.seen.ok("/signed"), 40);
}

#[test]
fn a_wrong_signature_is_rejected_and_counted() {
    // Same journey, HMAC keyed by the wrong secret: the server must refuse every signed call.
    let (r, srv) = run_token_journey("\"wrong\"");
    assert_eq!(step(&r, "f.signed").failed, 40);
    assert_eq!(step(&r, "f.signed").errors.get("check"), Some(&40));
    assert_eq!(srv.seen.ok("/signed"), 0);
}

#[test]
fn without_extraction_the_token_is_missing() {
    let srv = start_server(ServerConfig::default());
    let d = dir();
    let body = TOKEN_JOURNEY
        .replace(
            "extract: { token: $.token }",
            "extract: { token: $.nothing }",
        )
        .replace("KEY", "token");
    let s = write_scenario(d.path(), &srv.url(), &body);
    let (_, r) = run_scenario(&s, &d.path().join("out"));
    assert_eq!(
        step(&r, "f.login").errors.get("check"),
        Some(&40),
        "extraction finding nothing fails the step"
    );
    assert_eq!(
        step(&r, "f.secure").requests,
        0,
        "on_error: abort skips the dependent steps"
    );
    assert_eq!(srv.seen.ok("/secure"), 0);
}

#[test]
fn two_flows_with_different_curves_both_reach_their_targets() {
    let srv = start_server(ServerConfig::default());
    let d = dir();
    let s = write_scenario(
        d.path(),
        &srv.url(),
        "journeys:\n  a:\n    - { name: ok, get: /ok }\n  b:\n    - { name: slow, get: '/slow?ms=20' }\nflows:\n  open: { journey: a, rate: [ { to: 100/s, over: 1s }, { hold: 3s } ] }\n  closed: { journey: b, vus: 5, pace: 200ms, duration: 4s, start: 500ms }\n",
    );
    let (_, r) = run_scenario(&s, &d.path().join("out"));
    let open = flow(&r, "open").iterations_ok as f64;
    let closed = flow(&r, "closed").iterations_ok as f64;
    // Open: 50 during the ramp + 300 at the hold. Closed: 5 VUs × 4 s / 200 ms.
    assert!((open - 350.0).abs() <= 7.0, "open flow: {open}");
    assert!((closed - 100.0).abs() <= 5.0, "closed flow: {closed}");
    let slow = srv.seen.arrivals("/slow");
    let ok = srv.seen.arrivals("/ok");
    let overlap = slow
        .iter()
        .filter(|t| **t > *ok.iter().min().unwrap() && **t < *ok.iter().max().unwrap())
        .count();
    assert!(
        overlap > 80,
        "the flows ran at the same time ({overlap} overlapping requests)"
    );
}

#[test]
fn unset_template_variable_is_a_step_error_not_a_panic() {
    let srv = start_server(ServerConfig::default());
    let d = dir();
    let s = write_scenario(
        d.path(),
        &srv.url(),
        "defaults: { on_error: continue }\njourneys:\n  j:\n    - { name: maybe, get: /ok, extract: { id: $.missing } }\n    - { name: use, get: '/secure?id={{ id }}' }\nflows:\n  f: { journey: j, rate: 10/s, duration: 1s }\n",
    );
    let (_, r) = run_scenario(&s, &d.path().join("out"));
    assert_eq!(step(&r, "f.use").errors.get("template"), Some(&10));
    assert!(
        r.error_examples
            .iter()
            .any(|e| e.class == "template" && e.message.contains("`id`"))
    );
}

#[test]
fn refused_connections_are_counted_as_errors_of_the_step() {
    // Bind and drop a listener to get a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let d = dir();
    let s = write(
        d.path(),
        "s.yaml",
        &format!(
            "target: http://127.0.0.1:{port}\njourneys:\n  j:\n    - {{ name: ok, get: /ok }}\nflows:\n  f: {{ journey: j, rate: 20/s, duration: 1s }}\n"
        ),
    );
    let (exit, r) = run_scenario(&s, &d.path().join("out"));
    assert_exit(exit.code() as i32, 0, &r, "");
    assert_eq!(step(&r, "f.ok").errors.get("connect_refused"), Some(&20));
}

#[test]
fn setup_hands_its_token_to_every_user_and_teardown_runs_after_the_load() {
    let srv = start_server(ServerConfig::default());
    let d = dir();
    let s = write_scenario(
        d.path(),
        &srv.url(),
        "setup: prepare\nteardown: clean\njourneys:\n  prepare:\n    - { name: login, post: /login, json: { user: admin }, extract: { token: $.token }, check: { status: 200 } }\n  use:\n    - { name: balance, get: /secure, headers: { authorization: 'Bearer {{ token }}' }, check: { status: 200 } }\n  clean:\n    - { name: bye, get: /echo }\nflows:\n  users: { journey: use, vus: 3, iterations: 12, duration: 10s }\nthresholds:\n  '*.*': [ \"errors < 1%\" ]\n",
    );
    let (code, r) = run_scenario(&s, &d.path().join("out"));
    assert_eq!(code, stampede::exit::Exit::Passed, "{:?}", r.error_examples);
    // Every user read the token only setup extracted.
    let b = step(&r, "users.balance");
    assert_eq!((b.requests, b.failed), (12, 0), "{:?}", r.error_examples);
    assert_eq!(step(&r, "setup.login").requests, 1);
    assert_eq!(step(&r, "teardown.bye").requests, 1);
    let (login, bye) = (
        srv.seen.arrivals("/login")[0],
        srv.seen.arrivals("/echo")[0],
    );
    let secure = srv.seen.arrivals("/secure");
    assert!(
        secure.iter().all(|t| *t > login && *t < bye),
        "setup, then the load, then teardown"
    );
    // A glob over the load does not judge setup and teardown.
    assert!(
        r.thresholds.iter().all(|v| v.key.starts_with("users.")),
        "{:?}",
        r.thresholds
    ); // --only picks load flows; setup still runs, or the users would have no token.
    let out = d.path().join("only");
    let exit = run_cli(&[
        "run",
        s.to_str().unwrap(),
        "--only",
        "users",
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(exit, stampede::exit::Exit::Passed);
    let r = stampede::report::read_json(&out.join("results.json")).unwrap();
    assert_eq!(
        step(&r, "users.balance").failed,
        0,
        "{:?}",
        r.error_examples
    );
}

#[test]
fn a_failed_setup_sends_no_load_and_fails_the_run() {
    let srv = start_server(ServerConfig::default());
    let d = dir();
    let s = write_scenario(
        d.path(),
        &srv.url(),
        "setup: prepare\nteardown: clean\njourneys:\n  prepare: [ { name: make, get: '/status?code=503', check: { status: 200 } } ]\n  use: [ { name: a, get: /ok } ]\n  clean: [ { name: bye, get: /echo } ]\nflows:\n  users: { journey: use, rate: 50/s, duration: 2s }\n",
    );
    let out = d.path().join("out");
    let (code, stdout, _) = run_bin(&[
        "run",
        s.to_str().unwrap(),
        "--no-progress",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{stdout}");
    assert!(srv.seen.arrivals("/ok").is_empty(), "no load request");
    assert!(
        srv.seen.arrivals("/echo").is_empty(),
        "no teardown after a failed setup"
    );
    let r = stampede::report::read_json(&out.join("results.json")).unwrap();
    let v = r.thresholds.iter().find(|v| v.key == "setup").unwrap();
    assert!(!v.passed && v.observed.contains("status 503"), "{v:?}");
    assert!(
        stdout.contains("setup failed, so no load was sent") || stdout.contains("FAIL  setup"),
        "{stdout}"
    );
}

#[test]
fn setup_and_teardown_answer_to_their_own_names_and_stay_out_of_the_loads_verdicts() {
    // Setup logs in with the same journey the load runs; teardown's check fails. A threshold
    // may name setup; the journey's name reaches only the load; checks_gate and compare ignore
    // teardown; setup takes no `unique` row from the load's users.
    let srv = start_server(ServerConfig::default());
    let d = dir();
    // Every load user draws a `unique` row when it is made (four users, four rows): a row taken
    // by setup or teardown would leave one of them without.
    write(d.path(), "ids.csv", "id\na1\na2\na3\na4\n");
    let s = write_scenario(
        d.path(),
        &srv.url(),
        "defaults: { checks_gate: true }\ndata:\n  ids: { csv: ids.csv, pick: unique, on_exhausted: error }\nsetup: use\nteardown: bye\njourneys:\n  use: [ { name: in, get: /ok, check: { status: 200 } } ]\n  uniq: [ { name: mine, post: /login, json: { user: '{{ ids.id }}' }, check: { status: 200 } } ]\n  bye: [ { name: out, get: /ok, check: { status: 201 } } ]\nflows:\n  users: { journey: use, vus: 2, per_vu_iterations: 2, duration: 10s }\n  owners: { journey: uniq, vus: 2, per_vu_iterations: 1, duration: 10s }\nthresholds:\n  setup.in: [ \"p99 < 5s\" ]\n  use.in: [ \"errors < 1%\" ]\n",
    );
    let out = d.path().join("out");
    let (code, r) = run_scenario(&s, &out);
    assert_eq!(
        code,
        stampede::exit::Exit::Passed,
        "{:?} {:?}",
        r.thresholds,
        r.error_examples
    );
    let keys: Vec<&str> = r.thresholds.iter().map(|v| v.key.as_str()).collect();
    assert_eq!(keys, ["setup.in", "users.in"], "{:?}", r.thresholds);
    assert!(
        r.error_examples
            .iter()
            .all(|e| e.key.starts_with("teardown")),
        "every load user got a unique row: {:?}",
        r.error_examples
    );
    assert_eq!(step(&r, "teardown.out").checks_failed, 1);
    let results = out.join("results.json");
    // Compare leaves them out: their single samples would make any `--fail-if` undecided.
    let (_, stdout, _) = run_bin(&[
        "compare",
        results.to_str().unwrap(),
        results.to_str().unwrap(),
    ]);
    assert!(stdout.contains("users.in"), "{stdout}");
    assert!(
        !stdout.contains("setup.in") && !stdout.contains("teardown.out"),
        "{stdout}"
    );
}
