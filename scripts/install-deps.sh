#!/usr/bin/env bash
# Installs the Debian 12 packages Supernode builds and tests with, only those missing.
# Called by the README's commands; safe to run again. Needs root (or sudo) only when
# something is missing.
set -euo pipefail
pkgs=(build-essential cmake ninja-build pkg-config ccache python3
      libhwloc-dev libpcre2-dev cpputest libbenchmark-dev libsqlite3-dev libssl-dev
      libboost-dev nlohmann-json3-dev libtomlplusplus-dev libsystemd-dev prometheus curl
      systemd   # systemd: systemd-socket-activate for the daemon's socket-activation test
      openssl   # the TLS policy test (openssl s_client)
      clang libclang-rt-14-dev  # the thread-safety analysis and the libFuzzer targets
      wrk       # the load test (tests/load)
      libargon2-dev   # admin users' password hashes (Argon2id)
      libarchive-dev  # the CLI's signed update bundles (tar)
      zlib1g-dev libjs-chart.js   # the web UI's assets: gzip at build time, Chart.js embedded
      chromium) # the web UI's browser tests (playwright-core drives it headless)
# --image adds the tools of the Debian package and the disk image (scripts/build-deb.sh
# and scripts/build-image.sh run `install-deps.sh --image`; the image tests, label image,
# skip themselves, saying so, without them). The README's test command leaves them out.
if [ "${1:-}" = "--image" ]; then
  pkgs+=(debhelper dpkg-dev fakeroot lintian   # the package (debian/control's build tools)
         debootstrap                           # Debian 12 trees: the package test's, the image's
         e2fsprogs fdisk dosfstools mtools     # file systems and a GPT from files, no loop devices
         qemu-system-x86 ovmf)                 # the image's boot test (UEFI firmware in /usr/share/OVMF)
fi
# Node.js and npm for the JavaScript daemon tests (tests/daemon/js): Debian's packages, only
# when no `node` is on PATH at all, so a NodeSource or nvm install is left alone.
if ! command -v node >/dev/null 2>&1; then pkgs+=(nodejs npm); fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
echo "install-deps: installing ${missing[*]}" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
