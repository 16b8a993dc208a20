//! Line charts as inline SVG, for a page that must open from a CI artifact with no scripts and no
//! network. Plotting crates either need font files for text layout or bring a JavaScript runtime;
//! a line chart is a few dozen lines of SVG. Long series are reduced to at most [`MAX_POINTS`]
//! points per line (keeping each bucket's maximum, so spikes survive).

use std::fmt::Write as _;

use super::text::{escape, truncate};
use crate::model::IntervalRow;
use crate::units::short_duration;

/// Most points drawn per line.
pub(super) const MAX_POINTS: usize = 600;

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
pub(super) enum Unit {
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

/// One line of a chart.
pub(super) struct Line {
    /// Its legend.
    pub name: String,
    /// (x, y) in axis units.
    pub points: Vec<(f64, f64)>,
    /// Drawn dashed (a secondary series).
    pub dashed: bool,
}

impl Line {
    /// The line of `name` through the interval rows, one point per row that `y` gives a value
    /// for, at the row's time: the one way every over-time series is drawn.
    pub(super) fn series<'a>(
        name: impl Into<String>,
        rows: impl IntoIterator<Item = &'a IntervalRow>,
        y: impl Fn(&IntervalRow) -> Option<f64>,
        dashed: bool,
    ) -> Line {
        Line {
            name: name.into(),
            points: rows
                .into_iter()
                .filter_map(|r| Some((r.t, y(r)?)))
                .collect(),
            dashed,
        }
    }
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

/// A line chart as inline SVG (title, axes, ticks, legend); "no data" when no line has a point.
pub(super) fn chart(title: &str, lines: &[Line], x_unit: Unit, y_unit: Unit) -> String {
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
