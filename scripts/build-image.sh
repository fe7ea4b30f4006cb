#!/usr/bin/env bash
# Builds the Supernode appliance disk image: a bootable x86-64 GPT/UEFI raw disk with
# Debian 12 (from Debian's own packages, debootstrap) and the supernode .deb installed and
# enabled. No loop devices or mounts of the image are needed: the file systems are made
# from directories (mke2fs -d, mkfs.vfat + mtools), the partition table with sfdisk on a
# sparse file, and the pieces are placed with dd. Runs as root (debootstrap, chroot).
#
#   scripts/build-image.sh [--deb FILE] [--size 8G] [-o dist/supernode-VERSION.img]
#                          [--root-size 3G] [--work-dir build-image] [--test-model FILE]
#
# Layout (GPT): 1 ESP 256 MiB (FAT32: systemd-boot, kernel, initrd), 2 root (ext4,
# --root-size), 3 /var/lib/supernode (ext4, the rest of --size; grown to fill the disk at
# boot by systemd-repart + x-systemd.growfs). image/appliance/ holds the files laid into
# the root file system; image/README.md describes the image.
#
# The debootstrap result is cached in build-image/cache ($SUPERNODE_IMAGE_CACHE; keyed by
# suite, mirror and package list), so a rebuild only copies it, installs the .deb and makes
# the file systems.
# --test-model puts a model file at /var/lib/supernode/incoming/test-model.gguf (standing in for a USB
# stick's mount point) and smaller KV tiers in the config: the boot test imports it through
# the admin API as an administrator would. The models directory stays empty either way,
# and the daemon starts without a model.
set -euo pipefail
umask 022

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
deb="" size="8G" out="" root_size="3G" work="$repo/build-image" test_model=""
cache="${SUPERNODE_IMAGE_CACHE:-$repo/build-image/cache}" base_only=0
suite="bookworm"
mirror="${SUPERNODE_IMAGE_MIRROR:-http://deb.debian.org/debian}"
security_mirror="${SUPERNODE_IMAGE_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"

usage() { sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "build-image: $*" >&2; exit 1; }
log() { echo "build-image: $*" >&2; }

while [ $# -gt 0 ]; do
  case "$1" in
    --deb) deb="$2"; shift 2 ;;
    --size) size="$2"; shift 2 ;;
    -o|--output) out="$2"; shift 2 ;;
    --root-size) root_size="$2"; shift 2 ;;
    --work-dir) work="$2"; shift 2 ;;
    --test-model) test_model="$2"; shift 2 ;;
    --base-only) base_only=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done

[ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap and chroot)"
# The Debian packages this script needs on the build host.
"$(dirname "$0")/install-deps.sh" --image
need=(debootstrap:debootstrap mke2fs:e2fsprogs sfdisk:fdisk mkfs.vfat:dosfstools
      mcopy:mtools mmd:mtools dpkg-deb:dpkg chroot:coreutils)
missing=()
for t in "${need[@]}"; do command -v "${t%%:*}" >/dev/null 2>&1 || missing+=("${t#*:}"); done
[ ${#missing[@]} -eq 0 ] || die "missing tools; apt-get install ${missing[*]}"

# Sizes in MiB.
to_mib() {
  local v="$1" n
  case "$v" in
    *[Gg]) n="${v%[Gg]}"; echo $((n * 1024)) ;;
    *[Mm]) n="${v%[Mm]}"; echo "$n" ;;
    *) [[ "$v" =~ ^[0-9]+$ ]] || die "bad size: $v"; echo $((v / 1048576)) ;;
  esac
}
size_mib=$(to_mib "$size")
root_mib=$(to_mib "$root_size")
esp_mib=256
data_min_mib=256
# 1 MiB before the ESP, 1 MiB at the end for the backup GPT.
[ "$size_mib" -ge $((1 + esp_mib + root_mib + data_min_mib + 1)) ] ||
  die "--size $size is too small for ESP ${esp_mib}M + root $root_size + data ${data_min_mib}M"

mkdir -p "$work"
work="$(realpath "$work")"
appliance="$repo/image/appliance"

# ---- mounts for chroot steps (unmounted on any exit) ----------------------------------
mounted=()
chroot_mounts() {
  local r="$1" d
  for d in proc sys dev dev/pts; do
    mkdir -p "$r/$d"
    case "$d" in
      proc) mount -t proc proc "$r/proc" ;;
      sys) mount -t sysfs sysfs "$r/sys" ;;
      dev) mount --bind /dev "$r/dev" ;;
      dev/pts) mount -t devpts devpts "$r/dev/pts" -o newinstance,ptmxmode=0666 ;;
    esac || die "mounting $r/$d for the chroot failed"
    mounted=("$r/$d" "${mounted[@]}")
  done
}
chroot_umounts() {
  local m
  for m in "${mounted[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
  mounted=()
}
trap chroot_umounts EXIT
# rm -rf of a tree that may still hold mounts from an interrupted run (never into /dev).
safe_rm() {
  local d m
  [ -e "$1" ] || return 0
  d="$(realpath "$1")"
  awk -v p="$d/" 'index($2, p) == 1 { print $2 }' /proc/mounts | sort -r | while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" || die "cannot unmount $m"
  done
  rm -rf --one-file-system "$d"
}
in_root() { chroot "$rootfs" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
  DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 HOME=/root "$@"; }

# ---- stage 1: the debootstrap base, cached ---------------------------------------------
# The packages beyond minbase: init, udev, the kernel and its initramfs, systemd-boot's EFI
# binaries (copied onto the ESP), iproute2 and openssl (the first-boot unit), dosfstools
# (fsck of the ESP). No openssh-server: the appliance has no remote shell.
include="systemd,systemd-sysv,udev,dbus,kmod,linux-image-amd64,initramfs-tools,zstd,systemd-boot-efi,iproute2,openssl,procps,less,e2fsprogs,dosfstools"
key="$(printf '%s\n' 3 "$suite" "$mirror" "$security_mirror" "$include" | sha256sum | cut -c1-12)"
mkdir -p "$cache"
base="$(realpath "$cache")/base-$key"
if [ ! -f "$base/.complete" ]; then
  log "debootstrap $suite into $base (cached for later builds)"
  safe_rm "$base"
  mkdir -p "$base"
  debootstrap --variant=minbase --include="$include" "$suite" "$base" "$mirror" >&2
  rootfs="$base"
  cat > "$rootfs/etc/apt/sources.list" <<EOF
deb $mirror $suite main
deb $mirror $suite-updates main
deb $security_mirror $suite-security main
EOF
  cp -L /etc/resolv.conf "$rootfs/etc/resolv.conf" 2>/dev/null || true
  chroot_mounts "$rootfs"
  printf '#!/bin/sh\nexit 101\n' > "$rootfs/usr/sbin/policy-rc.d"; chmod 755 "$rootfs/usr/sbin/policy-rc.d"
  in_root apt-get update -qq >&2
  in_root apt-get -y -qq dist-upgrade >&2   # bookworm-updates and -security
  in_root apt-get clean
  rm -f "$rootfs/usr/sbin/policy-rc.d"
  chroot_umounts
  touch "$base/.complete"
fi

[ "$base_only" -eq 0 ] || { log "base ready: $base"; exit 0; }

if [ -z "$deb" ]; then
  deb="$(ls -t "$repo"/dist/supernode_*_amd64.deb 2>/dev/null | head -n 1 || true)"
  [ -n "$deb" ] || die "no dist/supernode_*_amd64.deb (scripts/build-deb.sh makes it); or pass --deb FILE"
fi
[ -f "$deb" ] || die "no such .deb: $deb"
deb="$(realpath "$deb")"
[ "$(dpkg-deb -f "$deb" Package)" = supernode ] || die "$deb is not the supernode package"
version="$(dpkg-deb -f "$deb" Version)"
[ -n "$out" ] || out="$repo/dist/supernode-${version}.img"
mkdir -p "$(dirname "$out")" "$work"
out="$(realpath -m "$out")"
work="$(realpath "$work")"
if [ -n "$test_model" ]; then [ -f "$test_model" ] || die "no such model: $test_model"; test_model="$(realpath "$test_model")"; fi

# ---- stage 2: the appliance root file system -------------------------------------------
rootfs="$work/rootfs"
log "root file system in $rootfs"
safe_rm "$rootfs"
rm -rf "$work/data"
cp -a "$base" "$rootfs"
rm -f "$rootfs/.complete"
cp -L /etc/resolv.conf "$rootfs/etc/resolv.conf" 2>/dev/null || true
chroot_mounts "$rootfs"
# No service starts inside the build chroot.
printf '#!/bin/sh\nexit 101\n' > "$rootfs/usr/sbin/policy-rc.d"; chmod 755 "$rootfs/usr/sbin/policy-rc.d"
cp "$deb" "$rootfs/tmp/supernode.deb"
log "installing $(basename "$deb") and its dependencies"
in_root apt-get update -qq >&2
in_root apt-get install -y -qq --no-install-recommends /tmp/supernode.deb >&2
in_root apt-get clean
rm -f "$rootfs/tmp/supernode.deb"
# Only the newest kernel (a dist-upgrade of the base may have added one).
kver="$(ls "$rootfs/boot" | sed -n 's/^vmlinuz-//p' | sort -V | tail -n 1)"
old_kernels="$(ls "$rootfs/boot" | sed -n 's/^vmlinuz-//p' | grep -v -x -F "$kver" | sed 's/^/linux-image-/' || true)"
if [ -n "$old_kernels" ]; then in_root apt-get purge -y -qq $old_kernels >&2; fi
dpkg-query --admindir="$rootfs/var/lib/dpkg" -W supernode >/dev/null || die "supernode is not installed in the root file system"

# Part identities: fresh for each build.
uuid() { cat /proc/sys/kernel/random/uuid; }
esp_uuid=$(uuid) root_uuid=$(uuid) data_uuid=$(uuid)

# Files of the appliance (image/appliance/ mirrors the root file system).
cp -a --no-preserve=ownership "$appliance/rootfs/." "$rootfs/"
echo supernode > "$rootfs/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tsupernode\n::1\tlocalhost ip6-localhost ip6-loopback\n' > "$rootfs/etc/hosts"
cat > "$rootfs/etc/fstab" <<EOF
# The appliance's file systems, by GPT partition UUID (scripts/build-image.sh).
PARTUUID=$root_uuid  /                   ext4  errors=remount-ro                      0 1
PARTUUID=$esp_uuid  /boot/efi           vfat  umask=0077,nofail                      0 0
# The state (database, TLS pair, models, disk KV cache): grown to the partition at boot.
PARTUUID=$data_uuid  /var/lib/supernode  ext4  nodev,nosuid,noexec,x-systemd.growfs  0 2
EOF
mkdir -p "$rootfs/boot/efi"
# The initrd again, with the appliance's initramfs-tools settings (fsck.ext4 for the root).
log "initramfs"
in_root update-initramfs -u -k all >&2

# The appliance listens on every address with HTTPS (the packaged default is loopback).
toml="$rootfs/etc/supernode/supernode.toml"
[ -f "$toml" ] || die "the package installed no /etc/supernode/supernode.toml"
# Only the top-level keys (before the first [table]): [admin] has a listen of its own.
awk 'BEGIN { t = 0; done = 0 }
     /^[[:space:]]*\[/ { t = 1 }
     !t && !done && /^listen[[:space:]]*=/ { print "listen = \"0.0.0.0:8443\"   # the appliance image: every address (scripts/build-image.sh)"; done = 1; next }
     !t && /^plain_http[[:space:]]*=/ { print "plain_http = false"; next }
     { print }
     END { if (!done) exit 1 }' "$toml" > "$toml.new" || die "no top-level listen = line in supernode.toml"
cat "$toml.new" > "$toml"; rm -f "$toml.new"

# The state partition's contents: the package's /var/lib/supernode (normally empty) plus an
# empty models directory, owned by the service user that the package's sysusers.d made.
data="$work/data"
mkdir -p "$data"
if [ -d "$rootfs/var/lib/supernode" ]; then cp -a "$rootfs/var/lib/supernode/." "$data/"; rm -rf "$rootfs/var/lib/supernode"; fi
mkdir -p "$rootfs/var/lib/supernode" "$data/models"
# The package's sysusers.d and tmpfiles.d snippets, applied now (also at every boot), so the
# state partition's files get the user's final uid.
in_root systemd-sysusers >&2
in_root systemd-tmpfiles --create supernode.conf >&2 || true
sn_uid=$(in_root id -u supernode) || die "no supernode user in the image"
sn_gid=$(in_root id -g supernode)
chown "$sn_uid:$sn_gid" "$data" "$data/models"
chmod 0750 "$data" "$data/models"
if [ -n "$test_model" ]; then
  m="$(basename "$test_model")"
  log "test build: $m as /var/lib/supernode/incoming/test-model.gguf, to be imported"
  install -d -m 0750 -o "$sn_uid" -g "$sn_gid" "$data/incoming"
  install -m 0640 -o "$sn_uid" -g "$sn_gid" "$test_model" "$data/incoming/test-model.gguf"
  # Small enough for a test VM.
  sed -i -e 's|^host_mb = .*|host_mb = 64|' -e 's|^disk_mb = .*|disk_mb = 256|' "$toml"
  echo "test build with $m" > "$rootfs/etc/supernode-image-test-build"
fi

# Services: the daemon, the network, the first-boot console unit; no SSH.
in_root systemctl enable supernode.service systemd-networkd.service \
  supernode-firstboot.service supernode-console-issue.service supernode-console-issue.path >&2
in_root systemctl disable supernode.socket >/dev/null 2>&1 || true
if [ -e "$rootfs/lib/systemd/system/ssh.service" ]; then in_root systemctl disable ssh.service >&2 || true; fi
in_root systemctl mask systemd-networkd-wait-online.service >&2   # nothing waits for DHCP

# A fresh machine-id on first boot (ConditionFirstBoot, DHCP DUID); no build leftovers.
: > "$rootfs/etc/machine-id"
rm -f "$rootfs/var/lib/dbus/machine-id" "$rootfs/usr/sbin/policy-rc.d" "$rootfs/etc/resolv.conf"
rm -rf "$rootfs/var/lib/apt/lists/"* "$rootfs/var/cache/apt/"*.bin "$rootfs/tmp/"* "$rootfs/var/tmp/"*
: > "$rootfs/etc/resolv.conf"   # air-gapped: no resolver is configured
chroot_umounts

# Kernel and initrd (the newest the package installed) onto the ESP.
kver="$(ls "$rootfs/boot" | sed -n 's/^vmlinuz-//p' | sort -V | tail -n 1)"
[ -n "$kver" ] && [ -f "$rootfs/boot/initrd.img-$kver" ] || die "no kernel/initrd in $rootfs/boot"
log "kernel $kver"
sdboot="$rootfs/usr/lib/systemd/boot/efi/systemd-bootx64.efi"
[ -f "$sdboot" ] || die "no systemd-bootx64.efi in the root file system (systemd-boot-efi)"
cmdline="root=PARTUUID=$root_uuid ro console=tty0 console=ttyS0,115200 systemd.gpt_auto=0"

# ---- stage 3: file systems and the disk ------------------------------------------------
img="$out.tmp"
rm -f "$img"
truncate -s "${size_mib}M" "$img"
sfdisk -q "$img" <<EOF
label: gpt
start=1MiB, size=${esp_mib}MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, uuid=$esp_uuid, name="esp"
size=${root_mib}MiB, type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, uuid=$root_uuid, name="root"
type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=$data_uuid, name="supernode-data"
EOF
# start and size (512-byte sectors) of partition N
part() { sfdisk -d "$img" | awk -v n="$img$1 " 'index($0, n) == 1 { gsub(/[=,]/, " "); for (i = 1; i <= NF; i++) { if ($i == "start") s = $(i+1); if ($i == "size") z = $(i+1) } print s, z }'; }
place() {  # place FILE at partition N (MiB-aligned)
  local s; read -r s _ < <(part "$2")
  [ $((s % 2048)) -eq 0 ] || die "partition $2 is not MiB-aligned"
  dd if="$1" of="$img" bs=1M seek=$((s / 2048)) conv=notrunc,sparse status=none
}
read -r _ data_sectors < <(part 3)

log "ESP (FAT32, ${esp_mib} MiB)"
esp="$work/esp.img"
rm -f "$esp"
mkfs.vfat -F 32 -n ESP -i "${esp_uuid:0:8}" -C "$esp" $((esp_mib * 1024)) >/dev/null
mmd -i "$esp" ::/EFI ::/EFI/BOOT ::/loader ::/loader/entries ::/supernode
mcopy -i "$esp" "$sdboot" ::/EFI/BOOT/BOOTX64.EFI
mcopy -i "$esp" "$rootfs/boot/vmlinuz-$kver" ::/supernode/vmlinuz
mcopy -i "$esp" "$rootfs/boot/initrd.img-$kver" ::/supernode/initrd.img
printf 'default supernode.conf\ntimeout 2\neditor no\nconsole-mode keep\n' > "$work/loader.conf"
printf 'title   Supernode %s (Debian 12, %s)\nlinux   /supernode/vmlinuz\ninitrd  /supernode/initrd.img\noptions %s\n' \
  "$version" "$kver" "$cmdline" > "$work/supernode.conf"
mcopy -i "$esp" "$work/loader.conf" ::/loader/loader.conf
mcopy -i "$esp" "$work/supernode.conf" ::/loader/entries/supernode.conf
place "$esp" 1
rm -f "$esp"

log "root file system (ext4, $root_size)"
fsimg="$work/fs.img"
rm -f "$fsimg"
mke2fs -q -t ext4 -L root -d "$rootfs" "$fsimg" "${root_mib}M" || die "mke2fs of the root file system failed (is --root-size large enough?)"
place "$fsimg" 2
rm -f "$fsimg"

log "state file system (ext4, $((data_sectors / 2048)) MiB)"
mke2fs -q -t ext4 -L supernode-data -m 1 -d "$data" "$fsimg" "$((data_sectors / 2))k"
place "$fsimg" 3
rm -f "$fsimg"

mv -f "$img" "$out"
log "wrote $out ($size sparse; $(du -h "$out" | cut -f1) used)"
echo "$out"
