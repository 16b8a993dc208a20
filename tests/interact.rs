//! `stampede interact`: each flow alone, all together, each pair; the verdict names the pair
//! that hurts.

use crate::util::*;

#[test]
fn interact_names_the_flow_that_hurts_another() {
    let srv = start_server(ServerConfig::default());
    let d = dir();
    let s = write_scenario(
        d.path(),
        &srv.url(),
        "journeys:\n  r: [ { name: read, get: /lock-read } ]\n  w: [ { name: write, get: '/lock-write?ms=30' } ]\n  o: [ { name: ok, get: /ok } ]\nflows:\n  reader: { journey: r, rate: 40/s, duration: 3s }\n  writer: { journey: w, rate: 30/s, duration: 3s }\n  bystander: { journey: o, rate: 20/s, duration: 3s }\n",
    );
    let out = d.path().join("out");
    let (code, stdout, stderr) = run_bin(&[
        "interact",
        s.to_str().unwrap(),
        "--pairs",
        "--settle",
        "200ms",
        "--out",
        out.to_str().unwrap(),
        // The options `run` takes are the options `interact` takes.
        "--no-progress",
        "--interval",
        "500ms",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("phase 7/7"),
        "3 alone + all + 3 pairs: {stderr}"
    );
    let verdict = stdout
        .lines()
        .find(|l| l.starts_with("verdict: reader.read"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(verdict.contains("when writer runs beside it"), "{verdict}");
    assert!(!verdict.contains("bystander"), "{verdict}");
    assert!(!stdout.contains("verdict: bystander.ok"), "{stdout}");
    let rows: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("interaction.json")).unwrap())
            .unwrap();
    let read = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == "reader.read")
        .unwrap();
    assert!(read["amplification"].as_f64().unwrap() >= 2.0, "{read}");
    let page = std::fs::read_to_string(out.join("interaction.html")).unwrap();
    assert!(
        page.contains("when writer runs beside it")
            && page.contains("phase-reader+writer/report.html")
    );
    for phase in [
        "phase-reader",
        "phase-all",
        "phase-reader+writer",
        "phase-writer+bystander",
    ] {
        assert!(out.join(phase).join("results.json").exists(), "{phase}");
    }
}
