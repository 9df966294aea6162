#!/usr/bin/env bash
# Fetch a CUDA 11.8 nvcc toolchain (SASS sm_50 ... sm_90) into a project-local cache.
#
# Nothing is installed system-wide and the system's apt sources are never touched:
#   * nvcc/ptxas/fatbinary/nvlink/cicc/cuobjdump: Debian bookworm *non-free*
#     `nvidia-cuda-toolkit` 11.8.89~11.8.0-5~deb12u1 (+ `libnvvm4`), fetched with
#     `apt-get download` through an apt configuration that lives in the cache, and
#     unpacked with `dpkg-deb -x`;
#   * host compiler: Debian main `g++-11` (the system one if installed, otherwise
#     downloaded and unpacked the same way; nvcc 11.8 refuses g++-12);
#   * CUDA headers, libcudart, CUB/Thrust: PyPI wheels nvidia-cuda-runtime-cu11==11.8.89,
#     nvidia-cuda-nvcc-cu11==11.8.89 (crt headers), nvidia-cuda-cccl-cu11==11.8.89.post1
#     (`pip download`, unzipped into the cache, never installed into a venv).
#
# Layout (CACHE = $MRCNN_CUDA118_CACHE or <repo>/.cache/cuda118):
#   CACHE/apt/          apt config, lists and state (project-local)
#   CACHE/debs/         the downloaded .deb files
#   CACHE/root/         the .debs unpacked (Debian paths: usr/bin, usr/lib/nvidia-cuda-toolkit/bin)
#   CACHE/wheels/       the downloaded wheels
#   CACHE/cuda/         assembled toolkit root: include/ (runtime + crt + CCCL), lib64/ (libcudart),
#                       bin/ and nvvm/ (links to the unpacked tools); nvcc.profile's TOP
#   CACHE/env.sh        `source` it: exports MRCNN_CUDA118_NVCC, CUDACXX, CUDAHOSTCXX, CUDAFLAGS, ... for CMake
#
# Always pass the host compiler: `nvcc -ccbin "$CUDAHOSTCXX" ...` (CMake does, from CUDAHOSTCXX).
#
# Idempotent: a finished cache (stamp file) is reused; running again only prints the paths.
# Usage: tools/fetch_cuda118.sh [--force]     Last stdout line: the nvcc path.
set -euo pipefail

ROOT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${MRCNN_CUDA118_CACHE:-$ROOT_DIR/.cache/cuda118}
STAMP_VERSION=3
STAMP=$CACHE/.complete-v$STAMP_VERSION

CUDA_DEB_VERSION='11.8.89~11.8.0-5~deb12u1'
GCC11_DEB_VERSION='11.3.0-12'
DEBIAN_MIRROR=${MRCNN_DEBIAN_MIRROR:-http://deb.debian.org/debian}
DEBIAN_KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
WHEELS=(nvidia-cuda-runtime-cu11==11.8.89 nvidia-cuda-nvcc-cu11==11.8.89 nvidia-cuda-cccl-cu11==11.8.89.post1)

NVCC=$CACHE/root/usr/lib/nvidia-cuda-toolkit/bin/nvcc

log() { echo "[fetch_cuda118] $*" >&2; }
die() { echo "[fetch_cuda118] ERROR: $*" >&2; exit 1; }

FORCE=0
case "${1:-}" in
  --force) FORCE=1 ;;
  "") ;;
  -h|--help) awk 'NR > 1 && !/^#/ {exit} NR > 1 {print}' "$0"; exit 0 ;;
  *) die "unknown argument $1 (use --force or nothing)" ;;
esac

command -v flock >/dev/null || die "'flock' is required"
mkdir -p "$CACHE"
# One fetch at a time (tests and a manual run may race).
exec 9>"$CACHE/.lock"
flock 9

if [[ $FORCE == 0 && -f $STAMP && -x $NVCC ]]; then
  log "cached toolchain in $CACHE"
  echo "$NVCC"
  exit 0
fi
rm -f "$STAMP"

for tool in apt-get dpkg-deb unzip ar; do
  command -v "$tool" >/dev/null || die "'$tool' is required"
done
[[ -r $DEBIAN_KEYRING ]] || die "$DEBIAN_KEYRING not found (package debian-archive-keyring)"

# ---------------------------------------------------------------- apt (project-local)
APT=$CACHE/apt
mkdir -p "$APT/etc/apt.conf.d" "$APT/etc/preferences.d" "$APT/etc/sources.list.d" \
         "$APT/etc/trusted.gpg.d" "$APT/state/lists/partial" "$APT/cache/archives/partial"
: > "$APT/state/status"   # empty dpkg status: we only download, never install
cat > "$APT/etc/sources.list" <<EOF
# Project-local apt sources (used only by tools/fetch_cuda118.sh).
deb [signed-by=$DEBIAN_KEYRING] $DEBIAN_MIRROR bookworm main contrib non-free
deb [signed-by=$DEBIAN_KEYRING] $DEBIAN_MIRROR bookworm-updates main contrib non-free
EOF
APT_OPTS=(
  -o "Dir::Etc=$APT/etc"
  -o "Dir::Etc::sourcelist=$APT/etc/sources.list"
  -o "Dir::Etc::sourceparts=$APT/etc/sources.list.d"
  -o "Dir::Etc::parts=$APT/etc/apt.conf.d"
  -o "Dir::Etc::preferencesparts=$APT/etc/preferences.d"
  -o "Dir::Etc::trustedparts=$APT/etc/trusted.gpg.d"
  -o "Dir::State=$APT/state"
  -o "Dir::State::status=$APT/state/status"
  -o "Dir::Cache=$APT/cache"
  -o "Debug::NoLocking=1"
  -o "Acquire::Languages=none"
  -o "APT::Sandbox::User=$(id -un)"
)

HOST_GXX=""
if command -v g++-11 >/dev/null 2>&1; then
  HOST_GXX=$(command -v g++-11)
  log "using the installed host compiler $HOST_GXX"
fi

PKGS=("nvidia-cuda-toolkit=$CUDA_DEB_VERSION" "libnvvm4=$CUDA_DEB_VERSION")
if [[ -z $HOST_GXX ]]; then
  PKGS+=("g++-11=$GCC11_DEB_VERSION" "gcc-11=$GCC11_DEB_VERSION" "cpp-11=$GCC11_DEB_VERSION"
         "libstdc++-11-dev=$GCC11_DEB_VERSION" "libgcc-11-dev=$GCC11_DEB_VERSION"
         "gcc-11-base=$GCC11_DEB_VERSION")
fi

DEBS=$CACHE/debs
mkdir -p "$DEBS"
missing=()
for p in "${PKGS[@]}"; do
  name=${p%%=*}; ver=${p#*=}
  # apt-get download names files <name>_<version with ':' -> %3a>_<arch>.deb
  compgen -G "$DEBS/${name}_${ver//\~/?}_*.deb" >/dev/null || missing+=("$p")
done
if ((${#missing[@]})); then
  log "apt-get update (project-local sources: bookworm main contrib non-free)"
  apt-get "${APT_OPTS[@]}" -q --error-on=any update >&2 \
    || die "apt-get update failed: no network access to $DEBIAN_MIRROR?"
  log "apt-get download ${missing[*]}"
  (cd "$DEBS" && apt-get "${APT_OPTS[@]}" -q download "${missing[@]}" >&2) \
    || die "apt-get download failed (${missing[*]})"
fi

# ---------------------------------------------------------------- unpack the .debs
log "unpacking $(ls "$DEBS"/*.deb | wc -l) .deb files into $CACHE/root"
rm -rf "$CACHE/root.tmp"
mkdir -p "$CACHE/root.tmp"
for p in "${PKGS[@]}"; do
  name=${p%%=*}; ver=${p#*=}
  deb=$(compgen -G "$DEBS/${name}_${ver//\~/?}_*.deb" | head -n1)
  [[ -n $deb ]] || die "missing .deb for $p"
  dpkg-deb -x "$deb" "$CACHE/root.tmp"
done
rm -rf "$CACHE/root"
mv "$CACHE/root.tmp" "$CACHE/root"
[[ -x $NVCC ]] || die "nvcc not found at $NVCC after unpacking"

if [[ -z $HOST_GXX ]]; then
  HOST_GXX=$CACHE/root/usr/bin/g++-11
  # libstdc++-11-dev/libgcc-11-dev link ../../../x86_64-linux-gnu/lib*.so.N, which exist
  # only in the system's /usr/lib/x86_64-linux-gnu: point dangling links there.
  for l in "$CACHE"/root/usr/lib/gcc/x86_64-linux-gnu/11/*.so; do
    if [[ -L $l && ! -e $l ]]; then
      tgt=$(basename "$(readlink "$l")")
      for d in /usr/lib/x86_64-linux-gnu /lib/x86_64-linux-gnu; do
        if [[ -e $d/$tgt ]]; then ln -sfn "$d/$tgt" "$l"; break; fi
      done
    fi
  done
  cc1plus=$CACHE/root/usr/lib/gcc/x86_64-linux-gnu/11/cc1plus
  if ldd "$cc1plus" | grep -q 'not found'; then
    die "g++-11's cc1plus misses shared libraries (install libisl23 libmpc3 libmpfr6 libgmp10 libzstd1):
$(ldd "$cc1plus" | grep 'not found')"
  fi
fi
"$HOST_GXX" --version >/dev/null 2>&1 || die "host compiler $HOST_GXX does not run"

# ---------------------------------------------------------------- PyPI wheels
PY=""
for cand in "$ROOT_DIR/.venv/bin/python" python3; do
  if "$cand" -m pip --version >/dev/null 2>&1; then PY=$cand; break; fi
done
[[ -n $PY ]] || die "no python with pip found (needed for 'pip download')"
WHL=$CACHE/wheels
mkdir -p "$WHL"
need_whl=0
for w in "${WHEELS[@]}"; do
  n=${w%%==*}; v=${w#*==}
  compgen -G "$WHL/${n//-/_}-${v}-*.whl" >/dev/null || need_whl=1
done
if ((need_whl)); then
  log "pip download ${WHEELS[*]}"
  "$PY" -m pip download -q --no-deps --only-binary=:all: --platform manylinux2014_x86_64 \
      --python-version 3.11 -d "$WHL" "${WHEELS[@]}" >&2 \
    || die "pip download failed: no network access to PyPI?"
fi
rm -rf "$CACHE/wheels.x" "$CACHE/cuda"
mkdir -p "$CACHE/wheels.x" "$CACHE/cuda/include" "$CACHE/cuda/lib64"
for w in "${WHEELS[@]}"; do
  n=${w%%==*}; v=${w#*==}
  f=$(compgen -G "$WHL/${n//-/_}-${v}-*.whl" | head -n1)
  unzip -q -o "$f" -d "$CACHE/wheels.x"
done
X=$CACHE/wheels.x/nvidia
cp -a "$X/cuda_runtime/include/." "$CACHE/cuda/include/"
cp -a "$X/cuda_nvcc/include/." "$CACHE/cuda/include/"
cp -a "$X/cuda_cccl/include/." "$CACHE/cuda/include/"
rm -f "$CACHE/cuda/include/__init__.py"
cp -a "$X/cuda_runtime/lib/libcudart.so.11.0" "$CACHE/cuda/lib64/"
ln -sfn libcudart.so.11.0 "$CACHE/cuda/lib64/libcudart.so"
# nvcc always passes -lcudadevrt when it links an executable (CMake's compiler checks do).
# The device runtime (needed only for -rdc / dynamic parallelism, which this project does
# not use) is not in the wheels: an empty archive stands in for it, so such code fails to
# link instead of silently working. No libcudart_static either: link with -cudart=shared.
rm -f "$CACHE/cuda/lib64/libcudadevrt.a"
ar rcs "$CACHE/cuda/lib64/libcudadevrt.a"
rm -rf "$CACHE/wheels.x"
# Tools and device libraries under the usual toolkit layout (links into root/), so that
# CMake (and FindCUDAToolkit) see one toolkit root: cuda/{bin,nvvm,include,lib64}.
NVT=$CACHE/root/usr/lib/nvidia-cuda-toolkit
mkdir -p "$CACHE/cuda/bin" "$CACHE/cuda/nvvm/bin" "$CACHE/cuda/nvvm/lib64"
for t in nvlink fatbinary ptxas cuobjdump nvdisasm cudafe++ bin2c nvprune cu++filt; do
  ln -sfn "$CACHE/root/usr/bin/$t" "$CACHE/cuda/bin/$t"
done
ln -sfn "$NVT/bin/nvcc" "$CACHE/cuda/bin/nvcc"
ln -sfn "$NVT/bin/crt" "$CACHE/cuda/bin/crt"
ln -sfn "$NVT/bin/cicc" "$CACHE/cuda/nvvm/bin/cicc"
ln -sfn "$NVT/libdevice" "$CACHE/cuda/nvvm/libdevice"
for l in "$CACHE"/root/usr/lib/x86_64-linux-gnu/libnvvm.so*; do
  ln -sfn "$l" "$CACHE/cuda/nvvm/lib64/$(basename "$l")"
done
[[ -f $CACHE/cuda/include/cuda_runtime.h && -f $CACHE/cuda/include/crt/host_config.h \
   && -f $CACHE/cuda/include/cub/cub.cuh ]] || die "CUDA headers incomplete in $CACHE/cuda/include"

# ---------------------------------------------------------------- nvcc.profile
# The Debian package ships bin/nvcc.profile as a link to /etc/nvcc.profile: replace the
# link (never write through it) with a profile that points at the cache.
PROFILE=$CACHE/root/usr/lib/nvidia-cuda-toolkit/bin/nvcc.profile
rm -f "$PROFILE"
cat > "$PROFILE" <<EOF
# Written by tools/fetch_cuda118.sh (project-local CUDA 11.8 toolchain).
TOP                = $CACHE/cuda
NVVMIR_LIBRARY_DIR = \$(TOP)/nvvm/libdevice
PATH              += \$(TOP)/nvvm/bin:\$(TOP)/bin:
INCLUDES          += "-I\$(TOP)/include" \$(_SPACE_)
LIBRARIES          =+ \$(_SPACE_) "-L\$(TOP)/lib64"
CUDAFE_FLAGS      +=
PTXAS_FLAGS       +=
EOF

# ---------------------------------------------------------------- env.sh
cat > "$CACHE/env.sh" <<EOF
# Source me: CUDA 11.8 toolchain from tools/fetch_cuda118.sh
export MRCNN_CUDA118_ROOT="$CACHE"
export MRCNN_CUDA118_NVCC="$NVCC"
export MRCNN_CUDA118_HOST_CXX="$HOST_GXX"
export MRCNN_CUDA118_CUOBJDUMP="$CACHE/cuda/bin/cuobjdump"
export CUDAToolkit_ROOT="$CACHE/cuda"
export MRCNN_CUDA118_INCLUDE="$CACHE/cuda/include"
export CUDACXX="$NVCC"
export CUDAHOSTCXX="$HOST_GXX"
# No static cudart in this toolkit: CMake's compiler checks and any link use the shared one.
export CUDAFLAGS="-cudart=shared"
EOF

# ---------------------------------------------------------------- smoke test
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cat > "$T/smoke.cu" <<'EOF'
#include <cub/device/device_segmented_radix_sort.cuh>
__global__ void k(float* x) { x[threadIdx.x] *= 2.f; }
cudaError_t f(void* tmp, size_t& n, const float* a, float* b, const int* v, int* w, int c, int s,
              const int* o, cudaStream_t st) {
  return cub::DeviceSegmentedRadixSort::SortPairsDescending(tmp, n, a, b, v, w, c, s, o, o + 1, 0, 32, st);
}
EOF
log "smoke test: nvcc -arch sm_50 (CUB), and linking an executable"
"$NVCC" -ccbin "$HOST_GXX" -std=c++17 -c "$T/smoke.cu" -o "$T/smoke.o" \
    -gencode arch=compute_50,code=sm_50 -gencode arch=compute_86,code=compute_86 >&2 \
  || die "nvcc smoke test failed"
printf '__global__ void k() {}\nint main() { k<<<1, 1>>>(); return 0; }\n' > "$T/exe.cu"
"$NVCC" -ccbin "$HOST_GXX" -cudart=shared "$T/exe.cu" -o "$T/exe" >&2 || die "nvcc link smoke test failed"
"$CACHE/cuda/bin/cuobjdump" --list-elf "$T/smoke.o" | grep -q sm_50 \
  || die "smoke test object has no sm_50 cubin"

touch "$STAMP"
log "ready: $("$NVCC" --version | tail -n1)"
log "host compiler: $HOST_GXX; env: source $CACHE/env.sh"
echo "$NVCC"
