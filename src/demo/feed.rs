//! `GET /ws/prices`: the wallet's price feed over WebSocket. A client subscribes to pairs
//! (`{"subscribe": ["TON-USDT"]}`); every tick reads the day's trading from the same database
//! pool that logins and exchanges use, so watchers compete with them for connections.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

use super::wallet::Pool;

/// How often subscribed prices are pushed.
pub const TICK: Duration = Duration::from_millis(250);

/// Answers an upgrade request: `101` and the feed on the upgraded connection, or `400` when the
/// request is not a WebSocket handshake.
pub fn upgrade(pool: Arc<Pool>, mut req: Request<Incoming>) -> Response<Full<Bytes>> {
    let key = req
        .headers()
        .get(http::header::SEC_WEBSOCKET_KEY)
        .map(|k| derive_accept_key(k.as_bytes()));
    let wants = req
        .headers()
        .get(http::header::UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"));
    let (Some(accept), true) = (key, wants) else {
        let mut r = Response::new(Full::new(Bytes::from_static(
            b"{\"error\":\"expected a WebSocket upgrade\"}",
        )));
        *r.status_mut() = StatusCode::BAD_REQUEST;
        return r;
    };
    let upgrading = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        if let Ok(up) = upgrading.await {
            let ws = WebSocketStream::from_raw_socket(TokioIo::new(up), Role::Server, None).await;
            feed(ws, pool).await;
        }
    });
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("Upgrade"),
    );
    h.insert(
        http::header::UPGRADE,
        http::HeaderValue::from_static("websocket"),
    );
    if let Ok(v) = accept.parse() {
        h.insert(http::header::SEC_WEBSOCKET_ACCEPT, v);
    }
    r
}

async fn feed<S>(ws: WebSocketStream<S>, pool: Arc<Pool>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut tx, mut rx) = ws.split();
    let mut pairs: Vec<(String, f64)> = Vec::new();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            m = rx.next() => {
                let text = match m {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                    Some(Ok(_)) => continue,
                };
                let reply = match subscribe(&text) {
                    Ok(p) => {
                        let names: Vec<&str> = p.iter().map(|(n, _)| n.as_str()).collect();
                        let r = json!({ "type": "subscribed", "pairs": names });
                        pairs = p;
                        r
                    }
                    Err(e) => json!({ "type": "error", "error": e }),
                };
                if tx.send(Message::text(reply.to_string())).await.is_err() {
                    return;
                }
            }
            _ = tick.tick(), if !pairs.is_empty() => {
                // The day's trades so far move the price a little: one read on the shared pool.
                let (traded, _) = pool
                    .with(|db| {
                        db.queries += 1;
                        Ok(db.conn().query_row(
                            "SELECT COALESCE(SUM(trades), 0) FROM daily_report WHERE day = date('now')",
                            [],
                            |r| r.get::<_, i64>(0),
                        )?)
                    })
                    .await;
                let drift = 1.0 + (traded.unwrap_or(0) % 100) as f64 / 10_000.0;
                let ts = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64);
                for (pair, base) in &pairs {
                    let msg = json!({ "type": "tick", "pair": pair, "price": base * drift, "ts": ts });
                    if tx.send(Message::text(msg.to_string())).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

/// The pairs a `{"subscribe": [...]}` message asks for, with their base prices.
fn subscribe(text: &str) -> Result<Vec<(String, f64)>, String> {
    let v: Value = serde_json::from_str(text).map_err(|_| "expected JSON".to_string())?;
    let list = v["subscribe"]
        .as_array()
        .ok_or("expected {\"subscribe\": [\"TON-USDT\", ...]}")?;
    list.iter()
        .map(|p| {
            let name = p.as_str().unwrap_or_default();
            let (from, to) = name.split_once('-').unwrap_or((name, ""));
            super::wallet::rate(from, to)
                .map(|r| (name.to_string(), r))
                .ok_or_else(|| format!("unknown pair `{name}` (assets: USDT, TON, BTC)"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_name_known_pairs() {
        assert_eq!(
            subscribe(r#"{"subscribe":["TON-USDT"]}"#).unwrap(),
            vec![("TON-USDT".to_string(), 5.0)]
        );
        assert!(
            subscribe(r#"{"subscribe":["DOGE-USDT"]}"#)
                .unwrap_err()
                .contains("DOGE-USDT")
        );
        assert!(subscribe("hi").is_err());
    }
}
