//! `stampede interact`: which combination of flows hurts — each flow alone, all together, each
//! pair — with the verdicts of `analysis::interaction`.

use std::path::Path;
use std::time::Duration;

use super::{CliError, RunArgs};
use crate::analysis::interaction::{Phase, analyse, render};
use crate::exit::Exit;
use crate::report;
use crate::run::{RunOptions, run as run_plan};
use crate::scenario::{self, Overrides};

/// Runs each flow alone, all together and (with `pairs`) each pair, then prints which
/// combination hurts which step; with `--out`, each phase's results and the interaction page.
pub(super) fn interact(
    path: &Path,
    ov: &Overrides,
    settle: Duration,
    pairs: bool,
    run: &RunArgs,
) -> Result<Exit, CliError> {
    let out = run.out.as_deref();
    let names: Vec<String> = scenario::load(path, ov)?
        .flows
        .iter()
        .filter(|f| f.is_load())
        .map(|f| f.name.clone())
        .collect();
    if names.len() < 2 {
        return Err(CliError::Input(format!(
            "interaction needs at least two flows; the scenario has {}",
            names.len()
        )));
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
    // One set of options for every phase: the live metrics endpoint is started once.
    let base = run.options()?;
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
        let plan = scenario::load(path, &phase_ov)?;
        let dir = out.map(|d| d.join(format!("phase-{label}")));
        let opts = RunOptions {
            out: dir.clone(),
            ..base.clone()
        };
        let outcome = run_plan(plan, &opts)?;
        if let Some(dir) = &dir {
            for e in report::write_all(&outcome.result, dir) {
                eprintln!("warning: {e}");
            }
        }
        if outcome.result.interrupted {
            return Ok(Exit::Interrupted);
        }
        done.push(Phase {
            flows: flows.clone(),
            result: outcome.result,
        });
    }
    let alone: Vec<Phase> = done.drain(..names.len()).collect();
    let mixed = done.remove(0);
    let rows = analyse(&alone, &mixed, &done);
    say!("{}", render(&rows));
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
                crate::report::interaction::render_html(&rows, &labels),
            ),
        ] {
            report::write_text(&dir.join(file), &text)?;
        }
    }
    Ok(Exit::Passed)
}
