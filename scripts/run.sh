#!/usr/bin/env bash
# Builds Supernode and runs its main job with a working default: `supernode run` on
# ../shared/models/stories260K.gguf when present, otherwise on a tiny model it generates.
# Extra arguments go to `supernode run` (e.g. -p "Once upon a time" -n 64).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/supernode-ccache}"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >&2
cmake --build build -j "$(nproc)" --target supernode >&2
model=../shared/models/stories260K.gguf
if [ ! -f "$model" ]; then
  model=build/demo-model.gguf
  [ -f "$model" ] || build/bin/supernode gen-model -o "$model" --tokenizer spm
fi
has_prompt=0
for a in "$@"; do case "$a" in -p|--prompt|-f|--file) has_prompt=1 ;; esac; done
[ "$has_prompt" = 1 ] || set -- -p "Once upon a time" "$@"
[ $# -gt 2 ] || set -- "$@" -n 64
exec build/bin/supernode run -m "$model" "$@"
