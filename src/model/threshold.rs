//! Threshold expressions: the grammar of pass/fail criteria, parsed once (from a scenario or a
//! `--fail-if`) and judged by `analysis::threshold`.
//!
//! ```text
//! threshold := latency-expr | ratio-expr
//! latency-expr := [series] stat op duration           p99 < 400ms · ttfb p95 <= 50ms · max < 2s
//! series   := "latency" (default) | "service_time" | "ttfb"
//! stat     := "p" number | "med" | "mean" | "min" | "max"      p50 · p99.9 · mean
//! ratio-expr := "errors" op (percent | count)         errors < 1% · errors == 0
//!             | "checks" op percent                   checks > 99.5%
//!             | "rate" op (percent | rate)            rate > 95%  (achieved / planned) · rate >= 40/s
//!             | "dropped" op (percent | count)        dropped < 0.1% · dropped == 0
//! trend-expr := ("p50" | "p95") "trend" op percent "/" duration     p95 trend < 2%/10m
//!               (compares the lower bound of the slope's 95% interval: only a significant rise
//!               counts; see `analysis::trend`)
//! op := "<" | "<=" | ">" | ">=" | "==" | "!="
//! ```
//!
//! Keys are globs over metric keys: a pattern with a dot (`traders.exchange`, `traders.*`) matches
//! steps and `flow.iteration`; one without (`traders`, `*`) matches flows, whose latency is every
//! request of the flow merged and whose errors are failed requests and failures outside requests.
//! The first segment may also name a journey (`trade.exchange`): it then applies to every flow
//! that runs that journey, and each verdict names the flow's key.
//! `rate` and `dropped` apply to flows only. Evaluation (`analysis::threshold`) reads a `RunResult` and nothing else.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::units::{Percent, Rate, Span};

/// Which latency series a latency expression reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Series {
    /// From due time to last byte.
    Latency,
    /// From send to last byte.
    ServiceTime,
    /// From send to response head.
    Ttfb,
}

/// A statistic of a latency distribution.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stat {
    /// A percentile (0–100).
    Percentile(f64),
    /// Mean.
    Mean,
    /// Smallest.
    Min,
    /// Largest.
    Max,
}

/// What a threshold measures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Metric {
    /// A latency statistic.
    Latency(Series, Stat),
    /// Failed requests (share, or a count).
    Errors,
    /// Passed checks (share).
    Checks,
    /// Achieved rate: a share of planned arrivals, or iterations per second.
    Rate,
    /// Dropped arrivals (share of planned, or a count).
    Dropped,
    /// The Theil–Sen slope of a per-interval percentile (`p50` or `p95`), relative to its median.
    Trend(Stat),
}

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `==`
    Eq,
    /// `!=`
    Ne,
}

impl Op {
    /// Whether `a op b` holds.
    pub fn holds(self, a: f64, b: f64) -> bool {
        match self {
            Op::Lt => a < b,
            Op::Le => a <= b,
            Op::Gt => a > b,
            Op::Ge => a >= b,
            Op::Eq => (a - b).abs() < 1e-12,
            Op::Ne => (a - b).abs() >= 1e-12,
        }
    }
}

/// The right-hand side.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Limit {
    /// A duration.
    Duration(Duration),
    /// A share (0–1).
    Share(f64),
    /// A count.
    Count(f64),
    /// Events per second.
    PerSecond(f64),
    /// A relative change per second (`2%/10m` = 0.02 / 600).
    Slope(f64),
}

impl Limit {
    /// The limit as a number, in the units of a verdict's observed value (seconds for
    /// durations, 0–1 for shares).
    pub fn value(self) -> f64 {
        match self {
            Limit::Duration(d) => d.as_secs_f64(),
            Limit::Share(s) => s,
            Limit::Count(c) | Limit::PerSecond(c) | Limit::Slope(c) => c,
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Limit::Duration(d) => write!(f, "{}", Span(*d)),
            Limit::Share(s) => write!(f, "{}%", fmt_num(s * 100.0)),
            Limit::Count(c) => write!(f, "{}", fmt_num(*c)),
            Limit::PerSecond(r) => write!(f, "{}/s", fmt_num(*r)),
            Limit::Slope(s) => write!(f, "{}%/min", fmt_num(s * 6000.0)),
        }
    }
}

/// A number as thresholds print it: integers bare, others with up to 3 decimals.
pub fn fmt_num(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round())
    } else {
        format!("{v:.3}").trim_end_matches('0').to_string()
    }
}

/// A parsed threshold expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    /// What it measures.
    pub metric: Metric,
    /// The comparison.
    pub op: Op,
    /// The limit.
    pub limit: Limit,
}

/// Why a threshold expression did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid threshold `{text}`: {reason}")]
pub struct ThresholdError {
    /// The expression.
    pub text: String,
    /// What was expected.
    pub reason: String,
}

impl FromStr for Expr {
    type Err = ThresholdError;
    fn from_str(text: &str) -> Result<Expr, ThresholdError> {
        let err = |reason: &str| ThresholdError {
            text: text.to_string(),
            reason: reason.to_string(),
        };
        let op_at = text
            .find(['<', '>', '=', '!'])
            .ok_or_else(|| err("expected a comparison: <, <=, >, >=, == or !="))?;
        let (lhs, rest) = text.split_at(op_at);
        let (op, rhs) = [
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("==", Op::Eq),
            ("!=", Op::Ne),
            ("<", Op::Lt),
            (">", Op::Gt),
        ]
        .iter()
        .find_map(|(t, op)| rest.strip_prefix(t).map(|r| (*op, r.trim())))
        .ok_or_else(|| err("expected a comparison: <, <=, >, >=, == or !="))?;
        let words: Vec<&str> = lhs.split_whitespace().collect();
        let metric = match words.as_slice() {
            ["errors"] => Metric::Errors,
            ["checks"] => Metric::Checks,
            ["rate"] => Metric::Rate,
            ["dropped"] => Metric::Dropped,
            [stat] => Metric::Latency(
                Series::Latency,
                parse_stat(stat).ok_or_else(|| err(STAT_HELP))?,
            ),
            [stat, "trend"] => match parse_stat(stat) {
                Some(s @ Stat::Percentile(p)) if p == 50.0 || p == 95.0 => Metric::Trend(s),
                _ => {
                    return Err(err(
                        "trends are kept for p50 and p95: write `p95 trend < 2%/10m`",
                    ));
                }
            },
            [series, stat] => {
                let s = match *series {
                    "latency" => Series::Latency,
                    "service_time" => Series::ServiceTime,
                    "ttfb" => Series::Ttfb,
                    _ => {
                        return Err(err(
                            "expected latency, service_time or ttfb before the statistic",
                        ));
                    }
                };
                Metric::Latency(s, parse_stat(stat).ok_or_else(|| err(STAT_HELP))?)
            }
            _ => return Err(err(STAT_HELP)),
        };
        let limit = match metric {
            Metric::Latency(..) => Limit::Duration(
                rhs.parse::<Span>().map_err(|_| err("expected a duration like 400ms or 1.5s"))?.get(),
            ),
            Metric::Checks => Limit::Share(parse_share(rhs).ok_or_else(|| err("expected a percentage like 99%"))?),
            Metric::Errors | Metric::Dropped => match parse_share(rhs) {
                Some(s) => Limit::Share(s),
                None => Limit::Count(rhs.parse::<f64>().ok().filter(|c| *c >= 0.0).ok_or_else(|| err("expected a percentage like 1% or a count like 0"))?),
            },
            Metric::Trend(_) => {
                let (share, per) = rhs.split_once('/').ok_or_else(|| err("expected a change per time, like 2%/10m"))?;
                let share = parse_share(share).ok_or_else(|| err("expected a change per time, like 2%/10m"))?;
                let per = per.trim().parse::<Span>().map_err(|_| err("expected a change per time, like 2%/10m"))?.get();
                if per.is_zero() {
                    return Err(err("the period must be longer than zero"));
                }
                Limit::Slope(share / per.as_secs_f64())
            }
            Metric::Rate => match parse_share(rhs) {
                Some(s) => Limit::Share(s),
                None => Limit::PerSecond(rhs.parse::<Rate>().map_err(|_| err("expected a percentage of the planned rate like 95%, or a rate like 40/s"))?.get()),
            },
        };
        Ok(Expr { metric, op, limit })
    }
}

const STAT_HELP: &str = "expected p50, p95, p99, p99.9, mean, min, max (optionally after service_time or ttfb), errors, checks, rate or dropped";

fn parse_stat(s: &str) -> Option<Stat> {
    match s {
        "mean" | "avg" => Some(Stat::Mean),
        "min" => Some(Stat::Min),
        "max" => Some(Stat::Max),
        "med" | "median" => Some(Stat::Percentile(50.0)),
        _ => {
            let p: f64 = s.strip_prefix('p')?.parse().ok()?;
            (p > 0.0 && p <= 100.0).then_some(Stat::Percentile(p))
        }
    }
}

fn parse_share(s: &str) -> Option<f64> {
    s.trim()
        .ends_with('%')
        .then(|| s.parse::<Percent>().ok().map(Percent::fraction))
        .flatten()
}

/// A threshold as written under one key pattern.
#[derive(Debug, Clone)]
pub struct Threshold {
    /// The key pattern (`trade.exchange`, `trade.*`, `*`).
    pub pattern: String,
    /// The expression as written.
    pub text: String,
    /// The parsed expression.
    pub expr: Expr,
    /// Stop the run when it fails (checked every interval after `delay`).
    pub abort_on_fail: bool,
    /// When live checking starts.
    pub delay: Duration,
}

/// True when `key` matches `pattern` (`*` is any run of characters).
pub fn glob(pattern: &str, key: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == key;
    }
    let mut rest = key;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(part) else {
                return false;
            };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            let Some(at) = rest.find(part) else {
                return false;
            };
            rest = &rest[at + part.len()..];
        }
    }
    true
}

/// The flow keys a pattern matches, given `(flow, journey, steps)` triples.
pub fn matching_keys<'a>(
    pattern: &str,
    flows: impl IntoIterator<Item = (&'a str, &'a str, Vec<&'a str>)>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (flow, journey, steps) in flows {
        if pattern.contains('.') {
            for s in steps.into_iter().chain(["iteration"]) {
                if glob(pattern, &format!("{flow}.{s}")) || glob(pattern, &format!("{journey}.{s}"))
                {
                    out.push(format!("{flow}.{s}"));
                }
            }
        } else if glob(pattern, flow) || glob(pattern, journey) {
            out.push(flow.to_string());
        }
    }
    out
}
