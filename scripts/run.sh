#!/usr/bin/env bash
# The README's main command: builds Supernode and starts the daemon, supernoded, on
# http://127.0.0.1:8080 (plain HTTP, loopback only) serving ../shared/models/stories260K.gguf
# when present, otherwise a tiny model it generates. State (database, API key, KV cache)
# lives in build/state; the admin socket is build/state/admin.sock. It prints how to call
# the API, then serves until Ctrl-C. Extra arguments go to supernoded (see
# `build/bin/supernoded --help`), e.g. scripts/run.sh --listen 127.0.0.1:9000 -m other.gguf.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/supernode-ccache}"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >&2
cmake --build build -j "$(nproc)" --target supernoded supernode >&2
model=../shared/models/stories260K.gguf
if [ ! -f "$model" ]; then
  model=build/demo-model.gguf
  [ -f "$model" ] || build/bin/supernode gen-model -o "$model" --tokenizer spm
fi
state=build/state
listen=127.0.0.1:8080
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[$i]}" in
    --listen) listen="${args[$((i + 1))]:-$listen}" ;;
    --state-dir) state="${args[$((i + 1))]:-$state}" ;;
  esac
done
has_model=0
for a in "$@"; do case "$a" in -m|--model) has_model=1 ;; esac; done
[ "$has_model" = 1 ] || set -- -m "$model" "$@"
mkdir -p "$state"
id=$(basename "$model" .gguf)
cat >&2 <<MSG

supernoded is starting on http://$listen (Ctrl-C stops it). Once it says "listening", try:

  curl http://$listen/v1/completions \\
    -H "Authorization: Bearer \$(cat $state/initial-api-key)" -H "Content-Type: application/json" \\
    -d '{"model": "$id", "prompt": "Once upon a time", "max_tokens": 64}'

  OpenAI clients: base_url http://$listen/v1, api_key from $state/initial-api-key.
  Admin: build/bin/supernode --admin-socket $state/admin.sock status | keys create --tenant default | models list

MSG
exec build/bin/supernoded --listen "$listen" --plain-http --state-dir "$state" --admin-socket "$state/admin.sock" "$@"
