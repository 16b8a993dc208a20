//! A response's header fields as the step reads them. On the lean HTTP/1.1 path they stay as
//! the head's bytes plus where each field is in them: building a `HeaderMap` (a hashed,
//! validated name and a value object per field) for every response cost about a fifth of W1's
//! user-space time, and most steps read no header at all. hyper's responses keep their map.
//! Either way a lookup has `HeaderMap`'s meaning: names are case-insensitive, a name may repeat,
//! and [`Headers::get`] is the first value.

use bytes::Bytes;
use http::HeaderMap;

/// The header fields of one response (empty on failure).
#[derive(Debug, Clone)]
pub struct Headers(Inner);

#[derive(Debug, Clone)]
enum Inner {
    /// The head's bytes and each field's place in them, in the order received; `present`
    /// has the bit of each [`known`] name that occurs, so that looking one up which is not
    /// there (most of them, in most responses) scans nothing.
    Raw {
        head: Bytes,
        fields: Vec<Field>,
        present: u8,
    },
    /// hyper's map (HTTP/2, `defaults.client: hyper`, WebSocket upgrades).
    Map(HeaderMap),
}

/// Byte ranges of one field's name and value in the head (a head is at most a few hundred
/// KiB), and its name's [`known`] bit.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Field {
    name: (u32, u32),
    value: (u32, u32),
    bit: u8,
}

impl Field {
    /// The field whose name is `head[name.0..name.1]`, [`known`] as `bit`, and whose value is
    /// `head[value.0..value.1]`.
    pub(crate) fn new(name: (u32, u32), value: (u32, u32), bit: u8) -> Field {
        Field { name, value, bit }
    }
}

/// The bits of the names every response is asked about (framing, cookies, `Server-Timing`,
/// decoding, redirects).
pub(crate) mod bit {
    /// `connection`
    pub(crate) const CONNECTION: u8 = 1;
    /// `content-length`
    pub(crate) const CONTENT_LENGTH: u8 = 2;
    /// `transfer-encoding`
    pub(crate) const TRANSFER_ENCODING: u8 = 4;
    /// `set-cookie`
    pub(crate) const SET_COOKIE: u8 = 8;
    /// `server-timing`
    pub(crate) const SERVER_TIMING: u8 = 16;
    /// `content-encoding`
    pub(crate) const CONTENT_ENCODING: u8 = 32;
    /// `location`
    pub(crate) const LOCATION: u8 = 64;
}

/// The [`bit`] of a field name (any case), 0 for any other name. By length first: it runs for
/// every field of every response.
pub(crate) fn known(name: &[u8]) -> u8 {
    let (candidate, b) = match name.len() {
        8 => ("location", bit::LOCATION),
        10 if name[0] | 0x20 == b'c' => ("connection", bit::CONNECTION),
        10 => ("set-cookie", bit::SET_COOKIE),
        13 => ("server-timing", bit::SERVER_TIMING),
        14 => ("content-length", bit::CONTENT_LENGTH),
        16 => ("content-encoding", bit::CONTENT_ENCODING),
        17 => ("transfer-encoding", bit::TRANSFER_ENCODING),
        _ => return 0,
    };
    if eq_lower(name, candidate.as_bytes()) {
        b
    } else {
        0
    }
}

/// Whether `name` is `lower` in any case, where `lower` is lower-case letters and `-` and
/// `name` is a header name (a token, so never a CR: the one byte that ORed with 0x20 could
/// pass for a `-`). Eight bytes at a time (the last window overlapping the one before), since
/// `eq_ignore_ascii_case` goes byte by byte.
pub(crate) fn eq_lower(name: &[u8], lower: &[u8]) -> bool {
    const CASE: u64 = 0x2020_2020_2020_2020;
    let n = name.len();
    if n != lower.len() {
        return false;
    }
    if n < 8 {
        return name.iter().zip(lower).all(|(a, b)| a | 0x20 == *b);
    }
    let word = |b: &[u8], at: usize| {
        b.get(at..at + 8)
            .and_then(|w| <[u8; 8]>::try_from(w).ok())
            .map_or(0, u64::from_le_bytes)
    };
    (0..n - 8)
        .step_by(8)
        .chain([n - 8])
        .all(|at| word(name, at) | CASE == word(lower, at))
}

impl Default for Headers {
    /// No fields. Every exchange starts with these, so they are the raw kind, whose drop is
    /// a few stores (an empty `HeaderMap` still drops its tables).
    fn default() -> Headers {
        Headers(Inner::Raw {
            head: Bytes::new(),
            fields: Vec::new(),
            present: 0,
        })
    }
}

impl From<HeaderMap> for Headers {
    fn from(map: HeaderMap) -> Headers {
        Headers(Inner::Map(map))
    }
}

impl Headers {
    /// Fields located in `head` (each range within it, as the caller's parser found them).
    pub(crate) fn raw(head: Bytes, fields: Vec<Field>) -> Headers {
        let present = fields.iter().fold(0, |all, f| all | f.bit);
        Headers(Inner::Raw {
            head,
            fields,
            present,
        })
    }

    /// Every value of the field `name` (lower-case), in the order received.
    pub fn get_all<'a, 'n>(&'a self, name: &'n str) -> Values<'a, 'n> {
        let bit = known(name.as_bytes());
        Values(match &self.0 {
            Inner::Raw {
                head,
                fields,
                present,
            } => ValuesInner::Raw {
                head,
                fields: if bit != 0 && present & bit == 0 {
                    [].iter()
                } else {
                    fields.iter()
                },
                bit,
                name,
            },
            Inner::Map(map) => ValuesInner::Map(map.get_all(name).iter()),
        })
    }

    /// The first value of the field `name` (lower-case).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.get_all(name).next()
    }

    /// The first value of `name` as text, if it is visible ASCII (as `HeaderValue::to_str`).
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(text)
    }

    /// Every field as (lower-case name, value), in the order received.
    pub fn to_pairs(&self) -> Vec<(String, Vec<u8>)> {
        match &self.0 {
            Inner::Raw { head, fields, .. } => fields
                .iter()
                .map(|f| {
                    let name = String::from_utf8_lossy(span(head, f.name)).to_ascii_lowercase();
                    (name, span(head, f.value).to_vec())
                })
                .collect(),
            Inner::Map(map) => map
                .iter()
                .map(|(k, v)| (k.as_str().to_string(), v.as_bytes().to_vec()))
                .collect(),
        }
    }

    /// Bytes the fields take on the wire as `name: value\r\n`, plus the blank line.
    pub fn wire_size(&self) -> u64 {
        match &self.0 {
            Inner::Raw { fields, .. } => fields
                .iter()
                .map(|f| u64::from(f.name.1 - f.name.0 + f.value.1 - f.value.0) + 4)
                .sum::<u64>(),
            Inner::Map(map) => map
                .iter()
                .map(|(k, v)| (k.as_str().len() + v.len() + 4) as u64)
                .sum::<u64>(),
        }
        .saturating_add(2)
    }
}

/// `value` as text when every byte is visible ASCII or a tab (`HeaderValue::to_str`'s rule).
pub fn text(value: &[u8]) -> Option<&str> {
    value
        .iter()
        .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b))
        .then(|| std::str::from_utf8(value).ok())
        .flatten()
}

fn span(head: &[u8], (from, to): (u32, u32)) -> &[u8] {
    head.get(from as usize..to as usize).unwrap_or_default()
}

/// The values of one field name; see [`Headers::get_all`].
#[derive(Debug)]
pub struct Values<'a, 'n>(ValuesInner<'a, 'n>);

#[derive(Debug)]
enum ValuesInner<'a, 'n> {
    Raw {
        head: &'a [u8],
        fields: std::slice::Iter<'a, Field>,
        /// The name's [`known`] bit: fields are then matched by bit, not by bytes.
        bit: u8,
        name: &'n str,
    },
    Map(http::header::ValueIter<'a, http::HeaderValue>),
}

impl<'a> Iterator for Values<'a, '_> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        match &mut self.0 {
            ValuesInner::Raw {
                head,
                fields,
                bit,
                name,
            } => fields
                .find(|f| {
                    f.bit == *bit
                        && (*bit != 0 || span(head, f.name).eq_ignore_ascii_case(name.as_bytes()))
                })
                .map(|f| span(head, f.value)),
            ValuesInner::Map(values) => values.next().map(http::HeaderValue::as_bytes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw() -> Headers {
        let head = Bytes::from_static(b"Set-Cookie: a=1\r\nX-Env: prod\r\nset-cookie: b=2\r\n");
        Headers::raw(
            head,
            vec![
                Field::new((0, 10), (12, 15), bit::SET_COOKIE),
                Field::new((17, 22), (24, 28), 0),
                Field::new((30, 40), (42, 45), bit::SET_COOKIE),
            ],
        )
    }

    #[test]
    fn a_raw_head_answers_as_a_header_map_does() {
        let h = raw();
        let mut map = HeaderMap::new();
        map.append("set-cookie", "a=1".parse().unwrap());
        map.append("x-env", "prod".parse().unwrap());
        map.append("set-cookie", "b=2".parse().unwrap());
        let m = Headers::from(map);
        for h in [&h, &m] {
            let all: Vec<&[u8]> = h.get_all("set-cookie").collect();
            assert_eq!(all, [b"a=1".as_slice(), b"b=2"]);
            assert_eq!(h.get_str("x-env"), Some("prod"));
            assert_eq!(h.get("content-length"), None);
            // `name: value\r\n` per field, then the blank line.
            assert_eq!(h.wire_size(), (10 + 3 + 4) + (5 + 4 + 4) + (10 + 3 + 4) + 2);
        }
        assert_eq!(h.to_pairs()[1], ("x-env".to_string(), b"prod".to_vec()));
    }

    #[test]
    fn known_names_are_found_in_any_case_and_no_other_is() {
        for (i, name) in [
            "connection",
            "content-length",
            "transfer-encoding",
            "set-cookie",
            "server-timing",
            "content-encoding",
            "location",
        ]
        .iter()
        .enumerate()
        {
            assert_eq!(known(name.as_bytes()), 1 << i, "{name}");
            assert_eq!(known(name.to_ascii_uppercase().as_bytes()), 1 << i);
        }
        for other in [
            "",
            "x",
            "connectiom",
            "set-cookiE2",
            "x-location",
            "content-type",
        ] {
            assert_eq!(known(other.as_bytes()), 0, "{other}");
        }
    }

    #[test]
    fn names_compare_in_any_case_across_words() {
        assert!(eq_lower(b"Transfer-ENCODING", b"transfer-encoding"));
        assert!(eq_lower(b"x", b"x"));
        assert!(!eq_lower(b"transfer-encodinh", b"transfer-encoding"));
        assert!(!eq_lower(b"content-lengtH1", b"content-length"));
        assert!(!eq_lower(b"Xontent-length", b"content-length"));
    }

    #[test]
    fn only_visible_ascii_is_text() {
        assert_eq!(text(b"a\tb c~"), Some("a\tb c~"));
        assert_eq!(text(b"caf\xc3\xa9"), None);
        assert_eq!(text(b"a\x7f"), None);
    }
}
