//! report.html in a real browser, and at the size of a long, wide run.

use std::collections::BTreeMap;

use stampede::model::*;

use crate::gate::tool;
use crate::util::*;

#[test]
fn report_renders_in_headless_chromium_with_its_charts() {
    let srv = start_server(ServerConfig::default());
    let d = dir();
    let s = write_scenario(
        d.path(),
        &srv.url(),
        "journeys:\n  j: [ { name: ok, get: /ok }, { name: slow, get: '/slow?ms=5' } ]\nflows:\n  open: { journey: j, rate: [ { to: 40/s, over: 2s }, { hold: 2s } ] }\n  closed: { journey: j, vus: 3, duration: 4s, think: 100ms }\nthresholds:\n  open.ok: [ \"p99 < 1s\" ]\n",
    );
    let out = d.path().join("out");
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
    let html = out.join("report.html");
    let page = std::fs::read_to_string(&html).unwrap();
    // 4 charts per flow, each with at least one drawn line.
    assert_eq!(page.matches("<svg class=\"chart\"").count(), 8);
    assert!(page.matches("<polyline points=\"").count() >= 12);
    // Self-contained: nothing to fetch and nothing to run. Each chart's SVG namespace is an
    // identifier, not a resource, so it is taken out first.
    let bare = page.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
    for banned in ["<script", "http://", "https://", "src=", "url(", "<link"] {
        assert!(!bare.contains(banned), "report.html contains `{banned}`");
    }

    let Some(chromium) = tool("chromium") else {
        return;
    };
    let png = d.path().join("report.png");
    let profile = d.path().join("profile");
    let flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--enable-logging=stderr",
        "--v=0",
    ];
    let url = format!("file://{}", html.display());
    let shot = std::process::Command::new(&chromium)
        .args(flags)
        .arg(format!("--user-data-dir={}", profile.display()))
        .args([
            "--window-size=1400,2000",
            &format!("--screenshot={}", png.display()),
            &url,
        ])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&shot.stderr);
    assert!(shot.status.success(), "{log}");
    assert!(!log.contains(":CONSOLE("), "console messages: {log}");
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    // A blank page compresses to a few kilobytes; charts and tables do not.
    assert!(
        bytes.len() > 60_000,
        "screenshot of {} bytes looks empty",
        bytes.len()
    );
    // The DOM the browser built holds the charts with their drawn lines.
    let dom = std::process::Command::new(&chromium)
        .args(flags)
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--dump-dom", &url])
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert_eq!(
        dom.matches("class=\"chart\"").count(),
        8,
        "charts in the rendered DOM"
    );
    assert!(dom.matches("<polyline").count() >= 12);
}

fn latency() -> Option<Latency> {
    let mut h = stampede::model::new_hist();
    for v in 1..2000u64 {
        h.record(v * 37).unwrap();
    }
    Latency::from_hist(Some(&h))
}

#[test]
fn a_long_wide_run_renders_to_a_reasonable_page() {
    let flows: Vec<FlowResult> = (0..10)
        .map(|f| FlowResult {
            name: format!("flow{f}"),
            kind: stampede::model::FlowKind::Live,
            journey: "j".into(),
            model: "open".into(),
            model_kind: stampede::model::ModelKind::Open,
            tags: BTreeMap::new(),
            iterations_ok: 1,
            iterations_failed: 0,
            interrupted: 0,
            planned: 1,
            dropped: 0,
            iteration_rate: 1.0,
            iteration: latency(),
            schedule_lag: latency(),
            arrival_slack_us: 0,
            target_lag: None,
            startup_lag: None,
            dropped_cause: None,
            errors: BTreeMap::new(),
            work: None,
            poisson: None,
            arrival_bins: Vec::new(),
            missed_at_start: 0,
            steps: (0..20)
                .map(|s| StepResult {
                    key: format!("flow{f}.step{s}"),
                    name: format!("step{s}"),
                    method: "GET".into(),
                    url: "/x".into(),
                    requests: 1,
                    retries: 0,
                    amplification: 1.0,
                    failed: 0,
                    errors: BTreeMap::new(),
                    statuses: BTreeMap::new(),
                    rate: 1.0,
                    bytes_in: 0,
                    bytes_out: 0,
                    checks_passed: 0,
                    checks_failed: 0,
                    latency: latency(),
                    service_time: latency(),
                    ttfb: None,
                    connect: None,
                    tls: None,
                    ..Default::default()
                })
                .collect(),
        })
        .collect();
    let mut intervals = Vec::new();
    for t in 1..=3600 {
        for f in &flows {
            for key in f
                .steps
                .iter()
                .map(|s| s.key.clone())
                .chain([format!("{}.iteration", f.name)])
            {
                intervals.push(IntervalRow {
                    t: t as f64,
                    key,
                    count: 10,
                    errors: 0,
                    p50_us: 1000 + t,
                    p95_us: 2000 + t,
                    p99_us: 3000 + (t * 7) % 500,
                    max_us: 4000,
                    active_vus: Some(5),
                    target: Some(10.0),
                    dropped: Some(0),
                    retries: 0,
                });
            }
        }
    }
    let r = RunResult {
        schema_version: SCHEMA_VERSION,
        tool: "stampede test".into(),
        scenario: "wide".into(),
        source: "wide.yaml".into(),
        started_at_unix_ms: 0,
        duration_s: 3600.0,
        interrupted: false,
        interval_s: 1.0,
        flows,
        error_examples: Vec::new(),
        intervals,
        environment: Environment::current(),
        thresholds: Vec::new(),
        aborted: None,
        generator: None,
        self_checks: Vec::new(),
        ..Default::default()
    };
    let started = std::time::Instant::now();
    let page = stampede::report::html::render(&r);
    eprintln!(
        "10 flows × 20 steps × 3600 intervals: {} bytes in {:?}",
        page.len(),
        started.elapsed()
    );
    assert_eq!(page.matches("<svg class=\"chart\"").count(), 40);
    assert!(page.len() < 6_000_000, "{} bytes", page.len());
}
