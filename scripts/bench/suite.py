#!/usr/bin/env python3
"""The peer benchmark suite (issue #7): stampede against wrk, hey, oha, k6 and Locust.

Target: nginx with one worker pinned to CPU 1, static JSON on 127.0.0.1; every generator pinned to
CPU 0. CPU is user+sys from /usr/bin/time, RSS its peak. Each workload runs `--runs` times; the
table gives the median and the min-max. Nothing leaves loopback: k6 runs with
--no-usage-report, Locust is headless with no web UI; wrk, hey and oha have no telemetry.

Run it through scripts/bench/run.sh, which installs what is missing.
"""

import argparse
import csv
import datetime
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
# STAMPEDE_BIN measures another build (a baseline copy) with the same workloads.
STAMPEDE = os.environ.get("STAMPEDE_BIN") or os.path.join(ROOT, "target", "release", "stampede")
# Goose is a library: its workloads are a small crate, built by run.sh (scripts/bench/goose).
GOOSE = os.path.join(ROOT, "target", "bench-goose", "release", "stampede-bench-goose")
# The floor (scripts/bench/floor.rs): one thread, one blocking socket, no runtime; built here.
FLOOR = os.path.join(ROOT, "target", "bench-floor", "floor")
GEN_CPU = "0"
TARGET_CPU = "1"

NGINX_CONF = """
worker_processes 1;
daemon off;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  keepalive_requests 100000000;
  keepalive_timeout 300s;
  client_body_temp_path {work};
  proxy_temp_path {work};
  fastcgi_temp_path {work};
  uwsgi_temp_path {work};
  scgi_temp_path {work};
  default_type application/json;
  server {{
    listen 127.0.0.1:{port} backlog=8192;
    location = /ping {{ return 200 '{{"ok":true}}'; }}
    location = /auth/login {{ return 200 '{{"token":"tok-5f3c9a7e1b"}}'; }}
    location = /wallet/balance {{ return 200 '{{"USDT":1000.5,"TON":20.25}}'; }}
    location = /exchange {{ return 200 '{{"status":"filled"}}'; }}
  }}
}}
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


TICK = os.sysconf("SC_CLK_TCK")
SAMPLE_S = 0.25


def cpu_ticks(pid):
    """utime+stime of pid and its threads, in clock ticks; None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return None


def timed(cmd, work, env=None, cwd=None, samples=None):
    """Runs cmd pinned to the generator CPU; returns (cpu_s, max_rss_kib, stdout, stderr).

    With `samples` (a list), appends the generator's CPU use in each SAMPLE_S window as a
    fraction of one core, read from /proc, so a start-up spike shows next to the steady state.
    """
    tf = os.path.join(work, "time.txt")
    full = ["/usr/bin/time", "-f", "%U %S %M", "-o", tf, "taskset", "-c", GEN_CPU] + cmd
    with open(os.path.join(work, "out.txt"), "w+") as out, open(os.path.join(work, "err.txt"), "w+") as err:
        p = subprocess.Popen(full, stdout=out, stderr=err, text=True, env=env, cwd=cwd)
        deadline = time.monotonic() + 600
        child, last = None, 0
        while p.poll() is None:
            if time.monotonic() > deadline:
                p.kill()
                raise RuntimeError(f"{cmd[0]} ran over 600 s")
            time.sleep(SAMPLE_S if samples is not None else 0.05)
            if samples is None:
                continue
            if child is None:
                # /usr/bin/time forks taskset, which execs the tool: the tool is time's child.
                try:
                    with open(f"/proc/{p.pid}/task/{p.pid}/children") as f:
                        child = int(f.read().split()[0])
                except (OSError, IndexError, ValueError):
                    continue
            t = cpu_ticks(child)
            if t is not None:
                samples.append((t - last) / TICK / SAMPLE_S)
                last = t
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    with open(tf) as f:
        u, s, m = f.read().split()[-3:]
    if p.returncode not in (0, 1, 3):
        sys.stderr.write(f"warning: {cmd[0]} exited {p.returncode}: {stderr[-800:]}\n")
    return float(u) + float(s), int(m), stdout, stderr


def spike(samples):
    """(peak, steady) CPU fractions: the busiest window of the first 3 s against the mean after."""
    head = samples[: int(3 / SAMPLE_S)]
    tail = samples[int(3 / SAMPLE_S): -1]
    if not head or not tail:
        return {}
    return {"start_peak_cpu": max(head), "steady_cpu": statistics.fmean(tail)}


class Bench:
    def __init__(self, work, base, wallet=None):
        self.work = work
        self.base = base
        self.wallet = wallet

    def path(self, name):
        return os.path.join(self.work, name)

    def write(self, name, text):
        with open(self.path(name), "w") as f:
            f.write(text)
        return self.path(name)

    # ---- stampede ---------------------------------------------------------------------------
    def stampede(self, yaml, base=None, sample=False):
        scen = self.write("s.yaml", f"target: {base or self.base}\ndefaults: {{ traceparent: false }}\n" + yaml)
        out = self.path("st-out")
        shutil.rmtree(out, ignore_errors=True)
        samples = [] if sample else None
        cpu, rss, _, err = timed([STAMPEDE, "run", scen, "--out", out, "--quiet", "--no-progress"], self.work,
                                 samples=samples)
        with open(os.path.join(out, "results.json")) as f:
            r = json.load(f)
        flow = r["flows"][0]
        reqs = sum(s["requests"] for s in flow["steps"])
        errs = sum(s["failed"] for s in flow["steps"])
        iters = flow["iterations_ok"] + flow["iterations_failed"]
        lat = [s["latency"] for s in flow["steps"] if s.get("latency")]
        return {
            "cpu": cpu, "rss": rss, "requests": reqs, "errors": errs, "iterations": iters,
            "duration": r["duration_s"], "planned": flow.get("planned", 0), "dropped": flow.get("dropped", 0),
            "p50_ms": lat[0]["p50_us"] / 1000 if lat else None,
            "p99_ms": lat[0]["p99_us"] / 1000 if lat else None,
            "lag_p99_ms": (flow.get("schedule_lag") or {}).get("p99_us", 0) / 1000,
            **spike(samples or []),
        }

    # ---- wrk --------------------------------------------------------------------------------
    def wrk(self, conns, secs):
        cpu, rss, out, _ = timed(["wrk", "-t1", f"-c{conns}", f"-d{secs}s", self.base + "/ping"], self.work)
        n = int(re.search(r"(\d+) requests in", out).group(1))
        return {"cpu": cpu, "rss": rss, "requests": n, "duration": secs}

    # ---- hey --------------------------------------------------------------------------------
    def hey(self, conns, secs, rate=None):
        cmd = ["hey", "-z", f"{secs}s", "-c", str(conns)]
        if rate:
            cmd += ["-q", str(rate / conns)]
        cpu, rss, out, _ = timed(cmd + [self.base + "/ping"], self.work)
        n = sum(int(x) for x in re.findall(r"\[\d{3}\]\s+(\d+) responses", out))
        res = {"cpu": cpu, "rss": rss, "requests": n, "duration": secs}
        m = re.search(r"99%+ in ([\d.]+) secs", out)
        if m:
            res["p99_ms"] = float(m.group(1)) * 1000
        m = re.search(r"50%+ in ([\d.]+) secs", out)
        if m:
            res["p50_ms"] = float(m.group(1)) * 1000
        return res

    # ---- oha --------------------------------------------------------------------------------
    def oha(self, conns, secs, rate=None):
        cmd = ["oha", "-z", f"{secs}s", "-c", str(conns), "--no-tui", "--output-format", "json"]
        if rate:
            cmd += ["-q", str(rate), "--latency-correction"]
        cpu, rss, out, _ = timed(cmd + [self.base + "/ping"], self.work)
        j = json.loads(out)
        n = sum(j.get("statusCodeDistribution", {}).values())
        res = {"cpu": cpu, "rss": rss, "requests": n, "duration": secs}
        lp = j.get("latencyPercentiles", {})
        if lp.get("p50") is not None:
            res["p50_ms"] = lp["p50"] * 1000
            res["p99_ms"] = lp["p99"] * 1000
        return res

    # ---- k6 ---------------------------------------------------------------------------------
    def k6(self, script, secs=None, base=None, sample=False):
        js = self.write("k6.js", script.replace("BASE", base or self.base))
        summary = self.path("k6-summary.json")
        env = dict(os.environ, K6_NO_USAGE_REPORT="true")
        samples = [] if sample else None
        cpu, rss, _, _ = timed(["k6", "run", "--no-usage-report", "--quiet", "--summary-export", summary, js], self.work,
                               env=env, samples=samples)
        with open(summary) as f:
            m = json.load(f)["metrics"]
        res = {
            "cpu": cpu, "rss": rss,
            "requests": int(m["http_reqs"]["count"]),
            "iterations": int(m.get("iterations", {}).get("count", 0)),
            "errors": int(m.get("http_req_failed", {}).get("passes", 0)),
            "dropped": int(m.get("dropped_iterations", {}).get("count", 0)),
            "duration": secs,
            **spike(samples or []),
        }
        d = m.get("http_req_duration", {})
        if "med" in d:
            res["p50_ms"] = d["med"]
        if "p(99)" in d:
            res["p99_ms"] = d["p(99)"]
        return res

    # ---- Goose ------------------------------------------------------------------------------
    def goose(self, workload, users, secs, wait_ms=None, throttle=None, sample=False):
        report = self.path("goose.json")
        if os.path.exists(report):
            os.remove(report)
        env = dict(os.environ, GOOSE_WORKLOAD=workload)
        if wait_ms is not None:
            env["GOOSE_WAIT_MS"] = str(wait_ms)
        # All users start within the first second; no telnet or WebSocket controller is opened.
        cmd = [GOOSE, "--host", self.base, "-u", str(users), "-r", str(users), "-t", f"{secs}s",
               "-q", "--no-telnet", "--report-file", report]
        if throttle:
            cmd += ["--throttle-requests", str(throttle)]
        samples = [] if sample else None
        cpu, rss, _, _ = timed(cmd, self.work, env=env, samples=samples)
        with open(report) as f:
            reqs = json.load(f)["raw_metrics"]["requests"].values()
        n = sum(r["success_count"] + r["fail_count"] for r in reqs)
        res = {"cpu": cpu, "rss": rss, "requests": n, "errors": sum(r["fail_count"] for r in reqs),
               "duration": secs, **spike(samples or [])}
        if workload == "journey":
            res["iterations"] = n // 3
        return res

    # ---- the floor --------------------------------------------------------------------------
    def floor(self, mode, rate, secs):
        host = self.base.removeprefix("http://")
        cpu, rss, out, _ = timed([FLOOR, mode, host, str(rate), str(secs)], self.work)
        j = json.loads(out)
        if j["errors"]:
            # A floor with failures did less work than the others: not a floor.
            raise RuntimeError(f"{j['errors']} failed exchanges")
        return {"cpu": cpu, "rss": rss, "requests": j["requests"], "iterations": j["journeys"],
                "errors": 0, "late": j["late"], "duration": j["elapsed"]}

    # ---- Locust -----------------------------------------------------------------------------
    def locust(self, body, users, secs, base=None, sample=False):
        py = self.write("locustfile.py", body)
        prefix = self.path("locust")
        samples = [] if sample else None
        cpu, rss, _, _ = timed([
            "locust", "-f", py, "--headless", "-u", str(users), "-r", str(max(users, 1)),
            "-t", f"{secs}s", "--host", base or self.base, "--csv", prefix, "--only-summary",
            "--loglevel", "ERROR", "--skip-log-setup", "--exit-code-on-error", "0",
        ], self.work, samples=samples)
        reqs = errs = 0
        with open(prefix + "_stats.csv") as f:
            for row in csv.DictReader(f):
                if row["Name"] == "Aggregated":
                    reqs = int(row["Request Count"])
                    errs = int(row["Failure Count"])
        return {"cpu": cpu, "rss": rss, "requests": reqs, "errors": errs, "duration": secs, **spike(samples or [])}


W3_STAMPEDE_JOURNEY = """
journeys:
  trade:
    - name: login
      post: /auth/login
      json: { user: "u{{ vu }}", password: secret }
      extract: { token: $.token }
    - name: balance
      get: /wallet/balance
      headers: { authorization: "Bearer {{ token }}" }
      extract: { usdt: $.USDT }
    - name: exchange
      post: /exchange
      headers: { authorization: "Bearer {{ token }}" }
      json: { from: USDT, to: TON, amount: "{{ usdt }}" }
      check: { status: 200 }
"""

K6_JOURNEY = """
  const login = http.post('BASE/auth/login', JSON.stringify({ user: 'u' + __VU, password: 'secret' }),
    { headers: { 'Content-Type': 'application/json' } });
  const token = login.json('token');
  const bal = http.get('BASE/wallet/balance', { headers: { Authorization: 'Bearer ' + token } });
  const usdt = bal.json('USDT');
  http.post('BASE/exchange', JSON.stringify({ from: 'USDT', to: 'TON', amount: usdt }),
    { headers: { Authorization: 'Bearer ' + token, 'Content-Type': 'application/json' } });
"""

LOCUST_JOURNEY = """
    @task
    def trade(self):
        token = self.client.post("/auth/login", json={"user": "u", "password": "secret"}).json()["token"]
        auth = {"Authorization": "Bearer " + token}
        usdt = self.client.get("/wallet/balance", headers=auth).json()["USDT"]
        self.client.post("/exchange", json={"from": "USDT", "to": "TON", "amount": usdt}, headers=auth)
"""


# W6: the journey against the built-in demo wallet, which needs real state: a user from the
# wallet's own list, the token it issues, an amount from that user's balance, and the body signed
# with HMAC-SHA256 keyed by the token (the wallet rejects a bad signature with 401).
W6_RATE = 100
W6_STAMPEDE_JOURNEY = f"""
data:
  users: {{ csv: {ROOT}/scenarios/data/users.csv, pick: sequential }}
scripts: [{ROOT}/scripts/wallet.rhai]
journeys:
  trade:
    - name: login
      post: /auth/login
      json: {{ user: "{{{{ users.user }}}}", password: "{{{{ users.password }}}}" }}
      extract: {{ token: $.token }}
    - name: balance
      get: /wallet/balance
      headers: {{ authorization: "Bearer {{{{ token }}}}" }}
      extract: {{ usdt: $.USDT }}
    - script: |
        payload = json_stringify(#{{ from: "USDT", to: "TON", amount: pick_amount(usdt) }});
        signature = sign(token, payload);
    - name: exchange
      post: /exchange
      headers:
        authorization: "Bearer {{{{ token }}}}"
        content-type: application/json
        x-signature: "{{{{ signature }}}}"
      body: "{{{{ payload }}}}"
      check: {{ status: 200, json: {{ $.status: filled }} }}
flows:
  f: {{ journey: trade, rate: {W6_RATE}/s, duration: 15s, max_vus: 500 }}
"""

K6_W6 = """import http from 'k6/http';
import crypto from 'k6/crypto';
export const options = { scenarios: { s: { executor: 'constant-arrival-rate',
  rate: RATE, timeUnit: '1s', duration: '15s', preAllocatedVUs: 50, maxVUs: 500 } } };
export default function () {
  const user = 'user' + String(((__VU * 1000 + __ITER) % 10000) + 1).padStart(5, '0');
  const login = http.post('BASE/auth/login', JSON.stringify({ user: user, password: 'password' }),
    { headers: { 'Content-Type': 'application/json' } });
  const token = login.json('token');
  const bal = http.get('BASE/wallet/balance', { headers: { Authorization: 'Bearer ' + token } });
  const amount = Math.round(Math.min(bal.json('USDT') * 0.01, 10) * 100) / 100;
  const body = JSON.stringify({ from: 'USDT', to: 'TON', amount: amount });
  http.post('BASE/exchange', body, { headers: { Authorization: 'Bearer ' + token,
    'Content-Type': 'application/json', 'X-Signature': crypto.hmac('sha256', token, body, 'hex') } });
}
""".replace("RATE", str(W6_RATE))

LOCUST_W6 = f"""import hashlib, hmac, json, random
from locust import FastHttpUser, task, constant_pacing
class U(FastHttpUser):
    wait_time = constant_pacing(1)
    @task
    def trade(self):
        user = "user%05d" % random.randint(1, 10000)
        token = self.client.post("/auth/login", json={{"user": user, "password": "password"}}).json()["token"]
        auth = {{"Authorization": "Bearer " + token}}
        usdt = self.client.get("/wallet/balance", headers=auth).json()["USDT"]
        body = json.dumps({{"from": "USDT", "to": "TON", "amount": round(min(usdt * 0.01, 10), 2)}})
        sig = hmac.new(token.encode(), body.encode(), hashlib.sha256).hexdigest()
        self.client.post("/exchange", data=body,
                         headers=dict(auth, **{{"Content-Type": "application/json", "X-Signature": sig}}))
"""


def locust_file(wait, body):
    return f"""from locust import FastHttpUser, task, {wait.split('(')[0]}
class U(FastHttpUser):
    wait_time = {wait}
{body}"""


LOCUST_PING = """
    @task
    def ping(self):
        self.client.get("/ping")
"""


def workloads(b, only):
    """Yields (workload, tool, thunk)."""
    def want(w):
        return not only or w in only

    if want("W1"):
        yield "W1", "stampede", lambda: b.stampede(
            "journeys:\n  j: [ { name: ping, get: /ping } ]\nflows:\n  f: { journey: j, vus: 50, duration: 10s }\n")
        yield "W1", "wrk", lambda: b.wrk(50, 10)
        yield "W1", "oha", lambda: b.oha(50, 10)
        yield "W1", "hey", lambda: b.hey(50, 10)
        yield "W1", "goose", lambda: b.goose("ping", 50, 10)
        yield "W1", "k6", lambda: b.k6(
            "import http from 'k6/http';\nexport const options = { vus: 50, duration: '10s' };\n"
            "export default function () { http.get('BASE/ping'); }\n", 10)
        yield "W1", "locust", lambda: b.locust(locust_file("constant(0)", LOCUST_PING), 50, 10)
    if want("W2"):
        yield "W2", "stampede", lambda: b.stampede(
            "journeys:\n  j: [ { name: ping, get: /ping } ]\nflows:\n  f: { journey: j, rate: 4000/s, duration: 15s, max_vus: 500 }\n")
        yield "W2", "oha", lambda: b.oha(50, 15, rate=4000)
        yield "W2", "floor", lambda: b.floor("ping", 4000, 15)
        yield "W2", "hey", lambda: b.hey(50, 15, rate=4000)
        yield "W2", "goose", lambda: b.goose("ping", 50, 15, throttle=4000)
        yield "W2", "k6", lambda: b.k6(
            "import http from 'k6/http';\nexport const options = { scenarios: { s: { executor: 'constant-arrival-rate',"
            " rate: 4000, timeUnit: '1s', duration: '15s', preAllocatedVUs: 200, maxVUs: 1000 } } };\n"
            "export default function () { http.get('BASE/ping'); }\n", 15)
        yield "W2", "locust", lambda: b.locust(locust_file("constant_throughput(20)", LOCUST_PING), 200, 15)
    if want("W3"):
        yield "W3", "stampede", lambda: b.stampede(
            W3_STAMPEDE_JOURNEY + "flows:\n  f: { journey: trade, rate: 500/s, duration: 15s, max_vus: 500 }\n")
        yield "W3", "k6", lambda: b.k6(
            "import http from 'k6/http';\nexport const options = { scenarios: { s: { executor: 'constant-arrival-rate',"
            " rate: 500, timeUnit: '1s', duration: '15s', preAllocatedVUs: 100, maxVUs: 1000 } } };\n"
            "export default function () {" + K6_JOURNEY + "}\n")
        yield "W3", "floor", lambda: b.floor("journey", 500, 15)
        yield "W3", "locust", lambda: b.locust(locust_file("constant_pacing(1)", LOCUST_JOURNEY), 500, 15)
        yield "W3", "goose", lambda: b.goose("journey", 500, 15, wait_ms=1000)
    if want("W4"):
        for vus in (1, 2000):
            yield f"W4@{vus}", "stampede", lambda vus=vus: b.stampede(
                W3_STAMPEDE_JOURNEY.replace("      check: { status: 200 }\n", "      check: { status: 200 }\n    - think: 1s\n")
                + f"flows:\n  f: {{ journey: trade, vus: {vus}, duration: 20s }}\n", sample=True)
            yield f"W4@{vus}", "k6", lambda vus=vus: b.k6(
                "import http from 'k6/http';\nimport { sleep } from 'k6';\n"
                f"export const options = {{ vus: {vus}, duration: '20s' }};\n"
                "export default function () {" + K6_JOURNEY + " sleep(1); }\n", sample=True)
            yield f"W4@{vus}", "locust", lambda vus=vus: b.locust(
                locust_file("constant(1)", LOCUST_JOURNEY), vus, 20, sample=True)
            yield f"W4@{vus}", "goose", lambda vus=vus: b.goose("journey", vus, 20, wait_ms=1000, sample=True)
    if want("W6") and b.wallet:
        yield "W6", "stampede", lambda: b.stampede(W6_STAMPEDE_JOURNEY, base=b.wallet)
        yield "W6", "k6", lambda: b.k6(K6_W6, 15, base=b.wallet)
        yield "W6", "locust", lambda: b.locust(LOCUST_W6, W6_RATE, 15, base=b.wallet)
    if want("W5"):
        for rate in (5000, 20000, 50000):
            yield f"W5@{rate}", "stampede", lambda rate=rate: b.stampede(
                "journeys:\n  j: [ { name: ping, get: /ping } ]\n"
                f"flows:\n  f: {{ journey: j, rate: {rate}/s, duration: 10s, max_vus: 2000 }}\n")


def med(rows, key):
    vals = [r[key] for r in rows if r.get(key) is not None]
    if not vals:
        return None, None, None
    return statistics.median(vals), min(vals), max(vals)


def fmt(v, digits=3):
    if v is None:
        return "–"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{digits}g}" if digits else f"{v:.0f}"


def span(rows, key, digits=3):
    m, lo, hi = med(rows, key)
    if m is None:
        return "–"
    if lo == hi:
        return fmt(m, digits)
    return f"{fmt(m, digits)} ({fmt(lo, digits)}–{fmt(hi, digits)})"


def derive(w, r):
    r = dict(r)
    if r.get("requests"):
        r["cpu_per_10k"] = r["cpu"] / r["requests"] * 10000
    dur = r.get("duration")
    if w in ("W1", "W2") and dur:
        r["rps"] = r["requests"] / dur
    if w in ("W3", "W6") and r.get("iterations"):
        r["cpu_per_1k_journeys"] = r["cpu"] / r["iterations"] * 1000
    if w.startswith("W5") and r.get("planned"):
        r["rate_error_pct"] = (r["planned"] - r["iterations"]) / r["planned"] * 100
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--only", nargs="*", default=[], help="workloads, e.g. W1 W3")
    ap.add_argument("--tools", nargs="*", default=[], help="only these tools")
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "benchmarks.md"))
    ap.add_argument("--json", default=None, help="also write raw results here")
    ap.add_argument("--from-json", nargs="*", default=[],
                    help="write the report from raw results saved by --json, running nothing; "
                         "files for different workloads merge (a workload in two files: the last wins)")
    a = ap.parse_args()
    if a.from_json:
        merged = {}
        for path in a.from_json:
            with open(path) as f:
                merged.update(json.load(f))
        a.runs = max((len(rows) for tools in merged.values() for rows in tools.values()), default=0)
        # The figures date from when they were saved, not from this rendering.
        a.date = datetime.datetime.fromtimestamp(max(os.path.getmtime(p) for p in a.from_json),
                                                 datetime.timezone.utc)
        report(merged, a)
        return

    if (not a.tools or "floor" in a.tools) and (not a.only or {"W2", "W3"} & set(a.only)):
        os.makedirs(os.path.dirname(FLOOR), exist_ok=True)
        if os.path.exists(FLOOR):
            os.remove(FLOOR)  # a failed build must not leave an old floor to be measured
        try:
            subprocess.run(["rustc", "-C", "opt-level=3", "--edition", "2024",
                            os.path.join(ROOT, "scripts", "bench", "floor.rs"), "-o", FLOOR], check=True)
        except (OSError, subprocess.CalledProcessError) as e:
            print(f"the floor did not build ({e}): its rows are left out", file=sys.stderr)
    work = tempfile.mkdtemp(prefix="stampede-bench-")
    port = free_port()
    with open(os.path.join(work, "nginx.conf"), "w") as f:
        f.write(NGINX_CONF.format(work=work, port=port))
    nginx = subprocess.Popen(["taskset", "-c", TARGET_CPU, "nginx", "-c", os.path.join(work, "nginx.conf")],
                             stderr=subprocess.DEVNULL)
    # The demo wallet for W6, on the target's CPU: cheap logins (1,000 PBKDF2 rounds) and no
    # simulated accounting wait, so that the generator's cost is what the workload measures.
    wallet_port = free_port()
    wallet = subprocess.Popen(["taskset", "-c", TARGET_CPU, STAMPEDE, "demo-target", "--listen",
                               f"127.0.0.1:{wallet_port}", "--auth-cost", "1000", "--accounting-ms", "0"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for p in (port, wallet_port):
            for _ in range(600):
                try:
                    socket.create_connection(("127.0.0.1", p), timeout=0.2).close()
                    break
                except OSError:
                    time.sleep(0.05)
        b = Bench(work, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{wallet_port}")
        results = {}
        for _ in range(a.runs):
            for w, tool, thunk in workloads(b, a.only):
                if a.tools and tool not in a.tools:
                    continue
                if tool == "goose" and not os.path.exists(GOOSE) or \
                        tool == "floor" and not os.path.exists(FLOOR) or \
                        tool not in ("stampede", "goose", "floor") and not shutil.which(tool):
                    print(f"{w} {tool}: not installed, skipped", file=sys.stderr)
                    continue
                try:
                    r = derive(w.split("@")[0] if w.startswith("W4") else w, thunk())
                except Exception as e:  # one tool failing must not lose the others' figures
                    print(f"{w} {tool}: failed: {e}", file=sys.stderr)
                    continue
                results.setdefault(w, {}).setdefault(tool, []).append(r)
                print(f"{w:9} {tool:9} " + " ".join(f"{k}={fmt(v) if isinstance(v, float) else v}" for k, v in r.items()), file=sys.stderr)
        if a.json:
            with open(a.json, "w") as f:
                json.dump(results, f, indent=1)
        report(results, a)
    finally:
        for p in (nginx, wallet):
            p.terminate()
            p.wait()
        shutil.rmtree(work, ignore_errors=True)


def version(cmd):
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
        return (p.stdout or p.stderr).strip().splitlines()[0]
    except Exception:
        return "not installed"


def report(res, a):
    def rows(w, t):
        return res.get(w, {}).get(t, [])

    def m(w, t, k):
        return med(rows(w, t), k)[0]

    def ratio(w, t, k, peer):
        x, y = m(w, t, k), m(w, peer, k)
        return f"{x / y:.2f}×" if x and y else "–"

    def journey_rows(w):
        for t in ("stampede", "k6", "floor", "locust", "goose"):
            r = rows(w, t)
            if not r:
                continue
            if t == "locust":
                # Locust counts requests, not journeys; each journey is three requests.
                for x in r:
                    x["iterations"] = x["requests"] // 3
                    x["cpu_per_1k_journeys"] = x["cpu"] / max(x["iterations"], 1) * 1000
            lines.append(f"| {t} | {span(r, 'iterations', 5)} | {span(r, 'errors')} | {span(r, 'cpu_per_1k_journeys')} | "
                         f"{ratio(w, 'stampede', 'cpu_per_1k_journeys', t) if t != 'stampede' else ''} |")

    def floor_line(w, k, peer):
        # The floor's own ratio to the peer bounds what any generator's ratio can be here.
        if rows(w, "floor") and rows(w, peer):
            lines.extend(["", f"The floor (`scripts/bench/floor.rs`: one thread, one blocking connection, no runtime,"
                          f" no histograms, nothing kept) ÷ {peer}: {ratio(w, 'floor', k, peer)}. A generator that"
                          " schedules, parses and records more than this loop does spends more than it does."])

    lines = []
    now = (getattr(a, "date", None) or datetime.datetime.now(datetime.timezone.utc)).strftime("%Y-%m-%d %H:%M UTC")
    cpu_model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu_model = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except Exception:
        pass
    lines += [
        "# Benchmarks",
        "",
        "Written by `scripts/bench/run.sh` (the suite in `scripts/bench/suite.py`); do not edit by hand.",
        "",
        f"- Date: {now}; {a.runs} runs per cell, median with min–max in brackets.",
        f"- Machine: {os.cpu_count()} CPUs ({cpu_model}), {platform.system()} {platform.release()}.",
        "- Target: nginx, one worker pinned to CPU 1, static JSON on 127.0.0.1; each generator pinned to CPU 0.",
        "- CPU: user+sys seconds of the generator process from `/usr/bin/time`; RSS is its peak.",
        f"- Versions: {version([STAMPEDE, '--version'])}; {version(['wrk', '-v'])}; {version(['oha', '--version'])}; "
        f"hey (Debian); {version([GOOSE, '--version'])}; {version(['k6', 'version'])}; Locust {version(['locust', '--version'])}; {version(['nginx', '-v'])}.",
        "",
        "## W1: GET /ping, closed, 50 connections, 10 s",
        "",
        "| tool | requests/s | CPU s per 10k requests | stampede ÷ tool (CPU per request) |",
        "|---|---|---|---|",
    ]
    for t in ("stampede", "wrk", "oha", "hey", "goose", "k6", "locust"):
        if rows("W1", t):
            lines.append(f"| {t} | {span(rows('W1', t), 'rps')} | {span(rows('W1', t), 'cpu_per_10k')} | "
                         f"{ratio('W1', 'stampede', 'cpu_per_10k', t) if t != 'stampede' else ''} |")
    lines += [
        "",
        "## W2: GET /ping, open model at 4,000/s, 15 s",
        "",
        "| tool | achieved/s | CPU s per 10k requests | p50 ms | p99 ms | stampede ÷ tool (CPU) |",
        "|---|---|---|---|---|---|",
    ]
    for t in ("stampede", "oha", "floor", "hey", "goose", "k6", "locust"):
        if rows("W2", t):
            lines.append(f"| {t} | {span(rows('W2', t), 'rps', 5)} | {span(rows('W2', t), 'cpu_per_10k')} | "
                         f"{span(rows('W2', t), 'p50_ms')} | {span(rows('W2', t), 'p99_ms')} | "
                         f"{ratio('W2', 'stampede', 'cpu_per_10k', t) if t != 'stampede' else ''} |")
    floor_line("W2", "cpu_per_10k", "oha")
    lines += [
        "",
        "## W3: login → token → balance (Bearer) → exchange (value from the balance), 500 journeys/s, 15 s",
        "",
        "stampede and k6 run an open model; Locust paces 500 users at one journey per second; Goose has no",
        "pacing, so its 500 users wait 1 s after each journey (a little under 500 journeys/s).",
        "",
        "| tool | journeys | errors | CPU s per 1k journeys | stampede ÷ tool |",
        "|---|---|---|---|---|",
    ]
    journey_rows("W3")
    floor_line("W3", "cpu_per_1k_journeys", "k6")
    lines += [
        "",
        "## W4: 2,000 virtual users looping the W3 journey with 1 s think time, 20 s",
        "",
        "Marginal RSS per VU = (peak RSS at 2,000 VUs − peak RSS at 1 VU) / 1,999.",
        "",
        "| tool | peak RSS, 1 VU (MiB) | peak RSS, 2,000 VUs (MiB) | KiB per VU | CPU s at 2,000 VUs |",
        "|---|---|---|---|---|",
    ]
    for t in ("stampede", "k6", "locust", "goose"):
        one, many = rows("W4@1", t), rows("W4@2000", t)
        if one and many:
            r1, r2 = med(one, "rss")[0], med(many, "rss")[0]
            lines.append(f"| {t} | {r1 / 1024:.1f} | {r2 / 1024:.1f} | {(r2 - r1) / 1999:.1f} | {span(many, 'cpu')} |")
    lines += [
        "",
        "Start-up: the generator's busiest quarter-second in the first 3 s against its mean use after",
        "(fractions of one core, 2,000 VUs; medians of the runs).",
        "",
        "| tool | start-up peak | steady |",
        "|---|---|---|",
    ]
    for t in ("stampede", "k6", "locust", "goose"):
        many = rows("W4@2000", t)
        if many and med(many, "start_peak_cpu")[0] is not None:
            lines.append(f"| {t} | {span(many, 'start_peak_cpu', 2)} | {span(many, 'steady_cpu', 2)} |")
    lines += [
        "",
        f"## W6: the journey against the built-in demo wallet, {W6_RATE} journeys/s, 15 s",
        "",
        "Real state: a user from the wallet's list logs in, the token it issues authorises the balance read, the",
        "amount comes from that balance and the exchange body is signed with HMAC-SHA256 keyed by the token.",
        "The wallet (`stampede demo-target --auth-cost 1000 --accounting-ms 0`) runs on the target CPU.",
        "stampede and k6 run an open model; Locust paces users at one journey per second.",
        "",
        "| tool | journeys | errors | CPU s per 1k journeys | stampede ÷ tool |",
        "|---|---|---|---|---|",
    ]
    journey_rows("W6")
    lines += [
        "",
        "## W5: rate accuracy of stampede's open model, one step, 10 s",
        "",
        "| target rate | achieved | shortfall | dropped | schedule lag p99 ms | CPU s |",
        "|---|---|---|---|---|---|",
    ]
    for rate in (5000, 20000, 50000):
        r = rows(f"W5@{rate}", "stampede")
        if r:
            for x in r:
                x["achieved"] = x["iterations"] / 10.0
            lines.append(f"| {rate:,}/s | {span(r, 'achieved', 5)}/s | {span(r, 'rate_error_pct')}% | {span(r, 'dropped')} | "
                         f"{span(r, 'lag_p99_ms')} | {span(r, 'cpu')} |")
    text = "\n".join(lines) + "\n"
    if a.out == "-":
        print(text)
    else:
        os.makedirs(os.path.dirname(a.out), exist_ok=True)
        existing = open(a.out).read() if os.path.exists(a.out) else ""
        # Keep the hand-written analysis below the generated tables.
        marker = "\n## Reading the figures"
        tail = existing[existing.index(marker):] if marker in existing else ""
        with open(a.out, "w") as f:
            f.write(text + tail)
        print(text)


if __name__ == "__main__":
    main()
