//! Thresholds judged: each [`Threshold`] (its grammar is in [`crate::model::threshold`]) against a
//! [`RunResult`], one [`Verdict`] per matching key. Evaluation reads the result and nothing else.

use std::time::Duration;

use crate::model::codec;
use crate::model::threshold::*;
use crate::model::{
    ErrorClass, FlowResult, Hist, Latency, RunResult, StepResult, Verdict, new_hist,
};
use crate::units::short_duration;

enum Subject<'a> {
    Step(&'a StepResult),
    Iteration(&'a FlowResult),
    Flow(&'a FlowResult),
}

fn decode(l: Option<&Latency>) -> Option<Hist> {
    l.and_then(|l| codec::decode(&l.histogram).ok())
}

fn latency_of(subject: &Subject<'_>, series: Series) -> Option<Hist> {
    fn pick(s: &StepResult, series: Series) -> Option<&Latency> {
        match series {
            Series::Latency => s.latency.as_ref(),
            Series::ServiceTime => s.service_time.as_ref(),
            Series::Ttfb => s.ttfb.as_ref(),
        }
    }
    match subject {
        Subject::Step(s) => decode(pick(s, series)),
        Subject::Iteration(f) => match series {
            Series::Latency => decode(f.iteration.as_ref()),
            _ => None,
        },
        Subject::Flow(f) => {
            let mut merged = new_hist();
            for s in &f.steps {
                if let Some(h) = decode(pick(s, series)) {
                    let _ = merged.add(&h);
                }
            }
            (!merged.is_empty()).then_some(merged)
        }
    }
}

/// (requests, failed requests, passed checks, failed checks) of a subject.
fn counts(subject: &Subject<'_>) -> (u64, u64, u64, u64) {
    // A request that never left this machine (no free local port) says nothing about the target:
    // the `connection_churn` self-check reports it instead.
    let local = |s: &StepResult| s.errors.get(&ErrorClass::Generator).copied().unwrap_or(0);
    match subject {
        Subject::Step(s) => (
            s.requests,
            s.failed - local(s).min(s.failed),
            s.checks_passed,
            s.checks_failed,
        ),
        Subject::Iteration(f) => (
            f.iterations_ok + f.iterations_failed,
            f.iterations_failed,
            0,
            0,
        ),
        Subject::Flow(f) => (
            f.steps.iter().map(|s| s.requests).sum(),
            f.steps
                .iter()
                .map(|s| s.failed - local(s).min(s.failed))
                .sum::<u64>()
                + f.errors
                    .iter()
                    .filter(|(class, _)| **class != ErrorClass::Internal)
                    .map(|(_, n)| n)
                    .sum::<u64>(),
            f.steps.iter().map(|s| s.checks_passed).sum(),
            f.steps.iter().map(|s| s.checks_failed).sum(),
        ),
    }
}

/// Evaluates `t` on every key of `r` its pattern matches.
pub fn evaluate(t: &Threshold, r: &RunResult) -> Vec<Verdict> {
    let mut out = Vec::new();
    for f in &r.flows {
        let subjects = subjects_of(t, f);
        for (key, subject) in subjects {
            if let Some(v) = evaluate_one(t, &key, &subject, f, &r.trends) {
                out.push(v);
            }
        }
    }
    out
}

fn subjects_of<'a>(t: &Threshold, f: &'a FlowResult) -> Vec<(String, Subject<'a>)> {
    let mut subjects = Vec::new();
    // The setup and teardown are judged only when a threshold names them: a glob over the load
    // does not reach them, so teardown never changes the load's verdict.
    let hook = matches!(
        f.kind,
        crate::model::FlowKind::Setup | crate::model::FlowKind::Teardown
    );
    if hook && t.pattern.contains('*') {
        return subjects;
    }
    // A journey's name reaches the load flows that run it, not setup or teardown running it
    // once: they answer to their own names only.
    let journey = |key: String| !hook && glob(&t.pattern, &key);
    if t.pattern.contains('.') {
        for s in &f.steps {
            if glob(&t.pattern, &s.key) || journey(format!("{}.{}", f.journey, s.name)) {
                subjects.push((s.key.clone(), Subject::Step(s)));
            }
        }
        let ik = format!("{}.iteration", f.name);
        if glob(&t.pattern, &ik) || journey(format!("{}.iteration", f.journey)) {
            subjects.push((ik, Subject::Iteration(f)));
        }
    } else if glob(&t.pattern, &f.name) || journey(f.journey.clone()) {
        subjects.push((f.name.clone(), Subject::Flow(f)));
    }
    subjects
}

/// The 95% confidence interval of what `t` observes on `key`, in the units of
/// [`Verdict::observed_value`], for the measures that have one: a latency percentile (order
/// statistics of its histogram) and an error share (Wilson score interval). `None` for the
/// others (mean, max, counts, rates, trends carry their own).
pub fn interval(t: &Threshold, r: &RunResult, key: &str) -> Option<[f64; 2]> {
    let subject = r
        .flows
        .iter()
        .flat_map(|f| subjects_of(t, f))
        .find(|(k, _)| k == key)?
        .1;
    match (t.expr.metric, t.expr.limit) {
        (Metric::Latency(series, Stat::Percentile(p)), _) => {
            let h = latency_of(&subject, series)?;
            let [lo, hi] = crate::model::hist::quantile_ci(&h, p / 100.0);
            Some([lo as f64 / 1e6, hi as f64 / 1e6])
        }
        (Metric::Errors, Limit::Share(_)) => {
            let (requests, failed, _, _) = counts(&subject);
            wilson(failed, requests)
        }
        _ => None,
    }
}

/// The Wilson score interval (95%) of `k` successes in `n` trials; `None` when `n` is 0.
pub fn wilson(k: u64, n: u64) -> Option<[f64; 2]> {
    if n == 0 {
        return None;
    }
    let (k, n) = (k.min(n) as f64, n as f64);
    let z = 1.96f64;
    let p = k / n;
    let den = 1.0 + z * z / n;
    let centre = (p + z * z / (2.0 * n)) / den;
    let half = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / den;
    Some([(centre - half).max(0.0), (centre + half).min(1.0)])
}

fn evaluate_one(
    t: &Threshold,
    key: &str,
    subject: &Subject<'_>,
    flow: &FlowResult,
    trends: &[crate::model::Trend],
) -> Option<Verdict> {
    let exact = !t.pattern.contains('*');
    let row = |observed: Option<(f64, String)>, note: Option<&str>| {
        let (value, text) = observed.map_or((None, "-".to_string()), |(v, s)| (Some(v), s));
        let limit = t.expr.limit.value();
        Verdict {
            pattern: t.pattern.clone(),
            key: key.to_string(),
            threshold: t.text.clone(),
            observed: text,
            observed_value: value,
            limit: t.expr.limit.to_string(),
            // A threshold with nothing to measure fails: a gate must not pass on missing data.
            passed: value.is_some_and(|v| t.expr.op.holds(v, limit)),
            note: note.map(str::to_string),
        }
    };
    let share = |num: u64, den: u64| -> Option<(f64, String)> {
        (den > 0).then(|| {
            let v = num as f64 / den as f64;
            (v, format!("{}% ({num} of {den})", fmt_num(v * 100.0)))
        })
    };
    let (requests, failed, passed_checks, failed_checks) = counts(subject);
    let flow_only = |name: &str| {
        if exact {
            Some(row(
                None,
                Some(&format!("`{name}` applies to flows, not steps")),
            ))
        } else {
            None
        }
    };
    Some(match t.expr.metric {
        Metric::Latency(series, stat) => match latency_of(subject, series) {
            Some(h) => {
                let us = match stat {
                    Stat::Percentile(p) => h.value_at_quantile(p / 100.0) as f64,
                    Stat::Mean => h.mean(),
                    Stat::Min => h.min() as f64,
                    Stat::Max => h.max() as f64,
                };
                let d = Duration::from_secs_f64(us / 1e6);
                row(Some((d.as_secs_f64(), short_duration(d))), None)
            }
            None => row(None, Some("no samples")),
        },
        Metric::Errors => match t.expr.limit {
            Limit::Count(_) => row(Some((failed as f64, failed.to_string())), None),
            _ => match share(failed, requests) {
                Some(o) => row(Some(o), None),
                None => row(None, Some("no requests")),
            },
        },
        Metric::Checks => match share(passed_checks, passed_checks + failed_checks) {
            Some(o) => row(Some(o), None),
            None => row(None, Some("no checks")),
        },
        Metric::Rate => {
            let Subject::Flow(f) = subject else {
                return flow_only("rate");
            };
            match t.expr.limit {
                Limit::PerSecond(_) => row(
                    Some((f.iteration_rate, format!("{}/s", fmt_num(f.iteration_rate)))),
                    None,
                ),
                _ => {
                    // Achieved: arrivals that started an iteration, of those the schedule planned.
                    let started = f.planned.saturating_sub(f.dropped);
                    match share(started, f.planned) {
                        Some(o) => row(Some(o), None),
                        None => row(None, Some("rate as a share applies to open flows")),
                    }
                }
            }
        }
        Metric::Trend(stat) => {
            // A flow's trend is its whole iterations' trend.
            let key = match subject {
                Subject::Flow(f) => format!("{}.iteration", f.name),
                _ => key.to_string(),
            };
            match trends.iter().find(|t| t.key == key) {
                Some(t) => {
                    // Judged on the lower bound of the 95% interval: a rise counts against the run
                    // only when it is significant, so a short noisy run does not fail on noise.
                    let [est, lo, hi] = if stat == Stat::Percentile(50.0) {
                        t.p50_per_min
                    } else {
                        t.p95_per_min
                    };
                    let text = format!(
                        "{:+.2}%/min (95% CI {:+.2} to {:+.2})",
                        est * 100.0,
                        lo * 100.0,
                        hi * 100.0
                    );
                    row(Some((lo / 60.0, text)), None)
                }
                None => row(None, Some("too few intervals for a trend")),
            }
        }
        Metric::Dropped => {
            let Subject::Flow(f) = subject else {
                return flow_only("dropped");
            };
            match t.expr.limit {
                Limit::Count(_) => row(Some((f.dropped as f64, f.dropped.to_string())), None),
                _ => match share(f.dropped, flow.planned) {
                    Some(o) => row(Some(o), None),
                    None => row(
                        Some((0.0, "0%".into())),
                        Some("closed flow: nothing to drop"),
                    ),
                },
            }
        }
    })
}

/// Every verdict of a run: each threshold on each key it matches and, with `checks_gate`, one
/// failing row per step whose checks failed.
pub fn verdicts(thresholds: &[Threshold], checks_gate: bool, r: &RunResult) -> Vec<Verdict> {
    let mut out: Vec<Verdict> = thresholds.iter().flat_map(|t| evaluate(t, r)).collect();
    if checks_gate {
        // Teardown's failed checks are reported, never part of the load's verdict.
        for s in r
            .flows
            .iter()
            .filter(|f| f.kind != crate::model::FlowKind::Teardown)
            .flat_map(|f| &f.steps)
            .filter(|s| s.checks_failed > 0)
        {
            let total = s.checks_failed + s.checks_passed;
            out.push(Verdict {
                pattern: "checks_gate".into(),
                key: s.key.clone(),
                threshold: "no failed checks".into(),
                observed: format!("{} of {total} failed", s.checks_failed),
                observed_value: Some(s.checks_failed as f64),
                limit: "0".into(),
                passed: false,
                note: None,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        let e: Expr = "p99 < 400ms".parse().unwrap();
        assert_eq!(
            e.metric,
            Metric::Latency(Series::Latency, Stat::Percentile(99.0))
        );
        assert_eq!(e.op, Op::Lt);
        assert_eq!(e.limit, Limit::Duration(Duration::from_millis(400)));
        let e: Expr = "ttfb p99.9 >= 1.5s".parse().unwrap();
        assert_eq!(
            e.metric,
            Metric::Latency(Series::Ttfb, Stat::Percentile(99.9))
        );
        assert_eq!(e.op, Op::Ge);
        assert_eq!(
            "errors < 1%".parse::<Expr>().unwrap().limit,
            Limit::Share(0.01)
        );
        assert_eq!(
            "errors == 0".parse::<Expr>().unwrap().limit,
            Limit::Count(0.0)
        );
        assert_eq!(
            "rate >= 40/s".parse::<Expr>().unwrap().limit,
            Limit::PerSecond(40.0)
        );
        assert_eq!(
            "checks > 99.5%".parse::<Expr>().unwrap().limit,
            Limit::Share(0.995)
        );
        assert_eq!(
            "mean<=2s".parse::<Expr>().unwrap().metric,
            Metric::Latency(Series::Latency, Stat::Mean)
        );
        let e: Expr = "p95 trend < 2%/10m".parse().unwrap();
        assert_eq!(e.metric, Metric::Trend(Stat::Percentile(95.0)));
        assert_eq!(e.limit, Limit::Slope(0.02 / 600.0));
        assert_eq!(e.limit.to_string(), "0.2%/min");
        assert!("p99 trend < 2%/10m".parse::<Expr>().is_err());
        assert!("p95 trend < 2%".parse::<Expr>().is_err());
    }

    #[test]
    fn rejects_malformed_expressions_with_a_reason() {
        for (bad, why) in [
            ("p99 400ms", "comparison"),
            ("p99 < 400", "duration"),
            ("p101 < 1s", "expected p50"),
            ("errors < lots", "percentage"),
            ("checks > 5", "percentage"),
            ("speed < 1s", "expected p50"),
            ("cpu p99 < 1s", "service_time"),
        ] {
            let e = bad.parse::<Expr>().unwrap_err();
            assert!(e.to_string().contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn globs_match_keys() {
        assert!(glob("trade.*", "trade.exchange"));
        assert!(glob("*", "anything"));
        assert!(glob("*.login", "signups.login"));
        assert!(glob("t*e.e*e", "trade.exchange"));
        assert!(!glob("trade.*", "traders.exchange"));
        assert!(!glob("trade", "trade.x"));
        let keys = matching_keys(
            "trade.*",
            [
                ("trade", "j", vec!["login", "exchange"]),
                ("other", "k", vec!["x"]),
            ],
        );
        assert_eq!(keys, ["trade.login", "trade.exchange", "trade.iteration"]);
        assert_eq!(
            matching_keys("*", [("a", "j", vec!["x"]), ("b", "j", vec![])]),
            ["a", "b"]
        );
        // A journey name selects every flow running it, under the flows' keys.
        let keys = matching_keys(
            "trade.exchange",
            [
                ("traders", "trade", vec!["exchange"]),
                ("whales", "trade", vec!["exchange"]),
            ],
        );
        assert_eq!(keys, ["traders.exchange", "whales.exchange"]);
    }
}
