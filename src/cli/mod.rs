//! The command line: clap definitions (their doc comments are the help text) and the commands.
//!
//! Unit arguments (`--duration 30s`, `--scale 150%`) use the same parsers as scenario files, so
//! the CLI and YAML accept the same syntax.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Parser, Subcommand};

/// Prints to stdout like `print!`, but a reader that went away (`stampede schema | head`) ends
/// the output quietly: `print!` panics on the broken pipe (exit 101), and what a command still
/// had to write (result files) would be lost with it.
macro_rules! say {
    ($($arg:tt)*) => { $crate::cli::write_out(&format!($($arg)*)) };
}

/// [`say!`] with a newline.
macro_rules! sayln {
    () => { $crate::cli::write_out("\n") };
    ($($arg:tt)*) => { $crate::cli::write_out(&format!("{}\n", format!($($arg)*))) };
}

/// Writes `text` to stdout, ignoring a closed or failing stdout.
pub(crate) fn write_out(text: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

mod capacity;
mod demo;
mod error;
mod execute;
mod interact;
mod split;
mod tools;

pub use error::CliError;

use crate::exit::Exit;
use crate::report;
use crate::run::RunOptions;
use crate::scenario::{self, Overrides};
use crate::units::{Span, parse_scale};

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
    /// An open flow's peak rate, its curve keeping its shape: `50/s` for the scenario's one open
    /// flow, `traders=50/s` for a named one. Repeatable.
    #[arg(long, value_parser = parse_for_flow::<crate::units::Rate>)]
    pub rate: Vec<scenario::ForFlow<crate::units::Rate>>,
    /// A closed flow's peak virtual users, its curve keeping its shape: `20`, or `browsers=20`.
    /// Repeatable.
    #[arg(long, value_parser = parse_for_flow::<u64>)]
    pub vus: Vec<scenario::ForFlow<u64>>,
    /// Iterations: a closed flow's total (shared by its users), or an open flow's arrivals (the
    /// load ends after them): `100`, or `signups=100`. Repeatable.
    #[arg(long, value_parser = parse_for_flow::<u64>)]
    pub iterations: Vec<scenario::ForFlow<u64>>,
}

impl LoadArgs {
    fn overrides(&self) -> Overrides {
        Overrides {
            target: self.target.clone(),
            scale: self.scale,
            duration: self.duration,
            only: self.only.clone(),
            rate: self.rate.clone(),
            vus: self.vus.clone(),
            iterations: self.iterations.clone(),
            segment: None,
        }
    }
}

/// One share of a run split across processes or machines (`stampede merge` joins the parts).
#[derive(Debug, Clone, clap::Args)]
pub struct SplitArgs {
    /// Run one segment of a split run: INDEX/COUNT with INDEX from 0 (Kubernetes'
    /// JOB_COMPLETION_INDEX), e.g. `--segment 1/3`. Takes every COUNT-th arrival, user, shared
    /// iteration and feeder row.
    #[arg(long, env = "STAMPEDE_SEGMENT", value_parser = parse_segment)]
    pub segment: Option<crate::model::Segment>,
    /// Start the schedule at this wall-clock instant, RFC 3339 or Unix seconds: give every
    /// segment the same one. A segment that starts late keeps the shared schedule and counts
    /// what it missed.
    #[arg(long, env = "STAMPEDE_START_AT", value_parser = parse_instant)]
    pub start_at: Option<std::time::SystemTime>,
    /// The run's id in results.json (by default made from the scenario and --start-at, so the
    /// segments of one run agree without being told).
    #[arg(long, env = "STAMPEDE_RUN_ID")]
    pub run_id: Option<String>,
}

/// What a URL run (`stampede run URL`) sends and judges.
#[derive(Debug, Clone, clap::Args)]
pub struct QuickArgs {
    /// URL runs: the HTTP method.
    #[arg(short = 'm', long, default_value = "GET")]
    pub method: String,
    /// URL runs: a request header, `Name: value`. Repeatable.
    #[arg(short = 'H', long = "header")]
    pub headers: Vec<String>,
    /// URL runs: the request body.
    #[arg(long)]
    pub body: Option<String>,
    /// URL runs: a threshold on the request, e.g. "p99 < 200ms" or "errors < 1%" (exit 1 when
    /// it fails). Repeatable.
    #[arg(long = "threshold")]
    pub thresholds: Vec<String>,
    /// URL runs: print the scenario the run would use and stop: save it, and grow it into a
    /// journey.
    #[arg(long)]
    pub print_scenario: bool,
}

/// Options shared by every command that runs load (`run`, `interact`, `demo`).
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Write result files into this folder: results.json, report.html, junit.xml, intervals.csv
    /// and intervals.hlog (written as the run goes).
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
    /// Leave the intervals that end within this long after the start out of every total and
    /// verdict (connections opening, caches filling); charts and the interval log keep them.
    /// (`capacity`: 5s by default.)
    #[arg(long, value_parser = parse_span)]
    pub warmup: Option<Duration>,
    /// Serve live Prometheus metrics at http://ADDR/metrics while the run goes (port 0 picks a
    /// free port; the address is printed).
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
}

impl RunArgs {
    fn options(&self) -> Result<RunOptions, CliError> {
        Ok(RunOptions {
            out: self.out.clone(),
            progress: !self.no_progress && !self.quiet && std::io::stderr().is_terminal(),
            interval: self.interval,
            warmup: self.warmup.unwrap_or_default(),
            start_at: None,
            run_id: None,
            live: self.live_metrics()?,
        })
    }

    /// Starts the live metrics endpoint, when asked for, and says where it is.
    fn live_metrics(&self) -> Result<Option<std::sync::Arc<crate::run::live::Live>>, CliError> {
        let Some(addr) = self.metrics_listen else {
            return Ok(None);
        };
        let cannot = |e: std::io::Error| {
            CliError::Input(format!(
                "--metrics-listen {addr}: cannot listen there: {e}\n  hint: choose a free port, or port 0 for any"
            ))
        };
        let listener = std::net::TcpListener::bind(addr).map_err(cannot)?;
        let bound = listener.local_addr().map_err(cannot)?;
        let live = std::sync::Arc::new(crate::run::live::Live::default());
        crate::run::live::serve(listener, live.clone()).map_err(cannot)?;
        eprintln!("stampede: live metrics at http://{bound}/metrics");
        Ok(Some(live))
    }
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a scenario against its target, or one request against a URL
    /// (`stampede run http://127.0.0.1:8080/ping --rate 100/s`).
    Run {
        /// The scenario file, or a URL for a one-request scenario built in memory.
        scenario: PathBuf,
        /// Scenario overrides.
        #[command(flatten)]
        load: LoadArgs,
        /// What a URL run sends.
        #[command(flatten)]
        quick: QuickArgs,
        /// How to run and where results go.
        #[command(flatten)]
        run: RunArgs,
        /// A share of a split run.
        #[command(flatten)]
        split: SplitArgs,
    },
    /// Check a scenario and print each flow's plan; sends no traffic.
    Validate {
        /// The scenario file.
        scenario: PathBuf,
        /// Scenario overrides.
        #[command(flatten)]
        load: LoadArgs,
        /// Show one segment's share of a split run (INDEX/COUNT, INDEX from 0).
        #[arg(long, env = "STAMPEDE_SEGMENT", value_parser = parse_segment)]
        segment: Option<crate::model::Segment>,
        /// Print the result as JSON on stdout (problems with file, line, column, message and
        /// hint), for editors and CI annotations.
        #[arg(long)]
        json: bool,
    },
    /// Turn a browser recording (HAR) into a scenario: one step per request to the page's
    /// origin, values the server issued correlated (extracted and sent back), recorded secrets
    /// replaced by variables.
    Import {
        /// The .har file (from the browser's network panel: "Save all as HAR").
        har: PathBuf,
        /// Where the scenario goes (stdout when absent).
        #[arg(long)]
        out: Option<PathBuf>,
        /// The origin to keep, e.g. https://shop.example.com (default: the page's).
        #[arg(long)]
        origin: Option<String>,
        /// Keep static assets (scripts, styles, images, fonts).
        #[arg(long)]
        keep_static: bool,
        /// Keep requests to other hosts.
        #[arg(long)]
        keep_third_party: bool,
        /// Name of the journey and its flow.
        #[arg(long, default_value = "recorded")]
        name: String,
    },
    /// Print a shell completion script: `stampede completions bash > /etc/bash_completion.d/stampede`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff): `stampede man > stampede.1; man ./stampede.1`.
    Man,
    /// Print the JSON Schema of the scenario format (or of results.json).
    Schema {
        /// The schema of results.json instead.
        #[arg(long)]
        results: bool,
        /// The schema of capacity.json instead.
        #[arg(long, conflicts_with = "results")]
        capacity: bool,
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
    /// Find how much of the scenario's mix the target takes before an SLO breaks: steady levels
    /// of every flow times one factor, up until an SLO breaks, then bisection to the knee.
    Capacity {
        /// The scenario file (factor 1 is every flow's peak level as written).
        scenario: PathBuf,
        /// An SLO: `p99 < 250ms` for every request step, or `flow.step: errors < 1%` for keys
        /// (the threshold grammar). Repeatable; at least one.
        #[arg(long = "slo", required = true, value_parser = parse_slo)]
        slo: Vec<crate::analysis::capacity::Slo>,
        /// Base URL of the system under test, replacing the scenario's `target`.
        #[arg(long, env = "STAMPEDE_TARGET")]
        target: Option<String>,
        /// Run only these flows (comma-separated names).
        #[arg(long, value_delimiter = ',')]
        only: Option<Vec<String>>,
        /// Measured length of one step (after its warm-up); an undecided step runs again twice
        /// as long, at most twice.
        #[arg(long, value_parser = parse_span, default_value = "30s")]
        step_duration: Duration,
        /// Largest factor tried (and 1/this the smallest, when factor 1 already breaks).
        #[arg(long, default_value_t = 64.0)]
        max_factor: f64,
        /// Bisection stops when the highest pass and the lowest failure are this close.
        #[arg(long, value_parser = parse_scale_arg, default_value = "5%")]
        resolution: f64,
        /// Keep background flows at their own level (batch jobs do not grow with users).
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        hold_background: bool,
        /// Pause between steps, so the target drains what the last step queued.
        #[arg(long, value_parser = parse_span, default_value = "2s")]
        settle: Duration,
        /// How to run; `--out` keeps capacity.json, capacity.html and each step's results
        /// under steps/NN/.
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
    /// Join the segments of a split run (`run --segment I/N --start-at T --out DIR`) into the
    /// results one process would have written, judged again on the merged data; refuses a set
    /// with a segment missing or twice, or from another scenario or start.
    Merge {
        /// Each segment's --out folder (or its results.json).
        #[arg(required = true)]
        segments: Vec<PathBuf>,
        /// Where the merged result files go.
        #[arg(long)]
        out: PathBuf,
        /// Wait up to this long for every segment's results.json to appear (a merge started
        /// beside the segments, as the Kubernetes merge Job is).
        #[arg(long, value_parser = parse_span)]
        wait: Option<Duration>,
        /// Print nothing but errors.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Print Kubernetes manifests that run a scenario split into segments: a ConfigMap with the
    /// scenario and its files, a results volume, an Indexed Job of segments sharing one
    /// --start-at, and a Job that merges them (`stampede k8s s.yaml --segments 4 | kubectl
    /// apply -f -`).
    K8s {
        /// The scenario file.
        scenario: PathBuf,
        /// How many segments (pods).
        #[arg(long)]
        segments: u32,
        /// When the segments start (RFC 3339 or Unix seconds); by default --start-in from now.
        #[arg(long, value_parser = parse_instant, conflicts_with = "start_in")]
        start_at: Option<std::time::SystemTime>,
        /// Time from now to the start: enough for the pods to be scheduled and pull the image.
        #[arg(long, value_parser = parse_span, default_value = "2m")]
        start_in: Duration,
        /// The container image with stampede in it, built from the Dockerfile and pushed where
        /// the cluster pulls from (e.g. registry.example.com/stampede:1).
        #[arg(long)]
        image: String,
        /// Name of the Kubernetes objects (default: the scenario's name).
        #[arg(long)]
        name: Option<String>,
        /// Namespace of the objects (default: kubectl's current one).
        #[arg(long)]
        namespace: Option<String>,
        /// Base URL of the system under test for every segment.
        #[arg(long)]
        target: Option<String>,
        /// Size of the results volume.
        #[arg(long, default_value = "1Gi")]
        storage: String,
        /// Storage class of the results volume (it must offer ReadWriteMany).
        #[arg(long)]
        storage_class: Option<String>,
        /// CPU each segment asks for.
        #[arg(long, default_value = "1")]
        cpu: String,
        /// Memory each segment asks for (and may use).
        #[arg(long, default_value = "1Gi")]
        memory: String,
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

fn parse_segment(s: &str) -> Result<crate::model::Segment, String> {
    s.parse()
}

fn parse_instant(s: &str) -> Result<std::time::SystemTime, String> {
    crate::units::parse_instant(s).map_err(|e| e.0)
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

fn parse_for_flow<T: std::str::FromStr>(s: &str) -> Result<scenario::ForFlow<T>, String>
where
    T::Err: std::fmt::Display,
{
    s.parse()
}

fn parse_slo(s: &str) -> Result<crate::analysis::capacity::Slo, String> {
    s.parse()
        .map_err(|e: crate::model::threshold::ThresholdError| e.to_string())
}

fn parse_fail_if(s: &str) -> Result<crate::analysis::compare::FailIf, String> {
    s.parse()
}

fn parse_scale_arg(s: &str) -> Result<f64, String> {
    parse_scale(s).map_err(|e| e.0)
}

/// Runs a parsed command line and returns its exit code. A command that fails is reported here,
/// once, and ends with exit 2.
pub fn run(cli: Cli) -> Exit {
    // Every virtual user holds its own connections: allow as many sockets as the system lets us.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    dispatch(cli).unwrap_or_else(|e| {
        e.report();
        Exit::InvalidInput
    })
}

fn dispatch(cli: Cli) -> Result<Exit, CliError> {
    match cli.command {
        Command::Run {
            scenario,
            load,
            quick,
            run,
            split,
        } => {
            let opts = RunOptions {
                start_at: split.start_at,
                run_id: split.run_id.clone(),
                ..run.options()?
            };
            let ov = Overrides {
                segment: split.segment,
                ..load.overrides()
            };
            match scenario.to_str().filter(|s| scenario::quick::is_url(s)) {
                Some(url) => {
                    let (q, quick_ov) = quick_run(url, &load, &quick)?;
                    let ov = Overrides {
                        segment: split.segment,
                        ..quick_ov
                    };
                    execute::run_url(&q, &ov, opts, run.quiet, quick.print_scenario)
                        .map(|r| r.map_or(Exit::Passed, |(exit, _)| exit))
                }
                None => {
                    if quick.print_scenario
                        || !quick.thresholds.is_empty()
                        || quick.body.is_some()
                        || !quick.headers.is_empty()
                        || !quick.method.eq_ignore_ascii_case("GET")
                    {
                        return Err(CliError::Input(format!(
                            "--print-scenario, --threshold, --body, -H and -m apply to a URL run; `{}` is a scenario file (its requests and thresholds are in it)",
                            scenario.display()
                        )));
                    }
                    execute::run_scenario(&scenario, &ov, opts, run.quiet).map(|(exit, _)| exit)
                }
            }
        }
        Command::Merge {
            segments,
            out,
            wait,
            quiet,
        } => split::merge(&segments, &out, wait, quiet),
        Command::K8s {
            scenario,
            segments,
            start_at,
            start_in,
            image,
            name,
            namespace,
            target,
            storage,
            storage_class,
            cpu,
            memory,
        } => split::k8s(
            &scenario,
            &crate::deploy::K8sOptions {
                segments,
                start_at: match start_at {
                    Some(at) => at,
                    None => std::time::SystemTime::now()
                        .checked_add(start_in)
                        .ok_or_else(|| {
                            CliError::Input(format!(
                                "--start-in {} is too far ahead",
                                Span(start_in)
                            ))
                        })?,
                },
                image,
                name: name.unwrap_or_default(),
                namespace,
                target,
                storage,
                storage_class,
                cpu,
                memory,
            },
        ),
        Command::Validate {
            scenario,
            load,
            segment,
            json,
        } => {
            let ov = Overrides {
                segment,
                ..load.overrides()
            };
            if json {
                tools::validate_json(&scenario, &ov)
            } else {
                validate(&scenario, &ov)
            }
        }
        Command::Import {
            har,
            out,
            origin,
            keep_static,
            keep_third_party,
            name,
        } => tools::import(
            &har,
            out.as_deref(),
            &crate::import::ImportOptions {
                origin,
                keep_static,
                keep_third_party,
                name,
            },
        ),
        Command::Completions { shell } => {
            let mut text = Vec::new();
            clap_complete::generate(
                shell,
                &mut <Cli as clap::CommandFactory>::command(),
                "stampede",
                &mut text,
            );
            say!("{}", String::from_utf8_lossy(&text));
            Ok(Exit::Passed)
        }
        Command::Man => tools::man(),
        Command::Schema { results, capacity } => {
            let schema = if results {
                report::results_schema()
            } else if capacity {
                serde_json::to_value(schemars::schema_for!(
                    crate::model::capacity::CapacityResult
                ))
                .unwrap_or_default()
            } else {
                scenario::json_schema()
            };
            sayln!(
                "{}",
                serde_json::to_string_pretty(&schema).unwrap_or_default()
            );
            Ok(Exit::Passed)
        }
        Command::Interact {
            scenario,
            load,
            settle,
            pairs,
            run,
        } => interact::interact(&scenario, &load.overrides(), settle, pairs, &run),
        Command::Capacity {
            scenario,
            slo,
            target,
            only,
            step_duration,
            max_factor,
            resolution,
            hold_background,
            settle,
            run,
        } => capacity::capacity(
            &scenario,
            &Overrides {
                target,
                only,
                ..Overrides::default()
            },
            &capacity::Settings {
                slos: slo,
                step: step_duration,
                max_factor,
                resolution,
                hold_background,
                settle,
            },
            &run,
        ),
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
        } => demo::run_demo(&scenario, &load.overrides(), run.options()?, run.quiet),
        Command::DemoTarget { listen, config } => demo::serve(listen, config.into()),
    }
}

/// A URL run's request and load from the command line; the overrides left for the scenario it
/// becomes (`--scale`, `--only`).
fn quick_run(
    url: &str,
    load: &LoadArgs,
    quick: &QuickArgs,
) -> Result<(scenario::quick::Quick, Overrides), CliError> {
    if load.target.is_some() {
        return Err(CliError::Input(
            "--target replaces a scenario's target; a URL run's target is its URL".into(),
        ));
    }
    let one = |what: &str, n: usize| {
        (n > 1).then(|| CliError::Input(format!("a URL run has one flow: give {what} once")))
    };
    if let Some(e) = one("--rate", load.rate.len())
        .or_else(|| one("--vus", load.vus.len()))
        .or_else(|| one("--iterations", load.iterations.len()))
    {
        return Err(e);
    }
    let q = scenario::quick::Quick {
        url: url.to_string(),
        method: quick.method.clone(),
        headers: quick.headers.clone(),
        body: quick.body.clone(),
        // `--scale` multiplies the level here, so `--iterations` stays the number sent.
        rate: load
            .rate
            .first()
            .map(|r| r.value.get() * load.scale.unwrap_or(1.0)),
        vus: load.vus.first().map(|v| {
            ((v.value as f64) * load.scale.unwrap_or(1.0))
                .round()
                .max(1.0) as u64
        }),
        iterations: load.iterations.first().map(|i| i.value),
        duration: load.duration,
        thresholds: quick.thresholds.clone(),
    };
    let ov = Overrides::default();
    Ok((q, ov))
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
) -> Result<Exit, CliError> {
    use crate::analysis::compare::{self, Gate};
    let (b, n) = (report::read_json(base)?, report::read_json(new)?);
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
        sayln!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        say!("{}", compare::render(&rows, &gates));
    }
    Ok(match (failed, open, undecided) {
        (true, _, _) | (false, true, Undecided::Fail) => Exit::GateFailed,
        (false, true, Undecided::Exit) => Exit::Undecided,
        _ => Exit::Passed,
    })
}

/// A function that renders results into one file format.
type Renderer = fn(&report::RunResult) -> String;

fn rerender(
    path: &Path,
    html: Option<&Path>,
    junit: Option<&Path>,
    csv: Option<&Path>,
) -> Result<Exit, CliError> {
    // A killed run leaves no results.json, but its interval log holds every completed interval.
    let hlog = path.is_dir().then(|| path.join("intervals.hlog"));
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
        let rs = report::hlog::recover(&log)?;
        say!("{}", report::hlog::render_recovered(&rs));
        return Ok(Exit::Passed);
    }
    let path = if path.is_dir() {
        path.join("results.json")
    } else {
        path.to_path_buf()
    };
    let r = report::read_json(&path)?;
    say!("{}", report::terminal::render(&r));
    let outputs: [(Option<&Path>, Renderer); 3] = [
        (html, report::html::render),
        (junit, report::junit::render),
        (csv, report::csv::render),
    ];
    let errors = outputs
        .into_iter()
        .filter_map(|(target, render)| {
            let p = target?;
            report::write_text(p, &render(&r)).err().map(CliError::from)
        })
        .collect();
    CliError::all(errors)?;
    Ok(if !r.trustworthy() {
        Exit::Untrustworthy
    } else if r.passed() {
        Exit::Passed
    } else {
        Exit::GateFailed
    })
}

fn validate(path: &Path, ov: &Overrides) -> Result<Exit, CliError> {
    let plan = scenario::load(path, ov)?;
    execute::check_budget(&plan, path)?;
    sayln!(
        "{}: ok — {} journeys, {} flows",
        path.display(),
        plan.journeys.len(),
        plan.flows.len()
    );
    for f in &plan.flows {
        sayln!("  {:<16} {}", f.name, f.describe());
    }
    if !plan.thresholds.is_empty() {
        sayln!("  thresholds:");
        for t in &plan.thresholds {
            let live = if t.abort_on_fail {
                format!(
                    " (stops the run when it fails, checked from {})",
                    Span(t.delay)
                )
            } else {
                String::new()
            };
            sayln!("    {:<24} {}{live}", t.pattern, t.text);
        }
    }
    if plan.flows.iter().any(|f| f.until_done()) {
        sayln!(
            "  load ends when every flow is done (its iterations, or its duration; at most {})",
            Span(plan.load_length())
        );
    } else {
        sayln!("  load ends after {}", Span(plan.load_length()));
    }
    if !plan.segment.is_whole() {
        sayln!("  segment {} of a split run takes:", plan.segment);
        for line in plan.shares() {
            sayln!("    {line}");
        }
        if plan.flows.iter().any(|f| !f.is_load()) {
            sayln!("    setup and teardown run in every segment");
        }
        sayln!("    `stampede merge` joins the segments' results");
    }
    sayln!(
        "  memory: about {} MiB (histograms per flow and step, virtual users at peak)",
        execute::memory_budget(&plan).0.div_ceil(1 << 20)
    );
    Ok(Exit::Passed)
}
