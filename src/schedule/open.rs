//! The open model: arrivals on a rate curve, independent of how fast the target answers.
//!
//! Arrival n is due at `flow_start + curve.time_of(x_n)` (see [`curve`](crate::scenario::curve)), computed
//! from the run clock, so a late wake-up never shifts later arrivals. The executor sleeps on a
//! [`PreciseTimer`] (a timerfd: tokio's own timer would add 0–1 ms of lag to every arrival) and each
//! wake-up starts every arrival already due (a batch), so at high rates one wake-up serves several. An arrival that finds no idle virtual user and no room to create one (`max_vus`) is
//! counted as dropped, never queued: queueing would hide the target's slowness.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::SmallRng;
use rand_distr::{Distribution, Exp1};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::{Control, FlowEnd, finish, report_vu_error};
use crate::journey::{FlowCtx, VirtualUser, run_iteration};
use crate::model::{POISSON_BIN, Segment};
use crate::scenario::plan::{Arrivals, Open};
use crate::timer::PreciseTimer;

/// Runs an open-model flow.
pub async fn run(
    ctx: FlowCtx,
    open: Open,
    (flow_start, began): (Instant, Option<Instant>),
    mut control: Control,
) -> FlowEnd {
    let segment = ctx.plan.segment;
    let max_vus = segment.max_vus(open.max_vus);
    // Each user made is a task that lives for the flow and waits for arrivals on its own
    // channel; `idle` lists the users waiting. Spawning a task per arrival instead copied the
    // iteration's future (kilobytes) into the task and again when it ended, and made and freed
    // a task each time: a fifth of the user-space CPU at 4,000 arrivals/s.
    let idle: Arc<Mutex<Vec<usize>>> = Arc::new(Mutex::new(Vec::new()));
    let busy = Arc::new(AtomicU64::new(0));
    let mut users: Vec<mpsc::Sender<Instant>> = Vec::new();
    let mut tasks: JoinSet<()> = JoinSet::new();
    let mut created: u64 = 0;
    let mut dues = DueTimes {
        curve: &open.curve,
        arrivals: open.arrivals,
        x: 0.0,
        rng: SmallRng::seed_from_u64(ctx.plan.flows[ctx.flow].seed),
        next: open.curve.time_of(0.0),
        segment,
        n: 0,
        limit: open.iterations.unwrap_or(u64::MAX),
    };
    let mut missed = 0u64;
    let gauges = &ctx.registry.gauges[ctx.flow];
    let mut fit = (open.arrivals == Arrivals::Poisson).then(DispersionCounter::default);
    let mut timer = PreciseTimer::new();
    let policy = ctx.plan.settings.arrival_slack;
    // A segment runs its share of the rate.
    let share = f64::from(segment.count.max(1));
    // Due times generated but not yet started (at most rate × slack + 1 of them).
    let mut ahead: VecDeque<f64> = VecDeque::new();
    // One wait for the stop, for the whole load: made afresh for every wake-up, it registered
    // with the channel's waiter list and left it again each time (a lock each way).
    let mut watcher = control.clone();
    let mut stopped = std::pin::pin!(watcher.stopped());
    'load: while let Some(first) = ahead.front().copied().or_else(|| dues.next()) {
        if ahead.is_empty() {
            ahead.push_back(first);
        }
        // Wake at the last arrival due within `slack` of the first: one wake-up starts them
        // all, none later than `slack`; an arrival with no close neighbour starts on time.
        let slack = policy
            .at_rate(open.curve.level_at(first) / share)
            .as_secs_f64();
        while ahead.back().is_some_and(|&t| t <= first + slack) {
            match dues.next() {
                Some(t) => ahead.push_back(t),
                None => break,
            }
        }
        let wake_t = wake_at(&ahead, slack);
        let wake = flow_start + std::time::Duration::from_secs_f64(wake_t);
        if wake > Instant::now() {
            // The timer first: at a wake-up it is the one ready, and the stop, polled second,
            // is then not polled at all (a poll of its waiter per arrival). A stop that comes
            // with the timer is seen by the check below.
            tokio::select! {
                biased;
                _ = timer.sleep_until(wake) => {}
                _ = &mut stopped => break 'load,
            }
        }
        if control.is_stopped() {
            break;
        }
        let now = Instant::now();
        let (mut planned, mut dropped) = (0u64, 0u64);
        while let Some(&t) = ahead.front() {
            let due = flow_start + std::time::Duration::from_secs_f64(t);
            if due > now {
                break;
            }
            ahead.pop_front();
            planned += 1;
            if began.is_some_and(|b| due < b) {
                missed += 1;
                dropped += 1;
                continue;
            }
            // Dispatched now, whether a user takes it or it is dropped: the fit judges the
            // generator's schedule, and a drop is the target's (every user busy on it).
            if let Some(fit) = &mut fit {
                fit.add(
                    open.curve
                        .cumulative(now.saturating_duration_since(flow_start).as_secs_f64()),
                );
            }
            let waiting = idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
            let user = match waiting {
                Some(i) => i,
                None if created < max_vus => {
                    created += 1;
                    // Users are numbered across the segments of a split run, so `vu` is unique.
                    let id = segment.global(created - 1) + 1;
                    match VirtualUser::new_for_arrivals(&ctx.plan, ctx.flow, id) {
                        Ok(vu) => {
                            let (tx, rx) = mpsc::channel(1);
                            let i = users.len();
                            users.push(tx);
                            let user = User {
                                index: i,
                                ctx: ctx.clone(),
                                idle: idle.clone(),
                                busy: busy.clone(),
                            };
                            tasks.spawn(user.serve(vu, rx));
                            i
                        }
                        Err(e) => {
                            // The arrival was planned and could not run: a failed iteration,
                            // so every planned arrival is ok, failed, dropped or interrupted.
                            report_vu_error(&ctx, &e);
                            ctx.registry.iteration_not_run(ctx.flow);
                            continue;
                        }
                    }
                }
                None => {
                    dropped += 1;
                    continue;
                }
            };
            busy.fetch_add(1, Ordering::Relaxed);
            // An idle user has taken its previous arrival, so its one slot is free.
            if users[user].try_send(due).is_err() {
                busy.fetch_sub(1, Ordering::Relaxed);
                dropped += 1;
            }
        }
        ctx.registry.arrivals(ctx.flow, planned, dropped);
        gauges.vus.store(created, Ordering::Relaxed);
        gauges
            .busy_vus
            .store(busy.load(Ordering::Relaxed), Ordering::Relaxed);
        // A segment offers its share of the rate.
        gauges.set_target(
            open.curve
                .level_at(now.saturating_duration_since(flow_start).as_secs_f64())
                / f64::from(segment.count.max(1)),
        );
    }
    gauges.set_target(0.0);
    // No more arrivals: waiting users end now, busy ones after their iteration.
    drop(users);
    finish(&ctx, &mut tasks, &busy, &mut control).await;
    FlowEnd {
        arrival_bins: fit.map(|f| f.bins).unwrap_or_default(),
        missed,
    }
}

/// What a user's task needs besides its `VirtualUser`.
struct User {
    /// Its place in the flow's list of users (what `idle` holds).
    index: usize,
    ctx: FlowCtx,
    idle: Arc<Mutex<Vec<usize>>>,
    busy: Arc<AtomicU64>,
}

impl User {
    /// Runs an iteration for every due time sent to it, until the flow stops sending.
    async fn serve(self, mut vu: VirtualUser, mut arrivals: mpsc::Receiver<Instant>) {
        while let Some(due) = arrivals.recv().await {
            let ctx = &self.ctx;
            ctx.registry.lag(
                ctx.flow,
                Instant::now().saturating_duration_since(due),
                Duration::ZERO,
                false,
            );
            run_iteration(&mut vu, ctx, due).await;
            // No await between these and the iteration's end: a cancel either finds this
            // arrival busy (and counts it interrupted) or finished.
            self.busy.fetch_sub(1, Ordering::Relaxed);
            self.idle
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(self.index);
        }
    }
}

/// When to wake for the arrivals in `ahead` (due times, in order, the first not yet started): at
/// the last one due within `slack` of the first.
fn wake_at(ahead: &VecDeque<f64>, slack: f64) -> f64 {
    let first = ahead.front().copied().unwrap_or(0.0);
    ahead
        .iter()
        .rev()
        .find(|&&t| t <= first + slack)
        .copied()
        .unwrap_or(first)
}

/// This segment's due times (seconds from the flow's start), in order: the curve's integral
/// inverted at unit steps (uniform) or at a running sum of unit exponentials (Poisson), every
/// segment computing the whole flow's sequence (one seed) and keeping arrival n when it owns n.
struct DueTimes<'a> {
    curve: &'a crate::scenario::curve::Curve,
    arrivals: Arrivals,
    x: f64,
    rng: SmallRng,
    next: Option<f64>,
    segment: Segment,
    /// Arrivals of the whole flow generated so far.
    n: u64,
    /// Arrivals of the whole flow after which it ends (`iterations`).
    limit: u64,
}

impl Iterator for DueTimes<'_> {
    type Item = f64;

    fn next(&mut self) -> Option<f64> {
        loop {
            if self.n >= self.limit {
                return None;
            }
            let t = self.next?;
            self.x += match self.arrivals {
                Arrivals::Uniform => 1.0,
                Arrivals::Poisson => Exp1.sample(&mut self.rng),
            };
            self.next = self.curve.time_of(self.x);
            let mine = self.segment.owns(self.n);
            self.n += 1;
            if mine {
                return Some(t);
            }
        }
    }
}

/// Bins kept (the first 2 million arrivals are plenty for the statistic).
const MAX_BINS: usize = 100_000;

/// Counts actual arrivals per bin of unit-rate time (the curve's integral), for the Poisson fit.
#[derive(Debug, Default)]
struct DispersionCounter {
    bins: Vec<u32>,
}

impl DispersionCounter {
    fn add(&mut self, unit_time: f64) {
        let i = (unit_time / POISSON_BIN) as usize;
        if i < MAX_BINS {
            if self.bins.len() <= i {
                self.bins.resize(i + 1, 0);
            }
            self.bins[i] += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn close_arrivals_share_a_wake_up_and_a_lone_one_starts_on_time() {
        let q = |v: &[f64]| v.iter().copied().collect::<VecDeque<f64>>();
        // 0.0 and 0.0004 are within 0.5 ms; 0.0007 is not: wake at 0.0004.
        assert_eq!(wake_at(&q(&[0.0, 0.0004, 0.0007]), 0.0005), 0.0004);
        assert_eq!(wake_at(&q(&[1.0, 1.1]), 0.0005), 1.0);
        assert_eq!(wake_at(&q(&[1.0, 1.0001]), 0.0), 1.0);
    }

    #[test]
    fn due_times_follow_the_curve() {
        let curve = crate::scenario::curve::Curve::constant(1000.0, 1.0);
        let dues = DueTimes {
            curve: &curve,
            arrivals: Arrivals::Uniform,
            x: 0.0,
            rng: SmallRng::seed_from_u64(1),
            next: curve.time_of(0.0),
            segment: Segment::WHOLE,
            n: 0,
            limit: u64::MAX,
        };
        let v: Vec<f64> = dues.collect();
        assert_eq!(v.len(), 1000);
        assert!((v[10] - 0.010).abs() < 1e-9 && v.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn segments_split_one_poisson_sequence_exactly() {
        let curve = crate::scenario::curve::Curve::constant(500.0, 2.0);
        let dues = |segment| DueTimes {
            curve: &curve,
            arrivals: Arrivals::Poisson,
            x: 0.0,
            rng: SmallRng::seed_from_u64(7),
            next: curve.time_of(0.0),
            segment,
            n: 0,
            limit: u64::MAX,
        };
        let whole: Vec<f64> = dues(Segment::WHOLE).collect();
        let mut parts: Vec<f64> = (0..3)
            .flat_map(|index| dues(Segment { index, count: 3 }).collect::<Vec<_>>())
            .collect();
        parts.sort_by(f64::total_cmp);
        assert!(whole.len() > 900);
        assert_eq!(parts, whole);
    }

    #[test]
    fn uniform_arrivals_fail_the_poisson_fit_and_poisson_ones_pass() {
        let mut uniform = DispersionCounter::default();
        for n in 0..4000 {
            uniform.add(n as f64);
        }
        let u = crate::model::PoissonFit::from_bins(&uniform.bins).unwrap();
        assert!(
            u.dispersion_index < 0.1 && (u.dispersion_index - 1.0).abs() > u.tolerance,
            "{u:?}"
        );
        let mut rng = rand::rngs::SmallRng::seed_from_u64(3);
        let (mut poisson, mut x) = (DispersionCounter::default(), 0.0);
        for _ in 0..4000 {
            let gap: f64 = Exp1.sample(&mut rng);
            x += gap;
            poisson.add(x);
        }
        let p = crate::model::PoissonFit::from_bins(&poisson.bins).unwrap();
        assert!((p.dispersion_index - 1.0).abs() <= p.tolerance, "{p:?}");
    }
}
