//! The manifests `stampede k8s` prints, checked against the Kubernetes API types (no cluster
//! here): every object parses into its typed struct from `k8s-openapi` and serializes back to the
//! same value (so no field is misspelled or mistyped), the Job's pods run the segments the merge
//! Job reads, and the files laid out as the pods see them validate.

use std::path::Path;

use clap::Parser;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Secret};
use serde::de::DeserializeOwned;
use stampede::cli::{Cli, Command};

use crate::util::*;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Parses `doc` as `T` and checks it serializes back to the same value: a field the type does
/// not know (a typo) or a value of the wrong type fails.
fn typed<T: DeserializeOwned + serde::Serialize>(doc: &serde_json::Value) -> T {
    let t: T = serde_json::from_value(doc.clone())
        .unwrap_or_else(|e| panic!("{e}: {}", serde_json::to_string_pretty(doc).unwrap()));
    let back = serde_json::to_value(&t).unwrap();
    assert_eq!(&back, doc, "a field the Kubernetes type does not have");
    t
}

fn documents(text: &str) -> Vec<serde_json::Value> {
    text.split("\n---\n")
        .skip(1)
        .map(|d| serde_yaml::from_str::<serde_json::Value>(d).unwrap())
        .collect()
}

fn parse(args: &[String]) -> Command {
    let mut full = vec!["stampede".to_string()];
    full.extend_from_slice(args);
    Cli::try_parse_from(&full)
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
        .command
}

#[test]
fn k8s_manifests_are_valid_kubernetes_objects_that_run_and_merge_every_segment() {
    let scenario = root().join("scenarios/usdt-launch.yaml");
    let (code, out, err) = run_bin(&[
        "k8s",
        scenario.to_str().unwrap(),
        "--segments",
        "3",
        "--start-at",
        "2030-01-01T00:00:00Z",
        "--target",
        "http://wallet:8080",
        "--namespace",
        "load",
        "--image",
        "registry.example.com/stampede:1",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(err.is_empty(), "no warning with a cluster target: {err}");
    let docs = documents(&out);
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["ConfigMap", "Secret", "PersistentVolumeClaim", "Job", "Job"]
    );
    let config: ConfigMap = typed(&docs[0]);
    let secret: Secret = typed(&docs[1]);
    let pvc: PersistentVolumeClaim = typed(&docs[2]);
    let segments: Job = typed(&docs[3]);
    let merge: Job = typed(&docs[4]);
    for name in [&config.metadata.namespace, &segments.metadata.namespace] {
        assert_eq!(name.as_deref(), Some("load"));
    }
    assert_eq!(
        pvc.spec.unwrap().access_modes.unwrap(),
        ["ReadWriteMany"],
        "every segment's pod writes to the one volume"
    );

    // The segments: an Indexed Job, one pod per segment, all at once, never retried.
    let spec = segments.spec.unwrap();
    assert_eq!(spec.completion_mode.as_deref(), Some("Indexed"));
    assert_eq!((spec.completions, spec.parallelism), (Some(3), Some(3)));
    assert_eq!(spec.backoff_limit_per_index, Some(0));
    let pod = spec.template.spec.unwrap();
    assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
    let args = pod.containers[0].args.clone().unwrap();
    let mut outs = Vec::new();
    for i in 0..3 {
        // Kubernetes expands $(JOB_COMPLETION_INDEX) in args from the variable it sets.
        let args: Vec<String> = args
            .iter()
            .map(|a| a.replace("$(JOB_COMPLETION_INDEX)", &i.to_string()))
            .collect();
        let Command::Run {
            scenario,
            split,
            run,
            load,
            ..
        } = parse(&args)
        else {
            panic!("not a run: {args:?}")
        };
        assert_eq!(split.segment.unwrap().to_string(), format!("{i}/3"));
        assert_eq!(
            split.start_at,
            Some(stampede::units::parse_instant("2030-01-01T00:00:00Z").unwrap())
        );
        assert_eq!(load.target.as_deref(), Some("http://wallet:8080"));
        assert!(scenario.starts_with("/scenario"));
        outs.push(run.out.unwrap());
    }

    // The merge: waits for exactly those folders.
    let mpod = merge.spec.unwrap().template.spec.unwrap();
    let Command::Merge { segments, wait, .. } = parse(&mpod.containers[0].args.clone().unwrap())
    else {
        panic!("not a merge")
    };
    assert_eq!(segments, outs);
    assert!(wait.is_some());

    // The files, laid out as the projected volume shows them, are a scenario that validates.
    let d = dir();
    let volume = pod
        .volumes
        .unwrap()
        .into_iter()
        .find(|v| v.name == "scenario")
        .unwrap();
    let mut placed = 0;
    for source in volume.projected.unwrap().sources.unwrap() {
        let (items, data) = match (source.config_map, source.secret) {
            (Some(c), None) => (c.items.unwrap(), config.data.clone().unwrap()),
            (None, Some(s)) => (s.items.unwrap(), secret.string_data.clone().unwrap()),
            other => panic!("unexpected source {other:?}"),
        };
        for item in items {
            let p = d.path().join(&item.path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, &data[&item.key]).unwrap();
            placed += 1;
        }
    }
    assert_eq!(placed, 3, "the scenario, its script and its users");
    assert!(
        secret
            .string_data
            .unwrap()
            .keys()
            .all(|k| k.ends_with(".csv")),
        "feeder rows (credentials) are in the Secret, not the ConfigMap"
    );
    let in_pod = d.path().join(
        args[1]
            .strip_prefix("/scenario/")
            .expect("the scenario is under the mount"),
    );
    let (code, out, err) = run_bin(&["validate", in_pod.to_str().unwrap(), "--segment", "2/3"]);
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn k8s_warns_of_a_loopback_target_and_refuses_a_start_without_lead_time() {
    let scenario = root().join("scenarios/usdt-launch.yaml");
    let s = scenario.to_str().unwrap();
    let image = "registry.example.com/stampede:1";
    let (code, _, err) = run_bin(&["k8s", s, "--segments", "2", "--image", image]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("loopback") && err.contains("--target"),
        "{err}"
    );
    let (code, _, err) = run_bin(&[
        "k8s",
        s,
        "--segments",
        "2",
        "--image",
        image,
        "--start-in",
        "0s",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--start-in"), "{err}");
    let (code, _, err) = run_bin(&["k8s", s, "--segments", "2"]);
    assert_eq!(code, 2, "--image is required: {err}");
}

#[test]
fn the_compose_split_runs_every_segment_and_merges_them() {
    let text = std::fs::read_to_string(root().join("deploy/compose/split.yml")).unwrap();
    // What `START_AT=… docker compose` substitutes.
    let text = text.replace("${START_AT:?set START_AT to a shared start, e.g. START_AT=$(date -u -d '+30 sec' +%FT%TZ)}", "2030-01-01T00:00:00Z");
    assert!(!text.contains("${"), "an unexpected variable: {text}");
    let compose: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let services = compose["services"].as_mapping().unwrap();
    let command = |svc: &serde_yaml::Value| -> Vec<String> {
        svc["command"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect()
    };
    let mut outs = Vec::new();
    let mut indices = Vec::new();
    for (name, svc) in services {
        let name = name.as_str().unwrap();
        if !name.starts_with("segment-") {
            continue;
        }
        let Command::Run {
            scenario,
            split,
            run,
            ..
        } = parse(&command(svc))
        else {
            panic!("{name} is not a run")
        };
        assert!(root().join(&scenario).exists(), "{}", scenario.display());
        assert!(split.start_at.is_some(), "{name} has no --start-at");
        let seg = split.segment.unwrap();
        assert_eq!(seg.count, 3);
        indices.push(seg.index);
        outs.push(run.out.unwrap());
    }
    indices.sort();
    assert_eq!(indices, [0, 1, 2]);
    let Command::Merge { segments, .. } = parse(&command(&services["merge"])) else {
        panic!("no merge")
    };
    outs.sort();
    assert_eq!(segments, outs);
}
