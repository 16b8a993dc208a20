//! Histogram serialization: V2 + DEFLATE, base64 — the form HdrHistogram's tools and interval logs
//! use, so results from separate processes merge exactly.

use base64::Engine as _;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};

use super::hist::Hist;

/// Why a serialized histogram could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// Not base64.
    #[error("histogram is not valid base64: {0}")]
    Base64(#[from] base64::DecodeError),
    /// Not a V2 histogram.
    #[error("histogram cannot be decoded: {0:?}")]
    Decode(hdrhistogram::serialization::DeserializeError),
}

/// Encodes a histogram as base64 of its V2-deflate form (starts with `HISTFAAA`).
pub fn encode(h: &Hist) -> String {
    let mut buf = Vec::new();
    match V2DeflateSerializer::new().serialize(h, &mut buf) {
        Ok(_) => base64::engine::general_purpose::STANDARD.encode(&buf),
        // Serializing into a Vec only fails for histograms the crate cannot represent; such a
        // histogram is reported as empty rather than aborting the report.
        Err(_) => String::new(),
    }
}

/// Decodes [`encode`]'s output, as a histogram that grows like a recorded one, so another can be
/// added to it whatever its range (a decoded histogram's range is otherwise fixed to its values,
/// and `add` refuses wider ones).
pub fn decode(text: &str) -> Result<Hist, CodecError> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(text.trim())?;
    let mut h: Hist = Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(CodecError::Decode)?;
    h.auto(true);
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_exactly() {
        let mut h = super::super::hist::new_hist();
        for v in [1u64, 5, 900, 12_345, 1_000_000] {
            h.record_n(v, v % 7 + 1).unwrap();
        }
        let text = encode(&h);
        assert!(text.starts_with("HISTFAAA"));
        let back = decode(&text).unwrap();
        assert_eq!(back, h);
        assert!(decode("not base64!").is_err());
    }

    #[test]
    fn decoded_histograms_grow_to_take_what_is_added() {
        // A merge starts from one decoded histogram and adds the others: one whose range is
        // wider must not be refused (it was, silently, losing a segment's requests).
        let mut small = super::super::hist::new_hist();
        small.record(5).unwrap();
        let mut wide = super::super::hist::new_hist();
        wide.record(3_600_000_000).unwrap();
        let mut sum = decode(&encode(&small)).unwrap();
        sum.add(decode(&encode(&wide)).unwrap()).unwrap();
        assert_eq!(sum.len(), 2);
    }
}
