//! `stampede compare BASE NEW`: per key, percentiles, error rate and throughput side by side, with a
//! verdict that says what the data can decide and says *undecided* where it cannot.
//!
//! **Latency.** Single requests are not independent samples (they share queues, connections and
//! pauses), so the unit of evidence is the *interval*: each run stores p50/p95/p99 per key per
//! interval. The two series are compared as logarithms with Welch's t: a latency change is a ratio,
//! logs make it additive, and per-interval percentiles are close to log-normal. Unlike the rank
//! test used before (Mann–Whitney U, whose smallest two-sided p with 5 intervals a side is 0.008,
//! so a 100× regression in a 5-second run could never reach p < 0.001), the t interval narrows
//! with the size of the effect against the noise, so a gross change is decided with 3 intervals
//! a side. Each metric gets two intervals of the change `new ÷ base − 1`:
//! - *regressed* (or *improved*) when the 99% interval lies wholly beyond the practical margin,
//!   the larger of 5% and 1 ms (below that, run-to-run differences are timer noise);
//! - *no change* when the 90% interval lies wholly within the margin (equivalence, as two
//!   one-sided tests at 5%);
//! - *undecided* otherwise, with the reason: too few intervals (3 a side are needed), or an
//!   interval that spans both no change and a change beyond the margin.
//!
//! **Throughput.** Requests per second per interval (the last, partial interval left out), the
//! same two intervals on the difference, relative to the base.
//!
//! **Errors.** The difference of the two error rates with Agresti–Caffo intervals (one failure
//! and one success added to each side, so that zero errors in a short run is not certainty);
//! the margin is 0.1 percentage points.
//!
//! `--fail-if` bounds (`"p99 > +10%"`, `"errors > +0.5pp"`, `"rate < -10%"`) *fail* when the
//! 99% interval lies wholly beyond the bound, *pass* when the 90% interval lies wholly on the
//! good side of it, and are *undecided* otherwise: the CLI exits 1 on a failure, 4 when a bound is
//! undecided (`--undecided pass|fail` chooses instead), 0 when every bound passed.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use super::stats::{Welch, two_proportion_p};
use crate::model::codec;
use crate::model::{IntervalRow, Latency, RunResult};
use crate::units::short_duration;

/// One minus the level of the interval that calls a change (99%): a false alarm on one metric
/// (the interval wholly beyond the margin by chance) has a chance of at most 0.5%, and a gate on
/// one bound judges one metric per key. (99.9% was tried: with 5 intervals a side its t quantile
/// is so wide that a +30 ms change went undecided in one run of eight.)
pub const ALPHA: f64 = 0.01;
/// The level of the interval that calls *no change* (two one-sided tests at 5%).
pub const EQUIVALENCE_LEVEL: f64 = 0.90;
/// Smallest relative change of a percentile or rate that counts as a change.
pub const MIN_RELATIVE: f64 = 0.05;
/// Smallest absolute change of a percentile that counts, in microseconds: below a millisecond,
/// run-to-run differences are timer and scheduling noise (latency includes the wake-up of the
/// due time), not the system under test.
pub const MIN_ABSOLUTE_US: f64 = 1000.0;
/// Smallest change of an error rate, in percentage points, that counts.
pub const MIN_ERROR_PP: f64 = 0.1;
/// Fewest intervals per side for a verdict on latency or rate.
pub const MIN_INTERVALS: usize = 3;

/// What the comparison concluded for one metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// Worse beyond the margin, at the strict level.
    Regressed,
    /// Better beyond the margin, at the strict level.
    Improved,
    /// Within the margin, at the equivalence level.
    NoChange,
    /// The data cannot tell; the row's `reason` says why.
    Undecided,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Change::Regressed => "regressed",
            Change::Improved => "improved",
            Change::NoChange => "no change",
            Change::Undecided => "undecided",
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
    /// The strict (99%) interval of the change, in the unit of `delta`.
    pub interval: Option<[f64; 2]>,
    /// The 90% interval of the change, in the unit of `delta`.
    pub equivalence: Option<[f64; 2]>,
    /// The practical margin, in the unit of `delta`.
    pub margin: f64,
    /// The verdict.
    pub change: Change,
    /// Why the verdict is what it is, when it is undecided.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
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
        self.change_text(self.delta)
    }
    fn change_text(&self, v: f64) -> String {
        match self.measure {
            Measure::Errors => format!("{v:+.2}pp"),
            _ => format!("{:+.1}%", v * 100.0),
        }
    }
}

/// What a `--fail-if` bound says of one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Gate {
    /// Beyond the bound, at the strict level.
    Fail,
    /// On the good side of the bound, at the equivalence level.
    Pass,
    /// The data cannot tell.
    Undecided,
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
    /// What this bound says of `row` (`None` for a row of another metric).
    pub fn judge(&self, row: &Row) -> Option<Gate> {
        if row.measure != self.measure {
            return None;
        }
        let (Some([lo, hi]), Some([elo, ehi])) = (row.interval, row.equivalence) else {
            return Some(Gate::Undecided);
        };
        // A change inside the practical margin (5% and 1 ms) never counts against a bound, as
        // it never counts as a change.
        Some(if self.above {
            if row.change == Change::Regressed && lo > self.bound {
                Gate::Fail
            } else if ehi <= self.bound.max(row.margin) {
                Gate::Pass
            } else {
                Gate::Undecided
            }
        } else if row.change == Change::Regressed && hi < self.bound {
            Gate::Fail
        } else if elo >= self.bound.min(-row.margin) {
            Gate::Pass
        } else {
            Gate::Undecided
        })
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
    fn step(s: &'a crate::model::StepResult) -> Side<'a> {
        Side {
            latency: s.latency.as_ref(),
            failed: s.failed,
            total: s.requests,
            rate: s.rate,
        }
    }
    fn flow(f: &'a crate::model::FlowResult) -> Side<'a> {
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
    // Setup and teardown are one iteration each: nothing to compare, and an undecided row of
    // theirs would make every `--fail-if` undecided.
    for bf in base.flows.iter().filter(|f| f.is_load()) {
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
            let empty = Vec::new();
            let used = |m: &HashMap<String, Vec<IntervalRow>>| -> Vec<IntervalRow> {
                m.get(&key)
                    .unwrap_or(&empty)
                    .iter()
                    .filter(|r| r.count > 0)
                    .cloned()
                    .collect()
            };
            let (b_rows, n_rows) = (used(&bs), used(&ns));
            if let (Some(bl), Some(nl)) = (b_side.latency, n_side.latency) {
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
                    let logs = |v: &[IntervalRow]| -> Vec<f64> {
                        v.iter().map(|r| pick(r).max(1.0).ln()).collect()
                    };
                    let margin = MIN_RELATIVE.max(if b > 0.0 { MIN_ABSOLUTE_US / b } else { 0.0 });
                    let mut row = Row::new(&key, m, b, n, margin);
                    match sized(&logs(&b_rows), &logs(&n_rows)) {
                        Ok(w) => row.decide(&w, |x| x.exp() - 1.0, true),
                        Err(why) => row.undecided(why),
                    }
                    rows.push(row);
                }
            }
            rows.push(errors_row(&key, &b_side, &n_side));
            // Requests per second per interval; the last interval is partial.
            let per_s = |v: &[IntervalRow], dt: f64| -> Vec<f64> {
                let n = v.len().saturating_sub(1);
                v.iter().take(n).map(|r| r.count as f64 / dt).collect()
            };
            let xs = per_s(&b_rows, base.interval_s.max(1e-3));
            let ys = per_s(&n_rows, new.interval_s.max(1e-3));
            let (br, nr) = (b_side.rate, n_side.rate);
            let mut row = Row::new(&key, Measure::Rate, br, nr, MIN_RELATIVE);
            let mean = xs.iter().sum::<f64>() / xs.len().max(1) as f64;
            match sized(&xs, &ys) {
                Ok(_) if mean <= 0.0 => row.undecided("no throughput in the base run".into()),
                Ok(w) => row.decide(&w, |x| x / mean, false),
                Err(why) => row.undecided(why),
            }
            rows.push(row);
        }
    }
    rows
}

/// Welch's comparison when both sides have [`MIN_INTERVALS`] intervals, else why not.
fn sized(xs: &[f64], ys: &[f64]) -> Result<Welch, String> {
    match Welch::of(xs, ys) {
        Some(w) if xs.len() >= MIN_INTERVALS && ys.len() >= MIN_INTERVALS => Ok(w),
        _ => Err(format!(
            "{} intervals in base, {} in new; {MIN_INTERVALS} needed a side (a longer run or a shorter --interval)",
            xs.len(),
            ys.len()
        )),
    }
}

fn errors_row(key: &str, b: &Side<'_>, n: &Side<'_>) -> Row {
    let (bp, np) = (share(b.failed, b.total), share(n.failed, n.total));
    let mut row = Row::new(key, Measure::Errors, bp, np, MIN_ERROR_PP);
    row.delta = (np - bp) * 100.0;
    row.p_value = two_proportion_p((b.failed, b.total), (n.failed, n.total));
    if b.total == 0 || n.total == 0 {
        row.undecided("no requests on one side".into());
        return row;
    }
    // Agresti–Caffo: one failure and one success added to each side.
    let adj = |f: u64, t: u64| ((f + 1) as f64 / (t + 2) as f64, (t + 2) as f64);
    let ((p1, n1), (p2, n2)) = (adj(b.failed, b.total), adj(n.failed, n.total));
    let w = Welch {
        diff: (p2 - p1) * 100.0,
        se: (p1 * (1.0 - p1) / n1 + p2 * (1.0 - p2) / n2).sqrt() * 100.0,
        df: f64::INFINITY,
    };
    row.decide(&w, |x| x, true);
    row
}

impl Row {
    fn new(key: &str, measure: Measure, base: f64, new: f64, margin: f64) -> Row {
        Row {
            key: key.to_string(),
            measure,
            base,
            new,
            delta: if base > 0.0 { new / base - 1.0 } else { 0.0 },
            p_value: None,
            interval: None,
            equivalence: None,
            margin,
            change: Change::Undecided,
            reason: None,
        }
    }

    fn undecided(&mut self, why: String) {
        self.change = Change::Undecided;
        self.reason = Some(why);
    }

    /// Decides from Welch's comparison `w`, whose scale `to_delta` maps onto this row's delta.
    fn decide(&mut self, w: &Welch, to_delta: impl Fn(f64) -> f64, higher_is_worse: bool) {
        let strict = w.interval(1.0 - ALPHA).map(&to_delta);
        let loose = w.interval(EQUIVALENCE_LEVEL).map(&to_delta);
        if self.p_value.is_none() {
            self.p_value = Some(w.p_value());
        }
        self.interval = Some(strict);
        self.equivalence = Some(loose);
        let m = self.margin;
        let (worse, better) = if higher_is_worse {
            (strict[0] > m, strict[1] < -m)
        } else {
            (strict[1] < -m, strict[0] > m)
        };
        self.change = if worse {
            Change::Regressed
        } else if better {
            Change::Improved
        } else if loose[0] >= -m && loose[1] <= m {
            Change::NoChange
        } else {
            self.reason = Some(format!(
                "the change is between {} and {} (90%): it may be more than the margin of {}",
                self.change_text(loose[0]),
                self.change_text(loose[1]),
                self.change_text(m).trim_start_matches('+'),
            ));
            Change::Undecided
        };
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

fn share(failed: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        failed as f64 / total as f64
    }
}

/// Renders the comparison table, then every `--fail-if` bound that failed or could not be
/// decided (`gates`: the row, the bound as written, what it said).
pub fn render(rows: &[Row], gates: &[(Row, String, Gate)]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let kw = rows.iter().map(|r| r.key.len()).max().unwrap_or(3).max(3);
    let _ = writeln!(
        out,
        "{:<kw$}  {:<6}  {:>10}  {:>10}  {:>9}  {:>21}  verdict",
        "key", "metric", "base", "new", "delta", "99% interval"
    );
    for r in rows {
        let interval = r.interval.map_or_else(
            || "-".into(),
            |[lo, hi]| format!("{} to {}", r.change_text(lo), r.change_text(hi)),
        );
        let verdict = match &r.reason {
            Some(why) => format!("{} ({why})", r.change),
            None => r.change.to_string(),
        };
        let _ = writeln!(
            out,
            "{:<kw$}  {:<6}  {:>10}  {:>10}  {:>9}  {:>21}  {verdict}",
            r.key,
            r.measure.name(),
            r.shown(r.base),
            r.shown(r.new),
            r.delta_text(),
            interval,
        );
    }
    let count = |c: Change| rows.iter().filter(|r| r.change == c).count();
    let _ = writeln!(
        out,
        "\n{} regressed, {} improved, {} no change, {} undecided",
        count(Change::Regressed),
        count(Change::Improved),
        count(Change::NoChange),
        count(Change::Undecided)
    );
    let _ = writeln!(
        out,
        "(latency: Welch's t on log per-interval percentiles; rate: on per-interval throughput; errors: Agresti–Caffo. \
         A change when the 99% interval is beyond the margin ({:.0}% and 1ms; 0.1pp for errors), no change when the 90% interval is within it.)",
        MIN_RELATIVE * 100.0
    );
    for (r, bound, gate) in gates {
        let word = match gate {
            Gate::Fail => "FAIL",
            Gate::Undecided => "UNDECIDED",
            Gate::Pass => continue,
        };
        let why = match (gate, &r.reason) {
            (Gate::Undecided, Some(why)) => format!(": {why}"),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "{word}: {} {} {} against --fail-if \"{bound}\"{why}",
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
    use crate::model::{FlowResult, StepResult};

    /// A run of one step `f.a` whose intervals have latency `lat(i)` µs and `count(i)`
    /// requests, `failed` of `requests` failed in all.
    fn run(
        n: usize,
        lat: impl Fn(usize) -> u64,
        count: impl Fn(usize) -> u64,
        failed: u64,
        requests: u64,
    ) -> RunResult {
        let mut h = crate::model::new_hist();
        let mut intervals = Vec::new();
        for i in 0..n {
            for _ in 0..count(i) {
                let _ = h.record(lat(i));
            }
            intervals.push(IntervalRow {
                t: i as f64 + 1.0,
                key: "f.a".into(),
                count: count(i),
                errors: 0,
                p50_us: lat(i),
                p95_us: lat(i),
                p99_us: lat(i),
                max_us: lat(i),
                active_vus: None,
                target: None,
                retries: 0,
                dropped: None,
            });
        }
        let latency = Latency::from_hist(Some(&h));
        let step = StepResult {
            key: "f.a".into(),
            requests,
            failed,
            rate: count(1) as f64,
            latency,
            ..Default::default()
        };
        RunResult {
            interval_s: 1.0,
            intervals,
            flows: vec![FlowResult {
                name: "f".into(),
                steps: vec![step],
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn row(rows: &[Row], m: Measure) -> &Row {
        rows.iter()
            .find(|r| r.key == "f.a" && r.measure == m)
            .unwrap()
    }

    /// A little per-interval jitter, as real runs have.
    fn jitter(i: usize) -> u64 {
        [0, 7, 3, 9, 1, 5, 8, 2][i % 8]
    }

    #[test]
    fn a_gross_regression_is_decided_with_five_intervals_a_side() {
        let base = run(5, |i| 312 + jitter(i), |_| 200, 0, 1000);
        let slow = run(5, |i| 31_300 + 10 * jitter(i), |_| 200, 0, 1000);
        let rows = compare(&base, &slow);
        assert_eq!(row(&rows, Measure::P99).change, Change::Regressed);
        let bound: FailIf = "p99 > +10%".parse().unwrap();
        assert_eq!(bound.judge(row(&rows, Measure::P99)), Some(Gate::Fail));
        // The same data the other way round is an improvement, which passes the bound.
        let rows = compare(&slow, &base);
        assert_eq!(row(&rows, Measure::P99).change, Change::Improved);
        assert_eq!(bound.judge(row(&rows, Measure::P99)), Some(Gate::Pass));
    }

    #[test]
    fn too_few_intervals_are_undecided_and_say_so() {
        let base = run(2, |_| 300, |_| 200, 0, 400);
        let slow = run(2, |_| 30_000, |_| 200, 0, 400);
        let rows = compare(&base, &slow);
        let p99 = row(&rows, Measure::P99);
        assert_eq!(p99.change, Change::Undecided);
        assert!(
            p99.reason.as_deref().unwrap().contains("3 needed a side"),
            "{p99:?}"
        );
        let bound: FailIf = "p99 > +10%".parse().unwrap();
        assert_eq!(bound.judge(p99), Some(Gate::Undecided));
    }

    #[test]
    fn changes_under_the_floors_are_no_change() {
        // 10 ms → 10.8 ms: 8% but under 1 ms. 100 ms → 104 ms: over 1 ms but under 5%.
        for (b, n) in [(10_000, 10_800), (100_000, 104_000)] {
            let rows = compare(
                &run(20, |i| b + jitter(i), |_| 100, 0, 2000),
                &run(20, |i| n + jitter(i), |_| 100, 0, 2000),
            );
            assert_eq!(
                row(&rows, Measure::P50).change,
                Change::NoChange,
                "{b} -> {n}"
            );
        }
        // Past both floors: 10 ms → 12 ms and 100 ms → 106 ms are regressions.
        for (b, n) in [(10_000, 12_000), (100_000, 106_000)] {
            let rows = compare(
                &run(20, |i| b + jitter(i), |_| 100, 0, 2000),
                &run(20, |i| n + jitter(i), |_| 100, 0, 2000),
            );
            assert_eq!(
                row(&rows, Measure::P50).change,
                Change::Regressed,
                "{b} -> {n}"
            );
        }
    }

    #[test]
    fn noisy_short_runs_are_undecided_not_unchanged() {
        // Interval p99s that swing by 2× either way: five of them cannot rule out a 5% change.
        let swing = |i: usize| [10_000, 20_000, 5_000, 15_000, 8_000][i % 5];
        let rows = compare(
            &run(5, swing, |_| 100, 0, 500),
            &run(5, |i| swing(i + 2), |_| 100, 0, 500),
        );
        let p99 = row(&rows, Measure::P99);
        assert_eq!(p99.change, Change::Undecided, "{p99:?}");
        assert!(
            p99.reason
                .as_deref()
                .unwrap()
                .contains("may be more than the margin")
        );
    }

    #[test]
    fn error_and_rate_regressions_are_found() {
        let base = run(10, |i| 1000 + jitter(i), |i| 100 + jitter(i), 10, 10_000);
        let worse = run(10, |i| 1000 + jitter(i), |i| 80 + jitter(i), 100, 10_000);
        let rows = compare(&base, &worse);
        let e = row(&rows, Measure::Errors);
        assert_eq!(e.change, Change::Regressed, "{e:?}");
        assert!((e.delta - 0.9).abs() < 1e-9);
        assert_eq!(
            "errors > +0.5pp".parse::<FailIf>().unwrap().judge(e),
            Some(Gate::Fail)
        );
        assert_eq!(
            "errors > +5pp".parse::<FailIf>().unwrap().judge(e),
            Some(Gate::Pass)
        );
        let r = row(&rows, Measure::Rate);
        assert_eq!(r.change, Change::Regressed, "{r:?}");
        assert_eq!(
            "rate < -10%".parse::<FailIf>().unwrap().judge(r),
            Some(Gate::Fail)
        );
        // 0.09 percentage points is under the margin, however certain.
        let rows = compare(
            &run(10, |_| 1000, |_| 100, 1000, 1_000_000),
            &run(10, |_| 1000, |_| 100, 1900, 1_000_000),
        );
        assert_eq!(row(&rows, Measure::Errors).change, Change::NoChange);
    }

    #[test]
    fn fail_if_parses() {
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
    }
}
