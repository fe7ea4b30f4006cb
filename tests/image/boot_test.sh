#!/usr/bin/env bash
# The appliance image's boot test (ctest image.boot, labels image and slow):
#   1. builds a test image with scripts/build-image.sh --test-model (the .deb from dist/ or
#      $SUPERNODE_DEB; the model ../shared/models/stories260K.gguf, else one from
#      `supernode gen-model`, put in /var/lib/supernode/incoming/ as if on a USB stick, not
#      served), or takes $SUPERNODE_IMAGE (a test build) as it is;
#   2. boots a sparse copy grown by 1 GiB in qemu-system-x86_64 with OVMF (KVM when
#      /dev/kvm is usable, TCG otherwise), serial console to a log, user-mode networking
#      (restrict=on: the guest reaches nothing) forwarding the daemon's port 8443 and 22;
#   3. waits for the first-boot unit's READY line on the serial console and reads the
#      one-time setup token from there, exactly as an administrator at the console would;
#   4. over the forwarded port: /healthz, the web page, the setup (first admin), login, an
#      API key made through the admin API, /readyz 503 (no model yet), the model imported
#      and loaded through the admin API, and POST /v1/completions with that key; the
#      served certificate is the one whose fingerprint the console showed; nothing answers
#      on port 22; the state partition grew into the added 1 GiB.
# Prints the boot time to READY. Exits 77 ("SKIP: ...") when tools, root or the .deb are
# missing. The API key is never read from the guest: the test makes its own, as a site would.
#   tests/image/boot_test.sh [BUILD_DIR]      (default: build)
# Environment: SUPERNODE_IMAGE (reuse an image), SUPERNODE_DEB, SUPERNODE_IMAGE_WORK (work
# dir, default BUILD_DIR/image-boot), SUPERNODE_BOOT_TIMEOUT (seconds, default 1800).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="$(realpath -m "${1:-$repo/build}")"
work="$(realpath -m "${SUPERNODE_IMAGE_WORK:-$build/image-boot}")"
boot_timeout="${SUPERNODE_BOOT_TIMEOUT:-1800}"
skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*"; [ -f "${serial:-}" ] && { echo "--- last lines of the serial console ($serial):"; tail -n 40 "$serial" | tr -d '\r'; }; exit 1; }

for t in qemu-system-x86_64 curl openssl sfdisk python3; do
  command -v "$t" >/dev/null 2>&1 || skip "$t is missing (apt-get install qemu-system-x86 curl openssl fdisk python3)"
done
ovmf_code=/usr/share/OVMF/OVMF_CODE.fd ovmf_vars=/usr/share/OVMF/OVMF_VARS.fd
[ -f "$ovmf_code" ] && [ -f "$ovmf_vars" ] || skip "OVMF firmware is missing (apt-get install ovmf)"
mkdir -p "$work"

image="${SUPERNODE_IMAGE:-}"
if [ -z "$image" ]; then
  [ "$(id -u)" -eq 0 ] || skip "building the image needs root (debootstrap, chroot); or set SUPERNODE_IMAGE"
  for t in debootstrap mke2fs mkfs.vfat mcopy; do
    command -v "$t" >/dev/null 2>&1 || skip "$t is missing (apt-get install debootstrap e2fsprogs dosfstools mtools)"
  done
  deb="${SUPERNODE_DEB:-$(ls -t "$repo"/dist/supernode_*_amd64.deb 2>/dev/null | head -n 1 || true)}"
  [ -n "$deb" ] && [ -f "$deb" ] || skip "no supernode .deb in dist/ (scripts/build-deb.sh makes it) and SUPERNODE_DEB unset"
  model="${SUPERNODE_SHARED_DIR:-$repo/../shared}/models/stories260K.gguf"
  if [ ! -f "$model" ]; then
    model="$work/tiny.gguf"
    [ -x "$build/bin/supernode" ] || skip "no ../shared/models/stories260K.gguf and no $build/bin/supernode to generate a model"
    "$build/bin/supernode" gen-model -o "$model" >/dev/null
  fi
  image="$work/supernode-test.img"
  echo "== building the test image ($(basename "$deb"), model $(basename "$model"))"
  t0=$(date +%s)
  "$repo/scripts/build-image.sh" --deb "$deb" --size 4G --root-size 2G --test-model "$model" \
    --work-dir "$work/build" -o "$image" > "$work/build-image.log" 2>&1 ||
    { tail -n 30 "$work/build-image.log"; fail "scripts/build-image.sh failed (log: $work/build-image.log)"; }
  echo "   built in $(( $(date +%s) - t0 )) s: $image"
fi
[ -f "$image" ] || fail "no image $image"

# A sparse copy to boot, 1 GiB larger than the image: the state partition must grow into it.
disk="$work/boot.img"
cp --sparse=always "$image" "$disk"
data_mib=$(sfdisk -d "$disk" | awk '/name="supernode-data"/ { gsub(/[=,]/, " "); for (i = 1; i <= NF; i++) if ($i == "size") print int($(i+1) / 2048) }')
[ -n "$data_mib" ] || fail "the image has no supernode-data partition"
truncate -s +1G "$disk"
cp "$ovmf_vars" "$work/OVMF_VARS.fd"

accel="tcg" cpu="max" smp=2
if python3 -c 'import os; os.close(os.open("/dev/kvm", os.O_RDWR))' 2>/dev/null; then accel="kvm" cpu="host"; fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
sshport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
serial="$work/serial.log"
: > "$serial"
echo "== booting in qemu ($accel, $smp vCPUs, 2 GiB; serial console: $serial; https://127.0.0.1:$port/ -> guest :8443)"
t0=$(date +%s.%N)
qemu-system-x86_64 -accel "$accel" -machine q35 -cpu "$cpu" -smp "$smp" -m 2048 -nographic -monitor none \
  -drive if=pflash,format=raw,unit=0,readonly=on,file="$ovmf_code" \
  -drive if=pflash,format=raw,unit=1,file="$work/OVMF_VARS.fd" \
  -drive file="$disk",format=raw,if=virtio,cache=unsafe \
  -netdev "user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:$port-:8443,hostfwd=tcp:127.0.0.1:$sshport-:22" \
  -device virtio-net-pci,netdev=n0 -serial "file:$serial" </dev/null > "$work/qemu.log" 2>&1 &
qpid=$!
trap 'kill "$qpid" 2>/dev/null || true; wait "$qpid" 2>/dev/null || true' EXIT

ready=""
while :; do
  ready=$(tr -d '\r' < "$serial" | grep -a -m1 'supernode-image: READY after' || true)
  [ -n "$ready" ] && break
  kill -0 "$qpid" 2>/dev/null || { cat "$work/qemu.log"; fail "qemu exited before READY"; }
  grep -a -q -e 'Kernel panic' -e 'supernode.service is not running' "$serial" && { sleep 2; fail "the guest failed to come up"; }
  now=$(date +%s.%N)
  python3 -c "import sys; sys.exit(0 if $now - $t0 < $boot_timeout else 1)" || fail "no READY line within $boot_timeout s"
  sleep 2
done
wall=$(python3 -c "print(f'{$(date +%s.%N) - $t0:.1f}')")
guest=$(echo "$ready" | sed -n 's/.*READY after \([0-9.]*\)s.*/\1/p')
echo "   $ready"
echo "BOOT TIME to READY: ${wall} s wall clock from qemu start (guest uptime ${guest} s; $accel)"

log=$(tr -d '\r' < "$serial")
token=$(printf '%s\n' "$log" | sed -n 's/^ One-time setup token: \([^ ]*\).*/\1/p' | head -n 1)
fp=$(printf '%s\n' "$log" | sed -n 's/^ TLS certificate SHA-256: \([0-9A-F:]*\).*/\1/p' | head -n 1)
[ -n "$token" ] || fail "no setup token on the serial console"
[ -n "$fp" ] || fail "no certificate fingerprint on the serial console"
grown=$(printf '%s\n' "$log" | sed -n 's/^supernode-image: state partition \([0-9]*\) MiB.*/\1/p' | head -n 1)

base="https://127.0.0.1:$port"
c() { curl -sS -k --max-time 120 "$@"; }
pass=0
ok() { echo "   ok: $*"; pass=$((pass + 1)); }

code=$(c -o /dev/null -w '%{http_code}' "$base/healthz") ; [ "$code" = 200 ] || fail "/healthz answered $code"
ok "/healthz 200"
served=$(openssl s_client -connect "127.0.0.1:$port" </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256 | sed 's/^.*=//')
[ "$served" = "$fp" ] || fail "served certificate $served is not the one the console showed ($fp)"
ok "HTTPS with the self-signed certificate the console showed ($fp)"
c "$base/" -o "$work/index.html" -w '%{http_code} %{content_type}\n' | grep -q '^200 text/html' || fail "GET / is not an HTML page"
grep -qi '<html' "$work/index.html" || fail "GET / returned no HTML"
ok "GET / serves the web page ($(wc -c < "$work/index.html") bytes)"

pw="boot-test-$(openssl rand -hex 12)"
lines_before=$(wc -l < "$serial")
code=$(c -o "$work/setup.json" -w '%{http_code}' -H 'Content-Type: application/json' \
  -d "{\"token\": \"$token\", \"username\": \"admin\", \"password\": \"$pw\"}" "$base/api/admin/setup")
[ "$code" = 201 ] || fail "setup with the console's token answered $code: $(cat "$work/setup.json")"
ok "first admin created with the setup token from the console"
# The used token leaves the login prompt (supernode-console-issue.path; agetty --reload).
# A prompt drawn at boot may still reach the log after `lines_before`: wait for the latest
# prompt on the console to be one without the token.
prompt=""
for _ in $(seq 45); do
  prompt=$(tail -n +"$((lines_before + 1))" "$serial" | tr -d '\r' | awk '/Administer it from a browser/ {block = ""; keep = 5} keep > 0 {block = block $0 "\n"; keep--} END {printf "%s", block}')
  case "$prompt" in "" | *"setup token"*) sleep 2 ;; *) break ;; esac
done
[ -n "$prompt" ] || fail "the console's login prompt was not refreshed after setup"
case "$prompt" in *"setup token"*) fail "the login prompt still shows the setup token after setup" ;; esac
ok "the console's login prompt dropped the used setup token"
jar="$work/cookies.txt"; rm -f "$jar"
csrf=$(c -c "$jar" -H 'Content-Type: application/json' -d "{\"username\": \"admin\", \"password\": \"$pw\"}" \
  "$base/api/admin/login" | python3 -c 'import json, sys; print(json.load(sys.stdin)["csrf_token"])') || fail "login failed"
key=$(c -b "$jar" -H "X-CSRF-Token: $csrf" -H 'Content-Type: application/json' -d '{"tenant": "default", "label": "boot-test"}' \
  "$base/api/admin/keys" | python3 -c 'import json, sys; print(json.load(sys.stdin)["key"])') || fail "making an API key failed"
ok "logged in, API key made through the admin API"
# The appliance starts without a model: not ready until one is imported and loaded.
code=$(c -o /dev/null -w '%{http_code}' "$base/readyz")
[ "$code" = 503 ] || fail "/readyz answered $code before any model was imported (want 503)"
ok "/readyz 503 with no model: the daemon came up empty"
post() { c -b "$jar" -H "X-CSRF-Token: $csrf" -H 'Content-Type: application/json' "$@"; }
import_id=$(post -d '{"path": "/var/lib/supernode/incoming/test-model.gguf", "id": "test-model"}' \
  "$base/api/admin/models/import" | python3 -c 'import json, sys; print(json.load(sys.stdin)["import"]["import_id"])') ||
  fail "POST /api/admin/models/import failed"
state=running
for _ in $(seq 1 300); do
  state=$(c -b "$jar" "$base/api/admin/models/imports/$import_id" | python3 -c 'import json, sys; print(json.load(sys.stdin)["import"]["state"])')
  [ "$state" = running ] || break
  sleep 1
done
[ "$state" = done ] || fail "the import ended '$state'"
code=$(post -o "$work/load.json" -w '%{http_code}' -X POST "$base/api/admin/models/test-model/load")
[ "$code" = 200 ] || fail "loading the imported model answered $code: $(cat "$work/load.json")"
ok "model imported from the box's disk through the admin API, and loaded"
model=$(c -H "Authorization: Bearer $key" "$base/v1/models" | python3 -c 'import json, sys; print(json.load(sys.stdin)["data"][0]["id"])') ||
  fail "/v1/models lists no model"
t1=$(date +%s.%N)
c -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
  -d "{\"model\": \"$model\", \"prompt\": \"Once upon a time\", \"max_tokens\": 16, \"temperature\": 0}" \
  "$base/v1/completions" > "$work/completion.json" || fail "POST /v1/completions failed"
text=$(python3 -c 'import json, sys; r = json.load(open(sys.argv[1])); print(r["usage"]["completion_tokens"], repr(r["choices"][0]["text"]))' "$work/completion.json") ||
  fail "no completion: $(cat "$work/completion.json")"
ok "POST /v1/completions ($model): $text in $(python3 -c "print(f'{$(date +%s.%N) - $t1:.1f}')") s"

banner=$(timeout 10 python3 -c "
import socket
try:
    s = socket.create_connection(('127.0.0.1', $sshport), timeout=5); print(s.recv(64).decode(errors='replace'))
except Exception: pass" || true)
case "$banner" in *SSH*) fail "something answers SSH on port 22: $banner" ;; esac
ok "nothing answers on port 22 (no SSH)"
[ -n "$grown" ] || fail "the console shows no state partition size"
[ "$grown" -gt $((data_mib + 768)) ] || fail "the state partition did not grow: $grown MiB (image: $data_mib MiB, disk +1024 MiB)"
ok "state partition grew on first boot: $data_mib MiB in the image -> $grown MiB file system"
if tr -d '\r' < "$serial" | grep -q -F "$key"; then fail "the API key appeared on the console"; fi

echo "$pass passed, 0 failed"
