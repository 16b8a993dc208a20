//! The W3C `Server-Timing` response header: `name;dur=12.3;desc="text", other;desc="5"`.
//!
//! Each metric has a name, an optional duration in milliseconds and an optional description; a
//! numeric description (the demo wallet's `db-queries;desc="5"`) is read as a count.
//!
//! The header is the server's to write, so nothing in it may fail a step or crash the run: a
//! duration that is negative, not a number, or longer than [`MAX_DUR_MS`] (a day: no request
//! measured here lasts that long) is dropped and flagged as [`Metric::absurd`].

/// The longest duration taken at face value, in milliseconds (one day).
pub const MAX_DUR_MS: f64 = 86_400_000.0;

/// One metric of a `Server-Timing` header.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Metric<'a> {
    /// Metric name.
    pub name: &'a str,
    /// Duration in milliseconds, when given.
    pub dur_ms: Option<f64>,
    /// The description as a number, when it is one.
    pub count: Option<f64>,
    /// A `dur` was given but could not be a real duration (negative, not finite, over
    /// [`MAX_DUR_MS`]); `dur_ms` is then `None`.
    pub absurd: bool,
}

/// Parses a header value, skipping malformed entries (a server's header must never fail a step).
pub fn parse<'a>(value: &'a str, out: &mut Vec<Metric<'a>>) {
    out.clear();
    for entry in split_outside_quotes(value, ',') {
        let mut parts = split_outside_quotes(entry, ';');
        let Some(name) = parts.next().map(str::trim).filter(|n| !n.is_empty()) else {
            continue;
        };
        let mut m = Metric {
            name,
            dur_ms: None,
            count: None,
            absurd: false,
        };
        for p in parts {
            let Some((k, v)) = p.split_once('=') else {
                continue;
            };
            let v = v.trim().trim_matches('"');
            match k.trim() {
                "dur" => match v.parse::<f64>() {
                    Ok(d) if (0.0..=MAX_DUR_MS).contains(&d) => m.dur_ms = Some(d),
                    Ok(_) => m.absurd = true,
                    Err(_) => {}
                },
                "desc" => m.count = v.parse::<f64>().ok().filter(|c| c.is_finite()),
                _ => {}
            }
        }
        out.push(m);
    }
}

fn split_outside_quotes(s: &str, sep: char) -> impl Iterator<Item = &str> {
    let mut quoted = false;
    let mut start = 0;
    let mut pieces = Vec::new();
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                pieces.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    pieces.push(&s[start..]);
    pieces.into_iter()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_durations_counts_and_quoted_commas() {
        let mut v = Vec::new();
        parse(
            r#"db;dur=3.1, db-queries;desc="5", pool-wait;dur=0.4, cache;desc="hit, warm", ;dur=1, cpu;dur=x"#,
            &mut v,
        );
        assert_eq!(v.len(), 5);
        assert_eq!(
            v[0],
            Metric {
                name: "db",
                dur_ms: Some(3.1),
                count: None,
                absurd: false,
            }
        );
        assert_eq!(
            v[1],
            Metric {
                name: "db-queries",
                dur_ms: None,
                count: Some(5.0),
                absurd: false,
            }
        );
        assert_eq!(v[2].dur_ms, Some(0.4));
        assert_eq!(
            v[3],
            Metric {
                name: "cache",
                dur_ms: None,
                count: None,
                absurd: false,
            }
        );
        assert_eq!(
            v[4],
            Metric {
                name: "cpu",
                dur_ms: None,
                count: None,
                absurd: false,
            }
        );
    }

    #[test]
    fn absurd_durations_are_flagged_not_taken() {
        let mut v = Vec::new();
        parse(
            "db;dur=1e23, a;dur=-1, b;dur=inf, c;dur=NaN, d;dur=86400000",
            &mut v,
        );
        assert_eq!(v.len(), 5);
        for m in &v[..4] {
            assert!(m.absurd && m.dur_ms.is_none(), "{m:?}");
        }
        assert_eq!(v[4].dur_ms, Some(MAX_DUR_MS));
        assert!(!v[4].absurd);
    }
}
