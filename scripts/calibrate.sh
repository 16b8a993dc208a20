#!/usr/bin/env bash
# Measures how often stampede's verdicts are wrong, on real runs against a local server (Python,
# 127.0.0.1 only), and prints the table docs/verdicts.md quotes:
#   compare, same load twice (A/A)              -> false alarms (exit 1) and undecided (exit 4)
#   compare, +30 ms / +10% / +2 ms (A/B)         -> detections (exit 1)
#   self-checks: a healthy run, paced users behind a slow target, a generator starved of CPU
#   trend: a flat server, a ramp of load on a flat server, a server that degrades with time
#   interact: two flows on independent resources, and two flows sharing a pool of two
#   batch split: a background job on its own resource, and one holding the live step's lock
# Usage: scripts/calibrate.sh [pairs per case, default 20] [seconds per run, default 5]
#        [runs per trend/interact/batch case, default 10]
# STAMPEDE_BIN measures another build; CASES="trend interact" runs only those sections (compare
# selfcheck trend interact batch demo). Takes about 50 minutes with the defaults on 2 CPUs.
set -euo pipefail
cd "$(dirname "$0")/.."
pairs=${1:-20}
secs=${2:-5}
runs=${3:-10}
if [[ -z ${STAMPEDE_BIN:-} ]]; then
  cargo build --release --quiet
fi
bin=${STAMPEDE_BIN:-$PWD/target/release/stampede}
work=$(mktemp -d)
hogs=()
trap 'kill $server ${fast:-} 2>/dev/null || true; for h in "${hogs[@]}"; do kill "$h" 2>/dev/null || true; done; rm -rf "$work"' EXIT

# /slow?ms=N sleeps N ms; /lock?ms=N and /pool?ms=N hold one of 1 or 2 slots for N ms (a
# database pool); /creep?id=X sleeps 2 ms plus 0.5 ms for every second since X was first seen.
cat > "$work/server.py" <<'PY'
import http.server, socketserver, threading, time, urllib.parse
locks = {"/lock": threading.Semaphore(1), "/pool": threading.Semaphore(2)}
first = {}
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        u = urllib.parse.urlparse(self.path)
        q = urllib.parse.parse_qs(u.query)
        ms = float(q.get("ms", ["0"])[0])
        if u.path == "/creep":
            t0 = first.setdefault(q.get("id", [""])[0], time.monotonic())
            ms = 2 + 0.5 * (time.monotonic() - t0)
        lock = locks.get(u.path)
        if lock:
            with lock:
                time.sleep(ms / 1000.0)
        elif ms > 0:
            time.sleep(ms / 1000.0)
        self.send_response(200); self.send_header("content-length", "2"); self.end_headers()
        self.wfile.write(b"{}")
    def log_message(self, *a): pass
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    request_queue_size = 1024
s = S(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
PY
taskset -c 1 python3 "$work/server.py" > "$work/port" &
server=$!
for _ in $(seq 50); do [[ -s $work/port ]] && break; sleep 0.1; done
url="http://127.0.0.1:$(cat "$work/port")"
# CASES picks sections (compare selfcheck trend interact batch demo); all by default.
want() { [[ -z ${CASES:-} || " $CASES " == *" $1 "* ]]; }
row() { printf '%-44s %6s %6s %6s   %s\n' "$@"; }

# One run of a 100/s flow against /slow?ms=$1 for $secs seconds; prints the results.json path.
run() {
  local ms=$1 name=$2
  cat > "$work/$name.yaml" <<YAML
target: $url
journeys:
  j: [ { name: a, get: "/slow?ms=$ms" } ]
flows:
  f: { journey: j, rate: 100/s, duration: ${secs}s, max_vus: 200 }
YAML
  "$bin" run "$work/$name.yaml" --out "$work/$name" --quiet >/dev/null 2>&1 || true
  echo "$work/$name/results.json"
}

# Compares `pairs` pairs of runs (base ms, new ms) with --fail-if "p99 > +10%"; prints the
# counts of exit 0, 1 and 4.
compare_case() {
  local b=$1 n=$2 pass=0 fail=0 undecided=0
  for i in $(seq "$pairs"); do
    local base new code
    base=$(run "$b" "b$i") ; new=$(run "$n" "n$i")
    code=0
    "$bin" compare "$base" "$new" --fail-if "p99 > +10%" >/dev/null 2>&1 || code=$?
    case $code in 0) pass=$((pass+1));; 1) fail=$((fail+1));; 4) undecided=$((undecided+1));; esac
  done
  echo "$pass $fail $undecided"
}

echo "stampede $("$bin" --version | awk '{print $2}'), $(nproc) CPUs, $(date -u +%F)"
if want compare; then
echo
row "compare ($pairs pairs of ${secs}s runs at 100/s)" pass fail undec "reading"
read -r p f u < <(compare_case 1 1)
row "A/A (1 ms, same load)" "$p" "$f" "$u" "false alarms $f of $pairs"
for c in "0 30 +30 ms (0 -> 30 ms)" "20 22 +10% (20 -> 22 ms)" "5 7 +2 ms (5 -> 7 ms)"; do
  set -- $c
  read -r p f u < <(compare_case "$1" "$2")
  shift 2
  row "A/B $*" "$p" "$f" "$u" "detected $f of $pairs"
done
fi

# Self-checks: how many of `pairs` runs exit 3, each run with `prefix` before the binary.
selfcheck_case() {
  local yaml=$1 prefix=$2 three=0
  for _ in $(seq "$pairs"); do
    local code=0
    $prefix "$bin" run "$yaml" --quiet >/dev/null 2>&1 || code=$?
    [[ $code == 3 ]] && three=$((three+1))
  done
  echo "$three"
}
cat > "$work/healthy.yaml" <<YAML
target: $url
journeys:
  j: [ { name: a, get: "/slow?ms=1" } ]
flows:
  f: { journey: j, rate: 100/s, duration: ${secs}s }
YAML
cat > "$work/paced.yaml" <<YAML
target: $url
defaults: { timeout: 5s }
journeys:
  j: [ { name: a, get: "/slow?ms=300" } ]
flows:
  f: { journey: j, vus: 10, pace: 100ms, duration: ${secs}s }
YAML
# A target fast enough that only the generator can be short of CPU: the demo wallet's /health
# (no database work), on CPU 1.
taskset -c 1 "$bin" demo-target --listen 127.0.0.1:0 2> "$work/fast.log" &
fast=$!
for _ in $(seq 100); do grep -q 'listening on' "$work/fast.log" 2>/dev/null && break; sleep 0.2; done
cat > "$work/busy.yaml" <<YAML
target: $(grep -o 'http://[0-9.:]*' "$work/fast.log" | tail -1)
defaults: { traceparent: false }
journeys:
  j: [ { name: a, get: /health } ]
flows:
  f: { journey: j, rate: 3000/s, duration: ${secs}s, max_vus: 500 }
YAML
if want selfcheck; then
echo
printf '%-44s %s\n' "self-check case ($pairs runs of ${secs}s)" "exit 3 (untrustworthy)"
printf '%-44s %s\n' "healthy run (100/s, 1 ms)" "$(selfcheck_case "$work/healthy.yaml" "") of $pairs"
printf '%-44s %s\n' "paced users behind a 300 ms target" "$(selfcheck_case "$work/paced.yaml" "") of $pairs"
# The generator pinned to CPU 0 beside seven busy loops on the same CPU (an eighth of it).
for _ in 1 2 3 4 5 6 7; do taskset -c 0 sh -c 'while :; do :; done' & hogs+=($!); done
printf '%-44s %s\n' "starved: 3000/s on an eighth of a CPU" "$(selfcheck_case "$work/busy.yaml" "taskset -c 0") of $pairs"
printf '%-44s %s\n' "starved: 100/s on an eighth of a CPU" "$(selfcheck_case "$work/healthy.yaml" "taskset -c 0") of $pairs"
for h in "${hogs[@]}"; do kill "$h" 2>/dev/null || true; done
hogs=()
printf '%-44s %s\n' "not starved: 3000/s on a whole CPU" "$(selfcheck_case "$work/busy.yaml" "taskset -c 0") of $pairs"
kill "$fast" 2>/dev/null || true
fi

# Runs `cmd args…` `runs` times, each with `--out $work/out --quiet` appended, and prints how many
# times the Python expression `pred` holds for the JSON file `file` it wrote (read as `d`).
count_runs() {
  local file=$1 pred=$2 n=0
  shift 2
  for _ in $(seq "$runs"); do
    rm -rf "$work/out"
    "$@" --out "$work/out" --quiet >/dev/null 2>&1 || true
    if python3 -c "import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if ($pred) else 1)" \
      "$work/out/$file" 2>/dev/null; then
      n=$((n+1))
    fi
  done
  echo "$n"
}

# Trend: how many of `runs` 30-second runs flag creeping latency. The ramp raises the load from
# 20/s to 200/s on a flat server; the degrading server adds 0.5 ms per second (from each run's
# first request: every run gets its own id).
trend_run() {
  local flow=$1 path=$2
  shift 2
  cat > "$work/trend.yaml" <<YAML
target: $url
journeys:
  j: [ { name: a, get: "${path//ID/$RANDOM$RANDOM}" } ]
flows:
  f: $flow
YAML
  "$bin" run "$work/trend.yaml" "$@"
}
trend_case() {
  count_runs results.json "any(t['creeping'] for t in d.get('trends', []))" trend_run "$1" "$2"
}
if want trend; then
echo
printf '%-44s %s\n' "trend case ($runs runs of 30s)" "flagged as creeping"
printf '%-44s %s\n' "flat server, flat load (100/s, 2 ms)" "$(trend_case "{ journey: j, rate: 100/s, duration: 30s }" "/slow?ms=2") of $runs"
printf '%-44s %s\n' "flat server, load ramping 20 -> 200/s" "$(trend_case "{ journey: j, rate: [ { at: 20/s, hold: 1s }, { to: 200/s, over: 29s } ], max_vus: 200 }" "/slow?ms=2") of $runs"
printf '%-44s %s\n' "degrading server (+0.5 ms/s), flat load" "$(trend_case "{ journey: j, rate: 100/s, duration: 30s }" "/creep?id=ID") of $runs"
fi

# Interaction: two flows at 110/s each (Poisson arrivals), 10 ms per request, on independent
# resources or sharing a pool of two slots (55% busy alone, over capacity together); counts the
# runs whose verdict names a flow. (At 80/s each with uniform arrivals the shared pool is 80% busy
# but never queues — deterministic arrivals and service — and "no harm" is the right verdict.)
interact_case() {
  cat > "$work/pair.yaml" <<YAML
target: $url
journeys:
  ja: [ { name: a, get: "$1" } ]
  jb: [ { name: b, get: "$2" } ]
flows:
  fa: { journey: ja, rate: 110/s, arrivals: poisson, duration: ${secs}s, max_vus: 300 }
  fb: { journey: jb, rate: 110/s, arrivals: poisson, duration: ${secs}s, max_vus: 300 }
YAML
  count_runs interaction.json "any(r['hurt_by'] for r in d)" \
    "$bin" interact "$work/pair.yaml" --settle 0s
}
if want interact; then
echo
printf '%-44s %s\n' "interact case ($runs runs, ${secs}s phases)" "a flow blamed"
printf '%-44s %s\n' "independent resources (10 ms each)" "$(interact_case "/slow?ms=10" "/slow?ms=10") of $runs"
printf '%-44s %s\n' "one pool of two slots (10 ms each)" "$(interact_case "/pool?ms=10" "/pool?ms=10") of $runs"
fi

# Batch split: a live flow (50/s, 2 ms under a one-slot lock) beside a background job (1/s,
# 200 ms) that takes the same lock or sleeps on its own; counts runs that report interference.
batch_case() {
  cat > "$work/batch.yaml" <<YAML
target: $url
journeys:
  live: [ { name: a, get: "/lock?ms=2" } ]
  job: [ { name: b, get: "$1" } ]
flows:
  users: { journey: live, rate: 50/s, duration: 10s }
  nightly: { journey: job, kind: background, rate: 1/s, duration: 10s }
YAML
  count_runs results.json \
    "any((s.get('batch') or {}).get('interferes') for f in d['flows'] for s in f['steps'])" \
    "$bin" run "$work/batch.yaml"
}
if want batch; then
echo
printf '%-44s %s\n' "batch case ($runs runs of 10s)" "interference reported"
printf '%-44s %s\n' "job on its own resource" "$(batch_case "/slow?ms=200") of $runs"
printf '%-44s %s\n' "job holding the live step's lock 200 ms" "$(batch_case "/lock?ms=200") of $runs"
fi

# The launch demo's interaction (release build, the wallet as shipped): each flow alone, all
# together and each pair, 10 s phases at 3× the scenario's rates; counts the runs whose verdicts
# name traders for signups' login and signups for every traders step.
demo_case() {
  local named=0
  "$bin" demo-target --listen 127.0.0.1:0 2> "$work/wallet.log" &
  local wallet=$!
  for _ in $(seq 100); do grep -q 'listening on' "$work/wallet.log" 2>/dev/null && break; sleep 0.2; done
  local addr
  addr=$(grep -o 'http://[0-9.:]*' "$work/wallet.log" | tail -1)
  for _ in $(seq "$1"); do
    rm -rf "$work/demo"
    "$bin" interact scenarios/usdt-launch.yaml --target "$addr" --pairs --duration 10s --scale 3 \
      --settle 1s --out "$work/demo" --quiet >/dev/null 2>&1 || true
    if python3 - "$work/demo/interaction.json" <<'PY'
import json, sys
rows = {r["key"]: r for r in json.load(open(sys.argv[1]))}
login = "traders" in rows.get("signups.login", {}).get("hurt_by", [])
traders = [r for k, r in rows.items() if k.startswith("traders.") and r["hurt_by"]]
sys.exit(0 if login and traders and all("signups" in r["hurt_by"] for r in traders) else 1)
PY
    then named=$((named+1)); fi
  done
  kill "$wallet" 2>/dev/null || true
  echo "$named"
}
demo_runs=$(( runs < 3 ? runs : 3 ))
if want demo; then
echo
printf '%-44s %s\n' "launch demo, interact --pairs ($demo_runs runs)" "traders named for signups and signups for traders"
printf '%-44s %s\n' "10 s phases at 3x rates" "$(demo_case "$demo_runs") of $demo_runs"
fi
