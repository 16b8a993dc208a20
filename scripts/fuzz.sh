#!/usr/bin/env bash
# Runs cargo-fuzz targets for a bounded time each (default 600 s, two at a time), seeding the
# scenario target with the shipped scenarios and the malformed fixtures. Crashes land in
# fuzz/artifacts/<target>/; keep each as a regression test once fixed.
# cargo-fuzz needs nightly-only sanitizer flags; RUSTC_BOOTSTRAP=1 lets the stable toolchain
# (the only one this project's machines have) accept them.
# Usage: scripts/fuzz.sh [seconds per target] [target...]
#   FUZZ_JOBS=1 runs one target at a time (leaves a core free for other work).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${1:-600}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(scenario template units extract)
jobs=${FUZZ_JOBS:-2}
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
export RUSTC_BOOTSTRAP=1
cargo fuzz build -O
mkdir -p corpus/scenario corpus/units corpus/template corpus/extract
cp ../scenarios/*.yaml ../tests/fixtures/invalid/*.yaml corpus/scenario/
run() {
  # libFuzzer's last lines carry the execution count and any crash.
  cargo fuzz run -O "$1" "corpus/$1" -- -max_total_time="$secs" -timeout=5 -rss_limit_mb=2048 \
    -print_final_stats=1 2>&1 | grep -E 'stat::number_of_executed_units|Done|SUMMARY|crash-|timeout-' \
    | sed "s/^/[$1] /" || true
}
running=0
for t in "${targets[@]}"; do
  run "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then wait -n; running=$((running - 1)); fi
done
wait
