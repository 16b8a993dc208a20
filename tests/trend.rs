//! Creeping latency: flagged when latency rises at flat throughput, not otherwise; and a trend
//! threshold gates on it.

use crate::util::*;

/// The flat flow waits 20 ms per request, so the scheduling noise of a busy test machine (a
/// millisecond or two) is small beside it and cannot pass for a trend. The threshold (20%/min) is
/// far below the creep's rise (hundreds of %/min) and far above what a machine's load building up
/// over 10 s can add to a 20 ms median.
#[test]
fn creeping_latency_is_flagged_and_flat_latency_is_not() {
    let creep = start_server(ServerConfig::default());
    let flat = start_server(ServerConfig::default());
    let d = dir();
    let s = write(
        d.path(),
        "s.yaml",
        &format!(
            "targets: {{ creep: \"{}\", flat: \"{}\" }}\njourneys:\n  c: [ {{ name: creep, get: /creep, target: creep }} ]\n  f: [ {{ name: steady, get: '/slow?ms=20', target: flat }} ]\nflows:\n  c: {{ journey: c, rate: 40/s, duration: 10s }}\n  f: {{ journey: f, rate: 40/s, duration: 10s }}\nthresholds:\n  c.creep: [ \"p95 trend < 20%/1m\" ]\n  f.steady: [ \"p95 trend < 20%/1m\" ]\n",
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
