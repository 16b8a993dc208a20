//! The Kubernetes manifests that run one scenario as a split run (`stampede k8s`): the scenario
//! and the files it reads in a ConfigMap, a volume for results, an Indexed Job whose pods are the
//! segments (completion index = segment index, one `--start-at` for all, no retries), and a Job
//! that waits for every segment and merges them. Kubernetes does the scheduling, restarts and
//! logs; stampede adds no protocol of its own (MEASUREMENT.md §4.4).

use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use crate::scenario::Plan;
use crate::scenario::plan::{FileKind, ScenarioFile};
use crate::units::format_instant;

/// Where the scenario's files are mounted in the pods (the image's own `/work` keeps the
/// bundled scenarios).
pub const SCENARIO_MOUNT: &str = "/scenario";
/// Where the results volume is mounted.
pub const RESULTS_MOUNT: &str = "/results";
/// The largest ConfigMap Kubernetes stores.
pub const MAX_CONFIGMAP_BYTES: usize = 1 << 20;

/// What the manifests are made of.
#[derive(Debug, Clone)]
pub struct K8sOptions {
    /// How many segments (pods).
    pub segments: u32,
    /// The shared start instant.
    pub start_at: SystemTime,
    /// The container image with the stampede binary.
    pub image: String,
    /// The name of the objects (made DNS-safe).
    pub name: String,
    /// Kubernetes namespace, when not the current one.
    pub namespace: Option<String>,
    /// `--target` for every segment.
    pub target: Option<String>,
    /// Size of the results volume (`1Gi`).
    pub storage: String,
    /// Storage class of the results volume (one that offers ReadWriteMany).
    pub storage_class: Option<String>,
    /// CPU each segment asks for (`1`, `500m`).
    pub cpu: String,
    /// Memory each segment asks for (`512Mi`).
    pub memory: String,
}

/// Why the manifests could not be made.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// A file the scenario reads could not be read.
    #[error("cannot read `{path}`: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The scenario names a file by an absolute path, which the pods do not have.
    #[error(
        "the scenario reads `{0}` by an absolute path, which the pods do not have\n  hint: write it relative to the scenario's folder, so it travels with the scenario"
    )]
    Absolute(String),
    /// The scenario and its files are too large for a ConfigMap.
    #[error(
        "the scenario and the files it reads are {0} bytes; a ConfigMap or Secret holds at most 1 MiB\n  hint: build an image with the files in it (deploy/k8s/README.md, \"Large data files\")"
    )]
    TooLarge(usize),
}

/// A file placed in the ConfigMap (or, for data, the Secret): its key and its path under
/// [`SCENARIO_MOUNT`].
#[derive(Debug)]
struct Placed {
    key: String,
    path: String,
    text: String,
    kind: FileKind,
}

/// The manifests (YAML documents separated by `---`) for `plan`, loaded from `scenario`.
pub fn kubernetes(plan: &Plan, scenario: &Path, o: &K8sOptions) -> Result<String, DeployError> {
    let files = place(scenario, &plan.files)?;
    let size: usize = files.iter().map(|f| f.text.len()).sum();
    if size > MAX_CONFIGMAP_BYTES * 9 / 10 {
        return Err(DeployError::TooLarge(size));
    }
    let name = dns_name(&o.name);
    let stamp = format_instant(o.start_at)
        .replace(['-', ':'], "")
        .replace(".000", "");
    let run_dir = format!("{RESULTS_MOUNT}/{stamp}");
    let n = o.segments.max(1);
    let start = format_instant(o.start_at);
    // The segments wait for the start, run the load, and give in-flight iterations their
    // graceful stop; the merge waits that long and five minutes more for the slowest.
    let until_start = o
        .start_at
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    let budget = until_start + plan.load_length() + plan.settings.graceful_stop;
    let wait = budget + Duration::from_secs(300);
    let labels = json!({ "app.kubernetes.io/name": "stampede", "stampede/run": name });
    let meta = |suffix: &str| {
        let mut m = json!({ "name": format!("{name}-{suffix}"), "labels": labels });
        if let Some(ns) = &o.namespace {
            m["namespace"] = json!(ns);
        }
        m
    };
    let scenario_in_pod = format!("{SCENARIO_MOUNT}/{}", files[0].path);
    let mut run_args = vec![
        "run".to_string(),
        scenario_in_pod,
        "--segment".into(),
        format!("$(JOB_COMPLETION_INDEX)/{n}"),
        "--start-at".into(),
        start.clone(),
        "--out".into(),
        format!("{run_dir}/segment-$(JOB_COMPLETION_INDEX)"),
        "--no-progress".into(),
    ];
    if let Some(t) = &o.target {
        run_args.extend(["--target".into(), t.clone()]);
    }
    let mut merge_args = vec!["merge".to_string()];
    merge_args.extend((0..n).map(|i| format!("{run_dir}/segment-{i}")));
    merge_args.extend([
        "--out".into(),
        format!("{run_dir}/merged"),
        "--wait".into(),
        format!("{}s", wait.as_secs()),
    ]);
    // Feeder files often hold credentials: they go into a Secret, the scenario and scripts into
    // a ConfigMap, and one projected volume shows them together in the scenario's layout.
    let (data, code): (Vec<&Placed>, Vec<&Placed>) =
        files.iter().partition(|f| f.kind == FileKind::Data);
    let items = |fs: &[&Placed]| {
        fs.iter()
            .map(|f| json!({ "key": f.key, "path": f.path }))
            .collect::<Vec<_>>()
    };
    let texts = |fs: &[&Placed]| {
        fs.iter()
            .map(|f| (f.key.clone(), Value::String(f.text.clone())))
            .collect::<serde_json::Map<_, _>>()
    };
    let mut sources =
        vec![json!({ "configMap": { "name": format!("{name}-scenario"), "items": items(&code) } })];
    if !data.is_empty() {
        sources
            .push(json!({ "secret": { "name": format!("{name}-data"), "items": items(&data) } }));
    }
    let results = json!({ "name": "results", "persistentVolumeClaim": { "claimName": format!("{name}-results") } });
    let volumes = json!([{ "name": "scenario", "projected": { "sources": sources } }, results]);
    let mounts = json!([
        { "name": "scenario", "mountPath": SCENARIO_MOUNT, "readOnly": true },
        { "name": "results", "mountPath": RESULTS_MOUNT }
    ]);
    let container = |args: &[String], cpu: &str, memory: &str, mounts: &Value| {
        json!({
            "name": "stampede",
            "image": o.image,
            "args": args,
            "resources": {
                "requests": { "cpu": cpu, "memory": memory },
                "limits": { "memory": memory }
            },
            "volumeMounts": mounts,
        })
    };
    let config_map = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta("scenario"),
        "data": texts(&code),
    });
    let secret = (!data.is_empty()).then(|| {
        json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": meta("data"),
            "type": "Opaque",
            "stringData": texts(&data),
        })
    });
    let mut pvc_spec = json!({
        "accessModes": ["ReadWriteMany"],
        "resources": { "requests": { "storage": o.storage } }
    });
    if let Some(class) = &o.storage_class {
        pvc_spec["storageClassName"] = json!(class);
    }
    let pvc = json!({
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": meta("results"),
        "spec": pvc_spec,
    });
    let segments = json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta("segments"),
        "spec": {
            "completionMode": "Indexed",
            "completions": n,
            "parallelism": n,
            // A retried segment would start after --start-at and replay its share late; a
            // failed segment is reported by the merge as missing instead.
            "backoffLimitPerIndex": 0,
            "activeDeadlineSeconds": wait.as_secs(),
            "template": {
                "metadata": { "labels": labels },
                "spec": {
                    "restartPolicy": "Never",
                    // One segment per machine where the cluster allows: segments on one node
                    // share its CPU and network.
                    "topologySpreadConstraints": [{
                        "maxSkew": 1,
                        "topologyKey": "kubernetes.io/hostname",
                        "whenUnsatisfiable": "ScheduleAnyway",
                        "labelSelector": { "matchLabels": labels }
                    }],
                    "containers": [container(&run_args, &o.cpu, &o.memory, &mounts)],
                    "volumes": volumes,
                }
            }
        }
    });
    let merge = json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta("merge"),
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": wait.as_secs() + 300,
            "template": {
                "metadata": { "labels": labels },
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [container(
                        &merge_args,
                        "250m",
                        "256Mi",
                        &json!([{ "name": "results", "mountPath": RESULTS_MOUNT }]),
                    )],
                    "volumes": [results],
                }
            }
        }
    });
    let mut out = format!(
        "# stampede: {} split into {n} segments, starting at {start}.\n\
         # kubectl apply -f this file; results: {run_dir}/merged on the {name}-results volume\n\
         # (kubectl logs job/{name}-merge prints the merged summary).\n",
        plan.name
    );
    for doc in [
        Some(config_map),
        secret,
        Some(pvc),
        Some(segments),
        Some(merge),
    ]
    .into_iter()
    .flatten()
    {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&doc).unwrap_or_default());
    }
    Ok(out)
}

/// The scenario and its files under one root: each file's path relative to the folder that
/// holds them all, so the scenario's relative paths (`../scripts/x.rhai`) still resolve in the
/// pod. The scenario comes first.
fn place(scenario: &Path, files: &[ScenarioFile]) -> Result<Vec<Placed>, DeployError> {
    if let Some(f) = files.iter().find(|f| Path::new(&f.path).is_absolute()) {
        return Err(DeployError::Absolute(f.path.clone()));
    }
    let dir = scenario.parent().unwrap_or(Path::new(""));
    let mut paths = vec![normal(scenario)];
    paths.extend(files.iter().map(|f| normal(&dir.join(&f.path))));
    let root = common_root(&paths);
    let mut out = Vec::new();
    for (i, p) in paths.iter().enumerate() {
        let (original, kind) = if i == 0 {
            (scenario.to_path_buf(), FileKind::Script)
        } else {
            (dir.join(&files[i - 1].path), files[i - 1].kind)
        };
        let text = std::fs::read_to_string(&original).map_err(|source| DeployError::Read {
            path: original.clone(),
            source,
        })?;
        let rel: PathBuf = p.components().skip(root.components().count()).collect();
        let path = rel.to_string_lossy().replace('\\', "/");
        if out.iter().any(|f: &Placed| f.path == path) {
            continue;
        }
        let key = format!(
            "f{i}-{}",
            path.chars()
                .map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                    c
                } else {
                    '_'
                })
                .collect::<String>()
        );
        out.push(Placed {
            key,
            path,
            text,
            kind,
        });
    }
    Ok(out)
}

/// A path made absolute and without `.` and `..` (lexically: the files need not be links).
pub fn normal(p: &Path) -> PathBuf {
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(p)
    };
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// The deepest folder holding every path.
fn common_root(paths: &[PathBuf]) -> PathBuf {
    let mut root: PathBuf = paths[0].parent().map(Path::to_path_buf).unwrap_or_default();
    for p in &paths[1..] {
        while !p.starts_with(&root) {
            if !root.pop() {
                break;
            }
        }
    }
    root
}

/// A DNS-1123 label prefix: lower-case letters, digits and `-`, at most 40 characters (the
/// objects add `-segments`, and Job pods add more).
pub fn dns_name(s: &str) -> String {
    let mut out: String = s
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    out.truncate(40);
    let out = out.trim_matches('-').to_string();
    if out.is_empty() {
        "stampede".into()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_keep_their_relative_places_under_one_root() {
        let paths = [
            PathBuf::from("/a/b/scenarios/s.yaml"),
            PathBuf::from("/a/b/scripts/x.rhai"),
            PathBuf::from("/a/b/scenarios/data/u.csv"),
        ];
        assert_eq!(common_root(&paths), PathBuf::from("/a/b"));
        assert_eq!(
            normal(Path::new("/a/b/scenarios/../scripts/./x.rhai")),
            paths[1]
        );
    }

    #[test]
    fn names_are_dns_labels() {
        assert_eq!(dns_name("USDT launch_v2"), "usdt-launch-v2");
        assert_eq!(dns_name("--"), "stampede");
    }
}
