//! Step kinds and request details: loops, conditions, groups, hooks, retries, cookies, bodies,
//! traceparent and feeders, observed at the server.

use crate::util::*;

fn run_yaml(srv: &TestServer, body: &str) -> stampede::report::RunResult {
    let d = dir();
    std::fs::write(
        d.path().join("users.csv"),
        "user,password\nann,1\nbob,2\ncid,3\n",
    )
    .unwrap();
    let s = write_scenario(d.path(), &srv.url(), body);
    let (_, r) = run_scenario(&s, &d.path().join("out"));
    r
}

#[test]
fn loops_conditions_groups_and_hooks_run_the_right_steps() {
    let srv = start_server(ServerConfig::default());
    let r = run_yaml(
        &srv,
        r#"
vars: { limit: 2 }
journeys:
  j:
    before: "rounds = 0;"
    after: "done = true;"
    steps:
      - loop:
          count: 3
          steps: [ { name: counted, get: /ok } ]
      - loop:
          while: "rounds < limit"
          steps:
            - { name: looped, get: /slow?ms=1 }
            - script: "rounds += 1;"
      - if: "rounds == 2"
        then: [ { name: yes, get: /secure?x=1, check: { status: 401 } } ]
        else: [ { name: no, get: /status?code=500 } ]
      - group:
          - { name: grouped, get: /echo }
flows:
  f: { journey: j, vus: 1, iterations: 4 }
"#,
    );
    let f = flow(&r, "f");
    assert_eq!(f.iterations_ok, 4, "{:?}", r.error_examples);
    assert_eq!(step(&r, "f.counted").requests, 12);
    assert_eq!(step(&r, "f.looped").requests, 8);
    assert_eq!(step(&r, "f.yes").requests, 4);
    assert_eq!(step(&r, "f.no").requests, 0);
    assert_eq!(step(&r, "f.grouped").requests, 4);
    assert_eq!(srv.seen.arrivals("/ok").len(), 12);
}

#[test]
fn retries_are_counted_as_attempts_of_the_step() {
    let srv = start_server(ServerConfig::default());
    let r = run_yaml(
        &srv,
        r#"
journeys:
  j:
    - name: flaky
      get: /status?code=503
      retry: { max: 2, on: [503], backoff: 1ms..5ms }
flows:
  f: { journey: j, vus: 1, iterations: 5 }
"#,
    );
    let s = step(&r, "f.flaky");
    assert_eq!(s.requests, 15, "1 attempt + 2 retries per iteration");
    assert_eq!(s.retries, 10);
    assert_eq!(s.errors.get("status"), Some(&15));
    assert_eq!(flow(&r, "f").iterations_failed, 5);
}

#[test]
fn cookies_are_kept_per_virtual_user_and_sent_back() {
    let srv = start_server(ServerConfig::default());
    let r = run_yaml(
        &srv,
        r#"
journeys:
  j:
    - { name: set, get: /setcookie, extract: { sid: { cookie: sid } } }
    - name: echo
      get: /echo
      check: { json: { $.headers.cookie: "sid=abc123; theme=dark" } }
    - name: again
      get: "/echo?sid={{ sid }}"
      check: { json: { $.query: "sid=abc123" } }
flows:
  f: { journey: j, vus: 2, per_vu_iterations: 2 }
"#,
    );
    assert_eq!(flow(&r, "f").iterations_ok, 4, "{:?}", r.error_examples);
}

#[test]
fn bodies_queries_and_headers_are_encoded() {
    let srv = start_server(ServerConfig::default());
    let r = run_yaml(
        &srv,
        r#"
vars: { q: "a b&c", n: 7, who: "O'Brien \"Bob\"" }
journeys:
  j:
    - name: form
      post: /echo
      form: { name: "{{ who }}", n: "{{ n }}" }
      check:
        json:
          $.body: "name=O%27Brien%20%22Bob%22&n=7"
          $.headers['content-type']: application/x-www-form-urlencoded
    - name: query
      get: /echo
      query: { q: "{{ q }}", fixed: x }
      check: { json: { $.query: "q=a%20b%26c&fixed=x" } }
    - name: json
      put: /echo
      json: { n: "{{ n }}", who: "{{ who }}", text: "n={{ n }}" }
      extract: { echoed: $.body }
      check: { json: { $.method: PUT, "$.headers['content-type']": application/json } }
    - script: |
        let b = json_parse(echoed);
        if b.n != 7 || b.who != who || b.text != "n=7" { throw "body was " + echoed; }
    - name: traced
      get: /echo
      check: { exists: [$.headers.traceparent] }
flows:
  f: { journey: j, vus: 1, iterations: 2 }
"#,
    );
    assert_eq!(flow(&r, "f").iterations_ok, 2, "{:?}", r.error_examples);
}

#[test]
fn feeders_hand_rows_to_virtual_users() {
    let srv = start_server(ServerConfig::default());
    let r = run_yaml(
        &srv,
        r#"
data:
  seq: { csv: users.csv }
  own: { csv: users.csv, pick: unique }
journeys:
  j:
    - name: seq
      get: "/echo?u={{ seq.user }}"
      headers: { x-user: "{{ own.user }}" }
      extract: { q: $.query, h: "$.headers['x-user']" }
    - script: |
        if q != "u=" + seq.user { throw "query " + q; }
        if h != own.user { throw "header " + h; }
flows:
  f: { journey: j, vus: 3, per_vu_iterations: 2 }
"#,
    );
    assert_eq!(flow(&r, "f").iterations_ok, 6, "{:?}", r.error_examples);
}

#[test]
fn a_fourth_user_finds_no_unique_row() {
    let srv = start_server(ServerConfig::default());
    let r = run_yaml(
        &srv,
        r#"
data:
  own: { csv: users.csv, pick: unique }
journeys:
  j: [ { name: a, get: "/echo?u={{ own.user }}" } ]
flows:
  f: { journey: j, vus: 4, per_vu_iterations: 1 }
"#,
    );
    let f = flow(&r, "f");
    assert_eq!(f.iterations_ok, 3);
    assert_eq!(f.errors.get("feed"), Some(&1));
    assert!(
        r.error_examples
            .iter()
            .any(|e| e.message.contains("ran out of rows"))
    );
}

#[test]
fn script_errors_name_the_file_and_line() {
    let srv = start_server(ServerConfig::default());
    let r = run_yaml(
        &srv,
        r#"
journeys:
  j:
    - { name: a, get: /ok }
    - script: |
        let x = 1;
        let y = x / 0;
flows:
  f: { journey: j, vus: 1, iterations: 1 }
"#,
    );
    let e = r
        .error_examples
        .iter()
        .find(|e| e.class == "script")
        .unwrap();
    assert!(e.message.contains("s.yaml:8:"), "{}", e.message);
    assert_eq!(flow(&r, "f").errors.get("script"), Some(&1));
}

#[test]
fn named_targets_and_absolute_urls_reach_their_servers() {
    let auth = start_server(ServerConfig::default());
    let api = start_server(ServerConfig::default());
    let other = start_server(ServerConfig::default());
    let r = run_yaml(
        &api,
        &format!(
            r#"
targets: {{ auth: "{}/prefix" }}
journeys:
  j:
    - {{ name: login, post: /login, target: auth, json: {{ user: x }}, extract: {{ token: $.token }} }}
    - {{ name: default, get: /ok }}
    - {{ name: absolute, get: "{}/ok" }}
flows:
  f: {{ journey: j, vus: 1, iterations: 3 }}
"#,
            auth.url(),
            other.url()
        ),
    );
    // The named target's path prefix is kept: /prefix/login is not a route, so it answers 404.
    assert_eq!(auth.seen.arrivals("/prefix/login").len(), 3);
    assert_eq!(step(&r, "f.login").errors.get("status"), Some(&3));
    let r2 = run_yaml(
        &api,
        &format!(
            "targets: {{ auth: \"{}\" }}\njourneys:\n  j:\n    - {{ name: login, post: /login, target: auth, json: {{ user: x }} }}\n    - {{ name: default, get: /ok }}\n    - {{ name: absolute, get: \"{}/ok\" }}\nflows:\n  f: {{ journey: j, vus: 1, iterations: 3 }}\n",
            auth.url(),
            other.url()
        ),
    );
    assert_eq!(flow(&r2, "f").iterations_ok, 3, "{:?}", r2.error_examples);
    assert_eq!(auth.seen.arrivals("/login").len(), 3);
    assert_eq!(api.seen.arrivals("/ok").len(), 3);
    assert_eq!(other.seen.arrivals("/ok").len(), 3);
}

#[test]
fn a_slow_response_is_a_timeout_of_the_step() {
    let srv = start_server(ServerConfig::default());
    let r = run_yaml(
        &srv,
        r#"
journeys:
  j: [ { name: slow, get: /slow?ms=2000, timeout: 200ms } ]
flows:
  f: { journey: j, vus: 2, per_vu_iterations: 2 }
"#,
    );
    let s = step(&r, "f.slow");
    assert_eq!(s.errors.get("timeout"), Some(&4));
    let l = s.latency.as_ref().unwrap();
    assert!(l.min_us >= 200_000 && l.max_us < 1_000_000, "{l:?}");
}

#[test]
fn regex_and_header_extraction() {
    let srv = start_server(ServerConfig::default());
    let r = run_yaml(
        &srv,
        r#"
journeys:
  j:
    - name: a
      get: /echo?order=42
      extract:
        order: { regex: "order=(\\d+)" }
        ctype: { header: content-type }
    - name: b
      get: "/echo?o={{ order }}&t={{ ctype }}"
      check: { json: { $.query: "o=42&t=application/json" } }
flows:
  f: { journey: j, vus: 1, iterations: 2 }
"#,
    );
    assert_eq!(flow(&r, "f").iterations_ok, 2, "{:?}", r.error_examples);
}

#[test]
fn iterations_still_running_after_the_graceful_stop_are_interrupted() {
    let srv = start_server(ServerConfig::default());
    let r = run_yaml(
        &srv,
        r#"
defaults: { graceful_stop: 300ms, timeout: 30s }
journeys:
  j: [ { name: slow, get: /slow?ms=5000 } ]
flows:
  f: { journey: j, rate: 10/s, duration: 500ms }
"#,
    );
    let f = flow(&r, "f");
    assert_eq!(f.planned, 5);
    assert_eq!(f.interrupted, 5);
    assert_eq!(f.iterations_ok + f.iterations_failed, 0);
    assert!(
        r.duration_s < 3.0,
        "the run ended at the graceful stop, not when the server answered: {}",
        r.duration_s
    );
}

#[test]
fn retry_amplification_against_a_target_failing_half_the_time() {
    let srv = start_server(ServerConfig::default());
    let r = run_yaml(
        &srv,
        r#"
journeys:
  j:
    - name: flaky
      get: /flaky
      retry: { max: 2, on: [503], backoff: 1ms..2ms }
flows:
  f: { journey: j, vus: 4, per_vu_iterations: 150 }
"#,
    );
    let s = step(&r, "f.flaky");
    // Each logical request is tried until it succeeds, at most 3 times: 1 + 1/2 + 1/4 = 1.75.
    assert!(
        (s.amplification - 1.75).abs() < 0.12,
        "amplification {}",
        s.amplification
    );
    assert_eq!(
        s.requests - s.retries,
        600,
        "one first attempt per iteration"
    );
    // Only a request failing all 3 attempts fails the iteration: 1/8 of them.
    let failed = flow(&r, "f").iterations_failed as f64 / 600.0;
    assert!((failed - 0.125).abs() < 0.05, "failed share {failed}");
    assert!(
        r.intervals
            .iter()
            .any(|row| row.key == "f.flaky" && row.retries > 0),
        "retries per interval"
    );
    let html = stampede::report::html::render(&r);
    assert!(
        html.contains(&format!("<td>{:.2}</td></tr>", s.amplification)),
        "the step table shows the amplification"
    );
}

#[test]
fn at_the_graceful_stop_only_busy_users_are_interrupted() {
    // An open flow's users outlive their arrivals: user 1 is stuck in a 5 s request when the
    // grace ends, while the others finished theirs and wait for arrivals that no longer come.
    // Only the one in flight is interrupted, and every planned arrival is counted once.
    let srv = start_server(ServerConfig::default());
    let r = run_yaml(
        &srv,
        r#"
defaults: { graceful_stop: 2s, timeout: 30s }
journeys:
  j:
    - script: "ms = if vu == 1 { 5000 } else { 10 };"
    - { name: s, get: '/slow?ms={{ ms }}' }
flows:
  f: { journey: j, rate: 20/s, duration: 1s }
"#,
    );
    let f = flow(&r, "f");
    assert_eq!(f.planned, 20);
    assert_eq!(f.dropped, 0);
    assert_eq!(f.interrupted, 1, "{:?}", r.error_examples);
    assert_eq!(f.iterations_ok, 19);
    assert_eq!(
        f.planned,
        f.iterations_ok + f.iterations_failed + f.dropped + f.interrupted
    );
}

#[test]
fn scripts_read_the_user_the_iteration_and_the_flow() {
    // Each user counts its own iterations and checks them against `iteration`; a script that
    // cannot see `vu`, `iteration` or `flow` fails its step ("Variable not found").
    let srv = start_server(ServerConfig::default());
    let d = dir();
    let s = write_scenario(
        d.path(),
        &srv.url(),
        "vars: { seen: 0 }\njourneys:\n  j:\n    - script: |\n        seen += 1;\n        if iteration != seen { throw `iteration ${iteration}, expected ${seen}`; }\n        if vu < 1 || vu > 3 { throw `vu ${vu}`; }\n        if flow != \"f\" { throw `flow ${flow}`; }\n        who = `${flow}-${vu}-${iteration}`;\n    - { name: a, get: '/ok?who={{ who }}' }\nflows:\n  f: { journey: j, vus: 3, per_vu_iterations: 4, duration: 10s }\n",
    );
    let (_, r) = run_scenario(&s, &d.path().join("out"));
    let f = flow(&r, "f");
    assert_eq!(f.iterations_ok, 12, "{:?} {:?}", f.errors, r.error_examples);
    assert_eq!(step(&r, "f.a").requests, 12);
}

#[test]
fn a_failed_status_check_shows_the_start_of_the_body_masked() {
    // The server says why it refused (400 {"error":"no user"}); the check's message shows it. A
    // body that echoes a secret (the API key, in /echo's headers) shows it masked.
    let srv = start_server(ServerConfig::default());
    let d = dir();
    let s = write_scenario(
        d.path(),
        &srv.url(),
        "vars:\n  key: { value: sk-live-12345, secret: true }\ndefaults: { on_error: continue }\njourneys:\n  j:\n    - { name: login, post: /login, json: {}, check: { status: 200 } }\n    - { name: echo, get: /echo, headers: { x-api-key: '{{ key }}' }, check: { status: 201 } }\nflows:\n  f: { journey: j, vus: 1, iterations: 2, duration: 10s }\n",
    );
    let out = d.path().join("out");
    let (_, r) = run_scenario(&s, &out);
    let message = |key: &str| {
        r.error_examples
            .iter()
            .find(|e| e.key == key)
            .map(|e| e.message.clone())
            .unwrap_or_default()
    };
    assert!(
        message("f.login").contains(r#"status 400, expected [200]; body: {"error":"no user"}"#),
        "{}",
        message("f.login")
    );
    let echo = message("f.echo");
    assert!(
        echo.contains("body: {") && echo.contains("x-api-key"),
        "{echo}"
    );
    assert!(!echo.contains("sk-live-12345"), "{echo}");
    let files = std::fs::read_to_string(out.join("results.json")).unwrap();
    assert!(!files.contains("sk-live-12345"));
}
