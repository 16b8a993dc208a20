//! The final summary table: per flow, its iterations and each step's count, rate, error share and
//! latency percentiles (from due time).

use std::fmt::Write as _;
use std::time::Duration;

use super::text::per_iteration_timings;
use crate::model::{Latency, RunResult};
use crate::units::short_duration;

fn ms(us: u64) -> String {
    short_duration(Duration::from_micros(us))
}

fn pct(part: u64, whole: u64) -> String {
    if whole == 0 {
        "-".into()
    } else {
        format!("{:.2}%", 100.0 * part as f64 / whole as f64)
    }
}

fn row(out: &mut String, name: &str, count: u64, rate: f64, errors: u64, l: Option<&Latency>) {
    let _ = write!(
        out,
        "  {name:<28} {count:>9} {rate:>9.1}/s {:>8}",
        pct(errors, count)
    );
    match l {
        Some(l) => {
            let _ = writeln!(
                out,
                " {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
                ms(l.p50_us),
                ms(l.p90_us),
                ms(l.p95_us),
                ms(l.p99_us),
                ms(l.p999_us),
                ms(l.max_us)
            );
        }
        None => out.push('\n'),
    }
}

/// In a closed loop (no `pace`) a target's stall delays the users rather than queueing requests,
/// so it shows as a few samples far above the rest: say so when a step's slowest request is over
/// ten times its p99 (and 50 ms above it).
fn hidden_stalls(out: &mut String, f: &crate::model::FlowResult) {
    if !f.closed_loop() {
        return;
    }
    for s in &f.steps {
        let Some(l) = &s.latency else { continue };
        if l.max_us > 10 * l.p99_us.max(1) && l.max_us - l.p99_us > 50_000 {
            let _ = writeln!(
                out,
                "  note: {} max {} is {:.0}× its p99 {}: a stall, which this closed loop (no `pace`) hid from every request behind it — give the flow a pace to see what it did",
                s.name,
                ms(l.max_us),
                l.max_us as f64 / l.p99_us.max(1) as f64,
                ms(l.p99_us)
            );
        }
    }
}

/// Each step's checks, passed of run, with the first failure's message (k6's check marks).
fn checks(out: &mut String, r: &RunResult, f: &crate::model::FlowResult) {
    let with: Vec<_> = f
        .steps
        .iter()
        .filter(|s| s.checks_passed + s.checks_failed > 0)
        .collect();
    if with.is_empty() {
        return;
    }
    let _ = writeln!(out, "  checks:");
    for s in with {
        let total = s.checks_passed + s.checks_failed;
        if s.checks_failed == 0 {
            let _ = writeln!(out, "    pass  {:<28} {total} of {total}", s.name);
            continue;
        }
        let example = r
            .error_examples
            .iter()
            .find(|e| {
                e.key == s.key
                    && matches!(
                        e.class,
                        crate::model::ErrorClass::Check | crate::model::ErrorClass::Status
                    )
            })
            .map(|e| format!(": {}", e.message))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "    FAIL  {:<28} {} of {total} passed, {} failed{example}",
            s.name, s.checks_passed, s.checks_failed
        );
    }
}

/// A segment of a split run, or a merged one: which, and each segment's own figures (a segment
/// whose p99 interval lies apart from the others' ran on a different machine, not the same load).
fn split_run(out: &mut String, r: &RunResult) {
    let late = r.start_late_ms.filter(|ms| *ms > 0.0);
    if let Some(seg) = r.segment {
        let _ = writeln!(
            out,
            "segment {seg} of run {}{}",
            r.run_id,
            late.map_or_else(String::new, |l| format!(
                ": began {} after --start-at, so what fell due before was missed",
                ms((l * 1000.0) as u64)
            ))
        );
    }
    if r.merged.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "merged from {} segments of run {}:",
        r.merged.len(),
        r.run_id
    );
    for s in &r.merged {
        let flows: Vec<String> = s
            .flows
            .iter()
            .map(|f| {
                format!(
                    "{} p99 {} ({}–{})",
                    f.name,
                    ms(f.p99_us),
                    ms(f.p99_ci[0]),
                    ms(f.p99_ci[1])
                )
            })
            .collect();
        let _ = writeln!(
            out,
            "  segment {} on {}: {} requests, {} failed{}; {}",
            s.index,
            s.hostname.as_deref().unwrap_or("?"),
            s.requests,
            s.failed,
            match (s.start_late_ms > 0.0, s.interrupted) {
                (true, _) => format!(", began {} late", ms((s.start_late_ms * 1000.0) as u64)),
                (false, true) => ", interrupted".into(),
                (false, false) => String::new(),
            },
            flows.join(", ")
        );
    }
}

/// Renders the summary.
pub fn render(r: &RunResult) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nstampede: {} — {:.1}s{}{}",
        r.scenario,
        r.duration_s,
        if r.interrupted { " (interrupted)" } else { "" },
        if r.warmup_s > 0.0 {
            format!(
                " (the first {:.1}s of warm-up left out of the totals)",
                r.warmup_s
            )
        } else {
            String::new()
        }
    );
    split_run(&mut out, r);
    for f in &r.flows {
        let total = f.iterations_ok + f.iterations_failed;
        let _ = writeln!(out, "\nflow {} [{}] — {}", f.name, f.journey, f.model);
        let mut facts = format!(
            "  iterations: {total} ({} failed, {} interrupted)",
            f.iterations_failed, f.interrupted
        );
        if f.model_kind == "open" {
            let _ = write!(facts, ", planned {}, dropped {}", f.planned, f.dropped);
            if f.missed_at_start > 0 {
                let _ = write!(
                    facts,
                    " ({} of them missed: due before a late segment began)",
                    f.missed_at_start
                );
            }
        }
        if let Some(it) = &f.iteration {
            let [lo, hi] = it.ci95[2];
            let _ = write!(
                facts,
                ", iteration p99 {} (95% CI {}–{})",
                ms(it.p99_us),
                ms(lo),
                ms(hi)
            );
        }
        if let Some(lag) = &f.schedule_lag {
            let _ = write!(
                facts,
                ", schedule lag p50 {} p99 {}",
                ms(lag.p50_us),
                ms(lag.p99_us)
            );
        }
        let _ = writeln!(out, "{facts}");
        if let Some(w) = &f.work {
            let mut line = format!(
                "  work per iteration: {:.1} requests, {:.1} steps, {:.1} KiB",
                w.requests_mean,
                w.steps_mean,
                w.bytes_mean / 1024.0
            );
            line.push_str(&per_iteration_timings(w));
            let _ = writeln!(out, "{line}");
        }
        for s in &f.steps {
            let Some(b) = &s.batch else { continue };
            if b.interferes {
                let _ = writeln!(
                    out,
                    "  batch interference: {} p50 {} → {}, p99 {} → {} while background work runs (p = {:.2e})",
                    s.name,
                    ms(b.without.p50_us),
                    ms(b.during.p50_us),
                    ms(b.without.p99_us),
                    ms(b.during.p99_us),
                    b.p_value
                );
            }
        }
        for s in f.steps.iter().filter(|s| s.retries > 0) {
            let _ = writeln!(
                out,
                "  {}: {} retries, {:.2}× amplification ({:.1}% of requests were retries)",
                s.name,
                s.retries,
                s.amplification,
                100.0 * s.retries as f64 / s.requests.max(1) as f64
            );
        }
        for (class, n) in &f.errors {
            let _ = writeln!(out, "  {class} errors outside requests: {n}");
        }
        let _ = writeln!(
            out,
            "  {:<28} {:>9} {:>11} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "step", "count", "rate", "errors", "p50", "p90", "p95", "p99", "p99.9", "max"
        );
        for s in &f.steps {
            row(
                &mut out,
                &s.name,
                s.requests,
                s.rate,
                s.failed,
                s.latency.as_ref(),
            );
        }
        row(
            &mut out,
            "(iteration)",
            total,
            f.iteration_rate,
            f.iterations_failed,
            f.iteration.as_ref(),
        );
        checks(&mut out, r, f);
        hidden_stalls(&mut out, f);
        for s in f.steps.iter().filter(|s| s.redirects > 0) {
            let _ = writeln!(
                out,
                "  redirects: {} followed {} ({:.1} per request; latency covers every hop)",
                s.name,
                s.redirects,
                s.redirects as f64 / s.requests.max(1) as f64
            );
        }
        for s in f
            .steps
            .iter()
            .filter(|s| s.messages_in + s.messages_out > 0)
        {
            let _ = writeln!(
                out,
                "  websocket: {} {} messages in ({:.1} KiB), {} out ({:.1} KiB)",
                s.name,
                s.messages_in,
                s.bytes_in as f64 / 1024.0,
                s.messages_out,
                s.bytes_out as f64 / 1024.0,
            );
        }
    }
    for t in r.trends.iter().filter(|t| t.creeping) {
        let _ = writeln!(out, "\ncreeping latency: {}", t.verdict);
    }
    if !r.db_load.is_empty() {
        let _ = writeln!(
            out,
            "\nserver-reported database time by step (Server-Timing `db`):"
        );
        for d in r.db_load.iter().take(10) {
            let _ = writeln!(
                out,
                "  {:>5.1}%  {:<28} {:>8} calls × {:>7.2}ms = {:>9.0}ms",
                d.share * 100.0,
                d.key,
                d.calls,
                d.per_call_ms,
                d.total_ms
            );
        }
    }
    if !r.thresholds.is_empty() {
        let _ = writeln!(out, "\nthresholds:");
        let kw = r.thresholds.iter().map(|v| v.key.len()).max().unwrap_or(0);
        let tw = r
            .thresholds
            .iter()
            .map(|v| v.threshold.len())
            .max()
            .unwrap_or(0);
        for v in &r.thresholds {
            let mark = if v.passed { "pass" } else { "FAIL" };
            let note = v
                .note
                .as_deref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  {mark}  {:<kw$}  {:<tw$}  observed {}{note}",
                v.key, v.threshold, v.observed
            );
        }
        let failed = r.thresholds.iter().filter(|v| !v.passed).count();
        if failed == 0 {
            let _ = writeln!(out, "verdict: passed ({} thresholds)", r.thresholds.len());
        } else {
            let _ = writeln!(
                out,
                "verdict: FAILED ({failed} of {} thresholds)",
                r.thresholds.len()
            );
        }
    }
    let drops: Vec<&str> = r
        .flows
        .iter()
        .filter_map(|f| f.dropped_cause.as_deref())
        .collect();
    if !drops.is_empty() {
        let _ = writeln!(
            out,
            "\ndropped arrivals (the target's result, not the generator's):"
        );
        for d in drops {
            let _ = writeln!(out, "  {d}");
        }
    }
    let failed: Vec<&str> = r
        .self_checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| c.detail.as_str())
        .collect();
    if !failed.is_empty() {
        let _ = writeln!(
            out,
            "\nTHE NUMBERS CANNOT BE TRUSTED: the generator was the bottleneck"
        );
        for d in failed {
            let _ = writeln!(out, "  {d}");
        }
    } else if let Some(g) = &r.generator {
        let _ = writeln!(
            out,
            "\nself-check: passed (generator busy {:.0}% of {} workers)",
            g.busy_share * 100.0,
            g.workers
        );
    }
    if let Some(reason) = &r.aborted {
        let _ = writeln!(out, "aborted: {reason}");
    }
    if !r.error_examples.is_empty() {
        let _ = writeln!(out, "\nerrors (first example of each kind):");
        for e in r.error_examples.iter().take(20) {
            let _ = writeln!(out, "  {} {}: {}", e.key, e.class, e.message);
        }
    }
    out
}
