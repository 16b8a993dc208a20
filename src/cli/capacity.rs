//! `stampede capacity`: steady levels of the whole mix, each flow at one factor of its level as
//! written, searched (`analysis::capacity::Search`) until the knee is bracketed; prints each step
//! as it finishes and the conclusion, and writes capacity.json, capacity.html and every step's
//! own results under `steps/NN/`.
//!
//! Each step is a run of its own (a fresh runtime and fresh connections): nothing carries over
//! between steps but the target's own state, and the warm-up at the start of each step (left out
//! of its verdict) is where its connections open.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use super::{CliError, RunArgs};
use crate::analysis::capacity::{self as cap, Next, Search, Slo};
use crate::exit::Exit;
use crate::model::RunResult;
use crate::model::capacity::{CapacityResult, FlowLevel, Outcome};
use crate::report;
use crate::run::{RunOptions, run as run_plan};
use crate::scenario::plan::Level;
use crate::scenario::{self, Overrides, Plan};

/// Warm-up of every step unless `--warmup` says otherwise.
const DEFAULT_WARMUP: Duration = Duration::from_secs(5);
/// Growth per step until an SLO breaks.
const GROWTH: f64 = 2.0;
/// Runs of an undecided level after its first.
const EXTENSIONS: u32 = 2;

/// What the search is asked.
#[derive(Debug)]
pub(super) struct Settings {
    pub(super) slos: Vec<Slo>,
    pub(super) step: Duration,
    pub(super) max_factor: f64,
    pub(super) resolution: f64,
    pub(super) hold_background: bool,
    pub(super) settle: Duration,
}

fn levels(plan: &Plan) -> BTreeMap<String, FlowLevel> {
    plan.flows
        .iter()
        .zip(plan.levels())
        .filter(|(f, _)| f.is_load())
        .map(|(f, l)| {
            (
                f.name.clone(),
                match l {
                    Level::Rate(r) => FlowLevel::Rate { rate_per_s: r },
                    Level::Vus(n) => FlowLevel::Vus { vus: n },
                },
            )
        })
        .collect()
}

/// Every SLO must name at least one key of the scenario: a typo would otherwise pass every step.
fn check_slos(plan: &Plan, slos: &[Slo]) -> Result<(), CliError> {
    let flows: Vec<(&str, &str, Vec<&str>)> = plan
        .flows
        .iter()
        .map(|f| {
            let j = &plan.journeys[f.journey];
            (
                f.name.as_str(),
                j.name.as_str(),
                j.requests.iter().map(|r| r.name.as_str()).collect(),
            )
        })
        .collect();
    let errors = slos
        .iter()
        .filter(|s| {
            crate::model::threshold::matching_keys(&s.threshold.pattern, flows.clone()).is_empty()
        })
        .map(|s| {
            let keys: Vec<String> = flows
                .iter()
                .flat_map(|(f, _, steps)| steps.iter().map(move |s| format!("{f}.{s}")))
                .collect();
            CliError::Input(format!(
                "--slo `{}` matches no key of the scenario; its keys are {} (and each flow's `.iteration`)",
                s.text,
                keys.join(", ")
            ))
        })
        .collect();
    CliError::all(errors)
}

/// Waits `d` between steps, listening for Ctrl-C and SIGTERM: the runs install the process's
/// signal handlers, so a signal between steps would otherwise be swallowed, and the search would
/// go on without its files being any nearer.
fn settle_interrupted(d: Duration, note: Option<String>) -> bool {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        std::thread::sleep(d);
        return false;
    };
    rt.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            tokio::time::sleep(d).await;
            return false;
        };
        // Said once the handlers listen, so a signal after it is never lost.
        if let Some(note) = note {
            eprintln!("{note}");
        }
        tokio::select! {
            _ = tokio::time::sleep(d) => false,
            _ = int.recv() => true,
            _ = term.recv() => true,
        }
    })
}

/// Everything the search has found so far, as capacity.json holds it.
struct Found<'a> {
    set: &'a Settings,
    scenario: String,
    warmup: Duration,
    steps: Vec<crate::model::capacity::Step>,
    results: Vec<RunResult>,
}

impl Found<'_> {
    fn result(&self, outcome: Outcome, refused: Option<(f64, &str)>) -> CapacityResult {
        let c = cap::conclude(&self.set.slos, &self.steps, &self.results, outcome, refused);
        CapacityResult {
            tool: format!("stampede {}", env!("CARGO_PKG_VERSION")),
            scenario: self.scenario.clone(),
            slo: self.set.slos.iter().map(|s| s.text.clone()).collect(),
            hold_background: self.set.hold_background,
            step_s: self.set.step.as_secs_f64(),
            warmup_s: self.warmup.as_secs_f64(),
            resolution: self.set.resolution,
            outcome,
            summary: c.summary,
            knee: c.knee,
            first_failure: c.first_failure,
            first_break: c.first_break,
            steps: self.steps.clone(),
            usl: c.usl,
            open: c.open,
            server_timing: c.server_timing,
        }
    }
}

fn write_files(dir: &Path, result: &CapacityResult) -> Result<(), CliError> {
    let json = serde_json::to_string_pretty(result).unwrap_or_default();
    report::write_text(&dir.join("capacity.json"), &json)?;
    report::write_text(
        &dir.join("capacity.html"),
        &report::capacity::render_html(result),
    )?;
    Ok(())
}

/// Refuses settings the search cannot honour.
fn check_settings(plan: &Plan, set: &Settings, run: &RunArgs) -> Result<(), CliError> {
    let mut errors = Vec::new();
    if !(set.max_factor.is_finite() && set.max_factor >= 1.0) {
        errors.push(format!(
            "--max-factor {} must be a number of at least 1 (the largest multiple of the scenario tried)",
            set.max_factor
        ));
    }
    if !(set.resolution.is_finite() && set.resolution >= 0.005) {
        errors.push(format!(
            "--resolution {} is finer than 0.5%: each halving of the bracket is another step",
            set.resolution
        ));
    }
    if set.step < run.interval {
        errors.push(format!(
            "--step-duration {} is shorter than one --interval ({}): a step needs whole intervals to measure",
            crate::units::Span(set.step),
            crate::units::Span(run.interval)
        ));
    }
    let scales = plan.flows.iter().any(|f| {
        f.is_load() && (!set.hold_background || f.kind != crate::model::FlowKind::Background)
    });
    if !scales {
        errors.push(
            "every flow is a background flow held at its level: nothing would scale (pass --hold-background false)"
                .to_string(),
        );
    }
    CliError::all(errors.into_iter().map(CliError::Input).collect())
}

/// Runs the search and reports it; capacity.json is rewritten after every step, so an error, a
/// signal or a broken pipe loses nothing already measured.
pub(super) fn capacity(
    path: &Path,
    ov: &Overrides,
    set: &Settings,
    run: &RunArgs,
) -> Result<Exit, CliError> {
    let plan = scenario::load(path, ov)?;
    check_slos(&plan, &set.slos)?;
    check_settings(&plan, set, run)?;
    let mut found = Found {
        set,
        scenario: plan.name.clone(),
        warmup: run.warmup.unwrap_or(DEFAULT_WARMUP),
        steps: Vec::new(),
        results: Vec::new(),
    };
    drop(plan);
    let warmup = found.warmup;
    let out = run.out.as_deref();
    if let Some(dir) = out {
        std::fs::create_dir_all(dir)
            .map_err(|e| CliError::Input(format!("cannot create `{}`: {e}", dir.display())))?;
    }
    let mut search = Search::new(GROWTH, set.resolution, set.max_factor, EXTENSIONS);
    let mut next = search.first();
    let mut refused: Option<(f64, String)> = None;
    let mut failure: Option<CliError> = None;
    // One set of options for every step: the live metrics endpoint (if any) is started once
    // and serves the whole search.
    let base = run.options()?;
    let outcome = loop {
        let (factor, extension) = match next {
            Next::Stop(o) => break o,
            Next::Run { factor, extension } => (factor, extension),
        };
        let step_len = set.step * 2u32.pow(extension);
        let mut plan = match scenario::load(path, ov) {
            Ok(p) => p,
            Err(e) => {
                failure = Some(e.into());
                break Outcome::Failed;
            }
        };
        plan.steady(factor, warmup + step_len, set.hold_background);
        // The step judges the SLOs; the scenario's own thresholds would only stop it early.
        plan.thresholds.clear();
        plan.settings.checks_gate = false;
        let offered = levels(&plan);
        // Closed flows round to whole users: a level that runs the users of one already judged
        // cannot narrow the bracket.
        let repeats = found.steps.iter().any(|s| {
            s.factor != factor
                && s.flows
                    .iter()
                    .all(|(n, f)| offered.get(n) == Some(&f.offered))
        });
        if repeats && extension == 0 {
            break match search.exhausted() {
                Next::Stop(o) => o,
                Next::Run { .. } => Outcome::Found,
            };
        }
        if let Err(e) = super::execute::check_budget(&plan, path) {
            refused = Some((factor, e.to_string()));
            break Outcome::GeneratorLimited;
        }
        let note = (!run.quiet).then(|| {
            format!(
                "capacity: settling {} before the next step",
                crate::units::Span(set.settle)
            )
        });
        if !found.steps.is_empty() && settle_interrupted(set.settle, note) {
            break Outcome::Interrupted;
        }
        let index = found.steps.len() + 1;
        let dir = out.map(|d| d.join("steps").join(format!("{index:02}")));
        if !run.quiet {
            eprintln!(
                "capacity: step {index}, ×{} for {} (+{} warm-up)",
                cap::factor_text(factor),
                crate::units::Span(step_len),
                crate::units::Span(warmup)
            );
        }
        let opts = RunOptions {
            out: dir.clone(),
            warmup,
            ..base.clone()
        };
        let outcome = match run_plan(plan, &opts) {
            Ok(o) => o,
            Err(e) => {
                failure = Some(e.into());
                break Outcome::Failed;
            }
        };
        if let Some(dir) = &dir {
            for e in report::write_all(&outcome.result, dir) {
                eprintln!("warning: {e}");
            }
        }
        // A failed setup sent no load: there is nothing to judge at any level.
        if let Some(why) = outcome
            .result
            .aborted
            .as_ref()
            .filter(|a| a.starts_with("setup failed"))
        {
            failure = Some(CliError::Input(format!("capacity: {why}")));
            break Outcome::Failed;
        }
        let step = cap::step(
            index,
            factor,
            &offered,
            &set.slos,
            &outcome.result,
            step_len.as_secs_f64(),
        );
        let lines = report::capacity::step_lines(&step);
        let verdict = step.verdict;
        found.steps.push(step);
        found.results.push(outcome.result);
        if let Some(dir) = out
            && let Err(e) = write_files(dir, &found.result(Outcome::Interrupted, None))
        {
            failure = Some(e);
            break Outcome::Failed;
        }
        if !run.quiet {
            say!("{lines}");
        }
        next = search.next(verdict);
    };
    let refused_ref = refused.as_ref().map(|(f, why)| (*f, why.as_str()));
    let result = found.result(outcome, refused_ref);
    let written = out.map(|dir| write_files(dir, &result));
    if !run.quiet {
        say!("{}", report::capacity::render(&result));
        if let (Some(dir), Some(Ok(()))) = (out, &written) {
            sayln!("\nresults: {}", dir.display());
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    if let Some(Err(e)) = written {
        return Err(e);
    }
    Ok(match outcome {
        Outcome::Found | Outcome::BeyondMaxFactor => Exit::Passed,
        Outcome::BrokenAsWritten => Exit::GateFailed,
        Outcome::GeneratorLimited => Exit::Untrustworthy,
        Outcome::Undecided => Exit::Undecided,
        Outcome::Interrupted => Exit::Interrupted,
        Outcome::Failed => Exit::InvalidInput,
    })
}
