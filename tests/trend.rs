//! Creeping latency: flagged when latency rises at flat throughput, not otherwise; and a trend
//! threshold gates on it.

use crate::util::*;

/// The flat flow waits 20 ms per request. A test machine growing busier over the 10 s did once add
/// a significant ~1.5% to it (+22%/min): the creep verdict asks for a 5% rise over the run, which
/// the creep (hundreds of %/min) passes and that drift does not. The flat key's trend threshold
/// threshold allows 60%/min (10% over this run): a gate for a ten-second run has to allow what such
/// a machine does in ten seconds, and the creep's threshold (20%/min) still fails.
#[test]
fn creeping_latency_is_flagged_and_flat_latency_is_not() {
    let creep = start_server(ServerConfig::default());
    let flat = start_server(ServerConfig::default());
    let d = dir();
    let s = write(
        d.path(),
        "s.yaml",
        &format!(
            "targets: {{ creep: \"{}\", flat: \"{}\" }}\njourneys:\n  c: [ {{ name: creep, get: /creep, target: creep }} ]\n  f: [ {{ name: steady, get: '/slow?ms=20', target: flat }} ]\nflows:\n  c: {{ journey: c, rate: 40/s, duration: 10s }}\n  f: {{ journey: f, rate: 40/s, duration: 10s }}\nthresholds:\n  c.creep: [ \"p95 trend < 20%/1m\" ]\n  f.steady: [ \"p95 trend < 60%/1m\" ]\n",
            creep.url(),
            flat.url()
        ),
    );
    let out = d.path().join("out");
    let (code, stdout, _) = run_bin(&[
        "run",
        s.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--interval",
        "250ms",
    ]);
    let r = stampede::report::read_json(&out.join("results.json")).unwrap();
    assert_exit(code, 1, &r, "the creeping key fails its trend threshold");
    assert!(
        stdout.contains("creeping latency: c.creep: p95 rising"),
        "{stdout}"
    );
    assert!(!stdout.contains("creeping latency: f.steady"), "{stdout}");
    assert!(stdout.contains("FAIL  c.creep"), "{stdout}");
    assert!(stdout.contains("pass  f.steady"), "{stdout}");
    let t = r.trends.iter().find(|t| t.key == "c.creep").unwrap();
    assert!(t.creeping && t.p95_per_min[1] > 0.5, "{t:?}");
    let t = r.trends.iter().find(|t| t.key == "f.steady").unwrap();
    assert!(!t.creeping, "{t:?}");
}

#[test]
fn latency_a_ramp_causes_is_not_a_creep() {
    // A steady background reader shares a lock with live writers that ramp from 0 to 90/s (each holding it 10 ms): the
    // reader's latency rises with the ramp while its own rate stays flat. The load on the system
    // is not flat, so this is no creep (it was flagged when flatness was judged on the key's
    // own throughput).
    let srv = start_server(ServerConfig::default());
    let d = dir();
    let s = write_scenario(
        d.path(),
        &srv.url(),
        "journeys:\n  r: [ { name: read, get: /lock-read } ]\n  w: [ { name: write, get: '/lock-write?ms=10' } ]\nflows:\n  reader: { journey: r, kind: background, rate: 40/s, duration: 8s }\n  writers: { journey: w, rate: [ { to: 90/s, over: 8s } ], max_vus: 400 }\n",
    );
    let out = d.path().join("out");
    let _ = run_bin(&[
        "run",
        s.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
        "--interval",
        "500ms",
    ]);
    let r = stampede::report::read_json(&out.join("results.json")).unwrap();
    let t = r.trends.iter().find(|t| t.key == "reader.read").unwrap();
    assert!(
        t.p95_per_min[1] > 0.01,
        "the reader's latency did rise: {t:?}"
    );
    assert!(t.load_per_min[1] > 0.02, "the load ramped: {t:?}");
    assert!(!t.creeping, "{}", t.verdict);
}
