//! The histogram every measurement lands in: HDR, microseconds, 3 significant digits, and the
//! order-statistics interval of its quantiles.

use hdrhistogram::Histogram;

/// Significant digits of every histogram.
pub const SIGFIGS: u8 = 3;

/// A latency histogram in microseconds.
pub type Hist = Histogram<u64>;

/// A new, empty, auto-resizing histogram.
pub fn new_hist() -> Hist {
    #[allow(clippy::expect_used)]
    Histogram::new(SIGFIGS).expect("valid histogram bounds") // ok: 3 significant digits from 1 is always valid
}

/// The 95% confidence interval of quantile `q` of a histogram, by order statistics.
pub fn quantile_ci(h: &Hist, q: f64) -> [u64; 2] {
    let n = h.len() as f64;
    if n < 1.0 {
        return [0, 0];
    }
    let half = 1.96 * (n * q * (1.0 - q)).sqrt();
    let lo = ((n * q - half).floor() / n).clamp(0.0, 1.0);
    let hi = ((n * q + half).ceil() / n).clamp(0.0, 1.0);
    [h.value_at_quantile(lo), h.value_at_quantile(hi)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_intervals_narrow_with_samples() {
        let mut many = crate::model::new_hist();
        for v in 1..=10_000u64 {
            many.record(v).unwrap();
        }
        let [lo, hi] = quantile_ci(&many, 0.99);
        assert!(lo <= 9_900 && hi >= 9_900 && hi - lo < 100, "{lo}..{hi}");
        let mut few = crate::model::new_hist();
        for v in 1..=20u64 {
            few.record(v * 100).unwrap();
        }
        let [lo, hi] = quantile_ci(&few, 0.5);
        assert!(
            lo <= 1000 && hi >= 1100 && hi - lo >= 400,
            "{lo}..{hi}: wide with 20 samples"
        );
    }
}
