//! `intervals.csv`: one row per interval per key, for spreadsheets and notebooks.

use crate::model::RunResult;

/// Renders the CSV (header row first; latencies in microseconds).
pub fn render(r: &RunResult) -> String {
    let mut out = String::from(
        "t_s,key,count,errors,p50_us,p95_us,p99_us,max_us,active_vus,target,dropped\n",
    );
    let opt = |v: Option<String>| v.unwrap_or_default();
    for row in &r.intervals {
        out.push_str(&format!(
            "{:.3},{},{},{},{},{},{},{},{},{},{}\n",
            row.t,
            row.key,
            row.count,
            row.errors,
            row.p50_us,
            row.p95_us,
            row.p99_us,
            row.max_us,
            opt(row.active_vus.map(|v| v.to_string())),
            opt(row.target.map(|v| format!("{v:.3}"))),
            opt(row.dropped.map(|v| v.to_string())),
        ));
    }
    out
}
