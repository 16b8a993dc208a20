//! The command line: clap definitions (their doc comments are the help text) and the commands.
//!
//! Unit arguments (`--duration 30s`, `--scale 150%`) use the same parsers as scenario files, so
//! the CLI and YAML accept the same syntax.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Parser, Subcommand};

mod demo;

use crate::exit::Exit;
use crate::report;
use crate::run::{RunOptions, run as run_plan};
use crate::scenario::units::{Span, parse_scale};
use crate::scenario::{self, Overrides, ScenarioError};

/// stampede: journey-based load testing with latency you can trust.
#[derive(Debug, Parser)]
#[command(name = "stampede", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options shared by commands that load a scenario.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadArgs {
    /// Base URL of the system under test, replacing the scenario's `target`.
    #[arg(long, env = "STAMPEDE_TARGET")]
    pub target: Option<String>,
    /// Cap the run's length (and the length of constant flows), e.g. 30s or 2m.
    #[arg(long, value_parser = parse_span)]
    pub duration: Option<Duration>,
    /// Multiply every rate and VU count, e.g. 0.5, 2 or 150%.
    #[arg(long, value_parser = parse_scale_arg)]
    pub scale: Option<f64>,
    /// Run only these flows (comma-separated names), e.g. to see a flow in isolation.
    #[arg(long, value_delimiter = ',')]
    pub only: Option<Vec<String>>,
}

impl LoadArgs {
    fn overrides(&self) -> Overrides {
        Overrides {
            target: self.target.clone(),
            scale: self.scale,
            duration: self.duration,
            only: self.only.clone(),
        }
    }
}

/// Options shared by every command that runs load (`run`, `interact`, `demo`).
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Write result files (results.json, intervals.hlog, junit.xml, report.html) into this folder.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// No live progress display.
    #[arg(long)]
    pub no_progress: bool,
    /// Print nothing but errors.
    #[arg(long, short)]
    pub quiet: bool,
    /// Length of one measurement interval (at least 100ms).
    #[arg(long, value_parser = parse_interval, default_value = "1s")]
    pub interval: Duration,
}

impl RunArgs {
    fn options(&self) -> RunOptions {
        RunOptions {
            out: self.out.clone(),
            progress: !self.no_progress && !self.quiet && std::io::stderr().is_terminal(),
            interval: self.interval,
        }
    }
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a scenario against its target.
    Run {
        /// The scenario file.
        scenario: PathBuf,
        /// Scenario overrides.
        #[command(flatten)]
        load: LoadArgs,
        /// How to run and where results go.
        #[command(flatten)]
        run: RunArgs,
    },
    /// Check a scenario and print each flow's plan; sends no traffic.
    Validate {
        /// The scenario file.
        scenario: PathBuf,
        /// Scenario overrides.
        #[command(flatten)]
        load: LoadArgs,
    },
    /// Print the JSON Schema of the scenario format (or of results.json).
    Schema {
        /// The schema of results.json instead.
        #[arg(long)]
        results: bool,
    },
    /// Print the summary of a results.json again, and optionally write its other forms.
    Report {
        /// A results.json written by `run --out` (or its folder). An `intervals.hlog`, or a folder
        /// with no results.json, rebuilds a summary from the interval log of a killed run.
        result: PathBuf,
        /// Write the HTML report here.
        #[arg(long)]
        html: Option<PathBuf>,
        /// Write JUnit XML here.
        #[arg(long)]
        junit: Option<PathBuf>,
        /// Write the per-interval CSV here.
        #[arg(long)]
        csv: Option<PathBuf>,
    },
    /// Run each flow alone, then all together (and each pair with --pairs), and report which
    /// combination of flows hurts which step.
    Interact {
        /// The scenario file.
        scenario: PathBuf,
        /// Scenario overrides; --duration sets each phase's length.
        #[command(flatten)]
        load: LoadArgs,
        /// Pause between phases, so the target settles.
        #[arg(long, value_parser = parse_span, default_value = "5s")]
        settle: Duration,
        /// Also run every pair of flows, to name the pair that hurts.
        #[arg(long)]
        pairs: bool,
        /// How to run; `--out` keeps each phase's result files (and interaction.json).
        #[command(flatten)]
        run: RunArgs,
    },
    /// Compare two runs key by key: percentiles, errors and throughput, with significance.
    Compare {
        /// The baseline results.json.
        base: PathBuf,
        /// The new results.json.
        new: PathBuf,
        /// Fail (exit 1) on a regression beyond a bound, e.g. "p99 > +10%", "errors > +0.5pp",
        /// "rate < -10%". Repeatable. A bound the data cannot decide exits 4 (see --undecided).
        #[arg(long = "fail-if", value_parser = parse_fail_if)]
        fail_if: Vec<crate::analysis::compare::FailIf>,
        /// What a bound the data cannot decide does: `exit` 4 (the default), `fail` (exit 1) or
        /// `pass` (exit 0).
        #[arg(long, value_enum, default_value = "exit")]
        undecided: Undecided,
        /// Print the comparison as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Start the built-in demo wallet and run the launch scenario against it.
    Demo {
        /// Which demo scenario: usdt-launch (default) or smoke.
        #[arg(long, default_value = "usdt-launch")]
        scenario: String,
        /// Scenario overrides (e.g. --duration 20s for a short look).
        #[command(flatten)]
        load: LoadArgs,
        /// How to run and where results go.
        #[command(flatten)]
        run: RunArgs,
    },
    /// Run the demo wallet service on its own.
    DemoTarget {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Demo service settings.
        #[command(flatten)]
        config: crate::demo::DemoArgs,
    },
}

fn parse_span(s: &str) -> Result<Duration, String> {
    s.parse::<Span>().map(Span::get).map_err(|e| e.0)
}

fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = parse_span(s)?;
    if d < crate::run::MIN_INTERVAL {
        return Err(format!(
            "{s} is shorter than the shortest interval, {:?}: every interval costs a histogram per \
             key and a line in the interval log",
            crate::run::MIN_INTERVAL
        ));
    }
    Ok(d)
}

fn parse_fail_if(s: &str) -> Result<crate::analysis::compare::FailIf, String> {
    s.parse()
}

fn parse_scale_arg(s: &str) -> Result<f64, String> {
    parse_scale(s).map_err(|e| e.0)
}

/// Runs a parsed command line and returns its exit code.
pub fn run(cli: Cli) -> Exit {
    // Every virtual user holds its own connections: allow as many sockets as the system lets us.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    match cli.command {
        Command::Run {
            scenario,
            load,
            run,
        } => run_scenario(&scenario, &load.overrides(), run.options(), run.quiet),
        Command::Validate { scenario, load } => validate(&scenario, &load.overrides()),
        Command::Schema { results } => {
            let schema = if results {
                report::results_schema()
            } else {
                scenario::json_schema()
            };
            println!(
                "{}",
                serde_json::to_string_pretty(&schema).unwrap_or_default()
            );
            Exit::Passed
        }
        Command::Interact {
            scenario,
            load,
            settle,
            pairs,
            run,
        } => interact(&scenario, &load.overrides(), settle, pairs, &run),
        Command::Compare {
            base,
            new,
            fail_if,
            undecided,
            json,
        } => compare(&base, &new, &fail_if, undecided, json),
        Command::Report {
            result,
            html,
            junit,
            csv,
        } => rerender(&result, html.as_deref(), junit.as_deref(), csv.as_deref()),
        Command::Demo {
            scenario,
            load,
            run,
        } => demo::run_demo(&scenario, &load.overrides(), run.options(), run.quiet),
        Command::DemoTarget { listen, config } => {
            crate::demo::serve_blocking(listen, config.into())
        }
    }
}

fn interact(path: &Path, ov: &Overrides, settle: Duration, pairs: bool, run: &RunArgs) -> Exit {
    let out = run.out.as_deref();
    use crate::analysis::interaction::{Phase, analyse, render};
    let names: Vec<String> = match scenario::load(path, ov) {
        Ok(plan) => plan.flows.iter().map(|f| f.name.clone()).collect(),
        Err(e) => {
            print_load_error(&e);
            return Exit::InvalidInput;
        }
    };
    if names.len() < 2 {
        eprintln!(
            "error: interaction needs at least two flows; the scenario has {}",
            names.len()
        );
        return Exit::InvalidInput;
    }
    let mut phases: Vec<Vec<String>> = names.iter().map(|n| vec![n.clone()]).collect();
    phases.push(names.clone());
    if pairs && names.len() > 2 {
        for i in 0..names.len() {
            for j in i + 1..names.len() {
                phases.push(vec![names[i].clone(), names[j].clone()]);
            }
        }
    }
    let mut done: Vec<Phase> = Vec::new();
    for (i, flows) in phases.iter().enumerate() {
        if i > 0 {
            std::thread::sleep(settle);
        }
        let label = if flows.len() == names.len() {
            "all".to_string()
        } else {
            flows.join("+")
        };
        eprintln!("interact: phase {}/{}: {label}", i + 1, phases.len());
        let mut phase_ov = ov.clone();
        phase_ov.only = Some(flows.clone());
        let plan = match scenario::load(path, &phase_ov) {
            Ok(p) => p,
            Err(e) => {
                print_load_error(&e);
                return Exit::InvalidInput;
            }
        };
        let dir = out.map(|d| d.join(format!("phase-{label}")));
        let opts = RunOptions {
            out: dir.clone(),
            ..run.options()
        };
        let outcome = match run_plan(plan, &opts) {
            Ok(o) => o,
            Err(e) => {
                eprintln!("error: {e}");
                return Exit::InvalidInput;
            }
        };
        if let Some(dir) = &dir {
            for e in report::write_all(&outcome.result, dir) {
                eprintln!("warning: {e}");
            }
        }
        if outcome.result.interrupted {
            return Exit::Interrupted;
        }
        done.push(Phase {
            flows: flows.clone(),
            result: outcome.result,
        });
    }
    let alone: Vec<Phase> = done.drain(..names.len()).collect();
    let mixed = done.remove(0);
    let rows = analyse(&alone, &mixed, &done);
    print!("{}", render(&rows));
    if let Some(dir) = out {
        let labels: Vec<String> = phases
            .iter()
            .map(|f| {
                if f.len() == names.len() {
                    "all".to_string()
                } else {
                    f.join("+")
                }
            })
            .collect();
        let json = serde_json::to_string_pretty(&rows).unwrap_or_default();
        for (file, text) in [
            ("interaction.json", json),
            (
                "interaction.html",
                crate::analysis::interaction::render_html(&rows, &labels),
            ),
        ] {
            if let Err(e) = report::write_text(&dir.join(file), &text) {
                eprintln!("error: {e}");
                return Exit::InvalidInput;
            }
        }
    }
    Exit::Passed
}

/// What `compare --fail-if` does with a bound the data cannot decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Undecided {
    /// Exit 4, so CI can tell it from a pass (0) and a failure (1).
    Exit,
    /// Count it as a failure (exit 1).
    Fail,
    /// Count it as a pass (exit 0).
    Pass,
}

fn compare(
    base: &Path,
    new: &Path,
    fail_if: &[crate::analysis::compare::FailIf],
    undecided: Undecided,
    json: bool,
) -> Exit {
    use crate::analysis::compare::{self, Gate};
    let (b, n) = match (report::read_json(base), report::read_json(new)) {
        (Ok(b), Ok(n)) => (b, n),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("error: {e}");
            return Exit::InvalidInput;
        }
    };
    let rows = compare::compare(&b, &n);
    let mut gates = Vec::new();
    for r in &rows {
        for f in fail_if {
            if let Some(g) = f.judge(r) {
                gates.push((r.clone(), f.to_string(), g));
            }
        }
    }
    let failed = gates.iter().any(|g| g.2 == Gate::Fail);
    let open = gates.iter().any(|g| g.2 == Gate::Undecided);
    if json {
        let v = serde_json::json!({ "rows": rows, "failed": failed, "undecided": open });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        print!("{}", compare::render(&rows, &gates));
    }
    match (failed, open, undecided) {
        (true, _, _) | (false, true, Undecided::Fail) => Exit::GateFailed,
        (false, true, Undecided::Exit) => Exit::Undecided,
        _ => Exit::Passed,
    }
}

/// A function that renders results into one file format.
type Renderer = fn(&report::RunResult) -> String;

fn rerender(path: &Path, html: Option<&Path>, junit: Option<&Path>, csv: Option<&Path>) -> Exit {
    // A killed run leaves no results.json, but its interval log holds every completed interval.
    let hlog = if path.is_dir() {
        Some(path.join("intervals.hlog"))
    } else {
        None
    };
    let looks_like_log = path.extension().is_some_and(|e| e == "hlog");
    if looks_like_log
        || hlog
            .as_ref()
            .is_some_and(|p| p.exists() && !path.join("results.json").exists())
    {
        let log = if looks_like_log {
            path.to_path_buf()
        } else {
            hlog.unwrap_or_default()
        };
        return match report::hlog::recover(&log) {
            Ok(rs) => {
                print!("{}", report::hlog::render_recovered(&rs));
                Exit::Passed
            }
            Err(e) => {
                eprintln!("error: {e}");
                Exit::InvalidInput
            }
        };
    }
    let path = if path.is_dir() {
        path.join("results.json")
    } else {
        path.to_path_buf()
    };
    let r = match report::read_json(&path) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::InvalidInput;
        }
    };
    print!("{}", report::terminal::render(&r));
    let mut exit = if !r.trustworthy() {
        Exit::Untrustworthy
    } else if r.passed() {
        Exit::Passed
    } else {
        Exit::GateFailed
    };
    let outputs: [(Option<&Path>, Renderer); 3] = [
        (html, report::html::render),
        (junit, report::junit::render),
        (csv, report::csv::render),
    ];
    for (target, render) in outputs {
        if let Some(p) = target
            && let Err(e) = report::write_text(p, &render(&r))
        {
            eprintln!("error: {e}");
            exit = Exit::InvalidInput;
        }
    }
    exit
}

/// Refuses a plan that needs more sockets than the open-file limit allows, before any traffic.
/// The plan's sockets and memory against this machine's limits; every problem is reported.
fn check_socket_budget(plan: &scenario::Plan, path: &Path) -> Result<(), String> {
    match (
        check_descriptors(plan, path),
        check_memory_budget(plan, path),
    ) {
        (Err(a), Err(b)) => Err(format!("{a}\nerror: {b}")),
        (Err(e), _) | (_, Err(e)) => Err(e),
        _ => Ok(()),
    }
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
fn check_memory_budget(plan: &scenario::Plan, path: &Path) -> Result<(), String> {
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
fn memory_budget(plan: &scenario::Plan) -> (u64, Option<u64>) {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
    (
        crate::run::estimated_memory_bytes(plan, threads, Duration::from_secs(1)),
        crate::run::available_memory_bytes(),
    )
}

fn print_load_error(e: &ScenarioError) {
    eprintln!("{e}");
}

fn validate(path: &Path, ov: &Overrides) -> Exit {
    match scenario::load(path, ov) {
        Ok(plan) => {
            if let Err(e) = check_socket_budget(&plan, path) {
                eprintln!("error: {e}");
                return Exit::InvalidInput;
            }
            println!(
                "{}: ok — {} journeys, {} flows",
                path.display(),
                plan.journeys.len(),
                plan.flows.len()
            );
            for f in &plan.flows {
                println!("  {:<16} {}", f.name, f.describe());
            }
            println!("  load ends after {}", Span(plan.load_length()));
            println!(
                "  memory: about {} MiB (histograms per flow and step, virtual users at peak)",
                memory_budget(&plan).0.div_ceil(1 << 20)
            );
            Exit::Passed
        }
        Err(e) => {
            print_load_error(&e);
            Exit::InvalidInput
        }
    }
}

/// Loads and runs a scenario, prints the summary and writes result files.
pub fn run_scenario(path: &Path, ov: &Overrides, opts: RunOptions, quiet: bool) -> Exit {
    run_scenario_with_result(path, ov, opts, quiet).0
}

/// As [`run_scenario`], also returning the run's result when there was a run.
pub fn run_scenario_with_result(
    path: &Path,
    ov: &Overrides,
    opts: RunOptions,
    quiet: bool,
) -> (Exit, Option<report::RunResult>) {
    let loading = LoadingSignals::watch();
    let plan = scenario::load(path, ov);
    drop(loading);
    let plan = match plan {
        Ok(p) => p,
        Err(e) => {
            print_load_error(&e);
            return (Exit::InvalidInput, None);
        }
    };
    if let Err(e) = check_socket_budget(&plan, path) {
        eprintln!("error: {e}");
        return (Exit::InvalidInput, None);
    }
    run_loaded_with_result(plan, opts, quiet)
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

/// Runs a loaded plan, prints the summary and writes result files.
pub fn run_loaded(plan: scenario::Plan, opts: RunOptions, quiet: bool) -> Exit {
    run_loaded_with_result(plan, opts, quiet).0
}

fn run_loaded_with_result(
    plan: scenario::Plan,
    opts: RunOptions,
    quiet: bool,
) -> (Exit, Option<report::RunResult>) {
    let out = opts.out.clone();
    let outcome = match run_plan(plan, &opts) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return (Exit::InvalidInput, None);
        }
    };
    // A file that failed during the run (the interval log on a full disk) is lost, so the run
    // ends with exit 2 even though everything measured is still in the end-of-run files.
    let mut write_failed = !outcome.write_errors.is_empty();
    for e in &outcome.write_errors {
        eprintln!("error: {e} (the run went on; the other result files hold everything measured)");
    }
    if let Some(dir) = &out {
        let errors = report::write_all(&outcome.result, dir);
        for e in &errors {
            eprintln!("error: {e}");
        }
        if !errors.is_empty() {
            // Nothing is lost: print the whole result to stdout instead.
            println!(
                "{}",
                serde_json::to_string(&outcome.result).unwrap_or_default()
            );
            write_failed = true;
        }
    }
    if !quiet {
        print!("{}", report::terminal::render(&outcome.result));
        if let Some(dir) = &out {
            println!("\nresults: {}", dir.display());
        }
    }
    let exit = if outcome.result.interrupted {
        Exit::Interrupted
    } else if write_failed {
        Exit::InvalidInput
    } else if !outcome.result.trustworthy() {
        Exit::Untrustworthy
    } else if !outcome.result.passed() {
        Exit::GateFailed
    } else {
        Exit::Passed
    };
    (exit, Some(outcome.result))
}
