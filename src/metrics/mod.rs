//! Recording and merging measurements.
//!
//! Each OS thread that records gets its own shard (a `Mutex<Stats>` that only it and the collector
//! touch), found through a thread-local, so the per-sample path takes no lock shared between
//! workers: the collector swaps each shard's `Stats` out once per interval and merges them by
//! addition (wrk2's `hdr_add`). Histograms are HDR, in microseconds with 3 significant digits,
//! created on a key's first sample so idle keys cost nothing. Metric keys are dense indices fixed
//! at plan time ([`KeyTable`]); no strings are touched while recording.

mod runs;
mod timings;

pub use timings::{MAX_TIMING_NAMES, OTHER_TIMING, TimingStat, Timings, capped_timing_name};

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::model::ErrorClass;
use crate::model::hist::{Hist, new_hist};
use crate::scenario::Plan;

/// A duration as the histograms hold it: whole microseconds, at least 1.
fn micros(d: Duration) -> u64 {
    (d.as_micros() as u64).max(1)
}

fn record(h: &mut Option<Box<Hist>>, d: Duration) {
    let us = micros(d);
    let h = h.get_or_insert_with(|| Box::new(new_hist()));
    // `record` grows an auto-resizing histogram; only a value beyond what it can ever track
    // fails, and that is clamped rather than lost. (`saturating_record` alone would clamp to the
    // current size and never grow.)
    if h.record(us).is_err() {
        h.saturating_record(us);
    }
}

/// Adds `from` into `into`, moving it when `into` has none: merging shards and intervals moves
/// histograms instead of copying them (each is 16 KiB or more).
fn add_hist(into: &mut Option<Box<Hist>>, from: Option<Box<Hist>>) {
    if let Some(f) = from {
        match into {
            Some(i) => {
                // Both auto-resize, so addition cannot run out of range.
                let _ = i.add(&*f);
            }
            None => *into = Some(f),
        }
    }
}

/// Dense metric keys: one per (flow, request step), fixed at plan time.
#[derive(Debug, Clone)]
pub struct KeyTable {
    /// Per flow: its name, journey step names, and the index of its first step key.
    pub flows: Vec<FlowKeys>,
    /// Number of step keys in all.
    pub steps: usize,
}

/// The keys of one flow.
#[derive(Debug, Clone)]
pub struct FlowKeys {
    /// Flow name.
    pub name: String,
    /// Step names in `StepId` order.
    pub steps: Vec<String>,
    /// Key index of the flow's first step.
    pub base: usize,
}

impl KeyTable {
    /// Builds the keys of a plan.
    pub fn from_plan(plan: &Plan) -> KeyTable {
        let mut base = 0;
        let flows = plan
            .flows
            .iter()
            .map(|f| {
                let steps: Vec<String> = plan.journeys[f.journey]
                    .requests
                    .iter()
                    .map(|r| r.name.clone())
                    .collect();
                let k = FlowKeys {
                    name: f.name.clone(),
                    base,
                    steps,
                };
                base += k.steps.len();
                k
            })
            .collect();
        KeyTable { flows, steps: base }
    }

    /// The `flow.step` name of a step key.
    pub fn step_name(&self, key: usize) -> String {
        for f in &self.flows {
            if key >= f.base && key < f.base + f.steps.len() {
                return format!("{}.{}", f.name, f.steps[key - f.base]);
            }
        }
        format!("key{key}")
    }
}

/// What one iteration did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IterationWork {
    /// Requests sent (retries included).
    pub requests: u64,
    /// Steps executed.
    pub steps: u64,
    /// Bytes sent and received.
    pub bytes: u64,
}

/// One request's measurements (`Default`: nothing measured yet, nothing sent).
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestSample {
    /// From due time to the last byte (what users felt).
    pub latency: Duration,
    /// From the actual send to the last byte.
    pub service: Duration,
    /// From the actual send to the response head.
    pub ttfb: Option<Duration>,
    /// Connection set-up, when this request opened one.
    pub connect: Option<Duration>,
    /// TLS handshake, when this request made one.
    pub tls: Option<Duration>,
    /// Response status, when one arrived.
    pub status: Option<u16>,
    /// Failure class, if it failed.
    pub error: Option<ErrorClass>,
    /// Bytes received (head and body).
    pub bytes_in: u64,
    /// Bytes received with the body decoded (`Content-Encoding`).
    pub bytes_decoded: u64,
    /// Redirects followed to the response.
    pub redirects: u32,
    /// WebSocket messages (received, sent) during this step.
    pub messages: (u64, u64),
    /// Bytes sent (head and body).
    pub bytes_out: u64,
    /// Whether this attempt was a retry.
    pub retry: bool,
    /// Checks passed and failed on this response.
    pub checks: (u32, u32),
    /// Cookies this response set that the jar's limits dropped (or that pushed older ones out).
    pub cookies_dropped: u32,
    /// Whether the request left: one that was never sent (a template error) or never connected
    /// is counted with its error but has no latency, since the target never saw it.
    pub sent: bool,
}

/// Per-step counters and histograms for one interval (or merged, for the run).
#[derive(Debug, Clone, Default)]
pub struct StepStats {
    /// Latency from due time.
    pub latency: Option<Box<Hist>>,
    /// Service time from send.
    pub service: Option<Box<Hist>>,
    /// Time to first byte.
    pub ttfb: Option<Box<Hist>>,
    /// Connect time.
    pub connect: Option<Box<Hist>>,
    /// TLS handshake time.
    pub tls: Option<Box<Hist>>,
    /// Requests sent (retries included).
    pub requests: u64,
    /// Of which retries.
    pub retries: u64,
    /// Failures per class (`ErrorClass::index`).
    pub errors: [u64; ErrorClass::COUNT],
    /// Responses per status code (few distinct codes, so a small vector).
    pub statuses: Vec<(u16, u64)>,
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes received with bodies decoded.
    pub bytes_decoded: u64,
    /// Redirects followed.
    pub redirects: u64,
    /// WebSocket messages received.
    pub messages_in: u64,
    /// WebSocket messages sent.
    pub messages_out: u64,
    /// Bytes sent.
    pub bytes_out: u64,
    /// Checks passed.
    pub checks_passed: u64,
    /// Checks failed.
    pub checks_failed: u64,
    /// Cookies dropped by the jar's limits.
    pub cookies_dropped: u64,
    /// Server-reported metrics (`Server-Timing`), by name.
    pub timings: Timings,
    /// Live steps, when the plan has background flows: latency while a background iteration
    /// was in flight…
    pub during_batch: Option<Box<Hist>>,
    /// …and while none was.
    pub without_batch: Option<Box<Hist>>,
}

/// Records the value `v` `n` times.
fn record_count_n(h: &mut Option<Box<Hist>>, v: u64, n: u64) {
    let h = h.get_or_insert_with(|| Box::new(new_hist()));
    if h.record_n(v, n).is_err() {
        h.saturating_record_n(v, n);
    }
}

impl StepStats {
    fn record(&mut self, s: &RequestSample) {
        self.requests += 1;
        self.retries += s.retry as u64;
        if s.sent {
            record(&mut self.latency, s.latency);
            record(&mut self.service, s.service);
        }
        if let Some(t) = s.ttfb {
            record(&mut self.ttfb, t);
        }
        if let Some(c) = s.connect {
            record(&mut self.connect, c);
        }
        if let Some(t) = s.tls {
            record(&mut self.tls, t);
        }
        if let Some(e) = s.error {
            self.errors[e.index()] += 1;
        }
        if let Some(code) = s.status {
            match self.statuses.iter_mut().find(|(c, _)| *c == code) {
                Some((_, n)) => *n += 1,
                None => self.statuses.push((code, 1)),
            }
        }
        self.bytes_in += s.bytes_in;
        self.bytes_decoded += s.bytes_decoded;
        self.redirects += u64::from(s.redirects);
        self.messages_in += s.messages.0;
        self.messages_out += s.messages.1;
        self.bytes_out += s.bytes_out;
        self.checks_passed += s.checks.0 as u64;
        self.checks_failed += s.checks.1 as u64;
        self.cookies_dropped += s.cookies_dropped as u64;
    }

    /// Adds another's counts into this one.
    pub fn absorb(&mut self, o: StepStats) {
        add_hist(&mut self.latency, o.latency);
        add_hist(&mut self.service, o.service);
        add_hist(&mut self.ttfb, o.ttfb);
        add_hist(&mut self.connect, o.connect);
        add_hist(&mut self.tls, o.tls);
        self.requests += o.requests;
        self.retries += o.retries;
        for (a, b) in self.errors.iter_mut().zip(o.errors) {
            *a += b;
        }
        for (code, n) in o.statuses {
            match self.statuses.iter_mut().find(|(c, _)| *c == code) {
                Some((_, m)) => *m += n,
                None => self.statuses.push((code, n)),
            }
        }
        self.bytes_in += o.bytes_in;
        self.bytes_decoded += o.bytes_decoded;
        self.redirects += o.redirects;
        self.messages_in += o.messages_in;
        self.messages_out += o.messages_out;
        self.bytes_out += o.bytes_out;
        self.checks_passed += o.checks_passed;
        self.checks_failed += o.checks_failed;
        self.cookies_dropped += o.cookies_dropped;
        self.timings.absorb(o.timings);
        add_hist(&mut self.during_batch, o.during_batch);
        add_hist(&mut self.without_batch, o.without_batch);
    }

    /// Failed requests (any class).
    pub fn failed(&self) -> u64 {
        self.errors.iter().sum()
    }
}

/// How an iteration ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IterationOutcome {
    /// Every step succeeded.
    Ok,
    /// A step failed.
    Failed,
    /// Cancelled at the end of the graceful stop (or a second Ctrl-C).
    Interrupted,
}

/// Per-flow counters and histograms.
#[derive(Debug, Clone, Default)]
pub struct FlowStats {
    /// Whole-iteration latency from its due time.
    pub iteration: Option<Box<Hist>>,
    /// The generator's own lateness: how late iterations started after the later of their due
    /// time and the moment a virtual user was free to start them.
    pub lag: Option<Box<Hist>>,
    /// Lateness the target caused: a paced user still busy with an earlier, overrunning
    /// iteration when the next one was due.
    pub target_lag: Option<Box<Hist>>,
    /// The generator's lateness on each user's first iteration (users started together).
    pub startup_lag: Option<Box<Hist>>,
    /// Iterations that completed without failure.
    pub iterations_ok: u64,
    /// Iterations with a failed step.
    pub iterations_failed: u64,
    /// Iterations cut off at the end.
    pub interrupted: u64,
    /// Open-model arrivals that found no free virtual user.
    pub dropped: u64,
    /// Arrivals the schedule called for (open model), dropped ones included.
    pub planned: u64,
    /// Failures outside requests (scripts, feeders), per class.
    pub errors: [u64; ErrorClass::COUNT],
    /// Requests sent per completed iteration (retries included).
    pub requests_per_iteration: Option<Box<Hist>>,
    /// Steps executed per completed iteration.
    pub steps_per_iteration: Option<Box<Hist>>,
    /// Bytes sent and received per completed iteration.
    pub bytes_per_iteration: Option<Box<Hist>>,
    /// Server-reported metrics totalled per iteration (durations in µs per iteration).
    pub iteration_timings: Timings,
    /// Work of iterations not yet in the three histograms above, and own lag (µs) not yet in
    /// `lag`: runs of equal values go in once, with their count. Flushed before any of them is
    /// read: [`Registry::collect`] and every merge flush.
    pending_work: runs::Run<IterationWork>,
    pending_lag: runs::Run<u64>,
}

impl FlowStats {
    fn count_iteration(&mut self, latency: Duration, outcome: IterationOutcome) {
        match outcome {
            IterationOutcome::Ok => self.iterations_ok += 1,
            IterationOutcome::Failed => self.iterations_failed += 1,
            IterationOutcome::Interrupted => self.interrupted += 1,
        }
        if outcome != IterationOutcome::Interrupted {
            record(&mut self.iteration, latency);
        }
    }

    fn add_work(&mut self, work: IterationWork) {
        let ended = self.pending_work.push(work);
        self.record_work(ended);
    }

    fn record_work(&mut self, run: Option<(IterationWork, u64)>) {
        if let Some((w, n)) = run {
            record_count_n(&mut self.requests_per_iteration, w.requests, n);
            record_count_n(&mut self.steps_per_iteration, w.steps, n);
            record_count_n(&mut self.bytes_per_iteration, w.bytes, n);
        }
    }

    fn add_lag(&mut self, lag: Duration) {
        let ended = self.pending_lag.push(micros(lag));
        self.record_lag(ended);
    }

    fn record_lag(&mut self, run: Option<(u64, u64)>) {
        if let Some((us, n)) = run {
            record_count_n(&mut self.lag, us, n);
        }
    }

    fn flush_runs(&mut self) {
        let work = self.pending_work.take();
        self.record_work(work);
        let lag = self.pending_lag.take();
        self.record_lag(lag);
    }

    /// Adds another's counts into this one.
    pub fn absorb(&mut self, mut o: FlowStats) {
        self.flush_runs();
        o.flush_runs();
        add_hist(&mut self.iteration, o.iteration);
        add_hist(&mut self.lag, o.lag);
        add_hist(&mut self.target_lag, o.target_lag);
        add_hist(&mut self.startup_lag, o.startup_lag);
        self.iterations_ok += o.iterations_ok;
        self.iterations_failed += o.iterations_failed;
        self.interrupted += o.interrupted;
        self.dropped += o.dropped;
        self.planned += o.planned;
        for (a, b) in self.errors.iter_mut().zip(o.errors) {
            *a += b;
        }
        add_hist(&mut self.requests_per_iteration, o.requests_per_iteration);
        add_hist(&mut self.steps_per_iteration, o.steps_per_iteration);
        add_hist(&mut self.bytes_per_iteration, o.bytes_per_iteration);
        self.iteration_timings.absorb(o.iteration_timings);
    }

    /// Iterations that ran to an end (ok or failed).
    pub fn iterations(&self) -> u64 {
        self.iterations_ok + self.iterations_failed
    }
}

/// Everything recorded in one interval, or merged over the run.
#[derive(Debug, Clone)]
pub struct Stats {
    /// Per step key.
    pub steps: Vec<StepStats>,
    /// Per flow.
    pub flows: Vec<FlowStats>,
}

impl Stats {
    /// Connections opened (one connect-time sample each) and requests that failed on the
    /// generator's own machine, over every step.
    pub fn connections(&self) -> (u64, u64) {
        self.steps.iter().fold((0, 0), |(c, l), s| {
            (
                c + s.connect.as_ref().map_or(0, |h| h.len()),
                l + s.errors[ErrorClass::Generator.index()],
            )
        })
    }

    /// Empty stats for a key table.
    pub fn new(keys: &KeyTable) -> Stats {
        Stats {
            steps: vec![StepStats::default(); keys.steps],
            flows: vec![FlowStats::default(); keys.flows.len()],
        }
    }

    /// Adds another's counts into this one (same key table), moving its histograms.
    pub fn absorb(&mut self, o: Stats) {
        for (a, b) in self.steps.iter_mut().zip(o.steps) {
            a.absorb(b);
        }
        for (a, b) in self.flows.iter_mut().zip(o.flows) {
            a.absorb(b);
        }
    }
}

/// One recording thread's stats; the collector takes them each interval.
#[derive(Debug)]
struct Shard {
    stats: Mutex<Stats>,
}

/// Live per-flow gauges, read by progress and reports.
#[derive(Debug, Default)]
pub struct FlowGauges {
    /// Virtual users currently running an iteration.
    pub busy_vus: AtomicU64,
    /// Virtual users that exist (busy or idle).
    pub vus: AtomicU64,
    /// Target level right now (arrivals/s or VUs), as `f64` bits.
    pub target: AtomicU64,
}

impl FlowGauges {
    /// Sets the target level.
    pub fn set_target(&self, v: f64) {
        self.target.store(v.to_bits(), Ordering::Relaxed);
    }
    /// The target level.
    pub fn target(&self) -> f64 {
        f64::from_bits(self.target.load(Ordering::Relaxed))
    }
}

/// The run's recorder: shards per thread, plus gauges.
#[derive(Debug)]
pub struct Registry {
    id: u64,
    keys: Arc<KeyTable>,
    shards: Mutex<Vec<Arc<Shard>>>,
    /// Per-flow gauges, by flow index.
    pub gauges: Vec<FlowGauges>,
    /// Background iterations in flight right now (read per live request to split its latency).
    pub background_in_flight: std::sync::atomic::AtomicI64,
    /// Background iterations started so far (with the in-flight count, tells whether any batch
    /// work overlapped a request, not only whether some was running when it ended).
    pub background_started: AtomicU64,
    /// Whether any flow is a background flow (only then is live latency split).
    pub has_background: std::sync::atomic::AtomicBool,
    /// One bit per error class per key (steps, then flows): whether an example is kept.
    example_seen: Vec<std::sync::atomic::AtomicU32>,
    examples: Mutex<Vec<ErrorExample>>,
}

/// The first message seen for an error class on a key, for the report.
#[derive(Debug, Clone)]
pub struct ErrorExample {
    /// `flow.step` or `flow`.
    pub key: String,
    /// The class.
    pub class: ErrorClass,
    /// The message.
    pub message: String,
}

static NEXT_REGISTRY: AtomicU64 = AtomicU64::new(1);

thread_local! {
    // A thread may record for more than one registry (tests run several runs in one process),
    // so it keeps a few (registry id, shard) pairs.
    static LOCAL: RefCell<Vec<(u64, Arc<Shard>)>> = const { RefCell::new(Vec::new()) };
}

fn lock(m: &Mutex<Stats>) -> MutexGuard<'_, Stats> {
    // A panic while holding a shard can only come from a bug in this module; the counters are
    // still consistent enough to report, so keep going.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Registry {
    /// A registry for a key table.
    pub fn new(keys: Arc<KeyTable>) -> Registry {
        let gauges = (0..keys.flows.len())
            .map(|_| FlowGauges::default())
            .collect();
        let n = keys.steps + keys.flows.len();
        Registry {
            id: NEXT_REGISTRY.fetch_add(1, Ordering::Relaxed),
            keys,
            shards: Mutex::new(Vec::new()),
            gauges,
            background_in_flight: std::sync::atomic::AtomicI64::new(0),
            background_started: AtomicU64::new(0),
            has_background: std::sync::atomic::AtomicBool::new(false),
            example_seen: (0..n)
                .map(|_| std::sync::atomic::AtomicU32::new(0))
                .collect(),
            examples: Mutex::new(Vec::new()),
        }
    }

    /// The key table.
    pub fn keys(&self) -> &KeyTable {
        &self.keys
    }

    fn with<R>(&self, f: impl FnOnce(&mut Stats) -> R) -> R {
        LOCAL.with(|local| {
            // The usual case borrows the thread's list and locks its shard in place: cloning
            // the `Arc` out for every record cost two atomic operations each time.
            if let Ok(list) = local.try_borrow()
                && let Some((_, s)) = list.iter().find(|(id, _)| *id == self.id)
            {
                return f(&mut lock(&s.stats));
            }
            let s = Arc::new(Shard {
                stats: Mutex::new(Stats::new(&self.keys)),
            });
            self.shards
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(s.clone());
            if let Ok(mut list) = local.try_borrow_mut() {
                if list.len() >= 8 {
                    list.remove(0);
                }
                list.push((self.id, s.clone()));
            }
            f(&mut lock(&s.stats))
        })
    }

    /// A mark of the batch work at a request's start, for [`Registry::overlapped`]; `None`
    /// when the plan has no background flows (or the request is not live).
    pub fn batch_mark(&self, live: bool) -> Option<(bool, u64)> {
        (live && self.has_background.load(Ordering::Relaxed)).then(|| {
            (
                self.background_in_flight.load(Ordering::Relaxed) > 0,
                self.background_started.load(Ordering::Relaxed),
            )
        })
    }

    /// Whether any background iteration ran at some point since `mark`: one was running then,
    /// one is running now, or one started in between.
    pub fn overlapped(&self, mark: Option<(bool, u64)>) -> Option<bool> {
        let (was_running, started) = mark?;
        Some(
            was_running
                || self.background_in_flight.load(Ordering::Relaxed) > 0
                || self.background_started.load(Ordering::Relaxed) != started,
        )
    }

    /// Records one request of step key `key`; `batch` (from [`Registry::overlapped`]) splits a
    /// live request's latency by whether background work overlapped it.
    pub fn request(&self, key: usize, s: &RequestSample, batch: Option<bool>) {
        self.with(|st| {
            if let Some(k) = st.steps.get_mut(key) {
                k.record(s);
                if let Some(during) = batch.filter(|_| s.sent) {
                    record(
                        if during {
                            &mut k.during_batch
                        } else {
                            &mut k.without_batch
                        },
                        s.latency,
                    );
                }
            }
        });
    }

    /// Records the `Server-Timing` metrics of one response of step key `key`.
    pub fn server_timing(&self, key: usize, metrics: &[crate::http::server_timing::Metric<'_>]) {
        self.with(|st| {
            let Some(k) = st.steps.get_mut(key) else {
                return;
            };
            for m in metrics {
                k.timings
                    .slot(m.name)
                    .report(m.dur_ms, m.count.unwrap_or(0.0), m.absurd);
            }
        });
    }

    /// Records a finished iteration of flow `flow` and its work: requests, steps and bytes,
    /// and per-metric server totals `(name, total ms, total count)`. One lock for both.
    pub fn iteration_with_work(
        &self,
        flow: usize,
        latency: Duration,
        outcome: IterationOutcome,
        work: IterationWork,
        totals: &[(String, f64, f64)],
    ) {
        self.with(|st| {
            let Some(f) = st.flows.get_mut(flow) else {
                return;
            };
            f.count_iteration(latency, outcome);
            f.add_work(work);
            for (name, ms, count) in totals {
                f.iteration_timings
                    .slot(name)
                    .report(Some(*ms), *count, false);
            }
        });
    }

    /// Records a finished iteration of flow `flow`.
    pub fn iteration(&self, flow: usize, latency: Duration, outcome: IterationOutcome) {
        self.with(|st| {
            if let Some(f) = st.flows.get_mut(flow) {
                f.count_iteration(latency, outcome);
            }
        });
    }

    /// Counts a planned iteration that failed before it could start (its user could not be
    /// made): failed, but not timed, since nothing ran.
    pub fn iteration_not_run(&self, flow: usize) {
        self.with(|st| {
            if let Some(f) = st.flows.get_mut(flow) {
                f.iterations_failed += 1;
            }
        });
    }

    /// Records how late an iteration started: `own` is the generator's lateness; `target`, any
    /// lateness the target caused (the user was still busy when it was due); `first`, whether it
    /// is a user's first iteration (its own lateness then counts as start-up).
    pub fn lag(&self, flow: usize, own: Duration, target: Duration, first: bool) {
        self.with(|st| {
            if let Some(f) = st.flows.get_mut(flow) {
                if first {
                    record(&mut f.startup_lag, own);
                } else {
                    f.add_lag(own);
                }
                if !target.is_zero() {
                    record(&mut f.target_lag, target);
                }
            }
        });
    }

    /// Counts planned arrivals of an open flow, and how many of them were dropped.
    pub fn arrivals(&self, flow: usize, planned: u64, dropped: u64) {
        self.with(|st| {
            if let Some(f) = st.flows.get_mut(flow) {
                f.planned += planned;
                f.dropped += dropped;
            }
        });
    }

    /// Keeps `message()` as the example for `class` on step key `key` (or flow `key - steps` for
    /// keys past the steps) unless one is kept already; the check is one atomic load.
    pub fn example(&self, key: usize, class: ErrorClass, message: impl FnOnce() -> String) {
        let Some(seen) = self.example_seen.get(key) else {
            return;
        };
        let bit = 1u32 << class.index();
        if seen.load(Ordering::Relaxed) & bit != 0
            || seen.fetch_or(bit, Ordering::Relaxed) & bit != 0
        {
            return;
        }
        let name = if key < self.keys.steps {
            self.keys.step_name(key)
        } else {
            self.keys
                .flows
                .get(key - self.keys.steps)
                .map_or_else(String::new, |f| f.name.clone())
        };
        self.examples
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(ErrorExample {
                key: name,
                class,
                // Clipped after the caller masked it, so no secret is cut in half.
                message: crate::secret::clip(message()),
            });
    }

    /// The kept error examples.
    pub fn examples(&self) -> Vec<ErrorExample> {
        self.examples
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Counts a failure outside any request (script, feeder) on flow `flow`.
    pub fn flow_error(&self, flow: usize, class: ErrorClass) {
        self.with(|st| {
            if let Some(f) = st.flows.get_mut(flow) {
                f.errors[class.index()] += 1;
            }
        });
    }

    /// Takes everything recorded since the last call, merged across shards.
    pub fn collect(&self) -> Stats {
        let shards: Vec<Arc<Shard>> = self
            .shards
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut out = Stats::new(&self.keys);
        for s in shards {
            let taken = {
                let mut g = lock(&s.stats);
                std::mem::replace(&mut *g, Stats::new(&self.keys))
            };
            out.absorb(taken);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Arc<KeyTable> {
        Arc::new(KeyTable {
            flows: vec![FlowKeys {
                name: "f".into(),
                steps: vec!["a".into(), "b".into()],
                base: 0,
            }],
            steps: 2,
        })
    }

    fn sample(ms: u64) -> RequestSample {
        RequestSample {
            latency: Duration::from_millis(ms),
            service: Duration::from_millis(ms / 2),
            ttfb: None,
            connect: None,
            tls: None,
            status: Some(200),
            error: None,
            bytes_in: 10,
            bytes_decoded: 10,
            bytes_out: 5,
            retry: false,
            checks: (1, 0),
            cookies_dropped: 0,
            sent: true,
            ..RequestSample::default()
        }
    }

    #[test]
    fn merging_threads_equals_recording_in_one() {
        let reg = Arc::new(Registry::new(keys()));
        let mut single = StepStats::default();
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let reg = reg.clone();
                std::thread::spawn(move || {
                    for i in 0..1000u64 {
                        reg.request(1, &sample(1 + (i * 7 + t) % 900), None);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        for t in 0..4u64 {
            for i in 0..1000u64 {
                single.record(&sample(1 + (i * 7 + t) % 900));
            }
        }
        let merged = reg.collect();
        let (m, s) = (
            merged.steps[1].latency.as_ref().unwrap(),
            single.latency.as_ref().unwrap(),
        );
        assert_eq!(m.len(), 4000);
        for q in [0.5, 0.9, 0.99, 0.999, 1.0] {
            assert_eq!(m.value_at_quantile(q), s.value_at_quantile(q));
        }
        assert_eq!(merged.steps[1].statuses, vec![(200, 4000)]);
        // Collecting takes: the next interval starts empty.
        assert_eq!(reg.collect().steps[1].requests, 0);
    }

    #[test]
    fn runs_of_equal_work_are_counted_once_each_and_none_is_lost_at_a_collect() {
        let reg = Registry::new(keys());
        let work = |requests| IterationWork {
            requests,
            steps: 2,
            bytes: 100 * requests,
        };
        let ms = Duration::from_millis(3);
        for r in [1, 1, 1, 3, 1] {
            reg.iteration_with_work(0, ms, IterationOutcome::Ok, work(r), &[]);
        }
        let first = reg.collect();
        // The last run (one iteration of 1 request) was still pending when collected.
        reg.iteration_with_work(0, ms, IterationOutcome::Ok, work(1), &[]);
        let second = reg.collect();
        let f = &first.flows[0];
        let requests = f.requests_per_iteration.as_deref().unwrap();
        assert_eq!(
            (requests.len(), requests.count_at(1), requests.count_at(3)),
            (5, 4, 1)
        );
        assert_eq!(f.steps_per_iteration.as_deref().unwrap().count_at(2), 5);
        assert_eq!(f.bytes_per_iteration.as_deref().unwrap().count_at(300), 1);
        let requests = second.flows[0].requests_per_iteration.as_deref().unwrap();
        assert_eq!((requests.len(), requests.count_at(1)), (1, 1));
    }

    #[test]
    fn runs_of_equal_lag_are_all_counted_by_a_collect() {
        let reg = Registry::new(keys());
        for us in [0, 0, 0, 7] {
            reg.lag(0, Duration::from_micros(us), Duration::ZERO, false);
        }
        let first = reg.collect();
        reg.lag(0, Duration::ZERO, Duration::ZERO, false);
        let lag = first.flows[0].lag.as_deref().unwrap();
        // A lag of zero is kept as 1 µs, the histograms' least value.
        assert_eq!((lag.len(), lag.count_at(1), lag.count_at(7)), (4, 3, 1));
        assert_eq!(reg.collect().flows[0].lag.as_deref().unwrap().len(), 1);
    }

    #[test]
    fn idle_keys_allocate_no_histograms() {
        let reg = Registry::new(keys());
        reg.request(0, &sample(5), None);
        let st = reg.collect();
        assert!(st.steps[0].latency.is_some());
        assert!(st.steps[1].latency.is_none());
    }
}
