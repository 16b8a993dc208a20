//! Malformed scenarios: exit code 2, `file:line:col`, and the words of the message.
//!
//! Each file in `tests/fixtures/invalid/` starts with `# expect: LINE:COL | words | …`: the first
//! diagnostic's position and text that must appear in stderr.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::util::*;

/// `(file, position, words)`: `# expect: 3:5 | …` is in the fixture itself; `# expect: @x.rhai 2:9
/// | …` is in a file beside it (a script or data file the scenario names).
fn expectation(text: &str) -> (Option<String>, String, Vec<String>) {
    let first = text.lines().next().unwrap();
    let spec = first
        .strip_prefix("# expect: ")
        .expect("fixture starts with `# expect:`");
    let mut parts = spec.split(" | ");
    let head = parts.next().unwrap().trim();
    let (file, pos) = match head.strip_prefix('@') {
        Some(rest) => {
            let (f, p) = rest.split_once(' ').unwrap();
            (Some(f.to_string()), p.to_string())
        }
        None => (None, head.to_string()),
    };
    (file, pos, parts.map(|w| w.trim().to_string()).collect())
}

#[test]
fn every_invalid_fixture_fails_with_position_and_message() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/invalid");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 50,
        "at least 50 fixtures, found {}",
        files.len()
    );
    let mut failures = Vec::new();
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        let (file, pos, words) = expectation(&text);
        let started = Instant::now();
        let (code, _out, err) = run_bin(&["validate", f.to_str().unwrap()]);
        let took = started.elapsed();
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let located = match &file {
            Some(other) => format!("{}:{pos}: error:", dir.join(other).display()),
            None => format!("{}:{pos}: error:", f.display()),
        };
        if code != 2 {
            failures.push(format!("{name}: exit {code}, expected 2\n{err}"));
        } else if !err.contains(&located) {
            failures.push(format!("{name}: expected `{located}` in\n{err}"));
        } else if let Some(w) = words.iter().find(|w| !err.contains(w.as_str())) {
            failures.push(format!("{name}: expected `{w}` in\n{err}"));
        } else if took > Duration::from_secs(20) {
            // Generous for a debug binary on a busy machine; what it guards against (a parser
            // that backtracks or loops) takes minutes.
            failures.push(format!("{name}: took {took:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn validate_reports_every_problem_not_just_the_first() {
    let f = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/invalid/many_errors.yaml");
    let (code, _, err) = run_bin(&["validate", f.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert_eq!(err.matches(": error: ").count(), 3, "{err}");
}

#[test]
fn a_valid_scenario_prints_its_plan() {
    let d = dir();
    let s = write(
        d.path(),
        "ok.yaml",
        "target: http://127.0.0.1:9\njourneys:\n  j: [ { name: a, get: /x } ]\nflows:\n  f: { journey: j, rate: [ { to: 50/s, over: 10s }, { hold: 20s } ], max_vus: 30 }\n  c: { journey: j, vus: 4, pace: 1s, duration: 10s }\n",
    );
    let (code, out, err) = run_bin(&["validate", s.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("open, uniform arrivals, peak 50.00/s over 30s, max 30 VUs, ~1250 iterations"),
        "{out}"
    );
    assert!(
        out.contains("closed, peak 4 VUs over 10s, paced every 1s"),
        "{out}"
    );
}

#[test]
fn a_missing_scenario_file_is_invalid_input() {
    let (code, _, err) = run_bin(&["validate", "/nonexistent/s.yaml"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("cannot read scenario `/nonexistent/s.yaml`"),
        "{err}"
    );
}

#[test]
fn a_50_mb_file_is_refused_at_once() {
    let d = dir();
    let big = d.path().join("big.yaml");
    let line = format!("# {}\n", "x".repeat(1022));
    std::fs::write(&big, line.repeat(50 * 1024)).unwrap();
    let started = std::time::Instant::now();
    let (code, _, err) = run_bin(&["validate", big.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        err.contains(":1:1: error: the file is ") && err.contains("limited to"),
        "{err}"
    );
    // Refused at the size check, before parsing: a parse of 50 MB in a debug build takes far
    // longer than this generous bound.
    assert!(started.elapsed() < std::time::Duration::from_secs(15));
}

#[test]
fn a_plan_needing_more_sockets_than_allowed_is_refused_before_traffic() {
    let d = dir();
    // Two origins per virtual user, ten million virtual users: far past any open-file limit.
    let s = write(
        d.path(),
        "big.yaml",
        "targets: { a: http://127.0.0.1:9, b: http://127.0.0.1:10 }\njourneys:\n  j: [ { name: a, get: /x, target: a }, { name: b, get: /y, target: b } ]\nflows:\n  f: { journey: j, rate: 10/s, duration: 1s, max_vus: 10000000 }\n",
    );
    for cmd in ["validate", "run"] {
        let (code, _, err) = run_bin(&[cmd, s.to_str().unwrap()]);
        assert_eq!(code, 2, "{cmd}: {err}");
        assert!(
            err.contains("can hold 20000000 connections open at once"),
            "{err}"
        );
    }
}

#[test]
fn a_jsonpath_that_crashes_the_parser_is_an_invalid_path() {
    // Found by fuzzing: serde_json_path 0.7 panics on this path. It must be a diagnostic.
    let crash = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fuzz/jsonpath-parser-panic"),
    )
    .unwrap();
    let text = String::from_utf8_lossy(&crash);
    let path = text.split('\n').next().unwrap();
    let yaml = format!(
        "target: http://127.0.0.1:9\njourneys:\n  j: [ {{ name: a, get: /x, extract: {{ v: {} }} }} ]\nflows:\n  f: {{ journey: j, rate: 1/s, duration: 1s }}\n",
        serde_json::to_string(path).unwrap()
    );
    let d = dir();
    let s = write(d.path(), "crash.yaml", &yaml);
    let (code, _, err) = run_bin(&["validate", s.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("invalid JSONPath"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn a_jsonpath_that_stalls_the_parser_is_refused_quickly() {
    // Found by fuzzing: nested filters make serde_json_path's parser backtrack for seconds.
    let slow = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fuzz/jsonpath-parser-slow"),
    )
    .unwrap();
    let text = String::from_utf8_lossy(&slow);
    let path = text.split('\n').next().unwrap();
    let yaml = format!(
        "target: http://127.0.0.1:9\njourneys:\n  j: [ {{ name: a, get: /x, extract: {{ v: {} }} }} ]\nflows:\n  f: {{ journey: j, rate: 1/s, duration: 1s }}\n",
        serde_json::to_string(path).unwrap()
    );
    let d = dir();
    let s = write(d.path(), "slow.yaml", &yaml);
    let started = Instant::now();
    let (code, _, err) = run_bin(&["validate", s.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("invalid JSONPath") && err.contains("too complex"),
        "{err}"
    );
    // The complexity guard answers at once; the parser it avoids runs for minutes.
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_misspelled_section_does_not_lose_the_target() {
    // Reading around an unknown key keeps the rest of the file: the target is there, so no error
    // may claim it is missing.
    let f =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/invalid/misspelled_flows.yaml");
    let (code, _, err) = run_bin(&["validate", f.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(!err.contains("no `target`"), "{err}");
}
