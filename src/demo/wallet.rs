//! The wallet's storage and handlers: SQLite behind a small bounded pool, every flow synchronous.
//!
//! The design flaw is deliberate and common: login verifies a CPU-heavy password hash while it
//! holds a pool connection (it opened a transaction to record the session first), and an exchange
//! does its reporting and accounting writes synchronously on the same pool. Each flow alone fits;
//! together, logins hold the connections that exchanges wait for.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::Semaphore;

use super::DemoConfig;

/// The password every seeded user has.
pub const PASSWORD: &str = "password";
/// Number of seeded users (`user00001` … `user10000`).
pub const USERS: usize = 10_000;
const SALT: &[u8] = b"stampede-demo-salt";

/// Database time and query count of one request, for `Server-Timing`.
#[derive(Debug, Default, Clone, Copy)]
pub struct DbTiming {
    /// Time spent running queries (and the work done while holding the connection).
    pub db: Duration,
    /// Queries run.
    pub queries: u32,
    /// Time spent waiting for a pool connection.
    pub pool_wait: Duration,
}

/// An HTTP-level answer from a handler.
#[derive(Debug)]
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// JSON body.
    pub body: Value,
    /// Database timings.
    pub timing: DbTiming,
}

fn answer(status: u16, body: Value, timing: DbTiming) -> Answer {
    Answer {
        status,
        body,
        timing,
    }
}

/// A bounded pool of SQLite connections.
#[derive(Debug)]
pub struct Pool {
    permits: Semaphore,
    conns: Mutex<Vec<Connection>>,
    /// Requests waiting for a connection right now.
    pub waiting: AtomicI64,
    /// Connections in use right now.
    pub in_use: AtomicI64,
    /// Pool size.
    pub size: usize,
}

/// Why a database call failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// SQLite said no.
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The worker thread died.
    #[error("database worker failed")]
    Worker,
}

impl Pool {
    /// Opens `size` connections to the database file at `path`.
    pub fn open(path: &std::path::Path, size: usize) -> Result<Pool, DbError> {
        let mut conns = Vec::new();
        for _ in 0..size.max(1) {
            let c = Connection::open(path)?;
            c.busy_timeout(Duration::from_secs(10))?;
            c.pragma_update(None, "journal_mode", "WAL")?;
            c.pragma_update(None, "synchronous", "NORMAL")?;
            conns.push(c);
        }
        Ok(Pool {
            permits: Semaphore::new(conns.len()),
            size: conns.len(),
            conns: Mutex::new(conns),
            waiting: AtomicI64::new(0),
            in_use: AtomicI64::new(0),
        })
    }

    /// Runs `f` on a pooled connection in a blocking thread, timing the wait and the work.
    pub async fn with<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut Connection, &mut u32) -> Result<T, DbError> + Send + 'static,
    ) -> (Result<T, DbError>, DbTiming) {
        let asked = Instant::now();
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let permit = self.permits.acquire().await;
        self.waiting.fetch_sub(1, Ordering::Relaxed);
        let pool_wait = asked.elapsed();
        let Ok(_permit) = permit else {
            return (
                Err(DbError::Worker),
                DbTiming {
                    pool_wait,
                    ..DbTiming::default()
                },
            );
        };
        let Some(mut conn) = self.conns.lock().unwrap_or_else(|p| p.into_inner()).pop() else {
            return (
                Err(DbError::Worker),
                DbTiming {
                    pool_wait,
                    ..DbTiming::default()
                },
            );
        };
        self.in_use.fetch_add(1, Ordering::Relaxed);
        let joined = tokio::task::spawn_blocking(move || {
            let start = Instant::now();
            let mut queries = 0;
            let r = f(&mut conn, &mut queries);
            (conn, r, start.elapsed(), queries)
        })
        .await;
        self.in_use.fetch_sub(1, Ordering::Relaxed);
        match joined {
            Ok((conn, r, db, queries)) => {
                self.conns
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(conn);
                (
                    r,
                    DbTiming {
                        db,
                        queries,
                        pool_wait,
                    },
                )
            }
            Err(_) => (
                Err(DbError::Worker),
                DbTiming {
                    pool_wait,
                    ..DbTiming::default()
                },
            ),
        }
    }
}

/// Creates the schema and seeds users and balances (deterministic).
pub fn seed(path: &std::path::Path, cfg: &DemoConfig) -> Result<(), DbError> {
    let mut c = Connection::open(path)?;
    c.pragma_update(None, "journal_mode", "WAL")?;
    c.execute_batch(
        "CREATE TABLE IF NOT EXISTS users (id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, hash BLOB NOT NULL);
         CREATE TABLE IF NOT EXISTS balances (user_id INTEGER NOT NULL, asset TEXT NOT NULL, amount REAL NOT NULL, PRIMARY KEY (user_id, asset));
         CREATE TABLE IF NOT EXISTS sessions (token TEXT PRIMARY KEY, user_id INTEGER NOT NULL, created_ms INTEGER NOT NULL);
         CREATE TABLE IF NOT EXISTS ledger (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL, asset TEXT NOT NULL, delta REAL NOT NULL, ts_ms INTEGER NOT NULL);
         CREATE TABLE IF NOT EXISTS audit (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL, action TEXT NOT NULL, detail TEXT NOT NULL, ts_ms INTEGER NOT NULL);
         CREATE TABLE IF NOT EXISTS daily_report (day TEXT NOT NULL, asset TEXT NOT NULL, volume REAL NOT NULL, trades INTEGER NOT NULL, PRIMARY KEY (day, asset));
         CREATE TABLE IF NOT EXISTS events (user_id INTEGER NOT NULL, kind TEXT NOT NULL, ts_ms INTEGER NOT NULL);",
    )?;
    let hash = password_hash(PASSWORD, cfg.auth_cost);
    let tx = c.transaction()?;
    {
        let mut user =
            tx.prepare("INSERT OR IGNORE INTO users (id, name, hash) VALUES (?1, ?2, ?3)")?;
        let mut bal = tx.prepare(
            "INSERT OR IGNORE INTO balances (user_id, asset, amount) VALUES (?1, ?2, ?3)",
        )?;
        for i in 1..=USERS as i64 {
            user.execute(params![i, user_name(i as usize), hash])?;
            bal.execute(params![i, "USDT", 1000.0 + (i % 97) as f64])?;
            bal.execute(params![i, "TON", 200.0 + (i % 13) as f64])?;
            bal.execute(params![i, "BTC", 0.05])?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// The name of seeded user `i` (from 1).
pub fn user_name(i: usize) -> String {
    format!("user{i:05}")
}

fn password_hash(password: &str, cost: u32) -> Vec<u8> {
    let mut out = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), SALT, cost.max(1), &mut out);
    out.to_vec()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn db_fail(e: &DbError, t: DbTiming) -> Answer {
    answer(500, json!({ "error": e.to_string() }), t)
}

/// POST /auth/login
pub async fn login(pool: &Arc<Pool>, cfg: &DemoConfig, body: &Value) -> Answer {
    let (Some(user), Some(password)) = (body["user"].as_str(), body["password"].as_str()) else {
        return answer(
            400,
            json!({ "error": "expected {\"user\": ..., \"password\": ...}" }),
            DbTiming::default(),
        );
    };
    let (user, password, cost) = (user.to_string(), password.to_string(), cfg.auth_cost);
    let (r, t) = pool
        .with(move |c, q| {
            // The flaw: the hash is checked while this request holds a pool connection.
            *q += 1;
            let row: Option<(i64, Vec<u8>)> = c
                .query_row("SELECT id, hash FROM users WHERE name = ?1", [&user], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()?;
            let Some((id, hash)) = row else {
                return Ok(None);
            };
            if password_hash(&password, cost) != hash {
                return Ok(None);
            }
            let token = uuid::Uuid::new_v4().simple().to_string();
            *q += 1;
            c.execute(
                "INSERT INTO sessions (token, user_id, created_ms) VALUES (?1, ?2, ?3)",
                params![token, id, now_ms()],
            )?;
            Ok(Some(token))
        })
        .await;
    match r {
        Ok(Some(token)) => answer(200, json!({ "token": token }), t),
        Ok(None) => answer(401, json!({ "error": "unknown user or wrong password" }), t),
        Err(e) => db_fail(&e, t),
    }
}

fn session(tx: &Connection, token: &str, q: &mut u32) -> Result<Option<i64>, DbError> {
    *q += 1;
    Ok(tx
        .query_row(
            "SELECT user_id FROM sessions WHERE token = ?1",
            [token],
            |r| r.get(0),
        )
        .optional()?)
}

/// GET /wallet/balance
pub async fn balance(pool: &Arc<Pool>, cfg: &DemoConfig, token: String) -> Answer {
    let degrade = cfg.degrade;
    let (r, t) = pool
        .with(move |c, q| {
            let Some(uid) = session(c, &token, q)? else {
                return Ok(None);
            };
            let mut out = serde_json::Map::new();
            *q += 1;
            let mut st = c.prepare_cached(
                "SELECT asset, amount FROM balances WHERE user_id = ?1 ORDER BY asset",
            )?;
            let rows =
                st.query_map([uid], |r| Ok((r.get::<_, String>(0)?, r.get::<_, f64>(1)?)))?;
            for row in rows {
                let (asset, amount) = row?;
                out.insert(asset, json!(amount));
            }
            if degrade {
                // A table that grows without an index: every balance scans it.
                *q += 2;
                c.execute(
                    "INSERT INTO events (user_id, kind, ts_ms) VALUES (?1, 'balance', ?2)",
                    params![uid, now_ms()],
                )?;
                let n: i64 = c.query_row(
                    "SELECT count(*) FROM events WHERE user_id = ?1",
                    [uid],
                    |r| r.get(0),
                )?;
                out.insert("views".into(), json!(n));
            }
            Ok(Some(Value::Object(out)))
        })
        .await;
    match r {
        Ok(Some(v)) => answer(200, v, t),
        Ok(None) => answer(401, json!({ "error": "invalid or expired token" }), t),
        Err(e) => db_fail(&e, t),
    }
}

fn rate(from: &str, to: &str) -> Option<f64> {
    let usd = |a: &str| match a {
        "USDT" => Some(1.0),
        "TON" => Some(5.0),
        "BTC" => Some(60_000.0),
        _ => None,
    };
    Some(usd(from)? / usd(to)?)
}

/// POST /exchange
pub async fn exchange(pool: &Arc<Pool>, token: String, body: &Value) -> Answer {
    let (Some(from), Some(to)) = (body["from"].as_str(), body["to"].as_str()) else {
        return answer(
            400,
            json!({ "error": "expected {\"from\", \"to\", \"amount\"}" }),
            DbTiming::default(),
        );
    };
    let amount = body["amount"]
        .as_f64()
        .or_else(|| body["amount"].as_str().and_then(|s| s.parse().ok()));
    let Some(amount) = amount.filter(|a| *a > 0.0 && a.is_finite()) else {
        return answer(
            400,
            json!({ "error": "amount must be a positive number" }),
            DbTiming::default(),
        );
    };
    let Some(price) = rate(from, to).filter(|_| from != to) else {
        return answer(
            400,
            json!({ "error": format!("cannot exchange {from} to {to}") }),
            DbTiming::default(),
        );
    };
    let (from, to) = (from.to_string(), to.to_string());
    let (r, t) = pool
        .with(move |c, q| {
            // IMMEDIATE takes the write lock at BEGIN, where the busy timeout applies; a deferred
            // transaction upgrading later would fail at once with SQLITE_BUSY under contention.
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let Some(uid) = session(&tx, &token, q)? else { return Ok(Err(401)) };
            *q += 1;
            let have: f64 = tx
                .query_row("SELECT amount FROM balances WHERE user_id = ?1 AND asset = ?2", params![uid, from], |r| r.get(0))
                .optional()?
                .unwrap_or(0.0);
            if have < amount {
                return Ok(Err(422));
            }
            let got = amount * price;
            let ts = now_ms();
            *q += 2;
            tx.execute("UPDATE balances SET amount = amount - ?1 WHERE user_id = ?2 AND asset = ?3", params![amount, uid, from])?;
            tx.execute(
                "INSERT INTO balances (user_id, asset, amount) VALUES (?1, ?2, ?3) ON CONFLICT(user_id, asset) DO UPDATE SET amount = amount + ?3",
                params![uid, to, got],
            )?;
            // Reporting and accounting, synchronously on the same transaction.
            *q += 4;
            tx.execute("INSERT INTO ledger (user_id, asset, delta, ts_ms) VALUES (?1, ?2, ?3, ?4)", params![uid, from, -amount, ts])?;
            tx.execute("INSERT INTO ledger (user_id, asset, delta, ts_ms) VALUES (?1, ?2, ?3, ?4)", params![uid, to, got, ts])?;
            tx.execute(
                "INSERT INTO audit (user_id, action, detail, ts_ms) VALUES (?1, 'exchange', ?2, ?3)",
                params![uid, format!("{amount} {from} -> {got} {to}"), ts],
            )?;
            tx.execute(
                "INSERT INTO daily_report (day, asset, volume, trades) VALUES (date('now'), ?1, ?2, 1)
                 ON CONFLICT(day, asset) DO UPDATE SET volume = volume + ?2, trades = trades + 1",
                params![from, amount],
            )?;
            tx.commit()?;
            Ok(Ok(json!({ "status": "filled", "from": from, "to": to, "amount": amount, "received": got })))
        })
        .await;
    match r {
        Ok(Ok(v)) => answer(200, v, t),
        Ok(Err(401)) => answer(401, json!({ "error": "invalid or expired token" }), t),
        Ok(Err(_)) => answer(422, json!({ "error": "insufficient funds" }), t),
        Err(e) => db_fail(&e, t),
    }
}

/// GET /reports/daily: a batch aggregate over the whole ledger.
pub async fn daily_report(pool: &Arc<Pool>) -> Answer {
    let (r, t) = pool
        .with(|c, q| {
            *q += 2;
            let mut st = c.prepare_cached(
                "SELECT asset, count(*), sum(abs(delta)), count(DISTINCT user_id) FROM ledger GROUP BY asset ORDER BY asset",
            )?;
            let rows: Vec<Value> = st
                .query_map([], |r| {
                    Ok(json!({ "asset": r.get::<_, String>(0)?, "entries": r.get::<_, i64>(1)?, "volume": r.get::<_, f64>(2)?, "users": r.get::<_, i64>(3)? }))
                })?
                .collect::<Result<_, _>>()?;
            let audits: i64 = c.query_row("SELECT count(*) FROM audit", [], |r| r.get(0))?;
            Ok(json!({ "assets": rows, "audit_rows": audits }))
        })
        .await;
    match r {
        Ok(v) => answer(200, v, t),
        Err(e) => db_fail(&e, t),
    }
}
