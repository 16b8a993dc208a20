//! Fitting the tools teams run: live Prometheus metrics scraped mid-run, a browser recording
//! imported into a journey that works against a server issuing fresh tokens, shell completions,
//! the manual page and `validate --json`.

use std::collections::HashSet;
use std::io::{BufRead, Read, Write};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};

use crate::util::*;

/// GETs `http://addr/metrics` and returns the body.
fn scrape(addr: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_string()
}

/// `name{labels} value` lines of Prometheus text: (name, labels, value).
fn samples(text: &str) -> Vec<(String, String, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            let (name, labels) = match series.split_once('{') {
                Some((n, rest)) => (n.to_string(), rest.trim_end_matches('}').to_string()),
                None => (series.to_string(), String::new()),
            };
            (name, labels, value.parse::<f64>().unwrap())
        })
        .collect()
}

fn total(s: &[(String, String, f64)], name: &str) -> f64 {
    s.iter()
        .filter(|(n, _, _)| n == name)
        .map(|(_, _, v)| v)
        .sum()
}

#[test]
fn live_metrics_are_scraped_while_the_run_goes_and_agree_with_its_results() {
    let srv = start_server(ServerConfig::default());
    let d = dir();
    let s = ok_scenario(d.path(), &srv, "rate: 40/s, duration: 5s");
    let out = d.path().join("out");
    let mut child = std::process::Command::new(bin())
        .args(["run", s.to_str().unwrap(), "--quiet", "--no-progress"])
        .args(["--out", out.to_str().unwrap()])
        .args(["--metrics-listen", "127.0.0.1:0", "--interval", "200ms"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let addr = loop {
        let line = rx
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("the address of the metrics endpoint");
        if let Some(rest) = line.split("http://").nth(1) {
            break rest.trim_end_matches("/metrics").to_string();
        }
    };
    // Counters rise while the load goes.
    let mut first = 0.0;
    wait_for("requests counted live", || {
        first = total(&samples(&scrape(&addr)), "stampede_requests_total");
        first > 0.0
    });
    let mut later = String::new();
    wait_for("the request counter to rise", || {
        later = scrape(&addr);
        total(&samples(&later), "stampede_requests_total") > first
    });
    let s = samples(&later);
    assert_eq!(
        s.iter()
            .find(|(n, l, _)| n == "stampede_run_phase" && l.contains("\"load\""))
            .map(|x| x.2),
        Some(1.0),
        "the run is in its load"
    );
    // The histogram is consistent: buckets never fall, +Inf is the count, which is the
    // requests so far.
    let buckets: Vec<f64> = s
        .iter()
        .filter(|(n, _, _)| n == "stampede_latency_seconds_bucket")
        .map(|x| x.2)
        .collect();
    assert!(buckets.len() >= 10, "{later}");
    assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");
    let count = total(&s, "stampede_latency_seconds_count");
    assert_eq!(*buckets.last().unwrap(), count);
    assert_eq!(count, total(&s, "stampede_requests_total"));
    assert!(total(&s, "stampede_target_rate") > 0.0);
    // Every family is described (a counter with no samples yet has its TYPE line).
    for name in stampede::run::live::METRIC_NAMES {
        let family = name.trim_end_matches("_total");
        assert!(
            later.contains(&format!("# TYPE {family} ")),
            "{family} is not served:\n{later}"
        );
    }
    let status = child.wait().unwrap();
    let r = stampede::report::read_json(&out.join("results.json")).unwrap();
    assert_exit(status.code().unwrap_or(-1), 0, &r, "the run");
    assert!(
        count <= step(&r, "f.ok").requests as f64,
        "live counts are a part of the final ones"
    );
}

/// A server that issues a fresh token at each login and accepts only tokens it issued.
/// The tokens a server issued, and how many calls it authorised.
type Issued = (Arc<Mutex<Vec<String>>>, Arc<Mutex<u64>>);

fn token_server() -> (ServerThread, Issued) {
    let issued = Arc::new(Mutex::new(Vec::<String>::new()));
    let authorised = Arc::new(Mutex::new(0u64));
    let (i2, a2) = (issued.clone(), authorised.clone());
    let server = serve_on_thread(move |stream| {
        let (issued, authorised) = (i2.clone(), a2.clone());
        async move {
            let svc =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let (issued, authorised) = (issued.clone(), authorised.clone());
                    async move {
                        let path = req.uri().path().to_string();
                        let bearer = req
                            .headers()
                            .get("authorization")
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.strip_prefix("Bearer "))
                            .map(str::to_string);
                        let _ = req.into_body().collect().await;
                        let (code, body) = match path.as_str() {
                            "/" => (200, "<html><body>shop</body></html>".to_string()),
                            "/api/login" => {
                                let mut v = issued.lock().unwrap();
                                let t =
                                    format!("fresh-{:016x}", 0x5eed_u64 + v.len() as u64 * 7919);
                                v.push(t.clone());
                                (200, format!(r#"{{"token":"{t}","user":"alice"}}"#))
                            }
                            "/api/me" => match bearer {
                                Some(t) if issued.lock().unwrap().contains(&t) => {
                                    *authorised.lock().unwrap() += 1;
                                    (200, r#"{"name":"alice"}"#.to_string())
                                }
                                _ => (401, r#"{"error":"unauthorised"}"#.to_string()),
                            },
                            _ => (404, "{}".to_string()),
                        };
                        let mut r = hyper::Response::new(Full::new(Bytes::from(body)));
                        *r.status_mut() = hyper::StatusCode::from_u16(code).unwrap();
                        Ok::<_, std::convert::Infallible>(r)
                    }
                });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                .await;
        }
    });
    (server, (issued, authorised))
}

const RECORDED_TOKEN: &str = "rec-0123456789abcdef";
const RECORDED_PASSWORD: &str = "hunter2-correct-horse";

fn har() -> String {
    let entry = |t: &str,
                 method: &str,
                 url: &str,
                 req_headers: &str,
                 post: &str,
                 status: u16,
                 mime: &str,
                 body: &str| {
        format!(
            r#"{{"startedDateTime":"{t}","time":40,"request":{{"method":"{method}","url":"{url}","headers":[{req_headers}]{post}}},"response":{{"status":{status},"headers":[],"content":{{"mimeType":"{mime}","text":{body}}}}}}}"#
        )
    };
    let login_body =
        serde_json::json!({ "user": "alice", "password": RECORDED_PASSWORD }).to_string();
    let entries = [
        entry(
            "2026-12-01T10:00:00.000Z",
            "GET",
            "https://shop.example.com/",
            r#"{"name":"User-Agent","value":"Mozilla/5.0"},{"name":"Accept-Language","value":"en"}"#,
            "",
            200,
            "text/html",
            &serde_json::to_string("<html>shop</html>").unwrap(),
        ),
        entry(
            "2026-12-01T10:00:00.100Z",
            "GET",
            "https://shop.example.com/static/site.css",
            "",
            "",
            200,
            "text/css",
            "\"body{}\"",
        ),
        entry(
            "2026-12-01T10:00:00.150Z",
            "GET",
            "https://cdn.example.net/app.js",
            "",
            "",
            200,
            "application/javascript",
            "\"1\"",
        ),
        entry(
            "2026-12-01T10:00:02.000Z",
            "POST",
            "https://shop.example.com/api/login",
            r#"{"name":"Content-Type","value":"application/json"},{"name":"Cookie","value":"sid=recorded-session-cookie"}"#,
            &format!(
                r#","postData":{{"mimeType":"application/json","text":{}}}"#,
                serde_json::to_string(&login_body).unwrap()
            ),
            200,
            "application/json",
            &serde_json::to_string(&format!(r#"{{"token":"{RECORDED_TOKEN}","user":"alice"}}"#))
                .unwrap(),
        ),
        entry(
            "2026-12-01T10:00:03.500Z",
            "GET",
            "https://shop.example.com/api/me",
            &format!(
                r#"{{"name":"Authorization","value":"Bearer {RECORDED_TOKEN}"}},{{"name":":authority","value":"shop.example.com"}},{{"name":"X-Signature","value":"sig9f8e7d6c5b4a3f2e1"}}"#
            ),
            "",
            200,
            "application/json",
            "\"{\\\"name\\\":\\\"alice\\\"}\"",
        ),
    ];
    format!(
        r#"{{"log":{{"version":"1.2","entries":[{}]}}}}"#,
        entries.join(",")
    )
}

#[test]
fn a_recording_imports_into_a_journey_that_works_against_fresh_tokens_and_keeps_no_secret() {
    let d = dir();
    let har_path = write(d.path(), "shop.har", &har());
    let yaml_path = d.path().join("shop.yaml");
    let (code, _, err) = run_bin(&[
        "import",
        har_path.to_str().unwrap(),
        "--out",
        yaml_path.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let yaml = std::fs::read_to_string(&yaml_path).unwrap();
    for secret in [RECORDED_TOKEN, RECORDED_PASSWORD, "recorded-session-cookie"] {
        assert!(!yaml.contains(secret), "`{secret}` was copied:\n{yaml}");
    }
    assert!(
        !yaml.contains("cdn.example.net") && !yaml.contains("site.css"),
        "{yaml}"
    );
    assert!(
        !yaml.to_ascii_lowercase().contains("mozilla"),
        "browser noise kept:\n{yaml}"
    );
    assert!(yaml.contains("target: https://shop.example.com"), "{yaml}");
    assert!(err.contains("correlated `token`"), "{err}");
    assert!(
        err.contains("password"),
        "the replaced secret is named: {err}"
    );
    assert!(
        err.contains("could not correlate the header x-signature"),
        "what could not be correlated is named: {err}"
    );

    // It validates as imported; the secrets' placeholders name their variables.
    let (code, out, verr) = run_bin(&["validate", yaml_path.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{verr}\n{yaml}");
    assert!(yaml.contains("set-STAMPEDE_PASSWORD"), "{yaml}");
    let o = std::process::Command::new(bin())
        .args(["validate", yaml_path.to_str().unwrap()])
        .env("STAMPEDE_PASSWORD", "whatever-the-user-sets")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{}{}\n{yaml}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );

    let (server, (issued, authorised)) = token_server();
    let target = format!("http://{}", server.addr);
    // The recorded password is a variable read from the environment, masked in every output.
    assert!(err.contains("STAMPEDE_PASSWORD"), "{err}");
    let out = d.path().join("out");
    let o = std::process::Command::new(bin())
        .args([
            "run",
            yaml_path.to_str().unwrap(),
            "--target",
            &target,
            "--quiet",
        ])
        .args(["--out", out.to_str().unwrap()])
        .env("STAMPEDE_PASSWORD", "whatever-the-user-sets")
        .output()
        .unwrap();
    let r = stampede::report::read_json(&out.join("results.json")).unwrap();
    assert_exit(
        o.status.code().unwrap_or(-1),
        0,
        &r,
        &format!("{}\n{yaml}", String::from_utf8_lossy(&o.stderr)),
    );
    assert_eq!(issued.lock().unwrap().len(), 1, "one login");
    assert_eq!(
        *authorised.lock().unwrap(),
        1,
        "the authorised call carried the token this run was issued, not the recorded one"
    );
}

#[test]
fn completions_and_the_manual_are_generated_from_the_commands() {
    for shell in ["bash", "zsh", "fish"] {
        let (code, out, err) = run_bin(&["completions", shell]);
        assert_eq!(code, 0, "{shell}: {err}");
        for word in ["stampede", "merge", "import", "metrics-listen"] {
            assert!(out.contains(word), "{shell} completions lack {word}");
        }
    }
    let (code, out, _) = run_bin(&["man"]);
    assert_eq!(code, 0);
    assert!(
        out.contains(".TH stampede 1") && out.contains("STAMPEDE MERGE"),
        "{out}"
    );
    assert!(
        out.contains("EXIT STATUS") && out.contains("STAMPEDE_SEGMENT"),
        "{out}"
    );
}

#[test]
fn validate_json_gives_positions_for_editors() {
    let d = dir();
    let s = write(
        d.path(),
        "s.yaml",
        "target: http://127.0.0.1:1\njourneys:\n  j: [ { name: a, get: /x } ]\nflows:\n  f: { journey: j, rtae: 5/s }\n",
    );
    let (code, out, _) = run_bin(&["validate", "--json", s.to_str().unwrap()]);
    assert_eq!(code, 2);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["ok"], false);
    let p = &v["problems"][0];
    assert_eq!(p["line"], 5, "{v}");
    assert!(p["column"].as_u64().unwrap() > 1, "{v}");
    assert!(p["hint"].as_str().unwrap_or("").contains("rate"), "{v}");
    let names: HashSet<&str> = ["file", "line", "column", "message", "hint"].into();
    assert!(
        p.as_object()
            .unwrap()
            .keys()
            .all(|k| names.contains(k.as_str()))
    );
}
