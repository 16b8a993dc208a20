//! Where the load went: whether background work slows the live steps beside it (the batch
//! split), and which steps the server's database time goes to.

use crate::model::{BatchSplit, DbShare, FlowResult, Hist, Latency};

use super::stats::mann_whitney_hist;

/// Whether background work slows a live step: its latency while batch iterations were in flight
/// against while none was. `None` when either side has no samples.
pub fn batch_split(d: Option<&Hist>, w: Option<&Hist>) -> Option<BatchSplit> {
    let (d, w) = (d?, w?);
    let (during, without) = (Latency::from_hist(Some(d))?, Latency::from_hist(Some(w))?);
    let p_value = mann_whitney_hist(d, w);
    // Judged on the median, the location Mann–Whitney tests, and only in the slower direction:
    // a p99 of a few dozen samples moves with machine noise.
    let interferes = p_value < 0.01
        && during.p50_us as f64 > without.p50_us as f64 * 1.1
        && during.p50_us.saturating_sub(without.p50_us) > 1000;
    let p99_ratio = if without.p99_us > 0 {
        during.p99_us as f64 / without.p99_us as f64
    } else {
        1.0
    };
    Some(BatchSplit {
        during,
        without,
        p_value,
        p99_ratio,
        interferes,
    })
}

/// Ranks steps by their total server-reported `db` time.
pub fn db_load(flows: &[FlowResult]) -> Vec<DbShare> {
    let mut rows: Vec<DbShare> = flows
        .iter()
        .flat_map(|f| &f.steps)
        .filter_map(|s| {
            let t = s
                .server_timing
                .iter()
                .find(|t| t.name == "db" && t.total_ms > 0.0)?;
            Some(DbShare {
                key: s.key.clone(),
                calls: t.reported,
                total_ms: t.total_ms,
                per_call_ms: t.total_ms / t.reported.max(1) as f64,
                share: 0.0,
            })
        })
        .collect();
    let total: f64 = rows.iter().map(|r| r.total_ms).sum();
    for r in &mut rows {
        r.share = if total > 0.0 { r.total_ms / total } else { 0.0 };
    }
    rows.sort_by(|a, b| b.total_ms.total_cmp(&a.total_ms));
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::new_hist;

    /// `n` samples spread evenly over `from..from + width` microseconds.
    fn spread(from: u64, width: u64, n: u64) -> Hist {
        let mut h = new_hist();
        for i in 0..n {
            h.record(from + i * width / n).unwrap();
        }
        h
    }

    #[test]
    fn a_wait_of_milliseconds_behind_background_work_is_interference() {
        let b = batch_split(
            Some(&spread(9_000, 2_000, 60)),
            Some(&spread(1_000, 2_000, 500)),
        )
        .unwrap();
        assert!(b.interferes && b.p_value < 1e-6, "{b:?}");
    }

    #[test]
    fn a_certain_shift_under_a_millisecond_is_not_interference() {
        // Significant beyond doubt, and 40% slower, but by 800 µs: machine noise can do that.
        let b = batch_split(
            Some(&spread(2_800, 1_000, 2_000)),
            Some(&spread(2_000, 1_000, 2_000)),
        )
        .unwrap();
        assert!(b.p_value < 1e-6 && !b.interferes, "{b:?}");
        // 2 ms more on a 40 ms step is under the 10% it takes.
        let b = batch_split(
            Some(&spread(42_000, 4_000, 2_000)),
            Some(&spread(40_000, 4_000, 2_000)),
        )
        .unwrap();
        assert!(b.p_value < 1e-6 && !b.interferes, "{b:?}");
    }

    #[test]
    fn a_step_that_is_faster_beside_background_work_is_not_slowed_by_it() {
        let b = batch_split(
            Some(&spread(1_000, 2_000, 500)),
            Some(&spread(9_000, 2_000, 500)),
        )
        .unwrap();
        assert!(b.p_value < 1e-6 && !b.interferes, "{b:?}");
    }

    #[test]
    fn two_slow_samples_decide_nothing() {
        let b = batch_split(
            Some(&spread(20_000, 1_000, 2)),
            Some(&spread(1_000, 2_000, 500)),
        )
        .unwrap();
        assert!(b.p_value > 0.01 && !b.interferes, "{b:?}");
        assert!(batch_split(None, Some(&spread(1_000, 2_000, 500))).is_none());
        assert!(batch_split(Some(&new_hist()), Some(&spread(1_000, 2_000, 500))).is_none());
    }
}
