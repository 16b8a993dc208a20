//! `junit.xml`: a test suite per flow, a test case per threshold verdict and per step's checks,
//! failures carrying what was observed against the limit — the form CI servers (Jenkins, GitLab,
//! GitHub Actions reporters) display.

use std::fmt::Write as _;

use super::text::{escape, iso8601};
use crate::model::RunResult;

struct Case {
    name: String,
    failure: Option<(String, String, String)>,
}

/// Renders the JUnit XML document.
pub fn render(r: &RunResult) -> String {
    let mut suites = String::new();
    let (mut all_tests, mut all_failures) = (0, 0);
    for f in &r.flows {
        let mut cases = Vec::new();
        let prefix = format!("{}.", f.name);
        for v in r.thresholds.iter().filter(|v| {
            v.pattern != "checks_gate" && (v.key == f.name || v.key.starts_with(&prefix))
        }) {
            let failure = (!v.passed).then(|| {
                let note = v
                    .note
                    .as_deref()
                    .map(|n| format!(" ({n})"))
                    .unwrap_or_default();
                (
                    format!("observed {}, limit {}{note}", v.observed, v.limit),
                    "threshold".to_string(),
                    format!(
                        "{}: {} failed: observed {} against {}{note}",
                        v.key, v.threshold, v.observed, v.limit
                    ),
                )
            });
            cases.push(Case {
                name: format!("{}: {}", v.key, v.threshold),
                failure,
            });
        }
        for s in f
            .steps
            .iter()
            .filter(|s| s.checks_passed + s.checks_failed > 0)
        {
            let total = s.checks_passed + s.checks_failed;
            let failure = (s.checks_failed > 0).then(|| {
                let example = r
                    .error_examples
                    .iter()
                    .find(|e| e.key == s.key && e.class == "check")
                    .map(|e| format!("; first: {}", e.message))
                    .unwrap_or_default();
                (
                    format!("{} of {total} checks failed{example}", s.checks_failed),
                    "check".to_string(),
                    format!(
                        "{}: {} of {total} checks failed{example}",
                        s.key, s.checks_failed
                    ),
                )
            });
            cases.push(Case {
                name: format!("{}: checks", s.key),
                failure,
            });
        }
        let failures = cases.iter().filter(|c| c.failure.is_some()).count();
        all_tests += cases.len();
        all_failures += failures;
        let _ = writeln!(
            suites,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"0\" time=\"{:.3}\" timestamp=\"{}\">",
            escape(&f.name),
            cases.len(),
            r.duration_s,
            iso8601(r.started_at_unix_ms)
        );
        let _ = writeln!(suites, "    <properties>");
        for (k, v) in [
            ("journey", f.journey.as_str()),
            ("model", f.model.as_str()),
            ("kind", f.kind.name()),
        ] {
            let _ = writeln!(
                suites,
                "      <property name=\"{k}\" value=\"{}\"/>",
                escape(v)
            );
        }
        let _ = writeln!(suites, "    </properties>");
        for c in &cases {
            let classname = format!("stampede.{}", f.name);
            match &c.failure {
                None => {
                    let _ = writeln!(
                        suites,
                        "    <testcase name=\"{}\" classname=\"{}\" time=\"0\"/>",
                        escape(&c.name),
                        escape(&classname)
                    );
                }
                Some((message, kind, text)) => {
                    let _ = writeln!(
                        suites,
                        "    <testcase name=\"{}\" classname=\"{}\" time=\"0\">",
                        escape(&c.name),
                        escape(&classname)
                    );
                    let _ = writeln!(
                        suites,
                        "      <failure message=\"{}\" type=\"{}\">{}</failure>",
                        escape(message),
                        escape(kind),
                        escape(text)
                    );
                    let _ = writeln!(suites, "    </testcase>");
                }
            }
        }
        let _ = writeln!(suites, "  </testsuite>");
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"stampede: {}\" tests=\"{all_tests}\" failures=\"{all_failures}\" errors=\"0\" time=\"{:.3}\">\n{suites}</testsuites>\n",
        escape(&r.scenario),
        r.duration_s
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_control_characters() {
        assert_eq!(
            escape("p99 < 400ms & \"x\" 'y' \u{1}"),
            "p99 &lt; 400ms &amp; &quot;x&quot; &apos;y&apos; ?"
        );
    }

    #[test]
    fn formats_timestamps_in_utc() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00");
        assert_eq!(iso8601(951_782_400_000), "2000-02-29T00:00:00");
        assert_eq!(iso8601(1_795_891_178_621), "2026-11-28T18:39:38");
    }
}
