#!/usr/bin/env bash
# The serving figures of issue 4, measured the way its closing note reports them, on the
# make-bench-model TinyLlama-1.1B q4_0 (generated into build/models when missing) with 2
# threads. Needs a built tree (scripts/test.sh or scripts/run.sh) and ../shared. Prints each
# command before its output; every ratio is taken within one run.
#   (a) 16 streams, 32 requests, 64 output tokens, 16-token prompts (llama.cpp's server
#       figure: its TTFT of 1.54 s for 16 streams implies prompts of about 16 tokens), then
#       128-token prompts; each with the single-stream rate from the same run;
#   (b) the ~1,800-token prefix (story.txt to 7,000 bytes): cold, tier 1, 2, 3;
#   (c) the same again in a new process on the same --kv-dir: the restart row;
#   int8 tier blocks: perplexity of stories260K with the prefix's KV through int8.
# Usage: scripts/bench-serving.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
shared=${SUPERNODE_SHARED_DIR:-../shared}
bin="$build/bin/supernode"
[ -x "$bin" ] || { echo "bench-serving: $bin not built (run scripts/test.sh first)" >&2; exit 1; }
[ -d "$shared" ] || { echo "bench-serving: $shared not found" >&2; exit 1; }
scripts/make-test-models.sh "$build/models" >/dev/null
model="$build/models/bench-tinyllama-1.1b-q4_0.gguf"
kv=$(mktemp -d "${TMPDIR:-/tmp}/sn-kv-XXXXXX")
trap 'rm -rf "$kv"' EXIT
run() { echo "\$ $*"; "$@" 2>/dev/null; echo; }
run "$bin" serve-bench -m "$model" -t 2 --streams 16 --requests 32 --max-tokens 64 --prompt-tokens 16
run "$bin" serve-bench -m "$model" -t 2 --streams 16 --requests 32 --max-tokens 64 --prompt-tokens 128
run "$bin" serve-bench -m "$model" -t 2 --prefix-file "$shared/reference/text/story.txt" --prefix-bytes 7000 \
  --requests 4 --kv-dir "$kv"
run "$bin" serve-bench -m "$model" -t 2 --prefix-file "$shared/reference/text/story.txt" --prefix-bytes 7000 \
  --requests 4 --kv-dir "$kv"
for flag in "" --kv-int8; do
  echo "\$ $bin perplexity -m $shared/models/stories260K.gguf -f $shared/reference/text/story.txt -c 128 $flag"
  "$bin" perplexity -m "$shared/models/stories260K.gguf" -f "$shared/reference/text/story.txt" -c 128 $flag 2>/dev/null | tail -1
done
