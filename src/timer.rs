//! A precise one-shot timer for every wait the generator makes: open-model arrivals, closed
//! users' pace, think times and retry backoff.
//!
//! Tokio's timer wheel ticks every millisecond and rounds deadlines up to the next tick, so an
//! arrival would start 0–1 ms late (0.5 ms on average): schedule lag that would sit in every
//! latency measured from the due time. On Linux this timer arms a `timerfd` with the exact
//! remaining time and awaits it through the runtime's I/O driver, so the wake-up comes within the
//! kernel's timer slack (50 µs by default, 1 µs on the run's threads: [`tighten_slack`]) and
//! needs no extra thread. One timerfd per open flow, and one
//! per virtual user that waits (made on its first wait, counted in the run's descriptor budget).
//! Elsewhere, or if the timerfd cannot be made, it falls back to tokio's timer.

use std::time::Instant;

#[cfg(target_os = "linux")]
use rustix::time::{
    Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec, timerfd_create,
    timerfd_settime,
};
#[cfg(target_os = "linux")]
use tokio::io::{Interest, unix::AsyncFd};

/// Registers the timerfd with the runtime. `with_interest` is deprecated because a generic `T`
/// could report a different descriptor later; an `OwnedFd` owns its descriptor for its whole
/// life and always reports the same one, so the safe constructor is sound here (the crate
/// forbids `unsafe`, which the replacement `register_with_interest` needs).
#[cfg(target_os = "linux")]
#[allow(deprecated)]
fn register(fd: std::os::fd::OwnedFd) -> std::io::Result<AsyncFd<std::os::fd::OwnedFd>> {
    AsyncFd::with_interest(fd, Interest::READABLE)
}

/// Asks the kernel to fire this thread's timers within 1 µs of their deadline instead of its
/// default 50 µs slack, which would otherwise sit in the schedule lag of every arrival (and so
/// in every latency measured from the due time). Called on every thread of the run's runtime.
pub fn tighten_slack() {
    #[cfg(target_os = "linux")]
    {
        let _ = rustix::thread::set_current_timer_slack(std::num::NonZeroU64::new(1_000));
    }
}

/// A timer that wakes at an [`Instant`] with sub-millisecond precision where the OS allows.
#[derive(Debug)]
pub struct PreciseTimer {
    #[cfg(target_os = "linux")]
    fd: Option<AsyncFd<std::os::fd::OwnedFd>>,
}

impl PreciseTimer {
    /// A new timer; must be created inside the runtime that will await it.
    pub fn new() -> PreciseTimer {
        #[cfg(target_os = "linux")]
        {
            let fd = timerfd_create(
                TimerfdClockId::Monotonic,
                TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
            )
            .ok()
            .and_then(|fd| register(fd).ok());
            PreciseTimer { fd }
        }
        #[cfg(not(target_os = "linux"))]
        PreciseTimer {}
    }

    /// Whether the timer is precise (a timerfd) rather than tokio's millisecond wheel.
    pub fn is_precise(&self) -> bool {
        #[cfg(target_os = "linux")]
        {
            self.fd.is_some()
        }
        #[cfg(not(target_os = "linux"))]
        false
    }

    /// Waits until `deadline`. Cancel-safe: dropping the future leaves the timer reusable.
    pub async fn sleep_until(&mut self, deadline: Instant) {
        #[cfg(target_os = "linux")]
        if let Some(fd) = &self.fd {
            loop {
                let now = Instant::now();
                if deadline <= now {
                    return;
                }
                let left = deadline - now;
                // `std::time::Instant` is CLOCK_MONOTONIC on Linux, so a relative time is exact.
                let spec = Itimerspec {
                    it_interval: Timespec {
                        tv_sec: 0,
                        tv_nsec: 0,
                    },
                    it_value: Timespec {
                        tv_sec: left.as_secs() as _,
                        tv_nsec: left.subsec_nanos().max(1) as _,
                    },
                };
                if timerfd_settime(fd.get_ref(), TimerfdTimerFlags::empty(), &spec).is_err() {
                    break;
                }
                match fd.readable().await {
                    Ok(mut guard) => {
                        // The expiry count is not read: the next `timerfd_settime` resets it
                        // (and a read is a system call per arrival). The runtime is told the
                        // timer is no longer ready, and the timer's next expiry is a new edge.
                        // A wake-up left over from a cancelled wait cannot end this one early:
                        // the loop re-checks the clock.
                        guard.clear_ready();
                    }
                    Err(_) => break,
                }
            }
        }
        tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)).await;
    }
}

impl Default for PreciseTimer {
    fn default() -> Self {
        PreciseTimer::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn wakes_at_or_after_the_deadline_and_is_reusable_after_cancellation() {
        let mut t = PreciseTimer::new();
        assert_eq!(t.is_precise(), cfg!(target_os = "linux"));
        // A cancelled wait must not make the next one return early.
        let far = Instant::now() + Duration::from_secs(60);
        let _ = tokio::time::timeout(Duration::from_millis(5), t.sleep_until(far)).await;
        for ms in [3u64, 1, 7] {
            let deadline = Instant::now() + Duration::from_millis(ms);
            t.sleep_until(deadline).await;
            assert!(Instant::now() >= deadline);
        }
        // A deadline in the past returns at once.
        t.sleep_until(Instant::now() - Duration::from_millis(1))
            .await;
    }
}
