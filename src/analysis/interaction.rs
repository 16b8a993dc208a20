//! Interaction analysis: which *combination* of flows hurts.
//!
//! `stampede interact` runs each flow alone, then all together (and, with `--pairs`, each pair),
//! against the same target. This module compares the phases' results: per `flow.step`, p50/p99 and
//! error rate alone versus mixed, the amplification (mixed p99 ÷ alone p99), and a verdict naming
//! the flows that hurt it — from the pair phases when they ran, else "everything else".
//!
//! The harm is judged in parts, each attributed on its own, because one pair of flows can cause
//! the failures while only all of them together cause the slowdown (the launch demo: sign-ups and
//! traders together fail 13% of logins; the mixed p99 of seconds is a timeout artefact of all
//! three). **Latency**: the p99 at least doubles **and** grows by more than 10 ms (below that, a
//! short phase's p99 moves with machine noise). **Errors**: the error rate grows by more than one
//! percentage point. For each part, the pairs that reproduce at least half of the mixed growth of
//! that part are named; when no pair does, the part needs every flow together, and the verdict
//! says so.

use std::fmt::Write as _;

use serde::Serialize;

use crate::model::{RunResult, StepResult};
use crate::units::short_duration;

/// Smallest p99 ratio that counts as interference.
pub const MIN_FACTOR: f64 = 2.0;
/// Smallest p99 growth that counts, in microseconds: a short phase's p99 rests on a handful of
/// samples, and a generator sharing a small machine with its target adds several milliseconds of
/// noise when more flows run at once.
pub const MIN_GROWTH_US: u64 = 10_000;
/// Smallest error-rate growth that counts, in percentage points.
pub const MIN_ERROR_PP: f64 = 1.0;

/// One phase's results.
#[derive(Debug)]
pub struct Phase {
    /// The flows that ran.
    pub flows: Vec<String>,
    /// What they produced.
    pub result: RunResult,
}

/// One step alone versus mixed.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// `flow.step`.
    pub key: String,
    /// p50 alone (µs).
    pub alone_p50_us: u64,
    /// p99 alone (µs).
    pub alone_p99_us: u64,
    /// Error rate alone (0–1).
    pub alone_errors: f64,
    /// p50 with every flow (µs).
    pub mixed_p50_us: u64,
    /// p99 with every flow (µs).
    pub mixed_p99_us: u64,
    /// Error rate with every flow.
    pub mixed_errors: f64,
    /// Mixed p99 ÷ alone p99.
    pub amplification: f64,
    /// The flows whose company hurts this step in any part (empty when nothing does).
    pub hurt_by: Vec<String>,
    /// The flows whose company reproduces the latency part (every other flow when only all of
    /// them together do).
    pub latency_by: Vec<String>,
    /// The flows whose company reproduces the error part.
    pub errors_by: Vec<String>,
    /// One sentence for people.
    pub verdict: String,
}

fn steps(r: &RunResult) -> impl Iterator<Item = &StepResult> {
    r.flows
        .iter()
        .filter(|f| f.is_load())
        .flat_map(|f| &f.steps)
}

fn find<'a>(r: &'a RunResult, key: &str) -> Option<&'a StepResult> {
    steps(r).find(|s| s.key == key)
}

fn p(s: &StepResult, q: fn(&crate::model::Latency) -> u64) -> u64 {
    s.latency.as_ref().map_or(0, q)
}

fn err(s: &StepResult) -> f64 {
    if s.requests == 0 {
        0.0
    } else {
        s.failed as f64 / s.requests as f64
    }
}

fn slower(alone: &StepResult, with: &StepResult) -> bool {
    let (a, m) = (p(alone, |l| l.p99_us), p(with, |l| l.p99_us));
    a > 0 && m as f64 >= MIN_FACTOR * a as f64 && m.saturating_sub(a) > MIN_GROWTH_US
}

fn failing_more(alone: &StepResult, with: &StepResult) -> bool {
    (err(with) - err(alone)) * 100.0 > MIN_ERROR_PP
}

/// The flows whose pair with `flow` reproduces a part of the harm (`part` is that part's growth
/// from alone to `with`, and `hurt` whether it counts); every other mixed flow when the mixed
/// phase hurts but no pair reproduces half of it.
fn culprits(
    flow: &str,
    key: &str,
    alone: &StepResult,
    mixed: &Phase,
    pairs: &[Phase],
    hurt: fn(&StepResult, &StepResult) -> bool,
    part: fn(&StepResult, &StepResult) -> f64,
) -> Vec<String> {
    let Some(m) = find(&mixed.result, key) else {
        return Vec::new();
    };
    if !hurt(alone, m) {
        return Vec::new();
    }
    let whole = part(alone, m);
    let mut by: Vec<String> = pairs
        .iter()
        .filter(|ph| ph.flows.iter().any(|f| f == flow))
        .filter(|ph| {
            find(&ph.result, key)
                .is_some_and(|ps| hurt(alone, ps) && part(alone, ps) >= 0.5 * whole)
        })
        .flat_map(|ph| ph.flows.iter().filter(|f| *f != flow).cloned())
        .collect();
    if by.is_empty() {
        by = mixed.flows.iter().filter(|f| *f != flow).cloned().collect();
    }
    by
}

/// Compares the phases: `alone` has one phase per flow, `mixed` all flows, `pairs` optional pairs.
pub fn analyse(alone: &[Phase], mixed: &Phase, pairs: &[Phase]) -> Vec<Row> {
    let p99_growth = |a: &StepResult, w: &StepResult| {
        p(w, |l| l.p99_us).saturating_sub(p(a, |l| l.p99_us)) as f64
    };
    let error_growth = |a: &StepResult, w: &StepResult| err(w) - err(a);
    let mut rows = Vec::new();
    for phase in alone {
        let Some(flow) = phase.flows.first() else {
            continue;
        };
        for a in steps(&phase.result) {
            let Some(m) = find(&mixed.result, &a.key) else {
                continue;
            };
            let (ap99, mp99) = (p(a, |l| l.p99_us), p(m, |l| l.p99_us));
            let amplification = if ap99 > 0 {
                mp99 as f64 / ap99 as f64
            } else {
                1.0
            };
            let latency_by = culprits(flow, &a.key, a, mixed, pairs, slower, p99_growth);
            let errors_by = culprits(flow, &a.key, a, mixed, pairs, failing_more, error_growth);
            let mut hurt_by = latency_by.clone();
            for f in &errors_by {
                if !hurt_by.contains(f) {
                    hurt_by.push(f.clone());
                }
            }
            let every_other = mixed.flows.len().saturating_sub(1);
            let who = |by: &[String]| {
                let them = by.join(" and ");
                let verb = if by.len() == 1 { "runs" } else { "run" };
                if pairs.is_empty() || by.len() < every_other || every_other < 2 {
                    format!("when {them} {verb} beside it")
                } else {
                    format!("only when {them} all run beside it (no pair reproduces half of it)")
                }
            };
            let ms = |us: u64| short_duration(std::time::Duration::from_micros(us));
            let mut parts = Vec::new();
            if !errors_by.is_empty() {
                parts.push(format!(
                    "errors {:.1}% → {:.1}% {}",
                    err(a) * 100.0,
                    err(m) * 100.0,
                    who(&errors_by)
                ));
            }
            if !latency_by.is_empty() {
                parts.push(format!(
                    "p99 ×{amplification:.1} ({} alone, {} together) {}",
                    ms(ap99),
                    ms(mp99),
                    who(&latency_by)
                ));
            }
            let verdict = if parts.is_empty() {
                format!(
                    "{}: no interference (p99 {} alone, {} mixed)",
                    a.key,
                    ms(ap99),
                    ms(mp99)
                )
            } else {
                format!("{}: {}", a.key, parts.join("; "))
            };
            rows.push(Row {
                key: a.key.clone(),
                alone_p50_us: p(a, |l| l.p50_us),
                alone_p99_us: ap99,
                alone_errors: err(a),
                mixed_p50_us: p(m, |l| l.p50_us),
                mixed_p99_us: mp99,
                mixed_errors: err(m),
                amplification,
                hurt_by,
                latency_by,
                errors_by,
                verdict,
            });
        }
    }
    rows
}

/// The table and verdicts for the terminal.
pub fn render(rows: &[Row]) -> String {
    let ms = |us: u64| short_duration(std::time::Duration::from_micros(us));
    let w = rows.iter().map(|r| r.key.len()).max().unwrap_or(3).max(3);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<w$}  {:>9} {:>9} {:>7}  {:>9} {:>9} {:>7}  {:>6}",
        "step", "alone p50", "p99", "errors", "mixed p50", "p99", "errors", "×p99"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "{:<w$}  {:>9} {:>9} {:>6.1}%  {:>9} {:>9} {:>6.1}%  {:>5.1}×",
            r.key,
            ms(r.alone_p50_us),
            ms(r.alone_p99_us),
            r.alone_errors * 100.0,
            ms(r.mixed_p50_us),
            ms(r.mixed_p99_us),
            r.mixed_errors * 100.0,
            r.amplification
        );
    }
    let hurt: Vec<&Row> = rows.iter().filter(|r| !r.hurt_by.is_empty()).collect();
    let _ = writeln!(out);
    if hurt.is_empty() {
        let _ = writeln!(out, "verdict: no combination of flows hurts any step");
    } else {
        for r in hurt {
            let _ = writeln!(out, "verdict: {}", r.verdict);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{FlowResult, Latency};

    /// A phase of `flows` in which step `key` had p99 `p99_ms` and `failed` of 1000 requests failed.
    fn phase(flows: &[&str], steps: &[(&str, u64, u64)]) -> Phase {
        let results = steps
            .iter()
            .map(|&(key, p99_ms, failed)| {
                let mut h = crate::model::new_hist();
                for _ in 0..95 {
                    h.record(1_000).unwrap();
                }
                for _ in 0..5 {
                    h.record(p99_ms * 1000).unwrap();
                }
                StepResult {
                    key: key.into(),
                    requests: 1000,
                    failed,
                    latency: Latency::from_hist(Some(&h)),
                    ..Default::default()
                }
            })
            .collect();
        Phase {
            flows: flows.iter().map(|f| f.to_string()).collect(),
            result: RunResult {
                flows: vec![FlowResult {
                    steps: results,
                    ..Default::default()
                }],
                ..Default::default()
            },
        }
    }

    #[test]
    fn each_part_of_the_harm_is_blamed_on_the_pair_that_reproduces_it() {
        // The launch demo's case: sign-ups and traders together fail 13% of logins and exchanges;
        // only all three flows together push p99 to seconds (a timeout artefact).
        let (s, t, r) = ("signups", "traders", "reconcile");
        let alone = [
            phase(&[s], &[("signups.login", 10, 0)]),
            phase(&[t], &[("traders.exchange", 12, 0)]),
            phase(&[r], &[]),
        ];
        let mixed = phase(
            &[s, t, r],
            &[
                ("signups.login", 4850, 135),
                ("traders.exchange", 4700, 140),
            ],
        );
        let pairs = [
            phase(
                &[s, t],
                &[("signups.login", 110, 132), ("traders.exchange", 105, 140)],
            ),
            phase(&[s, r], &[("signups.login", 12, 0)]),
            phase(&[t, r], &[("traders.exchange", 14, 0)]),
        ];
        let rows = analyse(&alone, &mixed, &pairs);
        let login = rows.iter().find(|r| r.key == "signups.login").unwrap();
        assert_eq!(login.errors_by, [t]);
        assert_eq!(
            login.latency_by,
            [t, r],
            "only all together reproduce the p99"
        );
        assert!(
            login
                .verdict
                .contains("errors 0.0% → 13.5% when traders runs beside it")
                && login
                    .verdict
                    .contains("only when traders and reconcile all run"),
            "{}",
            login.verdict
        );
        let exchange = rows.iter().find(|r| r.key == "traders.exchange").unwrap();
        assert_eq!(exchange.errors_by, [s]);
    }
}
