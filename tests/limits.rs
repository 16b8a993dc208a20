//! Operating limits of the generator's own machine: connection churn is counted, and running out
//! of ephemeral ports is reported as a generator-side problem, not as the target's errors.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::util::*;

fn churn_run(keep_alive: bool) -> stampede::report::RunResult {
    let srv = start_server(ServerConfig::default());
    let d = dir();
    let s = write_scenario(
        d.path(),
        &srv.url(),
        &format!(
            "defaults: {{ keep_alive: {keep_alive} }}\njourneys:\n  j: [ {{ name: ping, get: /ok }} ]\nflows:\n  f: {{ journey: j, vus: 2, iterations: 40 }}\n"
        ),
    );
    run_scenario(&s, &d.path().join("out")).1
}

#[test]
fn connection_churn_is_counted_and_reported() {
    let churned = churn_run(false);
    let g = churned.generator.as_ref().unwrap();
    assert_eq!(g.connections_opened, 40, "one connection per iteration");
    assert!(g.peak_connections_per_s > 0.0);
    let check = churned
        .self_checks
        .iter()
        .find(|c| c.check == "connection_churn")
        .unwrap();
    assert!(check.passed, "{}", check.detail);
    assert!(
        check.detail.contains("opened 40 connections"),
        "{}",
        check.detail
    );

    let kept = churn_run(true);
    assert_eq!(
        kept.generator.as_ref().unwrap().connections_opened,
        2,
        "one per VU"
    );
}

/// A server for a private network namespace: binds a port, then shrinks the namespace's ephemeral
/// port range to ten ports and turns off TIME_WAIT reuse (both are per-namespace settings), and
/// prints its port.
const NETNS_SERVER: &str = r#"
import http.server
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *a):
        pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
open("/proc/sys/net/ipv4/ip_local_port_range", "w").write("40000 40009")
open("/proc/sys/net/ipv4/tcp_tw_reuse", "w").write("0")
print(s.server_address[1], flush=True)
s.serve_forever()
"#;

#[test]
fn ephemeral_port_exhaustion_is_a_generator_problem() {
    if !root_or_skip("a private network namespace") {
        return;
    }
    let mut server = Command::new("unshare")
        .args([
            "-n",
            "sh",
            "-c",
            "ip link set lo up && exec python3 -c \"$0\"",
        ])
        .arg(NETNS_SERVER)
        .stdout(Stdio::piped())
        .spawn()
        .expect("unshare and python3");
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line.trim().parse().expect("the server's port");
    let d = dir();
    let s = write(
        d.path(),
        "s.yaml",
        &format!(
            "target: http://127.0.0.1:{port}\ndefaults: {{ keep_alive: false, on_error: continue }}\njourneys:\n  j: [ {{ name: ping, get: /, check: {{ status: 200 }} }} ]\nflows:\n  f: {{ journey: j, vus: 1, iterations: 30 }}\nthresholds:\n  f.ping: [ \"errors == 0\" ]\n"
        ),
    );
    let out = d.path().join("out");
    let netns = format!("--net=/proc/{}/ns/net", server.id());
    let run = Command::new("nsenter")
        .args([netns.as_str(), bin(), "run"])
        .args([s.to_str().unwrap(), "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let r = stampede::report::read_json(&out.join("results.json")).unwrap();
    let ping = step(&r, "f.ping");
    // Ten ports, one the server's: the rest are held in TIME_WAIT after one use each.
    let local = ping.errors.get("generator").copied().unwrap_or(0);
    assert!(local >= 15, "{:?}\n{stdout}", ping.errors);
    assert_eq!(
        local + ping.errors.get("connect").copied().unwrap_or(0),
        ping.failed
    );
    let g = r.generator.as_ref().unwrap();
    assert_eq!(g.local_ports, Some(10));
    assert_eq!(g.local_failures, local);
    let churn = r
        .self_checks
        .iter()
        .find(|c| c.check == "connection_churn")
        .unwrap();
    assert!(
        !churn.passed && churn.detail.contains("generator-side"),
        "{}",
        churn.detail
    );
    // The target did nothing wrong: its error threshold holds; the run is untrustworthy instead.
    assert!(r.thresholds.iter().all(|t| t.passed), "{:?}", r.thresholds);
    assert_eq!(run.status.code(), Some(3), "{stdout}");
    assert!(stdout.contains("ran out of local ports"), "{stdout}");
}
