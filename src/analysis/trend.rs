//! Creeping latency: does a key's latency rise while its throughput stays flat?
//!
//! For every key, the per-interval p50 and p95 series, its throughput and the load on the whole
//! system (the requests of every flow per interval) get a
//! **Theil–Sen** slope (the median of all pairwise slopes: robust to outliers and to a few bad
//! intervals) with **Sen's confidence interval** (95%, from the variance of Kendall's S). Slopes
//! are relative to the series' median and given in percent per minute. A key is flagged as
//! creeping when the lower bounds of both its p95 and p50 slopes are above [`MIN_CREEP`] per minute,
//! the lower bounds carried over the analysed span add up to at least [`MIN_RISE`] of the median
//! (a slope can be significant and still too small to matter: a test machine growing busier adds a
//! millisecond to 20 over ten seconds), and
//! the *system's load* slope interval lies within ±[`FLAT`] per minute — latency climbing at a
//! steady load, the signature of a leak, an unindexed table or a filling queue. The load is every
//! flow's, not the key's own: a background job's rate can be flat while the traffic around it
//! ramps, and the latency a ramp causes is not a creep. The first and
//! last intervals (partial) and the first tenth of the run (warm-up) are left out; runs with fewer
//! than [`MIN_POINTS`] intervals get no trend.

use crate::model::{IntervalRow, RunResult, Trend};

/// Least rise (per minute, relative) of a CI's lower bound that counts as creeping.
pub const MIN_CREEP: f64 = 0.01;
/// Least rise over the analysed span (relative to the median, at the lower bound) that counts as
/// creeping.
pub const MIN_RISE: f64 = 0.05;
/// Throughput within ±this per minute (relative, whole CI) counts as flat.
pub const FLAT: f64 = 0.02;
/// Fewest intervals for a trend.
pub const MIN_POINTS: usize = 10;
/// Series are reduced to at most this many points (bucket medians) before pairwise slopes.
pub const MAX_POINTS: usize = 200;

/// A Theil–Sen slope with its 95% confidence interval (units of y per unit of x).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Slope {
    /// Median pairwise slope.
    pub slope: f64,
    /// Lower bound.
    pub lo: f64,
    /// Upper bound.
    pub hi: f64,
}

/// Theil–Sen slope and Sen's 95% interval; `None` with fewer than 3 distinct x.
pub fn theil_sen(points: &[(f64, f64)]) -> Option<Slope> {
    let n = points.len();
    let mut slopes = Vec::with_capacity(n * (n - 1) / 2);
    for i in 0..n {
        for j in i + 1..n {
            let dx = points[j].0 - points[i].0;
            if dx.abs() > 1e-12 {
                slopes.push((points[j].1 - points[i].1) / dx);
            }
        }
    }
    if slopes.len() < 3 {
        return None;
    }
    slopes.sort_by(f64::total_cmp);
    let m = slopes.len();
    let median = if m % 2 == 1 {
        slopes[m / 2]
    } else {
        0.5 * (slopes[m / 2 - 1] + slopes[m / 2])
    };
    // Var(S) of Kendall's statistic without ties; C = z(0.975)·√Var(S).
    let nf = n as f64;
    let var_s = nf * (nf - 1.0) * (2.0 * nf + 5.0) / 18.0;
    let c = 1.96 * var_s.sqrt();
    let lower = ((m as f64 - c) / 2.0).floor().clamp(0.0, (m - 1) as f64) as usize;
    let upper = ((m as f64 + c) / 2.0).ceil().clamp(0.0, (m - 1) as f64) as usize;
    Some(Slope {
        slope: median,
        lo: slopes[lower],
        hi: slopes[upper],
    })
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        0.0
    } else if v.len() % 2 == 1 {
        v[v.len() / 2]
    } else {
        0.5 * (v[v.len() / 2 - 1] + v[v.len() / 2])
    }
}

/// Bucket medians, so a long run costs at most `MAX_POINTS²/2` pairs.
fn reduce(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    if points.len() <= MAX_POINTS {
        return points.to_vec();
    }
    points
        .chunks(points.len().div_ceil(MAX_POINTS))
        .map(|c| {
            let mut ys: Vec<f64> = c.iter().map(|p| p.1).collect();
            (c[c.len() / 2].0, median(&mut ys))
        })
        .collect()
}

/// Relative slope in per-minute terms: (slope per second × 60) ÷ median(y).
fn relative(points: &[(f64, f64)]) -> Option<Slope> {
    let reduced = reduce(points);
    let s = theil_sen(&reduced)?;
    let mut ys: Vec<f64> = reduced.iter().map(|p| p.1).collect();
    let m = median(&mut ys);
    if m <= 0.0 {
        return None;
    }
    let k = 60.0 / m;
    Some(Slope {
        slope: s.slope * k,
        lo: s.lo * k,
        hi: s.hi * k,
    })
}

fn usable(rows: &[&IntervalRow]) -> Vec<(f64, f64, f64, f64)> {
    let n = rows.len();
    let skip = (n / 10).max(1);
    rows.iter()
        .enumerate()
        .filter(|(i, r)| *i >= skip && *i + 1 < n && r.count > 0)
        .map(|(_, r)| (r.t, r.p50_us as f64, r.p95_us as f64, r.count as f64))
        .collect()
}

/// Trends of every step and iteration key with enough intervals.
pub fn trends(r: &RunResult) -> Vec<Trend> {
    let mut by_key: std::collections::BTreeMap<&str, Vec<&IntervalRow>> =
        std::collections::BTreeMap::new();
    // The warm-up is left out, as from every other verdict: a cold start's falling latency would
    // hide a creep.
    let warm = |row: &&IntervalRow| row.t > r.warmup_s + 1e-9;
    for row in r.intervals.iter().filter(warm) {
        by_key.entry(row.key.as_str()).or_default().push(row);
    }
    // Requests of every step key per interval end (`t`): the load on the system.
    let mut load: std::collections::BTreeMap<u64, f64> = std::collections::BTreeMap::new();
    for row in r
        .intervals
        .iter()
        .filter(warm)
        .filter(|r| !r.key.ends_with(".iteration"))
    {
        *load.entry(row.t.to_bits()).or_default() += row.count as f64;
    }
    let mut out = Vec::new();
    for (key, rows) in by_key {
        let pts = usable(&rows);
        if pts.len() < MIN_POINTS {
            continue;
        }
        let p50: Vec<(f64, f64)> = pts.iter().map(|p| (p.0, p.1)).collect();
        let p95: Vec<(f64, f64)> = pts.iter().map(|p| (p.0, p.2)).collect();
        let tput: Vec<(f64, f64)> = pts.iter().map(|p| (p.0, p.3)).collect();
        let system: Vec<(f64, f64)> = pts
            .iter()
            .map(|p| (p.0, load.get(&p.0.to_bits()).copied().unwrap_or(p.3)))
            .collect();
        let (Some(a), Some(b), Some(c), Some(l)) = (
            relative(&p50),
            relative(&p95),
            relative(&tput),
            relative(&system),
        ) else {
            continue;
        };
        let flat = l.lo > -FLAT && l.hi < FLAT;
        let minutes = (pts[pts.len() - 1].0 - pts[0].0) / 60.0;
        // Creep moves the whole distribution; a rise of the median or of the tail alone is what a
        // busy machine's scheduling noise looks like over a short run.
        let significant = b.lo > MIN_CREEP && a.lo > MIN_CREEP;
        let rise = b.lo.min(a.lo) * minutes;
        let creeping = flat && significant && rise >= MIN_RISE;
        let verdict = if creeping {
            format!(
                "{key}: p95 rising {:.1}%/min (95% CI {:.1} to {:.1}) while the load is flat ({:+.1}%/min)",
                b.slope * 100.0,
                b.lo * 100.0,
                b.hi * 100.0,
                l.slope * 100.0
            )
        } else if flat && significant {
            format!(
                "{key}: p95 {:+.1}%/min at a flat load, but at least {:+.1}% over the run's {:.0} s, under {:.0}%: no creep",
                b.slope * 100.0,
                rise * 100.0,
                minutes * 60.0,
                MIN_RISE * 100.0
            )
        } else {
            format!(
                "{key}: p95 {:+.1}%/min, load {:+.1}%/min: no creep",
                b.slope * 100.0,
                l.slope * 100.0
            )
        };
        out.push(Trend {
            key: key.to_string(),
            points: pts.len(),
            p50_per_min: [a.slope, a.lo, a.hi],
            p95_per_min: [b.slope, b.lo, b.hi],
            throughput_per_min: [c.slope, c.lo, c.hi],
            load_per_min: [l.slope, l.lo, l.hi],
            creeping,
            verdict,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn theil_sen_finds_the_slope_despite_outliers() {
        let mut pts: Vec<(f64, f64)> = (0..50).map(|i| (i as f64, 2.0 * i as f64 + 1.0)).collect();
        pts[10].1 = 500.0;
        pts[30].1 = -400.0;
        let s = theil_sen(&pts).unwrap();
        assert!((s.slope - 2.0).abs() < 1e-9);
        assert!(s.lo <= 2.0 && s.hi >= 2.0);
    }

    #[test]
    fn flat_noise_has_an_interval_around_zero() {
        let pts: Vec<(f64, f64)> = (0..60)
            .map(|i| (i as f64, 100.0 + ((i * 37 % 11) as f64 - 5.0)))
            .collect();
        let s = theil_sen(&pts).unwrap();
        assert!(s.lo < 0.0 && s.hi > 0.0, "{s:?}");
    }

    fn run_of(count: impl Fn(u64) -> u64) -> crate::model::RunResult {
        series(60, 1.0, 10_000, 100, count)
    }

    /// `n` intervals of `secs`, latency starting at `start_us` and rising `step_us` per interval.
    fn series(
        n: u64,
        secs: f64,
        start_us: u64,
        step_us: u64,
        count: impl Fn(u64) -> u64,
    ) -> crate::model::RunResult {
        let rows = (0..n)
            .map(|i| {
                let p = start_us + step_us * i;
                crate::model::IntervalRow {
                    t: (i + 1) as f64 * secs,
                    key: "f.a".into(),
                    count: count(i),
                    errors: 0,
                    p50_us: p,
                    p95_us: 2 * p,
                    p99_us: 3 * p,
                    max_us: 4 * p,
                    active_vus: None,
                    target: None,
                    retries: 0,
                    dropped: None,
                }
            })
            .collect();
        crate::model::RunResult {
            intervals: rows,
            ..Default::default()
        }
    }

    #[test]
    fn rising_latency_is_creep_only_while_throughput_is_flat() {
        // The same latency rise (1% of the start per second), once at a steady 100 requests per
        // interval and once while the rate ramps from 100 to 218: only the first is a creep.
        let flat = trends(&run_of(|_| 100));
        assert!(flat[0].creeping, "{}", flat[0].verdict);
        let ramp = trends(&run_of(|i| 100 + 2 * i));
        assert!(!ramp[0].creeping, "{}", ramp[0].verdict);
        assert!(ramp[0].throughput_per_min[1] > 0.0);
    }

    #[test]
    fn a_rise_too_small_to_matter_over_the_run_is_not_a_creep() {
        // 10 s in 250 ms intervals, latency rising 5 µs per interval from 23 ms: a steady,
        // significant slope (5%/min), but under 1% over the whole run — what a test machine
        // growing busier adds, not a leak. The same slope held for ten minutes is a creep.
        let short = trends(&series(40, 0.25, 23_000, 5, |_| 10));
        assert!(short[0].p95_per_min[1] > MIN_CREEP, "{:?}", short[0]);
        assert!(!short[0].creeping, "{}", short[0].verdict);
        assert!(
            short[0].verdict.contains("over the run"),
            "{}",
            short[0].verdict
        );
        let soak = trends(&series(600, 1.0, 23_000, 20, |_| 10));
        assert!(soak[0].creeping, "{}", soak[0].verdict);
    }

    #[test]
    fn a_flat_key_inside_ramping_traffic_is_not_creeping() {
        // The key's own rate is flat, but another flow's traffic ramps from 100 to 700 requests
        // per interval around it: its rising latency is the ramp's, not a creep.
        let mut r = run_of(|_| 10);
        let others: Vec<_> = r
            .intervals
            .iter()
            .map(|row| crate::model::IntervalRow {
                key: "live.b".into(),
                count: 100 + 10 * row.t as u64,
                ..row.clone()
            })
            .collect();
        r.intervals.extend(others);
        let t = trends(&r).into_iter().find(|t| t.key == "f.a").unwrap();
        assert!(!t.creeping, "{}", t.verdict);
        assert!(t.load_per_min[1] > FLAT, "{:?}", t.load_per_min);
        assert!(t.verdict.contains("load"), "{}", t.verdict);
    }

    #[test]
    fn reduction_keeps_long_series_cheap() {
        let pts: Vec<(f64, f64)> = (0..3600).map(|i| (i as f64, i as f64)).collect();
        assert!(reduce(&pts).len() <= MAX_POINTS);
        let s = relative(&pts).unwrap();
        // y = t: slope 1/s = 60/min, relative to the median (~1800): 3.3%/min.
        assert!((s.slope - 60.0 / 1800.0).abs() < 0.002, "{s:?}");
    }
}
