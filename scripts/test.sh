#!/usr/bin/env bash
# Builds everything and runs every test: the README's test command and what CI runs.
#  1. installs missing Debian packages (scripts/install-deps.sh);
#  2. an ASan+UBSan build of the unit tests (build-asan/, without the CUDA backend: its
#     device code is not sanitized, and the optimized build compiles it), run through ctest;
#     then the libFuzzer targets (fuzz/, clang, build-fuzz/), 60 s each (scripts/fuzz.sh);
#  3. the optimized build (build/), clang's thread-safety analysis over its sources, and
#     every test (unit, model, slow: the loopback load test), run through ctest last, so
#     its summary line closes the output; the npm packages of the JavaScript daemon tests
#     (tests/daemon/js, ctest's daemon.openai) and of the browser tests (tests/webui:
#     playwright-core, axe-core) are installed into build/ first.
# Label gpu runs when nvidia-smi lists a GPU (its tests also skip themselves without one);
# browser (the web UI in Debian's Chromium, tests/webui) and image (tests/image) run, each
# skipping itself, with a SKIP line, without its tools.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
jobs=$(nproc)
export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/supernode-ccache}"
# Cache hits across checkouts (CI's clone, a developer's tree): paths under the tree are
# hashed relative to it, and -g objects are not keyed on the build directory.
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$PWD}" CCACHE_NOHASHDIR="${CCACHE_NOHASHDIR:-1}"

echo "== ASan+UBSan unit tests (build-asan/)"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSUPERNODE_SANITIZE=address,undefined -DSUPERNODE_BENCH=OFF -DSUPERNODE_CUDA=OFF >/dev/null
cmake --build build-asan -j "$jobs" --target base_tests hal_tests engine_tests scheduler_tests storage_tests daemon_tests webui_tests cli_tests
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan -L unit --output-on-failure -j "$jobs"

# Every libFuzzer target (fuzz/) for 60 s under ASan+UBSan, from its seed corpus; a crash,
# leak, timeout or OOM stops the run here with the input and how to reproduce it.
echo "== fuzzers, 60 s each (scripts/fuzz.sh)"
scripts/fuzz.sh 60 build-fuzz

echo "== optimized build (build/), all tests"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$jobs"
# Clang's thread-safety analysis (-Wthread-safety -Werror) over every translation unit of
# the optimized build, parsed again with -fsyntax-only: no second build.
echo "== clang -Wthread-safety (scripts/check-thread-safety.sh)"
scripts/check-thread-safety.sh build
scripts/make-test-models.sh build/models
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
  tests/daemon/js/run.sh --install-only build/tests/daemon-js
  tests/webui/run.sh --install-only build/tests/webui-js
fi
exclude="gpu"
# The gpu label (tests/hal_gpu) runs where an NVIDIA driver sees a GPU.
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then exclude="^$"; fi
# The image label: the .deb installed into a fresh Debian 12 tree (image.package) runs where
# `scripts/install-deps.sh --image`'s tools are (it says SKIP otherwise); booting the disk image
# in qemu (image.boot, also slow: tens of minutes under TCG) only with SUPERNODE_IMAGE_BOOT=1.
skip_tests="^image\.boot$"
if [ "${SUPERNODE_IMAGE_BOOT:-0}" = 1 ]; then skip_tests="^$"; else echo "== image.boot left out (SUPERNODE_IMAGE_BOOT=1 runs it)"; fi
ctest --test-dir build -LE "$exclude" -E "$skip_tests" --output-on-failure -j "$jobs"
