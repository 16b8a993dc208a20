//! Flows: a journey bound to a load model (open or closed), its curve and its limits.

use std::collections::HashMap;
use std::time::Duration;

use super::super::diagnostic::did_you_mean;
use super::super::plan::*;
use super::super::raw::*;
use super::super::source::{join_index, join_key};
use super::*;
use crate::scenario::curve::{Curve, Piece, Shape};
use crate::units::Rate;

impl Validator<'_> {
    pub(super) fn flow(
        &mut self,
        name: &str,
        f: &RawFlow,
        journeys: &HashMap<String, usize>,
        raw: &RawScenario,
        ov: &Overrides,
    ) -> Option<Flow> {
        let p = format!("flows.{name}");
        let mut ok = true;
        if !valid_name(name) {
            self.err_key(&p, format!("flow name `{name}` may use only letters, digits, `_` and `-` (it becomes a metric key)"));
            ok = false;
        }
        let journey = match &f.journey {
            None => {
                self.err(&p, format!("flow `{name}` needs a `journey`"));
                None
            }
            Some(j) => match journeys.get(j) {
                Some(&i) => Some(i),
                None => {
                    let hint = did_you_mean(j, raw.journeys.keys().map(String::as_str))
                        .map(|c| format!("did you mean `{c}`?"));
                    if raw.journeys.contains_key(j) {
                        // Defined but invalid: its own errors are reported already.
                    } else {
                        self.err_hint(
                            &join_key(&p, "journey"),
                            format!("flow `{name}` uses undefined journey `{j}`"),
                            hint,
                        );
                    }
                    None
                }
            },
        };
        let duration = match &f.duration {
            Some(d) => self.positive_span(&join_key(&p, "duration"), d),
            None => ov.duration,
        };
        // Iterations bound either model, from the file or from `--iterations` for this flow
        // (named, or unnamed: the only flow, checked later). Without a duration, a bounded flow
        // runs as long as they take, up to a day (an open flow's curve is cut to its arrivals in
        // the overrides, once the rate is final).
        if f.iterations == Some(0) {
            self.err(
                &join_key(&p, "iterations"),
                "`iterations` must be at least 1",
            );
            ok = false;
        }
        let bounded = f.iterations.is_some()
            || ov
                .iterations
                .iter()
                .any(|o| o.flow.as_deref().is_none_or(|n| n == name));
        let cap = |bounded: bool| bounded.then_some(super::super::plan::ITERATIONS_CAP);
        let start = f
            .start
            .as_ref()
            .and_then(|s| self.span(&join_key(&p, "start"), s))
            .unwrap_or_default();
        let kind = match f.kind.as_deref() {
            None | Some("live") => FlowKind::Live,
            Some("background") => FlowKind::Background,
            Some(other) => {
                self.err(
                    &join_key(&p, "kind"),
                    format!("unknown flow kind `{other}`: expected live or background"),
                );
                ok = false;
                FlowKind::Live
            }
        };
        let model = match (&f.rate, &f.vus) {
            (Some(_), Some(_)) => {
                self.err(&p, format!("flow `{name}` sets both `rate` (open model) and `vus` (closed model): choose one"));
                None
            }
            (None, None) => {
                self.err_hint(
                    &p,
                    format!("flow `{name}` needs a load model"),
                    Some("set `rate: 50/s` (open) or `vus: 10` (closed)".into()),
                );
                None
            }
            (Some(rate), None) => {
                for (k, set, instead) in [
                    (
                        "pace",
                        f.pace.is_some(),
                        "an open flow's pace is its `rate`",
                    ),
                    (
                        "think",
                        f.think.is_some(),
                        "an open flow's pace is its `rate`",
                    ),
                    (
                        "per_vu_iterations",
                        f.per_vu_iterations.is_some(),
                        "an open flow takes `iterations`, its arrivals in all",
                    ),
                ] {
                    if set {
                        self.err_key(
                            &join_key(&p, k),
                            format!("`{k}` applies to closed flows (`vus`); {instead}"),
                        );
                        ok = false;
                    }
                }
                let arrivals = match f.arrivals.as_deref() {
                    None | Some("uniform") => Arrivals::Uniform,
                    Some("poisson") => Arrivals::Poisson,
                    Some(other) => {
                        self.err(
                            &join_key(&p, "arrivals"),
                            format!("unknown arrivals `{other}`: expected uniform or poisson"),
                        );
                        ok = false;
                        Arrivals::Uniform
                    }
                };
                let duration = duration.or(cap(bounded));
                let curve = self.curve(rate, &join_key(&p, "rate"), duration, true, &p);
                if f.max_vus == Some(0) {
                    self.err(&join_key(&p, "max_vus"), "max_vus must be at least 1");
                    ok = false;
                }
                curve.map(|curve| {
                    let peak = curve.peak();
                    LoadModel::Open(Open {
                        curve,
                        arrivals,
                        max_vus: f.max_vus.unwrap_or_else(|| default_max_vus(peak)),
                        iterations: f.iterations,
                    })
                })
            }
            (None, Some(vus)) => {
                for (k, set) in [
                    ("arrivals", f.arrivals.is_some()),
                    ("max_vus", f.max_vus.is_some()),
                ] {
                    if set {
                        self.err_key(
                            &join_key(&p, k),
                            format!("`{k}` applies to open flows (`rate`)"),
                        );
                        ok = false;
                    }
                }
                let pace = f
                    .pace
                    .as_ref()
                    .and_then(|t| self.positive_span(&join_key(&p, "pace"), t));
                let think = f
                    .think
                    .as_ref()
                    .and_then(|t| self.think(t, &join_key(&p, "think")));
                let duration = duration.or(cap(bounded || f.per_vu_iterations.is_some()));
                if f.per_vu_iterations == Some(0) {
                    self.err(
                        &join_key(&p, "per_vu_iterations"),
                        "`per_vu_iterations` must be at least 1",
                    );
                    ok = false;
                }
                self.curve(vus, &join_key(&p, "vus"), duration, false, &p)
                    .map(|curve| {
                        LoadModel::Closed(Closed {
                            curve,
                            pace,
                            think,
                            iterations: f.iterations,
                            per_vu_iterations: f.per_vu_iterations,
                        })
                    })
            }
        };
        if !ok {
            return None;
        }
        let seed = f.seed.unwrap_or_else(|| {
            name.bytes().fold(0xcbf29ce484222325, |h, b| {
                (h ^ b as u64).wrapping_mul(0x100000001b3)
            })
        });
        Some(Flow {
            name: name.to_string(),
            journey: journey?,
            model: model?,
            start,
            kind,
            tags: f.tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            seed,
        })
    }

    /// Parses a level: a rate (`50/s`) for open flows or a VU count for closed ones.
    pub(super) fn level(&mut self, s: &Scalar, path: &str, is_rate: bool) -> Option<f64> {
        if is_rate {
            match s.0.parse::<Rate>() {
                Ok(r) => Some(r.get()),
                Err(e) => {
                    self.err(path, e.0);
                    None
                }
            }
        } else {
            match s.0.trim().parse::<i64>() {
                Ok(n) if n >= 0 => Some(n as f64),
                Ok(n) => {
                    self.err(
                        path,
                        format!("VU count {n} is negative: expected 0 or more"),
                    );
                    None
                }
                Err(_) => {
                    self.err(
                        path,
                        format!(
                            "invalid VU count `{}`: expected a whole number like 10",
                            s.0
                        ),
                    );
                    None
                }
            }
        }
    }

    pub(super) fn curve(
        &mut self,
        load: &OneOrStages,
        path: &str,
        duration: Option<Duration>,
        is_rate: bool,
        flow_path: &str,
    ) -> Option<Curve> {
        let what = if is_rate { "rate" } else { "VU count" };
        let curve = match load {
            OneOrStages::One(s) => {
                let level = self.level(s, path, is_rate)?;
                let Some(d) = duration else {
                    if self.idx.has(&join_key(flow_path, "duration")) {
                        // A duration was written but did not parse; that is reported already.
                        return None;
                    }
                    self.err_hint(flow_path, format!("a constant {what} needs a `duration` (or stages)"), Some("add `duration: 1m`, pass --duration, or use stages like `[{ to: 50/s, over: 30s }, { hold: 2m }]`".into()));
                    return None;
                };
                Curve::constant(level, d.as_secs_f64())
            }
            OneOrStages::Stages(stages) => {
                if stages.is_empty() {
                    self.err(path, format!("the {what} has no stages"));
                    return None;
                }
                let mut pieces = Vec::new();
                let mut cur = 0.0;
                let mut ok = true;
                for (i, st) in stages.iter().enumerate() {
                    let sp = join_index(path, i);
                    match (&st.to, &st.over, &st.hold, &st.at, &st.sine) {
                        (Some(to), Some(over), None, None, None) => {
                            let level = self.level(to, &join_key(&sp, "to"), is_rate);
                            let len = self.span(&join_key(&sp, "over"), over);
                            match (level, len) {
                                (Some(l), Some(d)) => {
                                    pieces.push(Piece {
                                        len: d.as_secs_f64(),
                                        shape: Shape::Linear { from: cur, to: l },
                                    });
                                    cur = l;
                                }
                                _ => ok = false,
                            }
                        }
                        (None, None, Some(hold), None, None) => {
                            match self.span(&join_key(&sp, "hold"), hold) {
                                Some(d) => pieces.push(Piece {
                                    len: d.as_secs_f64(),
                                    shape: Shape::Linear { from: cur, to: cur },
                                }),
                                None => ok = false,
                            }
                        }
                        (None, None, hold, Some(at), None) => {
                            match self.level(at, &join_key(&sp, "at"), is_rate) {
                                Some(l) => cur = l,
                                None => ok = false,
                            }
                            if let Some(h) = hold {
                                match self.span(&join_key(&sp, "hold"), h) {
                                    Some(d) => pieces.push(Piece {
                                        len: d.as_secs_f64(),
                                        shape: Shape::Linear { from: cur, to: cur },
                                    }),
                                    None => ok = false,
                                }
                            }
                        }
                        (None, None, None, None, Some(sine)) => {
                            let swp = join_key(&sp, "sine");
                            let amp =
                                self.level(&sine.amplitude, &join_key(&swp, "amplitude"), is_rate);
                            let period =
                                self.positive_span(&join_key(&swp, "period"), &sine.period);
                            let len = self.span(&join_key(&swp, "for"), &sine.length);
                            match (amp, period, len) {
                                (Some(a), Some(per), Some(l)) if a <= cur => pieces.push(Piece {
                                    len: l.as_secs_f64(),
                                    shape: Shape::Sine {
                                        base: cur,
                                        amplitude: a,
                                        period: per.as_secs_f64(),
                                    },
                                }),
                                (Some(_), Some(_), Some(_)) => {
                                    self.err(&join_key(&swp, "amplitude"), format!("the amplitude exceeds the current {what}, so the curve would go below zero"));
                                    ok = false;
                                }
                                _ => ok = false,
                            }
                        }
                        (Some(_), None, None, None, None) => {
                            self.err(&sp, "a `to` stage needs `over` (how long the ramp takes)");
                            ok = false;
                        }
                        _ => {
                            self.err(&sp, "a stage is one of `{ to: X, over: T }`, `{ hold: T }`, `{ at: X }`, `{ at: X, hold: T }` or `{ sine: { amplitude, period, for } }`");
                            ok = false;
                        }
                    }
                }
                if !ok {
                    return None;
                }
                let curve = Curve::new(pieces);
                match duration {
                    Some(d) if d.as_secs_f64() < curve.len() => curve.truncated(d.as_secs_f64()),
                    _ => curve,
                }
            }
        };
        if curve.peak() <= 0.0 || curve.total() <= 0.0 {
            let zero = if is_rate {
                "the rate is zero"
            } else {
                "the VU count is zero"
            };
            self.err(
                path,
                format!("{zero} for the whole flow, so it would never run an iteration"),
            );
            return None;
        }
        Some(curve)
    }
}

pub(super) fn default_max_vus(peak_rate: f64) -> u64 {
    // Enough for every arrival of two seconds at peak to be in flight at once, at least 100.
    ((peak_rate * 2.0).ceil() as u64).max(100)
}
