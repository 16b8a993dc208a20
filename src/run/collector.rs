//! The collector thread: every interval it takes each recording thread's samples, writes the
//! interval log, draws progress, judges `abort_on_fail` thresholds on a snapshot, and keeps the
//! cumulative totals (leaving whole intervals of warm-up out).

use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use super::assemble::{Span, assemble};
use crate::analysis::threshold::verdicts;
use crate::metrics::{KeyTable, Registry, Stats};
use crate::model::IntervalRow;
use crate::model::new_hist;
use crate::model::threshold::Threshold;
use crate::report::hlog::HlogWriter;
use crate::report::progress::{FlowLine, Progress};
use crate::scenario::Plan;
use crate::scenario::plan::LoadModel;

pub(super) struct CollectorOut {
    pub(super) cumulative: Stats,
    pub(super) rows: Vec<IntervalRow>,
    pub(super) error: Option<String>,
    /// Highest rate of new connections in any interval.
    pub(super) peak_connects_per_s: f64,
    /// The warm-up left out of `cumulative` (whole intervals).
    pub(super) warmup: Duration,
}

/// Everything the collector thread owns.
pub(super) struct Collector {
    pub(super) registry: Arc<Registry>,
    pub(super) plan: Arc<Plan>,
    pub(super) keys: Arc<KeyTable>,
    pub(super) t0: Instant,
    pub(super) wall_t0: SystemTime,
    pub(super) interval: Duration,
    pub(super) warmup: Duration,
    pub(super) hlog: Option<HlogWriter>,
    pub(super) progress: Option<Progress>,
    pub(super) stop: mpsc::Receiver<()>,
    pub(super) abort: tokio::sync::watch::Sender<Option<String>>,
    /// Live metrics to fold each interval into (`--metrics-listen`).
    pub(super) metrics: Option<std::sync::Arc<super::live::Live>>,
}

impl Collector {
    pub(super) fn run(self) -> CollectorOut {
        // The collector's second-by-second merge and log write must never take the core from
        // the runtime: on one CPU a few milliseconds of it stalled the arrivals, and at 20k/s
        // every virtual user was then busy opening new connections (a cascade of drops). At a
        // lower priority it runs only while the runtime waits. (On Linux, nice is per thread.)
        #[cfg(target_os = "linux")]
        let _ = rustix::process::nice(10);
        let mut aborted = false;
        let Collector {
            registry,
            plan,
            keys: key_table,
            t0,
            wall_t0,
            interval,
            warmup,
            mut hlog,
            progress,
            stop,
            abort,
            metrics,
        } = self;
        let (registry, plan) = (&*registry, &*plan);
        let live: Vec<&Threshold> = plan.thresholds.iter().filter(|t| t.abort_on_fail).collect();
        let out = collect_loop(
            registry,
            plan,
            t0,
            (interval, warmup),
            &mut hlog,
            (progress.as_ref(), metrics.as_deref()),
            &stop,
            |cumulative, elapsed, warmup_done| {
                if aborted || live.is_empty() {
                    return;
                }
                let due: Vec<Threshold> = live
                    .iter()
                    .filter(|t| elapsed >= t.delay)
                    .map(|t| (*t).clone())
                    .collect();
                if due.is_empty() {
                    return;
                }
                let snapshot = assemble(
                    plan,
                    &key_table,
                    registry,
                    cumulative.clone(),
                    Vec::new(),
                    &[],
                    Span {
                        wall_t0,
                        elapsed: elapsed.as_secs_f64(),
                        interrupted: false,
                        interval,
                        warmup: warmup_done.as_secs_f64(),
                    },
                );
                // A threshold with no data yet (a flow that has not started, a step not yet
                // reached) is judged at the end of the run, not aborted on now.
                if let Some(v) = verdicts(&due, false, &snapshot)
                    .into_iter()
                    .find(|v| !v.passed && v.observed_value.is_some())
                {
                    aborted = true;
                    let _ = abort.send(Some(format!(
                        "threshold `{}` on {} failed (observed {}, limit {})",
                        v.threshold, v.key, v.observed, v.limit
                    )));
                }
            },
        );
        if let Some(p) = &progress {
            p.finish();
        }
        out
    }
}

#[allow(clippy::too_many_arguments)]
fn collect_loop(
    registry: &Registry,
    plan: &Plan,
    t0: Instant,
    (interval, warmup): (Duration, Duration),
    hlog: &mut Option<HlogWriter>,
    (progress, metrics): (Option<&Progress>, Option<&super::live::Live>),
    stop: &mpsc::Receiver<()>,
    mut on_interval: impl FnMut(&Stats, Duration, Duration),
) -> CollectorOut {
    let keys = registry.keys();
    let mut cumulative = Stats::new(keys);
    let mut rows = Vec::new();
    let mut error = None;
    let mut dropped_total = vec![0u64; plan.flows.len()];
    let mut peak_connects_per_s = 0.0f64;
    let mut warmup_done = Duration::ZERO;
    let total_s = plan.load_length().as_secs_f64();
    let mut n = 1u32;
    loop {
        let deadline = t0 + interval * n;
        let wait = deadline.saturating_duration_since(Instant::now());
        let last = !matches!(
            stop.recv_timeout(wait),
            Err(mpsc::RecvTimeoutError::Timeout)
        );
        let st = registry.collect();
        let start_off = interval * (n - 1);
        let end_off = if last {
            Instant::now().saturating_duration_since(t0).max(start_off)
        } else {
            interval * n
        };
        let len = end_off - start_off;
        let t = end_off.as_secs_f64();
        let mut lines = Vec::new();
        for (fi, fk) in keys.flows.iter().enumerate() {
            let mut flow_hist = new_hist();
            let (mut requests, mut errors) = (0, 0);
            for (si, step) in fk.steps.iter().enumerate() {
                let s = &st.steps[fk.base + si];
                requests += s.requests;
                errors += s.failed();
                let Some(h) = s.latency.as_deref() else {
                    continue;
                };
                let _ = flow_hist.add(h);
                let key = format!("{}.{step}", fk.name);
                let mut r = row(t, &key, h, s.requests, s.failed());
                r.retries = s.retries;
                rows.push(r);
                if let Some(w) = hlog.as_mut()
                    && let Err(e) = w.write(&key, h, start_off, len)
                {
                    error.get_or_insert(format!("writing intervals.hlog: {e}"));
                }
            }
            let f = &st.flows[fi];
            let g = &registry.gauges[fi];
            dropped_total[fi] += f.dropped;
            let busy = g.busy_vus.load(std::sync::atomic::Ordering::Relaxed);
            let target = g.target();
            let iter_key = format!("{}.iteration", fk.name);
            let mut r = match f.iteration.as_deref() {
                Some(h) => {
                    if let Some(w) = hlog.as_mut()
                        && let Err(e) = w.write(&iter_key, h, start_off, len)
                    {
                        error.get_or_insert(format!("writing intervals.hlog: {e}"));
                    }
                    row(t, &iter_key, h, f.iterations(), f.iterations_failed)
                }
                None => IntervalRow {
                    t,
                    key: iter_key,
                    count: 0,
                    errors: 0,
                    p50_us: 0,
                    p95_us: 0,
                    p99_us: 0,
                    max_us: 0,
                    active_vus: None,
                    target: None,
                    dropped: None,
                    retries: 0,
                },
            };
            r.active_vus = Some(busy);
            r.target = Some(target);
            r.dropped = Some(f.dropped);
            rows.push(r);
            lines.push(FlowLine {
                name: fk.name.clone(),
                rate: f.iterations() as f64 / len.as_secs_f64().max(1e-3),
                target,
                open: matches!(plan.flows[fi].model, LoadModel::Open(_)),
                busy_vus: busy,
                requests,
                errors,
                p95_us: (!flow_hist.is_empty()).then(|| flow_hist.value_at_quantile(0.95)),
                dropped: dropped_total[fi],
            });
        }
        if let Some(w) = hlog.as_mut()
            && let Err(e) = w.flush()
        {
            error.get_or_insert(format!("writing intervals.hlog: {e}"));
        }
        if let Some(p) = progress {
            p.update(t, total_s, &lines);
        }
        // A short last interval would inflate the rate; judge churn on whole intervals.
        if !last || len >= interval / 2 || peak_connects_per_s == 0.0 {
            let opened = st.connections().0 as f64;
            peak_connects_per_s = peak_connects_per_s.max(opened / len.as_secs_f64().max(1e-3));
        }
        // Only whole intervals are left out, so the totals cover a known span; a run that ends
        // inside its warm-up keeps what it has rather than nothing.
        if let Some(m) = metrics {
            m.absorb((registry, keys, plan), &st, len);
        }
        if end_off <= warmup && !last {
            warmup_done = end_off;
        } else {
            cumulative.absorb(st);
        }
        on_interval(&cumulative, end_off, warmup_done);
        if last {
            break;
        }
        n += 1;
    }
    CollectorOut {
        cumulative,
        rows,
        error,
        peak_connects_per_s,
        warmup: warmup_done,
    }
}

fn row(t: f64, key: &str, h: &crate::model::Hist, count: u64, errors: u64) -> IntervalRow {
    IntervalRow {
        t,
        key: key.to_string(),
        count,
        errors,
        p50_us: h.value_at_quantile(0.5),
        p95_us: h.value_at_quantile(0.95),
        p99_us: h.value_at_quantile(0.99),
        max_us: h.max(),
        active_vus: None,
        target: None,
        dropped: None,
        retries: 0,
    }
}
