//! The `capacity` command's output: a line per step as it finishes, the closing summary, and
//! `capacity.html` (offered against achieved throughput, p50 and p99 per key against the factor,
//! with the SLO line and the knee marked).

use std::fmt::Write as _;
use std::time::Duration;

use super::svg::{Line, Unit, chart};
use super::text::escape;
use crate::analysis::capacity::factor_text;
use crate::model::capacity::{CapacityResult, FlowLevel, SloOutcome, Step, StepVerdict};
use crate::model::threshold::{Limit, Metric};
use crate::units::short_duration;

fn ms(us: u64) -> String {
    short_duration(Duration::from_micros(us))
}

fn level(l: FlowLevel) -> String {
    match l {
        FlowLevel::Rate { rate_per_s } => format!("{rate_per_s:.1}/s"),
        FlowLevel::Vus { vus } => format!("{vus} VUs"),
    }
}

fn verdict_word(v: StepVerdict) -> &'static str {
    match v {
        StepVerdict::Pass => "pass",
        StepVerdict::Fail => "FAIL",
        StepVerdict::Undecided => "undecided",
        StepVerdict::Untrustworthy => "UNTRUSTWORTHY (generator limit)",
        StepVerdict::Interrupted => "interrupted (not judged)",
    }
}

/// One finished step: its factor, each flow's offered and achieved level, each key's p50, p99
/// (with interval) and errors, and its verdict with the checks that decided it.
pub fn step_lines(s: &Step) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "step {} ×{} ({:.0}s measured): {}",
        s.index,
        factor_text(s.factor),
        s.measured_s,
        verdict_word(s.verdict)
    );
    for (name, f) in &s.flows {
        let dropped = if f.dropped > 0 {
            format!(", dropped {} of {}", f.dropped, f.planned)
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "  {name}: offered {}, achieved {:.1} iterations/s{dropped}",
            level(f.offered),
            f.achieved_per_s
        );
    }
    for k in s.keys.iter().filter(|k| k.requests > 0) {
        let _ = writeln!(
            out,
            "  {:<32} p50 {:>9}  p99 {:>9} ({}–{})  errors {:.2}%",
            k.key,
            ms(k.p50_us[0]),
            ms(k.p99_us[0]),
            ms(k.p99_us[1]),
            ms(k.p99_us[2]),
            k.error_share * 100.0
        );
    }
    for c in s.checks.iter().filter(|c| c.outcome != SloOutcome::Pass) {
        let _ = writeln!(
            out,
            "  {} {}: `{}` observed {}{}",
            match c.outcome {
                SloOutcome::Fail => "FAIL",
                _ => "undecided",
            },
            c.key,
            c.slo,
            c.observed,
            c.interval
                .as_ref()
                .map_or_else(String::new, |i| format!(" (95% CI {i})"))
        );
    }
    if let Some(u) = &s.untrustworthy {
        let _ = writeln!(out, "  generator: {u}");
    }
    out
}

/// The closing summary: the knee, what broke first, the scaling law, the `Server-Timing` shift.
pub fn render(c: &CapacityResult) -> String {
    let mut out = String::from("\ncapacity:\n");
    let _ = writeln!(out, "  {}", c.summary);
    if let Some(k) = &c.knee {
        let _ = writeln!(out, "  knee ×{}:", factor_text(k.factor));
        for (name, l) in &k.flows {
            let _ = writeln!(out, "    {name}: {}", level(*l));
        }
    }
    if let Some(b) = &c.first_break {
        let _ = writeln!(out, "  first to break: {} — {}", b.key, b.reason);
    }
    for u in &c.usl {
        let _ = writeln!(
            out,
            "  scaling of {} (Universal Scalability Law, {} levels, R² {:.3}): {}",
            u.flow, u.points, u.r_squared, u.reading
        );
    }
    for o in &c.open {
        let _ = writeln!(out, "  scaling of {}: {}", o.flow, o.reading);
    }
    if !c.server_timing.is_empty() {
        let _ = writeln!(
            out,
            "  Server-Timing of {} per call (ms): lowest level · knee · first failure",
            c.server_timing[0].key
        );
        let cell = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.2}"));
        for t in &c.server_timing {
            let _ = writeln!(
                out,
                "    {:<16} {:>9.2} · {:>9} · {:>9}",
                t.name,
                t.base_ms,
                cell(t.knee_ms),
                cell(t.fail_ms)
            );
        }
        if let Some(r) = timing_reading(c) {
            let _ = writeln!(out, "  {r}");
        }
    }
    out
}

/// Which server-reported part grew from the lowest level to the first failure (or the knee):
/// the metric whose time per call grew most, against those that stayed flat.
pub fn timing_reading(c: &CapacityResult) -> Option<String> {
    let top = |t: &crate::model::capacity::TimingShift| t.fail_ms.or(t.knee_ms);
    // A part grew when it rose by at least 1 ms and half its time; of those, the one that rose most.
    let grew = |t: &&crate::model::capacity::TimingShift| {
        top(t).is_some_and(|v| v - t.base_ms >= 1.0 && v >= 1.5 * t.base_ms)
    };
    let Some(grown) = c.server_timing.iter().filter(grew).max_by(|a, b| {
        (top(a).unwrap_or(0.0) - a.base_ms).total_cmp(&(top(b).unwrap_or(0.0) - b.base_ms))
    }) else {
        return Some("no server-reported part grew: the time went outside what the server reports (a queue in front of it, its CPU, the network)".into());
    };
    let grown_to = top(grown)?;
    let flat: Vec<&str> = c
        .server_timing
        .iter()
        .filter(|t| t.name != grown.name && top(t).is_some_and(|v| v < 1.25 * t.base_ms.max(0.1)))
        .map(|t| t.name.as_str())
        .collect();
    let queue = ["pool", "wait", "queue"]
        .iter()
        .any(|w| grown.name.contains(w));
    Some(format!(
        "`{}` grew most, {:.2} → {:.2} ms per call{}{}",
        grown.name,
        grown.base_ms,
        grown_to,
        if flat.is_empty() {
            String::new()
        } else {
            format!(", while {} stayed flat", flat.join(", "))
        },
        if queue {
            ": requests queue for it — what runs out is the pool (or lock) itself, not the work behind it"
        } else {
            ""
        }
    ))
}

/// `capacity.html`: the summary, the charts against the factor, and a table of steps linking
/// each step's own report.
pub fn render_html(c: &CapacityResult) -> String {
    let mut out = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>stampede: capacity of {0}</title>\
         <style>{3}</style></head><body><h1>Capacity of {0}</h1><p>{1}</p><p>SLO: {2}</p><div class=\"charts\">",
        escape(&c.scenario),
        escape(&c.summary),
        escape(&c.slo.join(" · ")),
        super::html::CSS
    );
    let mut steps: Vec<&Step> = c
        .steps
        .iter()
        .filter(|s| {
            !matches!(
                s.verdict,
                StepVerdict::Untrustworthy | StepVerdict::Interrupted
            )
        })
        .collect();
    steps.sort_by(|a, b| a.factor.total_cmp(&b.factor));
    let knee = c.knee.as_ref().map(|k| k.factor);
    // A chart against the factor, with the knee drawn as a dashed vertical line.
    let with_knee = |title: &str, mut lines: Vec<Line>, y_unit: Unit| -> String {
        let y_max = lines
            .iter()
            .flat_map(|l| l.points.iter().map(|p| p.1))
            .fold(0.0, f64::max);
        lines.extend(knee.map(|k| Line {
            name: format!("knee ×{}", factor_text(k)),
            points: vec![(k, 0.0), (k, y_max)],
            dashed: true,
        }));
        chart(title, &lines, Unit::Number, y_unit)
    };
    // Throughput: offered against achieved per flow.
    let mut lines = Vec::new();
    let flows: Vec<&String> = steps
        .first()
        .map_or_else(Vec::new, |s| s.flows.keys().collect());
    for name in &flows {
        let mut offered = Vec::new();
        let mut achieved = Vec::new();
        for s in &steps {
            if let Some(f) = s.flows.get(*name) {
                if let FlowLevel::Rate { rate_per_s } = f.offered {
                    offered.push((s.factor, rate_per_s));
                }
                achieved.push((s.factor, f.achieved_per_s));
            }
        }
        if !offered.is_empty() {
            lines.push(Line {
                name: format!("{name} offered"),
                points: offered,
                dashed: true,
            });
        }
        lines.push(Line {
            name: format!("{name} achieved"),
            points: achieved,
            dashed: false,
        });
    }
    out.push_str(&with_knee(
        "iterations per second against the factor",
        lines,
        Unit::Number,
    ));
    // Latency: p50 and p99 per key, with the latency SLOs' limits.
    let mut lines = Vec::new();
    let keys: Vec<String> = steps
        .iter()
        .flat_map(|s| s.keys.iter().map(|k| k.key.clone()))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    for key in &keys {
        for (label, pick, dashed) in [("p99", 0usize, false), ("p50", 1, true)] {
            let points: Vec<(f64, f64)> = steps
                .iter()
                .filter_map(|s| {
                    let k = s.keys.iter().find(|k| &k.key == key && k.requests > 0)?;
                    Some((s.factor, [k.p99_us[0], k.p50_us[0]][pick] as f64))
                })
                .collect();
            lines.push(Line {
                name: format!("{key} {label}"),
                points,
                dashed,
            });
        }
    }
    let x_range = (
        steps.first().map_or(0.0, |s| s.factor),
        steps.last().map_or(1.0, |s| s.factor),
    );
    for slo in c
        .slo
        .iter()
        .filter_map(|s| s.parse::<crate::analysis::capacity::Slo>().ok())
    {
        if let (Metric::Latency(..), Limit::Duration(d)) =
            (slo.threshold.expr.metric, slo.threshold.expr.limit)
        {
            let us = d.as_micros() as f64;
            lines.push(Line {
                name: format!("SLO {}", slo.text),
                points: vec![(x_range.0, us), (x_range.1, us)],
                dashed: true,
            });
        }
    }
    out.push_str(&with_knee(
        "latency against the factor",
        lines,
        Unit::Micros,
    ));
    out.push_str(
        "</div><h2>Steps</h2><table><thead><tr><th>step</th><th>factor</th><th>verdict</th><th>what decided it</th></tr></thead><tbody>",
    );
    for s in &c.steps {
        let why: Vec<String> = s
            .checks
            .iter()
            .filter(|c| c.outcome != SloOutcome::Pass)
            .map(|c| format!("{} `{}` observed {}", c.key, c.slo, c.observed))
            .chain(s.untrustworthy.clone())
            .collect();
        let class = if s.verdict == StepVerdict::Pass {
            ""
        } else {
            " class=\"bad\""
        };
        let _ = write!(
            out,
            "<tr><td><a href=\"steps/{0:02}/report.html\">{0}</a></td><td>×{1}</td><td{class}>{2}</td><td>{3}</td></tr>",
            s.index,
            factor_text(s.factor),
            verdict_word(s.verdict),
            escape(&why.join("; "))
        );
    }
    out.push_str("</tbody></table></body></html>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::capacity::TimingShift;

    fn shift(name: &str, base_ms: f64, fail_ms: f64) -> TimingShift {
        TimingShift {
            key: "f.a".into(),
            name: name.into(),
            base_ms,
            knee_ms: None,
            fail_ms: Some(fail_ms),
        }
    }

    #[test]
    fn the_reading_names_the_part_that_grew_not_the_biggest_part() {
        // db rose most in milliseconds but by under half; lock-wait more than doubled.
        let c = CapacityResult {
            server_timing: vec![shift("db", 121.3, 170.5), shift("lock-wait", 12.5, 29.4)],
            ..Default::default()
        };
        let r = timing_reading(&c).unwrap();
        assert!(r.starts_with("`lock-wait` grew most"), "{r}");
        let c = CapacityResult {
            server_timing: vec![shift("db", 3.0, 3.2), shift("pool-wait", 0.1, 40.0)],
            ..Default::default()
        };
        let r = timing_reading(&c).unwrap();
        assert!(
            r.contains("`pool-wait`") && r.contains("db stayed flat") && r.contains("pool"),
            "{r}"
        );
        let c = CapacityResult {
            server_timing: vec![shift("db", 3.0, 3.2)],
            ..Default::default()
        };
        assert!(
            timing_reading(&c)
                .unwrap()
                .starts_with("no server-reported part grew")
        );
    }
}
