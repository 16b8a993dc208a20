//! The CI gate: thresholds decide the exit code, the verdict rows and junit.xml; a failing
//! `abort_on_fail` threshold stops the run early; `report` re-renders every form.

use std::net::SocketAddr;
use std::path::Path;

use crate::util::*;

/// An external tool that .ci/run installs: missing locally, the test says so and passes; missing
/// in CI (CI=true), it fails.
pub fn tool(name: &str) -> Option<String> {
    let found = std::process::Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    if found.is_none() {
        assert!(
            std::env::var("CI").is_err(),
            "{name} is required in CI (.ci/run installs it)"
        );
        eprintln!("skipping: {name} is not installed (.ci/run installs it)");
    }
    found
}

fn wallet() -> (String, stampede::demo::DemoHandle) {
    let cfg = stampede::demo::DemoConfig {
        auth_cost: 50,
        accounting_ms: 1,
        ..Default::default()
    };
    let (addr, h) = stampede::demo::spawn(SocketAddr::from(([127, 0, 0, 1], 0)), cfg).unwrap();
    (format!("http://{addr}"), h)
}

fn scenario(dir: &Path, url: &str, thresholds: &str) -> std::path::PathBuf {
    let users = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/data/users.csv");
    write(
        dir,
        "gate.yaml",
        &format!(
            r#"
target: {url}
data: {{ users: {{ csv: "{}", pick: random }} }}
journeys:
  trade:
    - name: login
      post: /auth/login
      json: {{ user: "{{{{ users.user }}}}", password: "{{{{ users.password }}}}" }}
      extract: {{ token: $.token }}
    - name: balance
      get: /wallet/balance
      headers: {{ authorization: "Bearer {{{{ token }}}}" }}
      check: {{ status: 200 }}
    - name: exchange
      post: /exchange
      headers: {{ authorization: "Bearer {{{{ token }}}}" }}
      json: {{ from: USDT, to: TON, amount: 1 }}
      check: {{ status: 200, json: {{ $.status: filled }} }}
flows:
  traders: {{ journey: trade, rate: 20/s, duration: 2s }}
thresholds:
{thresholds}
"#,
            users.display()
        ),
    )
}

fn junit_valid(path: &Path) {
    let Some(xmllint) = tool("xmllint") else {
        return;
    };
    let xsd = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/junit.xsd");
    let out = std::process::Command::new(xmllint)
        .args(["--noout", "--schema"])
        .arg(&xsd)
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn passing_thresholds_exit_0_with_passing_rows() {
    let (url, _w) = wallet();
    let d = dir();
    let s = scenario(
        d.path(),
        &url,
        "  traders.exchange: [ \"p99 < 5s\", \"errors < 1%\" ]\n  traders: [ \"rate > 95%\", \"checks == 100%\" ]\n  \"*.*\": [ \"errors == 0\" ]",
    );
    let out = d.path().join("out");
    let (code, stdout, err) =
        run_bin(&["run", s.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    let r = stampede::report::read_json(&out.join("results.json")).unwrap();
    assert_exit(code, 0, &r, &format!("{stdout}{err}"));
    assert!(
        stdout.contains("verdict: passed (8 thresholds)"),
        "{stdout}"
    );
    let r = stampede::report::read_json(&out.join("results.json")).unwrap();
    assert_eq!(
        r.thresholds.len(),
        8,
        "2 + 2 + one per step and the iteration"
    );
    assert!(r.thresholds.iter().all(|v| v.passed));
    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    assert!(junit.contains("failures=\"0\""));
    assert!(junit.contains("<testcase name=\"traders.exchange: p99 &lt; 5s\""));
    assert!(junit.contains("<testcase name=\"traders.exchange: checks\""));
    junit_valid(&out.join("junit.xml"));
}

#[test]
fn failing_thresholds_exit_1_with_observed_and_limit() {
    let (url, _w) = wallet();
    let d = dir();
    let s = scenario(
        d.path(),
        &url,
        "  traders.exchange: [ \"p99 < 1ms\", \"errors < 1%\" ]\n  traders.balance: [ \"ttfb max < 1us\" ]",
    );
    let out = d.path().join("out");
    let (code, stdout, _) = run_bin(&["run", s.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    let r = stampede::report::read_json(&out.join("results.json")).unwrap();
    assert_exit(code, 1, &r, &stdout);
    assert!(
        stdout.contains("FAIL  traders.exchange  p99 < 1ms"),
        "{stdout}"
    );
    assert!(
        stdout.contains("pass  traders.exchange  errors < 1%"),
        "{stdout}"
    );
    assert!(
        stdout.contains("verdict: FAILED (2 of 3 thresholds)"),
        "{stdout}"
    );
    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    assert!(junit.contains("failures=\"2\""), "{junit}");
    assert!(junit.contains("<failure message=\"observed "), "{junit}");
    assert!(junit.contains("limit 1ms"), "{junit}");
    junit_valid(&out.join("junit.xml"));
}

#[test]
fn gated_checks_fail_the_run() {
    let (url, _w) = wallet();
    let d = dir();
    let s = scenario(d.path(), &url, "  traders: [ \"errors < 100%\" ]");
    let text = std::fs::read_to_string(&s)
        .unwrap()
        .replace("json: { $.status: filled }", "json: { $.status: pending }");
    std::fs::write(
        &s,
        format!("defaults: {{ checks_gate: true, on_error: continue }}\n{text}"),
    )
    .unwrap();
    let out = d.path().join("out");
    let (code, stdout, _) = run_bin(&["run", s.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    let r = stampede::report::read_json(&out.join("results.json")).unwrap();
    assert_exit(code, 1, &r, &stdout);
    assert!(
        stdout.contains("FAIL  traders.exchange  no failed checks  observed 40 of"),
        "{stdout}"
    );
    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    assert!(
        junit.contains("$.status is &quot;filled&quot;, expected &quot;pending&quot;"),
        "{junit}"
    );
}

#[test]
fn abort_on_fail_stops_the_run_early_and_keeps_every_file() {
    let srv = start_server(ServerConfig::default());
    let d = dir();
    let s = write_scenario(
        d.path(),
        &srv.url(),
        "journeys:\n  j: [ { name: bad, get: /status?code=500 } ]\nflows:\n  f: { journey: j, rate: 20/s, duration: 60s }\nthresholds:\n  f.bad:\n    - { threshold: \"errors < 10%\", abort_on_fail: true, delay: 1s }\n",
    );
    let out = d.path().join("out");
    let (code, stdout, stderr) =
        run_bin(&["run", s.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    let r = stampede::report::read_json(&out.join("results.json")).unwrap();
    assert_exit(code, 1, &r, &format!("{stdout}{stderr}"));
    let r = stampede::report::read_json(&out.join("results.json")).unwrap();
    assert!(r.duration_s < 20.0, "stopped early: {}", r.duration_s);
    assert!(
        r.aborted.as_deref().unwrap().contains("errors < 10%"),
        "{:?}",
        r.aborted
    );
    for f in [
        "junit.xml",
        "intervals.csv",
        "report.html",
        "intervals.hlog",
    ] {
        assert!(out.join(f).exists(), "{f}");
    }
}

#[test]
fn report_re_renders_every_form_from_results_json() {
    let srv = start_server(ServerConfig::default());
    let d = dir();
    let s = write_scenario(
        d.path(),
        &srv.url(),
        "journeys:\n  j: [ { name: ok, get: /ok } ]\nflows:\n  f: { journey: j, rate: 20/s, duration: 2s }\nthresholds:\n  f.ok: [ \"p50 < 1us\" ]\n",
    );
    let out = d.path().join("out");
    let (code, _, _) = run_bin(&[
        "run",
        s.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    let r = stampede::report::read_json(&out.join("results.json")).unwrap();
    assert_exit(code, 1, &r, "");
    let again = d.path().join("again");
    std::fs::create_dir_all(&again).unwrap();
    let (code, stdout, _) = run_bin(&[
        "report",
        out.join("results.json").to_str().unwrap(),
        "--html",
        again.join("r.html").to_str().unwrap(),
        "--junit",
        again.join("j.xml").to_str().unwrap(),
        "--csv",
        again.join("i.csv").to_str().unwrap(),
    ]);
    assert_exit(code, 1, &r, "the verdict is part of the results");
    assert!(stdout.contains("FAIL  f.ok  p50 < 1us"));
    assert_eq!(
        std::fs::read_to_string(again.join("j.xml")).unwrap(),
        std::fs::read_to_string(out.join("junit.xml")).unwrap()
    );
    let csv = std::fs::read_to_string(again.join("i.csv")).unwrap();
    assert!(csv.starts_with("t_s,key,count,errors,p50_us"));
    assert!(
        csv.lines().filter(|l| l.contains(",f.ok,")).count() >= 2,
        "{csv}"
    );
    assert!(
        std::fs::read_to_string(again.join("r.html"))
            .unwrap()
            .contains("<svg")
    );
}

#[test]
fn abort_on_fail_waits_out_its_delay_and_never_aborts_on_missing_data() {
    let srv = start_server(ServerConfig::default());
    let d = dir();
    // `bad` fails from its first request, but its threshold may only abort after 3 s; `late`
    // starts at 4 s, so its threshold has no data before then and must not abort on that.
    let s = write_scenario(
        d.path(),
        &srv.url(),
        "journeys:\n  j: [ { name: bad, get: /status?code=500 } ]\n  k: [ { name: ok, get: /ok } ]\nflows:\n  f: { journey: j, rate: 20/s, duration: 30s }\n  late: { journey: k, start: 4s, rate: 5/s, duration: 2s }\nthresholds:\n  f.bad:\n    - { threshold: \"errors < 10%\", abort_on_fail: true, delay: 3s }\n  late.ok:\n    - { threshold: \"p99 < 5s\", abort_on_fail: true, delay: 1s }\n",
    );
    let out = d.path().join("out");
    let (_, _, stderr) = run_bin(&["run", s.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    let r = stampede::report::read_json(&out.join("results.json")).unwrap();
    let why = r
        .aborted
        .as_deref()
        .unwrap_or_else(|| panic!("not aborted: {stderr}"));
    assert!(
        why.contains("errors < 10%"),
        "aborted on the wrong threshold: {why}"
    );
    assert!(
        (3.0..8.0).contains(&r.duration_s),
        "aborted after {} s; the delay is 3 s",
        r.duration_s
    );
}

#[test]
fn dropped_rate_checks_and_missing_data_thresholds_fail_when_they_should() {
    let srv = start_server(ServerConfig::default());
    let d = dir();
    // `starved` drops most arrivals (2 users for 50/s of 200 ms requests), fails its status check
    // and never reaches `never`; `closed` has nothing to drop and no rate share.
    let s = write_scenario(
        d.path(),
        &srv.url(),
        "defaults: { on_error: continue }\njourneys:\n  j:\n    - { name: a, get: '/slow?ms=200', check: { status: 201 } }\n    - if: \"false\"\n      then: [ { name: never, get: /ok } ]\n  c: [ { name: b, get: /ok } ]\nflows:\n  starved: { journey: j, rate: 50/s, duration: 2s, max_vus: 2 }\n  closed: { journey: c, vus: 1, iterations: 5 }\nthresholds:\n  starved: [ \"dropped < 1%\", \"dropped == 0\", \"rate > 95%\", \"rate >= 40/s\", \"checks > 99%\" ]\n  closed: [ \"dropped == 0%\", \"rate > 95%\" ]\n  starved.never: [ \"p99 < 1s\", \"errors < 1%\" ]\n",
    );
    let (_, r) = run_scenario(&s, &d.path().join("out"));
    let verdict = |key: &str, t: &str| {
        r.thresholds
            .iter()
            .find(|v| v.key == key && v.threshold == t)
            .unwrap_or_else(|| panic!("no verdict for {key}: {t}"))
    };
    for t in [
        "dropped < 1%",
        "dropped == 0",
        "rate > 95%",
        "rate >= 40/s",
        "checks > 99%",
    ] {
        let v = verdict("starved", t);
        assert!(!v.passed, "{t} passed with {}", v.observed);
    }
    let d = verdict("closed", "dropped == 0%");
    assert!(d.passed, "{:?}", d.note);
    let rate = verdict("closed", "rate > 95%");
    assert!(!rate.passed && rate.note.as_deref().unwrap_or("").contains("open flows"));
    // No data never passes a gate.
    for t in ["p99 < 1s", "errors < 1%"] {
        let v = verdict("starved.never", t);
        assert!(!v.passed && v.note.is_some(), "{t}: {v:?}");
    }
}
