#!/usr/bin/env bash
# Builds a signed offline update bundle (cli/UPDATE_BUNDLE.md) of supernode .deb packages,
# and checks it with the public half of the key before it goes on a USB stick.
#
#   scripts/make-update-bundle.sh --new-key DIR
#       makes an Ed25519 pair: DIR/update-signing.key (private, mode 0600: keep it offline)
#       and DIR/update-signing.pem (public: ship it in /usr/share/supernode/keys/, or a site
#       adds it to /etc/supernode/keys/)
#   scripts/make-update-bundle.sh --key KEY.key [--version V] [--min-version M] -o OUT FILE.deb...
#       V defaults to the version of the supernode_V_ARCH.deb given, M to V (no skipping).
#
# The tool used is $SUPERNODE_CLI, else build/bin/supernode, else `supernode` on PATH.
set -euo pipefail
usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

cli="${SUPERNODE_CLI:-}"
if [ -z "$cli" ]; then
  here="$(cd "$(dirname "$0")/.." && pwd)"
  if [ -x "$here/build/bin/supernode" ]; then cli="$here/build/bin/supernode"; else cli="$(command -v supernode || true)"; fi
fi

key="" version="" min_version="" out="" new_key="" debs=()
while [ $# -gt 0 ]; do
  case "$1" in
    --new-key) new_key="${2:?--new-key DIR}"; shift 2 ;;
    --key) key="${2:?--key FILE}"; shift 2 ;;
    --version) version="${2:?--version V}"; shift 2 ;;
    --min-version) min_version="${2:?--min-version M}"; shift 2 ;;
    -o|--output) out="${2:?-o OUT}"; shift 2 ;;
    -h|--help) usage ;;
    -*) echo "make-update-bundle: unknown option $1" >&2; usage ;;
    *) debs+=("$1"); shift ;;
  esac
done

if [ -n "$new_key" ]; then
  mkdir -p "$new_key"
  if [ -e "$new_key/update-signing.key" ]; then
    echo "make-update-bundle: $new_key/update-signing.key exists; not overwritten" >&2
    exit 1
  fi
  (umask 077 && openssl genpkey -algorithm ed25519 -out "$new_key/update-signing.key")
  openssl pkey -in "$new_key/update-signing.key" -pubout -out "$new_key/update-signing.pem"
  echo "private key: $new_key/update-signing.key (keep it offline; never in the repository)"
  echo "public key:  $new_key/update-signing.pem"
  [ -z "$key" ] && exit 0
fi

[ -n "$key" ] && [ -n "$out" ] && [ ${#debs[@]} -gt 0 ] || usage
[ -n "$cli" ] || { echo "make-update-bundle: no supernode tool (build it, or set SUPERNODE_CLI)" >&2; exit 1; }
if [ -z "$version" ]; then
  for d in "${debs[@]}"; do
    b="$(basename "$d")"
    case "$b" in supernode_*_*.deb) v="${b#supernode_}"; version="${v%%_*}" ;; esac
  done
  [ -n "$version" ] || { echo "make-update-bundle: no supernode_V_ARCH.deb given: pass --version" >&2; exit 1; }
fi
min_version="${min_version:-$version}"

"$cli" update make --key "$key" --version "$version" --min-version "$min_version" -o "$out" "${debs[@]}"

# Check the result with the public half, as a box would.
keys="$(mktemp -d)"
trap 'rm -rf "$keys"' EXIT
openssl pkey -in "$key" -pubout -out "$keys/signer.pem"
"$cli" update verify --keys-dir "$keys" --installed-version "$min_version" "$out"
