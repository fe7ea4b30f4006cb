#!/usr/bin/env bash
# The loopback load test (ctest's daemon.load, label slow): a real supernoded on 127.0.0.1
# with a tiny generated model, loaded by wrk (GET /v1/models, 1000 connections) and by
# supernode-load (1000 workers, a mix of streaming, whole, chat, slow-reader, disconnecting,
# oversized and malformed requests; tests/load/load_client.cpp). Checks that nothing was lost
# or timed out, that memory returns near its baseline once the connections are gone, and
# that the daemon metered every accepted request exactly: its usage table, read after a
# clean SIGTERM, against what the clients saw. Prints a summary and writes it as JSON to
# BUILD_DIR/load-summary.json (RELIABILITY.md is generated from it).
# Usage: run.sh [BUILD_DIR]   (default: build; binaries in BUILD_DIR/bin)
# Environment: SUPERNODE_LOAD (the client; default BUILD_DIR/bin/supernode-load),
#   LOAD_CONNECTIONS (1000), LOAD_SECONDS (20), WRK_SECONDS (10), LOAD_SUMMARY (where the JSON
#   summary goes), KEEP_WORK_DIR=1 keeps the temporary folder (model, config, state, logs).
# Exit 0 only when every check holds. The daemon is always stopped on exit.
set -euo pipefail

build="$(cd "${1:-build}" && pwd)"
bin="$build/bin"
load_client="${SUPERNODE_LOAD:-$bin/supernode-load}"
connections="${LOAD_CONNECTIONS:-1000}"
load_seconds="${LOAD_SECONDS:-20}"
wrk_seconds="${WRK_SECONDS:-10}"
summary_file="${LOAD_SUMMARY:-$build/load-summary.json}"

for tool in "$bin/supernoded" "$bin/supernode" "$load_client"; do
  [ -x "$tool" ] || { echo "daemon.load: $tool is missing (build it first)" >&2; exit 1; }
done
for tool in wrk curl python3; do
  command -v "$tool" >/dev/null || { echo "daemon.load: $tool is needed (scripts/install-deps.sh installs it)" >&2; exit 1; }
done

# Sockets for 1000 client and 1000 server connections, in one process each.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

work="$(mktemp -d "${TMPDIR:-/tmp}/sn-load.XXXXXX")"
daemon_pid=""
cleanup() {
  local rc=$?
  if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
    kill -KILL "$daemon_pid" 2>/dev/null || true
    wait "$daemon_pid" 2>/dev/null || true
  fi
  if [ "${KEEP_WORK_DIR:-0}" = 1 ] || [ "$rc" -ne 0 ]; then
    echo "daemon.load: work folder kept: $work" >&2
  else
    rm -rf "$work"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { echo "== $*" >&2; }
fail_setup() {
  echo "daemon.load: $*" >&2
  [ -f "$work/daemon.log" ] && tail -n 30 "$work/daemon.log" >&2
  exit 1
}

# --- the model, its chat template and the config ---------------------------------------------
cat >"$work/chat.jinja" <<'EOF'
{% for m in messages %}<|im_start|>{{ m.role }}
{{ m.content }}<|im_end|>
{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant
{% endif %}
EOF
"$bin/supernode" gen-model -o "$work/tiny.gguf" --embd 64 --chat-template "$work/chat.jinja" >/dev/null
model=tiny

cat >"$work/supernode.toml" <<EOF
[server]
max_connections = 4096
max_connections_per_address = 4096
idle_timeout_s = 30

[engine]
max_seqs = 16
context = 512
max_waiting = 1024
max_waiting_per_tenant = 512

[kv]
host_mb = 0

[quotas]
default_rpm = 0
default_tpm = 0
default_concurrency = 0
EOF

# --- the daemon ------------------------------------------------------------------------------
say "starting supernoded"
"$bin/supernoded" --config "$work/supernode.toml" --plain-http --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 \
  --state-dir "$work/state" --admin-socket "$work/admin.sock" -m "$work/tiny.gguf" -t 2 \
  >"$work/daemon.out" 2>"$work/daemon.log" &
daemon_pid=$!
port="" metrics_port=""
for _ in $(seq 1 300); do
  kill -0 "$daemon_pid" 2>/dev/null || fail_setup "supernoded exited during start-up"
  port="$(sed -n 's/^listening .*:\([0-9]*\)$/\1/p' "$work/daemon.out")"
  metrics_port="$(sed -n 's/^metrics .*:\([0-9]*\)$/\1/p' "$work/daemon.out")"
  [ -n "$port" ] && break
  sleep 0.1
done
if [ -z "$port" ] || [ -z "$metrics_port" ]; then fail_setup "supernoded did not report its ports within 30 s"; fi
say "supernoded pid $daemon_pid: API on 127.0.0.1:$port, metrics on 127.0.0.1:$metrics_port"

admin() { "$bin/supernode" "$@" --admin-socket "$work/admin.sock"; }
# Steady tenants t1..t3 (t3 limited to 600 requests a minute, so the mix has 429s) and the
# leaver, whose key only the slow readers and the disconnects use. One key each.
keys=()
for tenant in t1 t2 t3 leaver; do
  if [ "$tenant" = t3 ]; then admin tenants create "$tenant" --rpm 600 >/dev/null; else admin tenants create "$tenant" >/dev/null; fi
  keys+=("$(admin keys create --tenant "$tenant" | tail -n 1)")
done
key_list="$(IFS=,; echo "${keys[*]}")"

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$daemon_pid/status"; }
open_connections() {
  { curl -s --max-time 5 "http://127.0.0.1:$metrics_port/metrics" || true; } |
    awk '$1 == "supernode_http_connections" {print $2}'
}

# --- a. warm-up (tenant "default": its usage is not compared) and the RSS baseline ------------
initial_key="$(cat "$work/state/initial-api-key")"
for i in 1 2 3 4; do
  curl -sf --max-time 30 -H "Authorization: Bearer $initial_key" -H 'Content-Type: application/json' \
    -d "{\"model\":\"$model\",\"prompt\":\"warm up $i\",\"max_tokens\":8,\"ignore_eos\":true}" \
    "http://127.0.0.1:$port/v1/completions" >/dev/null || fail_setup "warm-up request $i failed"
done
curl -sf --max-time 30 -H "Authorization: Bearer $initial_key" -H 'Content-Type: application/json' \
  -d "{\"model\":\"$model\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":4}" \
  "http://127.0.0.1:$port/v1/chat/completions" >/dev/null || fail_setup "warm-up chat request failed"
sleep 1
rss_before="$(rss_kib)"
say "RSS after warm-up: $((rss_before / 1024)) MiB"

# --- b. wrk: GET /v1/models over 1000 keep-alive connections ---------------------------------
say "wrk: GET /v1/models, 1000 connections, ${wrk_seconds} s"
wrk -t2 -c1000 -d"${wrk_seconds}s" --timeout 5s --latency -H "Authorization: Bearer ${keys[0]}" \
  "http://127.0.0.1:$port/v1/models" >"$work/wrk.txt" 2>&1 || true
cat "$work/wrk.txt" >&2

# --- c. the load client --------------------------------------------------------------------------
say "supernode-load: $connections connections, $load_seconds s"
load_rc=0
"$load_client" --port "$port" --keys "$key_list" --model "$model" --connections "$connections" \
  --seconds "$load_seconds" --json >"$work/load.json" || load_rc=$?
[ -s "$work/load.json" ] || fail_setup "supernode-load wrote no JSON (exit $load_rc)"

# --- d. memory once the connections are gone -------------------------------------------------
# The gauge counts the scrape's own connection to the metrics listener: 1 is none left.
conns_left=""
for _ in $(seq 1 20); do
  conns_left="$(open_connections)"
  [ "${conns_left:-2}" -le 1 ] && break
  sleep 0.5
done
# The daemon hands freed memory back to the system every 5 s while idle (malloc_trim).
sleep 6
kill -0 "$daemon_pid" 2>/dev/null || fail_setup "supernoded died under load"
rss_after="$(rss_kib)"
say "RSS after the load: $((rss_after / 1024)) MiB (open connections, the scrape's own included: ${conns_left:-unknown})"

# --- e. a clean stop (usage is flushed on the way out), then the usage table --------------------
say "stopping supernoded (SIGTERM)"
kill -TERM "$daemon_pid"
daemon_rc=0
for _ in $(seq 1 600); do
  kill -0 "$daemon_pid" 2>/dev/null || break
  sleep 0.1
done
if kill -0 "$daemon_pid" 2>/dev/null; then
  daemon_rc=timeout
else
  wait "$daemon_pid" || daemon_rc=$?
fi
daemon_pid=""

# --- f. the checks and the summary -----------------------------------------------------------
python3 - "$work" "$summary_file" "$rss_before" "$rss_after" "$connections" "$load_rc" "$daemon_rc" \
  "${conns_left:-unknown}" <<'PY'
import json, re, sqlite3, sys

work, summary_file, rss_before, rss_after, connections, load_rc, daemon_rc, conns_left = sys.argv[1:]
rss_before, rss_after, connections = int(rss_before), int(rss_after), int(connections)
checks = []  # (name, passed, detail)

def check(name, passed, detail):
    checks.append({"check": name, "passed": bool(passed), "detail": detail})

# wrk
text = open(f"{work}/wrk.txt").read()
wrk = {"requests": None, "connect": 0, "read": 0, "write": 0, "timeout": 0, "non_2xx": 0, "requests_per_s": None}
m = re.search(r"(\d+) requests in", text)
if m: wrk["requests"] = int(m.group(1))
m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
if m: wrk.update(connect=int(m.group(1)), read=int(m.group(2)), write=int(m.group(3)), timeout=int(m.group(4)))
m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
if m: wrk["non_2xx"] = int(m.group(1))
m = re.search(r"Requests/sec:\s*([\d.]+)", text)
if m: wrk["requests_per_s"] = float(m.group(1))

def wrk_seconds(v, unit):
    return float(v) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[unit]

m = re.search(r"^\s*50%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M)
wrk["latency_p50_s"] = wrk_seconds(*m.groups()) if m else None
m = re.search(r"^\s*99%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M)
wrk["latency_p99_s"] = wrk_seconds(*m.groups()) if m else None
m = re.search(r"^\s*Latency\s+\S+\s+\S+\s+([\d.]+)(us|ms|s|m)", text, re.M)
wrk["latency_max_s"] = wrk_seconds(*m.groups()) if m else None
check("wrk ran", bool(wrk["requests"]), f"{wrk['requests']} requests")
check("wrk: no socket errors or timeouts",
      wrk["connect"] == wrk["read"] == wrk["write"] == wrk["timeout"] == 0,
      f"connect {wrk['connect']}, read {wrk['read']}, write {wrk['write']}, timeout {wrk['timeout']}")
check("wrk: every answer 2xx", wrk["non_2xx"] == 0, f"non-2xx {wrk['non_2xx']}")

# the load client
load = json.load(open(f"{work}/load.json"))
o = load["outcomes"]
check("load: nothing lost, timed out or garbled",
      o["lost"] == 0 and o["timeout"] == 0 and o["bad_response"] == 0 and load_rc == "0",
      f"lost {o['lost']}, timeout {o['timeout']}, bad_response {o['bad_response']} (client exit {load_rc})")
check("load: only the expected statuses (400 malformed, 413 oversized, 429 limited)",
      load["unexpected_status"] == 0, f"unexpected {load['unexpected_status']}; statuses {load['http_errors']}")
check("load: requests were served", o["ok"] > 0, f"ok {o['ok']}")

# memory
growth = rss_after - rss_before
check("memory returns near its baseline (<= +100 MiB)", growth <= 100 * 1024,
      f"RSS {rss_before // 1024} -> {rss_after // 1024} MiB ({growth / connections:.1f} KiB per connection "
      f"still held; open connections {conns_left}, the scrape's own included)")

# the daemon's stop and its usage table
check("supernoded stopped cleanly on SIGTERM", daemon_rc == "0", f"exit {daemon_rc}")
db = sqlite3.connect(f"file:{work}/state/state.db?mode=ro", uri=True)
rows = db.execute(
    "SELECT k.key_id, t.name, SUM(u.requests), SUM(u.prompt_tokens), SUM(u.completion_tokens) FROM usage u "
    "JOIN api_keys k ON k.key_id = u.key_id JOIN tenants t ON t.id = k.tenant_id GROUP BY u.key_id").fetchall()
metered = {name: {"requests": r, "prompt_tokens": p, "completion_tokens": c} for _, name, r, p, c in rows}
zero = {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0}
usage = []
for key in load["keys"]:
    tenant = "leaver" if key["role"] == "leaver" else f"t{key['index']}"
    m = metered.get(tenant, zero)
    entry = {"tenant": tenant, "role": key["role"], "metered": m}
    if key["role"] == "steady":
        seen = {"requests": key["ok_requests"], "prompt_tokens": key["prompt_tokens"],
                "completion_tokens": key["completion_tokens"]}
        entry["client"] = seen
        check(f"usage of {tenant} equals its complete answers", m == seen, f"metered {m}, clients saw {seen}")
    else:
        seen = {"requests": key["headers_200"], "completion_tokens_seen": key["completion_tokens_seen"],
                "unfinished": key["unfinished"]}
        entry["client"] = seen
        check(f"usage of {tenant}: one request per accepted stream", m["requests"] == key["headers_200"],
              f"metered {m['requests']}, 200 headers {key['headers_200']}")
        lo, hi = key["completion_tokens_seen"], key["completion_tokens_seen"] + 200 * key["unfinished"]
        check(f"usage of {tenant}: completion tokens within what was sent",
              lo <= m["completion_tokens"] <= hi, f"metered {m['completion_tokens']}, expected [{lo}, {hi}]")
    usage.append(entry)

lat = load["latency"]
summary = {
    "passed": all(c["passed"] for c in checks),
    "connections": connections,
    "load_seconds": load["seconds"],
    "requests": load["requests"],
    "served_ok": o["ok"],
    "http_errors": load["http_errors"],
    "rate_limited_429": load["http_errors"].get("429", 0),
    "intentional_disconnects": o["intentional_disconnect"],
    "failures": {"lost": o["lost"], "timeout": o["timeout"], "bad_response": o["bad_response"]},
    "latency_s": {k: lat[k] for k in ("first_byte_p50_s", "first_byte_p99_s", "total_p50_s", "total_p99_s")},
    "rss_mib": {"before": round(rss_before / 1024, 1), "after": round(rss_after / 1024, 1),
                "growth_kib_per_connection": round(growth / connections, 2)},
    "wrk": wrk,
    "usage": usage,
    "scenarios": load["scenarios"],
    "failure_samples": load["failure_samples"],
    "checks": checks,
}
with open(summary_file, "w") as f:
    json.dump(summary, f, indent=2)
    f.write("\n")

print("\n== daemon.load summary", file=sys.stderr)
print(f"requests {load['requests']} ({o['ok']} served whole, {o['intentional_disconnect']} left on purpose), "
      f"429s {summary['rate_limited_429']}, HTTP errors {load['http_errors']}", file=sys.stderr)
print(f"failures: lost {o['lost']}, timeout {o['timeout']}, bad_response {o['bad_response']}", file=sys.stderr)
print(f"latency of complete answers: first byte p50 {lat['first_byte_p50_s']:.3f} s, p99 {lat['first_byte_p99_s']:.3f} s; "
      f"total p50 {lat['total_p50_s']:.3f} s, p99 {lat['total_p99_s']:.3f} s", file=sys.stderr)
def secs(v):
    return "?" if v is None else f"{v:.3f} s"

print(f"wrk /v1/models: {wrk['requests']} requests ({wrk['requests_per_s']} /s), latency p50 {secs(wrk['latency_p50_s'])}, "
      f"p99 {secs(wrk['latency_p99_s'])}, max {secs(wrk['latency_max_s'])}", file=sys.stderr)
print(f"RSS {rss_before // 1024} MiB before, {rss_after // 1024} MiB after", file=sys.stderr)
for c in checks:
    print(f"  [{'ok' if c['passed'] else 'FAIL'}] {c['check']}: {c['detail']}", file=sys.stderr)
print(f"summary written to {summary_file}", file=sys.stderr)
sys.exit(0 if summary["passed"] else 1)
PY
