//! Orchestration of one run: start the collector and every flow on one clock, end the load, give
//! in-flight iterations their graceful stop, handle Ctrl-C and SIGTERM, and assemble the result.
//!
//! The collector is a plain OS thread rather than a task: it does blocking file I/O (the interval
//! log) once per interval and must keep ticking even when the runtime's workers are saturated.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use tokio::task::JoinSet;

use crate::analysis::threshold::verdicts;
use crate::http::Client;
use crate::journey::FlowCtx;
use crate::metrics::{KeyTable, Registry};
use crate::model::RunResult;
use crate::report::hlog::HlogWriter;
use crate::report::progress::Progress;
use crate::scenario::Plan;
use crate::scenario::plan::FlowKind;
use crate::schedule::{ControlHandle, run_flow, run_hook};

mod assemble;
mod collector;
pub mod live;
mod memory;
mod merge;
mod outdir;

use assemble::{Span, assemble};
use collector::{Collector, CollectorOut};

pub use memory::{available_memory_bytes, estimated_memory_bytes, histogram_bytes};
pub use merge::{MergeError, Merged, merge};
pub use outdir::{LOCK_FILE, OutLock, estimated_output_bytes, prepare_out};

/// The shortest measurement interval: each interval costs a histogram per active key and a line
/// per key in the interval log, so a microsecond interval would allocate without bound.
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Where result files go (`None`: terminal only).
    pub out: Option<PathBuf>,
    /// Show live progress.
    pub progress: bool,
    /// Collector interval (raised to [`MIN_INTERVAL`] if shorter).
    pub interval: Duration,
    /// Leave the intervals that end within this long after the start out of every total (a
    /// steady level's warm-up: connections, caches, JIT). Their interval rows are kept.
    pub warmup: Duration,
    /// Start the schedule at this wall-clock instant (`--start-at`): the segments of a split
    /// run all do, so their arrivals are due on one clock and their intervals line up.
    pub start_at: Option<SystemTime>,
    /// The run's id (`--run-id`); by default made from the scenario digest and `start_at`, so
    /// every segment of a split run gets the same one without being told.
    pub run_id: Option<String>,
    /// Live metrics to keep up to date (`--metrics-listen`), shared by the process's runs.
    pub live: Option<Arc<live::Live>>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            out: None,
            progress: false,
            interval: Duration::from_secs(1),
            warmup: Duration::ZERO,
            start_at: None,
            run_id: None,
            live: None,
        }
    }
}

/// A run-fatal problem (the run did not happen or its files could not be written).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The output folder is missing and cannot be created, or is not writable.
    #[error("cannot write results to `{path}`: {source}")]
    OutDir {
        /// The folder.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The output folder's file system has too little free space for the run's results.
    #[error(
        "not enough disk space for results in {}: {} MiB free, the run needs about {} MiB\n  hint: free some space, choose another --out, or shorten the run",
        path.display(), free >> 20, needed.div_ceil(1 << 20)
    )]
    DiskFull {
        /// The folder.
        path: PathBuf,
        /// Bytes available to this user.
        free: u64,
        /// Bytes the run needs (estimated).
        needed: u64,
    },
    /// Another stampede process is writing results into the same folder.
    #[error(
        "`{}` is in use by another stampede run{}: two runs in one folder would overwrite each other's results\n  hint: wait for it to finish, or choose another --out",
        path.display(), pid.map_or_else(String::new, |p| format!(" (process {p})"))
    )]
    OutInUse {
        /// The folder.
        path: PathBuf,
        /// The other process, when it wrote its id.
        pid: Option<u32>,
    },
    /// The async runtime could not start.
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
}

/// What a run produced.
#[derive(Debug)]
pub struct RunOutcome {
    /// The results.
    pub result: RunResult,
    /// Problems writing result files during or after the run (the results are still complete).
    pub write_errors: Vec<String>,
    /// The output folder's lock, held until the end-of-run files are written (dropped with this).
    pub out_lock: Option<OutLock>,
}

/// Runs a plan to completion on a new runtime: multi-threaded with a worker per CPU, or, when
/// the process may use one CPU only (`taskset`, a container's CPU set), a single-threaded one,
/// so that no wake-up crosses threads (a third less CPU per request on one core).
pub fn run(plan: Plan, opts: &RunOptions) -> Result<RunOutcome, RunError> {
    let opts = &RunOptions {
        interval: opts.interval.max(MIN_INTERVAL),
        ..opts.clone()
    };
    let out_lock = match &opts.out {
        Some(out) => Some(prepare_out(
            out,
            estimated_output_bytes(&plan, opts.interval),
        )?),
        None => None,
    };
    reserve_descriptors(plan.sockets_needed() + plan.timers_needed() + SPARE_FILES);
    let one_cpu = std::thread::available_parallelism().is_ok_and(|n| n.get() == 1);
    let rt = if one_cpu {
        crate::timer::tighten_slack();
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .on_thread_start(crate::timer::tighten_slack)
            .build()
    }
    .map_err(RunError::Runtime)?;
    let mut outcome = rt.block_on(execute(Arc::new(plan), opts.clone()));
    outcome.out_lock = out_lock;
    // In-flight connection tasks may linger; do not wait for them.
    rt.shutdown_timeout(Duration::from_millis(100));
    Ok(outcome)
}

/// Files the process keeps open besides sockets (result files, the runtime, the terminal).
pub const SPARE_FILES: u64 = 64;

/// Grows the process's file-descriptor table to hold `n` descriptors, before any thread starts.
///
/// Linux grows the table by doubling when a new descriptor does not fit, and in a process with
/// more than one thread each growth waits for an RCU grace period: measured at 12-18 ms per
/// growth on a 2-vCPU VM, inside the `socket()` call of whichever user was connecting. At
/// 20,000 arrivals/s that stall made every user busy, the new users' connects grew the table
/// again, and the cascade dropped arrivals. Growing it once here, while the process has one
/// thread, costs no grace period (the table never shrinks). Best effort: a failure only means
/// the table grows later, as it would have anyway.
fn reserve_descriptors(n: u64) {
    let limit = rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft);
    let highest = n.min(limit).saturating_sub(1);
    let Ok(highest) = i32::try_from(highest) else {
        return;
    };
    if let Ok(null) = std::fs::File::open("/dev/null") {
        // The duplicate is closed again at once; the grown table stays.
        let _ = rustix::io::fcntl_dupfd_cloexec(&null, highest);
    }
}

/// Runs a plan on the current runtime.
pub async fn execute(plan: Arc<Plan>, opts: RunOptions) -> RunOutcome {
    let keys = Arc::new(KeyTable::from_plan(&plan));
    let registry = Arc::new(Registry::new(keys.clone()));
    let batch = plan.flows.iter().any(|f| f.kind == FlowKind::Background);
    registry
        .has_background
        .store(batch, std::sync::atomic::Ordering::Relaxed);
    let client = Client::new(&plan.settings);
    let prebuilt = Arc::new(crate::journey::Prebuilt::new(keys.steps));
    let hook_ctx = |i: usize| FlowCtx {
        prebuilt: prebuilt.clone(),
        plan: plan.clone(),
        client: client.clone(),
        registry: registry.clone(),
        flow: i,
        key_base: keys.flows[i].base,
    };
    // Setup runs before the load's clock starts, so a slow setup delays no arrival. Ctrl-C
    // during it ends the run before any load.
    let mut signals = Signals::new();
    let mut interrupted = false;
    let mut setup_failed: Option<String> = None;
    let phase = |p: live::Phase| {
        if let Some(l) = &opts.live {
            l.set_phase(p);
        }
    };
    phase(live::Phase::Starting);
    if let Some(i) = plan.hook(FlowKind::Setup) {
        phase(live::Phase::Setup);
        let done = tokio::select! {
            vu = run_hook(hook_ctx(i)) => Ok(vu),
            _ = signals.next() => Err(()),
        };
        match done {
            Err(()) => {
                interrupted = true;
                setup_failed = Some("interrupted during setup".into());
            }
            Ok(Some(vu)) => {
                let _ = plan.shared.set(shared_variables(&vu));
            }
            Ok(None) => {
                let why = registry
                    .examples()
                    .into_iter()
                    .find(|e| e.key == "setup" || e.key.starts_with("setup."))
                    .map_or_else(
                        || "it failed".to_string(),
                        |e| format!("{}: {}", e.key, e.message),
                    );
                setup_failed = Some(why);
            }
        }
    }
    let RunClock {
        t0,
        wall_t0,
        began,
        late,
    } = run_clock(opts.start_at);
    announce_start(&plan, opts.start_at, t0, late);
    let mut write_errors = Vec::new();

    let hlog = match &opts.out {
        Some(dir) => match HlogWriter::create(&dir.join("intervals.hlog"), wall_t0) {
            Ok(w) => Some(w),
            Err(e) => {
                write_errors.push(format!("cannot create intervals.hlog: {e}"));
                None
            }
        },
        None => None,
    };
    let progress = opts.progress.then(|| {
        Progress::new(
            &plan
                .flows
                .iter()
                .map(|f| f.name.clone())
                .collect::<Vec<_>>(),
        )
    });
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let (abort_tx, mut abort_rx) = tokio::sync::watch::channel::<Option<String>>(None);
    let collector = {
        let c = Collector {
            registry: registry.clone(),
            plan: plan.clone(),
            keys: keys.clone(),
            t0,
            wall_t0,
            interval: opts.interval,
            warmup: opts.warmup,
            hlog,
            progress,
            stop: stop_rx,
            abort: abort_tx,
            metrics: opts.live.clone(),
        };
        std::thread::Builder::new()
            .name("stampede-collector".into())
            .spawn(move || c.run())
    };

    // Measured from the schedule's start: a wait for --start-at idles the runtime, and counting
    // it would dilute a saturated load below the limit.
    let mut busy = WorkerBusy::start();
    let mut busy_from_t0 = t0 > Instant::now();
    phase(if busy_from_t0 {
        live::Phase::Starting
    } else {
        live::Phase::Load
    });
    // The generator's CPU is judged over the load: the graceful stop's wait for slow answers
    // idles the runtime, and counting it would hide a generator that was saturated throughout.
    let mut busy_at_load_end: Option<(Instant, Duration)> = None;
    let (handle, control) = ControlHandle::new();
    let mut flows = JoinSet::new();
    let mut ends = vec![crate::schedule::FlowEnd::default(); plan.flows.len()];
    for (i, f) in plan.flows.iter().enumerate() {
        if !f.is_load() || setup_failed.is_some() {
            continue;
        }
        let ctx = FlowCtx {
            prebuilt: prebuilt.clone(),
            plan: plan.clone(),
            client: client.clone(),
            registry: registry.clone(),
            flow: i,
            key_base: keys.flows[i].base,
        };
        let start = t0 + f.start;
        let control = control.clone();
        flows.spawn(async move { (i, run_flow(ctx, start, began, control).await) });
    }

    let load_end = tokio::time::Instant::from_std(t0 + plan.load_length());
    let graceful = plan.settings.graceful_stop;
    let mut cancel_at: Option<tokio::time::Instant> = None;
    let mut load_ended = false;
    let mut hard_stop = false;
    let mut aborted: Option<String> = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(t0)), if busy_from_t0 => {
                busy = WorkerBusy::start();
                busy_from_t0 = false;
                phase(live::Phase::Load);
            }
            changed = abort_rx.changed(), if aborted.is_none() => {
                let reason = if changed.is_ok() { abort_rx.borrow().clone() } else { None };
                if let Some(reason) = reason {
                    eprintln!("\nstampede: {reason}; stopping the run");
                    aborted = Some(reason);
                    handle.stop();
                    phase(live::Phase::Stopping);
                    let at = tokio::time::Instant::now() + graceful;
                    cancel_at = Some(cancel_at.map_or(at, |c| c.min(at)));
                }
            }
            r = flows.join_next() => match r {
                None => break,
                Some(Ok((i, end))) => ends[i] = end,
                // A flow task that panicked has lost its fit; its counts are in the registry.
                Some(Err(_)) => {}
            },
            _ = tokio::time::sleep_until(load_end), if !load_ended => {
                load_ended = true;
                phase(live::Phase::Stopping);
                busy_at_load_end.get_or_insert_with(|| busy.snapshot());
                handle.stop();
                cancel_at.get_or_insert(tokio::time::Instant::now() + graceful);
            }
            _ = sleep_opt(cancel_at) => handle.cancel(),
            _ = signals.next() => {
                if interrupted {
                    hard_stop = true;
                    handle.cancel();
                } else {
                    interrupted = true;
                    busy_at_load_end.get_or_insert_with(|| busy.snapshot());
                    phase(live::Phase::Stopping);
                    eprintln!("\nstampede: stopping (in-flight iterations get {graceful:?}; press Ctrl-C again to stop at once)");
                    handle.stop();
                    let at = tokio::time::Instant::now() + graceful;
                    cancel_at = Some(cancel_at.map_or(at, |c| c.min(at)));
                }
            }
        }
    }
    // The load is over: its length and the generator's CPU are taken here, so a slow
    // teardown changes neither.
    let load_done = Instant::now();
    busy_at_load_end.get_or_insert_with(|| busy.snapshot());
    // Teardown runs after the load, when setup succeeded, even after one Ctrl-C (it cleans up);
    // a second Ctrl-C (or one during teardown) stops it.
    if setup_failed.is_none()
        && !hard_stop
        && let Some(i) = plan.hook(FlowKind::Teardown)
    {
        phase(live::Phase::Teardown);
        tokio::select! {
            _ = run_hook(hook_ctx(i)) => {}
            _ = signals.next() => eprintln!("\nstampede: teardown interrupted"),
        }
    }
    let _ = stop_tx.send(());
    let collected = match collector {
        Ok(h) => h.join().ok(),
        Err(e) => {
            write_errors.push(format!("collector thread did not start: {e}"));
            None
        }
    };
    // After the collector folded its last interval in.
    phase(live::Phase::Done);
    let collected = collected.unwrap_or_else(|| CollectorOut {
        cumulative: registry.collect(),
        rows: Vec::new(),
        error: None,
        peak_connects_per_s: 0.0,
        warmup: Duration::ZERO,
    });
    if let Some(e) = collected.error {
        write_errors.push(e);
    }
    let elapsed = load_done.saturating_duration_since(t0).as_secs_f64();
    let (connections_opened, local_failures) = collected.cumulative.connections();
    let mut result = assemble(
        &plan,
        &keys,
        &registry,
        collected.cumulative,
        collected.rows,
        &ends,
        Span {
            wall_t0,
            elapsed,
            interrupted,
            interval: opts.interval,
            warmup: collected.warmup.as_secs_f64(),
        },
    );
    result.generator = busy.finish(busy_at_load_end).map(|mut g| {
        g.connections_opened = connections_opened;
        g.local_failures = local_failures;
        g.peak_connections_per_s = collected.peak_connects_per_s;
        g.local_ports = local_port_range();
        g
    });
    // Who and when first: the self-checks name a late segment.
    result.run_id = opts
        .run_id
        .clone()
        .unwrap_or_else(|| run_id(&plan.digest, opts.start_at));
    result.start_at_unix_ms = opts.start_at.map(unix_ms);
    result.start_late_ms = opts.start_at.map(|_| late.as_secs_f64() * 1000.0);
    result.db_load = crate::analysis::load::db_load(&result.flows);
    result.trends = crate::analysis::trend::trends(&result);
    result.thresholds = verdicts(&plan.thresholds, plan.settings.checks_gate, &result);
    result.self_checks = crate::analysis::selfcheck::checks(&result);
    result.aborted = aborted;
    if let Some(why) = setup_failed {
        result.thresholds.push(crate::model::Verdict {
            pattern: "setup".into(),
            key: "setup".into(),
            threshold: "setup succeeds".into(),
            observed: why.clone(),
            observed_value: None,
            limit: "-".into(),
            passed: false,
            note: Some("no load was sent".into()),
        });
        result.aborted = Some(format!("setup failed, so no load was sent ({why})"));
    }
    RunOutcome {
        result,
        write_errors,
        out_lock: None,
    }
}

/// When the schedule starts, on the monotonic clock (`t0`) and the wall clock.
struct RunClock {
    t0: Instant,
    wall_t0: SystemTime,
    /// When the process really began, when that was after `t0` (a late segment).
    began: Option<Instant>,
    /// How late it began.
    late: Duration,
}

/// The run's clock. Without `start_at` the schedule starts at once (after a moment to spawn the
/// flows). With it, that wall-clock instant is mapped to the monotonic clock once, and every
/// due time follows from it; a process that gets there late keeps the shared schedule rather
/// than shifting it, and what fell due before it began is missed (MEASUREMENT.md §4.4).
fn run_clock(start_at: Option<SystemTime>) -> RunClock {
    let (now, wall) = (Instant::now(), SystemTime::now());
    let Some(at) = start_at else {
        let delay = Duration::from_millis(20);
        return RunClock {
            t0: now + delay,
            wall_t0: wall + delay,
            began: None,
            late: Duration::ZERO,
        };
    };
    match at.duration_since(wall) {
        Ok(ahead) => RunClock {
            t0: now + ahead,
            wall_t0: at,
            began: None,
            late: Duration::ZERO,
        },
        Err(e) => {
            let late = e.duration();
            RunClock {
                t0: now.checked_sub(late).unwrap_or(now),
                wall_t0: at,
                began: Some(now),
                late,
            }
        }
    }
}

/// Says on stderr how long a run waits for `--start-at`, or how late it began.
fn announce_start(plan: &Plan, start_at: Option<SystemTime>, t0: Instant, late: Duration) {
    if start_at.is_none() {
        return;
    }
    let who = if plan.segment.is_whole() {
        "the run".to_string()
    } else {
        format!("segment {}", plan.segment)
    };
    if !late.is_zero() {
        eprintln!(
            "stampede: {who} began {} after --start-at: arrivals due before now are counted as missed (and dropped)",
            crate::units::short_duration(late)
        );
    } else {
        let wait = t0.saturating_duration_since(Instant::now());
        if wait >= Duration::from_secs(1) {
            eprintln!(
                "stampede: {who} waits {} for --start-at",
                crate::units::short_duration(wait)
            );
        }
    }
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A run id: for a run with `--start-at`, made from the scenario digest and that instant, so the
/// segments of one split run agree on it; otherwise random.
fn run_id(digest: &str, start_at: Option<SystemTime>) -> String {
    match start_at {
        Some(at) => {
            use sha2::{Digest as _, Sha256};
            let h = Sha256::digest(format!("{digest}@{}", unix_ms(at)).as_bytes());
            hex::encode(&h[..8])
        }
        None => uuid::Uuid::new_v4().simple().to_string()[..16].to_string(),
    }
}

/// What setup leaves for every user: its variables, without the per-user built-ins and without
/// names it never set.
fn shared_variables(
    vu: &crate::journey::VirtualUser,
) -> Vec<(rhai::ImmutableString, rhai::Dynamic)> {
    let mut out: Vec<(rhai::ImmutableString, rhai::Dynamic)> = Vec::new();
    for (name, _, value) in vu.scope.iter_raw() {
        if ["vu", "flow", "iteration"].contains(&name) || value.is_unit() {
            continue;
        }
        out.retain(|(n, _)| n.as_str() != name);
        out.push((name.into(), value.clone()));
    }
    out
}

/// The number of ephemeral ports this machine hands out for outgoing connections (Linux).
fn local_port_range() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut it = text.split_whitespace().map(|n| n.parse::<u64>().ok());
    let (lo, hi) = (it.next()??, it.next()??);
    (hi >= lo).then(|| hi - lo + 1)
}

/// How busy the run's runtime workers were, from tokio's per-worker busy time.
struct WorkerBusy {
    metrics: tokio::runtime::RuntimeMetrics,
    start: Instant,
    busy: Duration,
}

impl WorkerBusy {
    fn start() -> WorkerBusy {
        let metrics = tokio::runtime::Handle::current().metrics();
        let busy = Self::total(&metrics);
        WorkerBusy {
            metrics,
            start: Instant::now(),
            busy,
        }
    }

    fn total(m: &tokio::runtime::RuntimeMetrics) -> Duration {
        (0..m.num_workers())
            .map(|w| m.worker_total_busy_duration(w))
            .sum()
    }

    /// Now, and the workers' busy time so far.
    fn snapshot(&self) -> (Instant, Duration) {
        (Instant::now(), Self::total(&self.metrics))
    }

    /// The share of the workers' time they were busy, from the start to `until` (a snapshot at
    /// the load's end) or to now.
    fn finish(&self, until: Option<(Instant, Duration)>) -> Option<crate::model::Generator> {
        let (end, busy) = until.unwrap_or_else(|| self.snapshot());
        let workers = self.metrics.num_workers();
        let wall = end.saturating_duration_since(self.start).as_secs_f64() * workers as f64;
        (wall > 0.0).then(|| crate::model::Generator {
            workers,
            busy_share: (busy.saturating_sub(self.busy).as_secs_f64() / wall).min(1.0),
            ..Default::default()
        })
    }
}

async fn sleep_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// SIGINT and SIGTERM as one stream.
struct Signals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn new() -> Signals {
        Signals {
            #[cfg(unix)]
            term: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok(),
        }
    }

    async fn next(&mut self) {
        #[cfg(unix)]
        {
            let term = async {
                match &mut self.term {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                r = tokio::signal::ctrl_c() => if r.is_err() { std::future::pending::<()>().await },
                _ = term => {}
            }
        }
        #[cfg(not(unix))]
        {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Slots in this process's descriptor table, from `/proc/self/status`.
    fn fd_slots() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("FDSize:")).unwrap();
        line["FDSize:".len()..].trim().parse().unwrap()
    }

    #[test]
    fn reserving_descriptors_grows_the_table() {
        let limit = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap().0;
        let before = fd_slots();
        let want = (before * 4).min(limit);
        assert!(
            want > before,
            "the open-file limit {limit} leaves no room to test"
        );
        reserve_descriptors(want);
        assert!(fd_slots() >= want, "{} slots, wanted {want}", fd_slots());
    }
}
