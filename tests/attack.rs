//! What a hostile target or script must not do to stampede (issue #20): crash it, grow its memory
//! without bound, starve other users, or have its faults misnamed. Each test drives the real
//! binary against a scripted server on 127.0.0.1:0.

use crate::util::scripted::{self, ok_with};
use crate::util::*;

/// `journeys` and `flows` against `srv`, written to a fresh folder.
fn scenario(d: &tempfile::TempDir, target: &str, body: &str) -> std::path::PathBuf {
    write_scenario(d.path(), target, body)
}

fn timing<'a>(
    s: &'a stampede::model::StepResult,
    name: &str,
) -> Option<&'a stampede::model::TimingResult> {
    s.server_timing.iter().find(|t| t.name == name)
}

#[test]
fn an_absurd_server_timing_duration_on_every_response_is_ignored_and_counted() {
    let srv = scripted::start(|_, _| ok_with("server-timing: db;dur=1e23, app;dur=2\r\n", b"{}"));
    let d = dir();
    let s = scenario(
        &d,
        &srv.url(),
        "journeys:\n  j: [ { name: a, get: /x } ]\nflows:\n  f: { journey: j, vus: 2, per_vu_iterations: 10 }\n",
    );
    let (code, stderr, r, _) = run_bin_scenario(&s, &[]);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_exit(code, 0, &r, &stderr);
    assert_eq!(flow(&r, "f").iterations_ok, 20);
    let a = step(&r, "f.a");
    assert_eq!(a.requests, 20);
    let db = timing(a, "db").expect("db is listed");
    assert_eq!((db.reported, db.ignored), (20, 20));
    assert!(db.duration.is_none(), "no absurd value was recorded");
    assert_eq!(
        timing(a, "app").unwrap().duration.as_ref().unwrap().count,
        20
    );
}

#[test]
fn an_absurd_server_timing_on_one_response_in_ten_loses_no_arrival() {
    let srv = scripted::start(|n, _| {
        let st = if n % 10 == 3 {
            "db;dur=1e23"
        } else {
            "db;dur=1"
        };
        ok_with(&format!("server-timing: {st}\r\n"), b"{}")
    });
    let d = dir();
    let s = scenario(
        &d,
        &srv.url(),
        "journeys:\n  j: [ { name: a, get: /x } ]\nflows:\n  f: { journey: j, rate: 100/s, duration: 2500ms, max_vus: 50 }\nthresholds:\n  \"*\": [ \"errors < 1%\" ]\n",
    );
    let (_, stderr, r, _) = run_bin_scenario(&s, &[]);
    assert!(!stderr.contains("panicked"), "{stderr}");
    let f = flow(&r, "f");
    assert_eq!(f.planned, 250);
    assert_eq!(
        (f.iterations_ok, f.dropped),
        (250, 0),
        "{:?}",
        r.error_examples
    );
    assert_eq!(srv.requests.load(std::sync::atomic::Ordering::SeqCst), 250);
    assert_eq!(timing(step(&r, "f.a"), "db").unwrap().ignored, 25);
}

#[test]
fn server_timing_names_are_capped_so_invented_names_cannot_exhaust_memory() {
    // Five responses, each with 1,000 names never seen before: 5,000 names in all.
    let srv = scripted::start(|n, _| {
        let names: Vec<String> = (0..1000).map(|i| format!("m{n}x{i};dur=1.5")).collect();
        ok_with(&format!("server-timing: {}\r\n", names.join(", ")), b"{}")
    });
    let d = dir();
    let s = scenario(
        &d,
        &srv.url(),
        "journeys:\n  j: [ { name: a, get: /x } ]\nflows:\n  f: { journey: j, vus: 1, per_vu_iterations: 5 }\n",
    );
    let (code, stderr, r, peak_kib) = run_bin_scenario(&s, &[]);
    assert_exit(code, 0, &r, &stderr);
    let a = step(&r, "f.a");
    assert_eq!(a.server_timing.len(), 33, "32 names and (other)");
    let other = timing(a, "(other)").expect("the rest is counted as (other)");
    assert_eq!(other.reported, 5000 - 32);
    let work = flow(&r, "f").work.as_ref().unwrap();
    assert!(
        work.per_iteration.len() <= 33,
        "{}",
        work.per_iteration.len()
    );
    // Before the cap: ~650 MB for six such responses.
    assert!(peak_kib < 150 * 1024, "peak RSS {} MiB", peak_kib / 1024);
}

/// Peak RSS (KiB) of a script-only flow of 2 users doing `n` iterations of three `let`s, one of
/// them a 16 KiB string.
fn let_soak(n: u32) -> u64 {
    let d = dir();
    let s = scenario(
        &d,
        "http://127.0.0.1:9",
        &format!(
            "journeys:\n  j:\n    - script: |\n        let amount = rand_int(1, 100);\n        let payload = `{{\"amount\": ${{amount}}}}`;\n        let pad = \"\";\n        pad.pad(16384, \"x\");\n    - {{ name: a, get: /x, timeout: 1ms }}\nflows:\n  f: {{ journey: j, vus: 2, per_vu_iterations: {n} }}\ndefaults: {{ on_error: continue }}\n"
        ),
    );
    let (_, stderr, r, peak) = run_bin_scenario(&s, &[]);
    assert_eq!(
        flow(&r, "f").errors.get("script"),
        None,
        "{stderr} {:?}",
        r.error_examples
    );
    let f = flow(&r, "f");
    assert_eq!(f.iterations_ok + f.iterations_failed, 2 * n as u64);
    peak
}

#[test]
fn a_snippets_lets_die_with_it_so_memory_stays_flat() {
    let (short, long) = (let_soak(200), let_soak(4000));
    // Leaking, the long run would hold 2 × 3,800 more 16 KiB strings (~120 MiB).
    assert!(
        long < short + 30 * 1024,
        "peak RSS {} MiB after 400 iterations, {} MiB after 8,000",
        short / 1024,
        long / 1024
    );
}

#[test]
fn an_interval_below_100ms_is_refused() {
    let d = dir();
    let s = scenario(
        &d,
        "http://127.0.0.1:9",
        "journeys:\n  j: [ { name: a, get: /x } ]\nflows:\n  f: { journey: j, vus: 1, per_vu_iterations: 1 }\n",
    );
    for bad in ["0s", "1us", "99ms"] {
        let (code, _, stderr) = run_bin(&["run", s.to_str().unwrap(), "--interval", bad]);
        assert_eq!(code, 2, "{bad}: {stderr}");
        assert!(
            stderr.contains("shorter than the shortest interval"),
            "{stderr}"
        );
    }
}

#[test]
fn two_runs_given_one_out_folder_cannot_interleave() {
    let srv = scripted::start(|_, _| ok_with("", b"{}"));
    let d = dir();
    let s = scenario(
        &d,
        &srv.url(),
        "journeys:\n  j: [ { name: a, get: /x }, { think: 50ms } ]\nflows:\n  f: { journey: j, vus: 1, duration: 3s }\n",
    );
    let out = d.path().join("out");
    let mut first = run_command(&s, &out).spawn().unwrap();
    // The lock holds the owner's process id once it is taken, before any traffic.
    let lock = out.join(stampede::run::LOCK_FILE);
    wait_for("the first run to lock its folder", || {
        std::fs::read_to_string(&lock).is_ok_and(|t| !t.trim().is_empty())
    });
    let (code, _, stderr) = run_bin(&[
        "run",
        s.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "in use by another stampede run (process {})",
            first.id()
        )),
        "{stderr}"
    );
    let code = first.wait().unwrap().code().unwrap_or(-1);
    // The first run's files are whole and its own.
    let r = stampede::report::read_json(&out.join("results.json")).unwrap();
    assert_exit(code, 0, &r, "the first run");
    assert!(flow(&r, "f").iterations_ok > 0);
    let (code, _, stderr) = run_bin(&["report", out.join("intervals.hlog").to_str().unwrap()]);
    assert_eq!(code, 0, "the interval log parses: {stderr}");
}

#[test]
fn an_out_folder_that_is_a_symlink_loop_is_named_as_one() {
    let d = dir();
    let s = scenario(
        &d,
        "http://127.0.0.1:9",
        "journeys:\n  j: [ { name: a, get: /x } ]\nflows:\n  f: { journey: j, vus: 1, per_vu_iterations: 1 }\n",
    );
    let a = d.path().join("a");
    std::os::unix::fs::symlink(d.path().join("b"), &a).unwrap();
    std::os::unix::fs::symlink(&a, d.path().join("b")).unwrap();
    let (code, _, stderr) = run_bin(&["run", s.to_str().unwrap(), "--out", a.to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("symbolic links"), "{stderr}");
}

#[test]
fn a_cookie_flood_is_held_to_browser_limits() {
    // Every response sets 90 cookies never seen before.
    let srv = scripted::start(|n, _| {
        let cookies: String = (0..90)
            .map(|i| format!("set-cookie: c{n}x{i}=value{i}; Path=/\r\n"))
            .collect();
        ok_with(&cookies, b"{}")
    });
    let d = dir();
    let s = scenario(
        &d,
        &srv.url(),
        "journeys:\n  j: [ { name: a, get: /x } ]\nflows:\n  f: { journey: j, vus: 1, per_vu_iterations: 400 }\n",
    );
    let (code, stderr, r, _) = run_bin_scenario(&s, &[]);
    assert_exit(code, 0, &r, &stderr);
    let a = step(&r, "f.a");
    assert_eq!((a.requests, a.failed), (400, 0), "{:?}", r.error_examples);
    // 180 cookies of ~20 bytes: the Cookie header stays a few KiB (unbounded: ~1 MB).
    let head = srv.max_head.load(std::sync::atomic::Ordering::SeqCst);
    assert!(head < 180 * 24 + 512, "largest request head {head} bytes");
    assert_eq!(a.cookies_dropped, 400 * 90 - 180);
}

/// Runs one request step against a server whose every answer is `response`, with `opts` on the
/// step; returns the step's result and the run's error examples.
fn one_step(
    response: &'static [u8],
    opts: &str,
    iterations: u32,
) -> (stampede::model::StepResult, Vec<String>, u64) {
    let srv = scripted::start(move |_, _| response.to_vec());
    let d = dir();
    let s = scenario(
        &d,
        &srv.url(),
        &format!(
            "defaults: {{ timeout: 2s }}\njourneys:\n  j: [ {{ name: a, get: /x{opts} }} ]\nflows:\n  f: {{ journey: j, vus: 1, per_vu_iterations: {iterations} }}\n"
        ),
    );
    let (_, _, r, _) = run_bin_scenario(&s, &[]);
    let examples = r.error_examples.iter().map(|e| e.message.clone()).collect();
    (
        step(&r, "f.a").clone(),
        examples,
        srv.requests.load(std::sync::atomic::Ordering::SeqCst),
    )
}

#[test]
fn broken_chunked_framing_is_protocol_and_not_retried_as_a_reset() {
    let huge_extension: &'static [u8] = Box::leak(
        [
            &b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5;"[..],
            &vec![b'a'; 1 << 20],
            b"\r\nhello\r\n0\r\n\r\n",
        ]
        .concat()
        .into_boxed_slice(),
    );
    let many_trailers: &'static [u8] = Box::leak(
        [
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n".to_vec(),
            (0..10_000)
                .flat_map(|i| format!("x-t{i}: v\r\n").into_bytes())
                .collect(),
            b"\r\n".to_vec(),
        ]
        .concat()
        .into_boxed_slice(),
    );
    let cases: [(&str, &'static [u8]); 3] = [
        (
            "chunk size overflow",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nffffffffffffffffff\r\nx\r\n0\r\n\r\n",
        ),
        ("1 MB chunk extension", huge_extension),
        ("10,000 trailers", many_trailers),
    ];
    for (what, response) in cases {
        let (a, examples, served) = one_step(
            response,
            ", retry: { max: 3, on: [reset], backoff: 1ms..2ms }",
            3,
        );
        assert_eq!(
            a.errors.get("protocol"),
            Some(&3),
            "{what}: {:?} {examples:?}",
            a.errors
        );
        assert_eq!(served, 3, "{what}: no retry of a fault that repeats");
    }
}

#[test]
fn a_body_that_is_not_json_says_why_and_a_regex_still_reads_around_a_bad_byte() {
    let (a, examples, _) = one_step(
        b"HTTP/1.1 200 OK\r\ncontent-length: 26\r\n\r\n{\"b\": 1, \"s\": \"\xff\"} tok=ab1",
        ", check: { json: { $.b: 1 } }",
        1,
    );
    assert_eq!(a.errors.get("check"), Some(&1));
    assert!(
        examples.iter().any(|m| m.contains("the body is not JSON")),
        "{examples:?}"
    );
    let (a, examples, _) = one_step(
        b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n\xff\xfe tok=ab1",
        ", extract: { t: { regex: \"tok=([a-z0-9]+)\" } }",
        1,
    );
    assert_eq!(a.failed, 0, "{examples:?}");
}

#[test]
fn a_stalled_tls_handshake_says_handshake() {
    let srv = crate::util::faults::start();
    let d = dir();
    let s = scenario(
        &d,
        &format!("https://{}", srv.addr),
        "defaults: { timeout: 500ms, insecure: true }\njourneys:\n  j: [ { name: a, get: /ok } ]\nflows:\n  f: { journey: j, vus: 1, per_vu_iterations: 1 }\n",
    );
    let (_, _, r, _) = run_bin_scenario(&s, &[]);
    assert_eq!(step(&r, "f.a").errors.get("timeout"), Some(&1));
    assert!(
        r.error_examples
            .iter()
            .any(|e| e.message.contains("TLS handshake with 127.0.0.1")),
        "{:?}",
        r.error_examples
    );
}

#[test]
fn a_huge_thrown_string_is_clipped_in_every_output() {
    let d = dir();
    let s = scenario(
        &d,
        "http://127.0.0.1:9",
        "journeys:\n  j:\n    - script: 'let s = \"\"; s.pad(524288, \"x\"); throw s;'\n    - { name: a, get: /x }\nflows:\n  f: { journey: j, vus: 1, per_vu_iterations: 1 }\n",
    );
    let (_, stderr, r, _) = run_bin_scenario(&s, &[]);
    assert_eq!(flow(&r, "f").errors.get("script"), Some(&1));
    let m = &r.error_examples[0].message;
    assert!(
        m.len() < 4096 && m.contains("more bytes)"),
        "{} bytes",
        m.len()
    );
    assert!(stderr.len() < 64 * 1024, "stderr {} bytes", stderr.len());
}

#[test]
fn a_cpu_heavy_snippet_does_not_stall_other_users_on_its_thread() {
    let srv = scripted::start(|_, _| ok_with("", b"{}"));
    let d = dir();
    // Each heavy iteration copies a growing array 15,000 times: hundreds of milliseconds of CPU,
    // well under the operation limit. On one CPU the runtime is single-threaded, so a snippet run
    // inline would hold every other user's I/O for that long.
    let s = scenario(
        &d,
        &srv.url(),
        "journeys:\n  heavy:\n    - script: 'let a = []; for i in 0..15000 { a.push(i); }'\n    - { name: a, get: /x }\n  fast: [ { name: b, get: /x, timeout: 300ms } ]\nflows:\n  heavy: { journey: heavy, vus: 1, per_vu_iterations: 4 }\n  fast: { journey: fast, rate: 50/s, duration: 3s }\n",
    );
    let out = d.path().join("out");
    let status = std::process::Command::new("taskset")
        .args([
            "-c",
            "0",
            bin(),
            "run",
            s.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--quiet",
        ])
        .status()
        .expect("taskset (util-linux) runs the generator on one CPU");
    assert!(status.code().is_some());
    let r = stampede::report::read_json(&out.join("results.json")).unwrap();
    let heavy = flow(&r, "heavy");
    assert_eq!(heavy.iterations_ok, 4, "{:?}", r.error_examples);
    let fast = step(&r, "fast.b");
    assert_eq!(
        (fast.requests, fast.failed),
        (150, 0),
        "the fast flow's requests did not fail: {:?}",
        r.error_examples
    );
    // Inline, each heavy run held the only runtime thread for hundreds of milliseconds, and the
    // fast flow's requests due meanwhile waited that long (timed from their due time).
    let p99 = fast.latency.as_ref().unwrap().p99_us;
    eprintln!("fast.b p99 {p99} us");
    assert!(p99 < 150_000, "fast.b p99 {} ms", p99 / 1000);
}

#[test]
fn sigterm_while_the_scenario_loads_exits_130_with_a_message() {
    let d = dir();
    // A feeder large enough that loading takes a while.
    let mut rows = String::from("name,pin\n");
    for i in 0..2_000_000 {
        rows.push_str(&format!("user{i},{}\n", i % 10_000));
    }
    write(d.path(), "users.csv", &rows);
    let s = scenario(
        &d,
        "http://127.0.0.1:9",
        "data:\n  users: { csv: users.csv }\njourneys:\n  j: [ { name: a, get: \"/x/{{ users.name }}\" } ]\nflows:\n  f: { journey: j, vus: 1, per_vu_iterations: 1 }\n",
    );
    let child = std::process::Command::new(bin())
        .args(["run", s.to_str().unwrap(), "--quiet"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The watcher thread exists from the moment loading starts.
    let tasks = format!("/proc/{}/task", child.id());
    wait_for("loading to start", || {
        std::fs::read_dir(&tasks)
            .into_iter()
            .flatten()
            .flatten()
            .any(|t| {
                std::fs::read_to_string(t.path().join("comm"))
                    .is_ok_and(|c| c.starts_with("stampede-load"))
            })
    });
    signal(&child, "TERM");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("interrupted while loading the scenario"),
        "{stderr}"
    );
}

#[test]
fn a_plan_too_large_for_this_machines_memory_is_refused_before_traffic() {
    let d = dir();
    let s = scenario(
        &d,
        "http://127.0.0.1:9",
        "journeys:\n  j: [ { name: a, get: /x } ]\nflows:\n  f: { journey: j, vus: 100000000, duration: 1s }\n",
    );
    for cmd in ["validate", "run"] {
        let (code, _, stderr) = run_bin(&[cmd, s.to_str().unwrap()]);
        assert_eq!(code, 2, "{cmd}: {stderr}");
        assert!(
            stderr.contains("MiB of memory, but this machine has"),
            "{stderr}"
        );
    }
    let s = scenario(
        &d,
        "http://127.0.0.1:9",
        "journeys:\n  j: [ { name: a, get: /x } ]\nflows:\n  f: { journey: j, vus: 1, duration: 1s }\n",
    );
    let (code, stdout, stderr) = run_bin(&["validate", s.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("memory: about"), "{stdout}");
}

/// An HTTP/2 server (prior knowledge, no TLS) whose first connection is cut off by
/// `goaway_first` (a GOAWAY with last stream 0, sent once the request's HEADERS arrived) and whose
/// every even-numbered request is refused with `REFUSED_STREAM` when `refuse_even` is set; all
/// else is answered 200. Returns the server and its (connections, requests) counters.
fn h2_server(
    goaway_first: bool,
    refuse_even: bool,
) -> (
    crate::util::ServerThread,
    std::sync::Arc<std::sync::atomic::AtomicU64>,
) {
    use std::sync::atomic::{AtomicU64, Ordering};
    let conns = std::sync::Arc::new(AtomicU64::new(0));
    let requests = std::sync::Arc::new(AtomicU64::new(0));
    let (c, r) = (conns.clone(), requests.clone());
    let server = serve_on_thread(move |mut stream| {
        let (c, r) = (c.clone(), r.clone());
        async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            if c.fetch_add(1, Ordering::SeqCst) == 0 && goaway_first {
                // Read the preface and frames until the request's HEADERS (type 1) is in.
                let mut buf = Vec::new();
                let mut at = 24;
                loop {
                    while buf.len() >= at + 9 {
                        let len =
                            u32::from_be_bytes([0, buf[at], buf[at + 1], buf[at + 2]]) as usize;
                        if buf[at + 3] == 1 {
                            r.fetch_add(1, Ordering::SeqCst);
                            let mut out = vec![0, 0, 0, 4, 0, 0, 0, 0, 0]; // SETTINGS
                            out.extend_from_slice(&[0, 0, 8, 7, 0, 0, 0, 0, 0]); // GOAWAY
                            out.extend_from_slice(&[0; 8]); // last stream 0, NO_ERROR
                            let _ = stream.write_all(&out).await;
                            let _ = stream.flush().await;
                            let mut rest = [0u8; 1024];
                            while matches!(stream.read(&mut rest).await, Ok(n) if n > 0) {}
                            return;
                        }
                        at += 9 + len;
                    }
                    let mut chunk = [0u8; 4096];
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            }
            let Ok(mut conn) = h2::server::handshake(stream).await else {
                return;
            };
            while let Some(Ok((_req, mut respond))) = conn.accept().await {
                let n = r.fetch_add(1, Ordering::SeqCst);
                if refuse_even && n % 2 == 0 {
                    respond.send_reset(h2::Reason::REFUSED_STREAM);
                } else {
                    let _ = respond.send_response(http::Response::new(()), true);
                }
            }
        }
    });
    (server, requests)
}

fn h2_run(srv: &crate::util::ServerThread) -> stampede::report::RunResult {
    let d = dir();
    let s = scenario(
        &d,
        &format!("http://{}", srv.addr),
        "defaults: { http: http2, timeout: 2s }\njourneys:\n  j: [ { name: a, get: /x } ]\nflows:\n  f: { journey: j, vus: 1, per_vu_iterations: 4 }\n",
    );
    let (_, stderr, r, _) = run_bin_scenario(&s, &[]);
    assert!(!stderr.contains("panicked"), "{stderr}");
    r
}

#[test]
fn an_http2_refused_stream_is_replayed_since_the_server_did_not_process_it() {
    let (srv, requests) = h2_server(false, true);
    let r = h2_run(&srv);
    let a = step(&r, "f.a");
    assert_eq!((a.requests, a.failed), (4, 0), "{:?}", r.error_examples);
    // Each iteration's first stream was refused and sent once more.
    assert_eq!(requests.load(std::sync::atomic::Ordering::SeqCst), 8);
}

#[test]
fn an_http2_goaway_below_the_stream_is_replayed_on_a_new_connection() {
    let (srv, requests) = h2_server(true, false);
    let r = h2_run(&srv);
    let a = step(&r, "f.a");
    assert_eq!((a.requests, a.failed), (4, 0), "{:?}", r.error_examples);
    assert_eq!(requests.load(std::sync::atomic::Ordering::SeqCst), 5);
}
