//! Command-line overrides applied to a validated plan: `--only`, `--rate`, `--vus`,
//! `--iterations`, `--scale` and `--duration`, each problem reported like a scenario's own.

use std::str::FromStr;
use std::time::Duration;

use super::Validator;
use crate::scenario::plan::{LoadModel, Plan};
use crate::units::Rate;

/// Values from the command line or environment that change how a scenario loads.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// Replaces the scenario's `target`.
    pub target: Option<String>,
    /// Multiplies every rate and VU count.
    pub scale: Option<f64>,
    /// Caps the run's length; also the length of constant flows without their own `duration`.
    pub duration: Option<Duration>,
    /// Runs only these flows (by name); the others are validated but left out of the plan.
    pub only: Option<Vec<String>>,
    /// An open flow's peak rate (its curve keeps its shape).
    pub rate: Vec<ForFlow<Rate>>,
    /// A closed flow's peak VU count (its curve keeps its shape).
    pub vus: Vec<ForFlow<u64>>,
    /// Iterations: a closed flow's total, or an open flow's arrivals (its curve is cut there).
    pub iterations: Vec<ForFlow<u64>>,
    /// Runs one segment of a split run (applied last; not part of the plan's digest, since the
    /// segments of one run differ only in it).
    pub segment: Option<crate::model::Segment>,
}

/// A value for one flow (`traders=50/s`) or, without a name, for the one flow it can mean.
#[derive(Debug, Clone, PartialEq)]
pub struct ForFlow<T> {
    /// The flow, when named.
    pub flow: Option<String>,
    /// The value.
    pub value: T,
}

impl<T: FromStr> FromStr for ForFlow<T>
where
    T::Err: std::fmt::Display,
{
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (flow, value) = match s.split_once('=') {
            Some((f, v)) => (Some(f.trim().to_string()), v.trim()),
            None => (None, s.trim()),
        };
        let value = value.parse::<T>().map_err(|e| e.to_string())?;
        Ok(ForFlow { flow, value })
    }
}

/// Which kind of flow an override applies to.
#[derive(Clone, Copy, PartialEq)]
enum Want {
    Open,
    Closed,
    Any,
}

impl Validator<'_> {
    /// Applies the overrides in the order a reader expects: the levels and iterations, which
    /// flows run, then the scale and the length. Returns false after reporting a problem.
    pub(super) fn apply_overrides(&mut self, plan: &mut Plan, ov: &Overrides) -> bool {
        let mut ok = true;
        for o in &ov.rate {
            if let Some(i) = self.override_flow(plan, "--rate", o.flow.as_deref(), Want::Open) {
                let f = &mut plan.flows[i];
                if let LoadModel::Open(open) = &mut f.model {
                    let k = ratio(o.value.get(), open.curve.peak());
                    open.curve = open.curve.scaled(k);
                    open.max_vus = ((open.max_vus as f64) * k).ceil().max(1.0) as u64;
                }
            } else {
                ok = false;
            }
        }
        for o in &ov.vus {
            if let Some(i) = self.override_flow(plan, "--vus", o.flow.as_deref(), Want::Closed) {
                if let LoadModel::Closed(c) = &mut plan.flows[i].model {
                    c.curve = c.curve.scaled(ratio(o.value as f64, c.curve.peak()));
                }
            } else {
                ok = false;
            }
        }
        for o in &ov.iterations {
            if o.value == 0 {
                self.err("flows", "--iterations must be at least 1".to_string());
                ok = false;
                continue;
            }
            let Some(i) = self.override_flow(plan, "--iterations", o.flow.as_deref(), Want::Any)
            else {
                ok = false;
                continue;
            };
            match &mut plan.flows[i].model {
                LoadModel::Closed(c) => {
                    c.iterations = Some(o.value);
                    c.per_vu_iterations = None;
                }
                LoadModel::Open(open) => open.iterations = Some(o.value),
            }
        }
        if !ok {
            return false;
        }
        // Flows are chosen after their levels are set, so a phase of `interact` that leaves a
        // named flow out still accepts `--rate that=…`.
        if let Some(only) = &ov.only {
            let known: Vec<&str> = plan.flows.iter().map(|f| f.name.as_str()).collect();
            let unknown: Vec<String> = only
                .iter()
                .filter(|n| !known.contains(&n.as_str()))
                .map(|n| format!("`{n}`"))
                .collect();
            if !unknown.is_empty() {
                self.err(
                    "flows",
                    format!(
                        "--only names unknown flows {}; the scenario has: {}",
                        unknown.join(", "),
                        known.join(", ")
                    ),
                );
                return false;
            }
            // Setup and teardown belong to every selection: the flows kept may need what setup
            // makes.
            plan.flows
                .retain(|f| !f.is_load() || only.contains(&f.name));
        }
        if let Some(k) = ov.scale {
            plan.scale(k);
        }
        plan.cut_open_iterations();
        // Iterations without a duration run as long as they take, up to the cap: more than
        // the cap holds would silently become a day of load that never reaches them.
        for f in &plan.flows {
            if let LoadModel::Open(o) = &f.model
                && let Some(n) = o.iterations
                && f.length() >= super::super::plan::ITERATIONS_CAP
                && o.curve.arrivals() < n
            {
                let path = super::join_key(&format!("flows.{}", f.name), "iterations");
                self.err(
                    &path,
                    format!(
                        "{n} arrivals at {:.2}/s take longer than a day: give a `duration` or a higher rate",
                        o.curve.peak()
                    ),
                );
                ok = false;
            }
        }
        if !ok {
            return false;
        }
        if let Some(d) = ov.duration {
            plan.limit_duration(d);
        }
        // Last: a segment takes its share of the plan the other overrides made.
        if let Some(seg) = ov.segment {
            plan.split(seg);
        }
        true
    }

    /// The flow an override names, or the only flow it can mean; reports why not.
    fn override_flow(
        &mut self,
        plan: &Plan,
        what: &str,
        name: Option<&str>,
        want: Want,
    ) -> Option<usize> {
        let fits = |m: &LoadModel| {
            matches!(
                (want, m),
                (Want::Any, _)
                    | (Want::Open, LoadModel::Open(_))
                    | (Want::Closed, LoadModel::Closed(_))
            )
        };
        let kind = match want {
            Want::Open => "open (rate)",
            Want::Closed => "closed (vus)",
            Want::Any => "",
        };
        let names = || {
            plan.flows
                .iter()
                .map(|f| f.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        match name {
            Some(n) => match plan.flows.iter().position(|f| f.name == n && f.is_load()) {
                Some(i) if fits(&plan.flows[i].model) => Some(i),
                Some(_) => {
                    let hint = if want == Want::Open {
                        "--vus"
                    } else {
                        "--rate"
                    };
                    self.err(
                        "flows",
                        format!("{what} {n}=…: flow `{n}` is not {kind}; use {hint} for it"),
                    );
                    None
                }
                None => {
                    self.err(
                        "flows",
                        format!(
                            "{what} names unknown flow `{n}`; the scenario has: {}",
                            names()
                        ),
                    );
                    None
                }
            },
            None => {
                let matching: Vec<usize> = (0..plan.flows.len())
                    .filter(|&i| plan.flows[i].is_load() && fits(&plan.flows[i].model))
                    .collect();
                match matching[..] {
                    [i] => Some(i),
                    [] => {
                        self.err(
                            "flows",
                            format!(
                                "{what}: the scenario has no {kind} flow (its flows: {})",
                                names()
                            ),
                        );
                        None
                    }
                    _ => {
                        self.err(
                            "flows",
                            format!(
                                "{what} without a flow name is ambiguous: say which, as {what} NAME=VALUE (flows: {})",
                                names()
                            ),
                        );
                        None
                    }
                }
            }
        }
    }
}

/// `want ÷ have`, or `want` itself when the curve is flat at zero (it then scales a unit curve).
fn ratio(want: f64, have: f64) -> f64 {
    if have > 0.0 { want / have } else { want }
}
