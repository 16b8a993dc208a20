//! Extraction inputs a server controls: JSONPath over any JSON body, Server-Timing headers,
//! Set-Cookie-like text through the public parsers.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (path, body) = text.split_once('\n').unwrap_or((text, "{}"));
    if let (Ok(p), Ok(v)) = (stampede::scenario::validate::parse_json_path(path), serde_json::from_str::<serde_json::Value>(body)) {
        for node in p.query(&v).all() {
            let _ = stampede::script::from_json(node);
        }
    }
    let mut metrics = Vec::new();
    stampede::http::server_timing::parse(text, &mut metrics);
    let _ = stampede::report::hlog::recover(std::path::Path::new("/nonexistent"));
});
