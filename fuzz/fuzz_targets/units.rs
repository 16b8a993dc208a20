//! Any text as a duration, rate, range, percentage, scale, threshold or --fail-if bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stampede::units::{Percent, Rate, Span, SpanRange, parse_scale};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(s) = text.parse::<Span>() {
        let _ = s.to_string();
    }
    if let Ok(r) = text.parse::<Rate>() {
        let _ = r.to_string();
    }
    let _ = text.parse::<SpanRange>();
    let _ = text.parse::<Percent>();
    let _ = parse_scale(text);
    if let Ok(e) = text.parse::<stampede::model::threshold::Expr>() {
        let _ = e.limit.to_string();
    }
    let _ = text.parse::<stampede::analysis::compare::FailIf>();
});
