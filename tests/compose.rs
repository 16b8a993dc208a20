//! docker-compose.yml cannot run here (no Docker engine), so this checks what it refers to: every
//! file and folder exists, every stampede command parses, ports match what the services listen
//! on, Prometheus scrapes the wallet, and every metric the Grafana dashboard queries is one the
//! wallet really exports.

use std::net::SocketAddr;
use std::path::Path;

use clap::Parser;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn yaml(path: &str) -> serde_yaml::Value {
    serde_yaml::from_str(&std::fs::read_to_string(root().join(path)).unwrap()).unwrap()
}

fn strings(v: &serde_yaml::Value) -> Vec<String> {
    v.as_sequence()
        .map(|s| {
            s.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn compose_file_refers_only_to_things_that_exist() {
    let compose = yaml("docker-compose.yml");
    let services = compose["services"].as_mapping().unwrap();
    for name in ["target", "load", "prometheus", "grafana"] {
        assert!(services.contains_key(name), "service {name}");
    }
    for (name, svc) in services {
        let name = name.as_str().unwrap();
        if let Some(ctx) = svc["build"].as_str() {
            let dockerfile = root().join(ctx).join("Dockerfile");
            assert!(dockerfile.exists(), "{name}: {}", dockerfile.display());
            let command = strings(&svc["command"]);
            let mut args = vec!["stampede".to_string()];
            args.extend(command.iter().cloned());
            let cli =
                stampede::cli::Cli::try_parse_from(&args).unwrap_or_else(|e| panic!("{name}: {e}"));
            if let stampede::cli::Command::Run { scenario, .. } = &cli.command {
                assert!(
                    root().join(scenario).exists(),
                    "{name}: {}",
                    scenario.display()
                );
            }
            if let stampede::cli::Command::DemoTarget { listen, .. } = &cli.command {
                let ports = strings(&svc["ports"]);
                assert!(
                    ports.contains(&format!("{0}:{0}", listen.port())),
                    "{name}: ports {ports:?} vs {listen}"
                );
            }
        }
        for v in strings(&svc["volumes"]) {
            let host = v.split(':').next().unwrap();
            if host.starts_with("./") && !host.starts_with("./results") {
                assert!(root().join(host).exists(), "{name}: volume {host}");
            }
        }
    }
    // Every COPY source of the Dockerfile exists.
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    for line in dockerfile
        .lines()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from"))
    {
        let parts: Vec<&str> = line.split_whitespace().collect();
        for src in &parts[1..parts.len() - 1] {
            assert!(root().join(src).exists(), "Dockerfile: {src}");
        }
    }
}

/// The port the `target` service's wallet listens on, from its own `--listen`.
fn wallet_port() -> u16 {
    let compose = yaml("docker-compose.yml");
    let mut args = vec!["stampede".to_string()];
    args.extend(strings(&compose["services"]["target"]["command"]));
    match stampede::cli::Cli::try_parse_from(&args).unwrap().command {
        stampede::cli::Command::DemoTarget { listen, .. } => listen.port(),
        _ => panic!("the target service does not run demo-target"),
    }
}

#[test]
fn the_load_service_aims_at_the_port_the_wallet_listens_on() {
    let compose = yaml("docker-compose.yml");
    let command = strings(&compose["services"]["load"]["command"]);
    let at = command.iter().position(|a| a == "--target").unwrap();
    assert_eq!(command[at + 1], format!("http://target:{}", wallet_port()));
}

/// Copies what the Dockerfile's build stage copies (`COPY src dst` relative to its WORKDIR) into
/// a fresh folder, as the image build would see it.
fn build_stage_context() -> tempfile::TempDir {
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    let ctx = tempfile::tempdir().unwrap();
    let stage = dockerfile
        .lines()
        .skip_while(|l| !(l.starts_with("FROM ") && l.contains(" AS build")))
        .skip(1)
        .take_while(|l| !l.starts_with("FROM "));
    for line in stage.filter(|l| l.starts_with("COPY ")) {
        let parts: Vec<&str> = line.split_whitespace().skip(1).collect();
        let (dst, srcs) = parts.split_last().unwrap();
        for src in srcs {
            let to = if dst.ends_with('/') || *dst == "./" {
                ctx.path()
                    .join(dst)
                    .join(Path::new(src).file_name().unwrap())
            } else {
                ctx.path().join(dst)
            };
            copy(&root().join(src), &to);
        }
    }
    ctx
}

fn copy(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            copy(&e.path(), &to.join(e.file_name()));
        }
    } else {
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(from, to).unwrap();
    }
}

#[test]
fn cargo_accepts_the_dockerfile_build_context() {
    // No container engine runs here, so build what can be checked: the exact files the build
    // stage copies must form a manifest cargo parses (every [[bench]] and [[test]] file present)
    // and resolves with the lock file, as `cargo build --locked` in the image does. Cargo is
    // stopped once it starts compiling: every error about the context comes before that.
    use std::io::BufRead;
    let ctx = build_stage_context();
    let mut cargo = std::process::Command::new(env!("CARGO"))
        .args(["check", "--locked", "--offline", "--lib"])
        .current_dir(ctx.path())
        .env("CARGO_TARGET_DIR", ctx.path().join("target"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut said = Vec::new();
    let mut started = false;
    for line in std::io::BufReader::new(cargo.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        if line.trim_start().starts_with("Compiling") || line.trim_start().starts_with("Checking") {
            started = true;
            break;
        }
        said.push(line);
    }
    let _ = cargo.kill();
    let _ = cargo.wait();
    assert!(
        started,
        "cargo rejects the Docker build context:\n{}",
        said.join("\n")
    );
}

#[test]
fn prometheus_scrapes_the_wallet_and_grafana_reads_prometheus() {
    let prom = yaml("deploy/prometheus/prometheus.yml");
    let targets = strings(&prom["scrape_configs"][0]["static_configs"][0]["targets"]);
    assert_eq!(targets, [format!("target:{}", wallet_port())]);
    assert_eq!(
        prom["scrape_configs"][0]["metrics_path"].as_str(),
        Some("/metrics")
    );
    let ds = yaml("deploy/grafana/provisioning/datasources/prometheus.yml");
    assert_eq!(
        ds["datasources"][0]["url"].as_str(),
        Some("http://prometheus:9090")
    );
    let dash = yaml("deploy/grafana/provisioning/dashboards/dashboards.yml");
    assert_eq!(
        dash["providers"][0]["options"]["path"].as_str(),
        Some("/var/lib/grafana/dashboards")
    );
}

#[test]
fn the_dashboard_queries_metrics_the_wallet_exports() {
    let cfg = stampede::demo::DemoConfig {
        auth_cost: 10,
        ..Default::default()
    };
    let (addr, _h) = stampede::demo::spawn(SocketAddr::from(([127, 0, 0, 1], 0)), cfg).unwrap();
    // Produce a pool sample so the histogram series exist, then read /metrics over a socket.
    let metrics = {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        let body = r#"{"user":"user00001","password":"password"}"#;
        write!(
            s,
            "POST /auth/login HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf).unwrap();
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        write!(
            s,
            "GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
        )
        .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        text
    };
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("deploy/grafana/dashboards/wallet.json")).unwrap(),
    )
    .unwrap();
    let re = regex::Regex::new(r"wallet_[a-z_]+").unwrap();
    let mut seen = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().unwrap() {
            for m in re.find_iter(t["expr"].as_str().unwrap()) {
                assert!(
                    metrics.contains(m.as_str()),
                    "the dashboard queries {}, which /metrics lacks",
                    m.as_str()
                );
                seen += 1;
            }
        }
    }
    assert!(seen >= 6);
}

#[test]
fn the_stampede_dashboard_queries_metrics_stampede_serves_where_prometheus_scrapes_them() {
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("deploy/grafana/dashboards/stampede.json")).unwrap(),
    )
    .unwrap();
    // Histogram series carry suffixes; the families are what the endpoint declares.
    let families: Vec<&str> = stampede::run::live::METRIC_NAMES
        .iter()
        .map(|n| n.trim_end_matches("_total"))
        .collect();
    let re = regex::Regex::new(r"stampede_[a-z_]+").unwrap();
    let mut seen = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().unwrap() {
            for m in re.find_iter(t["expr"].as_str().unwrap()) {
                let name = m
                    .as_str()
                    .trim_end_matches("_bucket")
                    .trim_end_matches("_sum")
                    .trim_end_matches("_count")
                    .trim_end_matches("_total");
                assert!(
                    families.contains(&name),
                    "the dashboard queries {}, which stampede does not serve",
                    m.as_str()
                );
                seen += 1;
            }
        }
    }
    assert!(seen >= 10);
    // Prometheus scrapes the load service at the address it listens on.
    let compose = yaml("docker-compose.yml");
    let command = strings(&compose["services"]["load"]["command"]);
    let at = command
        .iter()
        .position(|a| a == "--metrics-listen")
        .unwrap();
    let port = command[at + 1].rsplit(':').next().unwrap().to_string();
    let prom = yaml("deploy/prometheus/prometheus.yml");
    let targets: Vec<String> = prom["scrape_configs"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|j| strings(&j["static_configs"][0]["targets"]))
        .collect();
    assert!(targets.contains(&format!("load:{port}")), "{targets:?}");
}
