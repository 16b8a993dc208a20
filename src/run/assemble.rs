//! The run's result assembled from what the collector merged: one [`RunResult`] per run, the
//! analyses (thresholds, trends, self-checks) added by the caller.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use crate::metrics::{FlowStats, KeyTable, Registry, Stats, StepStats};
use crate::model::{
    Environment, ErrorExampleResult, FlowResult, IntervalRow, Latency, RunResult, SCHEMA_VERSION,
};
use crate::model::{ErrorClass, ModelKind, PoissonFit, StepResult, TimingResult, Work};
use crate::model::{GateSpec, Gates, Segment};
use crate::scenario::Plan;
use crate::scenario::plan::{Flow, LoadModel};
use crate::schedule::FlowEnd;

/// When the run happened: its wall-clock start, its length so far (s), whether a signal stopped
/// it, and its interval.
#[derive(Debug, Clone, Copy)]
pub(super) struct Span {
    pub(super) wall_t0: SystemTime,
    pub(super) elapsed: f64,
    pub(super) interrupted: bool,
    pub(super) interval: Duration,
    /// Seconds at the start left out of the totals.
    pub(super) warmup: f64,
}

/// Why an open flow dropped arrivals, and what would have avoided it. An arrival is dropped
/// when every one of the flow's `max_vus` users is still busy with an earlier iteration, which
/// means waiting on the target: that is the target's result (it can fail `dropped`, `rate` and
/// `errors` thresholds), not the generator failing. By Little's law the flow needed about its
/// peak rate × the time an iteration takes.
fn dropped_cause(f: &Flow, fs: &FlowStats, segment: Segment, missed: u64) -> Option<String> {
    let LoadModel::Open(open) = &f.model else {
        return None;
    };
    // Arrivals a late segment missed are the generator's (the `late_start` self-check).
    let dropped = fs.dropped.saturating_sub(missed);
    if dropped == 0 {
        return None;
    }
    // A segment's users (and its share of the rate).
    let max_vus = segment.max_vus(open.max_vus);
    let peak = open.curve.peak() / f64::from(segment.count.max(1));
    let it = fs
        .iteration
        .as_deref()
        .filter(|h| !h.is_empty())
        .map(|h| h.value_at_quantile(0.95) as f64 / 1e6);
    let needed = it.map_or_else(String::new, |secs| {
        format!(
            "; about {:.0} would have been needed (peak {peak:.1}/s × iteration p95 {:.0} ms)",
            (peak * secs).ceil().max(max_vus as f64 + 1.0),
            secs * 1000.0
        )
    });
    Some(format!(
        "flow {} dropped {} of {} planned arrivals ({:.1}%): all {} of its users (max_vus) were busy \
         waiting on the target when they were due. Raise max_vus{needed}",
        f.name,
        dropped,
        fs.planned,
        dropped as f64 * 100.0 / fs.planned.max(1) as f64,
        max_vus,
    ))
}

pub(super) fn assemble(
    plan: &Plan,
    keys: &KeyTable,
    registry: &Registry,
    total: Stats,
    rows: Vec<IntervalRow>,
    ends: &[FlowEnd],
    span: Span,
) -> RunResult {
    let Span {
        wall_t0,
        elapsed,
        interrupted,
        interval,
        warmup,
    } = span;
    let flows = plan
        .flows
        .iter()
        .enumerate()
        .map(|(fi, f)| {
            let fk = &keys.flows[fi];
            let journey = &plan.journeys[f.journey];
            // The span the totals cover: from the later of the flow's start and the warm-up's end
            // to the earlier of its end and now.
            let start = f.start.as_secs_f64();
            let active =
                (elapsed.min(start + f.length().as_secs_f64()) - start.max(warmup)).max(1e-3);
            let fs = &total.flows[fi];
            let steps = journey
                .requests
                .iter()
                .enumerate()
                .map(|(si, info)| {
                    step_result(
                        format!("{}.{}", fk.name, info.name),
                        info,
                        &total.steps[fk.base + si],
                        active,
                    )
                })
                .collect();
            FlowResult {
                name: f.name.clone(),
                kind: f.kind,
                journey: journey.name.clone(),
                model: f.describe(),
                model_kind: match f.model {
                    LoadModel::Open(_) => ModelKind::Open,
                    LoadModel::Closed(_) => ModelKind::Closed,
                },
                tags: f.tags.iter().cloned().collect(),
                iterations_ok: fs.iterations_ok,
                iterations_failed: fs.iterations_failed,
                interrupted: fs.interrupted,
                planned: fs.planned,
                dropped: fs.dropped,
                iteration_rate: fs.iterations() as f64 / active,
                iteration: Latency::from_hist(fs.iteration.as_deref()),
                schedule_lag: Latency::from_hist(fs.lag.as_deref()),
                target_lag: Latency::from_hist(fs.target_lag.as_deref()),
                startup_lag: Latency::from_hist(fs.startup_lag.as_deref()),
                arrival_slack_us: match f.model {
                    // The most the schedule allowed anywhere on the curve.
                    LoadModel::Open(ref o) => plan
                        .settings
                        .arrival_slack
                        .at_rate(o.curve.peak() / f64::from(plan.segment.count.max(1)))
                        .as_micros() as u64,
                    LoadModel::Closed(_) => 0,
                },
                dropped_cause: dropped_cause(
                    f,
                    fs,
                    plan.segment,
                    ends.get(fi).map_or(0, |e| e.missed),
                ),
                errors: class_counts(&fs.errors),
                work: work(fs),
                // A segment's share of a Poisson flow is not Poisson (every third arrival of
                // one is more regular): its bins wait for the merge.
                poisson: ends
                    .get(fi)
                    .filter(|_| plan.segment.is_whole())
                    .and_then(|e| PoissonFit::from_bins(&e.arrival_bins)),
                arrival_bins: ends
                    .get(fi)
                    .filter(|_| !plan.segment.is_whole())
                    .map(|e| e.arrival_bins.clone())
                    .unwrap_or_default(),
                missed_at_start: ends.get(fi).map_or(0, |e| e.missed),
                steps,
            }
        })
        .collect();
    RunResult {
        schema_version: SCHEMA_VERSION,
        tool: format!("stampede {}", env!("CARGO_PKG_VERSION")),
        scenario: plan.name.clone(),
        source: plan.source.display().to_string(),
        started_at_unix_ms: wall_t0
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        duration_s: elapsed,
        interrupted,
        interval_s: interval.as_secs_f64(),
        warmup_s: warmup,
        flows,
        error_examples: registry
            .examples()
            .into_iter()
            .map(|e| ErrorExampleResult {
                key: e.key,
                class: e.class,
                message: e.message,
            })
            .collect(),
        intervals: rows,
        environment: Environment::current(),
        thresholds: Vec::new(),
        aborted: None,
        generator: None,
        self_checks: Vec::new(),
        db_load: Vec::new(),
        trends: Vec::new(),
        run_id: String::new(),
        scenario_digest: plan.digest.clone(),
        segment: (!plan.segment.is_whole()).then_some(plan.segment),
        start_at_unix_ms: None,
        start_late_ms: None,
        gates: Gates {
            thresholds: plan
                .thresholds
                .iter()
                .map(|t| GateSpec {
                    pattern: t.pattern.clone(),
                    threshold: t.text.clone(),
                })
                .collect(),
            checks_gate: plan.settings.checks_gate,
        },
        merged: Vec::new(),
    }
}

/// Error counts by class name, zeros left out.
fn class_counts(errors: &[u64; ErrorClass::COUNT]) -> BTreeMap<ErrorClass, u64> {
    ErrorClass::ALL
        .into_iter()
        .zip(errors.iter().copied())
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// Builds a step result from merged stats.
fn step_result(
    key: String,
    info: &crate::scenario::plan::RequestInfo,
    s: &StepStats,
    active_s: f64,
) -> StepResult {
    StepResult {
        key,
        name: info.name.clone(),
        method: info.method.to_string(),
        url: info.url.clone(),
        requests: s.requests,
        retries: s.retries,
        amplification: if s.requests > s.retries {
            s.requests as f64 / (s.requests - s.retries) as f64
        } else {
            1.0
        },
        failed: s.failed(),
        errors: class_counts(&s.errors),
        statuses: s
            .statuses
            .iter()
            .map(|(c, n)| (c.to_string(), *n))
            .collect(),
        rate: if active_s > 0.0 {
            s.requests as f64 / active_s
        } else {
            0.0
        },
        bytes_in: s.bytes_in,
        bytes_decoded: s.bytes_decoded,
        redirects: s.redirects,
        messages_in: s.messages_in,
        messages_out: s.messages_out,
        bytes_out: s.bytes_out,
        checks_passed: s.checks_passed,
        checks_failed: s.checks_failed,
        latency: Latency::from_hist(s.latency.as_deref()),
        service_time: Latency::from_hist(s.service.as_deref()),
        ttfb: Latency::from_hist(s.ttfb.as_deref()),
        connect: Latency::from_hist(s.connect.as_deref()),
        tls: Latency::from_hist(s.tls.as_deref()),
        server_timing: timing_results(&s.timings),
        cookies_dropped: s.cookies_dropped,
        batch: crate::analysis::load::batch_split(
            s.during_batch.as_deref(),
            s.without_batch.as_deref(),
        ),
    }
}

/// Converts aggregated `Server-Timing` metrics.
/// Names past the cap are one row, `(other)`.
fn timing_results(ts: &crate::metrics::Timings) -> Vec<TimingResult> {
    ts.list
        .iter()
        .map(|t| TimingResult {
            name: t.name.clone(),
            reported: t.seen,
            duration: Latency::from_hist(t.dur.as_deref()),
            total_ms: t.dur_total_ms,
            count_total: t.count,
            count_mean: if t.seen > 0 {
                t.count / t.seen as f64
            } else {
                0.0
            },
            ignored: t.ignored,
        })
        .collect()
}

/// Work per iteration of a flow, when any iteration completed.
fn work(f: &FlowStats) -> Option<Work> {
    let h = f
        .requests_per_iteration
        .as_deref()
        .filter(|h| !h.is_empty())?;
    Some(Work {
        iterations: h.len(),
        requests_mean: h.mean(),
        requests_p50: h.value_at_quantile(0.5),
        requests_max: h.max(),
        steps_mean: f.steps_per_iteration.as_deref().map_or(0.0, |h| h.mean()),
        bytes_mean: f.bytes_per_iteration.as_deref().map_or(0.0, |h| h.mean()),
        bytes_p50: f
            .bytes_per_iteration
            .as_deref()
            .map_or(0, |h| h.value_at_quantile(0.5)),
        per_iteration: timing_results(&f.iteration_timings),
    })
}
