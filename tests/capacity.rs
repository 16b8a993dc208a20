//! `stampede capacity`: the knee of a pool of known capacity, an SLO broken as written, a starved
//! generator, and capacity.json against its schema.

use std::time::Duration;

use crate::util::*;

fn capacity(scenario: &std::path::Path, out: &std::path::Path, extra: &[&str]) -> (i32, String) {
    let mut args = vec![
        "capacity",
        scenario.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--no-progress",
        "--interval",
        "500ms",
        "--settle",
        "200ms",
    ];
    args.extend_from_slice(extra);
    let (code, stdout, stderr) = run_bin(&args);
    (code, format!("{stdout}\n{stderr}"))
}

/// Runs a search up to three times until the generator could be trusted at every step: on a busy
/// 2-core machine running the rest of the suite, a step may rightly be the generator's limit
/// (exit 3), which says nothing about the search. Panics when no attempt was trusted.
fn trusted_capacity(
    scenario: &std::path::Path,
    extra: &[&str],
) -> (i32, String, std::path::PathBuf) {
    let mut texts = Vec::new();
    for attempt in 1..=3 {
        let out = scenario.parent().unwrap().join(format!("out-{attempt}"));
        let (code, text) = capacity(scenario, &out, extra);
        if code != 3 {
            return (code, text, out);
        }
        texts.push(text);
    }
    panic!(
        "every attempt was the generator's limit: {}",
        texts.join("\n----\n")
    );
}

/// The two tests whose figures depend on the CPU (a knee within 5%, a starved generator with a
/// busy loop pinned beside it) never run at the same time.
static CPU: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn read(out: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("capacity.json")).unwrap()).unwrap()
}

/// Four slots held 20 ms each serve about 200 requests a second. Uniform arrivals below that
/// wait for nothing; above it the queue grows for the whole step, so p99 breaks the 60 ms SLO
/// once the rate passes c·(1 + (60 ms − hold) ÷ 0.99·(warm-up + step)): barely above c. The
/// search must bracket that rate (from the hold times the server measured) to its resolution,
/// give or take one more resolution for a busy test machine's timer jitter.
#[test]
fn the_knee_of_a_pool_is_where_queueing_theory_puts_it() {
    let _cpu = CPU.lock().unwrap_or_else(|p| p.into_inner());
    let srv = start_server(ServerConfig {
        pool: Some(4),
        ..Default::default()
    });
    let d = dir();
    let s = write_scenario(
        d.path(),
        &srv.url(),
        "defaults: { timeout: 2s, graceful_stop: 2s }\njourneys:\n  j: [ { name: q, get: '/pool?ms=20' } ]\nflows:\n  f: { journey: j, rate: 25/s, duration: 10s, max_vus: 60 }\n",
    );
    let (code, text, out) = trusted_capacity(
        &s,
        &[
            "--slo",
            "p99 < 60ms",
            "--step-duration",
            "2s",
            "--warmup",
            "1s",
            "--max-factor",
            "32",
        ],
    );
    assert_eq!(code, 0, "{text}");
    let c = read(&out);
    assert_eq!(c["outcome"], "found", "{text}");
    let held = srv.seen.held.lock().unwrap().clone();
    let hold = held.iter().map(Duration::as_secs_f64).sum::<f64>() / held.len() as f64;
    let theory = 4.0 / hold * (1.0 + (0.060 - hold) / (0.99 * 3.0));
    let pass = c["knee"]["flows"]["f"]["rate_per_s"].as_f64().unwrap();
    let fail = 25.0 * c["first_failure"].as_f64().unwrap();
    assert!(fail / pass <= 1.051, "bracket {pass}..{fail}: {text}");
    assert!(
        pass <= theory * 1.05 && fail >= theory / 1.05,
        "knee {pass}..{fail}/s, theory {theory:.1}/s (mean hold {:.2} ms): {text}",
        hold * 1000.0
    );
    assert_eq!(c["first_break"]["key"], "f.q", "{text}");
    // What grew at the first failure is the wait for a slot, not the work in it.
    assert!(text.contains("`pool-wait` grew most"), "{text}");
    assert!(text.contains("db stayed flat"), "{text}");
    for step in c["steps"].as_array().unwrap() {
        let i = step["index"].as_u64().unwrap();
        assert!(out.join(format!("steps/{i:02}/results.json")).exists());
    }
    assert!(
        std::fs::read_to_string(out.join("capacity.html"))
            .unwrap()
            .contains("<svg")
    );
}

#[test]
fn an_slo_broken_as_written_says_so_and_exits_1() {
    let srv = start_server(ServerConfig::default());
    let d = dir();
    let s = write_scenario(
        d.path(),
        &srv.url(),
        "journeys:\n  j: [ { name: slow, get: '/slow?ms=20' } ]\nflows:\n  f: { journey: j, vus: 2, duration: 10s }\n",
    );
    let out = d.path().join("out");
    let (code, text) = capacity(
        &s,
        &out,
        &[
            "--slo",
            "f.slow: p50 < 10ms",
            "--step-duration",
            "1s",
            "--warmup",
            "500ms",
            "--max-factor",
            "2",
        ],
    );
    assert_eq!(code, 1, "{text}");
    let c = read(&out);
    assert_eq!(c["outcome"], "broken_as_written");
    assert!(c["knee"].is_null());
    assert!(text.contains("already breaks its SLO"), "{text}");
    // Two users, then one; a closed flow never goes below one user.
    let vus: Vec<u64> = c["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["flows"]["f"]["offered"]["vus"].as_u64().unwrap())
        .collect();
    assert_eq!(vus, [2, 1], "{text}");
}

#[test]
fn an_slo_that_matches_no_key_is_refused() {
    let d = dir();
    let s = write_scenario(
        d.path(),
        "http://127.0.0.1:9",
        "journeys:\n  j: [ { name: a, get: /x } ]\nflows:\n  f: { journey: j, vus: 1, duration: 1s }\n",
    );
    let (code, _, stderr) =
        run_bin(&["capacity", s.to_str().unwrap(), "--slo", "f.typo: p99 < 1s"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("matches no key") && stderr.contains("f.a"),
        "{stderr}"
    );
}

/// The generator on one CPU with a busy loop beside it, its users never waiting: the first step
/// is the generator's limit, not the target's, so the search stops there and says so (exit 3).
#[test]
fn a_starved_generator_stops_the_search_as_untrustworthy() {
    let _cpu = CPU.lock().unwrap_or_else(|p| p.into_inner());
    let d = dir();
    let s = write_scenario(
        d.path(),
        "http://127.0.0.1:9",
        "defaults: { on_error: continue }\njourneys:\n  j:\n    - script: 'let a = 0; for i in 0..300 { a += i; }'\n    - { name: a, get: /x, timeout: 100ms }\nflows:\n  f: { journey: j, vus: 4, duration: 10s }\n",
    );
    let out = d.path().join("out");
    let mut hog = std::process::Command::new("taskset")
        .args(["-c", "0", "sh", "-c", "while :; do :; done"])
        .spawn()
        .unwrap();
    let status = std::process::Command::new("taskset")
        .args(["-c", "0", bin(), "capacity"])
        .arg(&s)
        .args([
            "--slo",
            "f.a: p99 < 10s",
            "--step-duration",
            "2s",
            "--warmup",
            "0s",
            "--out",
        ])
        .arg(&out)
        .arg("--quiet")
        .status();
    let _ = hog.kill();
    let _ = hog.wait();
    assert_eq!(status.unwrap().code(), Some(3));
    let c = read(&out);
    assert_eq!(c["outcome"], "generator_limited");
    assert_eq!(c["steps"].as_array().unwrap().len(), 1);
    assert_eq!(c["steps"][0]["verdict"], "untrustworthy");
    assert!(
        c["summary"]
            .as_str()
            .unwrap()
            .contains("beyond what this machine can offer"),
        "{}",
        c["summary"]
    );
}

#[test]
fn capacity_json_follows_its_schema() {
    let srv = start_server(ServerConfig::default());
    let d = dir();
    let s = write_scenario(
        d.path(),
        &srv.url(),
        "journeys:\n  j: [ { name: a, get: /ok } ]\nflows:\n  o: { journey: j, rate: 5/s, duration: 5s }\n  c: { journey: j, vus: 1, pace: 100ms, duration: 5s }\n",
    );
    let (code, text, out) = trusted_capacity(
        &s,
        &[
            "--slo",
            "p99 < 5s",
            "--slo",
            "o: errors < 50%",
            "--step-duration",
            "1s",
            "--warmup",
            "0s",
            "--max-factor",
            "8",
        ],
    );
    assert_eq!(code, 0, "{text}");
    let c = read(&out);
    assert_eq!(c["outcome"], "beyond_max_factor", "{text}");
    // 1, 2, 4 and 8 users: four levels of the closed flow, enough to fit the scaling law.
    assert_eq!(c["usl"][0]["flow"], "c", "{text}");
    assert_eq!(c["usl"][0]["points"], 4, "{text}");
    let (_, schema, _) = run_bin(&["schema", "--capacity"]);
    let schema_path = write(d.path(), "schema.json", &schema);
    let ok = std::process::Command::new("python3")
        .args([
            "-c",
            "import json,sys,jsonschema; jsonschema.validate(json.load(open(sys.argv[1])), json.load(open(sys.argv[2])))",
            out.join("capacity.json").to_str().unwrap(),
            schema_path.to_str().unwrap(),
        ])
        .status()
        .expect("python3 with jsonschema (.ci/run installs it)");
    assert!(ok.success(), "capacity.json does not follow its schema");
}

/// Ctrl-C between two steps ends the search there and still writes capacity.json (exit 130).
#[test]
fn ctrl_c_between_steps_keeps_what_was_found() {
    use std::io::BufRead;
    let srv = start_server(ServerConfig::default());
    let d = dir();
    let s = write_scenario(
        d.path(),
        &srv.url(),
        "journeys:\n  j: [ { name: a, get: /ok } ]\nflows:\n  f: { journey: j, rate: 20/s, duration: 5s }\n",
    );
    let out = d.path().join("out");
    let mut child = std::process::Command::new(bin())
        .arg("capacity")
        .arg(&s)
        .args([
            "--slo",
            "p99 < 5s",
            "--step-duration",
            "1s",
            "--warmup",
            "0s",
            "--settle",
            "60s",
            "--no-progress",
            "--out",
        ])
        .arg(&out)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let settling = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|l| l.starts_with("capacity: settling"));
    assert!(settling, "the search never paused between steps");
    signal(&child, "INT");
    assert_eq!(child.wait().unwrap().code(), Some(130));
    let c = read(&out);
    assert_eq!(c["outcome"], "interrupted");
    assert_eq!(c["steps"].as_array().unwrap().len(), 1);
    assert_eq!(c["knee"]["factor"], 1.0);
}
