//! A request's timeout without a timer per request. `tokio::time::timeout` puts an entry into
//! the timer wheel for every request and takes it out again when the answer comes first (about
//! 5% of W1's user-space time). A user's requests run one after another and their deadlines
//! mostly only move later, so each user keeps one timer: armed for the first deadline, left
//! alone while later deadlines come, and moved on only when it fires before the current
//! request's deadline (or a request needs an earlier one). A timer armed for a finished request
//! may wake its user once for nothing; that is one wake-up per timeout's length at most.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Instant;

use tokio::time::Sleep;

/// One user's request timer.
#[derive(Debug, Default)]
pub(super) struct Deadline {
    /// Boxed: allocated once per user, on the first request, and kept.
    sleep: Option<Pin<Box<Sleep>>>,
}

impl Deadline {
    /// Runs `fut` until `deadline`: `None` when the deadline came first.
    pub(super) async fn run<F: Future>(
        &mut self,
        deadline: Instant,
        mut fut: Pin<&mut F>,
    ) -> Option<F::Output> {
        let deadline = tokio::time::Instant::from_std(deadline);
        std::future::poll_fn(|cx| {
            let had_budget = tokio::task::coop::has_budget_remaining();
            if let Poll::Ready(out) = fut.as_mut().poll(cx) {
                return Poll::Ready(Some(out));
            }
            if had_budget && !tokio::task::coop::has_budget_remaining() {
                // The request spent the task's budget (a long body arriving as fast as it is
                // read) and the timer, which asks for budget too, would never be looked at:
                // the clock decides, as `tokio::time::timeout` does in this case. The task
                // is woken again by the budget's own yield.
                return if tokio::time::Instant::now() >= deadline {
                    Poll::Ready(None)
                } else {
                    Poll::Pending
                };
            }
            let sleep = self
                .sleep
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
            if sleep.deadline() > deadline {
                sleep.as_mut().reset(deadline);
            }
            while sleep.as_mut().poll(cx).is_ready() {
                if sleep.deadline() >= deadline {
                    return Poll::Ready(None);
                }
                // It fired for an earlier request's deadline: on to this one's.
                sleep.as_mut().reset(deadline);
            }
            Poll::Pending
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// The paused clock's now (deadlines are `std` instants).
    fn now() -> Instant {
        tokio::time::Instant::now().into_std()
    }

    /// Whether `d` is `secs` seconds, give or take the timer wheel's millisecond.
    fn near(d: Duration, secs: u64) -> bool {
        let want = Duration::from_secs(secs);
        d + Duration::from_millis(2) >= want && d <= want + Duration::from_millis(2)
    }

    #[tokio::test(start_paused = true)]
    async fn a_late_answer_times_out_and_an_early_one_does_not() {
        let mut d = Deadline::default();
        let start = now();
        let slow = tokio::time::sleep(Duration::from_secs(5));
        assert_eq!(
            d.run(start + Duration::from_secs(1), std::pin::pin!(slow))
                .await,
            None
        );
        // The timer fired at that deadline; a later request moves it on instead of timing out.
        let quick = async { 7 };
        let later = now() + Duration::from_secs(10);
        assert_eq!(d.run(later, std::pin::pin!(quick)).await, Some(7));
        let wait = tokio::time::sleep(Duration::from_secs(3));
        assert_eq!(d.run(later, std::pin::pin!(wait)).await, Some(()));
        // An earlier deadline than the armed one is honoured.
        let slow = tokio::time::sleep(Duration::from_secs(60));
        let t0 = tokio::time::Instant::now();
        assert_eq!(
            d.run(now() + Duration::from_secs(2), std::pin::pin!(slow))
                .await,
            None
        );
        assert!(near(t0.elapsed(), 2), "{:?}", t0.elapsed());
    }

    /// A request that always has more to read spends the task's whole budget in every poll;
    /// its deadline must still end it. (Real time: a paused clock never advances while a task
    /// keeps running.)
    #[tokio::test]
    async fn a_request_that_spends_the_whole_budget_still_times_out() {
        let mut d = Deadline::default();
        let endless = async {
            loop {
                tokio::task::consume_budget().await;
            }
        };
        let deadline = Instant::now() + Duration::from_millis(20);
        let endless = std::pin::pin!(endless);
        let outer = tokio::time::timeout(Duration::from_secs(10), d.run(deadline, endless)).await;
        assert_eq!(outer, Ok(None), "the deadline never ended the request");
        assert!(Instant::now() >= deadline);
    }

    #[tokio::test(start_paused = true)]
    async fn a_timer_armed_for_an_old_deadline_moves_on_to_the_new_one() {
        let mut d = Deadline::default();
        let first = now() + Duration::from_secs(1);
        let quick = tokio::time::sleep(Duration::from_millis(100));
        assert_eq!(d.run(first, std::pin::pin!(quick)).await, Some(()));
        // The timer armed for 1 s fires within this request, whose own deadline is 4 s away.
        let t0 = tokio::time::Instant::now();
        let work = tokio::time::sleep(Duration::from_secs(3));
        assert_eq!(
            d.run(now() + Duration::from_secs(4), std::pin::pin!(work))
                .await,
            Some(())
        );
        assert!(near(t0.elapsed(), 3), "{:?}", t0.elapsed());
        // Still armed for that request's deadline, it fires early for this one again.
        let work = tokio::time::sleep(Duration::from_secs(30));
        let t0 = tokio::time::Instant::now();
        assert_eq!(
            d.run(now() + Duration::from_secs(5), std::pin::pin!(work))
                .await,
            None
        );
        assert!(near(t0.elapsed(), 5), "{:?}", t0.elapsed());
    }
}
