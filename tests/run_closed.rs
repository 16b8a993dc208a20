//! Closed model: VU stages, pace, and coordinated omission.

use std::time::Duration;

use crate::util::*;

#[test]
fn closed_model_vu_count_follows_its_stages() {
    let srv = start_server(ServerConfig::default());
    let d = dir();
    // Up to 10 VUs over 2 s, hold 2 s, down to 2 over 1 s, hold 1 s; each request takes 50 ms, so the
    // server's concurrency is the number of running VUs.
    let s = write_scenario(
        d.path(),
        &srv.url(),
        "journeys:\n  j:\n    - { name: slow, get: '/slow?ms=50' }\nflows:\n  f: { journey: j, vus: [ { to: 10, over: 2s }, { hold: 2s }, { to: 2, over: 1s }, { hold: 1s } ] }\n",
    );
    let (_, r) = run_scenario(&s, &d.path().join("out"));
    let conc = srv.seen.concurrency.lock().unwrap().clone();
    let first = conc.iter().map(|c| c.0).min().unwrap();
    let window = |from: f64, to: f64| -> u64 {
        conc.iter()
            .filter(|(t, _)| {
                let s = (*t - first).as_secs_f64();
                s >= from && s < to
            })
            .map(|c| c.1)
            .max()
            .unwrap_or(0)
    };
    assert!(window(0.0, 0.5) <= 4, "early ramp: {}", window(0.0, 0.5));
    assert_eq!(window(2.3, 3.8), 10, "hold at 10 VUs");
    assert!(
        window(5.2, 5.9) <= 3,
        "after ramp-down to 2: {}",
        window(5.2, 5.9)
    );
    assert_eq!(flow(&r, "f").iterations_failed, 0);
}

#[test]
fn paced_closed_flow_runs_overdue_iterations_with_their_due_times() {
    // The server freezes every request for 1 s, starting 1.5 s after the first one.
    let srv = start_server(ServerConfig {
        stall: Some((Duration::from_millis(1500), Duration::from_secs(1))),
        ..Default::default()
    });
    let d = dir();
    let s = write_scenario(
        d.path(),
        &srv.url(),
        "journeys:\n  j:\n    - { name: req, get: /stall }\nflows:\n  f: { journey: j, vus: 10, pace: 100ms, duration: 4s }\n",
    );
    let (_, r) = run_scenario(&s, &d.path().join("out"));
    let st = step(&r, "f.req");
    let latency = hist(st.latency.as_ref().unwrap());
    let service = hist(st.service_time.as_ref().unwrap());
    let slow_latency = latency.count_between(500_000, u64::MAX);
    let slow_service = service.count_between(500_000, u64::MAX);
    // Each VU has ~10 iterations due during the stall; about 5 of them end ≥ 500 ms after their
    // due time. Measured from send time (or skipping overdue ones) only the ~10 stuck requests are slow.
    assert!(
        slow_latency >= 40,
        "latency ≥ 500 ms: {slow_latency} samples, expected ~50"
    );
    assert!(
        slow_service <= 20,
        "service time ≥ 500 ms: {slow_service} samples, expected ~10"
    );
    assert!(
        slow_service >= 5,
        "the stalled requests themselves: {slow_service}"
    );
    // Overdue iterations are run, not skipped: ~40 iterations per VU in 4 s.
    assert!(
        st.requests >= 380,
        "{} requests, expected ~400",
        st.requests
    );
}

#[test]
fn per_vu_iterations_bound_a_batch() {
    let srv = start_server(ServerConfig::default());
    let d = dir();
    let s = write_scenario(
        d.path(),
        &srv.url(),
        "journeys:\n  j:\n    - { name: ok, get: /ok }\nflows:\n  f: { journey: j, vus: 4, per_vu_iterations: 5 }\n  g: { journey: j, vus: 3, iterations: 7 }\n",
    );
    let (_, r) = run_scenario(&s, &d.path().join("out"));
    assert_eq!(flow(&r, "f").iterations_ok, 20);
    assert_eq!(flow(&r, "g").iterations_ok, 7);
}

#[test]
fn a_paced_flow_through_a_target_stall_blames_the_target_not_the_generator() {
    // 10 paced users (one iteration per 100 ms each) through a 1 s stall of the whole server.
    // Their iterations fall behind and catch up: that lateness is the target's, already in
    // latency (timed from due), and must not make the generator's schedule-lag check fail.
    let srv = start_server(ServerConfig {
        stall: Some((Duration::from_millis(800), Duration::from_secs(1))),
        ..Default::default()
    });
    let d = dir();
    let s = write_scenario(
        d.path(),
        &srv.url(),
        "defaults: { timeout: 5s }\njourneys:\n  j: [ { name: a, get: /stall } ]\nflows:\n  f: { journey: j, vus: 10, pace: 100ms, duration: 3s }\n",
    );
    let out = d.path().join("out");
    let (code, stdout, _) = run_bin(&["run", s.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    let r = stampede::report::read_json(&out.join("results.json")).unwrap();
    let lag = self_check(&r, "schedule_lag");
    assert!(lag.passed, "{}", lag.detail);
    assert!(
        lag.detail.contains("waited on the target"),
        "{}",
        lag.detail
    );
    let f = flow(&r, "f");
    assert!(f.target_lag.as_ref().unwrap().max_us >= 500_000);
    assert!(hist(step(&r, "f.a").latency.as_ref().unwrap()).max() >= 900_000);
    assert_exit(code, 0, &r, &stdout);
}

#[test]
fn an_unpaced_loop_never_blames_the_target_for_lateness() {
    // Without pace or think time, a user's next iteration is due the moment its last one ended:
    // it can never be due while the user still waits on the target. The loop used to read the
    // clock again before starting, and the few hundred nanoseconds between the two reads were
    // counted as target lag for every iteration ("N iterations were due while their user still
    // waited on the target").
    let srv = start_server(ServerConfig::default());
    let d = dir();
    let s = write_scenario(
        d.path(),
        &srv.url(),
        "journeys:\n  j: [ { name: ok, get: /ok } ]\nflows:\n  f: { journey: j, vus: 4, iterations: 400 }\n",
    );
    let (_, r) = run_scenario(&s, &d.path().join("out"));
    let f = flow(&r, "f");
    assert_eq!(f.iterations_ok, 400);
    assert!(f.target_lag.is_none(), "{:?}", f.target_lag);
    let lag = self_check(&r, "schedule_lag");
    assert!(
        !lag.detail.contains("waited on the target"),
        "{}",
        lag.detail
    );
}

#[test]
fn a_think_times_wake_up_is_not_charged_to_the_next_request() {
    // With tokio's 1 ms timer wheel, /ok after `think: 50ms` showed p50 1.19 ms of latency for
    // 0.09 ms of service time: the late wake-up landed in the target's latency. The wait now
    // uses the precise timer and a late wake-up counts as the generator's lag.
    let srv = start_server(ServerConfig::default());
    let d = dir();
    let s = write_scenario(
        d.path(),
        &srv.url(),
        "journeys:\n  j: [ { name: warm, get: /ok }, { think: 50ms }, { name: ping, get: /ok } ]\nflows:\n  f: { journey: j, vus: 2, per_vu_iterations: 20 }\n",
    );
    let (_, r) = run_scenario(&s, &d.path().join("out"));
    let st = step(&r, "f.ping");
    let latency = hist(st.latency.as_ref().unwrap()).value_at_quantile(0.5);
    let service = hist(st.service_time.as_ref().unwrap()).value_at_quantile(0.5);
    assert!(
        latency < service + 400,
        "p50 latency {latency} us against service time {service} us"
    );
}

#[test]
fn a_paced_flow_runs_exactly_its_planned_iterations() {
    // 10 users, one iteration each per 100 ms, for 2 s: 20 iterations a user, 200 in all, none
    // after the end (a user waiting for its next due time used to run one more).
    let srv = start_server(ServerConfig::default());
    let d = dir();
    let s = ok_scenario(d.path(), &srv, "vus: 10, pace: 100ms, duration: 2s");
    let (_, r) = run_scenario(&s, &d.path().join("out"));
    let f = flow(&r, "f");
    assert_eq!(f.iterations_ok + f.iterations_failed + f.interrupted, 200);
    assert_eq!(srv.seen.arrivals("/ok").len(), 200);
}

/// Users whose next paced iteration would start after the end leave early; the flow still lasts
/// its whole length (an early exit once no user was left shortened the run and inflated rates).
#[test]
fn a_paced_flow_keeps_its_length_after_its_users_leave() {
    let srv = start_server(ServerConfig::default());
    let d = dir();
    let s = write_scenario(
        d.path(),
        &srv.url(),
        "journeys:\n  j: [ { name: a, get: /ok } ]\nflows:\n  f: { journey: j, vus: 2, pace: 1s, duration: 3s }\n",
    );
    let (_, r) = run_scenario(&s, &d.path().join("out"));
    assert_eq!(flow(&r, "f").iterations_ok, 6, "{:?}", flow(&r, "f"));
    assert!(
        r.duration_s >= 2.9,
        "the run ended at {:.2} s of its 3 s",
        r.duration_s
    );
}

#[test]
fn users_parked_by_a_ramp_down_leave_when_the_load_ends() {
    let srv = start_server(ServerConfig::default());
    let d = dir();
    // Six users, then one: those above the curve are parked when it ends. They have no iteration
    // in flight, so the run must neither wait its graceful stop for them nor count them as cut off.
    let s = write_scenario(
        d.path(),
        &srv.url(),
        "defaults: { graceful_stop: 30s }\njourneys:\n  j: [ { name: ok, get: /ok }, { think: 10ms } ]\nflows:\n  f: { journey: j, vus: [ { to: 6, over: 500ms }, { to: 1, over: 500ms } ] }\n",
    );
    let (_, r) = run_scenario(&s, &d.path().join("out"));
    let f = flow(&r, "f");
    assert_eq!(f.interrupted, 0, "parked users are not iterations cut off");
    assert!(f.iterations_ok > 0 && f.iterations_failed == 0);
    assert!(
        r.duration_s < 20.0,
        "the run waited its 30 s graceful stop for parked users: {} s",
        r.duration_s
    );
}

#[test]
fn a_paced_user_ramped_out_while_it_waits_starts_nothing_more() {
    let srv = start_server(ServerConfig::default());
    let d = dir();
    // Three users, then one from 0.6 s; each paced to an iteration a second. Users 2 and 3 are
    // ramped out while they wait for their second iteration (due at about 1.1 s), so only
    // user 1 goes on: 0.05, 1.05 and 2.05 s, before the load ends at 2.4 s.
    let s = write_scenario(
        d.path(),
        &srv.url(),
        "journeys:\n  j: [ { name: ok, get: /ok } ]\nflows:\n  f: { journey: j, pace: 1s, vus: [ { to: 3, over: 100ms }, { hold: 400ms }, { to: 1, over: 100ms }, { hold: 1800ms } ] }\n",
    );
    let (_, r) = run_scenario(&s, &d.path().join("out"));
    assert_eq!(srv.seen.ok("/ok"), 5, "requests at the server");
    assert_eq!(flow(&r, "f").iterations_ok, 5);
}

#[test]
fn an_overdue_paced_iteration_does_not_start_after_the_load_ends() {
    // One user paced every 100 ms through a 230 ms response: its second iteration was due at
    // 100 ms but the user is free only at about 230 ms, after its flow's end at 210 ms. Nothing
    // starts after the end, whenever the flow's controller (every 50 ms, about 255 ms here)
    // happens to notice it: before, the user ran it when it came free before that tick. A
    // second, longer flow keeps the run (whose own stop would end it) going.
    let srv = start_server(ServerConfig::default());
    let d = dir();
    let s = write_scenario(
        d.path(),
        &srv.url(),
        "journeys:\n  j: [ { name: slow, get: \"/slow?ms=230\" } ]\n  k: [ { name: ok, get: /ok } ]\nflows:\n  f: { journey: j, vus: 1, pace: 100ms, duration: 210ms }\n  g: { journey: k, vus: 1, pace: 100ms, duration: 700ms }\n",
    );
    let (_, r) = run_scenario(&s, &d.path().join("out"));
    assert_eq!(
        srv.seen.arrivals("/slow").len(),
        1,
        "requests at the server"
    );
    let f = flow(&r, "f");
    assert_eq!((f.iterations_ok, f.interrupted), (1, 0));
}
