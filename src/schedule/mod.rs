//! When iterations start: one executor per flow, each on its own curve, all on one run clock.
//!
//! The load models are a closed set, so they are an enum ([`LoadModel`]) dispatched here rather
//! than a trait. Both executors share the stop protocol in [`Control`]: `stop` ends the load (no
//! new iterations; in-flight ones go on), `cancel` aborts in-flight iterations, which are counted
//! as interrupted.

pub mod closed;
pub mod open;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::journey::{FlowCtx, Place, VuError, fail};
use crate::metrics::IterationOutcome;
use crate::scenario::plan::LoadModel;

/// Stop signals shared by the run and its executors.
#[derive(Debug, Clone)]
pub struct Control {
    stop: watch::Receiver<bool>,
    cancel: watch::Receiver<bool>,
    /// `stop`'s value as one load: every user asks before every iteration, and reading the
    /// channel takes its lock.
    stopped: Arc<AtomicBool>,
}

/// The sending side of [`Control`].
#[derive(Debug)]
pub struct ControlHandle {
    stop: watch::Sender<bool>,
    cancel: watch::Sender<bool>,
    stopped: Arc<AtomicBool>,
}

impl ControlHandle {
    /// A new pair.
    pub fn new() -> (ControlHandle, Control) {
        let (stop_tx, stop) = watch::channel(false);
        let (cancel_tx, cancel) = watch::channel(false);
        let stopped = Arc::new(AtomicBool::new(false));
        (
            ControlHandle {
                stop: stop_tx,
                cancel: cancel_tx,
                stopped: stopped.clone(),
            },
            Control {
                stop,
                cancel,
                stopped,
            },
        )
    }
    /// Ends the load: no new iterations start.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        let _ = self.stop.send(true);
    }
    /// Aborts in-flight iterations (and stops the load).
    pub fn cancel(&self) {
        self.stop();
        let _ = self.cancel.send(true);
    }
}

impl Control {
    /// True once the load was stopped.
    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }
    /// Resolves when the load is stopped.
    pub async fn stopped(&mut self) {
        let _ = self.stop.wait_for(|s| *s).await;
    }
    /// Resolves when in-flight work must be abandoned.
    pub async fn cancelled(&mut self) {
        let _ = self.cancel.wait_for(|c| *c).await;
    }
}

/// What an executor reports when its flow ends, beside what it recorded.
#[derive(Debug, Clone, Default)]
pub struct FlowEnd {
    /// Poisson flows: the arrivals dispatched per bin of [`POISSON_BIN`](crate::model::POISSON_BIN) expected arrivals of
    /// the whole flow (unit-rate time), the last bin partial; empty otherwise.
    pub arrival_bins: Vec<u32>,
    /// Arrivals due before the process began its schedule (a split run's segment that started
    /// after `--start-at`); they are counted as dropped as well.
    pub missed: u64,
}

/// Runs one flow's executor from `flow_start` until its load ends and its iterations finish (or
/// are cancelled). `began` is when the process really began its schedule when that was after the
/// run's start (a late segment): an open flow's arrivals due before it are missed, not sent in a
/// burst.
pub async fn run_flow(
    ctx: FlowCtx,
    flow_start: Instant,
    began: Option<Instant>,
    control: Control,
) -> FlowEnd {
    let model = ctx.plan.flows[ctx.flow].model.clone();
    match model {
        LoadModel::Open(o) => open::run(ctx, o, (flow_start, began), control).await,
        LoadModel::Closed(c) => {
            closed::run(ctx, c, flow_start, control).await;
            FlowEnd::default()
        }
    }
}

/// Runs the flow's journey once, as its one user, now: the `setup` and `teardown` journeys. The
/// user comes back when the iteration succeeded (setup hands its variables to every user).
pub async fn run_hook(ctx: FlowCtx) -> Option<crate::journey::VirtualUser> {
    let mut vu = match crate::journey::VirtualUser::new(&ctx.plan, ctx.flow, 1) {
        Ok(vu) => vu,
        Err(e) => {
            report_vu_error(&ctx, &e);
            ctx.registry.iteration_not_run(ctx.flow);
            return None;
        }
    };
    let ended = crate::journey::run_iteration(&mut vu, &ctx, Instant::now()).await;
    (ended.outcome == IterationOutcome::Ok).then_some(vu)
}

/// Waits for in-flight iterations until they end or the run cancels them, then counts those
/// cancelled as interrupted. `busy` counts the flow's iterations in flight: one is added when an
/// iteration is handed out (by an open flow's dispatcher as it sends the arrival, by a closed user
/// as it starts) and taken away in the same poll that records the iteration's end. It is read only
/// once every task is gone, so an iteration that ends while the cancel runs (on another worker
/// thread, or in a task finished but not yet joined) is counted once, as ended.
async fn finish(ctx: &FlowCtx, tasks: &mut JoinSet<()>, busy: &AtomicU64, control: &mut Control) {
    loop {
        tokio::select! {
            r = tasks.join_next() => if r.is_none() { break },
            _ = control.cancelled() => {
                tasks.abort_all();
                while tasks.join_next().await.is_some() {}
                for _ in 0..busy.load(Ordering::Relaxed) {
                    ctx.registry.iteration(ctx.flow, Duration::ZERO, IterationOutcome::Interrupted);
                }
                break;
            }
        }
    }
    let g = &ctx.registry.gauges[ctx.flow];
    g.busy_vus.store(0, Ordering::Relaxed);
}

/// Counts a user that could not be made (its error is masked already) as a failure of the flow.
fn report_vu_error(ctx: &FlowCtx, e: &VuError) {
    fail(ctx, None, Place::Flow, e.class, || e.to_string());
}
