//! Messages that teach: serde's and the YAML parser's wording turned into what a newcomer needs
//! to fix the line (`durations need a unit: 10s`, `a tab in the indentation`).

use super::source::Pos;

/// Keys whose values are durations.
const DURATION_KEYS: [&str; 15] = [
    "period",
    "for",
    "stddev",
    "duration",
    "timeout",
    "graceful_stop",
    "think",
    "pace",
    "over",
    "hold",
    "start",
    "delay",
    "arrival_slack",
    "max_latency",
    "mean",
];
/// Keys whose values are rates (or, in a closed flow's stages, user counts).
const RATE_KEYS: [&str; 4] = ["rate", "to", "at", "amplitude"];

/// A type error at the key `key` reworded, with a hint; `None` to keep serde's message.
pub(super) fn type_error(key: &str, msg: &str) -> Option<(String, Option<String>)> {
    let got = msg
        .strip_prefix("invalid type: ")
        .or_else(|| msg.strip_prefix("invalid value: "))
        .and_then(|r| r.split(", expected ").next())
        .unwrap_or_default();
    let number = got.starts_with("integer") || got.starts_with("floating point");
    let value = got.split('`').nth(1).unwrap_or(got);
    if number && msg.ends_with("expected a string") {
        if DURATION_KEYS.contains(&key) {
            return Some((
                format!(
                    "`{key}: {value}` needs a unit: a duration is written like {value}s, 250ms or 2m"
                ),
                Some(format!("write `{key}: {value}s` for {value} seconds")),
            ));
        }
        if RATE_KEYS.contains(&key) {
            return Some((
                format!(
                    "`{key}: {value}` needs a period: a rate is written like {value}/s, 3000/m or 1/30s"
                ),
                Some(format!("write `{key}: {value}/s` for {value} per second")),
            ));
        }
        return Some((
            format!("`{key}` expects text here, not the number {value}"),
            Some(format!("quote it: `{key}: \"{value}\"`")),
        ));
    }
    for (ty, what) in [
        ("u64", "a whole number (0, 1, 2, …)"),
        ("u32", "a whole number (0, 1, 2, …)"),
        ("u16", "a whole number"),
        ("usize", "a whole number (0, 1, 2, …)"),
        ("f64", "a number"),
        ("a boolean", "true or false"),
    ] {
        if msg.ends_with(&format!("expected {ty}")) {
            return Some((format!("`{key}` must be {what}, not {got}"), None));
        }
    }
    None
}

/// A YAML syntax error at `pos` reworded from the text around it, with a hint.
pub(super) fn syntax_error(text: &str, pos: Pos, msg: &str) -> (String, Option<String>) {
    let lines: Vec<&str> = text.lines().collect();
    let line = |n: usize| lines.get(n.wrapping_sub(1)).copied();
    // A tab anywhere in a line's indentation is the usual cause of "cannot start any token".
    let tab_line = (pos.line.saturating_sub(1)..=pos.line + 1).find_map(|n| {
        line(n).and_then(|l| {
            let indent: String = l.chars().take_while(|c| c.is_whitespace()).collect();
            indent.contains('\t').then_some(n)
        })
    });
    if let Some(n) = tab_line {
        return (
            format!("invalid YAML: line {n} is indented with a tab; YAML indents with spaces only"),
            Some("replace the tab with spaces (two per level, as the lines around it do)".into()),
        );
    }
    if msg.contains("did not find expected") {
        let indent = |l: &str| l.len() - l.trim_start().len();
        let around: Vec<String> = (pos.line.saturating_sub(2)..=pos.line)
            .filter_map(|n| line(n).map(|l| format!("{n:>4} | {l}   ({} spaces)", indent(l))))
            .collect();
        return (
            format!(
                "invalid YAML: {msg}: a line is indented to no level the lines above it opened"
            ),
            Some(format!(
                "items of one list or map start at the same column:\n{}",
                around.join("\n")
            )),
        );
    }
    (format!("invalid YAML: {msg}"), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_where_units_belong_say_which_unit() {
        let (m, h) =
            type_error("duration", "invalid type: integer `10`, expected a string").unwrap();
        assert!(
            m.contains("needs a unit") && h.unwrap().contains("duration: 10s"),
            "{m}"
        );
        let (m, _) = type_error("rate", "invalid type: integer `50`, expected a string").unwrap();
        assert!(m.contains("50/s"), "{m}");
        let (m, _) = type_error(
            "max_vus",
            "invalid type: floating point `1.5`, expected u64",
        )
        .unwrap();
        assert!(m.contains("whole number"), "{m}");
    }

    #[test]
    fn a_tab_is_named_with_its_line() {
        let (m, _) = syntax_error(
            "a:\n\t- b\n",
            Pos { line: 2, col: 1 },
            "found character that cannot start any token",
        );
        assert!(m.contains("line 2 is indented with a tab"), "{m}");
    }
}
