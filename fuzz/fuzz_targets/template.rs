//! Any text as a template (and as a JSON body): compile and render without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stampede::scenario::template::{Escape, RenderCtx, Template, VarRef};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut resolve = |name: &str| -> Result<VarRef, String> {
        if name.len() % 3 == 0 { Ok(VarRef::Var(name.into())) } else { Err(format!("unknown {name}")) }
    };
    let scope = rhai::Scope::new();
    let ctx = RenderCtx { scope: &scope, rows: &[], feed_names: &[], vu: 1, iteration: 1 };
    for esc in [Escape::None, Escape::JsonString, Escape::Url, Escape::JsonValue] {
        if let Ok(t) = Template::compile(text, esc, &mut resolve) {
            let _ = t.render_string(&ctx);
        }
    }
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(text)
        && let Ok(t) = Template::compile_json(&v, &mut resolve)
    {
        let _ = t.render_string(&ctx);
    }
});
