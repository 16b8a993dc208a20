//! A run split across processes: `stampede merge` joins the segments' results; `stampede k8s`
//! prints the manifests that run the segments on Kubernetes.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::CliError;
use super::execute::exit_for;
use crate::exit::Exit;
use crate::model::MAX_SEGMENTS;
use crate::report;
use crate::scenario::{self, Overrides};

/// Merges the segments (after waiting up to `wait` for their results), writes every result
/// file, prints the summary and returns the exit code a single run with these results would
/// have had.
pub(super) fn merge(
    segments: &[PathBuf],
    out: &Path,
    wait: Option<Duration>,
    quiet: bool,
) -> Result<Exit, CliError> {
    if let Some(wait) = wait {
        wait_for_results(segments, wait, quiet);
    }
    let merged = crate::run::merge(segments, out).map_err(|e| CliError::Input(e.to_string()))?;
    let write_failed = !merged.write_errors.is_empty();
    for e in &merged.write_errors {
        eprintln!("error: {e}");
    }
    if !quiet {
        say!("{}", report::terminal::render(&merged.result));
        sayln!(
            "\nmerged {} segments into {}",
            merged.result.merged.len(),
            out.display()
        );
    }
    Ok(exit_for(&merged.result, write_failed))
}

/// Waits until every segment folder holds its results.json (written last, by rename) or `wait`
/// has passed; the merge then refuses a set with a segment still missing, naming it.
fn wait_for_results(segments: &[PathBuf], wait: Duration, quiet: bool) {
    let deadline = Instant::now() + wait;
    // A segment makes its folder when it starts and writes results.json (by rename) last.
    let ready = |p: &PathBuf| p.is_file() || p.join("results.json").exists();
    let mut said = false;
    while Instant::now() < deadline && !segments.iter().all(ready) {
        if !said && !quiet {
            let left = segments.iter().filter(|p| !ready(p)).count();
            eprintln!(
                "stampede: waiting up to {} for {left} segment(s) to write results.json",
                crate::units::Span(wait)
            );
            said = true;
        }
        // Polling a file system for a file another process (another machine) writes: there is
        // no event to wait on across a network volume.
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Prints the Kubernetes manifests for a scenario split into segments.
pub(super) fn k8s(path: &Path, o: &crate::deploy::K8sOptions) -> Result<Exit, CliError> {
    if o.segments == 0 || o.segments > MAX_SEGMENTS {
        return Err(CliError::Input(format!(
            "--segments must be 1 to {MAX_SEGMENTS}"
        )));
    }
    let lead = o
        .start_at
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    if lead < Duration::from_secs(10) {
        return Err(CliError::Input(format!(
            "the start ({}) leaves {} before it: the pods need time to be scheduled and pull the image\n  \
             hint: --start-in 2m, or a --start-at further ahead",
            crate::units::format_instant(o.start_at),
            crate::units::Span(lead)
        )));
    }
    let plan = scenario::load(
        path,
        &Overrides {
            target: o.target.clone(),
            ..Overrides::default()
        },
    )?;
    let mut o = o.clone();
    if o.name.is_empty() {
        o.name = plan.name.clone();
    }
    let loopback = plan.origins.iter().any(|origin| {
        let host = origin.host.trim_matches(['[', ']']);
        host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    });
    if loopback {
        eprintln!(
            "warning: the scenario's target is a loopback address, which in a pod is the pod itself\n  \
             hint: --target http://SERVICE.NAMESPACE:PORT (the system under test as the cluster sees it)"
        );
    }
    let text =
        crate::deploy::kubernetes(&plan, path, &o).map_err(|e| CliError::Input(e.to_string()))?;
    say!("{text}");
    Ok(Exit::Passed)
}
