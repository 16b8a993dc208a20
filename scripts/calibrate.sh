#!/usr/bin/env bash
# Measures how often stampede's verdicts are wrong, on real runs against a local server (Python,
# 127.0.0.1 only), and prints the table docs/verdicts.md quotes:
#   compare, same load twice (A/A)          -> false alarms (exit 1) and undecided (exit 4)
#   compare, +30 ms / +10% / +2 ms (A/B)     -> detections (exit 1)
#   self-checks on a healthy run, through a target stall, and with the generator starved of CPU
# Usage: scripts/calibrate.sh [pairs per case, default 20] [seconds per run, default 5]
set -euo pipefail
cd "$(dirname "$0")/.."
pairs=${1:-20}
secs=${2:-5}
cargo build --release --quiet
bin=$PWD/target/release/stampede
work=$(mktemp -d)
trap 'kill $server 2>/dev/null || true; kill $hog 2>/dev/null || true; rm -rf "$work"' EXIT

cat > "$work/server.py" <<'PY'
import http.server, socketserver, sys, time, urllib.parse
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        q = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
        ms = float(q.get("ms", ["0"])[0])
        if ms > 0:
            time.sleep(ms / 1000.0)
        self.send_response(200); self.send_header("content-length", "2"); self.end_headers()
        self.wfile.write(b"{}")
    def log_message(self, *a): pass
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
s = S(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
PY
python3 "$work/server.py" > "$work/port" &
server=$!
for _ in $(seq 50); do [[ -s $work/port ]] && break; sleep 0.1; done
url="http://127.0.0.1:$(cat "$work/port")"

# One run of `rate` against /slow?ms=$1 for $secs seconds; prints the results.json path.
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

printf '%-34s %6s %6s %6s %9s\n' "case ($pairs pairs of ${secs}s runs)" pass fail undec "rate"
read -r p f u < <(compare_case 1 1)
printf '%-34s %6s %6s %6s %9s\n' "compare A/A (1 ms, same load)" "$p" "$f" "$u" "false alarms $((100*f/pairs))%"
for c in "0 30 +30 ms" "20 22 +10% (20 -> 22 ms)" "5 7 +2 ms (5 -> 7 ms)"; do
  set -- $c
  read -r p f u < <(compare_case "$1" "$2")
  shift 2
  printf '%-34s %6s %6s %6s %9s\n' "compare A/B $*" "$p" "$f" "$u" "detected $((100*f/pairs))%"
done

# Self-checks: exit 3 counts over `pairs` runs each.
selfcheck_case() {
  local yaml=$1 prefix=$2 three=0
  for i in $(seq "$pairs"); do
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
printf '%-34s %22s\n' "self-check case" "exit 3 (untrustworthy)"
printf '%-34s %22s\n' "healthy run" "$(selfcheck_case "$work/healthy.yaml" "") of $pairs"
printf '%-34s %22s\n' "paced users behind a slow target" "$(selfcheck_case "$work/paced.yaml" "") of $pairs"
# The generator pinned to one CPU beside a busy loop on the same CPU.
taskset -c 0 sh -c 'while :; do :; done' & hog=$!
printf '%-34s %22s\n' "generator starved (CPU hog)" "$(selfcheck_case "$work/healthy.yaml" "taskset -c 0") of $pairs"
kill $hog 2>/dev/null || true
