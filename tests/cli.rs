//! The command line as a new user meets it: every printing command ends quietly when its reader
//! goes away.

use std::process::{Command, Stdio};

use crate::util::*;

/// Runs the binary with its stdout a pipe whose reading end is closed at once (as `| head -c 0`
/// would), returning the exit code and stderr.
fn with_closed_stdout(args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(bin())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_printing_command_ends_quietly_when_its_reader_goes_away() {
    let srv = start_server(ServerConfig::default());
    let d = dir();
    let s = write_scenario(
        d.path(),
        &srv.url(),
        "journeys:\n  j: [ { name: a, get: /ok } ]\nflows:\n  f: { journey: j, rate: 20/s, duration: 1s }\n",
    );
    let out = d.path().join("out");
    let (code, run_err) =
        with_closed_stdout(&["run", s.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(!run_err.contains("panicked"), "run: {run_err}");
    assert_eq!(code, Some(0), "run: {run_err}");
    assert!(
        out.join("results.json").exists(),
        "the run still wrote its files"
    );
    let results = out.join("results.json");
    let (r, s) = (results.to_str().unwrap(), s.to_str().unwrap());
    for args in [
        vec!["schema"],
        vec!["schema", "--results"],
        vec!["validate", s],
        vec!["report", r],
        vec!["compare", r, r],
        vec!["compare", r, r, "--json"],
    ] {
        let (code, stderr) = with_closed_stdout(&args);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_ne!(code, Some(101), "{args:?}: {stderr}");
    }
}

#[test]
fn the_summary_shows_each_steps_checks() {
    let srv = start_server(ServerConfig::default());
    let d = dir();
    let s = write_scenario(
        d.path(),
        &srv.url(),
        "defaults: { on_error: continue }\njourneys:\n  j:\n    - { name: good, get: /ok, check: { status: 200, json: { $.ok: true } } }\n    - { name: shaky, get: /flaky, check: { status: 200 } }\n    - { name: unchecked, get: /ok }\nflows:\n  f: { journey: j, vus: 1, iterations: 10, duration: 10s }\n",
    );
    let (_, stdout, _) = run_bin(&["run", s.to_str().unwrap(), "--no-progress"]);
    assert!(stdout.contains("  checks:"), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.trim_start().starts_with("pass  good") && l.ends_with("20 of 20")),
        "{stdout}"
    );
    let shaky = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("FAIL  shaky"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(shaky.contains("failed: status 503"), "{shaky}");
    assert!(
        !stdout
            .lines()
            .any(|l| l.trim_start().starts_with("pass  unchecked")),
        "a step without checks has no check line: {stdout}"
    );
}

#[test]
fn validate_describes_iteration_bounded_flows_and_lists_thresholds() {
    let d = dir();
    let s = write_scenario(
        d.path(),
        "http://127.0.0.1:9",
        "journeys:\n  j: [ { name: a, get: /x } ]\nflows:\n  f: { journey: j, vus: 2, per_vu_iterations: 5 }\nthresholds:\n  f.a: [ \"p99 < 200ms\", { threshold: \"errors < 1%\", abort_on_fail: true, delay: 5s } ]\n",
    );
    let (code, stdout, stderr) = run_bin(&["validate", s.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    // What will happen, not the internal one-day cap.
    assert!(
        stdout.contains("peak 2 VUs until its iterations are done")
            && stdout.contains("5 iterations per VU (10 in all)"),
        "{stdout}"
    );
    assert!(!stdout.contains("over 24h"), "{stdout}");
    assert!(
        stdout.contains("load ends when every flow is done"),
        "{stdout}"
    );
    assert!(
        stdout.contains("thresholds:") && stdout.contains("p99 < 200ms"),
        "{stdout}"
    );
    assert!(
        stdout.contains("stops the run when it fails, checked from 5s"),
        "{stdout}"
    );
}

#[test]
fn a_url_runs_without_a_scenario_file_and_prints_one_to_grow() {
    let srv = start_server(ServerConfig::default());
    let d = dir();
    let url = format!("{}/slow?ms=30", srv.url());
    let out = d.path().join("out");
    // An open run with a threshold it cannot meet: exit 1, and every result file.
    let (code, stdout, stderr) = run_bin(&[
        "run",
        &url,
        "--rate",
        "40/s",
        "--iterations",
        "40",
        "--threshold",
        "p99 < 5ms",
        "--no-progress",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stdout.contains("FAIL  quick.request"), "{stdout}");
    let r = stampede::report::read_json(&out.join("results.json")).unwrap();
    assert_eq!(step(&r, "quick.request").requests, 40);
    assert_eq!(srv.seen.arrivals("/slow").len(), 40);
    // Closed: users and iterations, with a header and a body.
    let (code, _, stderr) = run_bin(&[
        "run",
        &format!("{}/echo", srv.url()),
        "--vus",
        "2",
        "--iterations",
        "6",
        "-m",
        "POST",
        "-H",
        "x-user: ada",
        "--body",
        "hello",
        "--quiet",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(srv.seen.arrivals("/echo").len(), 6);
    // The printed scenario is a scenario: it validates, and runs the same way.
    let (code, yaml, _) = run_bin(&["run", &url, "--vus", "3", "--print-scenario"]);
    assert_eq!(code, 0);
    let saved = write(d.path(), "saved.yaml", &yaml);
    let (code, stdout, stderr) = run_bin(&["validate", saved.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("peak 3 VUs over 10s"), "{stdout}");
}

#[test]
fn rate_and_vus_overrides_change_a_scenarios_plan() {
    let d = dir();
    let s = write_scenario(
        d.path(),
        "http://127.0.0.1:9",
        "journeys:\n  j: [ { name: a, get: /x } ]\nflows:\n  o: { journey: j, rate: [ { to: 10/s, over: 5s }, { hold: 5s } ] }\n  c: { journey: j, vus: 4, duration: 10s }\n",
    );
    let s = s.to_str().unwrap();
    let (code, stdout, stderr) = run_bin(&[
        "validate",
        s,
        "--rate",
        "o=50/s",
        "--vus",
        "12",
        "--iterations",
        "c=30",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("open, uniform arrivals, peak 50.00/s"),
        "{stdout}"
    );
    assert!(
        stdout.contains("peak 12 VUs over 10s") && stdout.contains("30 iterations in total"),
        "{stdout}"
    );
    // A rate on a closed flow, and an unnamed rate in a scenario with two flows, say what to do.
    let (code, _, stderr) = run_bin(&["validate", s, "--rate", "c=5/s"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("use --vus for it"), "{stderr}");
    let (code, _, stderr) = run_bin(&["run", s, "-H", "x: y"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("apply to a URL run"), "{stderr}");
    let (code, _, stderr) = run_bin(&["validate", s, "--iterations", "5"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("ambiguous") && stderr.contains("o, c"),
        "{stderr}"
    );
}

#[test]
fn a_stall_a_closed_loop_hid_is_pointed_out() {
    // Two users looping back to back through a 400 ms server stall: only their two requests in
    // flight see it; the summary says what the closed loop hid, and the page's footer does not
    // claim the latency is free of coordinated omission.
    let srv = start_server(ServerConfig {
        stall: Some((
            std::time::Duration::from_millis(500),
            std::time::Duration::from_millis(400),
        )),
        ..Default::default()
    });
    let d = dir();
    let s = write_scenario(
        d.path(),
        &srv.url(),
        "journeys:\n  j: [ { name: a, get: /stall } ]\nflows:\n  f: { journey: j, vus: 2, duration: 2s }\n",
    );
    let out = d.path().join("out");
    let (_, stdout, _) = run_bin(&[
        "run",
        s.to_str().unwrap(),
        "--no-progress",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        stdout.contains("note: a max") && stdout.contains("closed loop (no `pace`) hid"),
        "{stdout}"
    );
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(
        html.contains("f without <code>pace</code> starts each iteration"),
        "footer"
    );
    assert!(!html.contains("(no coordinated omission)"));
}
