//! What the steps say together: the knee and its levels, what broke first, the Universal
//! Scalability Law for closed flows, the linear range of open flows, and the `Server-Timing`
//! shift between the lowest level and the knee.

use std::collections::BTreeMap;

use super::{Slo, break_kind};
use crate::model::RunResult;
use crate::model::capacity::{
    Break, BreakKind, FlowLevel, Knee, OpenScaling, Outcome, SloOutcome, Step, StepVerdict,
    TimingShift, UslFit,
};

/// Achieved within this share of offered counts as keeping up (or within three standard
/// deviations of a Poisson count, when the step saw few arrivals).
const KEEPS_UP: f64 = 0.01;
/// A p99 whose lower bound exceeds the lowest level's upper bound by this factor has left its
/// low-load level.
const P99_RISE: f64 = 1.5;
/// Throughput below this share of linear (λN) is where scaling stops being linear.
const LINEAR: f64 = 0.9;

/// The findings of a finished search.
#[derive(Debug, Clone, Default)]
pub struct Conclusion {
    /// The highest passing factor and its levels.
    pub knee: Option<Knee>,
    /// The lowest failing factor.
    pub first_failure: Option<f64>,
    /// What broke first there.
    pub first_break: Option<Break>,
    /// USL fits of closed flows.
    pub usl: Vec<UslFit>,
    /// Linear ranges of open flows.
    pub open: Vec<OpenScaling>,
    /// `Server-Timing` of the first key to break, lowest level against the knee.
    pub server_timing: Vec<TimingShift>,
    /// One paragraph on the outcome.
    pub summary: String,
}

fn levels_text(flows: &BTreeMap<String, FlowLevel>) -> String {
    flows
        .iter()
        .map(|(name, l)| match l {
            FlowLevel::Rate { rate_per_s } => format!("{name} {rate_per_s:.1}/s"),
            FlowLevel::Vus { vus } => format!("{name} {vus} VUs"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Concludes a search from its steps (and each step's result, in the same order).
///
/// `refused` is a level the search wanted but this machine could not run (its sockets or memory),
/// with why.
pub fn conclude(
    slos: &[Slo],
    steps: &[Step],
    results: &[RunResult],
    outcome: Outcome,
    refused: Option<(f64, &str)>,
) -> Conclusion {
    let passing = steps
        .iter()
        .filter(|s| s.verdict == StepVerdict::Pass)
        .max_by(|a, b| a.factor.total_cmp(&b.factor));
    let failing = steps
        .iter()
        .filter(|s| s.verdict == StepVerdict::Fail)
        .min_by(|a, b| a.factor.total_cmp(&b.factor));
    let knee = passing.map(|s| Knee {
        factor: s.factor,
        flows: s
            .flows
            .iter()
            .map(|(n, f)| (n.clone(), f.offered))
            .collect(),
    });
    let first_break = failing.and_then(|s| {
        let c = s
            .checks
            .iter()
            .filter(|c| c.outcome == SloOutcome::Fail)
            .max_by(|a, b| a.severity.total_cmp(&b.severity))?;
        let kind = slos
            .iter()
            .find(|slo| slo.text == c.slo)
            .map_or(BreakKind::Drops, break_kind);
        let interval = c
            .interval
            .as_ref()
            .map_or_else(String::new, |i| format!(" (95% CI {i})"));
        Some(Break {
            key: c.key.clone(),
            kind,
            reason: format!(
                "{} observed {}{interval} at ×{}, against `{}`",
                match kind {
                    BreakKind::Latency => "latency:",
                    BreakKind::Errors => "errors:",
                    BreakKind::Drops => "drops: every user busy waiting on the target;",
                    BreakKind::Other => "",
                },
                c.observed,
                factor_text(s.factor),
                c.slo
            ),
        })
    });
    let trusted: Vec<(&Step, &RunResult)> = steps
        .iter()
        .zip(results)
        .filter(|(s, _)| {
            !matches!(
                s.verdict,
                StepVerdict::Untrustworthy | StepVerdict::Interrupted
            )
        })
        .collect();
    let usl = usl_fits(&trusted);
    let open = open_scaling(&trusted);
    let at = |step: Option<&Step>| {
        step.and_then(|s| {
            trusted
                .iter()
                .find(|(t, _)| std::ptr::eq(*t, s))
                .map(|t| t.1)
        })
    };
    let low = trusted
        .iter()
        .min_by(|a, b| a.0.factor.total_cmp(&b.0.factor))
        .map(|t| t.1);
    let server_timing = match (&first_break, low) {
        (Some(b), Some(low)) => timing_shift(&b.key, low, at(passing), at(failing)),
        _ => Vec::new(),
    };
    let summary = summary(
        outcome,
        knee.as_ref(),
        failing,
        first_break.as_ref(),
        steps,
        refused,
    );
    Conclusion {
        knee,
        first_failure: failing.map(|s| s.factor),
        first_break,
        usl,
        open,
        server_timing,
        summary,
    }
}

/// A factor as people read it: `×3.4`, `×0.25`.
pub fn factor_text(f: f64) -> String {
    if f >= 10.0 {
        format!("{f:.1}")
    } else {
        let s = format!("{f:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

fn summary(
    outcome: Outcome,
    knee: Option<&Knee>,
    failing: Option<&Step>,
    first: Option<&Break>,
    steps: &[Step],
    refused: Option<(f64, &str)>,
) -> String {
    let broke = match (failing, first) {
        (Some(s), Some(b)) => format!(
            "×{} broke `{}` ({})",
            factor_text(s.factor),
            b.key,
            b.reason
        ),
        _ => String::new(),
    };
    let held = knee.map_or_else(
        || "no level passed".to_string(),
        |k| {
            format!(
                "×{} held every SLO ({})",
                factor_text(k.factor),
                levels_text(&k.flows)
            )
        },
    );
    let last = steps.last();
    let bracket = match (knee, failing) {
        (Some(k), Some(f)) => format!(
            " (the knee lies between ×{} and ×{})",
            factor_text(k.factor),
            factor_text(f.factor)
        ),
        _ => String::new(),
    };
    match outcome {
        Outcome::Found => match (knee, first) {
            (Some(k), Some(b)) => format!(
                "headroom ×{} before `{}` breaks: {held}; {broke}",
                factor_text(k.factor),
                b.key
            ),
            _ => format!("{held}; {broke}"),
        },
        Outcome::BrokenAsWritten => match knee {
            Some(k) => format!(
                "the scenario as written already breaks its SLO: the target takes ×{} of it. {held}; {broke}",
                factor_text(k.factor)
            ),
            None => format!(
                "the scenario as written already breaks its SLO, and so did every level tried: {broke}"
            ),
        },
        Outcome::GeneratorLimited => {
            let (at, why) = match (refused, last) {
                (Some((f, why)), _) => (factor_text(f), why.to_string()),
                (None, Some(s)) => (
                    factor_text(s.factor),
                    s.untrustworthy.clone().unwrap_or_default(),
                ),
                (None, None) => (String::new(), String::new()),
            };
            let beyond = if failing.is_some() {
                format!(
                    "the knee is bracketed only as far as the levels this machine could judge{bracket}"
                )
            } else {
                "the knee lies beyond what this machine can offer: run the load from more machines, or give this one more CPU".to_string()
            };
            format!(
                "at ×{at} the generator itself was the limit ({why}): no verdict on the target there. {held}; {beyond}"
            )
        }
        Outcome::BeyondMaxFactor => format!(
            "every level up to ×{} passed: the knee lies beyond (raise --max-factor). {held}",
            last.map_or_else(String::new, |s| factor_text(s.factor))
        ),
        Outcome::Undecided => format!(
            "×{} stayed undecided after {} runs, each twice as long (an interval straddled its limit): \
             the knee is not bracketed to the resolution{bracket}. {held}{}",
            last.map_or_else(String::new, |s| factor_text(s.factor)),
            steps
                .iter()
                .filter(|s| last.is_some_and(|l| l.factor == s.factor))
                .count(),
            if broke.is_empty() {
                String::new()
            } else {
                format!("; {broke}")
            }
        ),
        Outcome::Interrupted => format!("interrupted{bracket}. {held}"),
        Outcome::Failed => format!("the search stopped on an error{bracket}. {held}"),
    }
}

/// The USL fitted to each closed flow whose users changed between steps.
fn usl_fits(steps: &[(&Step, &RunResult)]) -> Vec<UslFit> {
    let mut by_flow: BTreeMap<&str, BTreeMap<u64, f64>> = BTreeMap::new();
    for (s, _) in steps {
        for (name, f) in &s.flows {
            if let FlowLevel::Vus { vus } = f.offered {
                by_flow
                    .entry(name)
                    .or_default()
                    .insert(vus, f.achieved_per_s);
            }
        }
    }
    by_flow
        .into_iter()
        .filter_map(|(flow, points)| {
            let pts: Vec<(f64, f64)> = points
                .into_iter()
                .filter(|p| p.1 > 0.0)
                .map(|(n, x)| (n as f64, x))
                .collect();
            fit_usl(&pts).map(|mut u| {
                u.flow = flow.to_string();
                u
            })
        })
        .collect()
}

/// Fits X(N) = λN / (1 + σ(N−1) + κN(N−1)) to (N, X) points by least squares on its linear
/// form N/X = 1/λ + (σ/λ)(N−1) + (κ/λ)N(N−1), with σ and κ kept at or above zero. Needs three
/// distinct N.
pub fn fit_usl(points: &[(f64, f64)]) -> Option<UslFit> {
    // Three parameters need a fourth level before the fit says anything (three fit exactly).
    if points.len() < 4 {
        return None;
    }
    let rows: Vec<([f64; 3], f64)> = points
        .iter()
        .map(|&(n, x)| ([1.0, n - 1.0, n * (n - 1.0)], n / x))
        .collect();
    // Non-negative σ and κ: the best of the column sets whose coefficients are all allowed (the
    // exact constrained least squares for two constrained terms).
    let residual = |c: &[f64; 3]| -> f64 {
        rows.iter()
            .map(|(x, y)| (y - (c[0] * x[0] + c[1] * x[1] + c[2] * x[2])).powi(2))
            .sum()
    };
    let [a, b, c] = [
        [true, true, true],
        [true, true, false],
        [true, false, true],
        [true, false, false],
    ]
    .into_iter()
    .filter_map(|mask| least_squares(&rows, mask))
    .filter(|c| c[0] > 0.0 && c[1] >= 0.0 && c[2] >= 0.0)
    .min_by(|p, q| residual(p).total_cmp(&residual(q)))?;
    let (lambda, sigma, kappa) = (1.0 / a, b / a, c / a);
    let predict = |n: f64| lambda * n / (1.0 + sigma * (n - 1.0) + kappa * n * (n - 1.0));
    let mean = points.iter().map(|p| p.1).sum::<f64>() / points.len() as f64;
    let ss_tot: f64 = points.iter().map(|p| (p.1 - mean).powi(2)).sum();
    let ss_res: f64 = points.iter().map(|p| (p.1 - predict(p.0)).powi(2)).sum();
    let r_squared = if ss_tot > 0.0 {
        1.0 - ss_res / ss_tot
    } else {
        0.0
    };
    let peak_users = (kappa > 0.0 && sigma < 1.0).then(|| ((1.0 - sigma) / kappa).sqrt());
    // Where throughput falls to LINEAR of λN: κN² + (σ−κ)N − (σ + d) = 0, d = 1/LINEAR − 1; the
    // positive root in the form that stays exact when κ is tiny.
    let d = 1.0 / LINEAR - 1.0;
    let linear_to = if kappa > 0.0 || sigma > 0.0 {
        let (qa, qb, qc) = (kappa, sigma - kappa, -(sigma + d));
        let disc = (qb * qb - 4.0 * qa * qc).sqrt();
        Some(2.0 * qc / (-qb - disc))
    } else {
        None
    };
    let max_n = points.iter().map(|p| p.0).fold(0.0, f64::max);
    let beyond = |n: f64| {
        if n > max_n {
            format!(" (extrapolated beyond the {max_n:.0} users measured)")
        } else {
            String::new()
        }
    };
    let reading = if r_squared < 0.8 {
        format!(
            "the law fits poorly (R² {r_squared:.2}): throughput did not follow users in a way it describes"
        )
    } else {
        match (linear_to, peak_users) {
            (None, _) => format!(
                "throughput grew in proportion to users over every level measured (up to {max_n:.0}): no contention seen"
            ),
            (Some(l), Some(p)) => format!(
                "scales linearly to about {l:.0} users{} (throughput within {:.0}% of λN); contention σ = {sigma:.3}, \
                 coherency κ = {kappa:.5}: throughput peaks at about {p:.0} users ({:.1}/s){} and falls beyond",
                beyond(l),
                LINEAR * 100.0,
                predict(p),
                beyond(p)
            ),
            (Some(l), None) => format!(
                "scales linearly to about {l:.0} users{} (throughput within {:.0}% of λN); contention σ = {sigma:.3} \
                 and no coherency cost: throughput flattens towards {:.1}/s rather than falling",
                beyond(l),
                LINEAR * 100.0,
                lambda / sigma.max(1e-12)
            ),
        }
    };
    Some(UslFit {
        flow: String::new(),
        lambda,
        sigma,
        kappa,
        peak_users,
        r_squared,
        points: points.len(),
        reading,
    })
}

/// Least squares over the columns `mask` keeps (normal equations, Gaussian elimination).
fn least_squares(rows: &[([f64; 3], f64)], mask: [bool; 3]) -> Option<[f64; 3]> {
    let cols: Vec<usize> = (0..3).filter(|&i| mask[i]).collect();
    let k = cols.len();
    // Columns scaled to unit largest value: 1, N and N² differ by orders of magnitude, and the
    // normal equations square that.
    let scale: Vec<f64> = cols
        .iter()
        .map(|&c| {
            rows.iter()
                .map(|(x, _)| x[c].abs())
                .fold(0.0, f64::max)
                .max(1e-300)
        })
        .collect();
    let mut m = vec![vec![0.0; k + 1]; k];
    for (x, y) in rows {
        for (i, &ci) in cols.iter().enumerate() {
            for (j, &cj) in cols.iter().enumerate() {
                m[i][j] += x[ci] / scale[i] * x[cj] / scale[j];
            }
            m[i][k] += x[ci] / scale[i] * y;
        }
    }
    for i in 0..k {
        let p = (i..k).max_by(|&a, &b| m[a][i].abs().total_cmp(&m[b][i].abs()))?;
        m.swap(i, p);
        if m[i][i].abs() < 1e-12 {
            return None;
        }
        let pivot = m[i].clone();
        for (r, row) in m.iter_mut().enumerate() {
            if r != i {
                let f = row[i] / pivot[i];
                for (v, p) in row.iter_mut().zip(&pivot).skip(i) {
                    *v -= f * p;
                }
            }
        }
    }
    let mut out = [0.0; 3];
    for (i, &ci) in cols.iter().enumerate() {
        out[ci] = m[i][k] / m[i][i] / scale[i];
    }
    Some(out)
}

/// Each open flow's linear range over the trusted steps, lowest factor first.
fn open_scaling(steps: &[(&Step, &RunResult)]) -> Vec<OpenScaling> {
    let mut sorted: Vec<&(&Step, &RunResult)> = steps.iter().collect();
    sorted.sort_by(|a, b| a.0.factor.total_cmp(&b.0.factor));
    let Some(low) = sorted.first() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let low_rate = |name: &str| match low.0.flows.get(name).map(|f| f.offered) {
        Some(FlowLevel::Rate { rate_per_s }) => rate_per_s,
        _ => 0.0,
    };
    for (name, f) in &low.0.flows {
        let FlowLevel::Rate { .. } = f.offered else {
            continue;
        };
        let rate_at = |s: &Step| match s.flows.get(name).map(|f| (f.offered, f.achieved_per_s)) {
            Some((FlowLevel::Rate { rate_per_s }, achieved)) => Some((rate_per_s, achieved)),
            _ => None,
        };
        // A flow held at its level (a background job) has no range to find.
        let varied = sorted
            .iter()
            .filter_map(|(s, _)| rate_at(s))
            .any(|(offered, _)| (offered - low_rate(name)).abs() > 1e-9);
        if !varied {
            continue;
        }
        let mut linear = None;
        for (s, _) in &sorted {
            match rate_at(s) {
                Some((offered, achieved))
                    if achieved
                        >= offered
                            * (1.0
                                - KEEPS_UP.max(3.0 / (offered * s.measured_s).max(1.0).sqrt())) =>
                {
                    linear = Some(offered);
                }
                _ => break,
            }
        }
        let prefix = format!("{name}.");
        let base: BTreeMap<&str, u64> = low
            .0
            .keys
            .iter()
            .filter(|k| k.key.starts_with(&prefix) && k.requests > 0)
            .map(|k| (k.key.as_str(), k.p99_us[2]))
            .collect();
        let rise = sorted.iter().find_map(|(s, _)| {
            s.keys.iter().find_map(|k| {
                let hi = base.get(k.key.as_str())?;
                (k.p99_us[1] as f64 > P99_RISE * *hi as f64)
                    .then(|| (rate_at(s).map(|r| r.0), k.key.clone()))
            })
        });
        let (rises_at, key) = match rise {
            Some((r, k)) => (r, Some(k)),
            None => (None, None),
        };
        let reading = match (linear, rises_at, &key) {
            (Some(l), Some(r), Some(k)) => format!(
                "achieved kept up with offered to {l:.1}/s; `{k}` p99 left its low-load level at {r:.1}/s"
            ),
            (Some(l), None, _) => {
                format!("achieved kept up with offered to {l:.1}/s; no p99 left its low-load level")
            }
            (None, _, _) => "achieved fell short of offered from the lowest level run".to_string(),
            (Some(l), _, _) => format!("achieved kept up with offered to {l:.1}/s"),
        };
        out.push(OpenScaling {
            flow: name.clone(),
            linear_up_to_per_s: linear,
            p99_rises_at_per_s: rises_at,
            p99_key: key,
            reading,
        });
    }
    out
}

/// The `Server-Timing` durations of `key` per call: at the lowest level, the knee and the first
/// failure.
fn timing_shift(
    key: &str,
    low: &RunResult,
    knee: Option<&RunResult>,
    fail: Option<&RunResult>,
) -> Vec<TimingShift> {
    let per_call = |r: &RunResult| -> BTreeMap<String, f64> {
        r.flows
            .iter()
            .flat_map(|f| &f.steps)
            .filter(|s| s.key == key)
            .flat_map(|s| &s.server_timing)
            .filter(|t| t.duration.is_some() && t.reported > 0)
            .map(|t| (t.name.clone(), t.total_ms / t.reported as f64))
            .collect()
    };
    let (knee, fail) = (knee.map(per_call), fail.map(per_call));
    per_call(low)
        .into_iter()
        .map(|(name, base_ms)| TimingShift {
            key: key.to_string(),
            knee_ms: knee.as_ref().and_then(|k| k.get(&name).copied()),
            fail_ms: fail.as_ref().and_then(|k| k.get(&name).copied()),
            name,
            base_ms,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_usl_fit_recovers_its_parameters() {
        let (l, s, k) = (100.0, 0.05, 0.002);
        let pts: Vec<(f64, f64)> = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0]
            .iter()
            .map(|&n| (n, l * n / (1.0 + s * (n - 1.0) + k * n * (n - 1.0))))
            .collect();
        let u = fit_usl(&pts).unwrap();
        assert!(
            (u.lambda - l).abs() < 1e-6 && (u.sigma - s).abs() < 1e-9,
            "{u:?}"
        );
        assert!((u.kappa - k).abs() < 1e-9 && u.r_squared > 0.999, "{u:?}");
        let peak = ((1.0 - s) / k).sqrt();
        assert!((u.peak_users.unwrap() - peak).abs() < 1e-6);
        assert!(
            u.reading.contains("peaks at about 22 users"),
            "{}",
            u.reading
        );
    }

    #[test]
    fn linear_scaling_has_no_contention_and_no_peak() {
        let pts: Vec<(f64, f64)> = [2.0, 4.0, 8.0, 16.0]
            .iter()
            .map(|&n| (n, 10.0 * n))
            .collect();
        let u = fit_usl(&pts).unwrap();
        assert!(u.sigma.abs() < 1e-9 && u.kappa.abs() < 1e-12 && u.peak_users.is_none());
        assert!(u.reading.contains("no contention"), "{}", u.reading);
        assert!(
            fit_usl(&pts[..2]).is_none(),
            "two points cannot fit three parameters"
        );
    }
}
