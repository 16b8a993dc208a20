//! SIGINT during a run: exit 130, a complete results.json and a valid interval log.

use std::time::{Duration, Instant};

use hdrhistogram::serialization::Deserializer;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};

use crate::util::*;

#[test]
fn sigint_stops_gracefully_and_writes_every_result_file() {
    let srv = start_server(ServerConfig::default());
    let d = dir();
    let out = d.path().join("out");
    let s = write_scenario(
        d.path(),
        &srv.url(),
        "journeys:\n  j:\n    - { name: ok, get: /ok }\nflows:\n  f: { journey: j, rate: 50/s, duration: 60s }\n",
    );
    let mut child = run_command(&s, &out).spawn().unwrap();
    let hlog = out.join("intervals.hlog");
    wait_for_intervals(&hlog, 4);
    signal(&child, "INT");
    let code = child.wait().unwrap().code();
    assert_eq!(code, Some(130));

    let r = stampede::report::read_json(&out.join("results.json")).unwrap();
    assert!(r.interrupted);
    let f = flow(&r, "f");
    assert!(
        f.iterations_ok >= 50,
        "{} iterations before the signal",
        f.iterations_ok
    );
    assert!(
        r.duration_s < 30.0,
        "stopped early, not after the full minute: {}",
        r.duration_s
    );

    let text = std::fs::read(&hlog).unwrap();
    let mut histograms = 0;
    for entry in IntervalLogIterator::new(&text) {
        if let LogEntry::Interval(h) = entry.unwrap() {
            let bytes = base64_decode(h.encoded_histogram());
            let decoded: hdrhistogram::Histogram<u64> = Deserializer::new()
                .deserialize(&mut bytes.as_slice())
                .unwrap();
            assert!(!decoded.is_empty());
            histograms += 1;
        }
    }
    assert!(histograms >= 4);
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

/// Waits (at most 30 s) until the run has written `n` interval lines.
fn wait_for_intervals(hlog: &std::path::Path, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let lines = std::fs::read_to_string(hlog)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("Tag="))
            .count();
        if lines >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the run never wrote {n} intervals"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn spawn_run(scenario: &std::path::Path, out: &std::path::Path) -> std::process::Child {
    run_command(scenario, out)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn sigterm_stops_gracefully_like_sigint() {
    let srv = start_server(ServerConfig::default());
    let d = dir();
    let out = d.path().join("out");
    let s = ok_scenario(d.path(), &srv, "rate: 50/s, duration: 60s");
    let mut child = spawn_run(&s, &out);
    wait_for_intervals(&out.join("intervals.hlog"), 2);
    signal(&child, "TERM");
    assert_eq!(child.wait().unwrap().code(), Some(130));
    let r = stampede::report::read_json(&out.join("results.json")).unwrap();
    assert!(r.interrupted && r.duration_s < 30.0);
    assert!(out.join("junit.xml").exists() && out.join("report.html").exists());
}

#[test]
fn a_second_sigint_stops_at_once() {
    let srv = start_server(ServerConfig::default());
    let d = dir();
    let out = d.path().join("out");
    // Every iteration takes 20 s and the graceful stop is 60 s: only the second signal ends it soon.
    let s = write_scenario(
        d.path(),
        &srv.url(),
        "defaults: { graceful_stop: 60s, timeout: 60s }\njourneys:\n  j: [ { name: ok, get: /ok }, { name: slow, get: '/slow?ms=20000' } ]\nflows:\n  f: { journey: j, rate: 10/s, duration: 60s }\n",
    );
    let started = Instant::now();
    let mut child = run_command(&s, &out)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    wait_for_intervals(&out.join("intervals.hlog"), 2);
    signal(&child, "INT");
    // Signals sent back to back can merge into one: insist only once the first was handled.
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the run acknowledges the first signal");
        if line.contains("stopping") {
            break;
        }
    }
    signal(&child, "INT");
    assert_eq!(child.wait().unwrap().code(), Some(130));
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "stopped at once: {:?}",
        started.elapsed()
    );
    let r = stampede::report::read_json(&out.join("results.json")).unwrap();
    let f = flow(&r, "f");
    assert!(
        f.interrupted >= 10,
        "in-flight iterations were cut off and counted: {}",
        f.interrupted
    );
    assert_eq!(f.iterations_ok, 0);
}

#[test]
fn after_sigkill_report_rebuilds_a_summary_from_the_interval_log() {
    let srv = start_server(ServerConfig::default());
    let d = dir();
    let out = d.path().join("out");
    let s = ok_scenario(d.path(), &srv, "rate: 50/s, duration: 60s");
    let mut child = spawn_run(&s, &out);
    // Five intervals (two keys each) hold about 250 requests; a busy machine may start slowly.
    wait_for_intervals(&out.join("intervals.hlog"), 10);
    signal(&child, "KILL");
    let _ = child.wait();
    assert!(
        !out.join("results.json").exists(),
        "a killed run writes no results.json"
    );
    let (code, stdout, stderr) = run_bin(&["report", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("recovered from the interval log"),
        "{stdout}"
    );
    let line = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("f.ok "))
        .unwrap();
    let count: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(
        count >= 100,
        "five intervals of 50/s: {line}\n{stdout}\n{}",
        std::fs::read_to_string(out.join("intervals.hlog")).unwrap_or_default()
    );
    // A log cut mid-line (a power cut while writing) still reads up to its last whole line.
    let hlog = out.join("intervals.hlog");
    let mut text = std::fs::read(&hlog).unwrap();
    text.extend_from_slice(b"Tag=f.ok,9.000,1.000,1.0,HISTFAAAAC");
    std::fs::write(&hlog, text).unwrap();
    let (code, again, _) = run_bin(&["report", hlog.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert_eq!(again, stdout);
}

#[test]
fn an_unwritable_out_is_refused_before_any_traffic() {
    let srv = start_server(ServerConfig::default());
    let d = dir();
    let blocker = d.path().join("file");
    std::fs::write(&blocker, "not a folder").unwrap();
    let s = ok_scenario(d.path(), &srv, "rate: 50/s, duration: 5s");
    let out = blocker.join("results");
    let (code, _, err) = run_bin(&["run", s.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot write results to"), "{err}");
    assert_eq!(
        srv.seen.arrivals("/ok").len(),
        0,
        "no traffic before the check"
    );
}

#[test]
fn a_full_disk_is_refused_before_any_traffic() {
    // A private mount namespace with a 1 MiB tmpfs stands in for a nearly full disk.
    if !root_or_skip("a private mount namespace") {
        return;
    }
    let srv = start_server(ServerConfig::default());
    let d = dir();
    let s = ok_scenario(d.path(), &srv, "rate: 5/s, duration: 1h");
    let small = d.path().join("small");
    std::fs::create_dir(&small).unwrap();
    let out = std::process::Command::new("unshare")
        .args([
            "-m",
            "sh",
            "-c",
            "mount -t tmpfs -o size=1m tmpfs \"$0\" && exec \"$1\" run \"$2\" --out \"$0/out\"",
        ])
        .args([small.to_str().unwrap(), bin(), s.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("not enough disk space") && err.contains("MiB free"),
        "{err}"
    );
    assert_eq!(
        srv.seen.arrivals("/ok").len(),
        0,
        "no traffic before the check"
    );
}

#[test]
fn a_write_failure_during_the_run_loses_nothing() {
    // /dev/full fails every write with ENOSPC: the log fails mid-run, results.json at the end.
    let srv = start_server(ServerConfig::default());
    let d = dir();
    let s = ok_scenario(d.path(), &srv, "vus: 1, iterations: 25");
    let out = d.path().join("out");
    std::fs::create_dir(&out).unwrap();
    // results.json is written to a temporary file and renamed: fail the temporary file.
    for f in ["intervals.hlog", "results.json.tmp"] {
        std::os::unix::fs::symlink("/dev/full", out.join(f)).unwrap();
    }
    let (code, stdout, err) =
        run_bin(&["run", s.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("intervals.hlog") && err.contains("No space left"),
        "{err}"
    );
    assert!(err.contains("results.json"), "{err}");
    // Everything that was measured is on stdout instead, and the other files were written.
    let json = stdout
        .lines()
        .find(|l| l.starts_with('{'))
        .expect("results on stdout");
    let r: stampede::report::RunResult = serde_json::from_str(json).unwrap();
    assert_eq!(step(&r, "f.ok").requests, 25);
    assert_eq!(srv.seen.arrivals("/ok").len(), 25);
    for f in ["junit.xml", "report.html", "intervals.csv"] {
        assert!(std::fs::metadata(out.join(f)).unwrap().len() > 0, "{f}");
    }
}

#[test]
fn the_first_sigint_lets_an_in_flight_request_finish() {
    // A cancelling first Ctrl-C would pass every test above: here the request in flight when the
    // signal comes takes 1.5 s and the graceful stop allows 5 s, so it must complete.
    let srv = start_server(ServerConfig::default());
    let d = dir();
    let out = d.path().join("out");
    let s = write_scenario(
        d.path(),
        &srv.url(),
        "defaults: { graceful_stop: 5s, timeout: 10s }\njourneys:\n  j: [ { name: slow, get: '/slow?ms=1500' } ]\nflows:\n  f: { journey: j, vus: 1, per_vu_iterations: 1 }\n",
    );
    let mut child = run_command(&s, &out).spawn().unwrap();
    wait_for("the request to arrive", || {
        !srv.seen.arrivals("/slow").is_empty()
    });
    signal(&child, "INT");
    assert_eq!(child.wait().unwrap().code(), Some(130));
    let r = stampede::report::read_json(&out.join("results.json")).unwrap();
    let f = flow(&r, "f");
    assert_eq!(
        (f.iterations_ok, f.interrupted),
        (1, 0),
        "{:?}",
        r.error_examples
    );
    assert_eq!(srv.seen.ok("/slow"), 1);
    assert!(hist(step(&r, "f.slow").latency.as_ref().unwrap()).max() >= 1_500_000);
}

#[test]
fn a_user_waiting_for_its_pace_starts_nothing_after_the_first_sigint() {
    // One user, one iteration every 20 s: the signal comes while it waits for its second, which
    // is a new iteration (the graceful stop lets only those in flight finish).
    let srv = start_server(ServerConfig::default());
    let d = dir();
    let out = d.path().join("out");
    let s = write_scenario(
        d.path(),
        &srv.url(),
        "defaults: { graceful_stop: 30s }\njourneys:\n  j: [ { name: ok, get: /ok } ]\nflows:\n  f: { journey: j, vus: 1, pace: 20s, duration: 60s }\n",
    );
    let mut child = run_command(&s, &out).spawn().unwrap();
    wait_for("the first request to arrive", || srv.seen.ok("/ok") == 1);
    signal(&child, "INT");
    assert_eq!(child.wait().unwrap().code(), Some(130));
    let r = stampede::report::read_json(&out.join("results.json")).unwrap();
    assert_eq!(srv.seen.ok("/ok"), 1, "an iteration started after the stop");
    let f = flow(&r, "f");
    assert_eq!((f.iterations_ok, f.interrupted), (1, 0));
    assert!(
        r.duration_s < 15.0,
        "the run waited out the pace: {} s",
        r.duration_s
    );
}
