//! A generator that checks itself: is each flow's load what was asked for, and was stampede itself
//! the bottleneck? (MEASUREMENT.md's C1–C3, plus the runtime's saturation.)
//!
//! - **Dropped arrivals** are not a self-check: an open flow drops an arrival when every one of
//!   its `max_vus` users is waiting on the target, which is the target's result (thresholds on
//!   `dropped`, `rate` and `errors` gate it; the flow's `dropped_cause` says how many users were
//!   needed).
//! - **Schedule lag** (C3): iterations starting late by more than [`LAG_FLOOR`], or by more than
//!   [`LAG_SHARE`] of the flow's median iteration latency, at p99, *with a user free to start
//!   them*: the generator could not keep its own schedule. Lateness the target caused (a paced
//!   user still busy with an overrunning iteration) and the start-up of users started together
//!   are reported beside it, not blamed on the generator. An open flow's `arrival_slack` (lateness
//!   the plan allows on purpose to save wake-ups) is added to the floor.
//! - **Saturation**: the runtime's worker threads were busy more than [`MAX_BUSY`] of the run: the
//!   generator ran out of CPU.
//! - **Poisson fit** (C4): for Poisson flows, the times arrivals were actually dispatched (started,
//!   or dropped because every user was busy on the target), mapped through the curve's
//!   integral to unit-rate time, are counted in bins of 20 expected arrivals; a Poisson process has
//!   variance equal to the mean (index 1, ± 3 standard errors √(2/(bins−1))). Uniform spacing
//!   gives about 0, bunching well above 1. Bins of 20 arrivals keep the 1 ms timer out of it.
//!
//! - **Connection churn and local exhaustion**: requests that failed because *this* machine had no
//!   free ephemeral port or file descriptor (error class `generator`), or a peak rate of new
//!   connections that would hold more ports in TIME_WAIT ([`TIME_WAIT`]) than the local range has.
//!   Both are the generator's problem, not the target's.
//!
//! - **Late start**: a segment of a split run that began after `--start-at` missed the arrivals
//!   due before it began (counted as dropped, since the plan called for them); the generator did
//!   not offer them, so it is the generator's limit, not the target's result.
//!
//! - **Internal failures**: iterations in which stampede itself failed (a caught panic, error
//!   class `internal`). Their requests were never measured, so the numbers miss them.
//!
//! Any of these makes the run untrustworthy, and `run` exits 3. The bounds are deliberately
//! coarser than a quiet machine allows (MEASUREMENT.md suggests 1 ms of lag), so that a shared CI
//! runner does not trip them on a healthy run; the lag histogram is always in the results for a
//! stricter reading.

use std::time::Duration;

use crate::model::{ErrorClass, RunResult, SelfCheck, SelfCheckName};

/// Schedule lag p99 below this always passes.
pub const LAG_FLOOR: Duration = Duration::from_millis(25);
/// Above the floor, lag p99 may reach this share of the median iteration latency.
pub const LAG_SHARE: f64 = 0.25;
/// Largest share of the run the runtime's workers may be busy.
pub const MAX_BUSY: f64 = 0.95;

/// How long Linux keeps a closed connection's port in TIME_WAIT (fixed in the kernel).
pub const TIME_WAIT: Duration = Duration::from_secs(60);

/// Every self-check of a run.
pub fn checks(r: &RunResult) -> Vec<SelfCheck> {
    let mut out = Vec::new();
    for f in &r.flows {
        if f.schedule_lag.is_some() || f.startup_lag.is_some() {
            let p50 = f.iteration.as_ref().map_or(0, |l| l.p50_us) as f64;
            // The slack an open flow allows on purpose is lateness the user asked for.
            let floor = LAG_FLOOR.as_micros() as f64 + f.arrival_slack_us as f64;
            let bound_us = floor.max(LAG_SHARE * p50);
            // Judged on steady iterations; the first iterations of users started together are
            // the plan's start-up burst, named but not blamed.
            let steady = f.schedule_lag.as_ref().map_or(0, |l| l.p99_us);
            let passed = (steady as f64) <= bound_us;
            let mut detail = format!(
                "flow {} started iterations late by {:.1} ms at p99 (limit {:.1} ms){}",
                f.name,
                steady as f64 / 1000.0,
                bound_us / 1000.0,
                if passed {
                    ""
                } else {
                    ": the generator could not keep its schedule with users free to start"
                }
            );
            if let Some(start) = &f.startup_lag
                && start.p99_us as f64 > bound_us
            {
                detail.push_str(&format!(
                    "; its users' first iterations started up to {:.0} ms late because they all \
                     start at once: a ramp (e.g. `vus: [ {{ to: N, over: 10s }} ]`) spreads the start",
                    start.p99_us as f64 / 1000.0
                ));
            }
            if let Some(t) = &f.target_lag {
                detail.push_str(&format!(
                    "; {} iterations were due while their user still waited on the target (up to {:.0} ms: \
                     the target's lateness, already in latency)",
                    t.count,
                    t.max_us as f64 / 1000.0
                ));
            }
            out.push(SelfCheck {
                check: SelfCheckName::ScheduleLag,
                flow: Some(f.name.clone()),
                passed,
                detail,
            });
        }
    }
    for f in &r.flows {
        if let Some(p) = &f.poisson {
            let passed = (p.dispersion_index - 1.0).abs() <= p.tolerance;
            out.push(SelfCheck {
                check: SelfCheckName::PoissonFit,
                flow: Some(f.name.clone()),
                passed,
                detail: format!(
                    "flow {} arrivals have dispersion index {:.2} over {} bins (Poisson: 1 ± {:.2}){}",
                    f.name,
                    p.dispersion_index,
                    p.bins,
                    p.tolerance,
                    if passed { "" } else { ": the sent arrivals are not the planned Poisson process" }
                ),
            });
        }
    }
    for f in r.flows.iter().filter(|f| f.missed_at_start > 0) {
        out.push(SelfCheck {
            check: SelfCheckName::LateStart,
            flow: Some(f.name.clone()),
            passed: false,
            detail: format!(
                "flow {} missed {} arrivals that fell due before {} began ({:.0} ms after --start-at): \
                 the generator did not offer them, so the totals lack them — leave the processes more \
                 time to start (a --start-at further ahead)",
                f.name,
                f.missed_at_start,
                r.segment
                    .map_or_else(|| "the process".to_string(), |s| format!("segment {s}")),
                r.start_late_ms.unwrap_or(0.0)
            ),
        });
    }
    let late = r.start_late_ms.unwrap_or(0.0);
    for f in r
        .flows
        .iter()
        .filter(|f| late > 0.0 && f.is_load() && f.model_kind == crate::model::ModelKind::Closed)
    {
        out.push(SelfCheck {
            check: SelfCheckName::LateStart,
            flow: Some(f.name.clone()),
            passed: false,
            detail: format!(
                "flow {}'s users started {late:.0} ms after --start-at: what they would have run \
                 before then is missing from the totals — leave the processes more time to start (a \
                 --start-at further ahead)",
                f.name
            ),
        });
    }
    let internal: u64 = r
        .flows
        .iter()
        .filter_map(|f| f.errors.get(&ErrorClass::Internal))
        .sum();
    if internal > 0 {
        out.push(SelfCheck {
            check: SelfCheckName::Internal,
            flow: None,
            passed: false,
            detail: format!(
                "stampede failed inside {internal} iterations (class `internal`; the first message is \
                 in the error examples): a bug in the generator, not the target's result — please report it"
            ),
        });
    }
    if let Some(g) = &r.generator {
        out.push(SelfCheck {
            check: SelfCheckName::Saturation,
            flow: None,
            passed: g.busy_share <= MAX_BUSY,
            detail: format!(
                "the generator's {} worker threads were busy {:.0}% of the load (limit {:.0}%){}",
                g.workers,
                g.busy_share * 100.0,
                MAX_BUSY * 100.0,
                if g.busy_share > MAX_BUSY {
                    ": stampede ran out of CPU"
                } else {
                    ""
                }
            ),
        });
        if g.connections_opened > 0 || g.local_failures > 0 {
            out.push(churn(g));
        }
    }
    out
}

fn churn(g: &crate::model::Generator) -> SelfCheck {
    // A run shorter than TIME_WAIT cannot hold more ports than it opened.
    let held =
        (g.peak_connections_per_s * TIME_WAIT.as_secs_f64()).min(g.connections_opened as f64);
    let over_range = g.local_ports.is_some_and(|r| held > r as f64);
    let passed = g.local_failures == 0 && !over_range;
    let range = g
        .local_ports
        .map_or_else(String::new, |r| format!(" of the {r} local ports"));
    let mut detail = format!(
        "opened {} connections, at most {:.0}/s: up to {:.0} ports in TIME_WAIT{range}",
        g.connections_opened, g.peak_connections_per_s, held
    );
    if g.local_failures > 0 {
        detail.push_str(&format!(
            "; {} requests failed because this machine ran out of local ports or file descriptors: \
             a generator-side limit, not the target's errors",
            g.local_failures
        ));
    } else if over_range {
        detail.push_str(": this connection churn can exhaust the ephemeral ports");
    }
    if !passed {
        detail.push_str(" (keep connections alive, spread the load over more generator machines, or widen net.ipv4.ip_local_port_range)");
    }
    SelfCheck {
        check: SelfCheckName::ConnectionChurn,
        flow: None,
        passed,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Environment, FlowResult, Generator, Latency};

    fn lat(p50_us: u64, p99_us: u64) -> Option<Latency> {
        Some(Latency {
            count: 100,
            min_us: 1,
            mean_us: p50_us as f64,
            p50_us,
            p90_us: p99_us,
            p95_us: p99_us,
            p99_us,
            p999_us: p99_us,
            max_us: p99_us,
            histogram: String::new(),
            ci95: [[0; 2]; 3],
        })
    }

    fn run(dropped: u64, lag_p99_us: u64, iteration_p50_us: u64, busy: f64) -> RunResult {
        let flow = FlowResult {
            name: "f".into(),
            kind: crate::model::FlowKind::Live,
            journey: "j".into(),
            model: String::new(),
            model_kind: crate::model::ModelKind::Open,
            tags: Default::default(),
            iterations_ok: 1000 - dropped,
            iterations_failed: 0,
            interrupted: 0,
            planned: 1000,
            dropped,
            iteration_rate: 100.0,
            iteration: lat(iteration_p50_us, iteration_p50_us * 2),
            schedule_lag: lat(100, lag_p99_us),
            arrival_slack_us: 0,
            target_lag: None,
            startup_lag: None,
            dropped_cause: None,
            errors: Default::default(),
            steps: Vec::new(),
            work: None,
            poisson: None,
            ..Default::default()
        };
        RunResult {
            schema_version: 1,
            tool: String::new(),
            scenario: String::new(),
            source: String::new(),
            started_at_unix_ms: 0,
            duration_s: 10.0,
            warmup_s: 0.0,
            interrupted: false,
            interval_s: 1.0,
            flows: vec![flow],
            error_examples: Vec::new(),
            intervals: Vec::new(),
            environment: Environment::current(),
            thresholds: Vec::new(),
            aborted: None,
            generator: Some(Generator {
                workers: 2,
                busy_share: busy,
                connections_opened: 100_000,
                peak_connections_per_s: 50.0,
                local_ports: Some(28_232),
                local_failures: 0,
            }),
            self_checks: Vec::new(),
            db_load: Vec::new(),
            trends: Vec::new(),
            ..Default::default()
        }
    }

    fn failed(r: &RunResult) -> Vec<&'static str> {
        checks(r)
            .into_iter()
            .filter(|c| !c.passed)
            .map(|c| c.check.name())
            .collect()
    }

    #[test]
    fn a_healthy_run_passes_every_check() {
        assert!(failed(&run(0, 2_000, 5_000, 0.3)).is_empty());
        // 1% drops is still within the bound; lag under the 25 ms floor is fine whatever the p50.
        assert!(failed(&run(10, 24_000, 100, 0.3)).is_empty());
    }

    #[test]
    fn drops_lag_and_saturation_are_each_caught() {
        // Drops are the target's result (every user was waiting on it), never a self-check.
        assert!(failed(&run(11, 2_000, 5_000, 0.3)).is_empty());
        assert_eq!(failed(&run(0, 30_000, 5_000, 0.3)), ["schedule_lag"]);
        // A slow target allows proportionally more lag: 25% of a 1 s median.
        assert!(failed(&run(0, 200_000, 1_000_000, 0.3)).is_empty());
        assert_eq!(failed(&run(0, 2_000, 5_000, 0.99)), ["saturation"]);
        // Lateness the plan asked for (arrival_slack 50 ms) is not the generator failing.
        let mut slack = run(0, 60_000, 5_000, 0.3);
        slack.flows[0].arrival_slack_us = 50_000;
        assert!(failed(&slack).is_empty());
        slack.flows[0].arrival_slack_us = 0;
        assert_eq!(failed(&slack), ["schedule_lag"]);
        // Users started together are late on their first iteration only: named, not blamed.
        let mut burst = run(0, 2_000, 5_000, 0.3);
        burst.flows[0].startup_lag = lat(30_000, 73_000);
        assert!(failed(&burst).is_empty());
        let check = checks(&burst)
            .into_iter()
            .find(|c| c.check == "schedule_lag")
            .unwrap();
        assert!(check.detail.contains("a ramp"), "{}", check.detail);
    }

    #[test]
    fn local_exhaustion_and_port_eating_churn_are_generator_problems() {
        let mut r = run(0, 2_000, 5_000, 0.3);
        let g = r.generator.as_mut().unwrap();
        g.local_failures = 3;
        let c = checks(&r);
        let churn = c.iter().find(|c| c.check == "connection_churn").unwrap();
        assert!(!churn.passed);
        assert!(
            churn.detail.contains("3 requests failed") && churn.detail.contains("generator-side")
        );

        let g = r.generator.as_mut().unwrap();
        g.local_failures = 0;
        // 500 new connections a second hold 30,000 ports in TIME_WAIT: more than the range.
        g.peak_connections_per_s = 500.0;
        assert_eq!(failed(&r), ["connection_churn"]);
        r.generator.as_mut().unwrap().peak_connections_per_s = 400.0;
        assert!(failed(&r).is_empty());
    }
}
