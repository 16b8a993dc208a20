//! An estimate of a run's memory, made before any traffic so that a scenario too large for this
//! machine is refused (or warned about) instead of being killed half-way.
//!
//! Measured (2 CPUs, docs/ARCHITECTURE.md "Memory per metric key"): what grows with a scenario's
//! size is its histograms. A key's histogram is 16 KiB at 3 significant digits for values under
//! 2 ms and grows by 8 KiB per doubling of its largest value; a flow has five of its own
//! (iteration, lag, requests, steps and bytes per iteration) and each request step four to seven
//! (latency, service time, time to first byte, connect; TLS; with and without batch work). Each
//! lives once per recording thread and once in the run's totals. Virtual users add about 34 KiB
//! each (docs/benchmarks.md, W4). The estimate is deliberately generous: about 2× the measured
//! peak of a 100-flow run (166 MiB estimated, 71 MiB measured).

use std::time::Duration;

use crate::scenario::Plan;
use crate::scenario::plan::FlowKind;

/// Memory of the process before any key or user: runtime, plan, buffers.
const BASE: u64 = 16 << 20;
/// Memory of one virtual user with its connection (benchmark W4, rounded up).
const PER_VU: u64 = 36 << 10;
/// One interval's summary row per key (kept for the report's charts and trends).
const PER_ROW: u64 = 320;

/// Bytes of one histogram whose largest value is `max`.
pub fn histogram_bytes(max: Duration) -> u64 {
    let us = max.as_micros().max(2048) as f64;
    let doublings = (us / 2048.0).log2().ceil() as u64;
    (16 << 10) + doublings * (8 << 10)
}

/// Estimated peak memory of running `plan` with `threads` recording threads and `interval`.
pub fn estimated_memory_bytes(plan: &Plan, threads: u64, interval: Duration) -> u64 {
    // Sized for latencies up to 10 ms (or the timeout, if shorter): sized for the timeout, the
    // estimate ran 10x over every measured run, since most keys never see their timeout.
    let hist = histogram_bytes(plan.settings.timeout.min(Duration::from_millis(10)));
    let background = plan.flows.iter().any(|f| f.kind == FlowKind::Background);
    let per_step = 4 + plan.origins.iter().any(|o| o.https) as u64 + 2 * background as u64;
    let mut histograms = 0u64;
    let mut keys = 0u64;
    for f in &plan.flows {
        let steps = plan.journeys[f.journey].requests.len() as u64;
        histograms += 5 + steps * per_step;
        keys += 1 + steps;
    }
    // Each recording thread's shard, and the run's totals (the interval being merged moves its
    // histograms into them).
    let copies = threads + 1;
    let intervals = (super::outdir::expected_length(plan).as_secs_f64()
        / interval.as_secs_f64().max(0.1))
    .ceil();
    BASE + histograms * hist * copies
        + keys * intervals as u64 * PER_ROW
        + plan.sockets_needed() * PER_VU
}

/// The memory this process may still take: `MemAvailable` (Linux), if known.
pub fn available_memory_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_grow_by_doublings_of_their_largest_value() {
        assert_eq!(histogram_bytes(Duration::from_micros(100)), 16 << 10);
        assert_eq!(histogram_bytes(Duration::from_micros(4096)), 24 << 10);
        assert_eq!(histogram_bytes(Duration::from_secs(5)), (16 + 12 * 8) << 10);
    }
}
