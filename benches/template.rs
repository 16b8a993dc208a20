//! Template rendering: a path with variables, and a JSON body.

#![allow(missing_docs, clippy::unwrap_used)] // criterion macros generate undocumented items

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use rhai::{ImmutableString, Scope};
use stampede::scenario::template::{Escape, RenderCtx, Template, VarRef};

fn render(c: &mut Criterion) {
    let mut resolve = |name: &str| -> Result<VarRef, String> {
        Ok(match name {
            "vu" => VarRef::VuId,
            n => VarRef::Var(n.into()),
        })
    };
    let path = Template::compile(
        "/users/{{ user }}/orders/{{ order }}?vu={{ vu }}",
        Escape::None,
        &mut resolve,
    )
    .unwrap();
    let json: serde_json::Value = serde_json::json!({ "from": "{{ from }}", "to": "TON", "amount": "{{ amount }}", "memo": "order {{ order }}" });
    let body = Template::compile_json(&json, &mut resolve).unwrap();
    let mut scope = Scope::new();
    scope.push("user", ImmutableString::from("user00042"));
    scope.push("order", 1234_i64);
    scope.push("from", ImmutableString::from("USDT"));
    scope.push("amount", 12.5_f64);
    let ctx = RenderCtx {
        scope: &scope,
        rows: &[],
        feed_names: &[],
        vu: 7,
        iteration: 3,
    };
    let mut out = Vec::with_capacity(256);
    c.bench_function("render a path with 3 variables", |b| {
        b.iter(|| {
            out.clear();
            path.render(black_box(&ctx), &mut out).unwrap();
        })
    });
    c.bench_function("render a JSON body with 3 variables", |b| {
        b.iter(|| {
            out.clear();
            body.render(black_box(&ctx), &mut out).unwrap();
        })
    });
}

criterion_group!(benches, render);
criterion_main!(benches);
