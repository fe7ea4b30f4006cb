#!/usr/bin/env bash
# Builds the Debian binary package of this tree: dist/supernode_<version>_amd64.deb and its
# debug symbols, dist/supernode-dbgsym_<version>_amd64.deb (plus the .buildinfo and
# .changes). One command, no arguments; needs the build dependencies of debian/control
# (`scripts/install-deps.sh --image`, run here, installs them).
#
# The version has one source, CMakeLists.txt's `project(supernode VERSION x.y.z)`: at a tag
# vx.y.z it is x.y.z, elsewhere x.y.z+gitYYYYMMDD.HASH (the commit's date and short hash),
# and x.y.z when there is no git. This script writes debian/changelog with that version in a
# staging copy of the tree (build-deb/supernode/; the tree itself keeps no changelog to
# drift), and debian/rules passes it to CMake as SUPERNODE_VERSION_STRING, so
# `supernode --version` and the daemon report the package's version.
#
#   scripts/build-deb.sh                  build
#   scripts/build-deb.sh --print-version  print the version it would build, and exit
#
# Environment: SUPERNODE_CUDA=AUTO (default) | ON | OFF (OFF skips the slow CUDA backend
# for quick iterations); SUPERNODE_DEB_VERSION overrides the version; DEB_BUILD_OPTIONS is
# passed on (parallel=N defaults to the CPU count). ccache, when installed, is shared with
# scripts/test.sh ($HOME/.cache/supernode-ccache), and paths are hashed relative to the
# staging copy, whose path never changes, so a rebuild of the same sources hits the cache.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

project_version=$(sed -n 's/^project(supernode VERSION \([0-9][0-9.]*\).*/\1/p' CMakeLists.txt)
if [ -z "$project_version" ]; then
  echo "build-deb: no 'project(supernode VERSION x.y.z' line in CMakeLists.txt" >&2
  exit 1
fi
have_git=0
if command -v git >/dev/null 2>&1 && git rev-parse --is-inside-work-tree >/dev/null 2>&1; then have_git=1; fi
version=$project_version
if [ -n "${SUPERNODE_DEB_VERSION:-}" ]; then
  version=$SUPERNODE_DEB_VERSION
elif [ $have_git = 1 ] && ! git describe --tags --exact-match --match "v$project_version" >/dev/null 2>&1; then
  version="$project_version+git$(TZ=UTC git log -1 --format=%cd --date=format-local:%Y%m%d).$(git rev-parse --short=7 HEAD)"
fi
if [ "${1:-}" = "--print-version" ]; then
  echo "$version"
  exit 0
fi
if [ $# -gt 0 ]; then
  echo "usage: scripts/build-deb.sh [--print-version]" >&2
  exit 2
fi

scripts/install-deps.sh --image
for tool in dpkg-buildpackage dh; do
  if ! command -v $tool >/dev/null 2>&1; then
    echo "build-deb: $tool is missing (Debian packages dpkg-dev, debhelper)" >&2
    exit 1
  fi
done

stage_parent=$root/build-deb
stage=$stage_parent/supernode
echo "== supernode $version: staging the tree in $stage"
rm -rf "$stage_parent"
mkdir -p "$stage"
if [ $have_git = 1 ]; then
  # Tracked and new (not ignored) files as they are in the working tree.
  git ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
    tar --null -T - -cf - | tar -xf - -C "$stage"
else
  tar --exclude='./build*' --exclude=./dist --exclude=./.git --exclude=node_modules -cf - . | tar -xf - -C "$stage"
fi

# debian/changelog: one entry, dated by the commit (reproducible: dpkg-buildpackage takes
# SOURCE_DATE_EPOCH from it).
maintainer=$(sed -n 's/^Maintainer: //p' debian/control)
if [ $have_git = 1 ]; then
  date=$(git log -1 --format=%cD)
  what="Built from git commit $(git rev-parse --short=12 HEAD)"
  if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then what="$what, with local changes"; fi
else
  date=$(date -R)
  what="Built from a tree without git history"
fi
cat > "$stage/debian/changelog" <<CHANGELOG
supernode ($version) unstable; urgency=medium

  * $what.

 -- $maintainer  $date
CHANGELOG

export SUPERNODE_CUDA="${SUPERNODE_CUDA:-AUTO}"
export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/supernode-ccache}"
export CCACHE_BASEDIR="$stage" CCACHE_NOHASHDIR=1
case " ${DEB_BUILD_OPTIONS:-} " in
  *" parallel="*) ;;
  *) export DEB_BUILD_OPTIONS="${DEB_BUILD_OPTIONS:+$DEB_BUILD_OPTIONS }parallel=$(nproc)" ;;
esac
echo "== dpkg-buildpackage -b -us -uc (SUPERNODE_CUDA=$SUPERNODE_CUDA, DEB_BUILD_OPTIONS=$DEB_BUILD_OPTIONS)"
(cd "$stage" && dpkg-buildpackage -b -us -uc)

mkdir -p dist
rm -f dist/supernode_* dist/supernode-dbgsym_*
# Debian's debhelper names the debug package .deb; a .ddeb (Ubuntu) is renamed to match.
for f in "$stage_parent"/supernode*_"$version"_*; do
  case $f in
    *.ddeb) mv "$f" "dist/$(basename "${f%.ddeb}").deb" ;;
    *) mv "$f" dist/ ;;
  esac
done
echo "== dist/:"
ls -l dist/supernode*_"$version"_*
if command -v ccache >/dev/null 2>&1; then ccache --show-stats 2>/dev/null | grep -E '^ *(Hits|Misses):' || true; fi
