//! Journeys and their steps: includes, script snippets and conditions, think times, and the
//! templates steps render (every name resolved to a variable, feeder column or built-in).

use std::collections::HashSet;

use super::super::diagnostic::{Diagnostic, did_you_mean};
use super::super::plan::*;
use super::super::raw::*;
use super::super::source::{Pos, join_index, join_key};
use super::super::template::{Escape, Template, VarRef};
use super::*;
use crate::script::Scripts;
use crate::units::SpanRange;

impl Validator<'_> {
    /// Records `name` as a step of the journey at `here`; a name already taken is reported
    /// (step names are metric keys) and gives false.
    pub(super) fn claim_step_name(&mut self, name: &str, here: Pos, jc: &mut JourneyCtx) -> bool {
        let Some(first) = jc.names.get(name) else {
            jc.names.insert(name.to_string(), here);
            return true;
        };
        let journey = jc.stack.first().cloned().unwrap_or_default();
        self.diags.push(
            Diagnostic::new(
                self.file,
                here,
                format!(
                    "duplicate step name `{name}` in journey `{journey}` (first used at line {})",
                    first.line
                ),
            )
            .with_hint("step names are metric keys and must be unique within a journey"),
        );
        false
    }

    pub(super) fn snippet(
        &mut self,
        scripts: &Scripts,
        text: &str,
        path: &str,
        condition: bool,
        names: &Names<'_>,
        jc: &mut JourneyCtx,
    ) -> Option<crate::script::Snippet> {
        for (i, f) in names.feeders.iter().enumerate() {
            if text.contains(&format!("{}.", f.name)) {
                jc.feeders.insert(i);
            }
        }
        let origin = self.script_origin(path);
        let result = if condition {
            scripts.compile_condition(text, origin)
        } else {
            scripts.compile(text, origin)
        };
        match result {
            Ok(s) => Some(s),
            Err(e) => {
                self.push(Diagnostic::new(
                    self.file,
                    Pos {
                        line: e.line,
                        col: e.col,
                    },
                    format!("Rhai: {}", e.message),
                ));
                None
            }
        }
    }

    pub(super) fn steps(
        &mut self,
        raw_steps: &[RawStep],
        path: &str,
        jc: &mut JourneyCtx,
        cx: &Shared<'_>,
    ) -> Vec<Step> {
        let raw = cx.raw;
        let mut out = Vec::new();
        for (i, s) in raw_steps.iter().enumerate() {
            let p = join_index(path, i);
            if let Some(target) = &s.include {
                if step_kinds(s).len() > 1 || s.name.is_some() {
                    self.err(&p, "an `include` step takes no other keys");
                }
                let Some(inc) = raw.journeys.get(target) else {
                    let hint = did_you_mean(target, raw.journeys.keys().map(String::as_str))
                        .map(|c| format!("did you mean `{c}`?"));
                    self.err_hint(
                        &join_key(&p, "include"),
                        format!("include of undefined journey `{target}`"),
                        hint,
                    );
                    continue;
                };
                if jc.stack.contains(target) {
                    let chain = jc.stack.join(" → ");
                    self.err(
                        &join_key(&p, "include"),
                        format!("include cycle: {chain} → {target}"),
                    );
                    continue;
                }
                jc.stack.push(target.clone());
                let outer = jc.include_site.clone();
                if outer.is_none() {
                    jc.include_site = Some(join_key(&p, "include"));
                }
                let inc_path = match inc {
                    RawJourney::Steps(_) => format!("journeys.{target}"),
                    RawJourney::Full(_) => format!("journeys.{target}.steps"),
                };
                let inner = self.steps(inc.steps(), &inc_path, jc, cx);
                jc.include_site = outer;
                jc.stack.pop();
                out.extend(inner);
                continue;
            }
            if let Some(step) = self.step(s, &p, jc, cx) {
                out.push(step);
            }
        }
        out
    }

    pub(super) fn step(
        &mut self,
        s: &RawStep,
        p: &str,
        jc: &mut JourneyCtx,
        cx: &Shared<'_>,
    ) -> Option<Step> {
        let Shared {
            names,
            settings: _,
            scripts,
            ..
        } = *cx;
        let kinds = step_kinds(s);
        if kinds.is_empty() {
            self.err(p, "a step needs one of: get, post, put, patch, delete, head, options, ws, think, script, group, loop, if, include");
            return None;
        }
        if kinds.len() > 1 {
            self.err(
                p,
                format!(
                    "a step does one thing, but this one has {}",
                    kinds.join(", ")
                ),
            );
            return None;
        }
        let kind = kinds[0];
        let ws_only = [
            ("subprotocols", !s.subprotocols.is_empty()),
            ("steps", s.steps.is_some()),
        ];
        if kind != "ws"
            && let Some((k, _)) = ws_only.iter().find(|(_, set)| *set)
        {
            self.err_key(
                &join_key(p, k),
                format!("`{k}` belongs to a `ws` step, not to `{kind}`"),
            );
        }
        if kind == "ws" {
            let not_ws = [
                ("json", s.json.is_some()),
                ("form", s.form.is_some()),
                ("body", s.body.is_some()),
                ("body_file", s.body_file.is_some()),
                ("multipart", s.multipart.is_some()),
                ("extract", !s.extract.is_empty()),
                ("check", s.check.is_some()),
                ("retry", s.retry.is_some()),
                ("redirects", s.redirects.is_some()),
            ];
            if let Some((k, _)) = not_ws.iter().find(|(_, set)| *set) {
                self.err_key(
                    &join_key(p, k),
                    format!("`{k}` does not apply to a `ws` step: send with `send`, check and extract with `expect` in its `steps`"),
                );
            }
        }
        if !METHODS.contains(&kind) && kind != "ws" {
            let request_only: Vec<&str> = [
                ("target", s.target.is_some()),
                ("headers", !s.headers.is_empty()),
                ("query", !s.query.is_empty()),
                ("json", s.json.is_some()),
                ("form", s.form.is_some()),
                ("body", s.body.is_some()),
                ("body_file", s.body_file.is_some()),
                ("multipart", s.multipart.is_some()),
                ("extract", !s.extract.is_empty()),
                ("check", s.check.is_some()),
                ("retry", s.retry.is_some()),
                ("timeout", s.timeout.is_some()),
            ]
            .into_iter()
            .filter_map(|(k, set)| set.then_some(k))
            .collect();
            if let Some(k) = request_only.first() {
                self.err_key(
                    &join_key(p, k),
                    format!("`{k}` applies only to request steps, not to `{kind}`"),
                );
            }
            if kind != "if" && (s.then.is_some() || s.otherwise.is_some()) {
                self.err(p, "`then` and `else` belong to an `if` step");
            }
        }
        if let Some(name) = &s.name {
            if !valid_name(name) {
                self.err(&join_key(p, "name"), format!("step name `{name}` may use only letters, digits, `_` and `-` (it becomes a metric key)"));
            } else if name == "iteration" {
                self.err(&join_key(p, "name"), "`iteration` is reserved for the whole-journey metric; choose another step name");
            } else {
                let here = match &jc.include_site {
                    Some(site) => self.idx.value(site),
                    None => self.idx.value(&join_key(p, "name")),
                };
                self.claim_step_name(name, here, jc);
            }
        }
        match kind {
            "think" => s
                .think
                .as_ref()
                .and_then(|t| self.think(t, &join_key(p, "think")))
                .map(Step::Think),
            "script" => {
                let text = s.script.as_deref().unwrap_or_default();
                self.snippet(scripts, text, &join_key(p, "script"), false, names, jc)
                    .map(Step::Script)
            }
            "group" => {
                let inner = s.group.as_deref().unwrap_or_default();
                Some(Step::Group(self.steps(
                    inner,
                    &join_key(p, "group"),
                    jc,
                    cx,
                )))
            }
            "loop" => {
                let l = s.repeat.as_ref()?;
                let lp = join_key(p, "loop");
                let condition = match (&l.count, &l.while_) {
                    (Some(_), None) => None,
                    (None, Some(c)) => {
                        Some(self.snippet(scripts, c, &join_key(&lp, "while"), true, names, jc)?)
                    }
                    _ => {
                        self.err(&lp, "a loop needs exactly one of `count` or `while`");
                        return None;
                    }
                };
                let steps = self.steps(&l.steps, &join_key(&lp, "steps"), jc, cx);
                Some(Step::Loop(Box::new(Loop {
                    count: l.count,
                    condition,
                    max: l.max.unwrap_or(1000),
                    steps,
                })))
            }
            "if" => {
                let cond = s.condition.as_deref().unwrap_or_default();
                let condition = self.snippet(scripts, cond, &join_key(p, "if"), true, names, jc);
                if s.then.is_none() {
                    self.err(p, "an `if` step needs `then:` steps");
                }
                let then = self.steps(
                    s.then.as_deref().unwrap_or_default(),
                    &join_key(p, "then"),
                    jc,
                    cx,
                );
                let otherwise = self.steps(
                    s.otherwise.as_deref().unwrap_or_default(),
                    &join_key(p, "else"),
                    jc,
                    cx,
                );
                Some(Step::If(Box::new(If {
                    condition: condition?,
                    then,
                    otherwise,
                })))
            }
            "ws" => self.ws_step(s, p, jc, cx).map(|w| Step::Ws(Box::new(w))),
            method => self
                .request(s, p, method, jc, cx)
                .map(|r| Step::Request(Box::new(r))),
        }
    }

    pub(super) fn think(&mut self, t: &RawThink, p: &str) -> Option<Think> {
        match t {
            RawThink::Fixed(s) => self.span(p, s).map(Think::Fixed),
            RawThink::Random(r) => match (&r.uniform, &r.normal, &r.exponential) {
                (Some(u), None, None) => match u.parse::<SpanRange>() {
                    Ok(range) => Some(Think::Uniform(range)),
                    Err(e) => {
                        self.err(&join_key(p, "uniform"), e.0);
                        None
                    }
                },
                (None, Some(n), None) => {
                    let mean = self.span(&join_key(p, "normal.mean"), &n.mean);
                    let stddev = self.span(&join_key(p, "normal.stddev"), &n.stddev);
                    Some(Think::Normal {
                        mean: mean?,
                        stddev: stddev?,
                    })
                }
                (None, None, Some(e)) => self
                    .positive_span(&join_key(p, "exponential"), e)
                    .map(Think::Exponential),
                _ => {
                    self.err(
                        p,
                        "a think time needs exactly one of uniform, normal or exponential",
                    );
                    None
                }
            },
        }
    }

    pub(super) fn resolver<'n>(
        &self,
        names: &'n Names<'n>,
        jc: &'n mut JourneyCtx,
    ) -> impl FnMut(&str) -> Result<VarRef, String> + 'n {
        move |name: &str| {
            if let Some((feed, field)) = name.split_once('.') {
                let Some((fi, f)) = names
                    .feeders
                    .iter()
                    .enumerate()
                    .find(|(_, f)| f.name == feed)
                else {
                    if feed == "env" {
                        return Err("use the env(\"NAME\") helper in a script step for environment variables".into());
                    }
                    let hint = did_you_mean(feed, names.feeders.iter().map(|f| f.name.as_str()))
                        .map(|c| format!("; did you mean `{c}`?"))
                        .unwrap_or_default();
                    return Err(format!(
                        "`{feed}` is not a feeder (define it under `data:`){hint}"
                    ));
                };
                jc.feeders.insert(fi);
                if f.columns.is_empty() {
                    // The feeder failed to load; that problem is already reported.
                    return Ok(VarRef::Feed {
                        feeder: fi,
                        field: 0,
                    });
                }
                return match f.column(field) {
                    Some(ci) => Ok(VarRef::Feed {
                        feeder: fi,
                        field: ci,
                    }),
                    None => Err(format!(
                        "feeder `{feed}` has no column `{field}` (it has: {})",
                        f.columns.join(", ")
                    )),
                };
            }
            match name {
                "vu" => Ok(VarRef::VuId),
                "iteration" => Ok(VarRef::Iteration),
                "uuid" => Ok(VarRef::Uuid),
                "timestamp_ms" => Ok(VarRef::TimestampMs),
                n if names.known.contains(n) => Ok(VarRef::Var(n.into())),
                n => {
                    let declared_by_let = names.source.contains(&format!("let {n} "))
                        || names.source.contains(&format!("let {n}="));
                    let hint = if declared_by_let {
                        format!(
                            "; a snippet's `let {n}` is local to that snippet: write `{n} = …` \
                             without `let` to keep the value for later steps"
                        )
                    } else {
                        did_you_mean(n, names.known.iter().map(String::as_str))
                            .map(|c| format!("; did you mean `{c}`?"))
                            .unwrap_or_default()
                    };
                    Err(format!(
                        "nothing sets variable `{n}`: no `vars` entry, extraction or script assigns it{hint}"
                    ))
                }
            }
        }
    }

    pub(super) fn template(
        &mut self,
        text: &str,
        path: &str,
        esc: Escape,
        names: &Names<'_>,
        jc: &mut JourneyCtx,
    ) -> Option<Template> {
        let result = {
            let mut r = self.resolver(names, jc);
            Template::compile(text, esc, &mut r)
        };
        match result {
            Ok(t) => Some(t),
            Err(e) => {
                let mut pos = self.idx.value(path);
                // Point into the string when it sits on one line.
                let line = self
                    .text
                    .lines()
                    .nth(pos.line.saturating_sub(1))
                    .unwrap_or("");
                if let Some(found) = line
                    .get(pos.col.saturating_sub(1)..)
                    .and_then(|rest| rest.find(&text[e.offset..]))
                {
                    pos.col += found;
                }
                self.diags.push(Diagnostic::new(self.file, pos, e.message));
                None
            }
        }
    }
}

pub(super) fn step_kinds(s: &RawStep) -> Vec<&'static str> {
    let mut k = Vec::new();
    for (name, set) in [
        ("get", s.get.is_some()),
        ("post", s.post.is_some()),
        ("put", s.put.is_some()),
        ("patch", s.patch.is_some()),
        ("delete", s.delete.is_some()),
        ("head", s.head.is_some()),
        ("options", s.options.is_some()),
        ("think", s.think.is_some()),
        ("script", s.script.is_some()),
        ("group", s.group.is_some()),
        ("loop", s.repeat.is_some()),
        ("if", s.condition.is_some()),
        ("include", s.include.is_some()),
        ("ws", s.ws.is_some()),
    ] {
        if set {
            k.push(name);
        }
    }
    k
}

pub(super) fn collect_names(steps: &[RawStep], out: &mut HashSet<String>) {
    for s in steps {
        out.extend(s.extract.keys().cloned());
        for a in s.steps.iter().flatten() {
            if let Some(e) = &a.expect {
                out.extend(e.extract.keys().cloned());
            }
        }
        if let Some(sc) = &s.script {
            out.extend(assigned_names(sc, false).map(str::to_string));
        }
        for inner in [&s.group, &s.then, &s.otherwise].into_iter().flatten() {
            collect_names(inner, out);
        }
        if let Some(l) = &s.repeat {
            collect_names(&l.steps, out);
        }
    }
}
