//! A virtual user: variables (a Rhai scope), cookies, connections, feeder rows and a random
//! generator, living across iterations.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rhai::{Dynamic, ImmutableString, Scope};

use crate::http::Connections;
use crate::metrics::capped_timing_name;
use crate::scenario::Plan;
use crate::scenario::feeder::{Exhausted, Pick, Row};
use crate::script::{ScriptError, from_json};
use crate::secret::Secrets;

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
}

impl VirtualUser {
    /// Creates a user: declares the plan's variables, sets `vars`, takes its `unique` feeder
    /// rows, and runs the script library's top-level statements.
    pub fn new(plan: &Plan, id: u64, seed: u64) -> Result<VirtualUser, VuError> {
        let mut scope = Scope::new();
        for name in &plan.declared {
            scope.push_dynamic(name.clone(), Dynamic::UNIT);
        }
        for (name, value) in &plan.vars {
            scope.push_dynamic(name.clone(), from_json(value));
        }
        let mut rows = vec![None; plan.feeders.len()];
        for (i, f) in plan.feeders.iter().enumerate() {
            if f.pick == Pick::Unique {
                let row = f.draw()?;
                push_row(&mut scope, &f.name, &f.columns, &row);
                rows[i] = Some(row);
            }
        }
        let mut vu = VirtualUser {
            id,
            iteration: 0,
            scope,
            conns: Connections::default(),
            cookies: Vec::new(),
            rows,
            rng: SmallRng::seed_from_u64(seed ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            buf: Vec::new(),
            scratch: Vec::with_capacity(256),
            trace_id: 0,
            work: crate::metrics::IterationWork::default(),
            iter_timing: Vec::new(),
        };
        plan.scripts.init_vu(&mut vu.scope)?;
        Ok(vu)
    }

    /// Draws this iteration's rows for the journey's per-iteration feeders.
    pub(crate) fn draw_rows(&mut self, plan: &Plan, feeders: &[usize]) -> Result<(), Exhausted> {
        for &i in feeders {
            let f = &plan.feeders[i];
            let row = f.draw()?;
            push_row(&mut self.scope, &f.name, &f.columns, &row);
            self.rows[i] = Some(row);
        }
        Ok(())
    }

    /// Starts a new W3C trace and a new work tally for this iteration.
    pub(crate) fn new_trace(&mut self) {
        self.trace_id = self.rng.random::<u128>() | 1;
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

/// Why a virtual user could not be created.
#[derive(Debug, thiserror::Error)]
pub enum VuError {
    /// A `unique` feeder has no row left for it.
    #[error(transparent)]
    Feed(#[from] Exhausted),
    /// The script library's set-up failed.
    #[error(transparent)]
    Script(#[from] ScriptError),
}
