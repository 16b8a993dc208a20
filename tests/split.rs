//! One run split across processes: `--segment`, `--start-at` and `stampede merge`, against what
//! the test server counted.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use stampede::model::RunResult;

use crate::util::*;

/// Three kinds of flow (uniform open with two steps, Poisson open, closed with a shared
/// iteration budget), a threshold that holds and one that fails.
const MIXED: &str = "journeys:
  buy: [ { name: ok, get: /ok }, { name: slow, get: '/slow?ms=5' } ]
  poke: [ { name: status, get: '/status?code=200' } ]
  chat: [ { name: echo, get: /echo } ]
flows:
  buyers: { journey: buy, rate: 40/s, duration: 3s }
  pokers: { journey: poke, rate: 100/s, duration: 3s, arrivals: poisson }
  chatters: { journey: chat, vus: 4, iterations: 30, duration: 3s }
thresholds:
  buyers.ok: [ \"p99 < 2s\" ]
  buyers.slow: [ \"p50 < 1ms\" ]
";

fn unix_in(d: Duration) -> String {
    let at = SystemTime::now() + d;
    let secs = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    format!("{secs:.3}")
}

/// Starts `count` segments of `scenario` as separate processes, all at `start_at`, each writing
/// into `base/seg-N`; waits for them and returns their folders and exit codes.
fn run_segments(
    scenario: &Path,
    base: &Path,
    count: u32,
    start_at: &str,
    extra: &[&str],
) -> Vec<(PathBuf, i32)> {
    let children: Vec<(PathBuf, std::process::Child)> = (0..count)
        .map(|i| {
            let out = base.join(format!("seg-{i}"));
            let child = std::process::Command::new(bin())
                .args([
                    "run",
                    scenario.to_str().unwrap(),
                    "--quiet",
                    "--no-progress",
                ])
                .args(["--out", out.to_str().unwrap()])
                .args(["--segment", &format!("{i}/{count}"), "--start-at", start_at])
                .args(extra)
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            (out, child)
        })
        .collect();
    children
        .into_iter()
        .map(|(out, c)| {
            let o = c.wait_with_output().unwrap();
            (out, o.status.code().unwrap_or(-1))
        })
        .collect()
}

fn merge(dirs: &[&Path], out: &Path) -> (i32, String, String) {
    let mut args = vec!["merge"];
    args.extend(dirs.iter().map(|d| d.to_str().unwrap()));
    args.extend(["--out", out.to_str().unwrap()]);
    run_bin(&args)
}

fn verdicts(r: &RunResult) -> BTreeSet<(String, bool)> {
    r.thresholds
        .iter()
        .map(|v| (format!("{} {}", v.key, v.threshold), v.passed))
        .collect()
}

#[test]
fn three_segments_merge_into_what_one_process_sends_and_judges() {
    let (whole_srv, split_srv) = (
        start_server(ServerConfig::default()),
        start_server(ServerConfig::default()),
    );
    let d = dir();
    let s = write_scenario(d.path(), &whole_srv.url(), MIXED);
    let (whole_code, _, whole, _) = run_bin_scenario(&s, &[]);

    // Time for three processes to load the scenario before the shared start.
    let start_at = unix_in(Duration::from_secs(6));
    let segs = run_segments(&s, d.path(), 3, &start_at, &["--target", &split_srv.url()]);
    let dirs: Vec<&Path> = segs.iter().map(|(p, _)| p.as_path()).collect();
    for (p, _) in &segs {
        let r = stampede::report::read_json(&p.join("results.json")).unwrap();
        assert_eq!(
            r.start_late_ms,
            Some(0.0),
            "{}: a segment began late; the shared start left too little time",
            p.display()
        );
    }
    let merged_dir = d.path().join("merged");
    let (code, stdout, stderr) = merge(&dirs, &merged_dir);
    let merged = stampede::report::read_json(&merged_dir.join("results.json"))
        .unwrap_or_else(|e| panic!("{e}; exit {code}: {stderr}"));

    // What the servers received, path by path: the whole plan, exactly, both ways.
    for path in ["/ok", "/slow", "/status", "/echo"] {
        assert_eq!(
            split_srv.seen.arrivals(path).len(),
            whole_srv.seen.arrivals(path).len(),
            "{path}: the segments together sent what one process sent"
        );
    }
    assert_eq!(whole_srv.seen.arrivals("/ok").len(), 120);
    assert_eq!(whole_srv.seen.arrivals("/echo").len(), 30);
    for (key, path) in [
        ("buyers.ok", "/ok"),
        ("buyers.slow", "/slow"),
        ("pokers.status", "/status"),
        ("chatters.echo", "/echo"),
    ] {
        assert_eq!(
            step(&merged, key).requests,
            split_srv.seen.arrivals(path).len() as u64,
            "{key}: merged count against the server's"
        );
    }
    for f in ["buyers", "pokers", "chatters"] {
        assert_eq!(flow(&merged, f).planned, flow(&whole, f).planned, "{f}");
        assert_eq!(
            flow(&merged, f).iterations_ok,
            flow(&whole, f).iterations_ok,
            "{f}"
        );
    }
    // The same distribution within noise: 5 ms of server time, a few ms of loopback either way.
    let (m, w) = (
        step(&merged, "buyers.slow").latency.as_ref().unwrap(),
        step(&whole, "buyers.slow").latency.as_ref().unwrap(),
    );
    assert!(m.p50_us >= 5_000 && w.p50_us >= 5_000);
    assert!(
        m.p50_us.abs_diff(w.p50_us) < 5_000,
        "p50 merged {} µs, whole {} µs",
        m.p50_us,
        w.p50_us
    );
    assert_eq!(
        hist(m).len(),
        120,
        "the merged histogram holds every request"
    );
    // The same verdicts, judged on the merged data, and the same exit code.
    assert_eq!(verdicts(&merged), verdicts(&whole));
    assert_exit(
        whole_code,
        1,
        &whole,
        "the failing threshold fails the whole run",
    );
    assert_exit(
        code,
        1,
        &merged,
        &format!("the failing threshold fails the merged run too: {stdout}\n{stderr}"),
    );
    // The Poisson fit is judged on the merged arrivals only (a third of a Poisson process is
    // not one).
    for (p, _) in &segs {
        let r = stampede::report::read_json(&p.join("results.json")).unwrap();
        assert!(flow(&r, "pokers").poisson.is_none());
        assert!(!flow(&r, "pokers").arrival_bins.is_empty());
    }
    // Bins count dispatch times: the last arrival sent a little late may open one more.
    let fit = flow(&merged, "pokers").poisson.as_ref().unwrap();
    let whole_bins = flow(&whole, "pokers").poisson.as_ref().unwrap().bins;
    assert!(
        fit.bins.abs_diff(whole_bins) <= 1,
        "{} vs {whole_bins}",
        fit.bins
    );
    assert_eq!(merged.merged.len(), 3);
    assert!(merged.segment.is_none() && merged.start_at_unix_ms.is_some());
    assert!(stdout.contains("merged from 3 segments"), "{stdout}");
    // Interval histograms were added: the merged log holds every request once.
    let logged = stampede::report::hlog::recover(&merged_dir.join("intervals.hlog")).unwrap();
    let ok = logged.iter().find(|r| r.key == "buyers.ok").unwrap();
    assert_eq!(ok.hist.len(), 120);
    let rows: u64 = merged
        .intervals
        .iter()
        .filter(|r| r.key == "buyers.ok")
        .map(|r| r.count)
        .sum();
    assert_eq!(rows, 120);
    // Each segment offers a third of the rate; the merged rows offer the whole.
    let target = |r: &RunResult| {
        r.intervals
            .iter()
            .filter(|row| row.key == "buyers.iteration")
            .filter_map(|row| row.target)
            .fold(0.0, f64::max)
    };
    assert_eq!(target(&merged), target(&whole));
    assert!((target(&merged) - 40.0).abs() < 1e-6, "{}", target(&merged));
    for f in ["junit.xml", "report.html", "intervals.csv"] {
        assert!(merged_dir.join(f).exists(), "{f}");
    }
    // Intervals line up on the shared clock: each merged log interval is the merged row that
    // ends where it ends, request for request, and the 3 s load spans about 3 of them.
    let intervals =
        stampede::report::hlog::read_intervals(&merged_dir.join("intervals.hlog")).unwrap();
    let ok_rows: Vec<_> = merged
        .intervals
        .iter()
        .filter(|r| r.key == "buyers.ok" && r.count > 0)
        .collect();
    assert!(
        (3..=5).contains(&ok_rows.len()),
        "{} rows for 3 s of 1 s intervals",
        ok_rows.len()
    );
    for i in intervals.iter().filter(|i| i.tag == "buyers.ok") {
        // The row of the interval that starts at `start_s` is the first to end after it (the
        // last interval runs to the moment the segments stopped).
        let row = ok_rows
            .iter()
            .find(|r| r.t > i.start_s + 1e-6)
            .unwrap_or_else(|| panic!("no row for the interval from {} s: {ok_rows:?}", i.start_s));
        assert_eq!(row.count, i.hist.len(), "the interval from {} s", i.start_s);
        assert!(
            (row.t - (i.start_s + i.len_s)).abs() < 0.01,
            "ends at {} vs {}",
            row.t,
            i.start_s + i.len_s
        );
    }
    let html = std::fs::read_to_string(merged_dir.join("report.html")).unwrap();
    assert!(
        html.contains("Merged from 3 segments"),
        "the page names the segments"
    );
}

#[test]
fn merge_refuses_a_set_that_is_not_one_whole_run() {
    let srv = start_server(ServerConfig::default());
    let d = dir();
    let s = ok_scenario(d.path(), &srv, "rate: 20/s, duration: 1s");
    let start_at = unix_in(Duration::from_secs(3));
    let segs = run_segments(&s, d.path(), 2, &start_at, &[]);
    // Started after the first set is done, so at its own start (a shared one would be over).
    let other = run_segments(
        &s,
        &d.path().join("other"),
        2,
        &unix_in(Duration::from_secs(3)),
        &["--rate", "30/s"],
    );
    let out = d.path().join("merged");
    let (s0, s1, o1) = (&segs[0].0, &segs[1].0, &other[1].0);

    let (code, _, err) = merge(&[s0], &out);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("segment 1/2 is missing"), "{err}");

    let (code, _, err) = merge(&[s0, s1, s1], &out);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("segment 1/2 is given 2 times"), "{err}");

    let (code, _, err) = merge(&[s0, o1], &out);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("a different scenario"), "{err}");
    assert!(
        !out.join("results.json").exists(),
        "nothing is written for a refused set"
    );

    let (code, _, err) = merge(&[s0, s1], &out);
    let r = stampede::report::read_json(&out.join("results.json")).unwrap();
    assert_exit(code, 0, &r, &err);
    assert_eq!(r.flows[0].planned, 20);
}

#[test]
fn a_segment_that_begins_late_keeps_the_shared_schedule_and_counts_what_it_missed() {
    let srv = start_server(ServerConfig::default());
    let d = dir();
    let s = ok_scenario(d.path(), &srv, "rate: 50/s, duration: 3s");
    // The shared start was 1.5 s ago.
    let past = unix_in(Duration::ZERO)
        .parse::<f64>()
        .map(|t| format!("{:.3}", t - 1.5))
        .unwrap();
    let segs = run_segments(&s, d.path(), 1, &past, &[]);
    let code = segs[0].1;
    let r = stampede::report::read_json(&segs[0].0.join("results.json")).unwrap();
    let f = flow(&r, "f");
    assert!(
        r.start_late_ms.unwrap() >= 1500.0,
        "{:?}, exit {code}",
        r.start_late_ms
    );
    assert_eq!(
        f.planned, 150,
        "the plan is not shifted: every arrival is planned"
    );
    assert!(
        f.missed_at_start >= 75,
        "the 75 arrivals due in the first 1.5 s were missed: {}",
        f.missed_at_start
    );
    assert!(f.dropped >= f.missed_at_start);
    assert_eq!(
        f.iterations_ok + f.iterations_failed + f.dropped + f.interrupted,
        150
    );
    assert_eq!(
        srv.seen.arrivals("/ok").len() as u64,
        f.iterations_ok + f.iterations_failed,
        "what was missed was never sent"
    );
    let late = self_check(&r, "late_start");
    assert!(
        !late.passed && late.detail.contains("missed"),
        "{}",
        late.detail
    );
    assert!(
        !late.detail.contains("(0 ms") && !late.detail.contains("  "),
        "{}",
        late.detail
    );
    assert!(
        f.dropped_cause.is_none(),
        "missed arrivals are not the target's drops: {:?}",
        f.dropped_cause
    );
    assert_eq!(
        code, 3,
        "missing arrivals is the generator's limit, not the target's"
    );
}

#[test]
fn segments_never_share_a_unique_feeder_row() {
    let srv = start_server(ServerConfig::default());
    let d = dir();
    let rows: String = (0..30).map(|i| format!("u{i:02}\n")).collect();
    write(d.path(), "users.csv", &format!("name\n{rows}"));
    let s = write_scenario(
        d.path(),
        &srv.url(),
        "data:\n  users: { csv: users.csv, pick: unique }\njourneys:\n  j: [ { name: me, get: '/user/{{ users.name }}' } ]\nflows:\n  f: { journey: j, vus: 9, per_vu_iterations: 2, duration: 10s }\n",
    );
    let paths = |srv: &TestServer| -> Vec<String> {
        let a = srv.seen.arrivals.lock().unwrap();
        let mut v: Vec<String> = a
            .iter()
            .flat_map(|(p, t)| std::iter::repeat_n(p.clone(), t.len()))
            .collect();
        v.sort();
        v
    };
    for i in 0..3 {
        let out = d.path().join(format!("seg-{i}"));
        let exit = run_cli(&[
            "run",
            s.to_str().unwrap(),
            "--segment",
            &format!("{i}/3"),
            "--out",
            out.to_str().unwrap(),
            "--quiet",
        ]);
        let r = stampede::report::read_json(&out.join("results.json")).unwrap();
        assert_exit(exit as i32, 0, &r, &format!("segment {i}"));
    }
    let split = paths(&srv);
    assert_eq!(split.len(), 18, "9 users, 2 iterations each");
    let users: BTreeSet<&String> = split.iter().collect();
    assert_eq!(users.len(), 9, "each user's row is its own: {split:?}");

    let whole_srv = start_server(ServerConfig::default());
    let (exit, r) = run_scenario_with(&s, &d.path().join("whole"), &["--target", &whole_srv.url()]);
    assert_exit(exit as i32, 0, &r, "the whole run");
    assert_eq!(
        paths(&whole_srv),
        split,
        "the segments used the rows one process uses"
    );
}

#[test]
fn validate_shows_a_segments_share() {
    let srv = start_server(ServerConfig::default());
    let d = dir();
    let s = ok_scenario(d.path(), &srv, "rate: 100/s, duration: 10s");
    let (code, out, err) = run_bin(&["validate", s.to_str().unwrap(), "--segment", "1/3"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("segment 1/3"), "{out}");
    assert!(
        out.contains("arrivals 2, 5, 8") && out.contains("333 of 1000 arrivals"),
        "{out}"
    );
    let (code, _, err) = run_bin(&["validate", s.to_str().unwrap(), "--segment", "3/3"]);
    assert_eq!(code, 2);
    assert!(err.contains("`2/3`"), "{err}");
}

#[test]
fn a_start_after_the_whole_load_is_refused() {
    let srv = start_server(ServerConfig::default());
    let d = dir();
    let s = ok_scenario(d.path(), &srv, "rate: 50/s, duration: 3s");
    let past = format!(
        "{:.3}",
        unix_in(Duration::ZERO).parse::<f64>().unwrap() - 600.0
    );
    let (code, _, err) = run_bin(&[
        "run",
        s.to_str().unwrap(),
        "--segment",
        "0/2",
        "--start-at",
        &past,
        "--out",
        d.path().join("o").to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--start-at"), "{err}");
    assert!(srv.seen.arrivals("/ok").is_empty());
}

#[test]
fn a_shared_iteration_budget_is_run_whole_with_fewer_users_than_segments() {
    let srv = start_server(ServerConfig::default());
    let d = dir();
    let s = ok_scenario(d.path(), &srv, "vus: 2, iterations: 50, duration: 20s");
    let start_at = unix_in(Duration::from_secs(3));
    let segs = run_segments(&s, d.path(), 3, &start_at, &[]);
    let dirs: Vec<&Path> = segs.iter().map(|(p, _)| p.as_path()).collect();
    assert_eq!(
        srv.seen.arrivals("/ok").len(),
        50,
        "the segment with no user must not hold iterations"
    );
    let out = d.path().join("merged");
    let (code, stdout, err) = merge(&dirs, &out);
    let r = stampede::report::read_json(&out.join("results.json")).unwrap();
    assert_exit(code, 0, &r, &format!("{stdout}{err}"));
    assert_eq!(flow(&r, "f").iterations_ok, 50);
    assert!(
        flow(&r, "f").model.contains("50"),
        "{}",
        flow(&r, "f").model
    );
}

#[test]
fn merge_waits_for_segments_that_have_not_started_and_never_overwrites_one() {
    let srv = start_server(ServerConfig::default());
    let d = dir();
    let s = ok_scenario(d.path(), &srv, "rate: 20/s, duration: 1s");
    let (seg0, seg1) = (d.path().join("seg-0"), d.path().join("seg-1"));
    let out = d.path().join("merged");
    // The merge starts first, as a Kubernetes merge Job does: the folders do not exist yet.
    let waiting = std::process::Command::new(bin())
        .args(["merge", seg0.to_str().unwrap(), seg1.to_str().unwrap()])
        .args(["--out", out.to_str().unwrap(), "--wait", "120s", "--quiet"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start_at = unix_in(Duration::from_secs(3));
    run_segments(&s, d.path(), 2, &start_at, &[]);
    let o = waiting.wait_with_output().unwrap();
    let r = stampede::report::read_json(&out.join("results.json")).unwrap();
    assert_exit(
        o.status.code().unwrap_or(-1),
        0,
        &r,
        &String::from_utf8_lossy(&o.stderr),
    );
    assert_eq!(r.flows[0].planned, 20);
    let (code, _, err) = merge(&[&seg0, &seg1], &seg0);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--out"), "{err}");
    let (code, _, err) = run_bin(&[
        "merge",
        seg0.to_str().unwrap(),
        d.path().join("never").to_str().unwrap(),
        "--out",
        d.path().join("m2").to_str().unwrap(),
        "--wait",
        "1s",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("did not finish"), "{err}");
}

#[test]
fn a_segment_whose_setup_failed_fails_the_merged_run() {
    let srv = start_server(ServerConfig::default());
    let d = dir();
    // No thresholds: before, a merge of segments that sent nothing passed on no data.
    let s = write_scenario(
        d.path(),
        &srv.url(),
        "setup: prepare\njourneys:\n  prepare: [ { name: seed, get: '/status?code=500' } ]\n  j: [ { name: ok, get: /ok } ]\nflows:\n  f: { journey: j, rate: 20/s, duration: 1s }\n",
    );
    let start_at = unix_in(Duration::from_secs(3));
    let segs = run_segments(&s, d.path(), 2, &start_at, &[]);
    assert!(srv.seen.arrivals("/ok").is_empty(), "no load without setup");
    let dirs: Vec<&Path> = segs.iter().map(|(p, _)| p.as_path()).collect();
    let out = d.path().join("merged");
    let (code, stdout, err) = merge(&dirs, &out);
    let r = stampede::report::read_json(&out.join("results.json")).unwrap();
    assert_exit(code, 1, &r, &format!("{stdout}{err}"));
    assert!(
        r.thresholds
            .iter()
            .any(|v| v.pattern == "setup" && !v.passed && v.key == "segment 1"),
        "{:?}",
        r.thresholds
    );
}

#[test]
fn a_late_segment_with_closed_users_is_flagged() {
    let srv = start_server(ServerConfig::default());
    let d = dir();
    let s = ok_scenario(d.path(), &srv, "vus: 2, pace: 100ms, duration: 4s");
    let past = format!(
        "{:.3}",
        unix_in(Duration::ZERO).parse::<f64>().unwrap() - 1.5
    );
    let segs = run_segments(&s, d.path(), 2, &past, &[]);
    let r = stampede::report::read_json(&segs[1].0.join("results.json")).unwrap();
    let late = self_check(&r, "late_start");
    assert!(!late.passed, "{}", late.detail);
    assert_eq!(segs[1].1, 3, "a late segment is the generator's limit");
}

#[test]
fn a_segment_judges_absolute_limits_on_its_share() {
    let srv = start_server(ServerConfig::default());
    let d = dir();
    let s = write_scenario(
        d.path(),
        &srv.url(),
        "journeys:\n  j: [ { name: ok, get: /ok } ]\nflows:\n  f: { journey: j, rate: 60/s, duration: 2s }\nthresholds:\n  f: [ \"rate > 50/s\" ]\n",
    );
    let out = d.path().join("seg");
    let (exit, r) = run_scenario_with(&s, &out, &["--segment", "1/2"]);
    let v = &r.thresholds[0];
    assert_eq!(
        v.threshold, "rate > 50/s",
        "the text as written, for the merge"
    );
    assert!(
        v.passed,
        "30/s is this segment's share of 60/s, above its 25/s share of the limit: {v:?}"
    );
    assert_exit(exit as i32, 0, &r, "segment 1/2");
}
