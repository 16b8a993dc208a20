//! Any bytes as an HTTP/1.1 response to the lean client's parser: head, framing and body
//! decoding, fed whole and in pieces whose sizes the input's first byte picks. Never a panic,
//! never more memory than the body it decodes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stampede::http::h1::parse::{BodyDecoder, framing, parse_head};

fuzz_target!(|data: &[u8]| {
    let Some((&step, raw)) = data.split_first() else { return };
    let Ok(Some(head)) = parse_head(raw) else { return };
    let _ = head.keeps_alive();
    for is_head in [false, true] {
        let Ok(f) = framing(&head, is_head) else { continue };
        let mut d = BodyDecoder::new(f);
        let mut body = 0usize;
        for piece in raw[head.len..].chunks(usize::from(step).max(1)) {
            match d.decode(piece, &mut |b| {
                body += b.len();
                Ok(())
            }) {
                Ok(n) if n <= piece.len() => {}
                Ok(n) => panic!("used {n} of {} bytes", piece.len()),
                Err(_) => break,
            }
        }
        assert!(body <= raw.len());
        let _ = d.eof();
    }
});
