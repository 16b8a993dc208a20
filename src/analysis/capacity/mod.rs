//! Capacity: judging one steady level of the whole mix against SLOs (with the confidence
//! intervals of what each SLO observes), the search over levels (`search`), and what the steps
//! say together — the knee, what broke first, the scaling law (`scaling`).

use std::collections::BTreeMap;
use std::str::FromStr;

use crate::model::capacity::{
    BreakKind, FlowLevel, FlowStep, KeyStep, SloCheck, SloOutcome, Step, StepVerdict,
};
use crate::model::threshold::{Expr, Limit, Metric, Op, Threshold, ThresholdError};
use crate::model::{ModelKind, RunResult};

mod scaling;
mod search;

pub use scaling::{Conclusion, conclude, factor_text, fit_usl};
pub use search::{Next, Search};

/// An open flow that drops more than this share of its arrivals fails its step: every user was
/// busy waiting on the target, so the offered level was not served.
pub const MAX_DROPPED: f64 = 0.01;

/// A service-level objective: a threshold expression on a key pattern, or on every request step.
#[derive(Debug, Clone)]
pub struct Slo {
    /// As given.
    pub text: String,
    /// The threshold it becomes.
    pub threshold: Threshold,
    /// Written without a key: every request step of every flow (not whole iterations).
    pub every_step: bool,
}

impl FromStr for Slo {
    type Err = ThresholdError;

    /// `p99 < 250ms` (every request step) or `traders.exchange: p99 < 400ms` (a key pattern, as
    /// in a scenario's `thresholds`).
    fn from_str(s: &str) -> Result<Slo, ThresholdError> {
        let text = s.trim().to_string();
        let (pattern, expr, every_step) = match text.split_once(':') {
            Some((k, e)) if !k.trim().is_empty() && !k.trim().contains(' ') => {
                (k.trim().to_string(), e.trim().to_string(), false)
            }
            _ => ("*.*".to_string(), text.clone(), true),
        };
        let expr_text = expr;
        let expr: Expr = expr_text.parse()?;
        if matches!(expr.metric, Metric::Trend(_)) {
            return Err(ThresholdError {
                text: text.clone(),
                reason: "a trend is not a capacity SLO: each step is one steady level".into(),
            });
        }
        Ok(Slo {
            threshold: Threshold {
                pattern,
                text: expr_text,
                expr,
                abort_on_fail: false,
                delay: std::time::Duration::ZERO,
            },
            text,
            every_step,
        })
    }
}

/// What kind of break a failed SLO is.
pub fn break_kind(slo: &Slo) -> BreakKind {
    match slo.threshold.expr.metric {
        Metric::Latency(..) => BreakKind::Latency,
        Metric::Errors => BreakKind::Errors,
        Metric::Dropped => BreakKind::Drops,
        _ => BreakKind::Other,
    }
}

/// Judges every SLO on every key of a step's result, and the open flows' drops.
pub fn judge(slos: &[Slo], r: &RunResult) -> Vec<SloCheck> {
    let mut out = Vec::new();
    for slo in slos {
        let t = &slo.threshold;
        for v in crate::analysis::threshold::evaluate(t, r) {
            if slo.every_step && v.key.ends_with(".iteration") {
                continue;
            }
            let limit = t.expr.limit.value();
            let interval = crate::analysis::threshold::interval(t, r, &v.key);
            let holds = |x: f64| t.expr.op.holds(x, limit);
            let outcome = match (v.observed_value, interval) {
                // Nothing measured: a gate must not pass on missing data. A key its flow's
                // iterations failed before reaching fails; one no iteration happened to take
                // (a branch) is undecided, so the level runs again longer.
                (None, _) => {
                    let flow = v.key.split('.').next().unwrap_or_default();
                    let failed = r
                        .flows
                        .iter()
                        .any(|f| f.name == flow && f.iterations_failed > 0);
                    if failed {
                        SloOutcome::Fail
                    } else {
                        SloOutcome::Undecided
                    }
                }
                (Some(_), Some([lo, hi]))
                    if matches!(t.expr.op, Op::Lt | Op::Le | Op::Gt | Op::Ge) =>
                {
                    match (holds(lo), holds(hi)) {
                        (true, true) => SloOutcome::Pass,
                        (false, false) => SloOutcome::Fail,
                        _ => SloOutcome::Undecided,
                    }
                }
                (Some(x), _) => {
                    if holds(x) {
                        SloOutcome::Pass
                    } else {
                        SloOutcome::Fail
                    }
                }
            };
            let severity = match (v.observed_value, t.expr.op) {
                (Some(x), Op::Lt | Op::Le) if limit > 0.0 => x / limit,
                (Some(x), Op::Gt | Op::Ge) if x > 0.0 => limit / x,
                (Some(_), _) => 1.0,
                // Ranked below every measured break.
                (None, _) => 0.0,
            };
            out.push(SloCheck {
                slo: slo.text.clone(),
                key: v.key.clone(),
                observed: match &v.note {
                    Some(n) if v.observed_value.is_none() => n.clone(),
                    _ => v.observed.clone(),
                },
                interval: interval.map(|[lo, hi]| readable(t.expr.limit, lo, hi)),
                outcome,
                severity,
            });
        }
    }
    for f in r.flows.iter().filter(|f| f.model_kind == ModelKind::Open) {
        if f.planned == 0 {
            continue;
        }
        let share = f.dropped as f64 / f.planned as f64;
        out.push(SloCheck {
            slo: format!("dropped < {}%", MAX_DROPPED * 100.0),
            key: f.name.clone(),
            observed: format!("{:.2}% ({} of {})", share * 100.0, f.dropped, f.planned),
            interval: None,
            outcome: if share < MAX_DROPPED {
                SloOutcome::Pass
            } else {
                SloOutcome::Fail
            },
            severity: share / MAX_DROPPED,
        });
    }
    out
}

fn readable(l: Limit, lo: f64, hi: f64) -> String {
    match l {
        Limit::Duration(_) => {
            let d = |s: f64| crate::units::short_duration(std::time::Duration::from_secs_f64(s));
            format!("{}–{}", d(lo), d(hi))
        }
        Limit::Share(_) => format!("{:.2}%–{:.2}%", lo * 100.0, hi * 100.0),
        _ => format!("{lo:.3}–{hi:.3}"),
    }
}

/// The verdict of a step from its checks and its self-checks.
pub fn verdict(checks: &[SloCheck], r: &RunResult) -> (StepVerdict, Option<String>) {
    if r.interrupted {
        return (StepVerdict::Interrupted, None);
    }
    if !r.trustworthy() {
        let why: Vec<String> = r
            .self_checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| c.detail.clone())
            .collect();
        return (StepVerdict::Untrustworthy, Some(why.join("; ")));
    }
    let v = if checks.iter().any(|c| c.outcome == SloOutcome::Fail) {
        StepVerdict::Fail
    } else if checks.iter().any(|c| c.outcome == SloOutcome::Undecided) {
        StepVerdict::Undecided
    } else {
        StepVerdict::Pass
    };
    (v, None)
}

/// The record of one step: levels offered and achieved, every key's percentiles, the checks.
///
/// A flow's achieved rate is the iterations that *ended without failing* within the measured
/// window (the warm-up's end to the load's end: `measured_s` long) per second of it: failures a
/// target answers fast are not throughput, nor are iterations draining during the graceful stop
/// after an overloaded level.
pub fn step(
    index: usize,
    factor: f64,
    levels: &BTreeMap<String, FlowLevel>,
    slos: &[Slo],
    r: &RunResult,
    measured_s: f64,
) -> Step {
    let checks = judge(slos, r);
    let (verdict, untrustworthy) = verdict(&checks, r);
    let window = (r.warmup_s, r.warmup_s + measured_s);
    let achieved = |flow: &str| {
        let key = format!("{flow}.iteration");
        let (n, last) = r
            .intervals
            .iter()
            .filter(|row| row.key == key && row.t > window.0 + 1e-9 && row.t <= window.1 + 1e-6)
            .fold((0u64, window.0), |(n, _), row| {
                (n + row.count.saturating_sub(row.errors), row.t)
            });
        n as f64 / (last - window.0).max(1e-3)
    };
    let flows = r
        .flows
        .iter()
        .filter_map(|f| {
            Some((
                f.name.clone(),
                FlowStep {
                    offered: *levels.get(&f.name)?,
                    achieved_per_s: achieved(&f.name),
                    planned: f.planned,
                    dropped: f.dropped,
                },
            ))
        })
        .collect();
    let keys = r
        .flows
        .iter()
        .flat_map(|f| &f.steps)
        .map(|s| {
            let tri = |est: fn(&crate::model::Latency) -> u64, i: usize| {
                s.latency
                    .as_ref()
                    .map_or([0; 3], |l| [est(l), l.ci95[i][0], l.ci95[i][1]])
            };
            KeyStep {
                key: s.key.clone(),
                requests: s.requests,
                p50_us: tri(|l| l.p50_us, 0),
                p99_us: tri(|l| l.p99_us, 2),
                error_share: if s.requests == 0 {
                    0.0
                } else {
                    s.failed as f64 / s.requests as f64
                },
            }
        })
        .collect();
    Step {
        index,
        factor,
        measured_s,
        flows,
        keys,
        checks,
        verdict,
        untrustworthy,
    }
}

/// Whether an SLO's pattern matches any key of a result (an SLO that matches nothing is a typo).
pub fn matches_any(slo: &Slo, r: &RunResult) -> bool {
    !crate::analysis::threshold::evaluate(&slo.threshold, r).is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slos_parse_with_and_without_a_key() {
        let s: Slo = "p99 < 250ms".parse().unwrap();
        assert!(s.every_step);
        assert_eq!(s.threshold.pattern, "*.*");
        let s: Slo = "traders.exchange: errors < 1%".parse().unwrap();
        assert!(!s.every_step);
        assert_eq!(s.threshold.pattern, "traders.exchange");
        assert_eq!(s.threshold.text, "errors < 1%");
        assert!("p99 <".parse::<Slo>().is_err());
        assert!("p95 trend < 2%/10m".parse::<Slo>().is_err());
    }

    #[test]
    fn achieved_counts_iterations_that_ended_well_inside_the_measured_window() {
        // Rows every 0.5 s of 10 iterations (1 failed); 1 s of warm-up, 2 s measured: the rows
        // ending at 1.5, 2, 2.5 and 3 s count, 36 good iterations over 2 s.
        let r = RunResult {
            warmup_s: 1.0,
            flows: vec![crate::model::FlowResult {
                name: "f".into(),
                ..Default::default()
            }],
            intervals: (1..=8)
                .map(|i| crate::model::IntervalRow {
                    t: i as f64 * 0.5,
                    key: "f.iteration".into(),
                    count: 10,
                    errors: 1,
                    p50_us: 0,
                    p95_us: 0,
                    p99_us: 0,
                    max_us: 0,
                    active_vus: None,
                    target: None,
                    retries: 0,
                    dropped: None,
                })
                .collect(),
            ..Default::default()
        };
        let levels = [("f".to_string(), FlowLevel::Rate { rate_per_s: 20.0 })]
            .into_iter()
            .collect();
        let s = step(1, 1.0, &levels, &[], &r, 2.0);
        assert_eq!(s.flows["f"].achieved_per_s, 18.0);
        assert_eq!(s.measured_s, 2.0);
    }
}
