//! The closed model: virtual users looping, their number following a curve.
//!
//! A controller raises and lowers the target count; VU k runs while the target is at least k and
//! parks when it drops below: after finishing its iteration, or at once if it is waiting for its
//! pace or think time. Nothing starts once the load has stopped. With `pace`, VU iteration i is due
//! at `start + i·pace`; an iteration overdue because an earlier one overran runs at once but keeps
//! its original due time (wrk2's correction), so a stall at the target shows up in latency instead
//! of vanishing from it. Without `pace` a VU's next iteration is due when the previous one (plus
//! think time) ended: the classic closed loop, whose latency cannot show queueing the way an open
//! model's does.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinSet;

use super::Control;
use super::{finish, report_vu_error};
use crate::journey::{FlowCtx, VirtualUser, run_iteration, sample_think};
use crate::scenario::plan::Closed;

/// How often the controller re-reads the curve during ramps.
const TICK: Duration = Duration::from_millis(50);

/// Runs a closed-model flow.
pub async fn run(ctx: FlowCtx, closed: Closed, flow_start: Instant, mut control: Control) {
    let (target_tx, target_rx) = watch::channel(0u64);
    let segment = ctx.plan.segment;
    let peak_users = (closed.curve.peak() + 1e-9).floor() as u64;
    let remaining = Arc::new(AtomicU64::new(
        closed
            .iterations
            .map_or(u64::MAX, |n| segment.budget(n, peak_users)),
    ));
    let mut tasks: JoinSet<()> = JoinSet::new();
    // Users are numbered across the whole flow; a split run's segment makes the ones it owns
    // (user k when it owns k − 1), so the segments' users add up to the curve.
    let mut spawned = 0u64;
    let mut made = 0u64;
    let mut owned = 0u64;
    let len = closed.curve.len();
    let gauges = &ctx.registry.gauges[ctx.flow];
    let closed = Arc::new(closed);
    loop {
        let now = Instant::now();
        let t = now.saturating_duration_since(flow_start).as_secs_f64();
        if now < flow_start {
            tokio::select! {
                _ = tokio::time::sleep_until(tokio::time::Instant::from_std(flow_start)) => continue,
                _ = control.stopped() => break,
            }
        }
        if t >= len || control.is_stopped() {
            break;
        }
        let level = closed.curve.level_at(t);
        let target = (level + 1e-9).floor() as u64;
        let _ = target_tx.send_if_modified(|v| {
            let changed = *v != target;
            *v = target;
            changed
        });
        // A segment's target is its own users, so the segments' targets add up to the curve.
        gauges.set_target(if segment.is_whole() {
            level
        } else {
            segment.share(target) as f64
        });
        while spawned < target {
            spawned += 1;
            if !segment.owns(spawned - 1) {
                continue;
            }
            owned += 1;
            let vu = match VirtualUser::new(&ctx.plan, ctx.flow, spawned) {
                Ok(vu) => {
                    made += 1;
                    vu
                }
                Err(e) => {
                    report_vu_error(&ctx, &e);
                    continue;
                }
            };
            tasks.spawn(vu_loop(
                vu,
                spawned,
                ctx.clone(),
                Budget {
                    closed: closed.clone(),
                    remaining: remaining.clone(),
                    end: flow_start + Duration::from_secs_f64(len),
                },
                target_rx.clone(),
                control.clone(),
            ));
        }
        gauges.vus.store(owned, Ordering::Relaxed);
        while tasks.try_join_next().is_some() {}
        if tasks.is_empty() && owned > 0 && remaining.load(Ordering::Relaxed) == 0 {
            break;
        }
        // Every user the curve will ever have is spawned and none is left running: with
        // per-user iteration limits they are all done; when none could even be made (a script
        // library that throws), nothing will ever run, and the flow used to wait for its
        // iteration budget forever; a segment that owns none of the users has nothing to run.
        // (Users that left because their next iteration fell past
        // the end are not a reason to stop: the flow keeps its length.)
        if tasks.is_empty()
            && spawned >= (closed.curve.peak() + 1e-9).floor() as u64
            && (closed.per_vu_iterations.is_some() || made == 0)
        {
            break;
        }
        let next = now + TICK;
        tokio::select! {
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(next)) => {}
            _ = control.stopped() => break,
        }
    }
    // Users see a target of 0 after their iteration, and waiting for it to rise again finds the
    // channel closed: parked users leave now, without an iteration to count or to wait for.
    let _ = target_tx.send(0);
    drop(target_tx);
    gauges.set_target(0.0);
    finish(&ctx, &mut tasks, &gauges.busy_vus, &mut control).await;
}

/// What bounds a closed user's iterations: its flow's settings, the flow's iteration budget
/// left, and the end of the flow's load.
struct Budget {
    closed: Arc<Closed>,
    remaining: Arc<AtomicU64>,
    end: Instant,
}

// Not an async fn on purpose (see the body's first comment).
#[allow(clippy::manual_async_fn)]
fn vu_loop(
    mut vu: VirtualUser,
    k: u64,
    ctx: FlowCtx,
    budget: Budget,
    mut target: watch::Receiver<u64>,
    mut control: Control,
) -> impl std::future::Future<Output = ()> + Send {
    // An async block rather than an async fn: an async fn keeps its arguments and its locals
    // apart in the task, so every user would hold its state twice.
    async move {
        let Budget {
            closed,
            remaining,
            end,
        } = budget;
        let gauges = &ctx.registry.gauges[ctx.flow];
        let mut done = 0u64;
        let mut start = Instant::now();
        let mut i = 0u32;
        let mut next_due = start;
        // When the user became free: its start, then each iteration's end. Nothing between an
        // iteration's end and the next one's start awaits, so reading the clock again would
        // only add the loop's own nanoseconds, and an unpaced user's next iteration (due at
        // that end) would look overdue: target lag it never had.
        let mut free_at = start;
        loop {
            if control.is_stopped() {
                return;
            }
            if *target.borrow() < k {
                // Parked: wait until the target comes back up to this VU, or the load ends.
                if target.wait_for(|t| *t >= k).await.is_err() || control.is_stopped() {
                    return;
                }
                start = Instant::now();
                i = 0;
                next_due = start;
                free_at = start;
            }
            if closed.per_vu_iterations.is_some_and(|n| done >= n) {
                return;
            }
            let due = match closed.pace {
                Some(p) => start + p * i,
                None => next_due,
            };
            // Nothing starts once the flow's load has ended, and an iteration starts when it is
            // due or when its user comes free, whichever is later: not one due after the end (a
            // paced user waiting for it would run one more), nor an overdue one whose user came
            // free after it (it would run only if the controller's next tick had not yet noticed
            // the end, up to 50 ms later).
            if due.max(free_at) >= end {
                return;
            }
            // Only a user that waits for its due time can start late by its own fault (the
            // generator's lateness); only one still busy past it (a paced iteration after an
            // overrun) waited on the target. An unpaced user is neither and computes no
            // durations.
            let own = if due > free_at {
                // A user waiting for its pace or think time starts nothing more when the load
                // stops, and parks (next time round) when a ramp-down drops the target below it.
                // These waits are made per wait, not kept for the user's life: kept, they would
                // sit in every user's task beside the iteration (W4's 2,000 users peaked about
                // 0.5 MB higher with the stop's alone).
                tokio::select! {
                    biased;
                    _ = control.stopped() => return,
                    _ = target.wait_for(|t| *t < k) => continue,
                    _ = vu.wait_until(due) => {}
                }
                Instant::now().saturating_duration_since(due)
            } else {
                Duration::ZERO
            };
            // The flow's budget is taken only now that the iteration starts: a user that waited
            // and was then stopped or ramped out leaves it to the others.
            if remaining
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |r| r.checked_sub(1))
                .is_err()
            {
                return;
            }
            let on_target = if free_at > due {
                free_at.saturating_duration_since(due)
            } else {
                Duration::ZERO
            };
            ctx.registry.lag(ctx.flow, own, on_target, done == 0);
            // A user that waited and woke late starts when it really could: that lateness is the
            // generator's (the lag just counted), not the target's latency. An overdue iteration
            // (the user was busy) keeps its due time, so a stall at the target stays in latency.
            let due = if free_at < due { due + own } else { due };
            gauges.busy_vus.fetch_add(1, Ordering::Relaxed);
            free_at = run_iteration(&mut vu, &ctx, due).await.at;
            gauges.busy_vus.fetch_sub(1, Ordering::Relaxed);
            done += 1;
            i += 1;
            next_due = free_at;
            if closed.pace.is_none()
                && let Some(t) = &closed.think
            {
                next_due += sample_think(t, &mut vu.rng);
            }
        }
    }
}
