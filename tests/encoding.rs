//! Compressed responses, read the way clients read them: gzip, deflate, br and zstd bodies are
//! decoded before extraction and checks, and a decompression bomb is bounded in memory.

use std::io::Write;

use crate::util::scripted::{self, ok_with};
use crate::util::*;

const BODY: &[u8] = br#"{"token":"tok-42","note":"the same text, whatever the coding; the same text, whatever the coding; the same text, whatever the coding; the same text, whatever the coding; the same text, whatever the coding"}"#;

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn encoded(coding: &str) -> Vec<u8> {
    match coding {
        "gzip" => gzip(BODY),
        "deflate" => {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(BODY).unwrap();
            e.finish().unwrap()
        }
        "br" => {
            let mut out = Vec::new();
            let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
            w.write_all(BODY).unwrap();
            drop(w);
            out
        }
        "zstd" => {
            ruzstd::encoding::compress_to_vec(BODY, ruzstd::encoding::CompressionLevel::Fastest)
        }
        _ => BODY.to_vec(),
    }
}

#[test]
fn every_coding_is_decoded_before_extraction_and_checks() {
    let srv = scripted::start(|_, path| {
        let coding = path.trim_start_matches('/');
        ok_with(
            &format!("content-encoding: {coding}\r\ncontent-type: application/json\r\n"),
            &encoded(coding),
        )
    });
    let d = dir();
    let steps: String = ["gzip", "deflate", "br", "zstd"]
        .iter()
        .map(|c| {
            format!(
                "    - {{ name: {c}, get: /{c}, extract: {{ t_{c}: $.token }}, check: {{ status: 200, json: {{ $.token: tok-42 }}, body_contains: whatever }} }}\n"
            )
        })
        .collect();
    let s = write_scenario(
        d.path(),
        &srv.url(),
        &format!(
            "defaults: {{ accept_encoding: browser }}\njourneys:\n  j:\n{steps}flows:\n  f: {{ journey: j, vus: 1, per_vu_iterations: 1 }}\n"
        ),
    );
    let (code, _, r, _) = run_bin_scenario(&s, &[]);
    assert_exit(code, 0, &r, &format!("{:?}", r.error_examples));
    for c in ["gzip", "deflate", "br", "zstd"] {
        let st = step(&r, &format!("f.{c}"));
        assert_eq!(st.checks_failed, 0, "{c}: {:?}", r.error_examples);
        assert!(
            st.bytes_decoded > st.bytes_in,
            "{c}: {} decoded vs {} on the wire",
            st.bytes_decoded,
            st.bytes_in
        );
    }
}

#[test]
fn accept_encoding_is_sent_only_when_asked_for() {
    let srv = start_server(ServerConfig::default());
    let d = dir();
    let s = write_scenario(
        d.path(),
        &srv.url(),
        "defaults: { accept_encoding: 'gzip, br' }\njourneys:\n  j: [ { name: e, post: /echo, check: { status: 200, json: { \"$.headers['accept-encoding']\": 'gzip, br' } } } ]\nflows:\n  f: { journey: j, vus: 1, per_vu_iterations: 1 }\n",
    );
    let (code, _, r, _) = run_bin_scenario(&s, &[]);
    assert_exit(code, 0, &r, &format!("{:?}", r.error_examples));
    assert_eq!(step(&r, "f.e").checks_failed, 0, "{:?}", r.error_examples);
    // Off unless set (like k6): without it, no Accept-Encoding is sent.
    let plain = write_scenario(
        d.path(),
        &srv.url(),
        "journeys:\n  j: [ { name: e, post: /echo, check: { status: 200, body_contains: accept-encoding } } ]\nflows:\n  f: { journey: j, vus: 1, per_vu_iterations: 1 }\n",
    );
    let (_, _, r, _) = run_bin_scenario(&plain, &[]);
    assert_eq!(step(&r, "f.e").checks_failed, 1, "it was sent unasked");
    let bad = write_scenario(
        d.path(),
        &srv.url(),
        "defaults: { accept_encoding: 'gzip, compress' }\njourneys:\n  j: [ { name: e, get: /ok } ]\nflows:\n  f: { journey: j, vus: 1, per_vu_iterations: 1 }\n",
    );
    let (code, _, err) = run_bin(&["validate", bad.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("cannot decode compress"), "{err}");
}

#[test]
fn a_ten_gib_gzip_bomb_is_body_too_large_in_bounded_memory() {
    // 640 gzip members of 16 MiB of zeros each: 10 GiB decoded from about 10 MB on the wire.
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(&vec![0u8; 16 << 20]).unwrap();
    let member = e.finish().unwrap();
    let bomb: Vec<u8> = std::iter::repeat_n(member, 640).flatten().collect();
    assert!(bomb.len() < 20 << 20);
    let bomb = std::sync::Arc::new(bomb);
    let srv = scripted::start(move |_, _| ok_with("content-encoding: gzip\r\n", &bomb));
    let d = dir();
    let s = write_scenario(
        d.path(),
        &srv.url(),
        "defaults: { on_error: continue, timeout: 30s, max_body_bytes: 33554432 }\njourneys:\n  j: [ { name: bomb, get: /, extract: { x: $.x } } ]\nflows:\n  f: { journey: j, vus: 1, per_vu_iterations: 1 }\n",
    );
    let (_, _, r, peak_kib) = run_bin_scenario(&s, &[]);
    let st = step(&r, "f.bomb");
    assert_eq!(
        st.errors.keys().map(|c| c.to_string()).collect::<Vec<_>>(),
        ["body_too_large"],
        "{:?}",
        r.error_examples
    );
    assert!(
        r.error_examples
            .iter()
            .any(|e| e.message.contains("decodes to more than max_body_bytes")),
        "the wire body fits; its decoding is what was stopped: {:?}",
        r.error_examples
    );
    assert!(
        peak_kib < 300 << 10,
        "peak RSS {peak_kib} KiB: the decoded body was not bounded"
    );
}
