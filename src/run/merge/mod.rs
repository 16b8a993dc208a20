//! `stampede merge`: the segments of a split run joined into the result one process with the
//! whole plan would have written.
//!
//! Nothing is averaged: counters are summed, every histogram is added exactly (the segments use
//! the same histogram parameters), interval histograms are added where their wall-clock spans
//! coincide (every segment's intervals are `start_at + k·interval`), and every derived figure —
//! percentiles and their intervals, trends, the batch split, the Poisson fit, the database-time
//! ranking, thresholds — is computed again from the merged data. Only the generator's own
//! health (its CPU, its connections) stays per segment, because it is a fact about each
//! machine. A set that is not one whole split run is refused before anything is written.

mod combine;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::model::threshold::{Expr, Threshold};
use crate::model::{IntervalRow, RunResult, SegmentFlow, SegmentSummary, SelfCheck, SelfCheckName};
use crate::report::hlog::{HlogWriter, LoggedInterval, read_intervals};

/// Why a set of segments was not merged.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// A segment's results could not be read.
    #[error("{0}")]
    Read(String),
    /// The results are not the segments of one split run; every reason is listed.
    #[error("these results are not one whole split run:\n{}", .0.iter().map(|r| format!("  - {r}")).collect::<Vec<_>>().join("\n"))]
    NotOneRun(Vec<String>),
    /// `--out` is one of the segments' folders.
    #[error(
        "--out `{0}` is one of the segments: the merge would overwrite its results\n  hint: choose another folder for the merged run"
    )]
    OutIsInput(PathBuf),
    /// The output folder could not be made.
    #[error("cannot write the merged results to `{path}`: {source}")]
    Out {
        /// The folder.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// A merged run and any file that could not be written.
#[derive(Debug)]
pub struct Merged {
    /// The merged result.
    pub result: RunResult,
    /// Files that could not be written (the result itself is complete).
    pub write_errors: Vec<String>,
}

/// One segment's results as read.
struct Part {
    dir: PathBuf,
    result: RunResult,
    intervals: Vec<LoggedInterval>,
}

/// Reads the segments in `dirs` (folders written by `run --segment … --out`, or their
/// results.json), checks that they are one whole split run, merges them, and writes every result
/// file into `out`.
pub fn merge(dirs: &[PathBuf], out: &Path) -> Result<Merged, MergeError> {
    // Compared made absolute, so `./seg-0` and `seg-0` are one folder.
    let target = crate::deploy::normal(out);
    if let Some(d) = dirs.iter().find(|d| {
        let d = crate::deploy::normal(d);
        d == target || d.parent() == Some(target.as_path()) && d.ends_with("results.json")
    }) {
        return Err(MergeError::OutIsInput(d.clone()));
    }
    let mut parts = Vec::new();
    for d in dirs {
        parts.push(read_part(d)?);
    }
    check_one_run(&parts)?;
    parts.sort_by_key(|p| p.result.segment.map_or(0, |s| s.index));
    std::fs::create_dir_all(out).map_err(|source| MergeError::Out {
        path: out.to_path_buf(),
        source,
    })?;
    let mut result = combine::results(&parts.iter().map(|p| &p.result).collect::<Vec<_>>());
    // Checked above to be a sane length.
    let interval = Duration::try_from_secs_f64(result.interval_s).unwrap_or(Duration::from_secs(1));
    let merged_intervals = add_intervals(&parts, interval.as_secs_f64());
    result.intervals = merge_rows(&parts, &merged_intervals);
    judge(&mut result, &parts);
    let mut write_errors: Vec<String> = Vec::new();
    let start = result
        .start_at_unix_ms
        .and_then(instant_of)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    if let Err(e) = write_hlog(
        &out.join("intervals.hlog"),
        start,
        &merged_intervals,
        interval,
    ) {
        write_errors.push(format!("cannot write intervals.hlog: {e}"));
    }
    write_errors.extend(
        crate::report::write_all(&result, out)
            .into_iter()
            .map(|e| e.to_string()),
    );
    Ok(Merged {
        result,
        write_errors,
    })
}

fn read_part(d: &Path) -> Result<Part, MergeError> {
    let unfinished = |what: String| {
        MergeError::Read(format!(
            "{what}: the segment did not finish (or never started, or failed before writing it)\n  \
             hint: check that segment's log; `merge --wait D` waits for segments still running"
        ))
    };
    if !d.exists() {
        return Err(unfinished(format!("`{}` does not exist", d.display())));
    }
    if d.is_dir() && !d.join("results.json").exists() {
        return Err(unfinished(format!(
            "`{}` holds no results.json",
            d.display()
        )));
    }
    let (json, dir) = if d.is_dir() {
        (d.join("results.json"), d.to_path_buf())
    } else {
        (
            d.to_path_buf(),
            d.parent().map_or_else(PathBuf::new, Path::to_path_buf),
        )
    };
    let result = crate::report::read_json(&json).map_err(|e| {
        MergeError::Read(format!(
            "{e}\n  hint: give each segment's --out folder (it holds results.json and intervals.hlog)"
        ))
    })?;
    let hlog = dir.join("intervals.hlog");
    let intervals = if hlog.exists() {
        read_intervals(&hlog).map_err(|e| MergeError::Read(e.to_string()))?
    } else {
        Vec::new()
    };
    Ok(Part {
        dir,
        result,
        intervals,
    })
}

/// Every reason the parts are not the segments of one split run: all of them segments of the
/// same count, each index exactly once, one scenario digest, one start instant, one run id,
/// one interval length.
fn check_one_run(parts: &[Part]) -> Result<(), MergeError> {
    let mut why = Vec::new();
    let name = |p: &Part| p.dir.display().to_string();
    let Some(first) = parts.first() else {
        return Err(MergeError::NotOneRun(vec!["no results were given".into()]));
    };
    for p in parts.iter().filter(|p| p.result.segment.is_none()) {
        why.push(if p.result.merged.is_empty() {
            format!(
                "{} is a whole run, not a segment (it ran without --segment)",
                name(p)
            )
        } else {
            format!(
                "{} is already a merged run (of {} segments); merge the segments' own folders",
                name(p),
                p.result.merged.len()
            )
        });
    }
    let counts: BTreeMap<u32, Vec<String>> = parts
        .iter()
        .filter_map(|p| p.result.segment.map(|s| (s.count, name(p))))
        .fold(BTreeMap::new(), |mut m, (c, n)| {
            m.entry(c).or_insert_with(Vec::new).push(n);
            m
        });
    if counts.len() > 1 {
        why.push(format!(
            "the segments split the run differently: {}",
            counts
                .iter()
                .map(|(c, ns)| format!("into {c} ({})", ns.join(", ")))
                .collect::<Vec<_>>()
                .join("; ")
        ));
    } else if let Some((&count, _)) = counts.iter().next() {
        let mut seen: BTreeMap<u32, Vec<String>> = BTreeMap::new();
        for p in parts {
            if let Some(s) = p.result.segment {
                seen.entry(s.index).or_default().push(name(p));
            }
        }
        for (i, ns) in seen.iter().filter(|(_, ns)| ns.len() > 1) {
            why.push(format!(
                "segment {i}/{count} is given {} times: {} (a retried segment ran its share twice; keep one)",
                ns.len(),
                ns.join(", ")
            ));
        }
        let missing: Vec<String> = (0..count)
            .filter(|i| !seen.contains_key(i))
            .map(|i| format!("{i}/{count}"))
            .collect();
        if !missing.is_empty() {
            why.push(format!(
                "segment{} {} {} missing: without {} the totals would be short of the plan",
                if missing.len() > 1 { "s" } else { "" },
                missing.join(", "),
                if missing.len() > 1 { "are" } else { "is" },
                if missing.len() > 1 { "them" } else { "it" },
            ));
        }
    }
    let differ = |what: &str, f: &dyn Fn(&RunResult) -> String, why: &mut Vec<String>| {
        let base = f(&first.result);
        if let Some(p) = parts.iter().find(|p| f(&p.result) != base) {
            why.push(format!(
                "{what}: {} has {base}, {} has {}",
                name(first),
                name(p),
                f(&p.result)
            ));
        }
    };
    differ(
        "a different scenario (or files it reads, or different --target, --rate, --scale, --duration … options)",
        &|r| short(&r.scenario_digest),
        &mut why,
    );
    differ(
        "a different start instant (give every segment the same --start-at)",
        &|r| {
            r.start_at_unix_ms.map_or_else(
                || "no --start-at".into(),
                |ms| {
                    instant_of(ms).map_or_else(|| format!("{ms} ms"), crate::units::format_instant)
                },
            )
        },
        &mut why,
    );
    differ("a different run id", &|r| r.run_id.clone(), &mut why);
    differ(
        "a different --interval",
        &|r| format!("{}s", r.interval_s),
        &mut why,
    );
    differ(
        "a different --warmup",
        &|r| format!("{}s", r.warmup_s),
        &mut why,
    );
    for p in parts {
        let i = p.result.interval_s;
        if !(i.is_finite() && (0.001..=86_400.0).contains(&i)) {
            why.push(format!(
                "{} has an interval of {i} s, which no run writes (a damaged file?)",
                name(p)
            ));
        }
    }
    if parts
        .iter()
        .all(|p| p.result.start_at_unix_ms.is_none() && p.result.segment.is_some())
    {
        why.push(
            "the segments ran without --start-at, so their intervals cannot be lined up on one clock"
                .into(),
        );
    }
    if why.is_empty() {
        Ok(())
    } else {
        Err(MergeError::NotOneRun(why))
    }
}

fn short(digest: &str) -> String {
    format!("digest {}", digest.chars().take(12).collect::<String>())
}

/// Milliseconds since the epoch as an instant, if the clock can hold it.
fn instant_of(ms: u64) -> Option<SystemTime> {
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_millis(ms))
}

/// Each interval row's index `k` (it starts at `start_at + k·interval`), by its end `t`. The
/// collector writes a row for every flow in every interval, so a segment's distinct ends, in
/// order, are its intervals 0, 1, 2, …; the end alone cannot say, since the last interval runs
/// over its nominal end (to the moment the segment stopped, 3.02 s for an interval from 2 s).
fn interval_index(rows: &[IntervalRow]) -> BTreeMap<u64, i64> {
    let mut ends: Vec<u64> = rows.iter().map(|r| r.t.to_bits()).collect();
    ends.sort_by(|a, b| f64::from_bits(*a).total_cmp(&f64::from_bits(*b)));
    ends.dedup();
    ends.into_iter().zip(0..).collect()
}

/// One interval of one tag, added over the segments.
struct Added {
    tag: String,
    /// The interval's index: it starts at `start_at + k·interval`.
    k: i64,
    /// Its longest length in any segment (the last interval is partial).
    len_s: f64,
    hist: crate::model::Hist,
}

/// The segments' interval histograms added per (tag, interval), in interval order.
fn add_intervals(parts: &[Part], interval: f64) -> Vec<Added> {
    let mut out: Vec<Added> = Vec::new();
    let mut at: BTreeMap<(String, i64), usize> = BTreeMap::new();
    for p in parts {
        for i in &p.intervals {
            let k = (i.start_s / interval).round() as i64;
            match at.get(&(i.tag.clone(), k)) {
                Some(&j) => {
                    let _ = out[j].hist.add(&i.hist);
                    out[j].len_s = out[j].len_s.max(i.len_s);
                }
                None => {
                    at.insert((i.tag.clone(), k), out.len());
                    out.push(Added {
                        tag: i.tag.clone(),
                        k,
                        len_s: i.len_s,
                        hist: i.hist.clone(),
                    });
                }
            }
        }
    }
    out.sort_by_key(|a| a.k);
    out
}

/// Interval rows summed per (key, interval); percentiles from the added interval histograms
/// when they hold every request of the row (the largest segment percentile otherwise: a
/// segment's log is missing or torn).
fn merge_rows(parts: &[Part], hists: &[Added]) -> Vec<IntervalRow> {
    let mut rows: BTreeMap<(i64, usize), IntervalRow> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    for p in parts {
        let index = interval_index(&p.result.intervals);
        for r in &p.result.intervals {
            let k = index.get(&r.t.to_bits()).copied().unwrap_or(0);
            let o = order.iter().position(|x| *x == r.key).unwrap_or_else(|| {
                order.push(r.key.clone());
                order.len() - 1
            });
            match rows.get_mut(&(k, o)) {
                None => {
                    rows.insert((k, o), r.clone());
                }
                Some(m) => {
                    m.t = m.t.max(r.t);
                    m.count += r.count;
                    m.errors += r.errors;
                    m.retries += r.retries;
                    m.p50_us = m.p50_us.max(r.p50_us);
                    m.p95_us = m.p95_us.max(r.p95_us);
                    m.p99_us = m.p99_us.max(r.p99_us);
                    m.max_us = m.max_us.max(r.max_us);
                    let add = |a: Option<u64>, b: Option<u64>| match (a, b) {
                        (None, None) => None,
                        (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
                    };
                    m.active_vus = add(m.active_vus, r.active_vus);
                    m.dropped = add(m.dropped, r.dropped);
                    m.target = match (m.target, r.target) {
                        (None, None) => None,
                        (a, b) => Some(a.unwrap_or(0.0) + b.unwrap_or(0.0)),
                    };
                }
            }
        }
    }
    let index: BTreeMap<(&str, i64), &crate::model::Hist> = hists
        .iter()
        .map(|a| ((a.tag.as_str(), a.k), &a.hist))
        .collect();
    rows.into_iter()
        .map(|((k, _), mut r)| {
            if let Some(h) = index
                .get(&(r.key.as_str(), k))
                .filter(|h| !h.is_empty() && h.len() == r.count)
            {
                r.p50_us = h.value_at_quantile(0.5);
                r.p95_us = h.value_at_quantile(0.95);
                r.p99_us = h.value_at_quantile(0.99);
                r.max_us = h.max();
            }
            r
        })
        .collect()
}

/// The analyses of a single run, on the merged data; the generator's health per segment.
fn judge(result: &mut RunResult, parts: &[Part]) {
    result.db_load = crate::analysis::load::db_load(&result.flows);
    result.trends = crate::analysis::trend::trends(result);
    let mut unreadable = Vec::new();
    let thresholds: Vec<Threshold> = result
        .gates
        .thresholds
        .iter()
        .filter_map(|g| match g.threshold.parse::<Expr>() {
            Ok(expr) => Some(Threshold {
                pattern: g.pattern.clone(),
                text: g.threshold.clone(),
                expr,
                abort_on_fail: false,
                delay: Duration::ZERO,
            }),
            Err(e) => {
                unreadable.push(format!("{}: {}", g.pattern, e.reason));
                None
            }
        })
        .collect();
    result.thresholds =
        crate::analysis::threshold::verdicts(&thresholds, result.gates.checks_gate, result);
    for u in unreadable {
        result.thresholds.push(crate::model::Verdict {
            pattern: "merge".into(),
            key: "-".into(),
            threshold: u,
            observed: "unreadable".into(),
            observed_value: None,
            limit: "-".into(),
            passed: false,
            note: Some("a segment's threshold could not be read again".into()),
        });
    }
    let machine = |c: &SelfCheck| {
        matches!(
            c.check,
            SelfCheckName::Saturation | SelfCheckName::ConnectionChurn
        )
    };
    let mut checks: Vec<SelfCheck> = crate::analysis::selfcheck::checks(result)
        .into_iter()
        .filter(|c| !machine(c))
        .collect();
    for p in parts {
        let seg = p.result.segment.map_or(0, |s| s.index);
        for c in p.result.self_checks.iter().filter(|c| machine(c)) {
            checks.push(SelfCheck {
                detail: format!("segment {seg}: {}", c.detail),
                ..c.clone()
            });
        }
    }
    result.self_checks = checks;
    result.merged = parts.iter().map(|p| summary(&p.result)).collect();
    // A segment that sent no load (its setup failed) or stopped early (an `abort_on_fail`
    // threshold on its share) leaves the merged run short: that fails it, as it would fail a
    // single run, whatever the thresholds say of what did run.
    for p in parts {
        let seg = p.result.segment.map_or(0, |s| s.index);
        for v in p
            .result
            .thresholds
            .iter()
            .filter(|v| v.pattern == "setup" && !v.passed)
        {
            result.thresholds.push(crate::model::Verdict {
                pattern: "setup".into(),
                key: format!("segment {seg}"),
                note: Some(format!("segment {seg} sent no load")),
                ..v.clone()
            });
        }
        if let Some(why) = &p.result.aborted
            && !p.result.thresholds.iter().any(|v| v.pattern == "setup")
        {
            result.thresholds.push(crate::model::Verdict {
                pattern: "segment".into(),
                key: format!("segment {seg}"),
                threshold: "runs its whole share".into(),
                observed: why.clone(),
                observed_value: None,
                limit: "-".into(),
                passed: false,
                note: Some("it stopped early, so the merged run is short of the plan".into()),
            });
        }
    }
}

fn summary(r: &RunResult) -> SegmentSummary {
    let steps = r
        .flows
        .iter()
        .filter(|f| f.is_load())
        .flat_map(|f| &f.steps);
    SegmentSummary {
        index: r.segment.map_or(0, |s| s.index),
        hostname: r.environment.hostname.clone(),
        start_late_ms: r.start_late_ms.unwrap_or(0.0),
        interrupted: r.interrupted,
        requests: steps.clone().map(|s| s.requests).sum(),
        failed: steps.map(|s| s.failed).sum(),
        flows: r
            .flows
            .iter()
            .filter(|f| f.is_load())
            .map(|f| SegmentFlow {
                name: f.name.clone(),
                iterations: f.iterations_ok + f.iterations_failed,
                p50_us: f.iteration.as_ref().map_or(0, |l| l.p50_us),
                p99_us: f.iteration.as_ref().map_or(0, |l| l.p99_us),
                p99_ci: f.iteration.as_ref().map_or([0, 0], |l| l.ci95[2]),
            })
            .collect(),
        failed_checks: r
            .self_checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| c.detail.clone())
            .collect(),
    }
}

fn write_hlog(
    path: &Path,
    start: SystemTime,
    hists: &[Added],
    interval: Duration,
) -> std::io::Result<()> {
    let mut w = HlogWriter::create(path, start)?;
    for a in hists {
        let at = interval.mul_f64(a.k.max(0) as f64);
        let len = Duration::try_from_secs_f64(a.len_s).unwrap_or(interval);
        w.write(&a.tag, &a.hist, at, len)?;
    }
    w.flush()
}
