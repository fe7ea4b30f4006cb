#!/usr/bin/env bash
# Runs the browser tests of the admin web page (ctest's webui.browser, label browser):
# installs the locked npm packages (playwright-core, axe-core, openai) into WORK_DIR (a
# folder in the build tree, so the source tree stays clean; reinstalled only when
# package-lock.json changed), then runs webui.test.mjs with Node's built-in runner against
# a real supernoded in Debian's Chromium. Screenshots go to SUPERNODE_ARTIFACTS
# (default: BUILD/artifacts/webui, next to the daemon's bin/).
# Usage: run.sh [--install-only] [WORK_DIR]   (WORK_DIR defaults to the source folder itself;
#        --install-only: only the npm install, as scripts/test.sh does before ctest)
# Exits 77 (ctest: skipped) when node, npm or Chromium is missing.
# Environment: SUPERNODED, SUPERNODE_CLI, SUPERNODE_ARTIFACTS, CHROMIUM (the browser binary).
set -euo pipefail
src="$(cd "$(dirname "$0")" && pwd)"
install_only=0
if [ "${1:-}" = "--install-only" ]; then install_only=1; shift; fi
work="${1:-$src}"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "SKIP webui.browser: node and npm are needed (scripts/install-deps.sh installs them)" >&2
  exit 77
fi
mkdir -p "$work"
work="$(cd "$work" && pwd)"

if [ "$work" != "$src" ]; then
  rm -f "$work"/*.mjs
  cp "$src/package.json" "$src/package-lock.json" "$src"/*.mjs "$work/"
fi
stamp="$work/node_modules/.supernode-lock"
if [ ! -f "$stamp" ] || ! cmp -s "$work/package-lock.json" "$stamp"; then
  (cd "$work" && npm ci --no-audit --no-fund --loglevel=error)
  cp "$work/package-lock.json" "$stamp"
fi
if [ "$install_only" = 1 ]; then exit 0; fi

chromium="${CHROMIUM:-}"
if [ -z "$chromium" ]; then
  for c in /usr/bin/chromium /usr/bin/chromium-browser /usr/bin/google-chrome; do
    if [ -x "$c" ]; then chromium="$c"; break; fi
  done
fi
if [ -z "$chromium" ] || [ ! -x "$chromium" ]; then
  echo "SKIP webui.browser: Chromium is needed (apt-get install chromium, or set CHROMIUM)" >&2
  exit 77
fi
export CHROMIUM="$chromium"
export SUPERNODE_SOURCE_DIR="${SUPERNODE_SOURCE_DIR:-$(cd "$src/../.." && pwd)}"

cd "$work"
echo "== node --test webui.test.mjs (Chromium: $chromium)"
node --test --test-concurrency=1 webui.test.mjs
