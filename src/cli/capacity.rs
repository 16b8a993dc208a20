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

/// Runs the search and reports it.
pub(super) fn capacity(
    path: &Path,
    ov: &Overrides,
    set: &Settings,
    run: &RunArgs,
) -> Result<Exit, CliError> {
    let plan = scenario::load(path, ov)?;
    check_slos(&plan, &set.slos)?;
    let scenario_name = plan.name.clone();
    drop(plan);
    let warmup = run.warmup.unwrap_or(DEFAULT_WARMUP);
    let out = run.out.as_deref();
    if let Some(dir) = out {
        std::fs::create_dir_all(dir)
            .map_err(|e| CliError::Input(format!("cannot create `{}`: {e}", dir.display())))?;
    }
    let mut search = Search::new(GROWTH, set.resolution, set.max_factor, EXTENSIONS);
    let mut steps = Vec::new();
    let mut results: Vec<RunResult> = Vec::new();
    let mut next = search.first();
    let mut limit_note = None;
    let outcome = loop {
        let (factor, extension) = match next {
            Next::Stop(o) => break o,
            Next::Run { factor, extension } => (factor, extension),
        };
        let step_len = set.step * 2u32.pow(extension);
        let mut plan = scenario::load(path, ov)?;
        plan.steady(factor, warmup + step_len, set.hold_background);
        // The step judges the SLOs; the scenario's own thresholds would only stop it early.
        plan.thresholds.clear();
        plan.settings.checks_gate = false;
        let offered = levels(&plan);
        // Closed flows round to whole users: a level that runs the users of one already judged
        // cannot narrow the bracket.
        let repeats = steps.iter().any(|s: &crate::model::capacity::Step| {
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
            limit_note = Some(format!("×{}: {e}", cap::factor_text(factor)));
            break Outcome::GeneratorLimited;
        }
        if !steps.is_empty() {
            std::thread::sleep(set.settle);
        }
        let index = steps.len() + 1;
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
            ..run.options()
        };
        let outcome = run_plan(plan, &opts)?;
        if let Some(dir) = &dir {
            for e in report::write_all(&outcome.result, dir) {
                eprintln!("warning: {e}");
            }
        }
        let step = cap::step(
            index,
            factor,
            &offered,
            &set.slos,
            &outcome.result,
            step_len.as_secs_f64(),
        );
        if !run.quiet {
            print!("{}", report::capacity::step_lines(&step));
        }
        let interrupted = outcome.result.interrupted;
        let verdict = step.verdict;
        steps.push(step);
        results.push(outcome.result);
        if interrupted {
            break Outcome::Interrupted;
        }
        next = search.next(verdict);
    };
    let c = cap::conclude(&set.slos, &steps, &results, outcome);
    let mut result = CapacityResult {
        tool: format!("stampede {}", env!("CARGO_PKG_VERSION")),
        scenario: scenario_name,
        slo: set.slos.iter().map(|s| s.text.clone()).collect(),
        hold_background: set.hold_background,
        step_s: set.step.as_secs_f64(),
        warmup_s: warmup.as_secs_f64(),
        resolution: set.resolution,
        outcome,
        summary: c.summary,
        knee: c.knee,
        first_failure: c.first_failure,
        first_break: c.first_break,
        steps,
        usl: c.usl,
        open: c.open,
        server_timing: c.server_timing,
    };
    if let Some(note) = limit_note {
        result.summary = format!(
            "{note}: the knee lies beyond what this machine can offer. {}",
            result.summary
        );
    }
    if !run.quiet {
        print!("{}", report::capacity::render(&result));
    }
    if let Some(dir) = out {
        let json = serde_json::to_string_pretty(&result).unwrap_or_default();
        report::write_text(&dir.join("capacity.json"), &json)?;
        report::write_text(
            &dir.join("capacity.html"),
            &report::capacity::render_html(&result),
        )?;
        if !run.quiet {
            println!("\nresults: {}", dir.display());
        }
    }
    Ok(match outcome {
        Outcome::Found | Outcome::BeyondMaxFactor => Exit::Passed,
        Outcome::BrokenAsWritten => Exit::GateFailed,
        Outcome::GeneratorLimited => Exit::Untrustworthy,
        Outcome::Undecided => Exit::Undecided,
        Outcome::Interrupted => Exit::Interrupted,
    })
}
