//! One run split across processes: which share of the plan a process runs ([`Segment`]), what
//! ties the parts of one split run together (run id, scenario digest, start instant, on
//! [`RunResult`](super::RunResult)), and what `stampede merge` keeps of each part
//! ([`SegmentSummary`]).
//!
//! Shares are striped: the *n*-th arrival of an open flow, the *n*-th virtual user of a closed
//! flow, the *n*-th iteration of a shared iteration budget and the *n*-th row a feeder hands out
//! all go to segment `n mod COUNT`. The segments' shares then add up to the plan exactly, and
//! each segment's arrivals stay evenly spread over the run instead of one segment taking the
//! first third.

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The most segments a run may be split into (Kubernetes allows 100,000 completions; a split
/// this wide is already a typo).
pub const MAX_SEGMENTS: u32 = 10_000;

/// Which share of a split run this process runs: `INDEX/COUNT`, INDEX from 0 (so it is
/// Kubernetes' `JOB_COMPLETION_INDEX`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct Segment {
    /// This segment, from 0.
    pub index: u32,
    /// How many segments share the run.
    pub count: u32,
}

impl Default for Segment {
    fn default() -> Self {
        Segment::WHOLE
    }
}

impl Segment {
    /// The whole run in one process.
    pub const WHOLE: Segment = Segment { index: 0, count: 1 };

    /// True for a run that is not split.
    pub fn is_whole(self) -> bool {
        self.count <= 1
    }

    /// True when the `n`-th item (from 0) of a striped sequence is this segment's.
    pub fn owns(self, n: u64) -> bool {
        n % u64::from(self.count.max(1)) == u64::from(self.index)
    }

    /// How many of the items `0..total` are this segment's.
    pub fn share(self, total: u64) -> u64 {
        let (i, c) = (u64::from(self.index), u64::from(self.count.max(1)));
        if total > i {
            (total - i - 1) / c + 1
        } else {
            0
        }
    }

    /// This segment's part of an open flow's `max_vus`: its share of the arrivals needs its share
    /// of the users (rounded up, at least one).
    pub fn max_vus(self, whole: u64) -> u64 {
        whole.div_ceil(u64::from(self.count.max(1))).max(1)
    }

    /// This segment's part of a closed flow's shared budget of `n` iterations, when the flow has
    /// at most `users` users: iteration m goes to the segment that owns user `m mod users`, so
    /// each segment's part is in proportion to the users it owns (a segment without users gets
    /// none) and the parts add up to `n` exactly. The flow then keeps its shape: every user
    /// runs about as many iterations as in one process.
    pub fn budget(self, n: u64, users: u64) -> u64 {
        let users = users.max(1);
        (n / users) * self.share(users) + self.share(n % users)
    }

    /// The `k`-th item (from 0) this segment owns, as an index into the whole sequence.
    pub fn global(self, k: u64) -> u64 {
        k.saturating_mul(u64::from(self.count.max(1)))
            .saturating_add(u64::from(self.index))
    }
}

impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Segment {
    type Err = String;

    fn from_str(s: &str) -> Result<Segment, String> {
        let usage = || {
            format!(
                "`{s}` is not a segment: expected INDEX/COUNT with INDEX from 0, e.g. `0/3` for the \
                 first of three"
            )
        };
        let (i, c) = s.trim().split_once('/').ok_or_else(usage)?;
        let index: u32 = i.trim().parse().map_err(|_| usage())?;
        let count: u32 = c.trim().parse().map_err(|_| usage())?;
        if count == 0 || count > MAX_SEGMENTS {
            return Err(format!("segment `{s}`: COUNT must be 1 to {MAX_SEGMENTS}"));
        }
        if index >= count {
            return Err(format!(
                "segment `{s}`: INDEX counts from 0, so it must be below COUNT ({count}): the last \
                 of {count} is `{}/{count}`",
                count - 1
            ));
        }
        Ok(Segment { index, count })
    }
}

/// What a merged run keeps of each segment: where it ran, how late it started, and its own
/// figures, so one segment that differs from the others (a slow machine, a far zone) shows
/// beside the merged numbers.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct SegmentSummary {
    /// The segment's index.
    pub index: u32,
    /// The machine it ran on, when known.
    pub hostname: Option<String>,
    /// How long after the shared start instant it started (0 when on time).
    pub start_late_ms: f64,
    /// It was stopped by a signal before its load ended (its share is short).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub interrupted: bool,
    /// Requests it sent.
    pub requests: u64,
    /// Of which failed.
    pub failed: u64,
    /// Each load flow's iteration latency in this segment.
    pub flows: Vec<SegmentFlow>,
    /// Its self-checks that failed, in words.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_checks: Vec<String>,
}

/// One flow in one segment.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct SegmentFlow {
    /// Flow name.
    pub name: String,
    /// Iterations completed (ok or failed).
    pub iterations: u64,
    /// Median iteration latency, µs.
    pub p50_us: u64,
    /// 99th percentile, µs, with its 95% interval.
    pub p99_us: u64,
    /// The 95% interval of the p99, µs.
    pub p99_ci: [u64; 2],
}

/// The thresholds a run was judged by, as written, so a merge can judge the merged data again
/// without the scenario file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Gates {
    /// Each threshold: its key pattern and its expression.
    pub thresholds: Vec<GateSpec>,
    /// Failed checks fail the run.
    pub checks_gate: bool,
}

/// One threshold as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GateSpec {
    /// The key pattern.
    pub pattern: String,
    /// The expression.
    pub threshold: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_stripe_and_add_up_to_the_whole() {
        for count in 1..=7u32 {
            for total in 0..40u64 {
                let segs: Vec<Segment> = (0..count).map(|index| Segment { index, count }).collect();
                assert_eq!(segs.iter().map(|s| s.share(total)).sum::<u64>(), total);
                for n in 0..total {
                    assert_eq!(segs.iter().filter(|s| s.owns(n)).count(), 1);
                }
                for s in &segs {
                    let owned: Vec<u64> = (0..total).filter(|&n| s.owns(n)).collect();
                    assert_eq!(owned.len() as u64, s.share(total));
                    for (k, n) in owned.iter().enumerate() {
                        assert_eq!(s.global(k as u64), *n);
                    }
                }
                for users in 1..10u64 {
                    let budgets: Vec<u64> = segs.iter().map(|s| s.budget(total, users)).collect();
                    assert_eq!(
                        budgets.iter().sum::<u64>(),
                        total,
                        "{count} {total} {users}"
                    );
                    for (s, b) in segs.iter().zip(&budgets) {
                        assert!(
                            s.share(users) > 0 || *b == 0,
                            "a segment without users holds {b}"
                        );
                        // In proportion to its users, within one iteration.
                        let fair = total as f64 * s.share(users) as f64 / users as f64;
                        assert!((*b as f64 - fair).abs() < 1.0 + 1e-9, "{b} vs {fair}");
                    }
                }
            }
        }
    }

    #[test]
    fn parses_index_over_count_and_says_what_is_wrong() {
        assert_eq!("1/3".parse::<Segment>(), Ok(Segment { index: 1, count: 3 }));
        assert!("3/3".parse::<Segment>().unwrap_err().contains("`2/3`"));
        assert!("0/0".parse::<Segment>().unwrap_err().contains("COUNT"));
        assert!("1".parse::<Segment>().unwrap_err().contains("INDEX/COUNT"));
        assert!(
            "a/3"
                .parse::<Segment>()
                .unwrap_err()
                .contains("INDEX/COUNT")
        );
        assert!(Segment::WHOLE.is_whole() && Segment::WHOLE.owns(5));
    }
}
