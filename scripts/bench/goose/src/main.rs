//! Goose's side of the peer suite: `GOOSE_WORKLOAD=ping` (GET /ping) or `journey` (login, then the
//! balance with the token, then an exchange with the amount from the balance), with an optional
//! fixed wait between iterations in `GOOSE_WAIT_MS`. Everything else is Goose's own command line.

use std::time::Duration;

use goose::goose::GooseResponse;
use goose::prelude::*;
use serde_json::{json, Value};

async fn ping(user: &mut GooseUser) -> TransactionResult {
    user.get("/ping").await?;
    Ok(())
}

async fn json_of(resp: GooseResponse) -> Option<Value> {
    resp.response.ok()?.json::<Value>().await.ok()
}

async fn trade(user: &mut GooseUser) -> TransactionResult {
    let login = user
        .post_json("/auth/login", &json!({ "user": "u", "password": "secret" }))
        .await?;
    let Some(token) = json_of(login)
        .await
        .and_then(|v| v["token"].as_str().map(String::from))
    else {
        return Ok(());
    };
    let auth = format!("Bearer {token}");
    let rb = user
        .get_request_builder(&GooseMethod::Get, "/wallet/balance")?
        .header("Authorization", &auth);
    let balance = user
        .request(GooseRequest::builder().set_request_builder(rb).build())
        .await?;
    let usdt = json_of(balance)
        .await
        .and_then(|v| v["USDT"].as_f64())
        .unwrap_or(0.0);
    let rb = user
        .get_request_builder(&GooseMethod::Post, "/exchange")?
        .header("Authorization", &auth)
        .json(&json!({ "from": "USDT", "to": "TON", "amount": usdt }));
    user.request(GooseRequest::builder().set_request_builder(rb).build())
        .await?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), GooseError> {
    let journey = std::env::var("GOOSE_WORKLOAD").is_ok_and(|w| w == "journey");
    let mut scenario = scenario!("bench");
    if let Some(ms) = std::env::var("GOOSE_WAIT_MS")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        let wait = Duration::from_millis(ms);
        scenario = scenario.set_wait_time(wait, wait)?;
    }
    scenario = if journey {
        scenario.register_transaction(transaction!(trade))
    } else {
        scenario.register_transaction(transaction!(ping))
    };
    GooseAttack::initialize()?
        .register_scenario(scenario)
        .execute()
        .await?;
    Ok(())
}
