#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ under ASan+UBSan with clang and runs each one for a
# bounded time on a copy of its seed corpus; what CI runs for fuzzing, unattended.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET (60)] [BUILD_DIR (build-fuzz)]
#
#  1. configures BUILD_DIR with CC=clang CXX=clang++ -DSUPERNODE_FUZZ=ON (only the rooms the
#     targets need, with -fsanitize=fuzzer-no-link) and builds the `fuzz` target through
#     ccache (CCACHE_DIR, default ~/.cache/supernode-ccache, hits shared across build
#     directories) with FUZZ_JOBS parallel jobs (default nproc);
#  2. runs every fuzz/<name>_fuzz.cpp target for SECONDS on BUILD_DIR/fuzz-corpus/<name>, a
#     fresh copy of fuzz/corpus/<name> (new inputs never land in the tree), with
#     fuzz/<name>.dict when there is one; crash, leak, timeout and OOM inputs go to
#     BUILD_DIR/fuzz-artifacts/<name>/, libFuzzer's output to BUILD_DIR/fuzz-logs/<name>.log;
#  3. prints one line per target
#       fuzz <name>: <execs> executions, <cov> coverage points (cov:), <ft> features, corpus <n> files, crashes <k>
#     and writes the same as one JSON object per line to BUILD_DIR/fuzz-summary.jsonl.
# Exits 1 when any target crashed, leaked, timed out or ran out of memory (naming the input
# and the command that reproduces it), 2 when the build failed.
# FUZZ_TARGETS="gguf config" runs only those targets.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-60}"
build="${2:-build-fuzz}"
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -lt 1 ]; then
  echo "usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [BUILD_DIR]" >&2
  exit 2
fi
for tool in clang clang++ cmake ninja; do
  command -v "$tool" >/dev/null || { echo "fuzz: $tool not found (Debian packages clang, cmake, ninja-build)" >&2; exit 2; }
done
export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/supernode-ccache}"
# Cache hits across build directories and checkouts: with -g, ccache otherwise keys each
# object on the directory it was compiled in.
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$PWD}"
export CCACHE_NOHASHDIR="${CCACHE_NOHASHDIR:-1}"
jobs="${FUZZ_JOBS:-$(nproc)}"

echo "== configuring and building the fuzz targets ($build/)"
mkdir -p "$build"
if ! CC=clang CXX=clang++ cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DSUPERNODE_FUZZ=ON -DSUPERNODE_SANITIZE=address,undefined -DSUPERNODE_CUDA=OFF \
    -DSUPERNODE_TESTS=OFF -DSUPERNODE_BENCH=OFF >"$build/fuzz-configure.log" 2>&1; then
  cat "$build/fuzz-configure.log" >&2
  exit 2
fi
if ! cmake --build "$build" -j "$jobs" --target fuzz </dev/null; then
  echo "fuzz: build failed" >&2
  exit 2
fi

targets=()
if [ -n "${FUZZ_TARGETS:-}" ]; then
  read -r -a targets <<<"$FUZZ_TARGETS"
else
  for src in fuzz/*_fuzz.cpp; do
    name="$(basename "$src" _fuzz.cpp)"
    targets+=("$name")
  done
fi

summary="$build/fuzz-summary.jsonl"
: >"$summary"
commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
failed=0
lines=()

# The value of `key:` in libFuzzer's status line `line` ("cov: 123"), or 0.
field() { sed -n "s/.* $2: \([0-9][0-9]*\).*/\1/p" <<<"$1" | head -n1 | grep . || echo 0; }

for name in "${targets[@]}"; do
  bin="$build/bin/${name}_fuzz"
  corpus="$build/fuzz-corpus/$name"
  artifacts="$build/fuzz-artifacts/$name"
  log="$build/fuzz-logs/$name.log"
  rm -rf "$corpus" "$artifacts"
  mkdir -p "$corpus" "$artifacts" "$(dirname "$log")"
  if [ -d "fuzz/corpus/$name" ]; then cp -R "fuzz/corpus/$name/." "$corpus/"; fi
  args=(-max_total_time="$seconds" -print_final_stats=1 -rss_limit_mb=2048 -timeout=10 -fork=0
        -artifact_prefix="$artifacts/")
  if [ -f "fuzz/$name.dict" ]; then args+=(-dict="fuzz/$name.dict"); fi
  echo "== fuzz $name: ${seconds}s"
  rc=0
  # The outer timeout only guards against a fuzzer that does not stop by itself.
  timeout --kill-after=10 $((seconds + 120)) "$bin" "${args[@]}" "$corpus" </dev/null >"$log" 2>&1 || rc=$?

  status_line="$(grep -E '^#[0-9]+[[:space:]]+(INITED|NEW|REDUCE|pulse|DONE|RELOAD)[[:space:]].*cov: ' "$log" | tail -n1 || true)"
  execs="$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -n1)"
  [ -n "$execs" ] || execs="$(sed -n 's/^#\([0-9]*\).*/\1/p' <<<"$status_line")"
  [ -n "$execs" ] || execs=0
  rate="$(sed -n 's/^stat::average_exec_per_sec: *\([0-9]*\).*/\1/p' "$log" | tail -n1)"
  [ -n "$rate" ] || rate=0
  rss="$(sed -n 's/^stat::peak_rss_mb: *\([0-9]*\).*/\1/p' "$log" | tail -n1)"
  [ -n "$rss" ] || rss=0
  cov="$(field "$status_line" cov)"
  ft="$(field "$status_line" ft)"
  files="$(find "$corpus" -type f | wc -l)"
  mapfile -t found < <(find "$artifacts" -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' \
                                                   -o -name 'oom-*' \) | sort)
  crashes="${#found[@]}"
  status=ok
  if [ "$crashes" -gt 0 ]; then
    status="$(basename "${found[0]}" | cut -d- -f1)"
  elif [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    status=hung
  elif [ "$rc" -ne 0 ]; then
    status=error
  fi
  line="fuzz $name: $execs executions, $cov coverage points (cov:), $ft features, corpus $files files, crashes $crashes"
  lines+=("$line")
  echo "$line"
  artifacts_json=""
  for f in "${found[@]}"; do
    artifacts_json+="${artifacts_json:+,}\"$f\""
  done
  printf '{"target":"%s","seconds":%s,"executions":%s,"exec_per_sec":%s,"cov":%s,"ft":%s,"corpus_files":%s,"crashes":%s,"status":"%s","exit_code":%s,"peak_rss_mb":%s,"artifacts":[%s],"log":"%s","commit":"%s","date":"%s"}\n' \
    "$name" "$seconds" "$execs" "$rate" "$cov" "$ft" "$files" "$crashes" "$status" "$rc" "$rss" "$artifacts_json" \
    "$log" "$commit" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >>"$summary"
  if [ "$status" != ok ]; then
    failed=1
    echo "fuzz $name: FAILED ($status, exit $rc); log: $log" >&2
    grep -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error:|.*Check failed|.*SN_CHECK|ALARM|==[0-9]+== ERROR: libFuzzer)' "$log" \
      | head -n 5 >&2 || true
    for f in "${found[@]}"; do
      echo "fuzz $name: input $f (reproduce: $bin $f)" >&2
    done
  fi
done

echo "== fuzz summary ($summary)"
printf '%s\n' "${lines[@]}"
exit "$failed"
