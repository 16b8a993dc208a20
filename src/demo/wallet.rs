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

/// Event rows a balance read adds under `--degrade`.
pub const EVENTS_PER_READ: usize = 50;

/// The password every seeded user has.
pub const PASSWORD: &str = "password";
/// Number of seeded users (`user00001` … `user10000`).
pub const USERS: usize = 10_000;
const SALT: &[u8] = b"stampede-demo-salt";

/// Database time and query count of one request, for `Server-Timing`.
#[derive(Debug, Default, Clone, Copy)]
pub struct DbTiming {
    /// Time spent holding the connection (queries, and the work done meanwhile).
    pub db: Duration,
    /// Queries run.
    pub queries: u32,
    /// Time spent waiting for a pool connection.
    pub pool_wait: Duration,
    /// Time spent waiting for the database's write lock.
    pub lock_wait: Duration,
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

/// A bounded pool of SQLite connections with one writer at a time.
///
/// SQLite allows one writer; waiting for it inside SQLite is a poll with growing sleeps, which
/// is unfair and hides the queue. Writers instead queue on `writer` while holding their pool
/// connection — as a transaction waiting for a row lock does on a server database.
#[derive(Debug)]
pub struct Pool {
    permits: Arc<Semaphore>,
    conns: Mutex<Vec<Connection>>,
    writer: Arc<Mutex<()>>,
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

/// A pooled connection lent to one request, counting its queries and lock waits.
pub struct Db<'a> {
    conn: &'a mut Connection,
    writer: &'a Mutex<()>,
    /// Queries run.
    pub queries: u32,
    lock_wait: Duration,
}

impl std::fmt::Debug for Db<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("queries", &self.queries)
            .finish_non_exhaustive()
    }
}

impl Db<'_> {
    /// The connection, for reads.
    pub fn conn(&mut self) -> &Connection {
        self.conn
    }

    /// Runs `f` in a write transaction, after waiting for the write lock.
    pub fn write<T>(
        &mut self,
        f: impl FnOnce(&rusqlite::Transaction<'_>, &mut u32) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        let asked = Instant::now();
        let _guard = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        self.lock_wait += asked.elapsed();
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let r = f(&tx, &mut self.queries)?;
        tx.commit()?;
        Ok(r)
    }
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
            permits: Arc::new(Semaphore::new(conns.len())),
            size: conns.len(),
            conns: Mutex::new(conns),
            writer: Arc::new(Mutex::new(())),
            waiting: AtomicI64::new(0),
            in_use: AtomicI64::new(0),
        })
    }

    /// Runs `f` on a pooled connection in a blocking thread, timing the waits and the work.
    pub async fn with<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut Db<'_>) -> Result<T, DbError> + Send + 'static,
    ) -> (Result<T, DbError>, DbTiming) {
        let asked = Instant::now();
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let permit = self.permits.clone().acquire_owned().await;
        self.waiting.fetch_sub(1, Ordering::Relaxed);
        let pool_wait = asked.elapsed();
        let failed = DbTiming {
            pool_wait,
            ..DbTiming::default()
        };
        let Ok(permit) = permit else {
            return (Err(DbError::Worker), failed);
        };
        let Some(mut conn) = self.conns.lock().unwrap_or_else(|p| p.into_inner()).pop() else {
            return (Err(DbError::Worker), failed);
        };
        self.in_use.fetch_add(1, Ordering::Relaxed);
        let pool = self.clone();
        // The blocking task gives the connection back and then its permit, itself: a request
        // dropped while it waits here (its client timed out) must not take the connection with
        // it, nor free a permit whose connection is still at work.
        let joined = tokio::task::spawn_blocking(move || {
            let start = Instant::now();
            let mut db = Db {
                conn: &mut conn,
                writer: &pool.writer,
                queries: 0,
                lock_wait: Duration::ZERO,
            };
            let r = f(&mut db);
            let (queries, lock_wait) = (db.queries, db.lock_wait);
            let took = start.elapsed();
            pool.conns
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(conn);
            pool.in_use.fetch_sub(1, Ordering::Relaxed);
            drop(permit);
            (r, took, queries, lock_wait)
        })
        .await;
        match joined {
            Ok((r, db, queries, lock_wait)) => (
                r,
                DbTiming {
                    db,
                    queries,
                    pool_wait,
                    lock_wait,
                },
            ),
            Err(_) => (Err(DbError::Worker), failed),
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
         CREATE TABLE IF NOT EXISTS events (user_id INTEGER NOT NULL, kind TEXT NOT NULL, ts_ms INTEGER NOT NULL);
         CREATE TABLE IF NOT EXISTS statements (day TEXT NOT NULL, user_id INTEGER NOT NULL, asset TEXT NOT NULL, amount REAL NOT NULL, PRIMARY KEY (day, user_id, asset));",
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
        .with(move |db| {
            // The flaw: the session is recorded in a write transaction opened before the
            // CPU-heavy password check, so the write lock is held while hashing.
            db.write(|tx, q| {
                *q += 1;
                let row: Option<(i64, Vec<u8>)> = tx
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
                tx.execute(
                    "INSERT INTO sessions (token, user_id, created_ms) VALUES (?1, ?2, ?3)",
                    params![token, id, now_ms()],
                )?;
                Ok(Some(token))
            })
        })
        .await;
    match r {
        Ok(Some(token)) => answer(200, json!({ "token": token }), t),
        Ok(None) => answer(401, json!({ "error": "unknown user or wrong password" }), t),
        Err(e) => db_fail(&e, t),
    }
}

fn session(c: &Connection, token: &str, q: &mut u32) -> Result<Option<i64>, DbError> {
    *q += 1;
    Ok(c.query_row(
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
        .with(move |db| {
            let mut q = 0;
            let c = db.conn();
            let Some(uid) = session(c, &token, &mut q)? else {
                return Ok((None, q));
            };
            let mut out = serde_json::Map::new();
            q += 1;
            let mut st = c.prepare_cached(
                "SELECT asset, amount FROM balances WHERE user_id = ?1 ORDER BY asset",
            )?;
            let rows =
                st.query_map([uid], |r| Ok((r.get::<_, String>(0)?, r.get::<_, f64>(1)?)))?;
            for row in rows {
                let (asset, amount) = row?;
                out.insert(asset, json!(amount));
            }
            drop(st);
            if degrade {
                // A table that grows without an index: every balance read scans all of it.
                q += 1;
                let n: i64 = c.query_row(
                    "SELECT count(*) FROM events WHERE user_id = ?1",
                    [uid],
                    |r| r.get(0),
                )?;
                out.insert("views".into(), json!(n));
                // Every read also logs a burst of events (say, one per widget on the page), so
                // the unindexed table grows fast enough for the scan to show within minutes.
                db.write(|tx, q| {
                    *q += 1;
                    let mut st = tx.prepare_cached(
                        "INSERT INTO events (user_id, kind, ts_ms) VALUES (?1, 'balance', ?2)",
                    )?;
                    let ts = now_ms();
                    for _ in 0..EVENTS_PER_READ {
                        st.execute(params![uid, ts])?;
                    }
                    Ok(())
                })?;
            }
            Ok((Some(Value::Object(out)), q))
        })
        .await;
    let t = DbTiming {
        queries: t.queries + r.as_ref().map_or(0, |(_, q)| *q),
        ..t
    };
    match r {
        Ok((Some(v), _)) => answer(200, v, t),
        Ok((None, _)) => answer(401, json!({ "error": "invalid or expired token" }), t),
        Err(e) => db_fail(&e, t),
    }
}

/// How many `to` one `from` buys.
pub fn rate(from: &str, to: &str) -> Option<f64> {
    let usd = |a: &str| match a {
        "USDT" => Some(1.0),
        "TON" => Some(5.0),
        "BTC" => Some(60_000.0),
        _ => None,
    };
    Some(usd(from)? / usd(to)?)
}

/// POST /exchange
pub async fn exchange(pool: &Arc<Pool>, cfg: &DemoConfig, token: String, body: &Value) -> Answer {
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
    let accounting = Duration::from_millis(cfg.accounting_ms);
    let (r, t) = pool
        .with(move |db| {
            db.write(|tx, q| {
                let Some(uid) = session(tx, &token, q)? else { return Ok(Err(401)) };
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
                // Reporting and accounting, synchronously in the same transaction.
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
                // The accounting service is called synchronously inside the transaction: the
                // write lock and the pool connection are held for its whole round trip.
                std::thread::sleep(accounting);
                Ok(Ok(json!({ "status": "filled", "from": from, "to": to, "amount": amount, "received": got })))
            })
        })
        .await;
    match r {
        Ok(Ok(v)) => answer(200, v, t),
        Ok(Err(401)) => answer(401, json!({ "error": "invalid or expired token" }), t),
        Ok(Err(_)) => answer(422, json!({ "error": "insufficient funds" }), t),
        Err(e) => db_fail(&e, t),
    }
}

/// GET /reports/daily: the batch job. It reconciles every balance against the ledger and rewrites
/// the day's report, inside one write transaction (so the figures are consistent): while it runs,
/// no exchange can commit.
pub async fn daily_report(pool: &Arc<Pool>) -> Answer {
    let (r, t) = pool
        .with(|db| {
            db.write(|tx, q| {
                *q += 4;
                // Reconciliation: every balance against the sum of its ledger entries.
                let mismatched: i64 = tx.query_row(
                    "SELECT count(*) FROM balances b LEFT JOIN
                       (SELECT user_id, asset, sum(delta) AS moved FROM ledger GROUP BY user_id, asset) l
                       USING (user_id, asset)
                     WHERE abs(b.amount - COALESCE(l.moved, 0)) > 1e9",
                    [],
                    |r| r.get(0),
                )?;
                // Every user's daily statement, rewritten in the same transaction.
                tx.execute(
                    "INSERT OR REPLACE INTO statements (day, user_id, asset, amount)
                     SELECT date('now'), user_id, asset, amount FROM balances",
                    [],
                )?;
                tx.execute("DELETE FROM daily_report WHERE day = date('now')", [])?;
                tx.execute(
                    "INSERT INTO daily_report (day, asset, volume, trades)
                     SELECT date('now'), asset, sum(abs(delta)), count(*) FROM ledger GROUP BY asset",
                    [],
                )?;
                let mut st = tx.prepare_cached(
                    "SELECT asset, count(*), sum(abs(delta)), count(DISTINCT user_id) FROM ledger GROUP BY asset ORDER BY asset",
                )?;
                let rows: Vec<Value> = st
                    .query_map([], |r| {
                        Ok(json!({ "asset": r.get::<_, String>(0)?, "entries": r.get::<_, i64>(1)?, "volume": r.get::<_, f64>(2)?, "users": r.get::<_, i64>(3)? }))
                    })?
                    .collect::<Result<_, _>>()?;
                Ok(json!({ "assets": rows, "reconciled_balances": USERS * 3, "mismatched": mismatched }))
            })
        })
        .await;
    match r {
        Ok(v) => answer(200, v, t),
        Err(e) => db_fail(&e, t),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_request_dropped_while_its_query_runs_gives_its_connection_back() {
        // A client that times out drops its request mid-query (hyper drops the future); the
        // query still runs to its end on the blocking pool, and its connection must come back
        // to the pool: once it did not, and an overloaded wallet answered every later request
        // with "database worker failed" until it was restarted.
        let dir = tempfile::tempdir().unwrap();
        let pool = Arc::new(Pool::open(&dir.path().join("db.sqlite"), 1).unwrap());
        let slow = pool.with(|_db| {
            std::thread::sleep(Duration::from_millis(200));
            Ok(())
        });
        assert!(
            tokio::time::timeout(Duration::from_millis(20), slow)
                .await
                .is_err()
        );
        let (r, _) = pool.with(|db| Ok(db.conn().is_autocommit())).await;
        assert!(r.is_ok(), "{r:?}");
    }
}
