#!/usr/bin/env bash
# Generates the random-weight models that llama.cpp's reference outputs were made from
# (../shared/reference/llamacpp/README.md says how), with ../shared/tools/make-bench-model,
# into DIR (default build/models). Files already there are kept. Skips, with a message,
# when ../shared is absent. Usage: scripts/make-test-models.sh [DIR] [--no-bench]
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build/models}
bench=1
[ "${2:-}" = "--no-bench" ] && bench=0
shared=${SUPERNODE_SHARED_DIR:-../shared}
tool="$shared/tools/make-bench-model"
if [ ! -x "$tool" ] && [ ! -f "$tool" ]; then
  echo "make-test-models: $tool not found; reference-model tests will be skipped" >&2
  exit 0
fi
mkdir -p "$dir"
gpt2="$shared/models/tokenizer-tests/ggml-vocab-gpt-2.gguf"
make() {  # name, args...
  local name=$1; shift
  [ -s "$dir/$name.gguf" ] && return 0
  echo "make-test-models: $name" >&2
  python3 "$tool" "$@" -o "$dir/$name.gguf.tmp" >/dev/null
  mv "$dir/$name.gguf.tmp" "$dir/$name.gguf"
}
for t in f16 bf16 q4_0 q4_1 q5_0 q5_1 q8_0 q4_k q5_k q6_k; do
  make "tiny-llama-$t" --shape tiny --type "$t"
done
make tiny-qwen2-q8_0 --arch qwen2 --shape tiny --type q8_0 --vocab "$gpt2"
make tiny-qwen2-q4_k_m --arch qwen2 --shape tiny --type q4_k_m --vocab "$gpt2"
make tiny-qwen3-q8_0 --arch qwen3 --shape tiny --type q8_0 --vocab "$gpt2"
make tiny-qwen3-bf16 --arch qwen3 --shape tiny --type bf16 --vocab "$gpt2"
if [ "$bench" = 1 ]; then
  for t in q4_0 q8_0 q4_k_m; do
    make "bench-tinyllama-1.1b-$t" --shape tinyllama-1.1b --type "$t"
  done
fi
