//! Any bytes as a scenario file: an error or a plan, never a panic or a hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = stampede::scenario::load_str(
            std::path::Path::new("fuzz.yaml"),
            text,
            &stampede::scenario::Overrides::default(),
        );
    }
});
