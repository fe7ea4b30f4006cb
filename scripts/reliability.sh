#!/usr/bin/env bash
# Regenerates RELIABILITY.md: runs every fuzzer (scripts/fuzz.sh, SECONDS each, default 60),
# the loopback load test (tests/load/run.sh) and the fault and hardening tests (ctest), then
# renders their latest figures into RELIABILITY.md. Needs the optimized build (build/, as
# scripts/test.sh makes it). Usage: scripts/reliability.sh [SECONDS_PER_FUZZER] [BUILD_DIR]
set -uo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
build="${2:-build}"
out="$build/reliability"
mkdir -p "$out"
if [ -x scripts/fuzz.sh ]; then
  echo "== fuzzers, $secs s each" >&2
  scripts/fuzz.sh "$secs" build-fuzz > "$out/fuzz.log" 2>&1
  echo $? > "$out/fuzz.rc"
  cp -f build-fuzz/fuzz-summary.jsonl "$out/" 2>/dev/null || true
fi
echo "== load test" >&2
LOAD_SUMMARY="$out/load-summary.json" tests/load/run.sh "$build" > "$out/load.log" 2>&1
echo $? > "$out/load.rc"
echo "== fault and hardening tests" >&2
: > "$out/faults.txt"
run_group() {  # name, executable, args...
  local name=$1; shift
  if "$@" > "$out/$name.log" 2>&1; then echo "$name pass" >> "$out/faults.txt"; else echo "$name FAIL" >> "$out/faults.txt"; fi
}
export SUPERNODE_SHARED_DIR="${SUPERNODE_SHARED_DIR:-../shared}" SUPERNODE_TEST_MODELS="$build/models"
run_group hardening "$build/bin/daemon_tests" -v -sg Hardening
run_group kill9 "$build/bin/daemon_tests" -v -sg Daemon -n Kill
run_group ratelimiter "$build/bin/daemon_tests" -v -sg RateLimiter
run_group diskstore "$build/bin/storage_tests" -v -sg DiskBlockStore
run_group statestore "$build/bin/storage_tests" -v -sg StateStore
python3 scripts/reliability.py "$out" > RELIABILITY.md
echo "RELIABILITY.md written" >&2
