#!/usr/bin/env bash
# Runs every cargo-fuzz target for a bounded time (default 600 s each, two at a time), seeding
# the scenario target with the shipped scenarios and the malformed fixtures. Crashes land in
# fuzz/artifacts/<target>/; keep each as a regression test once fixed.
# cargo-fuzz needs nightly-only sanitizer flags; RUSTC_BOOTSTRAP=1 lets the stable toolchain
# (the only one this project's machines have) accept them.
# Usage: scripts/fuzz.sh [seconds per target]
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${1:-600}
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
export RUSTC_BOOTSTRAP=1
cargo fuzz build -O
mkdir -p corpus/scenario corpus/units corpus/template corpus/extract
cp ../scenarios/*.yaml ../tests/fixtures/invalid/*.yaml corpus/scenario/
run() {
  cargo fuzz run -O "$1" "corpus/$1" -- -max_total_time="$secs" -timeout=5 -rss_limit_mb=2048 2>&1 | tail -3 | sed "s/^/[$1] /"
}
run scenario & run template & wait
run units & run extract & wait
