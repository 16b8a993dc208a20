//! A virtual user: variables (a Rhai scope), cookies, connections, feeder rows and a random
//! generator, living across iterations.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rhai::{Dynamic, ImmutableString, Scope};

use crate::http::Connections;
use crate::metrics::capped_timing_name;
use crate::model::ErrorClass;
use crate::scenario::Plan;
use crate::scenario::feeder::{Exhausted, Pick, Row};
use crate::script::from_json;
use crate::secret::Secrets;

/// Longest cookie (name and value) kept, in bytes: what browsers keep (RFC 6265 §6.1's minimum).
const MAX_COOKIE_BYTES: usize = 4096;
/// Most cookies kept per origin (Chromium's per-domain limit); the oldest goes first.
const MAX_COOKIES_PER_ORIGIN: usize = 180;
/// Most cookies kept per virtual user over all origins (RFC 6265 §6.1's minimum).
const MAX_COOKIES_PER_USER: usize = 3000;

/// One simulated user.
#[derive(Debug)]
pub struct VirtualUser {
    /// Number within its flow, from 1.
    pub id: u64,
    /// Iterations started.
    pub iteration: u64,
    /// Variables (extracted, scripted, from `vars`).
    pub scope: Scope<'static>,
    /// Open connections.
    pub conns: Connections,
    /// Cookies: (origin index, name, value).
    pub cookies: Vec<(usize, String, String)>,
    /// Origins a redirect led to that the plan does not name; their connection and cookie
    /// slots follow the plan's (`plan.origins.len() + i`).
    pub(crate) extra_origins: Vec<crate::scenario::plan::Origin>,
    /// Current row of each feeder.
    pub rows: Vec<Option<Row>>,
    /// Random source for think times and jitter.
    pub rng: SmallRng,
    /// Scratch buffers reused by every request.
    pub(crate) buf: Vec<u8>,
    pub(crate) scratch: Vec<u8>,
    pub(crate) trace_id: u128,
    /// Work of the current iteration.
    pub(crate) work: crate::metrics::IterationWork,
    /// `Server-Timing` totals of the current iteration: (name, ms, count); names are kept
    /// across iterations so the tally allocates once.
    pub(crate) iter_timing: Vec<(String, f64, f64)>,
    /// Open WebSockets by (origin, path): a user's for the rest of its iteration.
    pub(crate) ws: Vec<(usize, String, crate::http::ws::WsConn)>,
    /// This user's precise timer, made on its first wait.
    timer: Option<crate::timer::PreciseTimer>,
    /// An open flow's pooled user serves one arrival after another, and each arrival is a new
    /// user of the system: its `unique` rows are drawn per iteration, not once.
    unique_per_arrival: bool,
}

impl VirtualUser {
    /// Creates a user: declares the plan's variables, sets `vars`, takes its `unique` feeder
    /// rows, and runs the script library's top-level statements.
    pub fn new(plan: &Plan, flow: usize, id: u64) -> Result<VirtualUser, VuError> {
        VirtualUser::build(plan, flow, id, false)
    }

    /// Creates a pooled user for an open flow's arrivals: as [`VirtualUser::new`], but each
    /// iteration (each arrival) takes its own `unique` rows (Gatling's semantics: every arrival
    /// is a new user).
    pub fn new_for_arrivals(plan: &Plan, flow: usize, id: u64) -> Result<VirtualUser, VuError> {
        VirtualUser::build(plan, flow, id, true)
    }

    fn build(
        plan: &Plan,
        flow: usize,
        id: u64,
        unique_per_arrival: bool,
    ) -> Result<VirtualUser, VuError> {
        let seed = plan.flows.get(flow).map_or(0, |f| f.seed);
        let mut scope = Scope::new();
        // What templates know as built-ins, scripts read as variables: the user's number (fixed),
        // the flow's name, and the iteration (set as each one starts).
        scope.push_constant("vu", id as i64);
        scope.push_constant(
            "flow",
            plan.flows
                .get(flow)
                .map_or_else(String::new, |f| f.name.clone()),
        );
        for name in &plan.declared {
            scope.push_dynamic(name.clone(), Dynamic::UNIT);
        }
        for (name, value) in &plan.vars {
            scope.push_dynamic(name.clone(), from_json(value));
        }
        for (name, value) in plan.shared.get().into_iter().flatten() {
            scope.push_dynamic(name.clone(), value.clone());
        }
        // Last: a scope is searched from its end, and this one is set at every iteration.
        scope.push("iteration", 0i64);
        let mut vu = VirtualUser {
            id,
            iteration: 0,
            scope,
            conns: Connections::default(),
            cookies: Vec::new(),
            extra_origins: Vec::new(),
            rows: vec![None; plan.feeders.len()],
            rng: SmallRng::seed_from_u64(seed ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            buf: Vec::new(),
            scratch: Vec::with_capacity(256),
            trace_id: 0,
            work: crate::metrics::IterationWork::default(),
            iter_timing: Vec::new(),
            ws: Vec::new(),
            timer: None,
            unique_per_arrival,
        };
        // Errors are masked here, against whatever the half-made user holds (its rows, its
        // variables): nothing else will know those values once it is gone.
        // Setup and teardown take no `unique` rows: those belong to the load's users.
        let hook = plan.flows.get(flow).is_some_and(|f| !f.is_load());
        for (i, f) in plan.feeders.iter().enumerate() {
            if f.pick == Pick::Unique && !unique_per_arrival && !hook {
                let row = f
                    .draw()
                    .map_err(|e| vu.creation_error(plan, ErrorClass::Feed, &e))?;
                push_row(&mut vu.scope, &f.name, &f.columns, &row);
                vu.rows[i] = Some(row);
            }
        }
        if let Err(e) = plan.scripts.init_vu(&mut vu.scope) {
            return Err(vu.creation_error(plan, ErrorClass::Script, &e));
        }
        Ok(vu)
    }

    fn creation_error(&self, plan: &Plan, class: ErrorClass, e: &dyn std::fmt::Display) -> VuError {
        VuError {
            class,
            message: self.redact(&plan.secrets, e.to_string()),
        }
    }

    /// Waits until `due` on this user's precise timer; returns how late it woke (the generator's
    /// own lateness, which the caller counts as lag rather than as the target's latency).
    pub async fn wait_until(&mut self, due: std::time::Instant) -> std::time::Duration {
        self.timer
            .get_or_insert_with(crate::timer::PreciseTimer::new)
            .sleep_until(due)
            .await;
        std::time::Instant::now().saturating_duration_since(due)
    }

    /// Draws this iteration's rows for the journey's per-iteration feeders.
    pub(crate) fn draw_rows(&mut self, plan: &Plan, feeders: &[usize]) -> Result<(), Exhausted> {
        let unique = plan
            .feeders
            .iter()
            .enumerate()
            .filter(|(_, f)| self.unique_per_arrival && f.pick == Pick::Unique)
            .map(|(i, _)| i);
        for i in unique.chain(feeders.iter().copied()) {
            let f = &plan.feeders[i];
            let row = f.draw()?;
            push_row(&mut self.scope, &f.name, &f.columns, &row);
            self.rows[i] = Some(row);
        }
        Ok(())
    }

    /// Starts a new W3C trace (when requests carry `traceparent`) and a new work tally for
    /// this iteration, and tells scripts which iteration this is.
    pub(crate) fn new_trace(&mut self, traceparent: bool) {
        if self
            .scope
            .get_mut("iteration")
            .map(|v| *v = Dynamic::from(self.iteration as i64))
            .is_none()
        {
            self.scope.push("iteration", self.iteration as i64);
        }
        // Trace ids come from the OS-seeded generator, not the user's seeded one: the same
        // scenario run twice must not send the same traces (they would collide in a tracer).
        // Drawing one costs W1 about 1% of its user-space time when nothing sends it.
        if traceparent {
            self.trace_id = rand::rng().random::<u128>() | 1;
        }
        self.work = crate::metrics::IterationWork::default();
        for t in &mut self.iter_timing {
            t.1 = 0.0;
            t.2 = 0.0;
        }
    }

    /// `text` with every secret of the plan masked, as this user holds them now.
    pub(crate) fn redact(&self, secrets: &Secrets, text: String) -> String {
        if secrets.is_empty() {
            return text;
        }
        let mut current: Vec<String> = secrets
            .vars
            .iter()
            .filter_map(|n| self.scope.get(n).map(|v| v.to_string()))
            .collect();
        for &(feeder, field) in &secrets.fields {
            if let Some(v) = self.rows.get(feeder).and_then(|r| r.as_ref()?.get(field)) {
                current.push(v.clone());
            }
        }
        secrets.redact(current.iter().map(String::as_str), text)
    }

    /// Whether the user holds a cookie for `origin`.
    pub(crate) fn has_cookies(&self, origin: usize) -> bool {
        self.cookies.iter().any(|(o, _, _)| *o == origin)
    }

    /// The `Cookie` header for `origin` from the jar, when it holds any.
    pub(crate) fn cookie_header(&self, origin: usize) -> Option<http::HeaderValue> {
        use std::fmt::Write as _;
        let mut cookie = String::new();
        for (o, k, v) in &self.cookies {
            if *o == origin {
                if !cookie.is_empty() {
                    cookie.push_str("; ");
                }
                let _ = write!(cookie, "{k}={v}");
            }
        }
        if cookie.is_empty() {
            return None;
        }
        http::HeaderValue::from_str(&cookie).ok()
    }

    /// Stores a response's cookies within browsers' limits, so a server that sets ever more cookies
    /// cannot make every later request carry a megabyte; returns how many it dropped (too large, or
    /// the oldest pushed out).
    pub fn store_cookies(&mut self, origin: usize, headers: &crate::http::Headers) -> u32 {
        let mut dropped = 0;
        for v in headers.get_all("set-cookie") {
            let Some(text) = crate::http::headers::text(v) else {
                continue;
            };
            let mut parts = text.split(';');
            let Some((name, value)) = parts.next().and_then(|p| p.split_once('=')) else {
                continue;
            };
            let (name, value) = (name.trim(), value.trim());
            if name.len() + value.len() > MAX_COOKIE_BYTES {
                dropped += 1;
                continue;
            }
            let expired = parts.any(|a| {
                let a = a.trim().to_ascii_lowercase();
                a == "max-age=0" || a.starts_with("max-age=-")
            });
            self.cookies
                .retain(|(o, k, _)| !(*o == origin && k == name));
            if expired {
                continue;
            }
            // Oldest first: the jar is in insertion order.
            if self.cookies.iter().filter(|(o, _, _)| *o == origin).count()
                >= MAX_COOKIES_PER_ORIGIN
                && let Some(i) = self.cookies.iter().position(|(o, _, _)| *o == origin)
            {
                self.cookies.remove(i);
                dropped += 1;
            }
            if self.cookies.len() >= MAX_COOKIES_PER_USER {
                self.cookies.remove(0);
                dropped += 1;
            }
            self.cookies
                .push((origin, name.to_string(), value.to_string()));
        }
        dropped
    }

    /// Adds one response's `Server-Timing` metrics to this iteration's tally, capping names as
    /// the registry does ([`capped_timing_name`]).
    pub(crate) fn tally(&mut self, metrics: &[crate::http::server_timing::Metric<'_>]) {
        for m in metrics {
            // At most 33 names: a linear search is as quick as a hash here.
            let name = match self.iter_timing.iter().any(|t| t.0 == m.name) {
                true => m.name,
                false => capped_timing_name(self.iter_timing.len(), m.name),
            };
            let i = match self.iter_timing.iter().position(|t| t.0 == name) {
                Some(i) => i,
                None => {
                    self.iter_timing.push((name.to_string(), 0.0, 0.0));
                    self.iter_timing.len() - 1
                }
            };
            self.iter_timing[i].1 += m.dur_ms.unwrap_or(0.0);
            self.iter_timing[i].2 += m.count.unwrap_or(0.0);
        }
    }
}

fn push_row(scope: &mut Scope<'static>, name: &str, columns: &[String], row: &Row) {
    let mut map = rhai::Map::new();
    for (c, v) in columns.iter().zip(row.iter()) {
        map.insert(
            c.as_str().into(),
            Dynamic::from(ImmutableString::from(v.as_str())),
        );
    }
    scope.set_or_push(name, Dynamic::from_map(map));
}

/// Why a virtual user could not be created: a `unique` feeder had no row left for it (`feed`),
/// or the script library's set-up failed (`script`). The message is already masked against every
/// secret the half-made user held.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct VuError {
    /// `feed` or `script`.
    pub class: ErrorClass,
    message: String,
}
