//! `report.html`: one self-contained page (no scripts, no network) with charts as inline SVG.
//!
//! The charts are line charts, which take a few dozen lines of SVG to draw; plotting crates
//! either need font files for text layout or bring a JavaScript runtime, neither of which a
//! file opened from a CI artifact can count on. Long series are reduced to at most
//! [`MAX_POINTS`] points per line (keeping each bucket's maximum, so spikes survive), which keeps
//! a 10 flows × 20 steps × 1 hour run to a few megabytes.

use std::fmt::Write as _;

use super::text::{escape, iso8601, truncate};
use crate::model::codec;
use crate::model::{FlowResult, IntervalRow, Latency, RunResult};
use crate::units::short_duration;

/// Most points drawn per line.
pub const MAX_POINTS: usize = 600;

const COLORS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];
const W: f64 = 680.0;
const H: f64 = 250.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 36.0;

/// How an axis labels its values.
#[derive(Debug, Clone, Copy)]
enum Unit {
    /// Microseconds, shown as ms/s.
    Micros,
    /// Plain numbers.
    Number,
    /// Seconds since the start.
    Seconds,
    /// Percentiles on a log scale: x = -log10(1 - p).
    Nines,
}

fn label(v: f64, unit: Unit) -> String {
    match unit {
        Unit::Micros => short_duration(std::time::Duration::from_micros(v.max(0.0) as u64)),
        Unit::Number => {
            if v >= 1000.0 {
                format!("{:.1}k", v / 1000.0)
            } else if (v - v.round()).abs() < 1e-9 {
                format!("{v:.0}")
            } else {
                format!("{v:.1}")
            }
        }
        Unit::Seconds => format!("{v:.0}s"),
        Unit::Nines => {
            let p = 100.0 * (1.0 - 10f64.powf(-v));
            let s = format!("{p:.4}");
            format!("{}%", s.trim_end_matches('0').trim_end_matches('.'))
        }
    }
}

/// A step of 1, 2 or 5 × 10^k giving about `n` ticks up to `max`.
fn nice_step(max: f64, n: f64) -> f64 {
    if max <= 0.0 || !max.is_finite() {
        return 1.0;
    }
    let raw = max / n;
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let f = if norm <= 1.0 {
        1.0
    } else if norm <= 2.0 {
        2.0
    } else if norm <= 5.0 {
        5.0
    } else {
        10.0
    };
    f * mag
}

struct Line {
    name: String,
    points: Vec<(f64, f64)>,
    dashed: bool,
}

/// Keeps at most `MAX_POINTS` points: each bucket of consecutive points becomes its maximum.
fn reduce(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    if points.len() <= MAX_POINTS {
        return points.to_vec();
    }
    let per = points.len().div_ceil(MAX_POINTS);
    points
        .chunks(per)
        .filter_map(|c| {
            c.iter()
                .copied()
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .map(|(_, y)| (c[0].0, y))
        })
        .collect()
}

fn chart(title: &str, lines: &[Line], x_unit: Unit, y_unit: Unit) -> String {
    let mut svg = String::new();
    let drawn: Vec<(&Line, Vec<(f64, f64)>)> = lines
        .iter()
        .filter(|l| !l.points.is_empty())
        .map(|l| (l, reduce(&l.points)))
        .collect();
    let xs = drawn.iter().flat_map(|(_, p)| p.iter().map(|q| q.0));
    let (x_min, x_max) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
        (a.min(x), b.max(x))
    });
    let y_max = drawn
        .iter()
        .flat_map(|(_, p)| p.iter().map(|q| q.1))
        .fold(0.0, f64::max);
    // Four legend entries per row under the plot; the chart grows by a row height per extra row.
    let legend_rows = drawn.len().div_ceil(4).max(1);
    let h = H + 14.0 * (legend_rows as f64 - 1.0);
    let _ = write!(
        svg,
        r#"<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" viewBox="0 0 {W} {h}" role="img" aria-label="{t}"><title>{t}</title><text x="{LEFT}" y="18" class="title">{t}</text>"#,
        t = escape(title)
    );
    if drawn.is_empty() || !x_min.is_finite() {
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" class="empty">no data</text></svg>"#,
            W / 2.0 - 30.0,
            H / 2.0
        );
        return svg;
    }
    let (x_min, x_max) = if x_max > x_min {
        (x_min, x_max)
    } else {
        (x_min - 1.0, x_max + 1.0)
    };
    let y_step = nice_step(y_max * 1.05, 5.0);
    let y_top = (y_max * 1.05 / y_step).ceil().max(1.0) * y_step;
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let px = |x: f64| LEFT + (x - x_min) / (x_max - x_min) * pw;
    let py = |y: f64| TOP + ph - y / y_top * ph;
    // Grid and y labels.
    let mut y = 0.0;
    while y <= y_top + y_step * 0.01 {
        let _ = write!(
            svg,
            r#"<line x1="{LEFT}" x2="{}" y1="{yy:.1}" y2="{yy:.1}" class="grid"/><text x="{}" y="{:.1}" class="tick" text-anchor="end">{}</text>"#,
            W - RIGHT,
            LEFT - 6.0,
            py(y) + 4.0,
            escape(&label(y, y_unit)),
            yy = py(y)
        );
        y += y_step;
    }
    // X labels.
    let x_ticks: Vec<f64> = match x_unit {
        Unit::Nines => (0..=((x_max).floor() as i32)).map(f64::from).collect(),
        _ => {
            let step = nice_step(x_max - x_min, 6.0);
            let mut v = Vec::new();
            let mut x = (x_min / step).ceil() * step;
            while x <= x_max + step * 0.01 {
                v.push(x);
                x += step;
            }
            v
        }
    };
    for x in x_ticks {
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{}" class="tick" text-anchor="middle">{}</text>"#,
            px(x),
            H - BOTTOM + 16.0,
            escape(&label(x, x_unit))
        );
    }
    let _ = write!(
        svg,
        r#"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" class="frame"/>"#
    );
    for (i, (line, points)) in drawn.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let mut pts = String::with_capacity(points.len() * 14);
        for (x, y) in points {
            let _ = write!(pts, "{:.1},{:.1} ", px(*x), py(*y));
        }
        let dash = if line.dashed {
            r#" stroke-dasharray="5,4""#
        } else {
            ""
        };
        let _ = write!(
            svg,
            r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="1.6"{dash}><title>{}</title></polyline>"#,
            pts.trim_end(),
            escape(&line.name)
        );
        let lx = LEFT + 10.0 + (i % 4) as f64 * 150.0;
        let ly = H - 6.0 + 14.0 * (i / 4) as f64;
        {
            let _ = write!(
                svg,
                r#"<rect x="{lx}" y="{}" width="10" height="3" fill="{color}"/><text x="{}" y="{ly}" class="legend">{}</text>"#,
                ly - 4.0,
                lx + 14.0,
                escape(&truncate(&line.name, 22))
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

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

fn flow_section(r: &RunResult, rows: &Rows<'_>, f: &FlowResult, out: &mut String) {
    let iter_key = format!("{}.iteration", f.name);
    let dt = r.interval_s.max(1e-3);
    let iter_rows: Vec<&IntervalRow> = rows_of(rows, &iter_key).collect();
    let mut lat = vec![
        Line {
            name: "iteration p50".into(),
            points: iter_rows
                .iter()
                .filter(|x| x.count > 0)
                .map(|x| (x.t, x.p50_us as f64))
                .collect(),
            dashed: false,
        },
        Line {
            name: "iteration p95".into(),
            points: iter_rows
                .iter()
                .filter(|x| x.count > 0)
                .map(|x| (x.t, x.p95_us as f64))
                .collect(),
            dashed: false,
        },
        Line {
            name: "iteration p99".into(),
            points: iter_rows
                .iter()
                .filter(|x| x.count > 0)
                .map(|x| (x.t, x.p99_us as f64))
                .collect(),
            dashed: false,
        },
    ];
    for s in f.steps.iter().take(5) {
        lat.push(Line {
            name: format!("{} p99", s.name),
            points: rows_of(rows, &s.key)
                .filter(|x| x.count > 0)
                .map(|x| (x.t, x.p99_us as f64))
                .collect(),
            dashed: true,
        });
    }
    let mut tput = vec![
        Line {
            name: "iterations/s".into(),
            points: iter_rows
                .iter()
                .map(|x| (x.t, x.count as f64 / dt))
                .collect(),
            dashed: false,
        },
        Line {
            name: "failed iterations/s".into(),
            points: iter_rows
                .iter()
                .map(|x| (x.t, x.errors as f64 / dt))
                .collect(),
            dashed: false,
        },
    ];
    let requests: Vec<(f64, f64)> = {
        let mut by_t: std::collections::BTreeMap<u64, f64> = std::collections::BTreeMap::new();
        for s in &f.steps {
            for x in rows_of(rows, &s.key) {
                *by_t.entry((x.t * 1000.0) as u64).or_default() += x.count as f64 / dt;
            }
        }
        by_t.into_iter()
            .map(|(t, v)| (t as f64 / 1000.0, v))
            .collect()
    };
    tput.push(Line {
        name: "requests/s".into(),
        points: requests,
        dashed: true,
    });
    let open = f.model_kind == "open";
    let load = vec![
        Line {
            name: if open {
                "target arrivals/s".into()
            } else {
                "target VUs".into()
            },
            points: iter_rows
                .iter()
                .filter_map(|x| x.target.map(|v| (x.t, v)))
                .collect(),
            dashed: true,
        },
        Line {
            name: if open {
                "achieved iterations/s".into()
            } else {
                "busy VUs".into()
            },
            points: if open {
                iter_rows
                    .iter()
                    .map(|x| (x.t, x.count as f64 / dt))
                    .collect()
            } else {
                iter_rows
                    .iter()
                    .filter_map(|x| x.active_vus.map(|v| (x.t, v as f64)))
                    .collect()
            },
            dashed: false,
        },
        Line {
            name: "dropped/s".into(),
            points: iter_rows
                .iter()
                .filter_map(|x| x.dropped.map(|d| (x.t, d as f64 / dt)))
                .collect(),
            dashed: false,
        },
    ];
    let mut dist: Vec<Line> = f
        .steps
        .iter()
        .filter_map(|s| {
            s.latency.as_ref().map(|l| Line {
                name: s.name.clone(),
                points: distribution(l),
                dashed: false,
            })
        })
        .collect();
    if let Some(l) = &f.iteration {
        dist.push(Line {
            name: "iteration".into(),
            points: distribution(l),
            dashed: true,
        });
    }
    let _ = write!(
        out,
        r#"<section class="flow" id="flow-{id}"><h2>Flow <code>{name}</code> <small>journey {j} · {kind}</small></h2><p class="model">{model}</p>"#,
        id = escape(&f.name),
        name = escape(&f.name),
        j = escape(&f.journey),
        kind = escape(&f.kind),
        model = escape(&f.model)
    );
    let _ = write!(
        out,
        r#"<p class="facts">{} iterations ({} failed, {} interrupted){}{}</p>"#,
        f.iterations_ok + f.iterations_failed,
        f.iterations_failed,
        f.interrupted,
        if open {
            format!(", {} planned, {} dropped", f.planned, f.dropped)
        } else {
            String::new()
        },
        f.schedule_lag
            .as_ref()
            .map(|l| format!(
                ", schedule lag p99 {}",
                short_duration(std::time::Duration::from_micros(l.p99_us))
            ))
            .unwrap_or_default()
    );
    if let Some(w) = &f.work {
        let mut line = format!("Work per iteration: {:.1} requests", w.requests_mean);
        for t in &w.per_iteration {
            match &t.duration {
                Some(d) => line.push_str(&format!(
                    "; {} {} p50, {} p99",
                    t.name,
                    short_duration(std::time::Duration::from_micros(d.p50_us)),
                    short_duration(std::time::Duration::from_micros(d.p99_us))
                )),
                None if t.count_total > 0.0 => {
                    line.push_str(&format!("; {} {:.1}", t.name, t.count_mean))
                }
                None => {}
            }
        }
        let _ = write!(out, r#"<p class="facts">{}</p>"#, escape(&line));
    }
    out.push_str(r#"<div class="charts">"#);
    out.push_str(&chart(
        "Latency over time (from due time)",
        &lat,
        Unit::Seconds,
        Unit::Micros,
    ));
    out.push_str(&chart(
        "Throughput and errors",
        &tput,
        Unit::Seconds,
        Unit::Number,
    ));
    out.push_str(&chart(
        if open {
            "Target vs achieved rate"
        } else {
            "Virtual users"
        },
        &load,
        Unit::Seconds,
        Unit::Number,
    ));
    out.push_str(&chart(
        "Latency distribution (log percentile axis)",
        &dist,
        Unit::Nines,
        Unit::Micros,
    ));
    out.push_str("</div>");
    out.push_str(r#"<table class="steps"><thead><tr><th>step</th><th>requests</th><th>rate</th><th>errors</th><th>p50</th><th>p90</th><th>p95</th><th>p99</th><th>p99.9</th><th>max</th><th>service p99</th><th>ttfb p99</th><th>checks</th><th>retry ×</th></tr></thead><tbody>"#);
    let ms = |us: u64| short_duration(std::time::Duration::from_micros(us));
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
            "<tr><td><code>{}</code> <small>{} {}</small></td><td>{}</td><td>{:.1}/s</td><td{err_class}>{err}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}/{}</td></tr>",
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
            s.checks_passed + s.checks_failed
        );
        out.truncate(out.len() - "</tr>".len());
        let _ = write!(
            out,
            "<td>{}</td></tr>",
            if s.retries > 0 {
                format!("{:.2}", s.amplification)
            } else {
                "-".into()
            }
        );
    }
    out.push_str("</tbody></table>");
    let split: Vec<_> = f
        .steps
        .iter()
        .filter_map(|s| s.batch.as_ref().map(|b| (s, b)))
        .collect();
    if !split.is_empty() {
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
    out.push_str("</section>");
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
            escape(&f.kind),
            escape(&f.model)
        );
    }
    out.push_str("</tbody></table></section>");
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
                escape(&e.class),
                escape(&e.message)
            );
        }
        out.push_str("</tbody></table></section>");
    }
    let _ = write!(
        out,
        r#"<footer>{} · {} CPUs · {} · latency is measured from each request's due time (no coordinated omission)</footer></body></html>"#,
        escape(&r.environment.os),
        r.environment.cpus,
        escape(r.environment.hostname.as_deref().unwrap_or(""))
    );
    out
}

const CSS: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:0 auto;max-width:1420px;padding:16px;color:#222}\
h1{margin:0 0 4px}h2{margin:28px 0 8px;font-size:18px}small{color:#666}code{font-size:13px}\
table{border-collapse:collapse;margin:8px 0}td,th{padding:3px 10px;border-bottom:1px solid #ddd;text-align:right}\
td:first-child,th:first-child{text-align:left}.verdicts td:nth-child(2),.verdicts td:nth-child(3){text-align:left}\
.good{color:#1a7f37;font-weight:600}.bad{color:#cf222e;font-weight:600}.warn{color:#9a6700;font-weight:600}\
.verdict{padding:1px 8px;border-radius:10px;border:1px solid currentColor}\
.charts{display:flex;flex-wrap:wrap;gap:8px}.chart{background:#fafafa;border:1px solid #e5e5e5}\
.chart .title{font-size:13px;font-weight:600}.chart .tick,.chart .legend{font-size:11px;fill:#555}\
.chart .grid{stroke:#e5e5e5}.chart .frame{fill:none;stroke:#bbb}.chart .empty{fill:#999}\
footer{margin-top:32px;color:#777;font-size:12px}";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_steps_are_1_2_5_decades() {
        assert_eq!(nice_step(100.0, 5.0), 20.0);
        assert_eq!(nice_step(7.0, 5.0), 2.0);
        assert_eq!(nice_step(0.3, 5.0), 0.1);
    }

    #[test]
    fn reduction_keeps_peaks() {
        let pts: Vec<(f64, f64)> = (0..6000)
            .map(|i| (i as f64, if i == 4321 { 99.0 } else { 1.0 }))
            .collect();
        let r = reduce(&pts);
        assert!(r.len() <= MAX_POINTS);
        assert!(r.iter().any(|p| p.1 == 99.0));
    }

    #[test]
    fn nines_axis_labels() {
        assert_eq!(label(0.0, Unit::Nines), "0%");
        assert_eq!(label(2.0, Unit::Nines), "99%");
        assert_eq!(label(3.0, Unit::Nines), "99.9%");
    }

    #[test]
    fn a_chart_without_data_says_so() {
        let svg = chart("t", &[], Unit::Seconds, Unit::Micros);
        assert!(svg.contains("no data"));
        let svg = chart(
            "t",
            &[Line {
                name: "a".into(),
                points: vec![(0.0, 1.0), (1.0, 2.0)],
                dashed: false,
            }],
            Unit::Seconds,
            Unit::Number,
        );
        assert!(svg.contains("<polyline points=\""));
    }
}
