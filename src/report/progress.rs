//! Live progress on the terminal: one line per flow with achieved vs target rate, active virtual
//! users, errors and the last interval's p95. Fed by the collector once per interval; it never
//! touches the recorders.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// One flow's figures for the last interval.
#[derive(Debug, Clone)]
pub struct FlowLine {
    /// Flow name.
    pub name: String,
    /// Iterations completed per second in the interval.
    pub rate: f64,
    /// Target level (arrivals/s for open flows, VUs for closed ones).
    pub target: f64,
    /// Whether the flow is open-model.
    pub open: bool,
    /// Busy virtual users.
    pub busy_vus: u64,
    /// Requests in the interval.
    pub requests: u64,
    /// Failed requests in the interval.
    pub errors: u64,
    /// p95 latency of the flow's requests in the interval, microseconds.
    pub p95_us: Option<u64>,
    /// Dropped arrivals so far.
    pub dropped: u64,
}

/// The progress display.
#[derive(Debug)]
pub struct Progress {
    _multi: MultiProgress,
    header: ProgressBar,
    bars: Vec<ProgressBar>,
}

impl Progress {
    /// One line per flow, drawn to stderr.
    pub fn new(flows: &[String]) -> Progress {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(4));
        let style = ProgressStyle::with_template("{prefix:.bold} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        let header = multi.add(ProgressBar::new_spinner());
        header.set_style(style.clone());
        let width = flows.iter().map(String::len).max().unwrap_or(4);
        let bars = flows
            .iter()
            .map(|f| {
                let b = multi.add(ProgressBar::new_spinner());
                b.set_style(style.clone());
                b.set_prefix(format!("{f:<width$}"));
                b
            })
            .collect();
        Progress {
            _multi: multi,
            header,
            bars,
        }
    }

    /// Redraws with the latest interval.
    pub fn update(&self, elapsed_s: f64, total_s: f64, lines: &[FlowLine]) {
        self.header
            .set_message(format!("{elapsed_s:>6.0}s / {total_s:.0}s"));
        for (b, l) in self.bars.iter().zip(lines) {
            let target = if l.open {
                format!("{:>8.1}/s of {:.1}/s", l.rate, l.target)
            } else {
                format!("{:>8.1}/s, {:.0} VUs target", l.rate, l.target)
            };
            let err = if l.requests == 0 {
                0.0
            } else {
                100.0 * l.errors as f64 / l.requests as f64
            };
            let p95 = l.p95_us.map_or_else(
                || "-".into(),
                |us| crate::units::short_duration(std::time::Duration::from_micros(us)),
            );
            let dropped = if l.dropped > 0 {
                format!("  dropped {}", l.dropped)
            } else {
                String::new()
            };
            b.set_message(format!(
                "{target}  vus {:>5}  err {err:>5.1}%  p95 {p95:>9}{dropped}",
                l.busy_vus
            ));
        }
    }

    /// Removes the display.
    pub fn finish(&self) {
        self.header.finish_and_clear();
        for b in &self.bars {
            b.finish_and_clear();
        }
    }
}
