//! Units written by people in scenario files and on the command line.
//!
//! One grammar for YAML and CLI alike (the CLI's value parsers call these `FromStr`s):
//!
//! ```text
//! duration := number unit { number unit }      250ms · 2m · 1h30m · 1.5s · 500us
//! unit     := "us" | "µs" | "ms" | "s" | "m" | "h" | "d"
//! rate     := number "/" [number] unit          50/s · 3000/m · 1/30s · 2.5/h
//! range    := duration ".." duration            100ms..2s
//! percent  := number "%"                        1% · 0.5%
//! ```
//!
//! Each type keeps the text the user wrote for `Display`, so messages and the plan quote values as
//! they were written.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Why a unit value did not parse; the message says what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UnitError(pub String);

fn unit_scale(unit: &str) -> Option<f64> {
    Some(match unit {
        "ns" => 1e-9,
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86400.0,
        _ => return None,
    })
}

/// Parses `1h30m`-style durations into seconds.
fn parse_seconds(text: &str) -> Result<f64, UnitError> {
    let s = text.trim();
    let expected = || {
        UnitError(format!(
            "invalid duration `{text}`: expected a number and a unit, like 250ms, 5s, 2m or 1h30m"
        ))
    };
    if s.is_empty() {
        return Err(expected());
    }
    let mut total = 0.0;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(expected)?;
        if num_len == 0 {
            return Err(expected());
        }
        let number: f64 = rest[..num_len].parse().map_err(|_| expected())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = unit_scale(&rest[..unit_len]).ok_or_else(expected)?;
        total += number * scale;
        rest = &rest[unit_len..];
    }
    if !total.is_finite() {
        return Err(expected());
    }
    Ok(total)
}

/// A non-negative span of time as written in a scenario (`250ms`, `2m`, `1h30m`).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default)]
pub struct Span(pub Duration);

impl Span {
    /// The duration itself.
    pub fn get(self) -> Duration {
        self.0
    }
}

impl FromStr for Span {
    type Err = UnitError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let secs = parse_seconds(s)?;
        Duration::try_from_secs_f64(secs)
            .map(Span)
            .map_err(|_| UnitError(format!("invalid duration `{s}`: out of range")))
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_duration(self.0, f)
    }
}

/// Writes a duration in the largest units that keep it exact enough to read (`1h30m`, `250ms`).
pub fn fmt_duration(d: Duration, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let micros = d.as_micros();
    if micros == 0 {
        return f.write_str("0s");
    }
    if micros.is_multiple_of(1_000_000) {
        let mut secs = micros / 1_000_000;
        let h = secs / 3600;
        secs %= 3600;
        let m = secs / 60;
        let s = secs % 60;
        if h > 0 {
            write!(f, "{h}h")?;
        }
        if m > 0 {
            write!(f, "{m}m")?;
        }
        if s > 0 {
            write!(f, "{s}s")?;
        }
        Ok(())
    } else if micros.is_multiple_of(1000) {
        write!(f, "{}ms", micros / 1000)
    } else if micros >= 1000 {
        write!(f, "{:.3}ms", micros as f64 / 1000.0)
    } else {
        write!(f, "{micros}µs")
    }
}

/// A short human rendering of a duration for tables (`1.23ms`, `4.5s`).
pub fn short_duration(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{us:.0}µs")
    } else if us < 1e6 {
        format!("{:.2}ms", us / 1000.0)
    } else {
        format!("{:.2}s", us / 1e6)
    }
}

/// An arrival rate in events per second (`50/s`, `3000/m`, `1/30s`).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Rate(f64);

impl Rate {
    /// Builds a rate from events per second; negative and non-finite values are rejected.
    pub fn per_second(v: f64) -> Option<Rate> {
        (v.is_finite() && v >= 0.0).then_some(Rate(v))
    }
    /// Events per second.
    pub fn get(self) -> f64 {
        self.0
    }
}

impl FromStr for Rate {
    type Err = UnitError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let expected = || {
            UnitError(format!(
                "invalid rate `{text}`: expected count/period, like 50/s, 3000/m or 1/30s"
            ))
        };
        let (count, period) = text.trim().split_once('/').ok_or_else(expected)?;
        let count: f64 = count.trim().parse().map_err(|_| expected())?;
        let period = period.trim();
        let secs = if period.starts_with(|c: char| c.is_ascii_digit()) {
            parse_seconds(period).map_err(|_| expected())?
        } else {
            unit_scale(period).ok_or_else(expected)?
        };
        if !(count.is_finite() && count >= 0.0) || secs <= 0.0 {
            return Err(UnitError(format!(
                "invalid rate `{text}`: the count must be zero or more and the period above zero"
            )));
        }
        let rate = count / secs;
        if rate > 1e9 || (rate > 0.0 && rate < 1e-9) || !rate.is_finite() {
            return Err(UnitError(format!(
                "invalid rate `{text}`: rates must lie between one per 30 years and 10⁹ per second"
            )));
        }
        Ok(Rate(rate))
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.0;
        if r >= 1.0 || r == 0.0 {
            if (r - r.round()).abs() < 1e-9 {
                write!(f, "{}/s", r.round())
            } else {
                write!(f, "{r:.2}/s")
            }
        } else {
            let per_min = r * 60.0;
            if (per_min - per_min.round()).abs() < 1e-9 && per_min >= 1.0 {
                write!(f, "{}/m", per_min.round())
            } else {
                match Duration::try_from_secs_f64(1.0 / r) {
                    Ok(d) => write!(f, "1/{}", Span(d)),
                    Err(_) => write!(f, "{r:e}/s"),
                }
            }
        }
    }
}

/// A closed interval of durations (`100ms..2s`), used for backoff and uniform think times.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpanRange {
    /// Lower bound.
    pub low: Duration,
    /// Upper bound, never below `low`.
    pub high: Duration,
}

impl FromStr for SpanRange {
    type Err = UnitError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (a, b) = text.split_once("..").ok_or_else(|| {
            UnitError(format!(
                "invalid range `{text}`: expected low..high, like 100ms..2s"
            ))
        })?;
        let low = a.parse::<Span>()?.0;
        let high = b.parse::<Span>()?.0;
        if high < low {
            return Err(UnitError(format!(
                "invalid range `{text}`: the upper bound is below the lower one"
            )));
        }
        Ok(SpanRange { low, high })
    }
}

/// A percentage (`1%`, `0.5%`), kept as a fraction of one.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Percent(f64);

impl Percent {
    /// The fraction (`1%` → 0.01).
    pub fn fraction(self) -> f64 {
        self.0
    }
}

impl FromStr for Percent {
    type Err = UnitError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = || {
            UnitError(format!(
                "invalid percentage `{text}`: expected like 1% or 0.5%"
            ))
        };
        let n = text.trim().strip_suffix('%').ok_or_else(err)?;
        let v: f64 = n.trim().parse().map_err(|_| err())?;
        if !v.is_finite() || v < 0.0 {
            return Err(err());
        }
        Ok(Percent(v / 100.0))
    }
}

/// A factor for `--scale` (`0.5`, `2`, `150%`).
pub fn parse_scale(text: &str) -> Result<f64, UnitError> {
    let v = if text.trim().ends_with('%') {
        text.parse::<Percent>()?.fraction()
    } else {
        text.trim().parse::<f64>().map_err(|_| {
            UnitError(format!(
                "invalid scale `{text}`: expected a number like 0.5 or 2"
            ))
        })?
    };
    if !(v.is_finite() && v > 0.0) {
        return Err(UnitError(format!(
            "invalid scale `{text}`: must be above zero"
        )));
    }
    Ok(v)
}

/// A wall-clock instant (`--start-at`): RFC 3339 (`2026-12-01T16:30:00Z`, any offset) or Unix
/// seconds (`1796142600`, fractions allowed).
pub fn parse_instant(text: &str) -> Result<std::time::SystemTime, UnitError> {
    let t = text.trim();
    let err = || {
        UnitError(format!(
            "`{text}` is not an instant: expected RFC 3339 like 2026-12-01T16:30:00Z or Unix \
             seconds like 1796142600"
        ))
    };
    if let Ok(secs) = t.parse::<f64>() {
        if !(0.0..1e11).contains(&secs) {
            return Err(err());
        }
        return Ok(std::time::SystemTime::UNIX_EPOCH + Duration::from_secs_f64(secs));
    }
    let at = time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
        .map_err(|_| err())?;
    Ok(at.into())
}

/// An instant as RFC 3339 in UTC, to the millisecond (`2026-12-01T16:30:00.000Z`).
pub fn format_instant(at: std::time::SystemTime) -> String {
    let ms = match at.duration_since(std::time::SystemTime::UNIX_EPOCH) {
        Ok(d) => i128::try_from(d.as_millis()).unwrap_or(i128::MAX),
        Err(e) => -i128::try_from(e.duration().as_millis()).unwrap_or(i128::MAX),
    };
    // Outside the years RFC 3339 can write (a corrupt file, an absurd offset): say so plainly.
    match time::OffsetDateTime::from_unix_timestamp_nanos(ms.saturating_mul(1_000_000)) {
        Ok(t) => t
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|_| format!("{ms} ms after 1970-01-01T00:00:00Z")),
        Err(_) => format!("{ms} ms after 1970-01-01T00:00:00Z"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_parse_as_rfc3339_or_unix_seconds() {
        let unix = parse_instant("1796142600").unwrap();
        assert_eq!(parse_instant("2026-12-01T16:30:00Z").unwrap(), unix);
        assert_eq!(parse_instant("2026-12-01T17:30:00+01:00").unwrap(), unix);
        assert_eq!(format_instant(unix), "2026-12-01T16:30:00Z");
        assert_eq!(parse_instant(&format_instant(unix)).unwrap(), unix);
        assert!(
            parse_instant("tomorrow")
                .unwrap_err()
                .0
                .contains("RFC 3339")
        );
        assert!(parse_instant("-5").is_err());
        let far = std::time::SystemTime::UNIX_EPOCH + Duration::from_millis(u64::MAX);
        assert!(format_instant(far).contains("ms after"));
    }

    #[test]
    fn durations_parse_compound_units() {
        assert_eq!(
            "250ms".parse::<Span>().unwrap().0,
            Duration::from_millis(250)
        );
        assert_eq!(
            "1h30m".parse::<Span>().unwrap().0,
            Duration::from_secs(5400)
        );
        assert_eq!(
            "1.5s".parse::<Span>().unwrap().0,
            Duration::from_millis(1500)
        );
        assert_eq!(
            "500us".parse::<Span>().unwrap().0,
            Duration::from_micros(500)
        );
        for bad in ["", "5", "ms", "5x", "-5s", "1h30", "s5"] {
            assert!(bad.parse::<Span>().is_err(), "{bad} should not parse");
        }
    }

    #[test]
    fn durations_display_round_trip() {
        for text in ["250ms", "1h30m", "2m", "5s", "1h", "1m5s"] {
            assert_eq!(text.parse::<Span>().unwrap().to_string(), text);
        }
    }

    #[test]
    fn rates_parse_per_period() {
        assert_eq!("50/s".parse::<Rate>().unwrap().get(), 50.0);
        assert_eq!("3000/m".parse::<Rate>().unwrap().get(), 50.0);
        assert!(("1/30s".parse::<Rate>().unwrap().get() - 1.0 / 30.0).abs() < 1e-12);
        assert_eq!("7200/h".parse::<Rate>().unwrap().get(), 2.0);
        for bad in ["50", "50/x", "/s", "-1/s", "5/0s", "abc/s"] {
            assert!(bad.parse::<Rate>().is_err(), "{bad} should not parse");
        }
    }

    #[test]
    fn rates_display_readably() {
        assert_eq!("50/s".parse::<Rate>().unwrap().to_string(), "50/s");
        assert_eq!("30/m".parse::<Rate>().unwrap().to_string(), "30/m");
        assert_eq!("1/30s".parse::<Rate>().unwrap().to_string(), "2/m");
        assert_eq!("1/45s".parse::<Rate>().unwrap().to_string(), "1/45s");
    }

    #[test]
    fn absurd_rates_are_refused_and_display_never_panics() {
        // Found by fuzzing: a period of 0.0000333… seconds written as `0s0000333…`.
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/fuzz/units-rate-display"
        ))
        .unwrap();
        if let Ok(r) = text.parse::<Rate>() {
            let _ = r.to_string();
        }
        assert!("1/1000000000000s".parse::<Rate>().is_err());
        assert!("1e12/s".parse::<Rate>().is_err());
        assert_eq!(Rate(1e-12).to_string(), "1/277777777h46m40s");
        assert_eq!(Rate(1e-300).to_string(), "1e-300/s");
    }

    #[test]
    fn ranges_and_percents() {
        let r: SpanRange = "100ms..2s".parse().unwrap();
        assert_eq!(
            (r.low, r.high),
            (Duration::from_millis(100), Duration::from_secs(2))
        );
        assert!("2s..1s".parse::<SpanRange>().is_err());
        assert_eq!("1%".parse::<Percent>().unwrap().fraction(), 0.01);
        assert!("1".parse::<Percent>().is_err());
        assert_eq!(parse_scale("150%").unwrap(), 1.5);
        assert!(parse_scale("0").is_err());
    }
}
