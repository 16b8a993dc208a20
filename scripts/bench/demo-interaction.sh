#!/usr/bin/env bash
# The isolated-versus-mixed effect on the demo wallet: runs scenarios/usdt-launch.yaml three times
# against a fresh demo target (default settings) — sign-ups alone, traders alone, everything
# together — and prints p99 latency of login and exchange, with the wallet's pool-wait figures.
# Usage: scripts/bench/demo-interaction.sh [extra stampede run args, e.g. --duration 40s]
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --quiet
bin=target/release/stampede
work=$(mktemp -d)
server=
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT

start_target() {
  kill $server 2>/dev/null || true
  wait $server 2>/dev/null || true
  : > "$work/server.log"
  $bin demo-target --listen 127.0.0.1:0 "${TARGET_ARGS[@]}" 2> "$work/server.log" &
  server=$!
  for _ in $(seq 300); do
    addr=$(grep -o 'http://[0-9.:]*' "$work/server.log" || true)
    [[ -n $addr ]] && return
    sleep 0.1
  done
  echo "the demo target did not start"; cat "$work/server.log"; exit 1
}
TARGET_ARGS=(${DEMO_TARGET_ARGS:-})

phase() { # name, --only list
  start_target
  $bin run scenarios/usdt-launch.yaml --target "$addr" --only "$2" --out "$work/$1" --quiet --no-progress "${@:3}" || true
  curl_metrics=$(python3 - "$addr" <<'PY'
import sys, urllib.request
text = urllib.request.urlopen(sys.argv[1] + "/metrics", timeout=5).read().decode()
s = c = 0.0
for line in text.splitlines():
    if line.startswith("wallet_pool_wait_seconds_sum"): s = float(line.split()[-1])
    if line.startswith("wallet_pool_wait_seconds_count"): c = float(line.split()[-1])
print(f"{(s / c * 1000 if c else 0):.1f}")
PY
)
  python3 - "$work/$1/results.json" "$1" "$curl_metrics" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
def p(key, q):
    for f in r["flows"]:
        for s in f["steps"]:
            if s["key"] == key and s["latency"]:
                return s["latency"][q] / 1000
    return None
def err(key):
    for f in r["flows"]:
        for s in f["steps"]:
            if s["key"] == key:
                return 100.0 * s["failed"] / max(1, s["requests"])
    return None
cells = []
for key in ["signups.login", "traders.login", "traders.exchange"]:
    p50, p99 = p(key, "p50_us"), p(key, "p99_us")
    cells.append("-" if p99 is None else f"{p50:.0f} / {p99:.0f} ms ({err(key):.1f}% err)")
print(f"| {sys.argv[2]:<9} | " + " | ".join(cells) + f" | {sys.argv[3]} ms |")
PY
}

echo "| phase     | signups.login p50 / p99 | traders.login p50 / p99 | traders.exchange p50 / p99 | mean pool wait |"
echo "|---|---|---|---|---|"
phase signups signups "$@"
phase traders traders "$@"
phase mixed signups,traders,reconcile "$@"
