#!/usr/bin/env bash
# Fetch the ONNX Runtime C/C++ API headers (onnxruntime_c_api.h,
# onnxruntime_cxx_api.h, ...) needed to build plugins/libmrcnn_ort_ops.so.
#
# They come from Debian trixie's libonnxruntime-dev (headers only are used;
# the custom-op library does not link libonnxruntime). The download goes
# through a project-local apt configuration under the cache folder: the
# system's apt sources and state are never touched. Idempotent and cached.
#
# Usage: tools/fetch_ort_headers.sh [CACHE_DIR]   (default: <repo>/.cache)
# Prints the include directory (containing onnxruntime_cxx_api.h) on success.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="${1:-${MRCNN_CACHE:-$ROOT/.cache}}"
DEST="$CACHE/ort-headers"
INC="$DEST/root/usr/include/onnxruntime"

if [[ -f "$INC/onnxruntime_cxx_api.h" ]]; then
  echo "$INC"
  exit 0
fi

for tool in apt-get dpkg-deb; do
  command -v "$tool" >/dev/null || { echo "fetch_ort_headers: $tool not found (needs a Debian-like system)" >&2; exit 1; }
done

SUITE="${MRCNN_ORT_SUITE:-trixie}"
MIRROR="${MRCNN_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
APT="$DEST/apt"
rm -rf "$APT" "$DEST/root.tmp"
mkdir -p "$APT/lists/partial" "$APT/cache/archives/partial" "$APT/debs"
: > "$APT/status"
echo "deb [signed-by=$KEYRING] $MIRROR $SUITE main" > "$APT/sources.list"

apt_opts=(
  -o "Dir::Etc::SourceList=$APT/sources.list"
  -o "Dir::Etc::SourceParts=/dev/null"
  -o "Dir::Etc::Preferences=/dev/null"
  -o "Dir::Etc::PreferencesParts=/dev/null"
  -o "Dir::State=$APT"
  -o "Dir::State::Lists=$APT/lists"
  -o "Dir::State::status=$APT/status"
  -o "Dir::Cache=$APT/cache"
  -o "Debug::NoLocking=1"
  -o "APT::Sandbox::User=$(id -un)"
  -o "Acquire::Languages=none"
  -o "Acquire::IndexTargets::deb::Contents-deb::DefaultEnabled=false"
)

echo "fetch_ort_headers: downloading libonnxruntime-dev from $SUITE ..." >&2
apt-get "${apt_opts[@]}" -qq update >&2
(cd "$APT/debs" && apt-get "${apt_opts[@]}" -qq download libonnxruntime-dev >&2)
deb="$(ls "$APT"/debs/libonnxruntime-dev_*.deb | head -n1)"
mkdir -p "$DEST/root.tmp"
dpkg-deb -x "$deb" "$DEST/root.tmp"
[[ -f "$DEST/root.tmp/usr/include/onnxruntime/onnxruntime_cxx_api.h" ]] || {
  echo "fetch_ort_headers: $deb has no usr/include/onnxruntime/onnxruntime_cxx_api.h" >&2
  exit 1
}
rm -rf "$DEST/root"
mv "$DEST/root.tmp" "$DEST/root"
basename "$deb" > "$DEST/SOURCE"
rm -rf "$APT"
echo "$INC"
