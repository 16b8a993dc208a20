//! The `interact` command's page: the alone-versus-mixed table, its verdicts, and a link to each
//! phase's own report.

use std::fmt::Write as _;

use super::text::escape;
use crate::analysis::interaction::Row;
use crate::units::short_duration;

/// A self-contained page with the table and verdicts, linking each phase's report.
pub fn render_html(rows: &[Row], phases: &[String]) -> String {
    let ms = |us: u64| short_duration(std::time::Duration::from_micros(us));
    let mut out = String::from(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>stampede: interaction</title>\
         <style>body{font:14px/1.4 system-ui,sans-serif;margin:0 auto;max-width:1100px;padding:16px}\
         table{border-collapse:collapse}td,th{padding:3px 10px;border-bottom:1px solid #ddd;text-align:right}\
         td:first-child,th:first-child{text-align:left}.bad{color:#cf222e;font-weight:600}</style></head><body>\
         <h1>Which combination of flows hurts</h1><table><thead><tr><th>step</th><th>alone p50</th><th>alone p99</th>\
         <th>alone errors</th><th>mixed p50</th><th>mixed p99</th><th>mixed errors</th><th>× p99</th></tr></thead><tbody>",
    );
    for r in rows {
        let class = if r.hurt_by.is_empty() {
            ""
        } else {
            " class=\"bad\""
        };
        let _ = write!(
            out,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{:.1}%</td><td>{}</td><td>{}</td><td>{:.1}%</td><td{class}>{:.1}×</td></tr>",
            escape(&r.key),
            ms(r.alone_p50_us),
            ms(r.alone_p99_us),
            r.alone_errors * 100.0,
            ms(r.mixed_p50_us),
            ms(r.mixed_p99_us),
            r.mixed_errors * 100.0,
            r.amplification
        );
    }
    out.push_str("</tbody></table><h2>Verdicts</h2><ul>");
    for r in rows {
        let class = if r.hurt_by.is_empty() {
            ""
        } else {
            " class=\"bad\""
        };
        let _ = write!(out, "<li{class}>{}</li>", escape(&r.verdict));
    }
    out.push_str("</ul><h2>Phases</h2><ul>");
    for p in phases {
        let _ = write!(
            out,
            "<li><a href=\"phase-{0}/report.html\">{0}</a></li>",
            escape(p)
        );
    }
    out.push_str("</ul></body></html>");
    out
}
