//! `stampede demo`: the built-in wallet on a loopback port and a demo scenario against it, with
//! closing words taken from the run. The wallet itself (`crate::demo`) knows nothing of the
//! engine; this command joins the two.

use std::net::SocketAddr;

use super::CliError;
use crate::demo::DemoConfig;
use crate::exit::Exit;
use crate::run::RunOptions;
use crate::scenario::Overrides;

/// `stampede demo`: the wallet on 127.0.0.1:0 and a demo scenario against it.
pub(super) fn run_demo(
    name: &str,
    ov: &Overrides,
    opts: RunOptions,
    quiet: bool,
) -> Result<Exit, CliError> {
    if !crate::demo::DEMO_FILES
        .iter()
        .any(|(rel, _)| *rel == format!("scenarios/{name}.yaml"))
    {
        return Err(CliError::Input(format!(
            "unknown demo scenario `{name}`: expected usdt-launch, smoke or soak"
        )));
    }
    let files = tempfile::tempdir()
        .map_err(|e| CliError::Input(format!("cannot create a temporary folder: {e}")))?;
    let path = crate::demo::write_demo_files(files.path(), name)
        .map_err(|e| CliError::Input(format!("cannot write the demo scenario: {e}")))?;
    eprintln!(
        "stampede demo: starting the wallet (seeding {} users)…",
        crate::demo::wallet::USERS
    );
    let (addr, handle) = crate::demo::spawn(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        crate::demo::DemoConfig::default(),
    )?;
    eprintln!("stampede demo: wallet on http://{addr}; running scenarios/{name}.yaml");
    let mut ov = ov.clone();
    ov.target = Some(format!("http://{addr}"));
    let alone = ov.only.is_none() && name == "usdt-launch";
    let (exit, result) = super::execute::run_scenario(&path, &ov, opts, quiet)?;
    drop(handle);
    if alone && !quiet {
        sayln!("\n{}", closing_words(&result));
    }
    Ok(exit)
}

/// `stampede demo-target`: the wallet alone, serving until Ctrl-C.
pub(super) fn serve(addr: SocketAddr, cfg: DemoConfig) -> Result<Exit, CliError> {
    eprintln!("demo wallet: seeding {} users…", crate::demo::wallet::USERS);
    let (bound, handle) = crate::demo::spawn(addr, cfg)
        .map_err(|e| CliError::Input(format!("cannot start the demo wallet on {addr}: {e}")))?;
    eprintln!("demo wallet listening on http://{bound} (Ctrl-C to stop)");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Input(format!("cannot start the wallet's signal watcher: {e}")))?;
    let _ = rt.block_on(tokio::signal::ctrl_c());
    drop(handle);
    Ok(Exit::Interrupted)
}

/// What this run of the launch scenario showed, from its own numbers: each live flow's p99,
/// the wallet's pool wait (its `Server-Timing`), what the batch job did to live steps, and the
/// command that proves which flows hurt each other.
pub(super) fn closing_words(r: &crate::report::RunResult) -> String {
    use std::fmt::Write as _;
    let mut out = String::from("What this run showed:\n");
    for f in r
        .flows
        .iter()
        .filter(|f| f.kind == crate::model::FlowKind::Live)
    {
        if let Some(it) = &f.iteration {
            let _ = writeln!(
                out,
                "  {}: iteration p99 {:.0} ms over {} iterations",
                f.name,
                it.p99_us as f64 / 1000.0,
                f.iterations_ok + f.iterations_failed
            );
        }
    }
    let (wait_ms, waits) = r
        .flows
        .iter()
        .flat_map(|f| &f.steps)
        .flat_map(|s| &s.server_timing)
        .filter(|t| t.name == "pool-wait")
        .fold((0.0, 0u64), |(ms, n), t| (ms + t.total_ms, n + t.reported));
    if waits > 0 {
        let _ = writeln!(
            out,
            "  requests waited {:.1} ms on average for a database connection (Server-Timing pool-wait, {waits} responses)",
            wait_ms / waits as f64
        );
    }
    for s in r.flows.iter().flat_map(|f| &f.steps) {
        if let Some(b) = s.batch.as_ref().filter(|b| b.interferes) {
            let _ = writeln!(
                out,
                "  while the batch job ran, {} p50 went {:.1} → {:.1} ms",
                s.key,
                b.without.p50_us as f64 / 1000.0,
                b.during.p50_us as f64 / 1000.0
            );
        }
    }
    let _ = write!(
        out,
        "Whether the flows hurt each other: start `stampede demo-target`, then \
         `stampede interact scenarios/usdt-launch.yaml --pairs --target http://127.0.0.1:8080` runs each \
         alone, then together. One flow alone: `stampede demo --only traders`."
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{FlowResult, Latency, StepResult, TimingResult};

    #[test]
    fn the_closing_words_come_from_the_run() {
        let mut h = crate::model::new_hist();
        for v in [1_000u64, 2_000, 412_000] {
            h.record(v).unwrap();
        }
        let step = StepResult {
            key: "traders.exchange".into(),
            server_timing: vec![TimingResult {
                name: "pool-wait".into(),
                reported: 4,
                duration: None,
                total_ms: 10.0,
                count_total: 0.0,
                count_mean: 0.0,
                ignored: 0,
            }],
            ..Default::default()
        };
        let r = crate::report::RunResult {
            flows: vec![FlowResult {
                name: "traders".into(),
                kind: crate::model::FlowKind::Live,
                iterations_ok: 3,
                iteration: Latency::from_hist(Some(&h)),
                steps: vec![step],
                ..Default::default()
            }],
            ..Default::default()
        };
        let text = closing_words(&r);
        assert!(
            text.contains("traders: iteration p99 412 ms over 3 iterations"),
            "{text}"
        );
        assert!(text.contains("waited 2.5 ms on average"), "{text}");
        assert!(text.contains("stampede interact"), "{text}");
        assert!(!text.contains("Each flow alone meets"), "{text}");
    }
}
