#!/usr/bin/env bash
# Installs the Debian 12 packages that building the .deb (scripts/build-deb.sh), the disk
# image (scripts/build-image.sh) and their tests (tests/image/, label image) need, only
# those missing. Kept apart from scripts/install-deps.sh: the README's test command installs
# only what every build needs, and the image tests skip themselves (saying so) where these
# tools are absent. scripts/build-deb.sh and scripts/build-image.sh call this themselves.
set -euo pipefail
pkgs=(debhelper dpkg-dev fakeroot lintian   # the package (debian/control's build tools)
      libarchive-dev                        # the CLI's update bundles (also in install-deps.sh)
      debootstrap                           # Debian 12 trees: the package test's, the image's
      e2fsprogs fdisk dosfstools mtools     # file systems and a GPT from files, no loop devices
      qemu-system-x86 ovmf)                 # the image's boot test (UEFI firmware in /usr/share/OVMF)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
echo "install-image-deps: installing ${missing[*]}" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
