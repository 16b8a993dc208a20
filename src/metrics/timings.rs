//! `Server-Timing` metrics aggregated per step and per flow's iterations, their names capped so a
//! server inventing names cannot make the generator allocate without bound.

use std::time::Duration;

use super::{add_hist, record};
use crate::model::Hist;

/// Distinct `Server-Timing` names tracked per step (and per flow's iteration totals); reports of
/// any further name are folded into [`OTHER_TIMING`]. The header is the server's, so without a cap
/// a server inventing names would make stampede allocate a histogram for each.
pub const MAX_TIMING_NAMES: usize = 32;

/// The name under which reports beyond [`MAX_TIMING_NAMES`] are counted.
pub const OTHER_TIMING: &str = "(other)";

/// The name a new `Server-Timing` metric is tracked under when `tracked` names are tracked
/// already: its own below the cap, [`OTHER_TIMING`] from then on.
pub fn capped_timing_name(tracked: usize, name: &str) -> &str {
    if tracked < MAX_TIMING_NAMES {
        name
    } else {
        OTHER_TIMING
    }
}

/// One `Server-Timing` metric aggregated: durations as a histogram, counts as a sum.
#[derive(Debug, Clone, Default)]
pub struct TimingStat {
    /// Metric name.
    pub name: String,
    /// Durations (µs).
    pub dur: Option<Box<Hist>>,
    /// Sum of durations (ms), for shares of total time.
    pub dur_total_ms: f64,
    /// Sum of numeric descriptions (counts).
    pub count: f64,
    /// How many times it was reported.
    pub seen: u64,
    /// Reports whose duration was absurd (negative, not finite, over a day) and was dropped.
    pub ignored: u64,
}

impl TimingStat {
    pub(super) fn absorb(&mut self, o: TimingStat) {
        add_hist(&mut self.dur, o.dur);
        self.dur_total_ms += o.dur_total_ms;
        self.count += o.count;
        self.seen += o.seen;
        self.ignored += o.ignored;
    }

    /// Adds one report: a duration in milliseconds (already checked to be sane) and a count.
    pub(super) fn report(&mut self, dur_ms: Option<f64>, count: f64, absurd: bool) {
        self.seen += 1;
        self.ignored += absurd as u64;
        if let Some(ms) = dur_ms.filter(|ms| *ms > 0.0)
            && let Ok(d) = Duration::try_from_secs_f64(ms / 1000.0)
        {
            record(&mut self.dur, d);
            self.dur_total_ms += ms;
        }
        self.count += count;
    }
}

/// `Server-Timing` metrics by name, at most [`MAX_TIMING_NAMES`] of them plus [`OTHER_TIMING`],
/// found by a hash lookup.
#[derive(Debug, Clone, Default)]
pub struct Timings {
    /// The metrics, in order of first report.
    pub list: Vec<TimingStat>,
    index: std::collections::HashMap<String, usize>,
}

impl Timings {
    /// The slot for `name`: its own while fewer than [`MAX_TIMING_NAMES`] names are tracked,
    /// else the shared [`OTHER_TIMING`] slot.
    pub(super) fn slot(&mut self, name: &str) -> &mut TimingStat {
        if let Some(&i) = self.index.get(name) {
            return &mut self.list[i];
        }
        let name = capped_timing_name(self.index.len(), name);
        let i = match self.index.get(name) {
            Some(&i) => i,
            None => self.insert(TimingStat {
                name: name.to_string(),
                ..TimingStat::default()
            }),
        };
        &mut self.list[i]
    }

    fn insert(&mut self, t: TimingStat) -> usize {
        self.index.insert(t.name.clone(), self.list.len());
        self.list.push(t);
        self.list.len() - 1
    }

    pub(super) fn absorb(&mut self, from: Timings) {
        for t in from.list {
            // A name not tracked yet, with room for it (or `(other)` itself), moves in whole.
            let fits = capped_timing_name(self.index.len(), &t.name) == t.name;
            if fits && !self.index.contains_key(&t.name) {
                self.insert(t);
            } else {
                self.slot(&t.name).absorb(t);
            }
        }
    }

    /// Whether reports were folded into [`OTHER_TIMING`] because the cap was reached.
    pub fn capped(&self) -> bool {
        self.index.contains_key(OTHER_TIMING)
    }
}
