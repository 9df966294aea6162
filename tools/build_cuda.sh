#!/usr/bin/env bash
# Build the CUDA kernels (CMake targets mrcnn_kernels_cuda_static and mrcnn_cuda_ops, the
# C-ABI library of the PyTorch operators) for every requested GPU architecture, check the
# result with cuobjdump (or tools/fatbin_archs.py where cuobjdump cannot read it), and run
# the host check program mrcnn_check_cuda_kernels (tests/cuda/check_cuda_kernels.cpp).
#
#   tools/build_cuda.sh [--archs "50;52;61;70;75;80;86"] [--build-dir DIR] [--jobs N] [--system-nvcc]
#
# Toolchain: CUDA 11.8 from tools/fetch_cuda118.sh (downloaded into .cache/cuda118 on first
# use; sm_50 ... sm_90). If that is impossible (no network) or --system-nvcc is given, the
# system nvcc is used instead, for the requested archs >= 75 only (CUDA 13 has no older
# ones); the script says so and, since archs are then missing, exits non-zero.
#
# Output: SASS (sm_XX) for every arch in --archs plus PTX for the highest, in
# <build-dir>/libmrcnn_kernels_cuda_static.a and <build-dir>/libmrcnn_cuda_ops.so (default
# build dir: build/cuda). The last lines printed are the summary:
#   OPS SASS: sm_50 sm_52 ...  (libmrcnn_cuda_ops.so)
#   OPS PTX: compute_86
#   SASS: sm_50 sm_52 ...      (present in every object of the static library)
#   PTX: compute_86
# Exit status: 0 when every requested arch (and the PTX) is in every object; 1 on a build
# or check-program error; 3 when archs are missing (or cannot be listed).
set -euo pipefail

ROOT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ARCHS=${MRCNN_CUDA_ARCHS:-"50;52;61;70;75;80;86"}
BUILD_DIR=$ROOT_DIR/build/cuda
JOBS=2
FORCE_SYSTEM=0

log() { echo "[build_cuda] $*" >&2; }
die() { echo "[build_cuda] ERROR: $*" >&2; exit 1; }

while (($#)); do
  case "$1" in
    --archs) ARCHS=$2; shift 2 ;;
    --build-dir) BUILD_DIR=$2; shift 2 ;;
    --jobs) JOBS=$2; shift 2 ;;
    --system-nvcc) FORCE_SYSTEM=1; shift ;;
    -h|--help) awk 'NR > 1 && !/^#/ {exit} NR > 1 {print}' "$0"; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done
ARCHS=${ARCHS//,/;}
IFS=';' read -r -a REQ <<< "$ARCHS"
((${#REQ[@]})) || die "no architectures requested"
for a in "${REQ[@]}"; do [[ $a =~ ^[0-9]+$ ]] || die "bad architecture '$a' (want numbers like 75)"; done
PTX_ARCH=$(printf '%s\n' "${REQ[@]}" | sort -n | tail -n1)

# ------------------------------------------------------------------ toolchain
NVCC="" HOST_CXX="" CUOBJDUMP="" CUDA_FLAGS="" FALLBACK=0
if ((FORCE_SYSTEM == 0)); then
  if "$ROOT_DIR/tools/fetch_cuda118.sh" >/dev/null; then
    # shellcheck disable=SC1091
    source "${MRCNN_CUDA118_CACHE:-$ROOT_DIR/.cache/cuda118}/env.sh"
    NVCC=$MRCNN_CUDA118_NVCC
    HOST_CXX=$MRCNN_CUDA118_HOST_CXX
    CUOBJDUMP=$MRCNN_CUDA118_CUOBJDUMP
    CUDA_FLAGS="-cudart=shared"
  else
    log "WARNING: the CUDA 11.8 toolchain could not be fetched (see above)"
  fi
fi
BUILD_ARCHS=("${REQ[@]}")
if [[ -z $NVCC ]]; then
  FALLBACK=1
  NVCC=$(command -v nvcc || true)
  [[ -z $NVCC && -x /usr/local/cuda/bin/nvcc ]] && NVCC=/usr/local/cuda/bin/nvcc
  [[ -n $NVCC ]] || die "no CUDA compiler: neither the CUDA 11.8 toolchain nor a system nvcc"
  BUILD_ARCHS=()
  dropped=()
  for a in "${REQ[@]}"; do
    if ((a >= 75)); then BUILD_ARCHS+=("$a"); else dropped+=("$a"); fi
  done
  log "WARNING: falling back to the system nvcc ($NVCC, $("$NVCC" --version | tail -n1)):"
  log "WARNING: it builds archs >= 75 only; NOT building: ${dropped[*]:-none}"
  ((${#BUILD_ARCHS[@]})) || die "none of the requested archs ($ARCHS) is >= 75"
  PTX_ARCH=$(printf '%s\n' "${BUILD_ARCHS[@]}" | sort -n | tail -n1)
  for c in "$(dirname "$(readlink -f "$NVCC")")/cuobjdump" "$(command -v cuobjdump || true)" \
           "${MRCNN_CUDA118_CACHE:-$ROOT_DIR/.cache/cuda118}/cuda/bin/cuobjdump"; do
    if [[ -n $c && -x $c ]]; then CUOBJDUMP=$c; break; fi
  done
fi
BUILD_LIST=$(IFS=';'; echo "${BUILD_ARCHS[*]}")

# ---------------------------------------------------------------- configure
# Start afresh when the build dir was configured with another compiler.
cached_nvcc() { sed -n 's/^CMAKE_CUDA_COMPILER:[A-Z]*=//p' "$BUILD_DIR/CMakeCache.txt"; }
if [[ -f $BUILD_DIR/CMakeCache.txt && "$(cached_nvcc)" != "$NVCC" ]]; then
  log "build dir $BUILD_DIR was configured with another CUDA compiler: reconfiguring from scratch"
  rm -rf "$BUILD_DIR"
fi
CMAKE_ARGS=(-S "$ROOT_DIR" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DMRCNN_WITH_CUDA=ON
            -DMRCNN_BUILD_TRT=OFF "-DCMAKE_CUDA_COMPILER=$NVCC" "-DMRCNN_CUDA_ARCHS=$BUILD_LIST"
            "-DMRCNN_CUDA_PTX_ARCH=$PTX_ARCH" "-DCMAKE_CUDA_FLAGS=$CUDA_FLAGS")
[[ -n $HOST_CXX ]] && CMAKE_ARGS+=("-DCMAKE_CUDA_HOST_COMPILER=$HOST_CXX")
log "configuring: nvcc $NVCC, archs $BUILD_LIST (+ PTX $PTX_ARCH), build dir $BUILD_DIR"
t0=$(date +%s)
mkdir -p "$BUILD_DIR"
cmake "${CMAKE_ARGS[@]}" >"$BUILD_DIR/mrcnn-configure.log" 2>&1 || {
  cat "$BUILD_DIR/mrcnn-configure.log" >&2
  die "cmake configure failed"
}
log "building mrcnn_kernels_cuda_static, mrcnn_cuda_ops and mrcnn_check_cuda_kernels (-j$JOBS)"
cmake --build "$BUILD_DIR" --target mrcnn_kernels_cuda_static mrcnn_cuda_ops mrcnn_check_cuda_kernels -j "$JOBS" >&2 \
  || die "build failed"
t1=$(date +%s)
log "build took $((t1 - t0)) s"

LIB=$BUILD_DIR/libmrcnn_kernels_cuda_static.a
[[ -f $LIB ]] || die "$LIB was not built"

# Host-side check of the launchers (and a CPU comparison where a GPU is present).
log "running $BUILD_DIR/mrcnn_check_cuda_kernels"
"$BUILD_DIR/mrcnn_check_cuda_kernels" >&2 || die "mrcnn_check_cuda_kernels failed"

# ------------------------------------------------------------------ inspect
OPS_LIB=$BUILD_DIR/libmrcnn_cuda_ops.so
[[ -f $OPS_LIB ]] || die "$OPS_LIB was not built"
status=0
# require_archs WHAT "SASS list" "PTX list": every requested sm_XX cubin and the PTX, else status 3.
require_archs() {
  local a
  for a in "${REQ[@]}"; do
    if [[ " $2 " != *" sm_$a "* ]]; then log "MISSING: $1 has no sm_$a cubin"; status=3; fi
  done
  if [[ " $3 " != *" compute_$PTX_ARCH "* ]]; then log "MISSING: $1 has no compute_$PTX_ARCH PTX"; status=3; fi
}
# Archs of the operator library: cuobjdump when it can read it, else tools/fatbin_archs.py.
if [[ -n $CUOBJDUMP && -x $CUOBJDUMP ]] && OPS_ELF=$("$CUOBJDUMP" --list-elf "$OPS_LIB" 2>/dev/null) \
    && OPS_PTX=$("$CUOBJDUMP" --list-ptx "$OPS_LIB" 2>/dev/null); then
  ops_sass=$(grep -o 'sm_[0-9]*\.cubin' <<< "$OPS_ELF" | sed 's/\.cubin//' | sort -u -V | tr '\n' ' ')
  ops_ptx=$(grep -o 'sm_[0-9]*\.ptx' <<< "$OPS_PTX" | sed 's/sm_\([0-9]*\)\.ptx/compute_\1/' | sort -u -V | tr '\n' ' ')
else
  log "cuobjdump cannot read $OPS_LIB: listing it with tools/fatbin_archs.py"
  listing=$(python3 "$ROOT_DIR/tools/fatbin_archs.py" "$OPS_LIB") || die "no GPU code in $OPS_LIB"
  ops_sass=$(sed -n 's/^SASS: //p' <<< "$listing")
  ops_ptx=$(sed -n 's/^PTX: //p' <<< "$listing")
fi
require_archs libmrcnn_cuda_ops.so "$ops_sass" "$ops_ptx"
OPS_SUMMARY="OPS SASS: $(echo $ops_sass)"$'\n'"OPS PTX: $(echo $ops_ptx)"

if [[ -z $CUOBJDUMP || ! -x $CUOBJDUMP ]] || ! ELF=$("$CUOBJDUMP" --list-elf "$LIB" 2>/dev/null) \
    || ! PTX=$("$CUOBJDUMP" --list-ptx "$LIB" 2>/dev/null); then
  # No readable per-object listing: the union over the archive from tools/fatbin_archs.py.
  log "cuobjdump cannot read $LIB: listing the whole archive with tools/fatbin_archs.py"
  listing=$(python3 "$ROOT_DIR/tools/fatbin_archs.py" "$LIB") || die "no GPU code in $LIB"
  sass=$(sed -n 's/^SASS: //p' <<< "$listing")
  ptx=$(sed -n 's/^PTX: //p' <<< "$listing")
  require_archs "$LIB" "$sass" "$ptx"
  ((FALLBACK)) && log "WARNING: built with the system nvcc fallback; requested archs < 75 are missing"
  echo "$OPS_SUMMARY"
  echo "SASS: $sass"
  echo "PTX: $ptx"
  exit $status
fi
echo "$ELF"
echo "$PTX"

# Per object (archive member): which sm_XX cubins and which PTX it carries.
members=$(ar t "$LIB")
sass_all=""
ptx_all=""
for m in $members; do
  sass=$(awk -v m="$m" '/^member /{cur = index($2, ":" m ":") > 0} cur && /ELF file/ {print}' <<< "$ELF" \
         | grep -o 'sm_[0-9]*\.cubin' | sed 's/\.cubin//' | sort -u -V | tr '\n' ' ')
  ptx=$(awk -v m="$m" '/^member /{cur = index($2, ":" m ":") > 0} cur && /PTX file/ {print}' <<< "$PTX" \
        | grep -o 'sm_[0-9]*\.ptx' | sed 's/sm_\([0-9]*\)\.ptx/compute_\1/' | sort -u -V | tr '\n' ' ')
  log "$m: SASS ${sass:-none}| PTX ${ptx:-none}"
  require_archs "$m" "$sass" "$ptx"
  sass_all="$sass_all $sass"
  ptx_all="$ptx_all $ptx"
done
# Archs present in every object.
n_members=$(wc -w <<< "$members")
in_all() { tr ' ' '\n' | grep . | sort -V | uniq -c | awk -v n="$n_members" '$1 == n {print $2}' | tr '\n' ' '; }
sass_common=$(in_all <<< "$sass_all")
ptx_common=$(in_all <<< "$ptx_all")
((FALLBACK)) && log "WARNING: built with the system nvcc fallback; requested archs < 75 are missing"
echo "$OPS_SUMMARY"
echo "SASS: ${sass_common% }"
echo "PTX: ${ptx_common% }"
exit $status
