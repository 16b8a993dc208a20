//! `stampede compare BASE NEW`: per key, percentiles, error rate and throughput side by side, with a
//! verdict that noise does not fool.
//!
//! **Latency.** Single requests are not independent samples (they share queues, connections and
//! garbage-collection pauses), so testing the two runs' request latencies against each other would
//! find "significant" differences everywhere. The unit of evidence is the *interval*: each run
//! stores p50/p95/p99 per key per interval, and the two series are compared with a two-sided
//! Mann–Whitney U test (normal approximation with tie correction). A change is *regressed* or
//! *improved* when the test gives p < 0.001 (five metrics are tested per key) **and** the whole-run percentile moved by more than 5%
//! and by more than 1 ms (below that, run-to-run differences are timer noise);
//! otherwise it is "no significant change". Fewer than 5 intervals on a side gives no verdict.
//!
//! **Errors.** A two-proportion z-test on failed / sent requests (p < 0.001); a change must also exceed 0.1
//! percentage points to count.
//!
//! **Throughput.** Requests per second, compared per interval with the same U test.
//!
//! `--fail-if` bounds (`"p99 > +10%"`, `"errors > +0.5pp"`, `"rate < -10%"`) fail the comparison
//! (exit 1) when a key regressed *significantly* beyond the bound.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use crate::metrics::codec;
use crate::report::model::{IntervalRow, Latency, RunResult};
use crate::scenario::units::short_duration;

/// Significance level of every test. Each key is tested on five metrics, so a strict level keeps
/// the chance of any false alarm per key near 1% (Bonferroni); real regressions of a run's worth of
/// intervals reach p < 0.0001.
pub const ALPHA: f64 = 0.001;
/// Smallest relative change of a percentile or rate that counts as a change.
pub const MIN_RELATIVE: f64 = 0.05;
/// Smallest absolute change of a percentile that counts, in microseconds: below a millisecond,
/// run-to-run differences are timer and scheduling noise (latency includes the wake-up of the
/// due time), not the system under test.
pub const MIN_ABSOLUTE_US: f64 = 1000.0;
/// Smallest change of an error rate, in percentage points, that counts.
pub const MIN_ERROR_PP: f64 = 0.1;
/// Fewest intervals per side for a verdict.
pub const MIN_INTERVALS: usize = 5;

/// What the comparison concluded for one metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// Significantly worse.
    Regressed,
    /// Significantly better.
    Improved,
    /// Not distinguishable from noise.
    NoSignificantChange,
    /// Too few intervals to tell.
    InsufficientData,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Change::Regressed => "regressed",
            Change::Improved => "improved",
            Change::NoSignificantChange => "no significant change",
            Change::InsufficientData => "insufficient data",
        })
    }
}

/// Which metric a row compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    /// Median latency.
    P50,
    /// 95th percentile.
    P95,
    /// 99th percentile.
    P99,
    /// Share of failed requests.
    Errors,
    /// Requests per second.
    Rate,
}

impl Measure {
    fn name(self) -> &'static str {
        match self {
            Measure::P50 => "p50",
            Measure::P95 => "p95",
            Measure::P99 => "p99",
            Measure::Errors => "errors",
            Measure::Rate => "rate",
        }
    }
}

/// One metric of one key compared.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Row {
    /// `flow.step` or `flow.iteration`.
    pub key: String,
    /// The metric.
    pub measure: Measure,
    /// Base value (µs for latencies, 0–1 for errors, per second for rate).
    pub base: f64,
    /// New value.
    pub new: f64,
    /// Relative change (latency, rate) or difference in percentage points (errors).
    pub delta: f64,
    /// The test's p-value, when it could run.
    pub p_value: Option<f64>,
    /// The verdict.
    pub change: Change,
}

impl Row {
    fn shown(&self, v: f64) -> String {
        match self.measure {
            Measure::Errors => format!("{:.2}%", v * 100.0),
            Measure::Rate => format!("{v:.1}/s"),
            _ => short_duration(std::time::Duration::from_micros(v.max(0.0) as u64)),
        }
    }
    fn delta_text(&self) -> String {
        match self.measure {
            Measure::Errors => format!("{:+.2}pp", self.delta),
            _ => format!("{:+.1}%", self.delta * 100.0),
        }
    }
}

/// A `--fail-if` bound.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FailIf {
    /// The metric.
    pub measure: Measure,
    /// `>` (worse when higher) or `<` (worse when lower).
    pub above: bool,
    /// The bound: relative (0.1 for +10%) or percentage points for errors.
    pub bound: f64,
}

impl FromStr for FailIf {
    type Err = String;
    fn from_str(s: &str) -> Result<FailIf, String> {
        let err = || {
            format!(
                "invalid --fail-if `{s}`: expected like \"p99 > +10%\", \"errors > +0.5pp\" or \"rate < -10%\""
            )
        };
        let (lhs, rhs, above) = if let Some((l, r)) = s.split_once('>') {
            (l, r, true)
        } else if let Some((l, r)) = s.split_once('<') {
            (l, r, false)
        } else {
            return Err(err());
        };
        let measure = match lhs.trim() {
            "p50" => Measure::P50,
            "p95" => Measure::P95,
            "p99" => Measure::P99,
            "errors" => Measure::Errors,
            "rate" => Measure::Rate,
            _ => return Err(err()),
        };
        let rhs = rhs.trim();
        let bound = if measure == Measure::Errors {
            rhs.strip_suffix("pp")
                .and_then(|n| n.trim().parse::<f64>().ok())
                .ok_or_else(err)?
        } else {
            rhs.strip_suffix('%')
                .and_then(|n| n.trim().parse::<f64>().ok())
                .ok_or_else(err)?
                / 100.0
        };
        Ok(FailIf {
            measure,
            above,
            bound,
        })
    }
}

impl fmt::Display for FailIf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = if self.above { ">" } else { "<" };
        match self.measure {
            Measure::Errors => write!(f, "errors {op} {:+}pp", self.bound),
            m => write!(f, "{} {op} {:+}%", m.name(), self.bound * 100.0),
        }
    }
}

impl FailIf {
    /// True when `row` is a significant regression beyond this bound.
    pub fn trips(&self, row: &Row) -> bool {
        row.measure == self.measure
            && row.change == Change::Regressed
            && if self.above {
                row.delta > self.bound
            } else {
                row.delta < self.bound
            }
    }
}

/// What one run says about one key.
struct Side<'a> {
    latency: Option<&'a Latency>,
    failed: u64,
    total: u64,
    rate: f64,
}

impl<'a> Side<'a> {
    fn step(s: &'a crate::report::model::StepResult) -> Side<'a> {
        Side {
            latency: s.latency.as_ref(),
            failed: s.failed,
            total: s.requests,
            rate: s.rate,
        }
    }
    fn flow(f: &'a crate::report::model::FlowResult) -> Side<'a> {
        Side {
            latency: f.iteration.as_ref(),
            failed: f.iterations_failed,
            total: f.iterations_ok + f.iterations_failed,
            rate: f.iteration_rate,
        }
    }
}

/// Compares two runs key by key (keys present in both).
pub fn compare(base: &RunResult, new: &RunResult) -> Vec<Row> {
    let series = |r: &RunResult| {
        let mut m: HashMap<String, Vec<IntervalRow>> = HashMap::new();
        for row in &r.intervals {
            m.entry(row.key.clone()).or_default().push(row.clone());
        }
        m
    };
    let (bs, ns) = (series(base), series(new));
    let mut rows = Vec::new();
    for bf in &base.flows {
        let Some(nf) = new.flows.iter().find(|f| f.name == bf.name) else {
            continue;
        };
        let mut keys: Vec<(String, Side<'_>, Side<'_>)> = Vec::new();
        for bs_ in &bf.steps {
            if let Some(ns_) = nf.steps.iter().find(|s| s.key == bs_.key) {
                keys.push((bs_.key.clone(), Side::step(bs_), Side::step(ns_)));
            }
        }
        keys.push((
            format!("{}.iteration", bf.name),
            Side::flow(bf),
            Side::flow(nf),
        ));
        for (key, b_side, n_side) in keys {
            let (bl, nl) = (b_side.latency, n_side.latency);
            let (be, ne) = ((b_side.failed, b_side.total), (n_side.failed, n_side.total));
            let (br, nr) = (b_side.rate, n_side.rate);
            let empty = Vec::new();
            let b_rows: Vec<&IntervalRow> = bs
                .get(&key)
                .unwrap_or(&empty)
                .iter()
                .filter(|r| r.count > 0)
                .collect();
            let n_rows: Vec<&IntervalRow> = ns
                .get(&key)
                .unwrap_or(&empty)
                .iter()
                .filter(|r| r.count > 0)
                .collect();
            if let (Some(bl), Some(nl)) = (bl, nl) {
                for (m, q, pick) in [
                    (
                        Measure::P50,
                        0.5,
                        (|r: &IntervalRow| r.p50_us as f64) as fn(&IntervalRow) -> f64,
                    ),
                    (Measure::P95, 0.95, |r: &IntervalRow| r.p95_us as f64),
                    (Measure::P99, 0.99, |r: &IntervalRow| r.p99_us as f64),
                ] {
                    let (b, n) = (quantile(bl, q), quantile(nl, q));
                    let delta = if b > 0.0 { n / b - 1.0 } else { 0.0 };
                    let xs: Vec<f64> = b_rows.iter().map(|r| pick(r)).collect();
                    let ys: Vec<f64> = n_rows.iter().map(|r| pick(r)).collect();
                    let mut row = judge(&key, m, b, n, delta, &xs, &ys, true);
                    if (n - b).abs() < MIN_ABSOLUTE_US
                        && matches!(row.change, Change::Regressed | Change::Improved)
                    {
                        row.change = Change::NoSignificantChange;
                    }
                    rows.push(row);
                }
            }
            let (bp, np) = (share(be), share(ne));
            let p = two_proportion_p(be, ne);
            let pp = (np - bp) * 100.0;
            let change = match p {
                None => Change::InsufficientData,
                Some(p) if p < ALPHA && pp > MIN_ERROR_PP => Change::Regressed,
                Some(p) if p < ALPHA && pp < -MIN_ERROR_PP => Change::Improved,
                Some(_) => Change::NoSignificantChange,
            };
            rows.push(Row {
                key: key.clone(),
                measure: Measure::Errors,
                base: bp,
                new: np,
                delta: pp,
                p_value: p,
                change,
            });
            let dt_b = base.interval_s.max(1e-3);
            let dt_n = new.interval_s.max(1e-3);
            // Throughput per interval, ignoring the partial first and last intervals.
            let trim = |v: &[&IntervalRow], dt: f64| -> Vec<f64> {
                let n = v.len();
                v.iter()
                    .enumerate()
                    .filter(|(i, _)| *i > 0 && *i + 1 < n)
                    .map(|(_, r)| r.count as f64 / dt)
                    .collect()
            };
            let (xs, ys) = (trim(&b_rows, dt_b), trim(&n_rows, dt_n));
            let delta = if br > 0.0 { nr / br - 1.0 } else { 0.0 };
            rows.push(judge(&key, Measure::Rate, br, nr, delta, &xs, &ys, false));
        }
    }
    rows
}

#[allow(clippy::too_many_arguments)]
fn judge(
    key: &str,
    m: Measure,
    base: f64,
    new: f64,
    delta: f64,
    xs: &[f64],
    ys: &[f64],
    higher_is_worse: bool,
) -> Row {
    let p =
        (xs.len() >= MIN_INTERVALS && ys.len() >= MIN_INTERVALS).then(|| mann_whitney_p(xs, ys));
    let change = match p {
        None => Change::InsufficientData,
        Some(p) if p < ALPHA && delta.abs() > MIN_RELATIVE => {
            if (delta > 0.0) == higher_is_worse {
                Change::Regressed
            } else {
                Change::Improved
            }
        }
        Some(_) => Change::NoSignificantChange,
    };
    Row {
        key: key.to_string(),
        measure: m,
        base,
        new,
        delta,
        p_value: p,
        change,
    }
}

fn quantile(l: &Latency, q: f64) -> f64 {
    match codec::decode(&l.histogram) {
        Ok(h) => h.value_at_quantile(q) as f64,
        Err(_) => match q {
            x if x <= 0.5 => l.p50_us as f64,
            x if x <= 0.95 => l.p95_us as f64,
            _ => l.p99_us as f64,
        },
    }
}

fn share((failed, total): (u64, u64)) -> f64 {
    if total == 0 {
        0.0
    } else {
        failed as f64 / total as f64
    }
}

/// Two-sided p-value of the Mann–Whitney U test, normal approximation with tie correction.
pub fn mann_whitney_p(xs: &[f64], ys: &[f64]) -> f64 {
    let (n1, n2) = (xs.len() as f64, ys.len() as f64);
    let mut all: Vec<(f64, bool)> = xs
        .iter()
        .map(|&x| (x, true))
        .chain(ys.iter().map(|&y| (y, false)))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n = all.len();
    let mut rank_sum_x = 0.0;
    let mut tie_term = 0.0;
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && all[j + 1].0 == all[i].0 {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        let t = (j - i + 1) as f64;
        tie_term += t * t * t - t;
        for item in &all[i..=j] {
            if item.1 {
                rank_sum_x += rank;
            }
        }
        i = j + 1;
    }
    let u = rank_sum_x - n1 * (n1 + 1.0) / 2.0;
    let mean = n1 * n2 / 2.0;
    let nn = n1 + n2;
    let var = n1 * n2 / 12.0 * ((nn + 1.0) - tie_term / (nn * (nn - 1.0)));
    if var <= 0.0 {
        return 1.0;
    }
    // Continuity correction toward the mean.
    let z = ((u - mean).abs() - 0.5).max(0.0) / var.sqrt();
    (2.0 * normal_sf(z)).min(1.0)
}

/// Two-sided Mann–Whitney U p-value between two histograms (ranks over their recorded values;
/// values in the same bucket are ties).
pub fn mann_whitney_hist(a: &crate::metrics::Hist, b: &crate::metrics::Hist) -> f64 {
    let (n1, n2) = (a.len() as f64, b.len() as f64);
    if n1 == 0.0 || n2 == 0.0 {
        return 1.0;
    }
    let mut buckets: std::collections::BTreeMap<u64, (u64, u64)> =
        std::collections::BTreeMap::new();
    for v in a.iter_recorded() {
        buckets
            .entry(a.highest_equivalent(v.value_iterated_to()))
            .or_default()
            .0 += v.count_at_value();
    }
    for v in b.iter_recorded() {
        buckets
            .entry(b.highest_equivalent(v.value_iterated_to()))
            .or_default()
            .1 += v.count_at_value();
    }
    let (mut rank_sum_a, mut below, mut tie_term) = (0.0, 0.0, 0.0);
    for (ca, cb) in buckets.values() {
        let t = (ca + cb) as f64;
        let mid_rank = below + (t + 1.0) / 2.0;
        rank_sum_a += *ca as f64 * mid_rank;
        tie_term += t * t * t - t;
        below += t;
    }
    let u = rank_sum_a - n1 * (n1 + 1.0) / 2.0;
    let nn = n1 + n2;
    let var = n1 * n2 / 12.0 * ((nn + 1.0) - tie_term / (nn * (nn - 1.0)));
    if var <= 0.0 {
        return 1.0;
    }
    let z = ((u - n1 * n2 / 2.0).abs() - 0.5).max(0.0) / var.sqrt();
    (2.0 * normal_sf(z)).min(1.0)
}

/// Two-sided p-value of the two-proportion z-test; `None` when either side sent nothing.
pub fn two_proportion_p((f1, n1): (u64, u64), (f2, n2): (u64, u64)) -> Option<f64> {
    if n1 == 0 || n2 == 0 {
        return None;
    }
    let (p1, p2) = (f1 as f64 / n1 as f64, f2 as f64 / n2 as f64);
    let pooled = (f1 + f2) as f64 / (n1 + n2) as f64;
    let se = (pooled * (1.0 - pooled) * (1.0 / n1 as f64 + 1.0 / n2 as f64)).sqrt();
    if se == 0.0 {
        return Some(if p1 == p2 { 1.0 } else { 0.0 });
    }
    Some((2.0 * normal_sf(((p2 - p1) / se).abs())).min(1.0))
}

/// Upper tail of the standard normal distribution, from the complementary error function
/// (Numerical Recipes' Chebyshev fit, relative error below 1.2e-7).
pub fn normal_sf(z: f64) -> f64 {
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

/// Renders the comparison table.
pub fn render(rows: &[Row], tripped: &[(Row, String)]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let kw = rows.iter().map(|r| r.key.len()).max().unwrap_or(3).max(3);
    let _ = writeln!(
        out,
        "{:<kw$}  {:<6}  {:>10}  {:>10}  {:>9}  {:>8}  verdict",
        "key", "metric", "base", "new", "delta", "p"
    );
    for r in rows {
        let p = r.p_value.map_or_else(
            || "-".into(),
            |p| {
                if p < 0.0001 {
                    "<0.0001".into()
                } else {
                    format!("{p:.4}")
                }
            },
        );
        let _ = writeln!(
            out,
            "{:<kw$}  {:<6}  {:>10}  {:>10}  {:>9}  {:>8}  {}",
            r.key,
            r.measure.name(),
            r.shown(r.base),
            r.shown(r.new),
            r.delta_text(),
            p,
            r.change
        );
    }
    let regressed = rows
        .iter()
        .filter(|r| r.change == Change::Regressed)
        .count();
    let improved = rows.iter().filter(|r| r.change == Change::Improved).count();
    let _ = writeln!(
        out,
        "\n{regressed} regressed, {improved} improved, {} unchanged or undecided",
        rows.len() - regressed - improved
    );
    let _ = writeln!(
        out,
        "(latency: Mann–Whitney U on per-interval percentiles; errors: two-proportion z-test; significance p < {ALPHA} and a change of more than {:.0}% and 1ms)",
        MIN_RELATIVE * 100.0
    );
    for (r, bound) in tripped {
        let _ = writeln!(
            out,
            "FAIL: {} {} {} beyond --fail-if \"{bound}\"",
            r.key,
            r.measure.name(),
            r.delta_text()
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_tail_matches_tables() {
        assert!((normal_sf(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_sf(1.96) - 0.024_997_9).abs() < 1e-6);
        assert!((normal_sf(3.0) - 0.001_349_9).abs() < 1e-6);
    }

    #[test]
    fn mann_whitney_separates_shifted_samples_only() {
        let a: Vec<f64> = (0..30).map(|i| 100.0 + (i * 7 % 13) as f64).collect();
        let same: Vec<f64> = (0..30).map(|i| 100.0 + (i * 5 % 13) as f64).collect();
        let shifted: Vec<f64> = a.iter().map(|x| x + 20.0).collect();
        assert!(mann_whitney_p(&a, &same) > 0.2);
        assert!(mann_whitney_p(&a, &shifted) < 1e-6);
        // All ties: no evidence at all.
        assert_eq!(mann_whitney_p(&[1.0; 10], &[1.0; 10]), 1.0);
    }

    #[test]
    fn mann_whitney_on_histograms_agrees_with_samples() {
        let mut a = crate::metrics::new_hist();
        let mut b = crate::metrics::new_hist();
        let xs: Vec<f64> = (0..200).map(|i| 1000.0 + (i * 37 % 101) as f64).collect();
        let ys: Vec<f64> = (0..200).map(|i| 1030.0 + (i * 53 % 101) as f64).collect();
        for x in &xs {
            a.record(*x as u64).unwrap();
        }
        for y in &ys {
            b.record(*y as u64).unwrap();
        }
        let p_hist = mann_whitney_hist(&a, &b);
        let p_samples = mann_whitney_p(&xs, &ys);
        assert!(p_hist < 1e-6 && p_samples < 1e-6, "{p_hist} {p_samples}");
        assert!(mann_whitney_hist(&a, &a.clone()) > 0.9);
    }

    #[test]
    fn two_proportions() {
        assert!(two_proportion_p((10, 1000), (11, 1000)).unwrap() > 0.5);
        assert!(two_proportion_p((10, 1000), (60, 1000)).unwrap() < 1e-6);
        assert_eq!(two_proportion_p((0, 0), (1, 10)), None);
    }

    #[test]
    fn fail_if_parses_and_trips_only_on_significant_regressions() {
        let f: FailIf = "p99 > +10%".parse().unwrap();
        assert_eq!(
            f,
            FailIf {
                measure: Measure::P99,
                above: true,
                bound: 0.1
            }
        );
        let e: FailIf = "errors > +0.5pp".parse().unwrap();
        assert_eq!(e.bound, 0.5);
        assert!("p99 > 10".parse::<FailIf>().is_err());
        assert!("errors > 1%".parse::<FailIf>().is_err());
        let row = |change, delta| Row {
            key: "k".into(),
            measure: Measure::P99,
            base: 1.0,
            new: 2.0,
            delta,
            p_value: Some(0.0),
            change,
        };
        assert!(f.trips(&row(Change::Regressed, 0.3)));
        assert!(!f.trips(&row(Change::Regressed, 0.05)));
        assert!(!f.trips(&row(Change::NoSignificantChange, 0.3)));
    }
}
