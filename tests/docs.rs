//! The documentation is true: the README's scenario reference loads, and so does every shipped
//! scenario.

use std::path::Path;

use crate::util::*;

#[test]
fn the_readme_scenario_reference_validates() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let section = readme.split("## Scenario reference").nth(1).unwrap();
    let yaml = section
        .split("```yaml")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap();
    let d = dir();
    let root = d.path();
    std::fs::create_dir_all(root.join("scenarios/data")).unwrap();
    std::fs::create_dir_all(root.join("scripts")).unwrap();
    std::fs::write(
        root.join("scenarios/data/users.csv"),
        "user,password\nu1,p\n",
    )
    .unwrap();
    std::fs::write(root.join("scenarios/data/orders.jsonl"), "{\"id\": 1}\n").unwrap();
    std::fs::create_dir_all(root.join("scenarios/certs")).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["client".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    std::fs::write(root.join("scenarios/certs/client.pem"), cert.pem()).unwrap();
    std::fs::write(root.join("scenarios/certs/client.key"), key.serialize_pem()).unwrap();
    let lib =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/wallet.rhai"))
            .unwrap();
    std::fs::write(root.join("scripts/wallet.rhai"), lib).unwrap();
    let s = write(&root.join("scenarios"), "reference.yaml", yaml);
    let (code, out, err) = run_bin(&["validate", s.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    for flow in [
        "signups",
        "steady",
        "traders",
        "batch",
        "reconcile",
        "diurnal",
    ] {
        assert!(out.contains(flow), "{out}");
    }
}

#[test]
fn every_shipped_scenario_validates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "yaml") {
            let (code, _, err) = run_bin(&["validate", p.to_str().unwrap()]);
            assert_eq!(code, 0, "{}: {err}", p.display());
            n += 1;
        }
    }
    assert!(n >= 3);
}

#[test]
fn schemas_are_valid_json_and_describe_the_formats() {
    let (code, out, _) = run_bin(&["schema"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["properties"]["flows"].is_object());
    assert!(out.contains("\"journeys\""));
    let (code, out, _) = run_bin(&["schema", "--results"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["properties"]["schema_version"].is_object());
}
