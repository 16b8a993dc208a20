//! WebSocket steps against a local server: send, expect (JSONPath, regex, extract), hold and
//! close; one connection reused across steps; a refused handshake, a server that closes
//! mid-journey, and a message that never comes, each counted on its key.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

use crate::util::*;

#[derive(Default)]
struct WsSeen {
    handshakes: AtomicU64,
    protocols: Mutex<Vec<String>>,
    received: Mutex<Vec<String>>,
    closes: Mutex<Vec<u16>>,
}

/// `/echo` greets, then answers each text with `{"echo": text}`; `/ticks` sends a tick every
/// 5 ms; `/close-mid` closes with 1011 after the first message; `/drop` drops the connection
/// after it; `/silent` never speaks;
/// `/refuse` answers the upgrade with 403.
// The callback type is tungstenite's, large error variant included.
#[allow(clippy::result_large_err)]
fn ws_server() -> (ServerThread, Arc<WsSeen>) {
    let seen = Arc::new(WsSeen::default());
    let seen2 = seen.clone();
    let srv = serve_on_thread(move |stream| {
        let seen = seen2.clone();
        async move {
            let path = Arc::new(Mutex::new(String::new()));
            let p2 = path.clone();
            let s2 = seen.clone();
            let cb = move |req: &Request, mut resp: Response| -> Result<Response, ErrorResponse> {
                *p2.lock().unwrap() = req.uri().path().to_string();
                if req.uri().path() == "/refuse" {
                    let mut r = ErrorResponse::new(Some("no".into()));
                    *r.status_mut() = http::StatusCode::FORBIDDEN;
                    return Err(r);
                }
                if let Some(p) = req.headers().get("sec-websocket-protocol") {
                    let offered = p.to_str().unwrap().to_string();
                    s2.protocols.lock().unwrap().push(offered.clone());
                    let first = offered.split(',').next().unwrap().trim().to_string();
                    resp.headers_mut()
                        .insert("sec-websocket-protocol", first.parse().unwrap());
                }
                Ok(resp)
            };
            let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, cb).await else {
                return;
            };
            seen.handshakes.fetch_add(1, Ordering::SeqCst);
            let path = path.lock().unwrap().clone();
            match path.as_str() {
                "/ticks" => {
                    let (mut tx, mut rx) = ws.split();
                    let seen = seen.clone();
                    let reader = tokio::spawn(async move {
                        while let Some(Ok(m)) = rx.next().await {
                            if let Message::Close(f) = m {
                                seen.closes
                                    .lock()
                                    .unwrap()
                                    .push(f.map_or(0, |f| u16::from(f.code)));
                                return;
                            }
                        }
                    });
                    for n in 0.. {
                        let tick = format!("{{\"type\":\"tick\",\"n\":{n}}}");
                        if reader.is_finished() || tx.send(Message::text(tick)).await.is_err() {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
                "/silent" => while let Some(Ok(_)) = ws.next().await {},
                _ => {
                    if path == "/echo" {
                        let _ = ws.send(Message::text("{\"type\":\"hello\"}")).await;
                    }
                    while let Some(Ok(m)) = ws.next().await {
                        match m {
                            Message::Text(t) => {
                                seen.received.lock().unwrap().push(t.to_string());
                                if path == "/drop" {
                                    // Gone without a close frame, as a crashed server goes.
                                    return;
                                }
                                if path == "/close-mid" {
                                    let _ = ws
                                        .close(Some(CloseFrame {
                                            code: 1011u16.into(),
                                            reason: "going away".into(),
                                        }))
                                        .await;
                                    continue;
                                }
                                let v: serde_json::Value = serde_json::from_str(&t)
                                    .unwrap_or(serde_json::Value::String(t.to_string()));
                                let reply = serde_json::json!({ "echo": v }).to_string();
                                if ws.send(Message::text(reply)).await.is_err() {
                                    return;
                                }
                            }
                            Message::Close(f) => {
                                seen.closes
                                    .lock()
                                    .unwrap()
                                    .push(f.map_or(0, |f| u16::from(f.code)));
                            }
                            _ => {}
                        }
                    }
                }
            }
        }
    });
    (srv, seen)
}

#[test]
fn send_expect_hold_and_close_on_one_connection_the_user_keeps_across_steps() {
    let (srv, seen) = ws_server();
    let d = dir();
    let s = write_scenario(
        d.path(),
        &format!("http://{}", srv.addr),
        r#"vars: { pair: BTC-EUR }
journeys:
  j:
    - name: chat
      ws: /echo
      subprotocols: [chat.v2, chat.v1]
      steps:
        - expect: { json: { $.type: hello } }
        - send: { subscribe: "{{ pair }}", n: 3 }
        - name: subscribed
          expect: { json: { $.echo.subscribe: BTC-EUR }, extract: { n: $.echo.n }, within: 2s }
    - script: 'if n != 3 { throw "extracted " + n; }'
    - name: again
      ws: /echo
      steps:
        - send: 'plain {{ n }}'
        - expect: { regex: 'plain 3', within: 2s }
    - name: feed
      ws: /ticks
      steps:
        - hold: 200ms
        - close: 3001
flows:
  f: { journey: j, vus: 1, per_vu_iterations: 2 }
"#,
    );
    let (code, _, r, _) = run_bin_scenario(&s, &[]);
    assert_exit(code, 0, &r, &format!("{:?}", r.error_examples));
    // One handshake per iteration for /echo (the second step reused it) and one for /ticks.
    assert_eq!(
        seen.handshakes.load(Ordering::SeqCst),
        4,
        "{:?}",
        r.error_examples
    );
    assert_eq!(
        *seen.protocols.lock().unwrap(),
        vec!["chat.v2, chat.v1".to_string(); 2]
    );
    let chat = step(&r, "f.chat");
    assert_eq!((chat.requests, chat.failed), (2, 0));
    assert_eq!(chat.messages_out, 2);
    assert_eq!(chat.messages_in, 4, "hello and the echo, twice");
    assert_eq!(
        chat.latency.as_ref().map_or(0, |l| l.count),
        2,
        "two handshakes timed"
    );
    let again = step(&r, "f.again");
    assert_eq!((again.requests, again.failed), (2, 0));
    assert_eq!(
        again.latency.as_ref().map_or(0, |l| l.count),
        0,
        "a reused connection has no handshake"
    );
    for key in ["f.chat-expect1", "f.subscribed", "f.again-expect1"] {
        let e = step(&r, key);
        assert_eq!(
            (
                e.requests,
                e.failed,
                e.latency.as_ref().map_or(0, |l| l.count)
            ),
            (2, 0, 2),
            "{key}"
        );
    }
    let feed = step(&r, "f.feed");
    assert_eq!(feed.failed, 0);
    assert!(
        feed.messages_in >= 4,
        "ticks counted while holding: {}",
        feed.messages_in
    );
    assert!(
        seen.closes.lock().unwrap().contains(&3001),
        "{:?}",
        seen.closes
    );
    // The end of each iteration closed the /echo connection with a normal close.
    assert_eq!(
        seen.closes
            .lock()
            .unwrap()
            .iter()
            .filter(|c| **c == 1000)
            .count(),
        2
    );
    let received = seen.received.lock().unwrap();
    assert!(received.contains(&"plain 3".to_string()), "{received:?}");
    assert!(
        received
            .iter()
            .any(|m| m.contains("\"subscribe\":\"BTC-EUR\"") && m.contains("\"n\":3")),
        "{received:?}"
    );
}

#[test]
fn a_refused_handshake_a_close_mid_journey_and_a_silent_server_are_step_errors() {
    let (srv, _) = ws_server();
    let d = dir();
    let s = write_scenario(
        d.path(),
        &format!("http://{}", srv.addr),
        r#"defaults: { on_error: continue }
journeys:
  j:
    - { name: refused, ws: /refuse, steps: [ { send: hi } ] }
    - name: dropped
      ws: /close-mid
      steps:
        - send: hi
        - name: answer
          expect: { regex: '.', within: 2s }
    - name: cut
      ws: /drop
      steps:
        - send: hi
        - name: lost
          expect: { regex: '.', within: 2s }
    - name: quiet
      ws: /silent
      steps:
        - send: hi
        - name: never
          expect: { json: { $.type: tick }, within: 150ms }
flows:
  f: { journey: j, vus: 1, per_vu_iterations: 1 }
"#,
    );
    let (code, _, r, _) = run_bin_scenario(&s, &[]);
    assert_eq!(code, 0, "the target's failures are counted, not gated");
    let refused = step(&r, "f.refused");
    assert_eq!(
        refused.errors.get("status").copied(),
        Some(1),
        "{:?}",
        refused.errors
    );
    assert_eq!(
        refused.statuses.get("403").copied(),
        Some(1),
        "{:?}",
        refused.statuses
    );
    let answer = step(&r, "f.answer");
    assert_eq!(
        answer.errors.get("ws_closed").copied(),
        Some(1),
        "{:?}",
        answer.errors
    );
    let lost = step(&r, "f.lost");
    assert_eq!(
        lost.errors.get("ws_closed").copied(),
        Some(1),
        "{:?}",
        lost.errors
    );
    let never = step(&r, "f.never");
    assert_eq!(
        never.errors.get("timeout").copied(),
        Some(1),
        "{:?}",
        never.errors
    );
    let message = |key: &str| {
        r.error_examples
            .iter()
            .find(|e| e.key == key)
            .map(|e| e.message.clone())
            .unwrap_or_default()
    };
    assert!(
        message("f.refused").contains("403"),
        "{}",
        message("f.refused")
    );
    assert!(
        message("f.answer").contains("1011"),
        "{}",
        message("f.answer")
    );
    assert!(
        message("f.never").contains("none arrived"),
        "{}",
        message("f.never")
    );
}

#[test]
fn ws_keys_are_validated_with_positions() {
    let d = dir();
    let s = write_scenario(
        d.path(),
        "http://127.0.0.1:9",
        "journeys:\n  j:\n    - name: a\n      ws: /x\n      check: { status: 101 }\n      steps:\n        - { send: hi, hold: 1s }\n        - expect: { regex: '(' }\n        - close: 1006\n        - send: late\n    - { name: b, get: /y, subprotocols: [x] }\n    - { name: c, ws: /z }\nflows:\n  f: { journey: j, vus: 1, per_vu_iterations: 1 }\n",
    );
    let (code, _, err) = run_bin(&["validate", s.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    for (line, what) in [
        (6, "does not apply to a `ws` step"),
        (8, "one of send, expect, hold or close"),
        (9, "invalid regex"),
        (10, "3000 to 4999"),
        (11, "nothing can follow `close`"),
        (12, "belongs to a `ws` step"),
        (13, "needs `steps`"),
    ] {
        assert!(
            err.contains(&format!("s.yaml:{line}:")) && err.contains(what),
            "line {line}, {what}: {err}"
        );
    }
}

#[test]
fn a_wss_socket_speaks_tls_to_an_https_target() {
    let acceptor = tls_acceptor();
    let srv = serve_on_thread(move |stream| {
        let acceptor = acceptor.clone();
        async move {
            let Ok(tls) = acceptor.accept(stream).await else {
                return;
            };
            let Ok(mut ws) = tokio_tungstenite::accept_async(tls).await else {
                return;
            };
            while let Some(Ok(Message::Text(t))) = ws.next().await {
                let _ = ws.send(Message::text(format!("secure {t}"))).await;
            }
        }
    });
    let d = dir();
    let s = write_scenario(
        d.path(),
        &format!("https://localhost:{}", srv.addr.port()),
        "defaults: { insecure: true, hosts: { localhost: 127.0.0.1 } }\njourneys:\n  j:\n    - name: s\n      ws: /secure\n      steps:\n        - send: hi\n        - { name: reply, expect: { regex: '^secure hi$', within: 2s } }\nflows:\n  f: { journey: j, vus: 1, per_vu_iterations: 1 }\n",
    );
    let (code, _, r, _) = run_bin_scenario(&s, &[]);
    assert_exit(code, 0, &r, &format!("{:?}", r.error_examples));
    let st = step(&r, "f.s");
    assert_eq!((st.requests, st.failed), (1, 0), "{:?}", r.error_examples);
    assert!(st.tls.is_some(), "the handshake's TLS time is recorded");
    assert_eq!(step(&r, "f.reply").failed, 0);
}
