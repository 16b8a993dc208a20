#!/usr/bin/env bash
# Measures what stampede itself costs, against a local server (the demo wallet's /health route,
# which does no database work):
#   1. CPU seconds (user + sys) per 10,000 requests of a one-step open flow at 4,000/s for 15 s;
#   2. peak RSS of a closed flow of 2,000 VUs with 1 s think time for 20 s, and of 1 VU, to give
#      the marginal memory per virtual user.
# The target shares the machine; only stampede's own process is measured (/usr/bin/time).
# Usage: scripts/bench/engine-cost.sh [runs]   (default 3; prints each run and the median)
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-3}
cargo build --release --quiet
bin=target/release/stampede
work=$(mktemp -d)
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT

$bin demo-target --listen 127.0.0.1:0 --auth-cost 1 2> "$work/server.log" &
server=$!
for _ in $(seq 100); do
  addr=$(grep -o 'http://[0-9.:]*' "$work/server.log" || true)
  [[ -n $addr ]] && break
  sleep 0.1
done
[[ -n $addr ]] || { echo "the demo target did not start"; cat "$work/server.log"; exit 1; }

cat > "$work/open.yaml" <<YAML
target: $addr
defaults: { traceparent: false }
journeys:
  ping: [ { name: health, get: /health } ]
flows:
  open: { journey: ping, rate: 4000/s, duration: 15s, max_vus: 2000 }
YAML
vus_yaml() {
cat > "$work/vus$1.yaml" <<YAML
target: $addr
defaults: { traceparent: false }
journeys:
  ping: [ { name: health, get: /health } ]
flows:
  users: { journey: ping, vus: [ { to: $1, over: 5s }, { hold: 15s } ], think: 1s }
YAML
}
vus_yaml 2000
vus_yaml 1

measure() { # scenario → "user sys maxrss_kib requests"
  /usr/bin/time -f "%U %S %M" -o "$work/time" $bin run "$1" --out "$work/out" --quiet --no-progress
  local req
  req=$(python3 -c "import json;r=json.load(open('$work/out/results.json'));print(sum(s['requests'] for f in r['flows'] for s in f['steps']))")
  echo "$(cat "$work/time") $req"
}
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "machine: $(nproc) CPUs, $(uname -sr); $($bin --version)"
cpu=(); rss=(); rss1=()
for i in $(seq "$runs"); do
  read -r u s m n < <(measure "$work/open.yaml")
  c=$(python3 -c "print(f'{($u+$s)/$n*10000:.3f}')")
  echo "run $i: open 4000/s: $n requests, user ${u}s sys ${s}s -> $c CPU s per 10k requests"
  cpu+=("$c")
  read -r u s m n < <(measure "$work/vus2000.yaml")
  read -r u1 s1 m1 n1 < <(measure "$work/vus1.yaml")
  per=$(python3 -c "print(f'{($m-$m1)/1999:.1f}')")
  echo "run $i: 2000 VUs: peak RSS ${m} KiB; 1 VU: ${m1} KiB -> ${per} KiB per VU"
  rss+=("$m"); rss1+=("$per")
done
echo "median: $(printf '%s\n' "${cpu[@]}" | median) CPU s per 10k requests at 4000/s;" \
     "peak RSS with 2000 VUs $(printf '%s\n' "${rss[@]}" | median) KiB;" \
     "marginal $(printf '%s\n' "${rss1[@]}" | median) KiB per VU"
