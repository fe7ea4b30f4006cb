#!/usr/bin/env bash
# The Debian package, end to end (ctest image.package, label image): builds the .deb with
# scripts/build-deb.sh, installs it into a fresh Debian 12 (minbase) tree made by
# debootstrap, checks what it installed, runs the installed daemon in a chroot as the
# supernode user and asks it for a completion over loopback, runs lintian on the .debs and
# systemd-analyze security/verify on the installed unit, then upgrades (the same files
# under a higher version: a real upgrade's maintainer scripts) and checks that the state
# directory and an edited conffile are kept, and purges and checks that they are gone.
#
#   tests/image/package_test.sh [WORK_DIR]     (default: build/image-test)
#   tests/image/package_test.sh --rootfs-only [WORK_DIR]   only make the cached rootfs
#
# WORK_DIR keeps the pristine debootstrap tree as a tarball (bookworm-minbase.tar), so a
# rerun unpacks it in seconds instead of bootstrapping again; delete it to refresh.
# Environment:
#   SUPERNODE_DEB_REUSE=1      use dist/'s .deb when it has the version build-deb.sh would
#                              build, instead of building again
#   SUPERNODE_UPGRADE_DEB=F    upgrade to this .deb instead of the re-versioned copy
#   SUPERNODE_DEBIAN_MIRROR    Debian mirror (default: the host's apt sources)
#   SUPERNODE_SHARED_DIR       ../shared (models/stories260K.gguf is served when present;
#                              otherwise the installed `supernode gen-model` makes a model)
# Exits 77 (skipped), with a "SKIP: ..." line, without root, debootstrap, dpkg-buildpackage,
# lintian or systemd-analyze, or when the Debian mirror cannot be reached.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
rootfs_only=0
if [ "${1:-}" = "--rootfs-only" ]; then rootfs_only=1; shift; fi
work=${1:-$root/build/image-test}
suite=bookworm

skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }
step() { echo; echo "== $*"; }

[ "$(id -u)" -eq 0 ] || skip "needs root (debootstrap, mount and chroot)"
for tool in debootstrap dpkg-buildpackage dh dpkg-deb lintian systemd-analyze chroot curl python3; do
  command -v "$tool" >/dev/null 2>&1 || skip "$tool is missing (scripts/install-deps.sh --image installs the package tools)"
done

# The host's Debian mirror (one-line or deb822 sources), else deb.debian.org.
sources() { cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null || true; }
mirror=${SUPERNODE_DEBIAN_MIRROR:-}
if [ -z "$mirror" ]; then
  mirror=$(sources | awk -v s="$suite" '
    $1 == "deb" { for (i = 2; i < NF; i++) if ($i ~ /^(https?|file):/ && $i !~ /security/ && $(i + 1) == s) { print $i; exit } }
    /^URIs:/ { uri = $2 } /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == s && uri !~ /security/) { print uri; exit } }')
fi
mirror=${mirror:-http://deb.debian.org/debian}
mirror=${mirror%/}
security=$(sources | awk -v s="$suite-security" '
  $1 == "deb" { for (i = 2; i < NF; i++) if ($i ~ /^(https?|file):/ && $(i + 1) == s) { print $i; exit } }
  /^URIs:/ { uri = $2 } /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == s) { print uri; exit } }')
security=${security%/}
if ! curl -fsS --max-time 30 -o /dev/null "$mirror/dists/$suite/Release"; then
  skip "no network to the Debian mirror $mirror (set SUPERNODE_DEBIAN_MIRROR)"
fi
if [ -n "$security" ] && ! curl -fsS --max-time 30 -o /dev/null "$security/dists/$suite-security/Release"; then
  security=""
fi

mkdir -p "$work"
work=$(cd "$work" && pwd)
rootfs=$work/rootfs
pristine=$work/$suite-minbase.tar
daemon_pid=""

cleanup() {
  if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
    kill -KILL "$daemon_pid" 2>/dev/null || true
    wait "$daemon_pid" 2>/dev/null || true
  fi
  unmount_all
}
unmount_all() {
  # Deepest first; lazily, so a process still holding a file cannot keep them mounted.
  if [ -d "$rootfs" ]; then
    { findmnt -rn -o TARGET | grep -F "$rootfs/" || true; } | sort -r | while read -r m; do umount -l "$m" || true; done
  fi
}
trap cleanup EXIT

# ---- the pristine Debian 12 minbase tree, bootstrapped once and kept as a tarball
if [ ! -f "$pristine" ]; then
  step "debootstrap --variant=minbase $suite from $mirror (once; cached in $pristine)"
  boot=$work/debootstrap
  rm -rf "$boot"
  debootstrap --variant=minbase "$suite" "$boot" "$mirror" >"$work/debootstrap.log" 2>&1 ||
    { tail -20 "$work/debootstrap.log"; fail "debootstrap failed (log: $work/debootstrap.log)"; }
  tar -C "$boot" --numeric-owner -cf "$pristine.tmp" .
  mv "$pristine.tmp" "$pristine"
  rm -rf "$boot"
fi
if [ $rootfs_only = 1 ]; then
  echo "rootfs cached: $pristine"
  exit 0
fi

# ---- the package
step "the .deb"
version=$("$root/scripts/build-deb.sh" --print-version)
deb=$root/dist/supernode_${version}_amd64.deb
dbgsym=$root/dist/supernode-dbgsym_${version}_amd64.deb
if [ "${SUPERNODE_DEB_REUSE:-0}" = 1 ] && [ -f "$deb" ] && [ -f "$dbgsym" ]; then
  echo "reusing $deb (SUPERNODE_DEB_REUSE=1)"
else
  "$root/scripts/build-deb.sh"
fi
[ -f "$deb" ] || fail "scripts/build-deb.sh left no $deb"
[ -f "$dbgsym" ] || fail "scripts/build-deb.sh left no $dbgsym"
ls -l "$deb" "$dbgsym"

# ---- lintian
step "lintian"
lintian_out=$work/lintian.txt
lintian_rc=0
# As nobody: lintian unpacks what it checks and warns when run as root.
lintian_as=()
if id nobody >/dev/null 2>&1 && command -v setpriv >/dev/null 2>&1; then
  lintian_as=(setpriv --reuid=nobody --regid=nogroup --clear-groups env HOME=/tmp)
fi
"${lintian_as[@]}" lintian -I --fail-on error,warning --show-overrides "$deb" "$dbgsym" >"$lintian_out" 2>&1 || lintian_rc=$?
cat "$lintian_out"
overridden=$(grep -c '^O: ' "$lintian_out" || true)
if [ $lintian_rc -ne 0 ] || grep -q '^[EW]: ' "$lintian_out"; then
  fail "lintian reports errors or warnings (exit $lintian_rc)"
fi
ok "lintian: no error, no warning ($overridden overridden, each with its reason in debian/supernode.lintian-overrides)"

# ---- a fresh tree with the package installed
step "fresh $suite tree in $rootfs"
unmount_all
rm -rf "$rootfs"
mkdir -p "$rootfs"
tar -C "$rootfs" --numeric-owner -xpf "$pristine"
{
  echo "deb $mirror $suite main"
  echo "deb $mirror $suite-updates main"
  if [ -n "$security" ]; then echo "deb $security $suite-security main"; fi
} >"$rootfs/etc/apt/sources.list"
cp -L /etc/resolv.conf "$rootfs/etc/resolv.conf" 2>/dev/null || true
# Services never start in the chroot (invoke-rc.d and deb-systemd-invoke ask this).
printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"
chmod 0755 "$rootfs/usr/sbin/policy-rc.d"
mount -t proc proc "$rootfs/proc"
mount -t sysfs -o ro sysfs "$rootfs/sys"
mount -t tmpfs -o mode=0755 tmpfs "$rootfs/run"
# A /dev of its own (not the host's, so nothing mounted under it reaches the host): the
# usual character devices and a private devpts instance for apt's and dpkg's terminals.
mount -t tmpfs -o mode=0755,nosuid tmpfs "$rootfs/dev"
for node in null:1:3 zero:1:5 full:1:7 random:1:8 urandom:1:9 tty:5:0; do
  IFS=: read -r name major minor <<<"$node"
  mknod -m 0666 "$rootfs/dev/$name" c "$major" "$minor"
done
mkdir -m 0755 "$rootfs/dev/pts"
mkdir -m 1777 "$rootfs/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$rootfs/dev/pts"
ln -s pts/ptmx "$rootfs/dev/ptmx"
ln -s /proc/self/fd "$rootfs/dev/fd"
ln -s /proc/self/fd/0 "$rootfs/dev/stdin"
ln -s /proc/self/fd/1 "$rootfs/dev/stdout"
ln -s /proc/self/fd/2 "$rootfs/dev/stderr"

in_root() { chroot "$rootfs" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 "$@"; }
apt_in_root() { in_root apt-get -y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@"; }

cp "$deb" "$rootfs/tmp/"
apt_in_root update >"$work/apt.log" 2>&1 || { tail -20 "$work/apt.log"; fail "apt-get update in the chroot failed"; }
step "apt-get install ./$(basename "$deb")"
# bash-completion: to try the completion file below.
apt_in_root install --no-install-recommends "/tmp/$(basename "$deb")" bash-completion 2>&1 | tee -a "$work/apt.log" | grep -E '^(Setting up supernode|Unpacking supernode|E:|W:|dpkg:)|supernode' || true
[ "$(in_root dpkg-query -W -f='${Status} ${Version}' supernode)" = "install ok installed $version" ] ||
  fail "supernode $version is not installed (log: $work/apt.log)"
ok "installed supernode $version with its dependencies: $(in_root dpkg-query -W -f='${Depends}' supernode)"

step "installed files"
for f in /usr/bin/supernoded /usr/bin/supernode; do
  [ -x "$rootfs$f" ] || fail "$f missing"
done
for f in /lib/systemd/system/supernode.service /lib/systemd/system/supernode.socket \
  /usr/lib/sysusers.d/supernode.conf /usr/lib/tmpfiles.d/supernode.conf \
  /etc/supernode/supernode.toml /usr/share/man/man8/supernoded.8.gz /usr/share/man/man1/supernode.1.gz \
  /usr/share/bash-completion/completions/supernode /usr/share/doc/supernode/README.md \
  /usr/share/doc/supernode/copyright /usr/share/doc/supernode/README.Debian; do
  [ -f "$rootfs$f" ] || fail "$f missing"
done
ok "binaries, units, sysusers.d, tmpfiles.d, config, man pages, completion, docs"
in_root dpkg-query -W -f='${Conffiles}\n' supernode | grep -q '^ /etc/supernode/supernode.toml ' ||
  fail "/etc/supernode/supernode.toml is not a conffile"
ok "/etc/supernode/supernode.toml is a conffile"
passwd=$(in_root getent passwd supernode) || fail "no supernode user (sysusers.d did not run)"
case $passwd in
  supernode:*:/var/lib/supernode:/usr/sbin/nologin) ok "user: $passwd" ;;
  *) fail "unexpected supernode user: $passwd" ;;
esac
perm=$(in_root stat -c '%a %U %G' /etc/supernode/supernode.toml)
[ "$perm" = "640 root supernode" ] || fail "supernode.toml is $perm, not 0640 root:supernode (tmpfiles.d did not run)"
ok "supernode.toml: 0640 root:supernode; /etc/supernode: $(in_root stat -c '%a %U:%G' /etc/supernode)"
[ -L "$rootfs/etc/systemd/system/multi-user.target.wants/supernode.service" ] ||
  fail "supernode.service is not enabled"
[ ! -e "$rootfs/etc/systemd/system/sockets.target.wants/supernode.socket" ] ||
  fail "supernode.socket is enabled; it should not be"
ok "supernode.service enabled, supernode.socket not"
in_root supernoded --help >/dev/null || fail "supernoded --help"
in_root supernode --help >/dev/null || fail "supernode --help"
for page in man8/supernoded.8.gz man1/supernode.1.gz; do
  warnings=$(zcat "$rootfs/usr/share/man/$page" | LC_ALL=C.UTF-8 groff -man -Tutf8 -ww -z 2>&1 || true)
  [ -z "$warnings" ] || fail "$page: groff warnings: $warnings"
done
ok "man pages render without groff warnings"
completions=$(in_root bash -c '
  source /usr/share/bash-completion/bash_completion
  source /usr/share/bash-completion/completions/supernode
  complete_words() { COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
    COMPREPLY=(); _supernode; echo "${COMPREPLY[*]}"; }
  complete_words supernode ke
  complete_words supernode keys cr
  complete_words supernode keys create --t
  complete_words supernode gen-model --arch q
  complete_words supernode --admin-socket /run/x.sock moderation add t --scope o
  complete_words supernode update ""') || fail "bash completion failed"
expected=$'keys\ncreate\n--tenant --tpm\nqwen2 qwen3\noutput\nverify apply make'
[ "$completions" = "$expected" ] || fail "bash completion gave: $completions"
ok "bash completion: commands, sub-commands, flags, flag values"

# ---- the installed daemon, run in the chroot as the supernode user
step "supernoded in the chroot"
# What the unit's StateDirectory= and RuntimeDirectory= would make.
in_root install -d -o supernode -g supernode -m 0750 /var/lib/supernode /var/lib/supernode/models /run/supernode
shared=${SUPERNODE_SHARED_DIR:-$root/../shared}
in_root setpriv --reuid=supernode --regid=supernode --init-groups \
  supernode gen-model -o /var/lib/supernode/models/tiny.gguf >/dev/null ||
  fail "supernode gen-model as the supernode user"
ok "supernode gen-model wrote /var/lib/supernode/models/tiny.gguf"
model=/var/lib/supernode/models/tiny.gguf
if [ -f "$shared/models/stories260K.gguf" ]; then
  install -m 0640 "$shared/models/stories260K.gguf" "$rootfs/var/lib/supernode/models/stories260K.gguf"
  in_root chown supernode:supernode /var/lib/supernode/models/stories260K.gguf
  model=/var/lib/supernode/models/stories260K.gguf
fi
model_id=$(basename "$model" .gguf)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

start_daemon() {
  # The packaged config (/etc/supernode/supernode.toml, 0640 root:supernode) is read.
  chroot "$rootfs" env -i PATH=/usr/bin:/bin LANG=C.UTF-8 \
    setpriv --reuid=supernode --regid=supernode --init-groups \
    supernoded --plain-http --listen "127.0.0.1:$port" --state-dir /var/lib/supernode \
    --admin-socket /run/supernode/admin.sock --metrics-listen "" -m "$model" -t 1 --context 256 \
    --max-seqs 2 --kv-host-mb 16 --kv-disk-mb 16 >>"$work/daemon.log" 2>&1 &
  daemon_pid=$!
  for _ in $(seq 1 240); do
    if curl -fsS -o /dev/null "http://127.0.0.1:$port/readyz" 2>/dev/null; then return 0; fi
    kill -0 "$daemon_pid" 2>/dev/null || { tail -20 "$work/daemon.log"; fail "supernoded exited (log: $work/daemon.log)"; }
    sleep 0.5
  done
  tail -20 "$work/daemon.log"
  fail "supernoded not ready after 120 s"
}
stop_daemon() {
  kill -TERM "$daemon_pid"
  for _ in $(seq 1 120); do
    kill -0 "$daemon_pid" 2>/dev/null || break
    sleep 0.5
  done
  if kill -0 "$daemon_pid" 2>/dev/null; then fail "supernoded did not stop on SIGTERM within 60 s"; fi
  wait "$daemon_pid" || true
  daemon_pid=""
}

: >"$work/daemon.log"
start_daemon
ok "supernoded ready on 127.0.0.1:$port serving $model_id"
key=$(cat "$rootfs/var/lib/supernode/initial-api-key")
[ "$(stat -c '%a' "$rootfs/var/lib/supernode/initial-api-key")" = 600 ] || fail "initial-api-key is not mode 0600"
[ -f "$rootfs/var/lib/supernode/setup-token" ] || fail "no setup-token in the state directory"
[ "$(in_root stat -c '%a %U' /var/lib/supernode/setup-token)" = "600 supernode" ] || fail "setup-token is not 0600 supernode"
ok "initial-api-key and setup-token: mode 0600, owned by supernode"
answer=$(curl -fsS "http://127.0.0.1:$port/v1/completions" -H "Authorization: Bearer $key" \
  -H "Content-Type: application/json" \
  -d "{\"model\": \"$model_id\", \"prompt\": \"Once upon a time\", \"max_tokens\": 24, \"temperature\": 0}") ||
  fail "POST /v1/completions failed"
text=$(printf '%s' "$answer" | python3 -c 'import json, sys; r = json.load(sys.stdin); print(r["choices"][0]["text"])') ||
  fail "unexpected answer: $answer"
ok "POST /v1/completions answered: \"Once upon a time$(printf '%s' "$text" | tr '\n' ' ')\""
served_version=$(curl -fsS "http://127.0.0.1:$port/api/admin/state" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["version"])') || fail "GET /api/admin/state"
[ "$served_version" = "$version" ] || fail "the daemon reports version $served_version, the package is $version"
ok "the daemon reports the package's version ($served_version)"
status=$(in_root supernode status) || fail "supernode status (as root, the default admin socket)"
ok "supernode status over /run/supernode/admin.sock: $(echo "$status" | head -1)"
stop_daemon
ok "supernoded drained and exited on SIGTERM"

# ---- systemd-analyze on the installed units
step "systemd-analyze security / verify (offline, --root=$rootfs)"
security=$(systemd-analyze security --offline=true --root="$rootfs" supernode.service 2>&1) ||
  { echo "$security" | tail -5; fail "systemd-analyze security failed"; }
exposure=$(echo "$security" | sed -n 's/.*Overall exposure level for supernode.service: \([0-9.]*\).*/\1/p')
echo "$security" | tail -1
awk -v e="$exposure" 'BEGIN { exit !(e != "" && e <= 2.0) }' || fail "exposure $exposure is above 2.0"
ok "systemd-analyze security: exposure $exposure (<= 2.0)"
# --man=no: Documentation=man:supernoded(8) would be looked up on the host, not in the tree.
verify=$(systemd-analyze verify --man=no --root="$rootfs" supernode.service supernode.socket 2>&1) ||
  { echo "$verify"; fail "systemd-analyze verify failed"; }
[ -z "$verify" ] || { echo "$verify"; fail "systemd-analyze verify printed warnings"; }
ok "systemd-analyze verify supernode.service supernode.socket: clean"

# ---- upgrade: the state directory and an edited conffile are kept
step "upgrade"
echo "keep me" >"$rootfs/var/lib/supernode/keep-me"
echo "# a site's edit" >>"$rootfs/etc/supernode/supernode.toml"
if [ -n "${SUPERNODE_UPGRADE_DEB:-}" ]; then
  upgrade_deb=$SUPERNODE_UPGRADE_DEB
else
  # The same files under a higher version: dpkg runs a real upgrade (old prerm upgrade,
  # new preinst/postinst with the old version) without a second build.
  unpacked=$work/upgrade-deb
  rm -rf "$unpacked"
  dpkg-deb -R "$deb" "$unpacked"
  sed -i "s/^Version: .*/Version: ${version}+upgradetest1/" "$unpacked/DEBIAN/control"
  upgrade_deb=$work/supernode_${version}+upgradetest1_amd64.deb
  dpkg-deb --root-owner-group -Zxz -b "$unpacked" "$upgrade_deb" >/dev/null
  rm -rf "$unpacked"
fi
cp "$upgrade_deb" "$rootfs/tmp/"
apt_in_root install --no-install-recommends "/tmp/$(basename "$upgrade_deb")" >>"$work/apt.log" 2>&1 ||
  { tail -20 "$work/apt.log"; fail "upgrade failed"; }
new_version=$(in_root dpkg-query -W -f='${Version}' supernode)
[ "$new_version" != "$version" ] || [ -n "${SUPERNODE_UPGRADE_DEB:-}" ] || fail "still at $version after the upgrade"
for f in keep-me state.db initial-api-key setup-token audit.key "models/$model_id.gguf"; do
  [ -e "$rootfs/var/lib/supernode/$f" ] || fail "the upgrade lost /var/lib/supernode/$f"
done
grep -q "^# a site's edit" "$rootfs/etc/supernode/supernode.toml" || fail "the upgrade replaced the edited conffile"
[ "$(in_root stat -c '%a %U %G' /etc/supernode/supernode.toml)" = "640 root supernode" ] ||
  fail "supernode.toml lost 0640 root:supernode in the upgrade"
ok "upgraded $version -> $new_version: /var/lib/supernode (keep-me, state.db, key, model) and the edited conffile kept"
start_daemon
curl -fsS -o /dev/null "http://127.0.0.1:$port/v1/models" -H "Authorization: Bearer $key" ||
  fail "the key made before the upgrade no longer works"
stop_daemon
ok "the daemon starts on the kept state; the key made before the upgrade still works"

# ---- remove keeps the state, purge removes it
step "remove, purge"
apt_in_root remove supernode >>"$work/apt.log" 2>&1 || fail "apt-get remove failed"
[ ! -e "$rootfs/usr/bin/supernoded" ] || fail "remove left /usr/bin/supernoded"
[ -f "$rootfs/var/lib/supernode/keep-me" ] || fail "remove deleted /var/lib/supernode"
[ -f "$rootfs/etc/supernode/supernode.toml" ] || fail "remove deleted the conffile"
ok "apt-get remove: binaries gone, /var/lib/supernode and /etc/supernode kept"
apt_in_root purge supernode >>"$work/apt.log" 2>&1 || fail "apt-get purge failed"
[ ! -e "$rootfs/var/lib/supernode" ] || fail "purge left /var/lib/supernode"
[ ! -e "$rootfs/etc/supernode" ] || fail "purge left /etc/supernode"
[ ! -e "$rootfs/etc/systemd/system/multi-user.target.wants/supernode.service" ] || fail "purge left the unit enabled"
ok "apt-get purge: /var/lib/supernode and /etc/supernode removed"

echo
echo "PASS: supernode $version: installed, served a completion, lintian clean, exposure $exposure, upgrade kept the state, purge removed it"
