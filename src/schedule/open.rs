//! The open model: arrivals on a rate curve, independent of how fast the target answers.
//!
//! Arrival n is due at `flow_start + curve.time_of(x_n)` (see [`curve`](super::curve)), computed
//! from the run clock, so a late wake-up never shifts later arrivals. Tokio's timer has a 1 ms
//! resolution, so each wake-up starts every arrival already due (a batch) rather than sleeping per
//! arrival. An arrival that finds no idle virtual user and no room to create one (`max_vus`) is
//! counted as dropped, never queued: queueing would hide the target's slowness.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rand::SeedableRng;
use rand::rngs::SmallRng;
use rand_distr::{Distribution, Exp1};
use tokio::task::JoinSet;

use super::Control;
use crate::journey::{FlowCtx, VirtualUser, run_iteration};
use crate::metrics::IterationOutcome;
use crate::scenario::plan::{Arrivals, Open};

/// Runs an open-model flow.
pub async fn run(ctx: FlowCtx, open: Open, flow_start: Instant, mut control: Control) {
    let pool: Arc<Mutex<Vec<VirtualUser>>> = Arc::new(Mutex::new(Vec::new()));
    let mut tasks: JoinSet<()> = JoinSet::new();
    let mut created: u64 = 0;
    let mut rng = SmallRng::seed_from_u64(ctx.plan.flows[ctx.flow].seed);
    let mut x = 0.0f64;
    let gauges = &ctx.registry.gauges[ctx.flow];
    let mut next = open.curve.time_of(x);
    'load: while let Some(t) = next {
        let due = flow_start + std::time::Duration::from_secs_f64(t);
        if due > Instant::now() {
            tokio::select! {
                _ = tokio::time::sleep_until(tokio::time::Instant::from_std(due)) => {}
                _ = control.stopped() => break 'load,
            }
        }
        if control.is_stopped() {
            break;
        }
        let now = Instant::now();
        let (mut planned, mut dropped) = (0u64, 0u64);
        while let Some(t) = next {
            let due = flow_start + std::time::Duration::from_secs_f64(t);
            if due > now {
                break;
            }
            planned += 1;
            x += match open.arrivals {
                Arrivals::Uniform => 1.0,
                Arrivals::Poisson => Exp1.sample(&mut rng),
            };
            next = open.curve.time_of(x);
            let vu = pool.lock().unwrap_or_else(|p| p.into_inner()).pop();
            let vu = match vu {
                Some(vu) => vu,
                None if created < open.max_vus => {
                    created += 1;
                    match VirtualUser::new(&ctx.plan, created, ctx.plan.flows[ctx.flow].seed) {
                        Ok(vu) => vu,
                        Err(e) => {
                            report_vu_error(&ctx, &e);
                            continue;
                        }
                    }
                }
                None => {
                    dropped += 1;
                    continue;
                }
            };
            let ctx2 = ctx.clone();
            let pool2 = pool.clone();
            tasks.spawn(async move {
                let mut vu = vu;
                ctx2.registry
                    .lag(ctx2.flow, Instant::now().saturating_duration_since(due));
                run_iteration(&mut vu, &ctx2, due).await;
                pool2.lock().unwrap_or_else(|p| p.into_inner()).push(vu);
            });
        }
        ctx.registry.arrivals(ctx.flow, planned, dropped);
        while tasks.try_join_next().is_some() {}
        let idle = pool.lock().unwrap_or_else(|p| p.into_inner()).len() as u64;
        gauges.vus.store(created, Ordering::Relaxed);
        gauges
            .busy_vus
            .store(created.saturating_sub(idle), Ordering::Relaxed);
        gauges.set_target(
            open.curve
                .level_at(now.saturating_duration_since(flow_start).as_secs_f64()),
        );
    }
    gauges.set_target(0.0);
    finish(&ctx, &mut tasks, &mut control).await;
}

/// Waits for in-flight iterations until they end or the run cancels them.
pub(super) async fn finish(ctx: &FlowCtx, tasks: &mut JoinSet<()>, control: &mut Control) {
    loop {
        tokio::select! {
            r = tasks.join_next() => if r.is_none() { break },
            _ = control.cancelled() => {
                let left = tasks.len();
                tasks.abort_all();
                for _ in 0..left {
                    ctx.registry.iteration(ctx.flow, std::time::Duration::ZERO, IterationOutcome::Interrupted);
                }
                while tasks.join_next().await.is_some() {}
                break;
            }
        }
    }
    let g = &ctx.registry.gauges[ctx.flow];
    g.busy_vus.store(0, Ordering::Relaxed);
}

pub(super) fn report_vu_error(ctx: &FlowCtx, e: &crate::journey::VuError) {
    let class = match e {
        crate::journey::VuError::Feed(_) => crate::http::ErrorClass::Feed,
        crate::journey::VuError::Script(_) => crate::http::ErrorClass::Script,
    };
    ctx.registry.flow_error(ctx.flow, class);
    ctx.registry
        .example(ctx.registry.keys().steps + ctx.flow, class, || {
            e.to_string()
        });
}
