//! Response bodies as a client reads them: `Content-Encoding` gzip, deflate, br and zstd are
//! undone before extraction and checks. The decoded size is bounded like the kept size: a body
//! that decodes past `max_body_bytes` is `body_too_large` after at most that many bytes were
//! produced (a decompression bomb never gets the memory its decoded size asks for).

use std::io::Read;

use super::headers::{Headers, text};

use super::{ErrorClass, Fail};

/// Decodes `raw` as the response's `Content-Encoding` says (codings are applied in the order
/// listed, so they are undone in reverse); `None` when the body is not encoded.
pub(super) fn decode(headers: &Headers, raw: &[u8], max: u64) -> Result<Option<Vec<u8>>, Fail> {
    let codings: Vec<String> = headers
        .get_all("content-encoding")
        .filter_map(text)
        .flat_map(|v| v.split(','))
        .map(|c| c.trim().to_ascii_lowercase())
        .filter(|c| !c.is_empty() && c != "identity")
        .collect();
    if codings.is_empty() {
        return Ok(None);
    }
    let mut data = raw.to_vec();
    for c in codings.iter().rev() {
        data = undo(c, &data, max)?;
    }
    Ok(Some(data))
}

fn undo(coding: &str, input: &[u8], max: u64) -> Result<Vec<u8>, Fail> {
    let broken = |e: &dyn std::fmt::Display| {
        (
            ErrorClass::Protocol,
            format!(
                "the response says `Content-Encoding: {coding}` but its body does not decode: {e}"
            ),
        )
    };
    let reader: Box<dyn Read + '_> = match coding {
        "gzip" | "x-gzip" => Box::new(flate2::read::MultiGzDecoder::new(input)),
        // HTTP's deflate is zlib-wrapped; some servers send the raw stream.
        "deflate" if zlib_header(input) => Box::new(flate2::read::ZlibDecoder::new(input)),
        "deflate" => Box::new(flate2::read::DeflateDecoder::new(input)),
        "br" => Box::new(brotli_decompressor::Decompressor::new(input, 4096)),
        "zstd" => Box::new(ruzstd::decoding::StreamingDecoder::new(input).map_err(|e| broken(&e))?),
        other => {
            return Err((
                ErrorClass::Protocol,
                format!(
                    "the response is encoded with `{other}`, which stampede cannot decode (it decodes gzip, deflate, br and zstd)"
                ),
            ));
        }
    };
    let mut out = Vec::new();
    reader
        .take(max.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| broken(&e))?;
    if out.len() as u64 > max {
        return Err((
            ErrorClass::BodyTooLarge,
            format!("the {coding} response body decodes to more than max_body_bytes ({max} bytes)"),
        ));
    }
    Ok(out)
}

/// A zlib header: compression method 8 and a check value that divides by 31 (RFC 1950).
fn zlib_header(b: &[u8]) -> bool {
    b.len() >= 2 && b[0] & 0x0f == 8 && (u16::from(b[0]) << 8 | u16::from(b[1])) % 31 == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn headers(coding: &str) -> Headers {
        let mut h = http::HeaderMap::new();
        h.insert(http::header::CONTENT_ENCODING, coding.parse().unwrap());
        Headers::from(h)
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn each_coding_and_a_chain_of_them_decode() {
        let body = br#"{"token":"abc"}"#;
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(body).unwrap();
        let zlib = z.finish().unwrap();
        let mut d = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        d.write_all(body).unwrap();
        let raw_deflate = d.finish().unwrap();
        for (coding, data) in [
            ("gzip", gzip(body)),
            ("deflate", zlib),
            ("deflate", raw_deflate),
            ("identity", body.to_vec()),
        ] {
            let out = decode(&headers(coding), &data, 1 << 20).unwrap();
            assert_eq!(out.as_deref().unwrap_or(body), body, "{coding}");
        }
        // gzip applied first, then gzip again: undone in reverse.
        let twice = gzip(&gzip(body));
        let out = decode(&headers("gzip, gzip"), &twice, 1 << 20)
            .unwrap()
            .unwrap();
        assert_eq!(out, body);
    }

    #[test]
    fn a_bomb_stops_at_the_limit_and_garbage_is_a_protocol_error() {
        let zeros = vec![0u8; 4 << 20];
        let bomb = gzip(&zeros);
        assert!(bomb.len() < 64 << 10);
        let e = decode(&headers("gzip"), &bomb, 1 << 20).unwrap_err();
        assert_eq!(e.0, ErrorClass::BodyTooLarge, "{}", e.1);
        let e = decode(&headers("br"), b"not brotli at all", 1 << 20).unwrap_err();
        assert_eq!(e.0, ErrorClass::Protocol, "{}", e.1);
        let e = decode(&headers("compress"), b"x", 1 << 20).unwrap_err();
        assert!(e.1.contains("cannot decode"), "{}", e.1);
    }
}
