//! Open model: arrival counts, Poisson spacing, ramps, dropped arrivals.

use std::time::Duration;

use crate::util::*;

#[test]
fn open_model_200_per_second_for_5s_yields_1000_iterations() {
    let srv = start_server(ServerConfig::default());
    let d = dir();
    let s = write_scenario(
        d.path(),
        &srv.url(),
        "journeys:\n  j:\n    - { name: ok, get: /ok }\nflows:\n  f: { journey: j, rate: 200/s, duration: 5s }\n",
    );
    // The exit code is left to the self-check tests: a busy CI machine may fail them.
    let (_, r) = run_scenario(&s, &d.path().join("out"));
    let f = flow(&r, "f");
    assert_eq!(
        f.planned, 1000,
        "the schedule calls for exactly 1000 arrivals"
    );
    assert_eq!(
        f.iterations_ok + f.iterations_failed + f.dropped + f.interrupted,
        1000,
        "every planned arrival is accounted for"
    );
    assert_eq!(f.dropped, 0);
    assert_eq!(f.iterations_ok, 1000);
    let mut times = srv.seen.arrivals("/ok");
    assert_eq!(times.len(), 1000);
    assert_eq!(step(&r, "f.ok").failed, 0);
    // Due times come from the run clock: 999 gaps of 5 ms. Sleeps that accumulated their own
    // lateness would stretch this span (3% slow: 150 ms).
    times.sort();
    let span = (times[999] - times[0]).as_secs_f64();
    assert!(
        (span - 4.995).abs() < 0.030,
        "first to last arrival at the server: {span:.4} s, expected 4.995 s ± 30 ms"
    );
}

#[test]
fn an_open_flows_latency_counts_from_the_due_time_when_it_starts_late() {
    // `arrival_slack: 100ms` at 20/s batches three arrivals into one wake-up at the last of them:
    // the first starts 100 ms late, the second 50 ms. Their latency must include that lateness
    // (timed from the due time); their service time, from the actual send, must not.
    let srv = start_server(ServerConfig::default());
    let d = dir();
    let s = write_scenario(
        d.path(),
        &srv.url(),
        "defaults: { arrival_slack: 100ms }\njourneys:\n  j:\n    - { name: ok, get: /ok }\nflows:\n  f: { journey: j, rate: 20/s, duration: 3s }\n",
    );
    let (_, r) = run_scenario(&s, &d.path().join("out"));
    let st = step(&r, "f.ok");
    let (latency, service) = (
        hist(st.latency.as_ref().unwrap()),
        hist(st.service_time.as_ref().unwrap()),
    );
    let lag = hist(flow(&r, "f").schedule_lag.as_ref().unwrap());
    assert!(lag.max() >= 80_000, "lag max {} us", lag.max());
    assert!(
        latency.max() >= 80_000 && latency.value_at_quantile(0.5) >= 30_000,
        "latency max {} us, p50 {} us: the start's lateness is in it",
        latency.max(),
        latency.value_at_quantile(0.5)
    );
    assert!(
        latency.value_at_quantile(0.5) >= service.value_at_quantile(0.5) + 25_000,
        "latency p50 {} us vs service p50 {} us",
        latency.value_at_quantile(0.5),
        service.value_at_quantile(0.5)
    );
}

#[test]
fn poisson_arrivals_have_exponential_gaps() {
    let srv = start_server(ServerConfig::default());
    let d = dir();
    let s = write_scenario(
        d.path(),
        &srv.url(),
        "journeys:\n  j:\n    - { name: ok, get: /ok }\nflows:\n  f: { journey: j, rate: 200/s, duration: 10s, arrivals: poisson, seed: 7 }\n",
    );
    let (_, r) = run_scenario(&s, &d.path().join("out"));
    let mut times = srv.seen.arrivals("/ok");
    times.sort();
    let gaps: Vec<f64> = times
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64() * 1000.0)
        .collect();
    let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
    let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64;
    let cv = var.sqrt() / mean;
    assert!(
        (mean - 5.0).abs() / 5.0 < 0.05,
        "mean gap {mean:.3} ms, expected 5 ms ± 5%"
    );
    // Measured at the server, where send and receive jitter add to the spread (σ of 2 ms adds
    // about 0.15 to a 5 ms mean's CV): the bound tells Poisson (~1) from uniform (~0) and from
    // bunching (>1.5); the exact dispersion is the client-side fit below.
    assert!(
        (0.8..1.3).contains(&cv),
        "coefficient of variation {cv:.3}, expected about 1 (uniform gives ~0)"
    );
    assert_eq!(flow(&r, "f").dropped, 0);
    let fit = flow(&r, "f")
        .poisson
        .as_ref()
        .expect("Poisson flows get a goodness-of-fit check");
    assert!(
        (fit.dispersion_index - 1.0).abs() <= fit.tolerance,
        "{fit:?}"
    );
    assert!(
        r.self_checks
            .iter()
            .any(|c| c.check == "poisson_fit" && c.passed)
    );
    let ci = step(&r, "f.ok").latency.as_ref().unwrap().ci95;
    assert!(ci[2][0] <= ci[2][1] && ci[0][1] > 0, "{ci:?}");
}

#[test]
fn a_ramp_follows_its_curve_second_by_second() {
    let srv = start_server(ServerConfig::default());
    let d = dir();
    // 0 → 100/s over 5 s: expected 10, 30, 50, 70, 90 arrivals in the five seconds.
    let s = write_scenario(
        d.path(),
        &srv.url(),
        "journeys:\n  j:\n    - { name: ok, get: /ok }\nflows:\n  f: { journey: j, rate: [ { to: 100/s, over: 5s } ] }\n",
    );
    run_scenario(&s, &d.path().join("out"));
    let times = srv.seen.arrivals("/ok");
    let first = *times.iter().min().unwrap();
    // The first arrival is due at t = 0 of the flow, so seconds are counted from it.
    let mut per_second = [0u32; 5];
    for t in &times {
        let s = (*t - first).as_secs_f64() as usize;
        if s < 5 {
            per_second[s] += 1;
        }
    }
    for (i, expected) in [10.0, 30.0, 50.0, 70.0, 90.0].iter().enumerate() {
        let got = per_second[i] as f64;
        assert!(
            (got - expected).abs() <= 4.0 + expected * 0.06,
            "second {i}: {got} arrivals, expected ~{expected} ({per_second:?})"
        );
    }
}

#[test]
fn open_model_drops_when_pool_exhausted() {
    let srv = start_server(ServerConfig::default());
    let d = dir();
    // 5 VUs that each take 200 ms can serve 25/s; at 100/s most arrivals find no free VU.
    let s = write_scenario(
        d.path(),
        &srv.url(),
        "journeys:\n  j:\n    - { name: slow, get: '/slow?ms=200' }\nflows:\n  f: { journey: j, rate: 100/s, duration: 3s, max_vus: 5 }\n",
    );
    let (_, r) = run_scenario(&s, &d.path().join("out"));
    let f = flow(&r, "f");
    assert_eq!(f.planned, 300);
    assert!(f.dropped >= 200, "dropped {} of 300", f.dropped);
    assert_eq!(
        f.planned,
        f.dropped + f.iterations_ok + f.iterations_failed + f.interrupted
    );
    let max_concurrency = srv
        .seen
        .concurrency
        .lock()
        .unwrap()
        .iter()
        .map(|c| c.1)
        .max()
        .unwrap();
    assert!(
        max_concurrency <= 5,
        "never more than max_vus in flight, saw {max_concurrency}"
    );
}

#[test]
fn arrivals_dropped_waiting_on_a_slow_target_are_the_targets_result() {
    // Two users for 50/s of 200 ms requests: most arrivals find both waiting on the target.
    // That is what the target did, so it is counted and explained, gated by a `dropped`
    // threshold (exit 1), and never called a generator failure (exit 3).
    let srv = start_server(ServerConfig::default());
    let d = dir();
    let body = |thresholds: &str| {
        format!(
            "journeys:\n  j:\n    - {{ name: slow, get: '/slow?ms=200' }}\nflows:\n  starved: {{ journey: j, rate: 50/s, duration: 2s, max_vus: 2 }}\n  fine: {{ journey: j, rate: 5/s, duration: 2s }}\n{thresholds}"
        )
    };
    let s = write_scenario(d.path(), &srv.url(), &body(""));
    let out = d.path().join("out");
    let (code, stdout, _) = run_bin(&["run", s.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    let r = stampede::report::read_json(&out.join("results.json")).unwrap();
    assert!(r.self_checks.iter().all(|c| c.check != "dropped"));
    assert_exit(code, 0, &r, &stdout);
    let f = flow(&r, "starved");
    assert!(f.dropped > 50, "{}", f.dropped);
    let cause = f.dropped_cause.as_deref().unwrap();
    // Little's law: 50/s × about 0.2 s per iteration.
    let needed: u64 = cause
        .split("about ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{cause}"));
    assert!(
        cause.contains("busy waiting on the target") && cause.contains("Raise max_vus"),
        "{cause}"
    );
    assert!((10..=15).contains(&needed), "{cause}");
    assert!(
        stdout.contains("dropped arrivals (the target's result"),
        "{stdout}"
    );
    assert!(flow(&r, "fine").dropped_cause.is_none());

    let s = write_scenario(
        d.path(),
        &srv.url(),
        &body("thresholds:\n  starved: [ \"dropped < 1%\" ]\n"),
    );
    let out = d.path().join("gated");
    let (code, stdout, _) = run_bin(&["run", s.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    let r = stampede::report::read_json(&out.join("results.json")).unwrap();
    assert_exit(code, 1, &r, &stdout);
}

#[test]
fn a_healthy_run_passes_its_self_checks() {
    let srv = start_server(ServerConfig::default());
    let d = dir();
    let s = ok_scenario(d.path(), &srv, "rate: 100/s, duration: 2s");
    let (exit, r) = run_scenario(&s, &d.path().join("out"));
    assert_eq!(exit, stampede::exit::Exit::Passed);
    assert!(r.self_checks.len() >= 3, "{:?}", r.self_checks);
    assert!(r.trustworthy(), "{:?}", r.self_checks);
    assert!(r.generator.as_ref().unwrap().busy_share < 0.5);
}

#[test]
fn pinned_to_one_cpu_the_run_uses_one_thread_and_keeps_its_schedule() {
    // `taskset -c 0` leaves one CPU: the run switches to a single-threaded runtime.
    let srv = start_server(ServerConfig::default());
    let d = dir();
    let s = ok_scenario(
        d.path(),
        &srv,
        "rate: 100/s, duration: 2s }\n  c: { journey: j, vus: 3, iterations: 30",
    );
    let out = d.path().join("out");
    let run = std::process::Command::new("taskset")
        .args(["-c", "0", bin(), "run", s.to_str().unwrap()])
        .args(["--out", out.to_str().unwrap(), "--quiet"])
        .output()
        .expect("taskset (util-linux)");
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let r = stampede::report::read_json(&out.join("results.json")).unwrap();
    assert_eq!(r.generator.as_ref().unwrap().workers, 1);
    let f = flow(&r, "f");
    assert_eq!(f.planned, 200);
    assert_eq!(f.iterations_ok, 200);
    assert_eq!(flow(&r, "c").iterations_ok, 30);
    assert_eq!(srv.seen.arrivals("/ok").len(), 230);
}

#[test]
fn arrival_slack_bounds_how_late_an_arrival_starts() {
    // 20 ms of slack at 200/s: arrivals wait for the last of a 20 ms batch, so about 10 ms at the
    // median and never much beyond 20 ms (the tolerance is for a busy machine's wake-ups).
    let srv = start_server(ServerConfig::default());
    let d = dir();
    let s = write_scenario(
        d.path(),
        &srv.url(),
        "defaults: { arrival_slack: 20ms }\njourneys:\n  j:\n    - { name: ok, get: /ok }\nflows:\n  f: { journey: j, rate: 200/s, duration: 2s }\n",
    );
    let (_, r) = run_scenario(&s, &d.path().join("out"));
    let lag = hist(flow(&r, "f").schedule_lag.as_ref().unwrap());
    let p50 = lag.value_at_quantile(0.5);
    assert!((5_000..=15_000).contains(&p50), "lag p50 {p50} us");
    assert!(
        lag.value_at_quantile(0.99) <= 35_000,
        "lag p99 {} us",
        lag.value_at_quantile(0.99)
    );
    let lag_check = self_check(&r, "schedule_lag");
    assert!(
        lag_check.detail.contains("limit 45.0 ms"),
        "{}",
        lag_check.detail
    );
}

#[test]
fn the_warm_up_is_left_out_of_totals_but_kept_in_intervals() {
    // The server holds every request for the first 600 ms: those requests end in the second
    // 500 ms interval, which the 1 s warm-up leaves out of the totals.
    let srv = start_server(ServerConfig {
        stall: Some((Duration::ZERO, Duration::from_millis(600))),
        ..Default::default()
    });
    let d = dir();
    let s = write_scenario(
        d.path(),
        &srv.url(),
        "journeys:\n  j: [ { name: a, get: /stall } ]\nflows:\n  f: { journey: j, rate: 50/s, duration: 3s }\n",
    );
    let run = |name: &str, warmup: &str| {
        let out = d.path().join(name);
        let (exit, r) = run_scenario_with(&s, &out, &["--interval", "500ms", "--warmup", warmup]);
        assert_eq!(exit, stampede::exit::Exit::Passed);
        r
    };
    let cold = run("cold", "0s");
    assert!(
        step(&cold, "f.a").latency.as_ref().unwrap().max_us >= 500_000,
        "the stall shows without a warm-up"
    );
    let warm = run("warm", "1s");
    assert_eq!(warm.warmup_s, 1.0);
    let a = step(&warm, "f.a");
    assert!(
        a.latency.as_ref().unwrap().max_us < 300_000,
        "{:?}",
        a.latency
    );
    // About 2 s of 50/s are counted, and the rate is over those 2 s.
    assert!((80..=120).contains(&a.requests), "{}", a.requests);
    assert!((40.0..60.0).contains(&a.rate), "{}", a.rate);
    assert!(
        warm.intervals.iter().any(|r| r.key == "f.a" && r.t <= 1.0),
        "interval rows keep the warm-up"
    );
}

#[test]
fn arrivals_dropped_for_want_of_users_still_count_as_sent_on_time() {
    // Two users, each busy 200 ms, against 1,000 Poisson arrivals a second: most arrivals find no
    // free user and are dropped, which is the target's result. The generator still dispatched
    // every arrival when it was due, so its Poisson self-check must pass: counting only the
    // arrivals that started (paced by the target's responses) once failed it, and blamed the
    // generator with exit 3 for the target's slowness.
    let srv = start_server(ServerConfig::default());
    let d = dir();
    let s = write_scenario(
        d.path(),
        &srv.url(),
        "journeys:\n  j: [ { name: slow, get: '/slow?ms=200' } ]\nflows:\n  f: { journey: j, rate: 1000/s, arrivals: poisson, duration: 3s, max_vus: 2 }\n",
    );
    let (_, r) = run_scenario(&s, &d.path().join("out"));
    assert!(flow(&r, "f").dropped > 2000, "{}", flow(&r, "f").dropped);
    let fit = self_check(&r, "poisson_fit");
    assert!(fit.passed, "{}", fit.detail);
}

#[test]
fn an_open_flow_with_iterations_sends_that_many_arrivals_at_any_scale() {
    // `iterations` on an open flow ends its load after that many arrivals, as `--iterations`
    // does on the command line: with no duration it needs none, and `--scale` or `--rate` change
    // how fast they come, never how many.
    let srv = start_server(ServerConfig::default());
    let d = dir();
    let s = write_scenario(
        d.path(),
        &srv.url(),
        "journeys:\n  j:\n    - { name: ok, get: /ok }\nflows:\n  f: { journey: j, rate: 100/s, iterations: 30 }\n",
    );
    let (code, plan, _) = run_bin(&["validate", s.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(
        plan.contains("over 300ms") && plan.contains(", 30 iterations"),
        "{plan}"
    );
    // The same from the command line, on a flow with no duration of its own; and a split run's
    // segments share a Poisson flow's exact count.
    let bare = write(
        d.path(),
        "bare.yaml",
        &format!(
            "target: {}\njourneys:\n  j: [ {{ name: ok, get: /ok }} ]\nflows:\n  f: {{ journey: j, rate: 20/s, arrivals: poisson }}\n",
            srv.url()
        ),
    );
    let (code, plan, stderr) = run_bin(&[
        "validate",
        bare.to_str().unwrap(),
        "--iterations",
        "77",
        "--segment",
        "0/2",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(plan.contains("39 of 77 arrivals, up to"), "{plan}");
    for (extra, sent) in [
        (&[][..], 30),
        (&["--scale", "2"][..], 60),
        (&["--rate", "300/s"][..], 90),
    ] {
        let (_, r) = run_scenario_with(&s, &d.path().join("out"), extra);
        let f = flow(&r, "f");
        assert_eq!((f.planned, f.iterations_ok), (30, 30), "{extra:?}");
        assert_eq!(srv.seen.arrivals("/ok").len(), sent, "{extra:?}");
    }
    // A duration shorter than the iterations take ends the flow first, as on a closed flow.
    let short = write_scenario(
        d.path(),
        &srv.url(),
        "journeys:\n  j:\n    - { name: ok, get: /ok }\nflows:\n  f: { journey: j, rate: 100/s, iterations: 1000, duration: 195ms }\n",
    );
    let (_, r) = run_scenario(&short, &d.path().join("out2"));
    assert_eq!(flow(&r, "f").planned, 20);
    // Poisson arrivals land anywhere on the curve: the flow still ends at the n-th.
    let poisson = write_scenario(
        d.path(),
        &srv.url(),
        "journeys:\n  j:\n    - { name: ok, get: /ok }\nflows:\n  f: { journey: j, rate: 200/s, arrivals: poisson, iterations: 40 }\n",
    );
    let (_, r) = run_scenario(&poisson, &d.path().join("out3"));
    assert_eq!(flow(&r, "f").planned, 40);
    // More than a day holds is refused, not run for a day.
    let (code, _, stderr) = run_bin(&["validate", write_scenario(
        d.path(),
        &srv.url(),
        "journeys:\n  j:\n    - { name: ok, get: /ok }\nflows:\n  f: { journey: j, rate: 1/s, iterations: 100000 }\n",
    ).to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("take longer than a day") && stderr.contains("s.yaml:6:43:"),
        "{stderr}"
    );
    // What still belongs to closed flows only is refused where it is written.
    let (code, _, stderr) = run_bin(&["validate", write_scenario(
        d.path(),
        &srv.url(),
        "journeys:\n  j:\n    - { name: ok, get: /ok }\nflows:\n  f: { journey: j, rate: 100/s, per_vu_iterations: 3 }\n",
    ).to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("`per_vu_iterations` applies to closed flows")
            && stderr.contains("an open flow takes `iterations`"),
        "{stderr}"
    );
}
