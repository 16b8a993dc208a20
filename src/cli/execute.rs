//! `stampede run`: load a scenario (Ctrl-C while loading ends at once), check it against this
//! machine's descriptors and memory, run it, print the summary and write every result file.

use std::path::Path;
use std::time::Duration;

use super::CliError;
use crate::exit::Exit;
use crate::report;
use crate::run::{RunOptions, run as run_plan};
use crate::scenario::{self, Overrides};

/// Loads and runs a scenario, prints the summary and writes result files; returns the exit code
/// and the run's result.
pub(super) fn run_scenario(
    path: &Path,
    ov: &Overrides,
    opts: RunOptions,
    quiet: bool,
) -> Result<(Exit, report::RunResult), CliError> {
    let loading = LoadingSignals::watch();
    let plan = scenario::load(path, ov);
    drop(loading);
    run_checked(plan?, path, opts, quiet)
}

/// A URL run: the one-step scenario `quick` builds, loaded like a file (so it gets the same
/// messages), or printed with `print` instead of run.
pub(super) fn run_url(
    q: &scenario::quick::Quick,
    ov: &Overrides,
    opts: RunOptions,
    quiet: bool,
    print: bool,
) -> Result<Option<(Exit, report::RunResult)>, CliError> {
    let text = scenario::quick::scenario(q).map_err(CliError::Input)?;
    if print {
        say!("{text}");
        return Ok(None);
    }
    let path = Path::new("quick.yaml");
    let plan = scenario::load_str(path, &text, ov)
        .map_err(|d| CliError::from(scenario::ScenarioError::Invalid(d)))?;
    run_checked(plan, path, opts, quiet).map(Some)
}

fn run_checked(
    plan: scenario::Plan,
    path: &Path,
    opts: RunOptions,
    quiet: bool,
) -> Result<(Exit, report::RunResult), CliError> {
    check_budget(&plan, path)?;
    if !opts.warmup.is_zero() && opts.warmup >= plan.load_length() {
        return Err(CliError::Input(format!(
            "--warmup {} is as long as the run's load ({}): nothing would be left to measure",
            crate::units::Span(opts.warmup),
            crate::units::Span(plan.load_length())
        )));
    }
    check_start(&plan, &opts)?;
    run_loaded(plan, opts, quiet)
}

/// `--start-at` against the plan: a start whose whole load is already over would send nothing
/// (and pass every gate on no data), so it is refused; a segment without a start cannot be
/// merged, which is said before the run rather than after it.
fn check_start(plan: &scenario::Plan, opts: &RunOptions) -> Result<(), CliError> {
    let Some(at) = opts.start_at else {
        if !plan.segment.is_whole() {
            eprintln!(
                "warning: segment {} runs without --start-at: it starts now, and `stampede merge` \
                 needs every segment to share one --start-at",
                plan.segment
            );
        }
        return Ok(());
    };
    let end = at + plan.load_length();
    if end <= std::time::SystemTime::now() {
        return Err(CliError::Input(format!(
            "--start-at {} is over: the load ({}) would have ended at {}, so nothing would be sent\n  \
             hint: choose a start ahead of now, e.g. --start-at $(date -u -d '+30 sec' +%FT%TZ)",
            crate::units::format_instant(at),
            crate::units::Span(plan.load_length()),
            crate::units::format_instant(end)
        )));
    }
    Ok(())
}

/// The plan's sockets and memory against this machine's limits; every problem is reported.
pub(super) fn check_budget(plan: &scenario::Plan, path: &Path) -> Result<(), CliError> {
    let errors = [check_descriptors(plan, path), check_memory(plan, path)]
        .into_iter()
        .filter_map(Result::err)
        .map(CliError::Input)
        .collect();
    CliError::all(errors)
}

fn check_descriptors(plan: &scenario::Plan, path: &Path) -> Result<(), String> {
    let Ok((soft, _hard)) = rlimit::getrlimit(rlimit::Resource::NOFILE) else {
        return Ok(());
    };
    let (sockets, timers) = (plan.sockets_needed(), plan.timers_needed());
    let needed = sockets + timers + crate::run::SPARE_FILES;
    if needed > soft {
        let timers = if timers > 0 {
            format!(" and {timers} timers (users that wait)")
        } else {
            String::new()
        };
        return Err(format!(
            "{}: the plan can hold {sockets} connections open at once (virtual users at peak × origins){timers}, \
             but this process may open only {soft} files (ulimit -n, raised to the hard limit)\n  \
             hint: lower max_vus or VU counts, or raise the hard limit (ulimit -Hn) for this user",
            path.display(),
        ));
    }
    Ok(())
}

/// The run's estimated memory ([`crate::run::estimated_memory_bytes`]) against what this machine
/// has free: over it is refused, over half of it is a warning.
fn check_memory(plan: &scenario::Plan, path: &Path) -> Result<(), String> {
    let (needed, free) = memory_budget(plan);
    let Some(free) = free else { return Ok(()) };
    let hint = "hint: fewer flows or steps (every flow and request step keeps its own histograms), or a machine with more memory";
    if needed > free {
        return Err(format!(
            "{}: the run would need about {} MiB of memory, but this machine has {} MiB available\n  {hint}",
            path.display(),
            needed >> 20,
            free >> 20
        ));
    }
    if needed > free / 2 {
        eprintln!(
            "warning: {}: the run will need about {} MiB of memory, more than half of the {} MiB available\n  {hint}",
            path.display(),
            needed >> 20,
            free >> 20
        );
    }
    Ok(())
}

/// (Estimated bytes the run needs, bytes available) for a plan run with a 1 s interval.
pub(super) fn memory_budget(plan: &scenario::Plan) -> (u64, Option<u64>) {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
    (
        crate::run::estimated_memory_bytes(plan, threads, Duration::from_secs(1)),
        crate::run::available_memory_bytes(),
    )
}

/// Ctrl-C or SIGTERM while a scenario loads (a large feeder file can take a while): nothing has
/// been sent and no result exists, so the process says so and exits 130 at once.
///
/// The watcher is a thread with its own small runtime, and it is stopped and joined (its runtime
/// dropped) when loading ends: tokio wakes one runtime's signal driver per signal, so a watcher
/// left running would take the run's Ctrl-C for itself.
#[derive(Debug)]
struct LoadingSignals {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LoadingSignals {
    fn watch() -> LoadingSignals {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("stampede-load-signals".into())
            .spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_io()
                    .build()
                else {
                    let _ = ready_tx.send(());
                    return;
                };
                rt.block_on(async move {
                    use tokio::signal::unix::{SignalKind, signal};
                    let (Ok(mut int), Ok(mut term)) = (
                        signal(SignalKind::interrupt()),
                        signal(SignalKind::terminate()),
                    ) else {
                        let _ = ready_tx.send(());
                        return;
                    };
                    let _ = ready_tx.send(());
                    tokio::select! {
                        _ = int.recv() => {}
                        _ = term.recv() => {}
                        _ = stopped => return,
                    }
                    eprintln!(
                        "interrupted while loading the scenario: nothing was sent, no results were written"
                    );
                    std::process::exit(Exit::Interrupted as i32);
                });
            })
            .ok();
        if thread.is_some() {
            let _ = ready.recv();
        }
        LoadingSignals {
            stop: Some(stop),
            thread,
        }
    }
}

impl Drop for LoadingSignals {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Runs a loaded plan, prints the summary and writes result files. A result file that cannot be
/// written is reported (and the whole result printed to stdout instead) and the run ends with
/// exit 2: the run happened, but something it measured would otherwise be lost.
fn run_loaded(
    plan: scenario::Plan,
    opts: RunOptions,
    quiet: bool,
) -> Result<(Exit, report::RunResult), CliError> {
    let out = opts.out.clone();
    let outcome = run_plan(plan, &opts)?;
    // A file that failed during the run (the interval log on a full disk) is lost, so the run
    // ends with exit 2 even though everything measured is still in the end-of-run files.
    let mut lost: Vec<CliError> = outcome
        .write_errors
        .iter()
        .map(|e| {
            CliError::Input(format!(
                "{e} (the run went on; the other result files hold everything measured)"
            ))
        })
        .collect();
    if let Some(dir) = &out {
        let errors = report::write_all(&outcome.result, dir);
        if !errors.is_empty() {
            // Nothing is lost: print the whole result to stdout instead.
            sayln!(
                "{}",
                serde_json::to_string(&outcome.result).unwrap_or_default()
            );
            lost.extend(errors.into_iter().map(CliError::from));
        }
    }
    let write_failed = !lost.is_empty();
    if let Err(e) = CliError::all(lost) {
        e.report();
    }
    if !quiet {
        say!("{}", report::terminal::render(&outcome.result));
        if let Some(dir) = &out {
            sayln!("\nresults: {}", dir.display());
        }
    }
    Ok((exit_for(&outcome.result, write_failed), outcome.result))
}

/// A run's exit code: interrupted, a lost result file, the generator's own limits, a failed
/// gate, or passed — in that order.
pub(super) fn exit_for(result: &report::RunResult, write_failed: bool) -> Exit {
    if result.interrupted {
        Exit::Interrupted
    } else if write_failed {
        Exit::InvalidInput
    } else if !result.trustworthy() {
        Exit::Untrustworthy
    } else if !result.passed() {
        Exit::GateFailed
    } else {
        Exit::Passed
    }
}
