//! Live metrics (`--metrics-listen ADDR`): what the run has done so far, as Prometheus text at
//! `/metrics`, for the dashboards a rehearsal is watched on.
//!
//! The collector thread folds each interval's merged stats in ([`Live::absorb`]), so the
//! endpoint costs the request path nothing: a scrape renders a snapshot under a lock the
//! collector holds once per interval. Latency is exported as Prometheus histograms with fixed
//! buckets ([`BUCKETS_S`]), counted from the same HDR histograms the results use: a bucket holds
//! the requests whose latency (from due time) is at most its bound, to HDR's 0.1% precision, so
//! `histogram_quantile` over a scrape window is as exact as the buckets around the quantile
//! allow (between two bounds it interpolates linearly). The exact percentiles are in the result
//! files.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

use crate::metrics::{KeyTable, Registry, Stats};
use crate::model::{ErrorClass, Hist};

/// Upper bounds of the latency and lag buckets, in seconds (plus `+Inf`).
pub const BUCKETS_S: [f64; 17] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 300.0,
];

/// Where the run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// Loading, or waiting for `--start-at`.
    Starting = 0,
    /// Running the setup journey.
    Setup = 1,
    /// Sending the load.
    Load = 2,
    /// The load ended; in-flight iterations get their graceful stop.
    Stopping = 3,
    /// Running the teardown journey.
    Teardown = 4,
    /// Finished.
    Done = 5,
}

impl Phase {
    const ALL: [Phase; 6] = [
        Phase::Starting,
        Phase::Setup,
        Phase::Load,
        Phase::Stopping,
        Phase::Teardown,
        Phase::Done,
    ];

    fn name(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Setup => "setup",
            Phase::Load => "load",
            Phase::Stopping => "stopping",
            Phase::Teardown => "teardown",
            Phase::Done => "done",
        }
    }
}

/// Counts per bucket (not cumulative), their sum in seconds and their count.
#[derive(Debug, Clone, Default)]
struct Buckets {
    counts: [u64; BUCKETS_S.len() + 1],
    sum_s: f64,
    count: u64,
}

impl Buckets {
    fn add(&mut self, h: &Hist) {
        if h.is_empty() {
            return;
        }
        let mut below = 0u64;
        for (i, b) in BUCKETS_S.iter().enumerate() {
            let upto = h.count_between(0, (b * 1e6) as u64);
            self.counts[i] += upto.saturating_sub(below);
            below = below.max(upto);
        }
        self.counts[BUCKETS_S.len()] += h.len().saturating_sub(below);
        self.sum_s += h.mean() * h.len() as f64 / 1e6;
        self.count += h.len();
    }

    fn pairs(&self) -> Vec<(f64, u64)> {
        BUCKETS_S
            .iter()
            .copied()
            .chain([f64::MAX])
            .zip(self.counts.iter().copied())
            .collect()
    }
}

#[derive(Debug, Default)]
struct StepTotals {
    statuses: BTreeMap<String, u64>,
    failures: BTreeMap<ErrorClass, u64>,
    latency: Buckets,
}

#[derive(Debug, Default)]
struct FlowTotals {
    ok: u64,
    failed: u64,
    interrupted: u64,
    planned: u64,
    dropped: u64,
    busy_vus: u64,
    vus: u64,
    target: f64,
    achieved: f64,
    open: bool,
    lag: Buckets,
}

#[derive(Debug, Default)]
struct State {
    flows: BTreeMap<String, FlowTotals>,
    steps: BTreeMap<(String, String), StepTotals>,
    /// Completed runs (a capacity search or `interact` makes several).
    runs: u64,
}

/// The live metrics of one process, shared by every run it makes.
#[derive(Debug, Default)]
pub struct Live {
    state: Mutex<State>,
    phase: AtomicU8,
}

impl Live {
    /// Sets the run's phase.
    pub fn set_phase(&self, p: Phase) {
        self.phase.store(p as u8, Ordering::Relaxed);
        if p == Phase::Done {
            let mut s = self.lock();
            s.runs += 1;
            // Nothing runs between runs (a capacity step's pause): the gauges say so instead of
            // repeating the last interval.
            for f in s.flows.values_mut() {
                f.busy_vus = 0;
                f.vus = 0;
                f.target = 0.0;
                f.achieved = 0.0;
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Folds one interval's stats (of `len`) in: counters grow, gauges take the interval's end.
    pub fn absorb(
        &self,
        (registry, keys, plan): (&Registry, &KeyTable, &crate::scenario::Plan),
        st: &Stats,
        len: Duration,
    ) {
        let mut s = self.lock();
        for (fi, fk) in keys.flows.iter().enumerate() {
            for (si, step) in fk.steps.iter().enumerate() {
                let x = &st.steps[fk.base + si];
                if x.requests == 0 {
                    continue;
                }
                let t = s.steps.entry((fk.name.clone(), step.clone())).or_default();
                let mut with_status = 0;
                for (code, n) in &x.statuses {
                    *t.statuses.entry(code.to_string()).or_insert(0) += n;
                    with_status += n;
                }
                if x.requests > with_status {
                    *t.statuses.entry("none".into()).or_insert(0) += x.requests - with_status;
                }
                for (class, n) in ErrorClass::ALL.iter().zip(x.errors.iter()) {
                    if *n > 0 {
                        *t.failures.entry(*class).or_insert(0) += n;
                    }
                }
                if let Some(h) = x.latency.as_deref() {
                    t.latency.add(h);
                }
            }
            let f = &st.flows[fi];
            let g = &registry.gauges[fi];
            let t = s.flows.entry(fk.name.clone()).or_default();
            t.ok += f.iterations_ok;
            t.failed += f.iterations_failed;
            t.interrupted += f.interrupted;
            t.planned += f.planned;
            t.dropped += f.dropped;
            t.busy_vus = g.busy_vus.load(Ordering::Relaxed);
            t.vus = g.vus.load(Ordering::Relaxed);
            t.target = g.target();
            // A stub of an interval at the end would make a spike of a rate: keep the last.
            if len >= Duration::from_millis(100) {
                t.achieved = f.iterations() as f64 / len.as_secs_f64();
            }
            t.open = matches!(
                plan.flows.get(fi).map(|f| &f.model),
                Some(crate::scenario::plan::LoadModel::Open(_))
            );
            if let Some(h) = f.lag.as_deref() {
                t.lag.add(h);
            }
        }
    }

    /// Whether any flow is open (arrival rate) rather than closed (virtual users).
    fn encode_into(&self, mut e: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let s = self.lock();
        let phase = self.phase.load(Ordering::Relaxed);
        {
            let mut m = e.encode_descriptor(
                "stampede_run_phase",
                "1 for the phase the run is in: starting, setup, load, stopping, teardown, done",
                None,
                MetricType::Gauge,
            )?;
            for p in Phase::ALL {
                let labels = [("phase", p.name())];
                m.encode_family(&labels)?
                    .encode_gauge(&i64::from(p as u8 == phase))?;
            }
        }
        {
            let mut m = e.encode_descriptor(
                "stampede_runs_completed",
                "Runs this process finished (capacity and interact make several)",
                None,
                MetricType::Counter,
            )?;
            m.encode_counter::<NoLabelSet, _, u64>(&s.runs, None)?;
        }
        {
            let mut m = e.encode_descriptor(
                "stampede_requests",
                "Requests completed, by flow, step and status code (`none`: no response)",
                None,
                MetricType::Counter,
            )?;
            for ((flow, step), t) in &s.steps {
                for (status, n) in &t.statuses {
                    let labels = [("flow", flow.as_str()), ("step", step), ("status", status)];
                    m.encode_family(&labels)?
                        .encode_counter::<NoLabelSet, _, u64>(n, None)?;
                }
            }
        }
        {
            let mut m = e.encode_descriptor(
                "stampede_failures",
                "Failed requests, by flow, step and error class",
                None,
                MetricType::Counter,
            )?;
            for ((flow, step), t) in &s.steps {
                for (class, n) in &t.failures {
                    let labels = [
                        ("flow", flow.as_str()),
                        ("step", step),
                        ("class", class.name()),
                    ];
                    m.encode_family(&labels)?
                        .encode_counter::<NoLabelSet, _, u64>(n, None)?;
                }
            }
        }
        {
            let mut m = e.encode_descriptor(
                "stampede_latency_seconds",
                "Request latency from its due time (what users felt), by flow and step",
                None,
                MetricType::Histogram,
            )?;
            for ((flow, step), t) in &s.steps {
                let labels = [("flow", flow.as_str()), ("step", step)];
                m.encode_family(&labels)?.encode_histogram::<NoLabelSet>(
                    t.latency.sum_s,
                    t.latency.count,
                    &t.latency.pairs(),
                    None,
                )?;
            }
        }
        {
            let mut m = e.encode_descriptor(
                "stampede_iterations",
                "Iterations ended, by flow and outcome (ok, failed, interrupted)",
                None,
                MetricType::Counter,
            )?;
            for (flow, t) in &s.flows {
                for (outcome, n) in [
                    ("ok", t.ok),
                    ("failed", t.failed),
                    ("interrupted", t.interrupted),
                ] {
                    let labels = [("flow", flow.as_str()), ("outcome", outcome)];
                    m.encode_family(&labels)?
                        .encode_counter::<NoLabelSet, _, u64>(&n, None)?;
                }
            }
        }
        let flow_counter = |e: &mut DescriptorEncoder<'_>,
                            name: &str,
                            help: &str,
                            get: fn(&FlowTotals) -> u64|
         -> Result<(), std::fmt::Error> {
            let mut m = e.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (flow, t) in &s.flows {
                let labels = [("flow", flow.as_str())];
                m.encode_family(&labels)?
                    .encode_counter::<NoLabelSet, _, u64>(&get(t), None)?;
            }
            Ok(())
        };
        flow_counter(
            &mut e,
            "stampede_planned_arrivals",
            "Open flows: arrivals the schedule called for",
            |t| t.planned,
        )?;
        flow_counter(
            &mut e,
            "stampede_dropped_arrivals",
            "Open flows: arrivals that found every user busy (waiting on the target)",
            |t| t.dropped,
        )?;
        let flow_gauge = |e: &mut DescriptorEncoder<'_>,
                          name: &str,
                          help: &str,
                          get: fn(&FlowTotals) -> f64|
         -> Result<(), std::fmt::Error> {
            let mut m = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for (flow, t) in &s.flows {
                let labels = [("flow", flow.as_str())];
                m.encode_family(&labels)?.encode_gauge(&get(t))?;
            }
            Ok(())
        };
        flow_gauge(
            &mut e,
            "stampede_active_vus",
            "Virtual users running an iteration",
            |t| t.busy_vus as f64,
        )?;
        flow_gauge(
            &mut e,
            "stampede_vus",
            "Virtual users that exist (busy or idle)",
            |t| t.vus as f64,
        )?;
        flow_gauge(
            &mut e,
            "stampede_target_rate",
            "Open flows: arrivals per second the curve asks for now",
            |t| if t.open { t.target } else { 0.0 },
        )?;
        flow_gauge(
            &mut e,
            "stampede_target_vus",
            "Closed flows: virtual users the curve asks for now",
            |t| if t.open { 0.0 } else { t.target },
        )?;
        flow_gauge(
            &mut e,
            "stampede_achieved_rate",
            "Iterations completed per second over the last interval",
            |t| t.achieved,
        )?;
        {
            let mut m = e.encode_descriptor(
                "stampede_schedule_lag_seconds",
                "The generator's own lateness starting iterations (with a user free), by flow",
                None,
                MetricType::Histogram,
            )?;
            for (flow, t) in &s.flows {
                let labels = [("flow", flow.as_str())];
                m.encode_family(&labels)?.encode_histogram::<NoLabelSet>(
                    t.lag.sum_s,
                    t.lag.count,
                    &t.lag.pairs(),
                    None,
                )?;
            }
        }
        Ok(())
    }

    /// The Prometheus text exposition (OpenMetrics 1.0 text, which Prometheus reads).
    pub fn render(self: &std::sync::Arc<Self>) -> String {
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(Encoder(self.clone())));
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }
}

/// The live metrics as a prometheus-client collector.
#[derive(Debug)]
struct Encoder(std::sync::Arc<Live>);

impl Collector for Encoder {
    fn encode(&self, encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        self.0.encode_into(encoder)
    }
}

/// The names of every metric the endpoint serves (for the dashboard's test).
pub const METRIC_NAMES: [&str; 14] = [
    "stampede_run_phase",
    "stampede_runs_completed_total",
    "stampede_requests_total",
    "stampede_failures_total",
    "stampede_latency_seconds",
    "stampede_iterations_total",
    "stampede_planned_arrivals_total",
    "stampede_dropped_arrivals_total",
    "stampede_active_vus",
    "stampede_vus",
    "stampede_target_rate",
    "stampede_target_vus",
    "stampede_achieved_rate",
    "stampede_schedule_lag_seconds",
];

/// Connections the endpoint serves at once.
const MAX_CONNECTIONS: usize = 16;
/// How long a client may take to send its request head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves `/metrics` on `listener` until the process ends, on a thread of its own (its own
/// small runtime), so a scrape never waits behind the run's workers and the endpoint outlives
/// each run of a capacity search.
pub fn serve(listener: std::net::TcpListener, live: std::sync::Arc<Live>) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // A scraper needs one connection; a few more are allowed, the rest are closed at once, so
    // idle clients cannot take the run's file descriptors.
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    std::thread::Builder::new()
        .name("stampede-metrics".into())
        .spawn(move || {
            rt.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    return;
                };
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        // Out of descriptors: wait rather than spin on the error.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    };
                    let Ok(slot) = slots.clone().try_acquire_owned() else {
                        continue;
                    };
                    let live = live.clone();
                    tokio::spawn(async move {
                        let _slot = slot;
                        let svc = hyper::service::service_fn(move |req| {
                            let live = live.clone();
                            async move { Ok::<_, std::convert::Infallible>(respond(&req, &live)) }
                        });
                        let conn = hyper::server::conn::http1::Builder::new()
                            .timer(hyper_util::rt::TokioTimer::new())
                            .header_read_timeout(HEADER_TIMEOUT)
                            .serve_connection(hyper_util::rt::TokioIo::new(stream), svc);
                        // A connection lives at most a minute: scrapers reconnect.
                        let _ = tokio::time::timeout(Duration::from_secs(60), conn).await;
                    });
                }
            });
        })?;
    Ok(())
}

fn respond<B>(
    req: &hyper::Request<B>,
    live: &std::sync::Arc<Live>,
) -> hyper::Response<http_body_util::Full<bytes::Bytes>> {
    let (status, ctype, body) = if req.uri().path() == "/metrics" {
        (
            200,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            live.render(),
        )
    } else {
        (
            404,
            "text/plain; charset=utf-8",
            "stampede serves its live metrics at /metrics\n".to_string(),
        )
    };
    let mut r = hyper::Response::new(http_body_util::Full::new(bytes::Bytes::from(body)));
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::OK);
    if let Ok(v) = http::HeaderValue::from_str(ctype) {
        r.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_count_each_request_once_at_its_bound() {
        let mut h = crate::model::new_hist();
        for us in [300u64, 800, 800, 20_000, 7_000_000] {
            h.record(us).unwrap();
        }
        let mut b = Buckets::default();
        b.add(&h);
        assert_eq!(b.count, 5);
        assert_eq!(b.counts.iter().sum::<u64>(), 5);
        assert_eq!(b.counts[0], 1, "≤ 0.5 ms");
        assert_eq!(b.counts[1], 2, "≤ 1 ms");
        assert_eq!(b.counts[5], 1, "≤ 25 ms");
        assert_eq!(b.counts[13], 1, "≤ 10 s");
        assert!((b.sum_s - 7.0219).abs() < 0.01, "{}", b.sum_s);
    }
}
