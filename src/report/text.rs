//! Text helpers every renderer shares: XML/HTML escaping, timestamps, shortening labels, the
//! server's per-iteration totals.

use std::fmt::Write as _;

use crate::model::Work;
use crate::units::short_duration;

/// Escapes text for XML attributes and content.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 forbids most control characters, even escaped.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

/// `YYYY-MM-DDTHH:MM:SS` (UTC) for Unix milliseconds, from the civil-from-days algorithm.
pub fn iso8601(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `s` cut to at most `n` characters, an ellipsis marking the cut.
pub fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n - 1).collect::<String>())
    }
}

/// The server's per-iteration totals of a flow (`Server-Timing` summed over each iteration), as
/// `; db 4ms p50, 12ms p99; db-queries 3.0`: durations by percentile, counts by mean.
pub fn per_iteration_timings(w: &Work) -> String {
    let ms = |us: u64| short_duration(std::time::Duration::from_micros(us));
    let mut line = String::new();
    for t in &w.per_iteration {
        match &t.duration {
            Some(d) => {
                let _ = write!(
                    line,
                    "; {} {} p50, {} p99",
                    t.name,
                    ms(d.p50_us),
                    ms(d.p99_us)
                );
            }
            None if t.count_total > 0.0 => {
                let _ = write!(line, "; {} {:.1}", t.name, t.count_mean);
            }
            None => {}
        }
    }
    line
}
