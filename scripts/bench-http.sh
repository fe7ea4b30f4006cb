#!/usr/bin/env bash
# Issue 5's HTTP overhead: serve-bench's workload (a) (16 streams, 32 requests, 16-token
# prompts, 64 output tokens, greedy, EOS ignored, 2 threads) measured two ways per round: through
# supernoded over plain HTTP on loopback (supernode-http-bench: one streaming keep-alive
# connection per stream) and in-process (`supernode serve-bench`), on the make-bench-model
# TinyLlama-1.1B q4_0 (generated into BUILD_DIR/models when missing) or $MODEL. Only one of
# the two runs at a time (the daemon is stopped before serve-bench). The order alternates
# between rounds, so a machine that speeds up or slows down shows as disagreement between
# rounds rather than as overhead. Prints each round's two rows and the ratio of the
# generation throughputs (HTTP / in-process) with the TTFT p50 difference, then the median
# over rounds. Run it on an otherwise idle box: on a shared 2-core machine single runs
# vary by 2x when something else compiles, and a round's two runs may see different load.
# The daemon is configured as serve-bench configures its engine: -t 2, --max-seqs 16 and
# --context P+N, which makes ModelHost's KV pool max_seqs x ceil(context / 16) = 80 blocks,
# serve-bench's streams x ceil((P + N) / 16); both take 512 tokens per step.
# Usage: scripts/bench-http.sh [BUILD_DIR]   (env: MODEL, ROUNDS (2), STREAMS, REQUESTS,
#        MAX_TOKENS, PROMPT_TOKENS, THREADS, CONTEXT (the daemon's --context; default P+N))
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
bin="$build/bin"
for b in supernoded supernode supernode-http-bench; do
  [ -x "$bin/$b" ] || { echo "bench-http: $bin/$b not built (cmake --build $build --target $b)" >&2; exit 1; }
done
streams=${STREAMS:-16} requests=${REQUESTS:-32} max_tokens=${MAX_TOKENS:-64} prompt_tokens=${PROMPT_TOKENS:-16}
threads=${THREADS:-2} rounds=${ROUNDS:-2}
context=${CONTEXT:-$((prompt_tokens + max_tokens))}
if [ -n "${MODEL:-}" ]; then
  model=$MODEL
else
  scripts/make-test-models.sh "$build/models" >/dev/null
  model="$build/models/bench-tinyllama-1.1b-q4_0.gguf"
fi
[ -s "$model" ] || { echo "bench-http: no model at $model (needs ../shared/tools/make-bench-model, or set MODEL)" >&2; exit 1; }
id=$(basename "$model" .gguf)

# The API tells neither the vocabulary size nor the BOS id; serve-bench's prompts need both.
info=$("$bin/supernode" inspect "$model" --no-tensors 2>/dev/null)
vocab=$(sed -n 's/^model: .*, vocab \([0-9]*\),.*/\1/p' <<<"$info")
bos=${BOS:-$(awk '$1 == "tokenizer.ggml.bos_token_id" { print $3 }' <<<"$info")}
if [ -z "$vocab" ] || [ -z "$bos" ]; then
  echo "bench-http: cannot read the vocabulary size or BOS id of $model from 'supernode inspect' (set BOS=ID)" >&2
  exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sn-bench-http-XXXXXX")
daemon_pid=""
stop_daemon() {
  if [ -n "$daemon_pid" ]; then
    kill -TERM "$daemon_pid" 2>/dev/null || true
    wait "$daemon_pid" 2>/dev/null || true
    daemon_pid=""
  fi
}
trap 'stop_daemon; rm -rf "$tmp"' EXIT

work=(--streams "$streams" --requests "$requests" --max-tokens "$max_tokens" --prompt-tokens "$prompt_tokens")

# Starts supernoded on a fresh state directory, runs supernode-http-bench against it
# (after one unmeasured warm-up request), stops it; the JSON line lands in $1.
run_http() {
  local state="$tmp/state-$1" port key
  mkdir -p "$state"
  local cmd=("$bin/supernoded" --plain-http --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 --state-dir "$state" --admin-socket "$state/admin.sock"
             -t "$threads" --max-seqs "$streams" --context "$context" --kv-host-mb 0 -m "$model")
  # SUPERNODED_ARGS: more daemon flags, e.g. "--config FILE" (serve-bench has no lower KV tiers).
  if [ -n "${SUPERNODED_ARGS:-}" ]; then read -r -a more <<<"$SUPERNODED_ARGS"; cmd+=("${more[@]}"); fi
  echo "\$ ${cmd[*]} &" >&2
  "${cmd[@]}" >"$state/stdout" 2>"$state/stderr" &
  daemon_pid=$!
  for _ in $(seq 1200); do
    grep -q '^listening ' "$state/stdout" 2>/dev/null && break
    kill -0 "$daemon_pid" 2>/dev/null || { cat "$state/stderr" >&2; echo "bench-http: supernoded exited" >&2; exit 1; }
    sleep 0.1
  done
  port=$(sed -n 's/^listening .*:\([0-9]*\)$/\1/p' "$state/stdout")
  [ -n "$port" ] || { cat "$state/stderr" >&2; echo "bench-http: supernoded did not start in 120 s" >&2; exit 1; }
  key=$(cat "$state/initial-api-key")
  local mport
  mport=$(sed -n 's/^metrics .*:\([0-9]*\)$/\1/p' "$state/stdout")
  local bench=("$bin/supernode-http-bench" --url "http://127.0.0.1:$port" --metrics-port "${mport:-0}" --key "$key" --model "$id" "${work[@]}"
               --vocab "$vocab" --bos "$bos" --warmup 1 --json)
  echo "\$ ${bench[*]/$key/KEY}" >&2
  "${bench[@]}" 2>/dev/null >"$tmp/$1.json" || { stop_daemon; cat "$state/stderr" >&2; exit 1; }
  stop_daemon
  cat "$tmp/$1.json"
}

run_inproc() {
  local cmd=("$bin/supernode" serve-bench -m "$model" -t "$threads" "${work[@]}" --single-requests 0 --json)
  echo "\$ ${cmd[*]}" >&2
  "${cmd[@]}" 2>/dev/null >"$tmp/$1.json"
  cat "$tmp/$1.json"
}

for r in $(seq "$rounds"); do
  if [ $((r % 2)) -eq 1 ]; then
    run_http "http-$r"
    run_inproc "inproc-$r"
  else
    run_inproc "inproc-$r"
    run_http "http-$r"
  fi
done

python3 - "$tmp" "$rounds" <<'EOF'
import json, sys
tmp, rounds = sys.argv[1], int(sys.argv[2])
print()
print("| round | run | generation tok/s | total tok/s | TTFT p50 | TTFT p99 | TPOT p50 | e2e p50 | wall | steps |")
print("|---|---|---|---|---|---|---|---|---|---|")
ratios, dttft = [], []
for r in range(1, rounds + 1):
    h = json.load(open(f"{tmp}/http-{r}.json"))
    i = json.load(open(f"{tmp}/inproc-{r}.json"))
    first = "HTTP first" if r % 2 else "in-process first"
    for name, j in (("in-process (serve-bench)", i), ("HTTP (supernoded)", h)):
        steps = j.get("steps")
        print(f"| {r} ({first}) | {name} | {j['generation_tok_s']:.1f} | {j['total_tok_s']:.1f} | "
              f"{j['ttft_p50_s'] * 1e3:.1f} ms | {j['ttft_p99_s'] * 1e3:.1f} ms | {j['tpot_p50_s'] * 1e3:.1f} ms | "
              f"{j['e2e_p50_s']:.2f} s | {j['wall_s']:.2f} s | {steps if steps is not None else '?'} |")
    ratios.append(h["generation_tok_s"] / i["generation_tok_s"])
    dttft.append((h["ttft_p50_s"] - i["ttft_p50_s"]) * 1e3)
print()
for r, (q, d) in enumerate(zip(ratios, dttft), 1):
    print(f"round {r}: HTTP / in-process generation throughput {q:.3f} ({(1 - q) * 100:+.1f}% overhead), "
          f"TTFT p50 {d:+.1f} ms over HTTP")
if rounds > 1:
    # The median: one round disturbed by other load on the box should not move the figure.
    med = lambda v: sorted(v)[(len(v) - 1) // 2] if len(v) % 2 else sum(sorted(v)[len(v) // 2 - 1:len(v) // 2 + 1]) / 2
    q = med(ratios)
    print(f"median of {rounds} rounds: {q:.3f} ({(1 - q) * 100:+.1f}% overhead; rounds range "
          f"{min(ratios):.3f}-{max(ratios):.3f}), TTFT p50 {med(dttft):+.1f} ms over HTTP")
EOF
