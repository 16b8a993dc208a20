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
[ ${#targets[@]} -gt 0 ] || targets=(scenario template units extract response h1)
jobs=${FUZZ_JOBS:-2}
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
export RUSTC_BOOTSTRAP=1
cargo fuzz build -O
mkdir -p corpus/scenario corpus/units corpus/template corpus/extract corpus/response corpus/h1
cp ../scenarios/*.yaml ../tests/fixtures/invalid/*.yaml seeds/scenario/*.yaml corpus/scenario/
# h1: the first byte is the read size, the rest a raw response.
printf '\x03HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;x=y\r\nWiki\r\n5\r\npedia\r\n0\r\nT: 1\r\n\r\n' > corpus/h1/chunked
printf '\x01HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello' > corpus/h1/length
printf '\x07HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\nuntil close' > corpus/h1/close
# Seeds for the response target: each framing, Server-Timing and Set-Cookie.
printf 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\nserver-timing: db;dur=1.5, q;desc="3"\r\nset-cookie: a=1; Path=/\r\n\r\n{}' > corpus/response/length
printf 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nx-t: v\r\n\r\n' > corpus/response/chunked
printf 'HTTP/1.0 200 OK\r\nset-cookie: s=2; Max-Age=0\r\n\r\nuntil close' > corpus/response/close
logs=$(mktemp -d)
run() {
  # libFuzzer's last lines carry the execution count and any crash; the whole log is kept so a
  # crash fails this script below.
  cargo fuzz run -O "$1" "corpus/$1" -- -max_total_time="$secs" -timeout=5 -rss_limit_mb=2048 \
    -print_final_stats=1 > "$logs/$1.log" 2>&1 || echo "[$1] libFuzzer exited non-zero" >> "$logs/$1.log"
  grep -E 'stat::number_of_executed_units|Done|SUMMARY|crash-|timeout-|oom-|exited non-zero' "$logs/$1.log" \
    | sed "s/^/[$1] /" || true
}
running=0
for t in "${targets[@]}"; do
  run "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then wait -n; running=$((running - 1)); fi
done
wait
# A crash, a timeout or an out-of-memory input fails the script (and names the artifact).
if grep -lE 'SUMMARY|crash-|timeout-|oom-|exited non-zero' "$logs"/*.log; then
  echo "fuzzing found a failure: see the artifacts under fuzz/artifacts/"
  exit 1
fi
