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
    let s = write(
        d.path(),
        "s.yaml",
        &format!(
            "target: {}\njourneys:\n  j:\n    - {{ name: ok, get: /ok }}\nflows:\n  f: {{ journey: j, rate: 50/s, duration: 60s }}\n",
            srv.url()
        ),
    );
    let mut child = std::process::Command::new(bin())
        .args([
            "run",
            s.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--quiet",
        ])
        .spawn()
        .unwrap();
    // Wait (bounded) until the run has written at least two intervals.
    let hlog = out.join("intervals.hlog");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let lines = std::fs::read_to_string(&hlog)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("Tag="))
            .count();
        if lines >= 4 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the run never wrote its interval log"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
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
