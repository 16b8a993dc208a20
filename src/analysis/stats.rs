//! The statistics the analyses share: Welch's t comparison (with intervals), Mann–Whitney U on
//! samples and on histograms, the two-proportion test, and normal and t quantiles (from
//! `statrs`).

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
pub fn mann_whitney_hist(a: &crate::model::Hist, b: &crate::model::Hist) -> f64 {
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

/// Upper tail of the standard normal distribution.
pub fn normal_sf(z: f64) -> f64 {
    0.5 * statrs::function::erf::erfc(z / std::f64::consts::SQRT_2)
}

/// The standard normal quantile at `p` (0 < p < 1).
pub fn normal_quantile(p: f64) -> f64 {
    use statrs::distribution::{ContinuousCDF, Normal};
    Normal::standard().inverse_cdf(p)
}

/// Student's t quantile at `p` with `df` degrees of freedom (the normal one when `df` is not
/// finite or not positive).
pub fn t_quantile(p: f64, df: f64) -> f64 {
    use statrs::distribution::{ContinuousCDF, StudentsT};
    match StudentsT::new(0.0, 1.0, df) {
        Ok(t) if df.is_finite() && df > 0.0 => t.inverse_cdf(p),
        _ => normal_quantile(p),
    }
}

/// Two-sided p-value of a t statistic.
pub fn t_two_sided_p(t: f64, df: f64) -> f64 {
    use statrs::distribution::{ContinuousCDF, StudentsT};
    match StudentsT::new(0.0, 1.0, df) {
        Ok(d) if df.is_finite() && df > 0.0 => (2.0 * d.sf(t.abs())).min(1.0),
        _ => (2.0 * normal_sf(t.abs())).min(1.0),
    }
}

/// Welch's two-sample comparison of means: the difference `ys − xs`, its standard error and the
/// Welch–Satterthwaite degrees of freedom. `None` with fewer than two values a side.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Welch {
    /// Mean of `ys` minus mean of `xs`.
    pub diff: f64,
    /// Standard error of the difference.
    pub se: f64,
    /// Degrees of freedom.
    pub df: f64,
}

impl Welch {
    /// The comparison of two samples.
    pub fn of(xs: &[f64], ys: &[f64]) -> Option<Welch> {
        let (nx, ny) = (xs.len() as f64, ys.len() as f64);
        if nx < 2.0 || ny < 2.0 {
            return None;
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let var = |v: &[f64], m: f64| {
            v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() as f64 - 1.0)
        };
        let (mx, my) = (mean(xs), mean(ys));
        let (vx, vy) = (var(xs, mx) / nx, var(ys, my) / ny);
        let se = (vx + vy).sqrt();
        let df = if se > 0.0 {
            (vx + vy).powi(2) / (vx * vx / (nx - 1.0) + vy * vy / (ny - 1.0))
        } else {
            nx + ny - 2.0
        };
        Some(Welch {
            diff: my - mx,
            se,
            df,
        })
    }

    /// The two-sided interval of the difference at confidence `level` (0.9, 0.999).
    pub fn interval(&self, level: f64) -> [f64; 2] {
        let q = t_quantile(1.0 - (1.0 - level) / 2.0, self.df);
        [self.diff - q * self.se, self.diff + q * self.se]
    }

    /// The two-sided p-value of no difference.
    pub fn p_value(&self) -> f64 {
        if self.se == 0.0 {
            return if self.diff == 0.0 { 1.0 } else { 0.0 };
        }
        t_two_sided_p(self.diff / self.se, self.df)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_tail_matches_tables() {
        assert!((normal_sf(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_sf(1.96) - 0.024_997_9).abs() < 1e-6);
        assert!((normal_sf(3.0) - 0.001_349_9).abs() < 1e-6);
        assert!((normal_quantile(0.975) - 1.959_964).abs() < 1e-5);
        // t with 4 degrees of freedom: 2.776 at 97.5% (tables).
        assert!((t_quantile(0.975, 4.0) - 2.776_445).abs() < 1e-4);
    }

    #[test]
    fn welch_matches_a_worked_example() {
        // Two samples with equal variances: the difference 2, se sqrt(2.5/5 + 2.5/5) = 1.
        let xs = [1.0, 2.0, 3.0, 4.0, 5.0];
        let ys = [3.0, 4.0, 5.0, 6.0, 7.0];
        let w = Welch::of(&xs, &ys).unwrap();
        assert!((w.diff - 2.0).abs() < 1e-12 && (w.se - 1.0).abs() < 1e-12);
        assert!((w.df - 8.0).abs() < 1e-9);
        let [lo, hi] = w.interval(0.95);
        assert!((lo - (2.0 - 2.306_004)).abs() < 1e-4 && (hi - (2.0 + 2.306_004)).abs() < 1e-4);
        assert!((w.p_value() - 0.080_516).abs() < 1e-4);
        assert!(Welch::of(&[1.0], &ys).is_none());
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
        let mut a = crate::model::new_hist();
        let mut b = crate::model::new_hist();
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
}
