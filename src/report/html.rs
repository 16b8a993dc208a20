//! `report.html`: one self-contained page (no scripts, no network): the verdict, the plan,
//! thresholds, a section per flow (facts, charts from `svg`, the steps table, the batch split),
//! trends, database time, self-checks and error examples. Charts reduce long series (see
//! `svg::MAX_POINTS`), which keeps a 10 flows × 20 steps × 1 hour run to a few megabytes.

use std::fmt::Write as _;

use super::svg::{Line, Unit, chart};
use super::text::{escape, iso8601, per_iteration_timings};
use crate::model::codec;
use crate::model::{FlowResult, IntervalRow, Latency, ModelKind, RunResult};
use crate::units::short_duration;

/// Interval rows by key, built once per page (a long run has hundreds of thousands of rows).
type Rows<'a> = std::collections::HashMap<&'a str, Vec<&'a IntervalRow>>;

fn rows_of<'a>(rows: &Rows<'a>, key: &str) -> impl Iterator<Item = &'a IntervalRow> + use<'a> {
    rows.get(key).cloned().unwrap_or_default().into_iter()
}

/// Latency at percentiles spread evenly on the log axis, from a stored histogram.
fn distribution(l: &Latency) -> Vec<(f64, f64)> {
    let Ok(h) = codec::decode(&l.histogram) else {
        return Vec::new();
    };
    let top = (h.len() as f64).log10().clamp(1.0, 5.0);
    (0..=100)
        .map(|k| k as f64 * top / 100.0)
        .map(|x| (x, h.value_at_quantile(1.0 - 10f64.powf(-x)) as f64))
        .collect()
}

/// The four charts of a flow: latency over time, throughput and errors, load (target against
/// achieved), and the latency distribution.
fn flow_charts(r: &RunResult, rows: &Rows<'_>, f: &FlowResult, out: &mut String) {
    let dt = r.interval_s.max(1e-3);
    let iter_rows: Vec<&IntervalRow> = rows_of(rows, &format!("{}.iteration", f.name)).collect();
    let iters = || iter_rows.iter().copied();
    let done = |x: &IntervalRow, us: u64| (x.count > 0).then_some(us as f64);
    let mut lat = vec![
        Line::series("iteration p50", iters(), |x| done(x, x.p50_us), false),
        Line::series("iteration p95", iters(), |x| done(x, x.p95_us), false),
        Line::series("iteration p99", iters(), |x| done(x, x.p99_us), false),
    ];
    lat.extend(f.steps.iter().take(5).map(|s| {
        Line::series(
            format!("{} p99", s.name),
            rows_of(rows, &s.key),
            |x| done(x, x.p99_us),
            true,
        )
    }));
    let per_s = |n: u64| Some(n as f64 / dt);
    let mut requests: std::collections::BTreeMap<u64, f64> = std::collections::BTreeMap::new();
    for x in f.steps.iter().flat_map(|s| rows_of(rows, &s.key)) {
        *requests.entry((x.t * 1000.0) as u64).or_default() += x.count as f64 / dt;
    }
    let tput = [
        Line::series("iterations/s", iters(), |x| per_s(x.count), false),
        Line::series("failed iterations/s", iters(), |x| per_s(x.errors), false),
        Line {
            name: "requests/s".into(),
            points: requests
                .into_iter()
                .map(|(t, v)| (t as f64 / 1000.0, v))
                .collect(),
            dashed: true,
        },
    ];
    let open = f.model_kind == ModelKind::Open;
    let load = [
        Line::series(
            if open {
                "target arrivals/s"
            } else {
                "target VUs"
            },
            iters(),
            |x| x.target,
            true,
        ),
        if open {
            Line::series("achieved iterations/s", iters(), |x| per_s(x.count), false)
        } else {
            Line::series(
                "busy VUs",
                iters(),
                |x| x.active_vus.map(|v| v as f64),
                false,
            )
        },
        Line::series("dropped/s", iters(), |x| x.dropped.and_then(per_s), false),
    ];
    let distribution_of = |name: &str, l: &Latency, dashed: bool| Line {
        name: name.to_string(),
        points: distribution(l),
        dashed,
    };
    let mut dist: Vec<Line> = f
        .steps
        .iter()
        .filter_map(|s| Some(distribution_of(&s.name, s.latency.as_ref()?, false)))
        .collect();
    dist.extend(
        f.iteration
            .as_ref()
            .map(|l| distribution_of("iteration", l, true)),
    );
    out.push_str(r#"<div class="charts">"#);
    for (title, lines, x, y) in [
        (
            "Latency over time (from due time)",
            &lat[..],
            Unit::Seconds,
            Unit::Micros,
        ),
        (
            "Throughput and errors",
            &tput[..],
            Unit::Seconds,
            Unit::Number,
        ),
        (
            if open {
                "Target vs achieved rate"
            } else {
                "Virtual users"
            },
            &load[..],
            Unit::Seconds,
            Unit::Number,
        ),
        (
            "Latency distribution (log percentile axis)",
            &dist[..],
            Unit::Nines,
            Unit::Micros,
        ),
    ] {
        out.push_str(&chart(title, lines, x, y));
    }
    out.push_str("</div>");
}

/// The flow's heading and its one-line facts: iterations, drops, lag, work per iteration.
fn flow_facts(f: &FlowResult, out: &mut String) {
    let _ = write!(
        out,
        r#"<section class="flow" id="flow-{id}"><h2>Flow <code>{name}</code> <small>journey {j} · {kind}</small></h2><p class="model">{model}</p>"#,
        id = escape(&f.name),
        name = escape(&f.name),
        j = escape(&f.journey),
        kind = f.kind,
        model = escape(&f.model)
    );
    let _ = write!(
        out,
        r#"<p class="facts">{} iterations ({} failed, {} interrupted){}{}</p>"#,
        f.iterations_ok + f.iterations_failed,
        f.iterations_failed,
        f.interrupted,
        if f.model_kind == ModelKind::Open {
            format!(", {} planned, {} dropped", f.planned, f.dropped)
        } else {
            String::new()
        },
        f.schedule_lag
            .as_ref()
            .map(|l| format!(", schedule lag p50 {} p99 {}", ms(l.p50_us), ms(l.p99_us)))
            .unwrap_or_default()
    );
    if let Some(w) = &f.work {
        let mut line = format!("Work per iteration: {:.1} requests", w.requests_mean);
        line.push_str(&per_iteration_timings(w));
        let _ = write!(out, r#"<p class="facts">{}</p>"#, escape(&line));
    }
}

/// The table of a flow's steps.
fn steps_table(f: &FlowResult, out: &mut String) {
    out.push_str(r#"<table class="steps"><thead><tr><th>step</th><th>requests</th><th>rate</th><th>errors</th><th>p50</th><th>p90</th><th>p95</th><th>p99</th><th>p99.9</th><th>max</th><th>service p99</th><th>ttfb p99</th><th>checks</th><th>retry ×</th></tr></thead><tbody>"#);
    for s in &f.steps {
        let l = s.latency.as_ref();
        let cell = |g: fn(&Latency) -> u64| l.map_or("-".into(), |l| ms(g(l)));
        let err = if s.requests == 0 {
            "-".into()
        } else {
            format!("{:.2}%", 100.0 * s.failed as f64 / s.requests as f64)
        };
        let err_class = if s.failed > 0 { " class=\"bad\"" } else { "" };
        let _ = write!(
            out,
            "<tr><td><code>{}</code> <small>{} {}</small></td><td>{}</td><td>{:.1}/s</td><td{err_class}>{err}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}/{}</td><td>{}</td></tr>",
            escape(&s.name),
            escape(&s.method),
            escape(&s.url),
            s.requests,
            s.rate,
            cell(|l| l.p50_us),
            cell(|l| l.p90_us),
            cell(|l| l.p95_us),
            l.map_or("-".into(), |l| format!(
                "{} <small>[{}–{}]</small>",
                ms(l.p99_us),
                ms(l.ci95[2][0]),
                ms(l.ci95[2][1])
            )),
            cell(|l| l.p999_us),
            cell(|l| l.max_us),
            s.service_time.as_ref().map_or("-".into(), |l| ms(l.p99_us)),
            s.ttfb.as_ref().map_or("-".into(), |l| ms(l.p99_us)),
            s.checks_passed,
            s.checks_passed + s.checks_failed,
            if s.retries > 0 {
                format!("{:.2}", s.amplification)
            } else {
                "-".into()
            }
        );
    }
    out.push_str("</tbody></table>");
    let sockets: Vec<String> = f
        .steps
        .iter()
        .filter(|s| s.messages_in + s.messages_out > 0)
        .map(|s| {
            format!(
                "<code>{}</code> {} in ({} B), {} out ({} B)",
                escape(&s.name),
                s.messages_in,
                s.bytes_in,
                s.messages_out,
                s.bytes_out
            )
        })
        .collect();
    if !sockets.is_empty() {
        let _ = write!(
            out,
            "<p>WebSocket messages (the step's handshake is its latency; each <code>expect</code> is a step of its own, timed from the <code>send</code> before it): {}</p>",
            sockets.join("; ")
        );
    }
    let redirected: Vec<String> = f
        .steps
        .iter()
        .filter(|s| s.redirects > 0)
        .map(|s| {
            format!(
                "<code>{}</code> followed {} ({:.1} per request)",
                escape(&s.name),
                s.redirects,
                s.redirects as f64 / s.requests.max(1) as f64
            )
        })
        .collect();
    if !redirected.is_empty() {
        let _ = write!(
            out,
            "<p>Redirects (each step's latency covers every hop): {}</p>",
            redirected.join("; ")
        );
    }
}

/// Live steps' latency beside background work, when the flow had any.
fn batch_table(f: &FlowResult, out: &mut String) {
    let split: Vec<_> = f
        .steps
        .iter()
        .filter_map(|s| s.batch.as_ref().map(|b| (s, b)))
        .collect();
    if split.is_empty() {
        return;
    }
    out.push_str(r#"<h3>Beside background work</h3><table><thead><tr><th>step</th><th>p50 without / during</th><th>p99 without / during</th><th>requests during</th><th>p-value</th><th></th></tr></thead><tbody>"#);
    for (s, b) in split {
        let _ = write!(
            out,
            "<tr><td><code>{}</code></td><td>{} / {}</td><td>{} / {}</td><td>{}</td><td>{:.1e}</td><td{}>{}</td></tr>",
            escape(&s.name),
            ms(b.without.p50_us),
            ms(b.during.p50_us),
            ms(b.without.p99_us),
            ms(b.during.p99_us),
            b.during.count,
            b.p_value,
            if b.interferes { r#" class="bad""# } else { "" },
            if b.interferes {
                "interference"
            } else {
                "no measurable effect"
            }
        );
    }
    out.push_str("</tbody></table>");
}

fn flow_section(r: &RunResult, rows: &Rows<'_>, f: &FlowResult, out: &mut String) {
    flow_facts(f, out);
    flow_charts(r, rows, f, out);
    steps_table(f, out);
    batch_table(f, out);
    out.push_str("</section>");
}

/// A segment of a split run (which, how late it began), or a merged run's segments side by side.
fn split_run(r: &RunResult, out: &mut String) {
    if let Some(seg) = r.segment {
        let late = r.start_late_ms.unwrap_or(0.0);
        let _ = write!(
            out,
            r#"<section><h2>Segment {seg}</h2><p>One segment of run <code>{id}</code>{late}. <code>stampede merge</code> joins the segments into the whole run.</p></section>"#,
            id = escape(&r.run_id),
            late = if late > 0.0 {
                format!(
                    ": it began {} after the shared start, and missed what fell due before",
                    ms((late * 1000.0) as u64)
                )
            } else {
                String::new()
            }
        );
    }
    if r.merged.is_empty() {
        return;
    }
    let _ = write!(
        out,
        r#"<section><h2>Segments</h2><p>Merged from {} segments of run <code>{}</code>: every figure above is computed on the merged histograms. A segment whose p99 interval lies apart from the others' ran somewhere different, not a different load.</p><table><thead><tr><th>segment</th><th>host</th><th>began late</th><th>requests</th><th>failed</th><th>iteration p99 (95% interval) per flow</th><th>own self-checks</th></tr></thead><tbody>"#,
        r.merged.len(),
        escape(&r.run_id)
    );
    for s in &r.merged {
        let flows: Vec<String> = s
            .flows
            .iter()
            .map(|f| {
                format!(
                    "{} {} ({}–{})",
                    escape(&f.name),
                    ms(f.p99_us),
                    ms(f.p99_ci[0]),
                    ms(f.p99_ci[1])
                )
            })
            .collect();
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            s.index,
            escape(s.hostname.as_deref().unwrap_or("?")),
            match (s.start_late_ms > 0.0, s.interrupted) {
                (true, _) => ms((s.start_late_ms * 1000.0) as u64),
                (false, true) => "interrupted".into(),
                (false, false) => "on time".into(),
            },
            s.requests,
            s.failed,
            flows.join("<br>"),
            if s.failed_checks.is_empty() {
                "passed".to_string()
            } else {
                escape(&s.failed_checks.join("; "))
            }
        );
    }
    out.push_str("</tbody></table></section>");
}

fn ms(us: u64) -> String {
    short_duration(std::time::Duration::from_micros(us))
}

/// Renders the page.
pub fn render(r: &RunResult) -> String {
    let mut out = String::with_capacity(64 * 1024);
    let verdict = match (&r.aborted, r.passed(), r.interrupted) {
        _ if !r.trustworthy() => ("untrustworthy", "bad"),
        (Some(_), _, _) => ("aborted", "bad"),
        (_, _, true) => ("interrupted", "warn"),
        (_, true, _) => ("passed", "good"),
        (_, false, _) => ("failed", "bad"),
    };
    let _ = write!(
        out,
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>stampede: {name}</title><style>{CSS}</style></head><body><header><h1>{name}</h1><p>{tool} · started {start} UTC · {dur:.1}s · <span class="verdict {vc}">{v}</span></p></header>"#,
        name = escape(&r.scenario),
        tool = escape(&r.tool),
        start = iso8601(r.started_at_unix_ms),
        dur = r.duration_s,
        vc = verdict.1,
        v = verdict.0
    );
    if let Some(reason) = &r.aborted {
        let _ = write!(
            out,
            r#"<p class="bad">Stopped early: {}</p>"#,
            escape(reason)
        );
    }
    if !r.trustworthy() {
        out.push_str(r#"<section class="bad"><h2>The numbers cannot be trusted</h2><p>The generator was the bottleneck:</p><ul>"#);
        for c in r.self_checks.iter().filter(|c| !c.passed) {
            let _ = write!(out, "<li>{}</li>", escape(&c.detail));
        }
        out.push_str("</ul></section>");
    }
    out.push_str(r#"<section><h2>Plan</h2><table><thead><tr><th>flow</th><th>journey</th><th>kind</th><th>load model</th></tr></thead><tbody>"#);
    for f in &r.flows {
        let _ = write!(
            out,
            r##"<tr><td><a href="#flow-{0}"><code>{0}</code></a></td><td>{1}</td><td>{2}</td><td>{3}</td></tr>"##,
            escape(&f.name),
            escape(&f.journey),
            f.kind,
            escape(&f.model)
        );
    }
    out.push_str("</tbody></table></section>");
    split_run(r, &mut out);
    if !r.thresholds.is_empty() {
        out.push_str(r#"<section><h2>Thresholds</h2><table class="verdicts"><thead><tr><th></th><th>key</th><th>threshold</th><th>observed</th><th>limit</th></tr></thead><tbody>"#);
        for v in &r.thresholds {
            let (mark, class) = if v.passed {
                ("pass", "good")
            } else {
                ("FAIL", "bad")
            };
            let note = v
                .note
                .as_deref()
                .map(|n| format!(" <small>({})</small>", escape(n)))
                .unwrap_or_default();
            let _ = write!(
                out,
                r#"<tr><td class="{class}">{mark}</td><td><code>{}</code></td><td><code>{}</code></td><td>{}{note}</td><td>{}</td></tr>"#,
                escape(&v.key),
                escape(&v.threshold),
                escape(&v.observed),
                escape(&v.limit)
            );
        }
        out.push_str("</tbody></table></section>");
    }
    let mut rows: Rows<'_> = std::collections::HashMap::new();
    for row in &r.intervals {
        rows.entry(row.key.as_str()).or_default().push(row);
    }
    for f in &r.flows {
        flow_section(r, &rows, f, &mut out);
    }
    let creeping: Vec<&crate::model::Trend> = r.trends.iter().filter(|t| t.creeping).collect();
    if !creeping.is_empty() {
        out.push_str(r#"<section><h2>Creeping latency</h2><ul>"#);
        for t in creeping {
            let _ = write!(out, r#"<li class="bad">{}</li>"#, escape(&t.verdict));
        }
        out.push_str("</ul></section>");
    }
    if !r.db_load.is_empty() {
        out.push_str(r#"<section><h2>Server-reported database time by step</h2><table><thead><tr><th>step</th><th>share</th><th>calls</th><th>per call</th><th>total</th></tr></thead><tbody>"#);
        for d in &r.db_load {
            let _ = write!(
                out,
                "<tr><td><code>{}</code></td><td>{:.1}%</td><td>{}</td><td>{:.2}ms</td><td>{:.0}ms</td></tr>",
                escape(&d.key),
                d.share * 100.0,
                d.calls,
                d.per_call_ms,
                d.total_ms
            );
        }
        out.push_str("</tbody></table></section>");
    }
    if !r.self_checks.is_empty() {
        out.push_str(r#"<section><h2>Self-checks</h2><table class="verdicts"><tbody>"#);
        for c in &r.self_checks {
            let (mark, class) = if c.passed {
                ("pass", "good")
            } else {
                ("FAIL", "bad")
            };
            let _ = write!(
                out,
                r#"<tr><td class="{class}">{mark}</td><td>{}</td></tr>"#,
                escape(&c.detail)
            );
        }
        out.push_str("</tbody></table></section>");
    }
    if !r.error_examples.is_empty() {
        out.push_str(r#"<section><h2>Errors (first example of each kind)</h2><table><thead><tr><th>key</th><th>class</th><th>message</th></tr></thead><tbody>"#);
        for e in &r.error_examples {
            let _ = write!(
                out,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                escape(&e.key),
                e.class,
                escape(&e.message)
            );
        }
        out.push_str("</tbody></table></section>");
    }
    let loops: Vec<&str> = r
        .flows
        .iter()
        .filter(|f| f.closed_loop())
        .map(|f| f.name.as_str())
        .collect();
    let timing = if loops.is_empty() {
        "latency is measured from each request's due time (no coordinated omission)".to_string()
    } else {
        format!(
            "latency is measured from each request's due time; {} without <code>pace</code> start{} each iteration when the last one ended, so {} latency cannot show a queue the target built (give {} a pace to see it)",
            escape(&loops.join(", ")),
            if loops.len() == 1 { "s" } else { "" },
            if loops.len() == 1 { "its" } else { "their" },
            if loops.len() == 1 { "it" } else { "them" },
        )
    };
    let _ = write!(
        out,
        r#"<footer>{} · {} CPUs · {} · {timing}</footer></body></html>"#,
        escape(&r.environment.os),
        r.environment.cpus,
        escape(r.environment.hostname.as_deref().unwrap_or(""))
    );
    out
}

/// The style every page shares.
pub(super) const CSS: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:0 auto;max-width:1420px;padding:16px;color:#222}\
h1{margin:0 0 4px}h2{margin:28px 0 8px;font-size:18px}small{color:#666}code{font-size:13px}\
table{border-collapse:collapse;margin:8px 0}td,th{padding:3px 10px;border-bottom:1px solid #ddd;text-align:right}\
td:first-child,th:first-child{text-align:left}.verdicts td:nth-child(2),.verdicts td:nth-child(3){text-align:left}\
.good{color:#1a7f37;font-weight:600}.bad{color:#cf222e;font-weight:600}.warn{color:#9a6700;font-weight:600}\
.verdict{padding:1px 8px;border-radius:10px;border:1px solid currentColor}\
.charts{display:flex;flex-wrap:wrap;gap:8px}.chart{background:#fafafa;border:1px solid #e5e5e5}\
.chart .title{font-size:13px;font-weight:600}.chart .tick,.chart .legend{font-size:11px;fill:#555}\
.chart .grid{stroke:#e5e5e5}.chart .frame{fill:none;stroke:#bbb}.chart .empty{fill:#999}\
footer{margin-top:32px;color:#777;font-size:12px}";
