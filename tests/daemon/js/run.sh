#!/usr/bin/env bash
# Runs the JavaScript daemon tests (ctest's daemon.openai): installs the locked npm
# dependencies into WORK_DIR (a folder in the build tree, so the source tree stays clean;
# reinstalled only when package-lock.json changed), then runs every *.test.mjs with Node's
# built-in runner, one file at a time. Each file starts and stops its own supernoded.
# Usage: run.sh [--install-only] [WORK_DIR]   (WORK_DIR defaults to the source folder itself;
#        --install-only: only the npm install, as scripts/test.sh does before ctest)
# Environment: SUPERNODED, SUPERNODE_CLI, SUPERNODE_SHARED_DIR, MODEL (see daemon.mjs).
set -euo pipefail
src="$(cd "$(dirname "$0")" && pwd)"
install_only=0
if [ "${1:-}" = "--install-only" ]; then install_only=1; shift; fi
work="${1:-$src}"
mkdir -p "$work"
work="$(cd "$work" && pwd)"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "daemon.openai: node and npm are needed (scripts/install-deps.sh installs them)" >&2
  exit 1
fi

if [ "$work" != "$src" ]; then
  rm -f "$work"/*.mjs
  cp "$src/package.json" "$src/package-lock.json" "$src"/*.mjs "$work/"
fi
# npm ci again only when the lock file differs from the one last installed.
stamp="$work/node_modules/.supernode-lock"
if [ ! -f "$stamp" ] || ! cmp -s "$work/package-lock.json" "$stamp"; then
  (cd "$work" && npm ci --no-audit --no-fund --loglevel=error)
  cp "$work/package-lock.json" "$stamp"
fi
if [ "$install_only" = 1 ]; then exit 0; fi

cd "$work"
status=0
for f in *.test.mjs; do
  echo "== node --test $f"
  node --test "$f" || status=1
done
exit "$status"
