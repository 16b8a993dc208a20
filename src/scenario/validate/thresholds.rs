//! The `thresholds` section: each expression parsed (grammar in `model::threshold`) and its key
//! pattern matched against the flows and steps of the plan.

use std::time::Duration;

use indexmap::IndexMap;

use super::super::diagnostic::{Diagnostic, did_you_mean};
use super::super::raw::*;
use super::super::source::{join_index, join_key};
use super::*;

impl Validator<'_> {
    pub(super) fn thresholds(
        &mut self,
        raw: &IndexMap<String, Vec<RawThreshold>>,
        flows: &[(&str, &str, Vec<&str>)],
    ) -> Vec<crate::model::threshold::Threshold> {
        use crate::model::threshold::{Expr, Metric, Threshold, matching_keys};
        let mut out = Vec::new();
        for (pattern, list) in raw {
            let kp = format!("thresholds.{pattern}");
            let keys = matching_keys(pattern, flows.iter().map(|(f, j, s)| (*f, *j, s.clone())));
            if keys.is_empty() {
                let candidates: Vec<String> = flows
                    .iter()
                    .flat_map(|(f, _, steps)| {
                        std::iter::once(f.to_string())
                            .chain(steps.iter().map(move |s| format!("{f}.{s}")))
                    })
                    .collect();
                let hint = did_you_mean(pattern, candidates.iter().map(String::as_str))
                    .map(|c| format!("did you mean `{c}`?"))
                    .or_else(|| Some("keys are `flow` (all its requests), `flow.step` and `flow.iteration`; `*` is a wildcard".into()));
                let pos = self.idx.key(&kp);
                let mut d = Diagnostic::new(
                    self.file,
                    pos,
                    format!("threshold key `{pattern}` matches no flow or step"),
                );
                d.hint = hint;
                self.diags.push(d);
                continue;
            }
            for (i, t) in list.iter().enumerate() {
                let tp = join_index(&kp, i);
                let (text, abort_on_fail, delay) = match t {
                    RawThreshold::Expr(e) => (e.clone(), false, None),
                    RawThreshold::Full(f) => {
                        (f.threshold.clone(), f.abort_on_fail, f.delay.clone())
                    }
                };
                let expr_path = if matches!(t, RawThreshold::Full(_)) {
                    join_key(&tp, "threshold")
                } else {
                    tp.clone()
                };
                let expr = match text.parse::<Expr>() {
                    Ok(e) => e,
                    Err(e) => {
                        self.err(&expr_path, e.to_string());
                        continue;
                    }
                };
                let flow_metric = matches!(expr.metric, Metric::Rate | Metric::Dropped);
                if flow_metric && !pattern.contains('*') && pattern.contains('.') {
                    self.err(
                        &expr_path,
                        format!("`{text}` applies to flows: use the flow's key, not `{pattern}`"),
                    );
                    continue;
                }
                let delay = match delay {
                    Some(d) => match self.span(&join_key(&tp, "delay"), &d) {
                        Some(d) => d,
                        None => continue,
                    },
                    None => Duration::from_secs(10),
                };
                out.push(Threshold {
                    pattern: pattern.clone(),
                    text,
                    expr,
                    abort_on_fail,
                    delay,
                });
            }
        }
        out
    }
}
