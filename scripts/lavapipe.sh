#!/usr/bin/env bash
# Software Vulkan for ONNX Runtime's WebGPU provider, without touching the system (README "GPU").
#
#   scripts/lavapipe.sh <dir>          # then: eval "$(scripts/lavapipe.sh <dir>)"
#
# Debian 12's own lavapipe (Mesa 22.3) is refused by Dawn ("shaderUniform*ArrayDynamicIndexing
# required"); Mesa 25's from bookworm-backports works. This downloads mesa-vulkan-drivers from
# bookworm-backports and the libraries it needs that the system lacks or has too old (libdrm,
# libllvm19, the Vulkan loader, ...) with `apt-get download`-style fetches into <dir>, using a private
# sources list and private apt state and cache directories (the system's apt configuration,
# lists and dpkg database are read, never written), unpacks them with `dpkg-deb -x` into <dir>/root,
# writes an ICD json with an absolute library path, and prints the variables to export
# (VK_ICD_FILENAMES, LD_LIBRARY_PATH) on stdout; progress goes to stderr. Idempotent: a finished
# <dir> (marked by <dir>/env.sh) is reused without any download. Debian 12 (bookworm), amd64 only.
set -euo pipefail

if [ $# -ne 1 ]; then
  echo "usage: $0 <dir>   (prints the env vars to export; eval \"\$($0 <dir>)\")" >&2
  exit 2
fi
mkdir -p "$1"
DIR="$(cd "$1" && pwd)"
ENV_FILE="$DIR/env.sh"
if [ -s "$ENV_FILE" ]; then
  cat "$ENV_FILE"
  exit 0
fi

MIRROR="${LAVAPIPE_MIRROR:-http://deb.debian.org/debian}"
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
APT="$DIR/apt"
mkdir -p "$APT/lists/partial" "$APT/archives/partial" "$APT/etc/preferences.d"
cat >"$APT/etc/sources.list" <<EOF
deb [signed-by=$KEYRING] $MIRROR bookworm main
deb [signed-by=$KEYRING] $MIRROR bookworm-updates main
deb [signed-by=$KEYRING] $MIRROR bookworm-backports main
EOF
: >"$APT/etc/sources.list.d.empty"
# Private everything except the dpkg status file, which is read so that only what the system lacks
# (or has older than the backport needs) is fetched.
STATUS=/var/lib/dpkg/status
[ -r "$STATUS" ] || { : >"$APT/status"; STATUS="$APT/status"; }
APT_OPTS=(
  -o "Dir::Etc::sourcelist=$APT/etc/sources.list"
  -o "Dir::Etc::sourceparts=$APT/etc/sources.list.d.empty"
  -o "Dir::Etc::preferencesparts=$APT/etc/preferences.d"
  -o "Dir::State=$APT"
  -o "Dir::State::lists=$APT/lists"
  -o "Dir::State::status=$STATUS"
  -o "Dir::Cache=$APT"
  -o "Dir::Cache::archives=$APT/archives"
  -o "Debug::NoLocking=1"
  -o "APT::Get::AllowUnauthenticated=false"
  -o "APT::Install-Recommends=false"
  -o "APT::Sandbox::User=root"
)

echo "lavapipe: apt-get update (private lists in $APT/lists)" >&2
apt-get "${APT_OPTS[@]}" -q update >&2
# --download-only resolves mesa-vulkan-drivers/bookworm-backports against the installed system and
# fetches the packages it would install or upgrade, into the private archive cache.
echo "lavapipe: downloading mesa-vulkan-drivers (bookworm-backports) and what the system lacks" >&2
apt-get "${APT_OPTS[@]}" -q -y --download-only install \
  mesa-vulkan-drivers/bookworm-backports libvulkan1 >&2

ROOT="$DIR/root"
rm -rf "$ROOT"
mkdir -p "$ROOT"
shopt -s nullglob
debs=("$APT/archives/"*.deb)
[ ${#debs[@]} -gt 0 ] || { echo "lavapipe: nothing was downloaded" >&2; exit 1; }
for deb in "${debs[@]}"; do
  case "$(basename "$deb")" in
    # never shadow the C library or the dynamic loader
    libc6_*|libgcc-s1_*|libstdc++6_*) continue ;;
  esac
  dpkg-deb -x "$deb" "$ROOT"
done

LIBDIR="$ROOT/usr/lib/x86_64-linux-gnu"
LVP="$LIBDIR/libvulkan_lvp.so"
[ -f "$LVP" ] || { echo "lavapipe: $LVP missing after unpacking" >&2; exit 1; }
ICD="$DIR/lvp_icd.json"
# The package's json names the library by a path relative to the system; rewrite it absolute.
python3 - "$(ls "$ROOT"/usr/share/vulkan/icd.d/lvp_icd*.json | head -1)" "$LVP" "$ICD" 2>/dev/null <<'PY' || \
  printf '{ "file_format_version": "1.0.1", "ICD": { "library_path": "%s", "api_version": "1.4.305" } }\n' "$LVP" >"$ICD"
import json, sys
src, lib, out = sys.argv[1:]
j = json.load(open(src))
j["ICD"]["library_path"] = lib
json.dump(j, open(out, "w"), indent=2)
PY

LD="$LIBDIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
missing="$(LD_LIBRARY_PATH="$LD" ldd "$LVP" | grep 'not found' || true)"
if [ -n "$missing" ]; then
  echo "lavapipe: libraries still missing for $LVP:" >&2
  echo "$missing" >&2
  exit 1
fi
{
  echo "export VK_ICD_FILENAMES='$ICD'"
  echo "export LD_LIBRARY_PATH='$LIBDIR'\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
} >"$ENV_FILE.tmp"
mv "$ENV_FILE.tmp" "$ENV_FILE"
echo "lavapipe: ready in $DIR ($(basename "$(ls "$APT/archives/"mesa-vulkan-drivers_*.deb)"))" >&2
cat "$ENV_FILE"
