//! Hostile targets: each misbehaviour becomes the right error class on the right step, the other
//! flow keeps running clean, nothing panics, and the run ends on time with bounded memory.

use stampede::report::RunResult;

use crate::util::faults::{self, FaultServer};
use crate::util::*;

/// Runs a flow against `path` (2 VUs × `iterations`) beside a healthy flow, with `opts` added to the
/// faulty step. Returns the results.
fn hostile(srv: &FaultServer, path: &str, opts: &str, iterations: u32) -> RunResult {
    let d = dir();
    let s = write_scenario(
        d.path(),
        &srv.url(),
        &format!(
            "defaults: {{ timeout: 1s, graceful_stop: 2s }}\njourneys:\n  bad: [ {{ name: step, get: '{path}'{opts} }} ]\n  good: [ {{ name: ok, get: /ok }} ]\nflows:\n  bad: {{ journey: bad, vus: 2, per_vu_iterations: {iterations} }}\n  good: {{ journey: good, rate: 20/s, duration: 1s }}\n"
        ),
    );
    let (_, r) = run_scenario(&s, &d.path().join("out"));
    let good = flow(&r, "good");
    assert_eq!(
        good.iterations_ok, 20,
        "the healthy flow kept running: {:?}",
        r.error_examples
    );
    assert_eq!(step(&r, "good.ok").failed, 0);
    r
}

fn errors(r: &RunResult) -> std::collections::BTreeMap<stampede::model::ErrorClass, u64> {
    step(r, "bad.step").errors.clone()
}

#[test]
fn a_server_that_never_answers_is_a_timeout() {
    let srv = faults::start();
    let r = hostile(&srv, "/hang", "", 2);
    assert_eq!(
        errors(&r).get("timeout"),
        Some(&4),
        "{:?}",
        r.error_examples
    );
    assert!(r.duration_s < 8.0, "{}", r.duration_s);
}

#[test]
fn a_reset_mid_headers_is_a_reset() {
    let srv = faults::start();
    let r = hostile(&srv, "/reset-headers", "", 2);
    assert_eq!(errors(&r).get("reset"), Some(&4), "{:?}", errors(&r));
}

#[test]
fn a_reset_mid_body_is_a_reset() {
    let srv = faults::start();
    let r = hostile(&srv, "/reset-body", "", 2);
    assert_eq!(errors(&r).get("reset"), Some(&4), "{:?}", errors(&r));
}

#[test]
fn a_stall_before_headers_is_a_timeout() {
    let srv = faults::start();
    let r = hostile(&srv, "/stall", "", 1);
    assert_eq!(errors(&r).get("timeout"), Some(&2), "{:?}", errors(&r));
}

#[test]
fn a_trickled_body_arrives_slowly_but_whole() {
    let srv = faults::start();
    let r = hostile(
        &srv,
        "/trickle",
        ", timeout: 5s, check: { body_contains: xxxxxxxxxx }",
        1,
    );
    let s = step(&r, "bad.step");
    assert_eq!(s.failed, 0, "{:?}", r.error_examples);
    assert!(
        s.service_time.as_ref().unwrap().min_us >= 900_000,
        "40 bytes at 25 ms each"
    );
    assert!(
        s.ttfb.as_ref().unwrap().max_us < 500_000,
        "the head came at once"
    );
}

#[test]
fn malformed_http_is_a_protocol_error() {
    let srv = faults::start();
    let r = hostile(&srv, "/malformed", "", 2);
    assert_eq!(errors(&r).get("protocol"), Some(&4), "{:?}", errors(&r));
}

#[test]
fn keep_alive_connections_closed_between_requests_are_replaced() {
    let srv = faults::start();
    let r = hostile(&srv, "/close", "", 10);
    let s = step(&r, "bad.step");
    assert_eq!(s.failed, 0, "{:?}", r.error_examples);
    assert_eq!(s.requests, 20);
    assert_eq!(
        s.connect.as_ref().unwrap().count,
        20,
        "a new connection for each request"
    );
}

#[test]
fn a_body_shorter_than_its_length_is_a_reset() {
    let srv = faults::start();
    let r = hostile(&srv, "/short", "", 2);
    assert_eq!(errors(&r).get("reset"), Some(&4), "{:?}", errors(&r));
}

#[test]
fn a_body_longer_than_its_length_does_not_corrupt_later_requests() {
    let srv = faults::start();
    let r = hostile(&srv, "/long", ", check: { body_contains: bbbbbbbbbb }", 3);
    let s = step(&r, "bad.step");
    // Each response is read as exactly its 10 declared bytes (the 40 surplus never reach the
    // body), and the connection with garbage after a response is not reused: every request
    // opens a fresh one and succeeds.
    assert!(s.errors.is_empty(), "{:?} {:?}", s.errors, r.error_examples);
    assert_eq!((s.requests, s.checks_passed), (6, 6));
    let head = b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n".len() as u64;
    assert_eq!(
        s.bytes_in,
        6 * (head + 10),
        "bytes received count the declared body only"
    );
    assert_eq!(s.connect.as_ref().unwrap().count, 6);
}

#[test]
fn bursts_of_5xx_are_status_errors() {
    let srv = faults::start();
    let r = hostile(&srv, "/burst", "", 10);
    let s = step(&r, "bad.step");
    assert_eq!(s.requests, 20);
    let e = s.errors.get("status").copied().unwrap_or(0);
    assert!((8..=12).contains(&e), "about half of 20: {e}");
    assert_eq!(s.statuses.get("503").copied().unwrap_or(0), e);
}

#[test]
fn a_large_body_is_streamed_and_discarded_or_capped_when_kept() {
    // 64 MiB: six times the default `max_body_bytes` (10 MiB), read through a debug build in a
    // second instead of the gigabytes a size limit does not need.
    let srv = faults::start();
    // Not kept: all of it is read and counted, none of it stored.
    let r = hostile(&srv, "/huge?mb=64", ", timeout: 60s", 1);
    let s = step(&r, "bad.step");
    assert_eq!(s.failed, 0, "{:?}", r.error_examples);
    assert!(
        s.bytes_in >= 2 * (64 << 20),
        "two bodies of 64 MiB: {}",
        s.bytes_in
    );
    // Kept for a check: the cap stops it.
    let r = hostile(
        &srv,
        "/huge?mb=64",
        ", timeout: 60s, check: { body_contains: zzz }",
        1,
    );
    assert_eq!(
        errors(&r).get("body_too_large"),
        Some(&2),
        "{:?}",
        r.error_examples
    );
}

/// Peak RSS (KiB) of two users each reading one `mb` MiB body they do not keep.
fn peak_reading(srv: &faults::FaultServer, mb: u64) -> u64 {
    let d = dir();
    let s = write_scenario(
        d.path(),
        &srv.url(),
        &format!(
            "journeys:\n  j: [ {{ name: huge, get: '/huge?mb={mb}', timeout: 60s }} ]\nflows:\n  f: {{ journey: j, vus: 2, per_vu_iterations: 1 }}\n"
        ),
    );
    let (_, _, r, peak) = run_bin_scenario(&s, &[]);
    assert_eq!(step(&r, "f.huge").failed, 0, "{:?}", r.error_examples);
    peak
}

#[test]
fn memory_stays_bounded_reading_a_huge_body() {
    // Memory does not grow with the body: 16 times more bytes read, about the same peak.
    let srv = faults::start();
    let (small, large) = (peak_reading(&srv, 16), peak_reading(&srv, 256));
    assert!(
        large < small + 32 * 1024,
        "peak RSS {} MiB reading 2 × 16 MiB, {} MiB reading 2 × 256 MiB",
        small / 1024,
        large / 1024
    );
}
