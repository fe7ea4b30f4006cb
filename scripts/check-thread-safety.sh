#!/usr/bin/env bash
# Clang's thread-safety analysis over the whole tree: every C++ translation unit of an
# existing build (its compile_commands.json, default build/) is parsed again by clang++
# with -fsyntax-only -Wthread-safety -Werror, so SN_GUARDED_BY / SN_REQUIRES annotations
# (supernode/base/mutex.h) are checked without a second full build. CUDA sources are left
# out. Prints one line per failing file and a summary; exits 1 on any finding.
# Usage: scripts/check-thread-safety.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build}"
db="$build/compile_commands.json"
[ -f "$db" ] || { echo "check-thread-safety: $db not found (configure the build first)" >&2; exit 2; }
command -v clang++ >/dev/null || { echo "check-thread-safety: clang++ not found (Debian package clang)" >&2; exit 2; }
out="$build/thread-safety"
rm -rf "$out" && mkdir -p "$out"
python3 - "$db" "$out" <<'PY'
import json, shlex, sys, os
db, out = sys.argv[1], sys.argv[2]
cmds = []
for e in json.load(open(db)):
    f = e["file"]
    if not f.endswith(".cpp") or "/src/cuda/" in f:
        continue
    args = e.get("arguments") or shlex.split(e["command"])
    # Drop the launcher and compiler, the output and GCC-only flags.
    while args and (args[0].endswith("ccache") or os.path.basename(args[0]) in ("c++", "g++", "gcc", "cc")):
        args = args[1:]
    keep, skip = [], False
    for a in args:
        if skip:
            skip = False
            continue
        if a in ("-o", "-MF", "-MT"):
            skip = True
            continue
        if a in ("-MD", "-c", "-Wno-restrict") or a.startswith("-fsanitize"):
            continue
        keep.append(a)
    # clang 14 compiles C++20 coroutines but does not announce them the way libstdc++ 12's
    # <coroutine> (__cpp_impl_coroutine) and Boost 1.74's Asio (libc++ only, for clang)
    # look for them, so without these the awaitables of the HTTP code would vanish.
    keep = ["clang++", "-fsyntax-only", "-Wthread-safety", "-Wthread-safety-reference", "-Werror",
            "-Wno-unknown-warning-option", "-Wno-unused-command-line-argument",
            "-D__cpp_impl_coroutine=201902L", "-DBOOST_ASIO_HAS_CO_AWAIT=1", "-DBOOST_ASIO_HAS_STD_COROUTINE=1"] + keep
    cmds.append((e["directory"], keep, f))
with open(os.path.join(out, "commands.sh"), "w") as fh:
    for i, (d, c, f) in enumerate(cmds):
        fh.write("cd %s && %s > %s/%d.log 2>&1 || echo %s\n" % (shlex.quote(d), " ".join(shlex.quote(x) for x in c),
                                                              shlex.quote(os.path.abspath(out)), i, shlex.quote(f)))
print(len(cmds))
PY
n=$(wc -l < "$out/commands.sh")
# One clang per core; each line prints its file when clang fails.
failed=$(tr '\n' '\0' < "$out/commands.sh" | xargs -0 -P "$(nproc)" -I{} bash -c '{}' || true)
if [ -n "$failed" ]; then
  echo "$failed" | sed 's/^/thread-safety: FAILED /'
  cat "$out"/*.log | grep -E "error|warning" | head -50
  echo "check-thread-safety: $(echo "$failed" | wc -l) of $n files failed"
  exit 1
fi
echo "check-thread-safety: $n files pass clang -Wthread-safety -Werror"
