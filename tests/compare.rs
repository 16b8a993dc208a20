//! `stampede compare`: same load → no change; a slowed target → regressed, and
//! `--fail-if` turns that into exit 1.

use crate::util::*;

fn run_at(srv: &TestServer, ms: u32, dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    let s = write(
        dir,
        &format!("{name}.yaml"),
        &format!(
            "target: {}\njourneys:\n  j: [ {{ name: slow, get: '/slow?ms={ms}' }} ]\nflows:\n  f: {{ journey: j, rate: 50/s, duration: 8s }}\n",
            srv.url()
        ),
    );
    let out = dir.join(name);
    let (code, _, err) = run_bin(&[
        "run",
        s.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
        "--interval",
        "500ms",
    ]);
    let r = stampede::report::read_json(&out.join("results.json")).unwrap();
    assert_exit(code, 0, &r, &err);
    out.join("results.json")
}

#[test]
fn compare_tells_noise_from_a_regression() {
    let srv = start_server(ServerConfig::default());
    let d = dir();
    // The two same-load runs go side by side, so that whatever else loads the machine (other
    // tests, on a 2-core CI runner) weighs on both alike; one after the other, a busy spell in
    // one of them is a real difference in its tail that compare is right to report.
    let (base, same) = std::thread::scope(|s| {
        let a = s.spawn(|| run_at(&srv, 50, d.path(), "base"));
        let b = run_at(&srv, 50, d.path(), "same");
        (a.join().unwrap(), b)
    });
    let slow = run_at(&srv, 100, d.path(), "slow");

    let (code, out, err) = run_bin(&[
        "compare",
        base.to_str().unwrap(),
        same.to_str().unwrap(),
        "--fail-if",
        "p99 > +10%",
    ]);
    // Same load: never a regression. "Undecided" is allowed, for a busy CI runner can spread a
    // tail past the margin; identical results deciding "no change" is asserted in the test below.
    assert!(code == 0 || code == 4, "{out}{err}");
    assert!(!out.contains("FAIL:"), "same load: {out}");
    for line in out
        .lines()
        .filter(|l| l.starts_with("f.slow ") && (l.contains(" p50 ") || l.contains(" p99 ")))
    {
        assert!(
            line.ends_with("no change") || line.ends_with("undecided"),
            "same load: {line}\n{out}"
        );
    }

    let (code, out, _) = run_bin(&[
        "compare",
        base.to_str().unwrap(),
        slow.to_str().unwrap(),
        "--fail-if",
        "p99 > +10%",
        "--fail-if",
        "errors > +0.5pp",
    ]);
    assert_eq!(code, 1, "{out}");
    let p99 = out
        .lines()
        .find(|l| l.starts_with("f.slow ") && l.contains(" p99 "))
        .unwrap();
    assert!(p99.ends_with("regressed"), "{p99}");
    assert!(out.contains("FAIL: f.slow p99 +"), "{out}");
    assert!(
        !out.contains("FAIL: f.slow errors"),
        "errors did not change: {out}"
    );

    // The reverse direction is an improvement and does not fail the bound.
    let (code, out, _) = run_bin(&[
        "compare",
        slow.to_str().unwrap(),
        base.to_str().unwrap(),
        "--fail-if",
        "p99 > +10%",
        "--json",
    ]);
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let row = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == "f.slow" && r["measure"] == "p99")
        .unwrap();
    assert_eq!(row["change"], "improved");
}

/// A 5-second run at 200/s against `/slow?ms={ms}`, with the default 1 s interval.
fn five_seconds(
    srv: &TestServer,
    ms: u64,
    dir: &std::path::Path,
    name: &str,
) -> std::path::PathBuf {
    let s = write(
        dir,
        &format!("{name}.yaml"),
        &format!(
            "target: {}\njourneys:\n  j: [ {{ name: a, get: '/slow?ms={ms}' }} ]\nflows:\n  f: {{ journey: j, rate: 200/s, duration: 5s }}\n",
            srv.url()
        ),
    );
    let out = dir.join(name);
    let (code, _, err) = run_bin(&[
        "run",
        s.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    let r = stampede::report::read_json(&out.join("results.json")).unwrap();
    assert_exit(code, 0, &r, &err);
    out.join("results.json")
}

#[test]
fn short_runs_decide_a_gross_regression_and_pass_the_same_load() {
    // The case: 5 intervals a side and 30 ms more at the target. The rank test could
    // never reach significance with 5 intervals; the gate exited 0. The server's own 50 ms keeps
    // the same-load pair's p99 within a few percent of each other even on a loaded machine (a
    // sub-millisecond p99 moves by half with the machine's load, which is rightly undecided).
    let srv = start_server(ServerConfig::default());
    let d = dir();
    let (base, same) = std::thread::scope(|s| {
        let a = s.spawn(|| five_seconds(&srv, 50, d.path(), "base"));
        (a.join().unwrap(), five_seconds(&srv, 50, d.path(), "same"))
    });
    let slow = five_seconds(&srv, 80, d.path(), "slow");
    let gate = |b: &std::path::Path, n: &std::path::Path| {
        run_bin(&[
            "compare",
            b.to_str().unwrap(),
            n.to_str().unwrap(),
            "--fail-if",
            "p99 > +10%",
        ])
    };
    let (code, out, _) = gate(&base, &slow);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAIL: f.a p99"), "{out}");
    // The same data has no change at all: that must pass, whatever the machine did.
    let (code, out, _) = gate(&base, &base);
    assert_eq!(code, 0, "identical runs: {out}");
    assert!(!out.contains("UNDECIDED"), "identical runs: {out}");
    // An independent run of the same load differs only by the machine's noise. On a busy 2-core
    // CI runner that noise can reach the margin, and then "undecided" is the honest answer; what
    // the gate must never do is call it a regression.
    let (code, out, _) = gate(&base, &same);
    assert!(code == 0 || code == 4, "same load: exit {code}: {out}");
    assert!(!out.contains("FAIL:"), "same load: {out}");
}

#[test]
fn a_bound_too_few_intervals_can_decide_exits_4_unless_told_otherwise() {
    let srv = start_server(ServerConfig::default());
    let d = dir();
    let run = |name: &str| {
        let s = write(
            d.path(),
            &format!("{name}.yaml"),
            &format!(
                "target: {}\njourneys:\n  j: [ {{ name: a, get: /ok }} ]\nflows:\n  f: {{ journey: j, rate: 20/s, duration: 1500ms }}\n",
                srv.url()
            ),
        );
        let out = d.path().join(name);
        run_bin(&[
            "run",
            s.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--quiet",
        ]);
        out.join("results.json")
    };
    let (a, b) = (run("a"), run("b"));
    let args = |extra: &[&'static str]| {
        let mut v = vec![
            "compare".to_string(),
            a.display().to_string(),
            b.display().to_string(),
        ];
        v.extend(["--fail-if".to_string(), "p99 > +10%".to_string()]);
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let call = |v: Vec<String>| {
        let refs: Vec<&str> = v.iter().map(String::as_str).collect();
        run_bin(&refs)
    };
    let (code, out, _) = call(args(&[]));
    assert_eq!(code, 4, "{out}");
    assert!(
        out.contains("UNDECIDED: f.a p99") && out.contains("needed a side"),
        "{out}"
    );
    assert_eq!(call(args(&["--undecided", "fail"])).0, 1);
    assert_eq!(call(args(&["--undecided", "pass"])).0, 0);
}
