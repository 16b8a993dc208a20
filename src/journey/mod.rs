//! One iteration of one virtual user: steps in order, each request timed from its due time.
//!
//! Due times: an iteration is due when the scheduler says; its first request is due then; each
//! later request is due when the step before it ended, plus think time. Think times sleep *until* a
//! due time rather than *for* a duration, so a late wake-up is charged to the next request's latency
//! instead of disappearing. Failures are counted (an [`ErrorClass`] per step) and never propagate as
//! `Err`: the iteration ends (`on_error: abort`) or continues, and the run goes on.

mod check;
mod failure;
mod redirect;
mod request;
mod vu;
mod ws;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use rand_distr::{Distribution, Exp, Normal};

pub use failure::{Place, fail};
pub use request::Prebuilt;
pub use vu::{VirtualUser, VuError};

use crate::http::{Client, ErrorClass};
use crate::metrics::{IterationOutcome, Registry};
use crate::scenario::Plan;
use crate::scenario::plan::{FlowKind, OnError, Step, Think};
use crate::script::Snippet;

/// What every iteration of one flow shares.
#[derive(Debug, Clone)]
pub struct FlowCtx {
    /// The plan.
    pub plan: Arc<Plan>,
    /// The HTTP client settings.
    pub client: Client,
    /// Where measurements go.
    pub registry: Arc<Registry>,
    /// Flow index.
    pub flow: usize,
    /// Key index of the flow's first step.
    pub key_base: usize,
    /// The run's requests that never change, by step key.
    pub prebuilt: Arc<Prebuilt>,
}

impl FlowCtx {
    fn is_live(&self) -> bool {
        self.plan.flows[self.flow].kind == FlowKind::Live
    }

    fn flow_key(&self) -> usize {
        self.registry.keys().steps + self.flow
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    Go,
    Stop,
}

/// How an iteration ended, and when: the instant its latency was measured to, which is also
/// when its user became free again (a closed loop starts its next iteration from it instead of
/// reading the clock again).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ended {
    /// Whether it passed.
    pub outcome: IterationOutcome,
    /// When it ended.
    pub at: Instant,
}

/// Runs one iteration due at `due_at` and records it.
///
/// A panic inside the iteration (a bug in stampede, whatever the server or script did) is caught
/// here: it is counted as a failed iteration of class `internal` with its message, the user's
/// connections are dropped (their state is unknown), and the user goes on serving its flow, so a
/// bug costs one iteration instead of a virtual user for the rest of the run.
pub async fn run_iteration(vu: &mut VirtualUser, ctx: &FlowCtx, due_at: Instant) -> Ended {
    // Pinned here rather than moved into `catching`: an iteration's future is kilobytes, and
    // passing it by value would store it twice in every user's task and copy it each time.
    let caught = {
        let iteration = std::pin::pin!(iterate(vu, ctx, due_at));
        catching(iteration).await
    };
    match caught {
        Ok(ended) => ended,
        Err(what) => {
            vu.conns.close_all();
            vu.ws.clear();
            fail(ctx, Some(vu), Place::Flow, ErrorClass::Internal, || {
                format!("stampede failed inside this iteration (please report it): {what}")
            });
            let at = Instant::now();
            ctx.registry.iteration(
                ctx.flow,
                at.saturating_duration_since(due_at),
                IterationOutcome::Failed,
            );
            Ended {
                outcome: IterationOutcome::Failed,
                at,
            }
        }
    }
}

/// Polls `fut` to its end, turning a panic inside any poll into `Err(its message)`.
async fn catching<F: Future>(mut fut: Pin<&mut F>) -> Result<F::Output, String> {
    let caught = std::future::poll_fn(|cx| {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Ok(std::task::Poll::Ready(out)) => std::task::Poll::Ready(Ok(out)),
            Err(payload) => std::task::Poll::Ready(Err(payload)),
        }
    })
    .await;
    caught.map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".into())
    })
}

async fn iterate(vu: &mut VirtualUser, ctx: &FlowCtx, due_at: Instant) -> Ended {
    let plan = &ctx.plan;
    let journey = &plan.journeys[plan.flows[ctx.flow].journey];
    vu.iteration += 1;
    vu.new_trace(plan.settings.traceparent);
    // Live requests are split by whether batch work was in flight; the guard also counts an
    // iteration cancelled mid-way out again.
    let _batch = (!ctx.is_live()).then(|| BackgroundGuard::enter(&ctx.registry));
    let mut failed = false;
    if let Err(e) = vu.draw_rows(plan, &journey.feeders) {
        fail(ctx, Some(vu), Place::Flow, ErrorClass::Feed, || {
            e.to_string()
        });
        failed = true;
    }
    let mut next_due = due_at;
    if !failed && let Some(before) = &journey.before {
        failed = !run_snippet(vu, ctx, before).await;
    }
    if !failed {
        let mut state = IterState {
            next_due: &mut next_due,
            failed: false,
        };
        run_steps(&journey.steps, vu, ctx, &mut state).await;
        failed = state.failed;
    }
    if let Some(after) = &journey.after {
        failed |= !run_snippet(vu, ctx, after).await;
    }
    if !vu.ws.is_empty() {
        ws::close_all(vu).await;
    }
    if !plan.settings.keep_alive {
        vu.conns.close_all();
    }
    let outcome = if failed {
        IterationOutcome::Failed
    } else {
        IterationOutcome::Ok
    };
    let at = Instant::now();
    ctx.registry.iteration_with_work(
        ctx.flow,
        at.saturating_duration_since(due_at),
        outcome,
        vu.work,
        &vu.iter_timing,
    );
    Ended { outcome, at }
}

struct BackgroundGuard<'a>(&'a Registry);

impl<'a> BackgroundGuard<'a> {
    fn enter(r: &'a Registry) -> BackgroundGuard<'a> {
        r.background_started
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        r.background_in_flight
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        BackgroundGuard(r)
    }
}

impl Drop for BackgroundGuard<'_> {
    fn drop(&mut self) {
        self.0
            .background_in_flight
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

struct IterState<'a> {
    next_due: &'a mut Instant,
    failed: bool,
}

impl IterState<'_> {
    /// After a request or WebSocket step: the next step is due now, and a failure ends the
    /// iteration unless `on_error: continue`.
    fn after_exchange(&mut self, ok: bool, on_error: OnError) -> Next {
        *self.next_due = Instant::now();
        if ok {
            return Next::Go;
        }
        self.failed = true;
        if on_error == OnError::Abort {
            Next::Stop
        } else {
            Next::Go
        }
    }
}

/// Counts a script's failure (class `script`, the first message kept and masked); true when it
/// succeeded.
fn script_outcome(
    vu: &VirtualUser,
    ctx: &FlowCtx,
    outcome: Result<(), crate::script::ScriptError>,
) -> bool {
    match outcome {
        Ok(()) => true,
        Err(e) => {
            fail(ctx, Some(vu), Place::Flow, ErrorClass::Script, || {
                e.to_string()
            });
            false
        }
    }
}

/// Runs a script step or hook; true when it succeeded. A snippet runs on the runtime thread
/// unless it has shown itself too long for one ([`crate::script::INLINE_BUDGET`]); then it runs
/// on the blocking pool with the user's variables moved there and back, so that other users'
/// I/O on this thread, and their timings, do not wait for it.
async fn run_snippet(vu: &mut VirtualUser, ctx: &FlowCtx, snippet: &Snippet) -> bool {
    let scripts = &ctx.plan.scripts;
    if !snippet.is_heavy()
        && let Some(done) = scripts.try_inline(snippet, &mut vu.scope)
    {
        return script_outcome(vu, ctx, done);
    }
    let plan = ctx.plan.clone();
    let job = snippet.clone();
    let mut scope = std::mem::take(&mut vu.scope);
    let joined = tokio::task::spawn_blocking(move || {
        let out = plan.scripts.run(&job, &mut scope);
        (scope, out)
    })
    .await;
    match joined {
        Ok((scope, out)) => {
            vu.scope = scope;
            script_outcome(vu, ctx, out)
        }
        // The snippet panicked on the pool (a bug): let the iteration's guard count it.
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => script_outcome(
            vu,
            ctx,
            Err(crate::script::ScriptError {
                file: String::new(),
                line: 0,
                message: "the script was cancelled (the runtime is shutting down)".into(),
            }),
        ),
    }
}

type StepsFuture<'a> = Pin<Box<dyn Future<Output = Next> + Send + 'a>>;

/// Nested blocks (group, loop, if) recurse through a boxed future; flat journeys never box.
fn run_nested<'a>(
    steps: &'a [Step],
    vu: &'a mut VirtualUser,
    ctx: &'a FlowCtx,
    st: &'a mut IterState<'_>,
) -> StepsFuture<'a> {
    Box::pin(run_steps(steps, vu, ctx, st))
}

async fn run_steps(
    steps: &[Step],
    vu: &mut VirtualUser,
    ctx: &FlowCtx,
    st: &mut IterState<'_>,
) -> Next {
    let plan = &ctx.plan;
    for step in steps {
        vu.work.steps += 1;
        let next = match step {
            Step::Request(r) => {
                let ok = request::execute(r, vu, ctx, *st.next_due).await;
                st.after_exchange(ok, plan.settings.on_error)
            }
            Step::Ws(w) => {
                // Boxed: a WebSocket step's future is four times a request's, and inline it
                // would size every user's task, whether its journey has a socket or not.
                let ok = Box::pin(ws::execute(w, vu, ctx, *st.next_due)).await;
                st.after_exchange(ok, plan.settings.on_error)
            }
            Step::Think(t) => {
                let pause = sample_think(t, &mut vu.rng);
                let due = *st.next_due + pause;
                // A late wake-up is the generator's lateness: it is counted as lag, and the next
                // request is due when the user really was ready, so it never lands in the
                // target's latency.
                let late = vu.wait_until(due).await;
                ctx.registry.lag(ctx.flow, late, Duration::ZERO, false);
                *st.next_due = due + late;
                Next::Go
            }
            Step::Script(s) => {
                if run_snippet(vu, ctx, s).await {
                    Next::Go
                } else {
                    st.failed = true;
                    Next::Stop
                }
            }
            Step::Group(inner) => run_nested(inner, vu, ctx, st).await,
            Step::If(i) => match plan.scripts.test(&i.condition, &mut vu.scope) {
                Ok(true) => run_nested(&i.then, vu, ctx, st).await,
                Ok(false) => run_nested(&i.otherwise, vu, ctx, st).await,
                Err(e) => {
                    script_outcome(vu, ctx, Err(e));
                    st.failed = true;
                    Next::Stop
                }
            },
            Step::Loop(l) => {
                let mut next = Next::Go;
                let rounds = l.count.unwrap_or(l.max);
                for _ in 0..rounds {
                    if let Some(cond) = &l.condition {
                        match plan.scripts.test(cond, &mut vu.scope) {
                            Ok(true) => {}
                            Ok(false) => break,
                            Err(e) => {
                                script_outcome(vu, ctx, Err(e));
                                st.failed = true;
                                next = Next::Stop;
                                break;
                            }
                        }
                    }
                    next = run_nested(&l.steps, vu, ctx, st).await;
                    if next == Next::Stop {
                        break;
                    }
                }
                next
            }
        };
        if next == Next::Stop {
            return Next::Stop;
        }
    }
    Next::Go
}

/// Draws a think time.
pub fn sample_think(t: &Think, rng: &mut impl Rng) -> Duration {
    match *t {
        Think::Fixed(d) => d,
        Think::Uniform(r) => {
            let (lo, hi) = (r.low.as_secs_f64(), r.high.as_secs_f64());
            Duration::from_secs_f64(lo + (hi - lo) * rng.random::<f64>())
        }
        Think::Normal { mean, stddev } => {
            match Normal::new(mean.as_secs_f64(), stddev.as_secs_f64()) {
                Ok(n) => Duration::from_secs_f64(n.sample(rng).max(0.0)),
                Err(_) => mean,
            }
        }
        Think::Exponential(mean) => match Exp::new(1.0 / mean.as_secs_f64().max(1e-9)) {
            Ok(e) => Duration::from_secs_f64(e.sample(rng).min(mean.as_secs_f64() * 50.0)),
            Err(_) => mean,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::SpanRange;
    use rand::SeedableRng;

    fn mean_of(t: Think) -> f64 {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
        (0..20_000)
            .map(|_| sample_think(&t, &mut rng).as_secs_f64())
            .sum::<f64>()
            / 20_000.0
    }

    /// A user's task holds its iteration's state between requests, so every byte here is a
    /// byte per virtual user (W4). Rare paths (WebSocket steps, redirects, connects, hyper's)
    /// are boxed so they do not size it; this was 9.6 KiB in a release build before they were.
    #[test]
    fn an_iteration_keeps_little_state_per_user() {
        let text = "target: http://127.0.0.1:9\njourneys:\n  j: [ { name: a, get: /x } ]\nflows:\n  f: { journey: j, vus: 1, duration: 1s }\n";
        let plan =
            crate::scenario::load_str(std::path::Path::new("t.yaml"), text, &Default::default());
        let plan = Arc::new(plan.unwrap());
        let keys = Arc::new(crate::metrics::KeyTable::from_plan(&plan));
        let ctx = FlowCtx {
            client: Client::new(&plan.settings),
            registry: Arc::new(Registry::new(keys)),
            prebuilt: Arc::new(Prebuilt::new(plan.journeys[0].steps.len())),
            plan: plan.clone(),
            flow: 0,
            key_base: 0,
        };
        let mut vu = VirtualUser::new(&plan, 0, 0).unwrap();
        let iteration = run_iteration(&mut vu, &ctx, Instant::now());
        let size = std::mem::size_of_val(&iteration);
        // 1,984 bytes with rustc 1.95; the bound leaves room for another compiler's layout.
        assert!(size <= 4 * 1024, "an iteration's future is {size} bytes");
    }

    #[tokio::test]
    async fn a_panic_in_an_iteration_becomes_its_message() {
        let fine = catching(std::pin::pin!(async { 7 })).await;
        assert_eq!(fine, Ok(7));
        let bad = catching(std::pin::pin!(async {
            tokio::task::yield_now().await;
            let v: Vec<u8> = Vec::new();
            #[allow(clippy::indexing_slicing)]
            v[v.len() + 3]
        }))
        .await;
        assert!(bad.is_err_and(|m| m.contains("index out of bounds")));
    }

    #[test]
    fn think_times_have_the_configured_means() {
        let s = Duration::from_secs;
        assert_eq!(mean_of(Think::Fixed(s(2))), 2.0);
        let uniform = Think::Uniform(SpanRange {
            low: s(1),
            high: s(3),
        });
        assert!((mean_of(uniform) - 2.0).abs() < 0.02);
        let normal = Think::Normal {
            mean: s(2),
            stddev: Duration::from_millis(200),
        };
        assert!((mean_of(normal) - 2.0).abs() < 0.02);
        assert!((mean_of(Think::Exponential(s(2))) - 2.0).abs() < 0.06);
        // A normal distribution is clamped at zero, never negative.
        let mut rng = rand::rngs::SmallRng::seed_from_u64(2);
        let wide = Think::Normal {
            mean: Duration::from_millis(10),
            stddev: s(1),
        };
        assert!((0..1000).all(|_| sample_think(&wide, &mut rng) >= Duration::ZERO));
    }
}
