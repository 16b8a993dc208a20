//! Commands around the runs: `import` (a HAR recording into a scenario), `validate --json`, and
//! the manual page.

use std::path::Path;

use super::CliError;
use crate::exit::Exit;
use crate::scenario::{self, Overrides, ScenarioError};

/// Imports a HAR file and writes (or prints) the scenario; the import's report goes to stderr.
pub(super) fn import(
    har: &Path,
    out: Option<&Path>,
    o: &crate::import::ImportOptions,
) -> Result<Exit, CliError> {
    let text = std::fs::read_to_string(har)
        .map_err(|e| CliError::Input(format!("cannot read `{}`: {e}", har.display())))?;
    let parsed = crate::import::Har::parse(&text)
        .map_err(|e| CliError::Input(format!("{}: {e}", har.display())))?;
    let imported = crate::import::import(&parsed, o)
        .map_err(|e| CliError::Input(format!("{}: {e}", har.display())))?;
    match out {
        Some(path) => {
            std::fs::write(path, &imported.yaml)
                .map_err(|e| CliError::Input(format!("cannot write `{}`: {e}", path.display())))?;
            for line in &imported.report {
                eprintln!("{line}");
            }
            eprintln!(
                "wrote {}; check it with `stampede validate {}`",
                path.display(),
                path.display()
            );
        }
        None => {
            for line in &imported.report {
                eprintln!("{line}");
            }
            say!("{}", imported.yaml);
        }
    }
    Ok(Exit::Passed)
}

/// `validate --json`: `{"ok": bool, "problems": [{file, line, column, message, hint}],
/// "flows": [...]}` on stdout; exit 2 when there are problems, as `validate` does.
pub(super) fn validate_json(path: &Path, ov: &Overrides) -> Result<Exit, CliError> {
    let (problems, flows) = match scenario::load(path, ov) {
        Ok(plan) => (
            // The machine's limits, as plain `validate` checks them.
            match super::execute::check_budget(&plan, path) {
                Ok(()) => Vec::new(),
                Err(e) => vec![serde_json::json!({
                    "file": path.display().to_string(),
                    "line": serde_json::Value::Null,
                    "column": serde_json::Value::Null,
                    "message": e.to_string(),
                    "hint": serde_json::Value::Null,
                })],
            },
            plan.flows
                .iter()
                .map(|f| serde_json::json!({ "name": f.name, "plan": f.describe() }))
                .collect::<Vec<_>>(),
        ),
        Err(ScenarioError::Invalid(d)) => (
            d.0.iter()
                .map(|d| {
                    serde_json::json!({
                        "file": d.file.display().to_string(),
                        "line": d.pos.line,
                        "column": d.pos.col,
                        "message": d.message,
                        "hint": d.hint,
                    })
                })
                .collect(),
            Vec::new(),
        ),
        Err(e) => (
            vec![serde_json::json!({
                "file": path.display().to_string(),
                "line": serde_json::Value::Null,
                "column": serde_json::Value::Null,
                "message": e.to_string(),
                "hint": serde_json::Value::Null,
            })],
            Vec::new(),
        ),
    };
    let ok = problems.is_empty();
    sayln!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({
            "ok": ok,
            "problems": problems,
            "flows": flows,
        }))
        .unwrap_or_default()
    );
    Ok(if ok { Exit::Passed } else { Exit::InvalidInput })
}

/// The manual page, from the same definitions as `--help`: the command, then each subcommand's
/// options.
pub(super) fn man() -> Result<Exit, CliError> {
    use std::io::Write as _;
    let cmd = <super::Cli as clap::CommandFactory>::command();
    let mut out = Vec::new();
    let fail = |e: std::io::Error| CliError::Input(format!("cannot render the manual page: {e}"));
    clap_mangen::Man::new(cmd.clone())
        .render(&mut out)
        .map_err(fail)?;
    for sub in cmd.get_subcommands() {
        let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
        writeln!(
            out,
            ".SH \"STAMPEDE {}\"\n{}",
            sub.get_name().to_uppercase(),
            about.replace('\\', "\\\\")
        )
        .map_err(fail)?;
        clap_mangen::Man::new(sub.clone())
            .render_options_section(&mut out)
            .map_err(fail)?;
    }
    out.extend_from_slice(EXIT_STATUS.as_bytes());
    say!("{}", String::from_utf8_lossy(&out));
    Ok(Exit::Passed)
}

/// The manual's exit codes and environment (the README has the long form).
const EXIT_STATUS: &str = r#".SH "EXIT STATUS"
.TP
0
passed
.TP
1
a threshold (or a gated check) failed, or compare \-\-fail\-if found a regression
.TP
2
invalid input: scenario, script, arguments, an unwritable \-\-out, a merge of segments that are not one run
.TP
3
the run cannot be trusted because of the generator's own limits (its lateness, CPU, ports, a segment that began late)
.TP
4
compare \-\-fail\-if could not decide a bound; capacity left a level undecided
.TP
130
interrupted (every result file is still written)
.SH ENVIRONMENT
.TP
STAMPEDE_TARGET
the target, as \-\-target
.TP
STAMPEDE_SEGMENT, STAMPEDE_START_AT, STAMPEDE_RUN_ID
a split run's segment, start and id, as \-\-segment, \-\-start\-at, \-\-run\-id
"#;
