//! Sums and exact histogram additions: the segments' results as one, before any analysis.

use std::collections::BTreeMap;

use crate::model::{
    Environment, ErrorClass, ErrorExampleResult, FlowResult, Generator, Hist, Latency, PoissonFit,
    RunResult, StepResult, TimingResult, Work, codec, new_hist,
};

/// The segments' results as one run: counters summed, histograms added, rates (each over the
/// same shared span) summed. Analyses, thresholds, interval rows and self-checks are left for
/// the caller to compute on it.
pub(super) fn results(parts: &[&RunResult]) -> RunResult {
    let first = parts[0];
    let mut examples: Vec<ErrorExampleResult> = Vec::new();
    for e in parts.iter().flat_map(|p| &p.error_examples) {
        if !examples
            .iter()
            .any(|x| x.key == e.key && x.class == e.class)
        {
            examples.push(e.clone());
        }
    }
    let mut hosts: Vec<String> = Vec::new();
    for h in parts.iter().filter_map(|p| p.environment.hostname.clone()) {
        if !hosts.contains(&h) {
            hosts.push(h);
        }
    }
    let aborted: Vec<String> = parts
        .iter()
        .filter_map(|p| {
            let seg = p.segment.map_or(0, |s| s.index);
            p.aborted.as_ref().map(|a| format!("segment {seg}: {a}"))
        })
        .collect();
    RunResult {
        schema_version: first.schema_version,
        tool: format!("stampede {}", env!("CARGO_PKG_VERSION")),
        scenario: first.scenario.clone(),
        source: first.source.clone(),
        started_at_unix_ms: first.start_at_unix_ms.unwrap_or_else(|| {
            parts
                .iter()
                .map(|p| p.started_at_unix_ms)
                .min()
                .unwrap_or(0)
        }),
        duration_s: parts.iter().map(|p| p.duration_s).fold(0.0, f64::max),
        interrupted: parts.iter().any(|p| p.interrupted),
        interval_s: first.interval_s,
        warmup_s: parts.iter().map(|p| p.warmup_s).fold(0.0, f64::max),
        flows: first
            .flows
            .iter()
            .map(|f| {
                let same: Vec<(u32, &FlowResult)> = parts
                    .iter()
                    .filter_map(|p| {
                        let seg = p.segment.map_or(0, |s| s.index);
                        p.flows.iter().find(|g| g.name == f.name).map(|g| (seg, g))
                    })
                    .collect();
                flow(&same)
            })
            .collect(),
        error_examples: examples,
        intervals: Vec::new(),
        environment: Environment {
            os: first.environment.os.clone(),
            arch: first.environment.arch.clone(),
            cpus: parts.iter().map(|p| p.environment.cpus).sum(),
            hostname: (!hosts.is_empty()).then(|| hosts.join(", ")),
        },
        thresholds: Vec::new(),
        generator: generator(parts),
        trends: Vec::new(),
        db_load: Vec::new(),
        self_checks: Vec::new(),
        aborted: (!aborted.is_empty()).then(|| aborted.join("; ")),
        run_id: first.run_id.clone(),
        scenario_digest: first.scenario_digest.clone(),
        segment: None,
        start_at_unix_ms: first.start_at_unix_ms,
        start_late_ms: parts
            .iter()
            .filter_map(|p| p.start_late_ms)
            .reduce(f64::max),
        gates: first.gates.clone(),
        merged: Vec::new(),
    }
}

fn generator(parts: &[&RunResult]) -> Option<Generator> {
    let gs: Vec<&Generator> = parts.iter().filter_map(|p| p.generator.as_ref()).collect();
    (!gs.is_empty()).then(|| Generator {
        workers: gs.iter().map(|g| g.workers).sum(),
        // The busiest segment: the merged run is as trustworthy as its weakest part.
        busy_share: gs.iter().map(|g| g.busy_share).fold(0.0, f64::max),
        connections_opened: gs.iter().map(|g| g.connections_opened).sum(),
        peak_connections_per_s: gs.iter().map(|g| g.peak_connections_per_s).sum(),
        local_ports: gs.iter().filter_map(|g| g.local_ports).min(),
        local_failures: gs.iter().map(|g| g.local_failures).sum(),
    })
}

/// Adds the histograms of the given distributions.
fn latency<'a>(ls: impl Iterator<Item = Option<&'a Latency>>) -> Option<Latency> {
    let mut sum: Option<Hist> = None;
    for l in ls.flatten() {
        let Ok(h) = codec::decode(&l.histogram) else {
            continue;
        };
        match &mut sum {
            Some(s) => {
                let _ = s.add(&h);
            }
            None => sum = Some(h),
        }
    }
    Latency::from_hist(sum.as_ref())
}

fn hist<'a>(ls: impl Iterator<Item = Option<&'a Latency>>) -> Option<Hist> {
    let mut sum = new_hist();
    let mut any = false;
    for l in ls.flatten() {
        if let Ok(h) = codec::decode(&l.histogram) {
            let _ = sum.add(&h);
            any = true;
        }
    }
    any.then_some(sum)
}

fn classes<'a>(
    ms: impl Iterator<Item = &'a BTreeMap<ErrorClass, u64>>,
) -> BTreeMap<ErrorClass, u64> {
    let mut out = BTreeMap::new();
    for m in ms {
        for (c, n) in m {
            *out.entry(*c).or_insert(0) += n;
        }
    }
    out
}

fn flow(segs: &[(u32, &FlowResult)]) -> FlowResult {
    // Each segment's dropped-arrival cause speaks of its own users and share: kept as its own.
    let causes: Vec<String> = segs
        .iter()
        .filter_map(|(i, f)| {
            f.dropped_cause
                .as_ref()
                .map(|c| format!("segment {i}: {c}"))
        })
        .collect();
    let fs: Vec<&FlowResult> = segs.iter().map(|(_, f)| *f).collect();
    let fs = fs.as_slice();
    let f0 = fs[0];
    // Rates are counts over the flow's active span, which every segment measures from the
    // shared start; a segment that ended sooner (fewer users, an early abort) measured a shorter
    // one. The merged span is the longest, read back as count ÷ rate.
    let span = fs
        .iter()
        .flat_map(|f| {
            std::iter::once((f.iterations_ok + f.iterations_failed, f.iteration_rate))
                .chain(f.steps.iter().map(|s| (s.requests, s.rate)))
        })
        .filter(|(n, rate)| *n > 0 && *rate > 0.0)
        .map(|(n, rate)| n as f64 / rate)
        .fold(0.0, f64::max);
    let per_s = |n: u64| if span > 0.0 { n as f64 / span } else { 0.0 };
    let sum = |g: fn(&FlowResult) -> u64| fs.iter().map(|f| g(f)).sum::<u64>();
    let mut bins: Vec<u32> = Vec::new();
    for f in fs {
        if bins.len() < f.arrival_bins.len() {
            bins.resize(f.arrival_bins.len(), 0);
        }
        for (b, n) in bins.iter_mut().zip(&f.arrival_bins) {
            *b += n;
        }
    }
    FlowResult {
        name: f0.name.clone(),
        kind: f0.kind,
        journey: f0.journey.clone(),
        model: f0.model.clone(),
        model_kind: f0.model_kind,
        tags: f0.tags.clone(),
        iterations_ok: sum(|f| f.iterations_ok),
        iterations_failed: sum(|f| f.iterations_failed),
        interrupted: sum(|f| f.interrupted),
        planned: sum(|f| f.planned),
        dropped: sum(|f| f.dropped),
        iteration_rate: per_s(sum(|f| f.iterations_ok + f.iterations_failed)),
        iteration: latency(fs.iter().map(|f| f.iteration.as_ref())),
        schedule_lag: latency(fs.iter().map(|f| f.schedule_lag.as_ref())),
        target_lag: latency(fs.iter().map(|f| f.target_lag.as_ref())),
        startup_lag: latency(fs.iter().map(|f| f.startup_lag.as_ref())),
        dropped_cause: (!causes.is_empty()).then(|| causes.join(" · ")),
        arrival_slack_us: fs.iter().map(|f| f.arrival_slack_us).max().unwrap_or(0),
        errors: classes(fs.iter().map(|f| &f.errors)),
        poisson: if bins.is_empty() {
            f0.poisson.clone()
        } else {
            PoissonFit::from_bins(&bins)
        },
        arrival_bins: Vec::new(),
        missed_at_start: sum(|f| f.missed_at_start),
        work: work(fs),
        steps: f0
            .steps
            .iter()
            .map(|s| {
                let same: Vec<&StepResult> = fs
                    .iter()
                    .filter_map(|f| f.steps.iter().find(|t| t.key == s.key))
                    .collect();
                step(&same, &per_s)
            })
            .collect(),
    }
}

fn step(ss: &[&StepResult], per_s: &dyn Fn(u64) -> f64) -> StepResult {
    let s0 = ss[0];
    let sum = |g: fn(&StepResult) -> u64| ss.iter().map(|s| g(s)).sum::<u64>();
    let (requests, retries) = (sum(|s| s.requests), sum(|s| s.retries));
    let mut statuses: BTreeMap<String, u64> = BTreeMap::new();
    for s in ss {
        for (k, n) in &s.statuses {
            *statuses.entry(k.clone()).or_insert(0) += n;
        }
    }
    let during = hist(ss.iter().map(|s| s.batch.as_ref().map(|b| &b.during)));
    let without = hist(ss.iter().map(|s| s.batch.as_ref().map(|b| &b.without)));
    StepResult {
        key: s0.key.clone(),
        name: s0.name.clone(),
        method: s0.method.clone(),
        url: s0.url.clone(),
        requests,
        retries,
        amplification: if requests > retries {
            requests as f64 / (requests - retries) as f64
        } else {
            1.0
        },
        failed: sum(|s| s.failed),
        errors: classes(ss.iter().map(|s| &s.errors)),
        statuses,
        rate: per_s(requests),
        bytes_in: sum(|s| s.bytes_in),
        bytes_out: sum(|s| s.bytes_out),
        bytes_decoded: sum(|s| s.bytes_decoded),
        redirects: sum(|s| s.redirects),
        messages_in: sum(|s| s.messages_in),
        messages_out: sum(|s| s.messages_out),
        checks_passed: sum(|s| s.checks_passed),
        checks_failed: sum(|s| s.checks_failed),
        latency: latency(ss.iter().map(|s| s.latency.as_ref())),
        service_time: latency(ss.iter().map(|s| s.service_time.as_ref())),
        ttfb: latency(ss.iter().map(|s| s.ttfb.as_ref())),
        connect: latency(ss.iter().map(|s| s.connect.as_ref())),
        tls: latency(ss.iter().map(|s| s.tls.as_ref())),
        server_timing: timings(ss.iter().map(|s| s.server_timing.as_slice())),
        cookies_dropped: sum(|s| s.cookies_dropped),
        batch: crate::analysis::load::batch_split(during.as_ref(), without.as_ref()),
    }
}

/// `Server-Timing` metrics added by name.
fn timings<'a>(lists: impl Iterator<Item = &'a [TimingResult]>) -> Vec<TimingResult> {
    let lists: Vec<&[TimingResult]> = lists.collect();
    let mut names: Vec<&str> = Vec::new();
    for t in lists.iter().flat_map(|l| l.iter()) {
        if !names.contains(&t.name.as_str()) {
            names.push(&t.name);
        }
    }
    names
        .into_iter()
        .map(|name| {
            let same: Vec<&TimingResult> = lists
                .iter()
                .filter_map(|l| l.iter().find(|t| t.name == name))
                .collect();
            let reported: u64 = same.iter().map(|t| t.reported).sum();
            let count_total: f64 = same.iter().map(|t| t.count_total).sum();
            TimingResult {
                name: name.to_string(),
                reported,
                duration: latency(same.iter().map(|t| t.duration.as_ref())),
                total_ms: same.iter().map(|t| t.total_ms).sum(),
                count_total,
                count_mean: if reported > 0 {
                    count_total / reported as f64
                } else {
                    0.0
                },
                ignored: same.iter().map(|t| t.ignored).sum(),
            }
        })
        .collect()
}

/// Work per iteration: means weighted by iterations; the medians are the segments' medians'
/// weighted median (each segment runs the same journey, so they rarely differ).
fn work(fs: &[&FlowResult]) -> Option<Work> {
    let ws: Vec<&Work> = fs.iter().filter_map(|f| f.work.as_ref()).collect();
    let n: u64 = ws.iter().map(|w| w.iterations).sum();
    if n == 0 {
        return ws.first().map(|w| (*w).clone());
    }
    let mean =
        |g: fn(&Work) -> f64| ws.iter().map(|w| g(w) * w.iterations as f64).sum::<f64>() / n as f64;
    let median = |g: fn(&Work) -> u64| {
        let mut v: Vec<(u64, u64)> = ws.iter().map(|w| (g(w), w.iterations)).collect();
        v.sort_unstable();
        let mut seen = 0;
        for (x, k) in &v {
            seen += k;
            if seen * 2 >= n {
                return *x;
            }
        }
        v.last().map_or(0, |x| x.0)
    };
    Some(Work {
        iterations: n,
        requests_mean: mean(|w| w.requests_mean),
        requests_p50: median(|w| w.requests_p50),
        requests_max: ws.iter().map(|w| w.requests_max).max().unwrap_or(0),
        steps_mean: mean(|w| w.steps_mean),
        bytes_mean: mean(|w| w.bytes_mean),
        bytes_p50: median(|w| w.bytes_p50),
        per_iteration: timings(ws.iter().map(|w| w.per_iteration.as_slice())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(iterations: u64, rate: f64) -> FlowResult {
        FlowResult {
            name: "f".into(),
            iterations_ok: iterations,
            iteration_rate: rate,
            ..Default::default()
        }
    }

    #[test]
    fn rates_are_counts_over_the_longest_span_not_a_sum_of_rates() {
        // Segment 0 ran 40 iterations in 1 s, segment 1 ran 20 in 2 s: 60 in 2 s.
        let (a, b) = (part(40, 40.0), part(20, 10.0));
        let merged = flow(&[(0, &a), (1, &b)]);
        assert!(
            (merged.iteration_rate - 30.0).abs() < 1e-9,
            "{}",
            merged.iteration_rate
        );
    }
}
