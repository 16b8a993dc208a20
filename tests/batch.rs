//! Batch versus live: a live step's latency split by whether background work was in flight.
//!
//! Whether a given shift counts as interference is the verdict's own unit tests' business
//! (`analysis::load`). Here the split is driven end to end on a machine that may be busy with
//! other tests: a lock held 30 ms slows its readers by milliseconds, while the bystanders' shift
//! is CPU noise that a saturated 2-core machine can push past the verdict's 1 ms floor, so the
//! bystanders are held to a comparison with the readers rather than to the verdict.

use crate::util::*;

#[test]
fn background_work_that_shares_a_lock_shows_as_interference() {
    let srv = start_server(ServerConfig::default());
    let d = dir();
    let s = write_scenario(
        d.path(),
        &srv.url(),
        r#"
journeys:
  read: [ { name: read, get: /lock-read } ]
  free: [ { name: ok, get: /ok } ]
  batch:
    - loop: { count: 6, steps: [ { name: write, get: "/lock-write?ms=30" } ] }
flows:
  readers: { journey: read, rate: 50/s, duration: 6s }
  bystanders: { journey: free, rate: 50/s, duration: 6s }
  nightly: { journey: batch, kind: background, rate: 1/s, duration: 6s }
"#,
    );
    let out = d.path().join("out");
    let (code, stdout, _) = run_bin(&["run", s.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    let r = stampede::report::read_json(&out.join("results.json")).unwrap();
    assert_exit(code, 0, &r, &stdout);
    assert!(stdout.contains("batch interference: read p50"), "{stdout}");
    let read = step(&r, "readers.read").batch.as_ref().unwrap();
    assert!(read.interferes && read.p_value < 1e-6, "{read:?}");
    assert!(
        read.during.count > 20 && read.without.count > 20,
        "both sides measured: {read:?}"
    );
    let ok = step(&r, "bystanders.ok").batch.as_ref().unwrap();
    let shift = |b: &stampede::model::BatchSplit| b.during.p50_us as i64 - b.without.p50_us as i64;
    assert!(
        shift(ok) * 4 < shift(read),
        "the lock's readers are slowed far more than the bystanders: {read:?} against {ok:?}"
    );
    assert_eq!(
        stdout.contains("batch interference: ok"),
        ok.interferes,
        "the summary names a step exactly when its verdict says so: {stdout}"
    );
    assert!(
        step(&r, "nightly.write").batch.is_none(),
        "background steps are not split"
    );
    let page = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(
        page.contains("Beside background work") && page.contains(">interference<"),
        "the report shows it"
    );
    assert!(page.contains("<h2>Self-checks</h2>"));
}
