#!/usr/bin/env bash
# Run every CUDA kernel of the project under GPGPU-Sim (a functional CUDA simulator: no GPU
# needed) and compare it bit for bit with the C++ CPU kernels.
#
#   bash tools/sim_check.sh [--out DIR] [--build-dir DIR] [--jobs N] [--mutant NAME]
#
# Steps (logs in DIR/logs/):
#   1. the CUDA 11.8 toolchain: tools/fetch_cuda118.sh (cache: $MRCNN_CUDA118_CACHE, else .cache/cuda118)
#   2. the simulator: ../shared/third_party/gpgpu-sim/build.sh (patched GPGPU-Sim 4.2; ~6.5 min on
#      2 cores the first time) into $MRCNN_GPGPUSIM_CACHE, else .cache/gpgpusim; reused once built
#   3. the project's CUDA code for sm_86 (+ compute_86 PTX, which the simulator interprets) with the
#      shared CUDA runtime, into --build-dir (default build/sim): mrcnn_check_cuda_kernels and
#      libmrcnn_cuda_ops.so with its debug checks (MRCNN_CAPI_CHECKS: guard bands, overlaps)
#   4. under the simulator (functional mode, SM86_RTX3070 config), each a "program" of cases:
#      check          tests/cuda/check_cuda_kernels.cpp: the three ops in float32 and float16 and
#                     NMS alone at K = 1000, vs the CPU kernels
#      check-1warp    the ops with shared memory or block synchronization (ProposalLayer,
#                     DetectionLayer, NMS) with 32 threads per block (one warp; "check" runs them
#                     with 256, 8 warps, and the NMS mask kernel with 64)
#      capi           tools/sim/capi_cases.py: libmrcnn_cuda_ops.so driven from Python as
#                     torch.ops.mrcnn.* drives it on CUDA, vs the CPU operators, and the edge cases
#   5. DIR/sim_check.json and DIR/sim_check.md (per case: max |diff|, mismatching elements,
#      simulated PTX instructions, seconds); the table is printed.
#
# --mutant NAME: build a deliberately wrong kernel (tools/sim/mutants.py; the checkout is not
#   touched: a copy of the sources is built in --build-dir/mutant-NAME) and run only the cases
#   that must catch it. The exit status is then 1 when it was caught, as for any difference.
#
# DIR: --out, else runs/sim_check. Python for the capi program: $PYTHON, else .venv/bin/python
# (torch + the CPU operators: run tools/setup.sh first). ../shared: $MRCNN_SHARED, else ../shared.
# Exit status: 0 every case bit-identical; 1 a difference, a failed program or a failed build;
# 2 bad arguments; 3 the simulator sources (../shared/third_party/gpgpu-sim) are missing.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUTDIR=$ROOT/runs/sim_check
BUILD=$ROOT/build/sim
JOBS=2
MUTANT=""
while (($#)); do
  case "$1" in
    --out) OUTDIR=${2:?--out needs a folder}; shift 2 ;;
    --build-dir) BUILD=${2:?--build-dir needs a folder}; shift 2 ;;
    --jobs) JOBS=${2:?--jobs needs a number}; shift 2 ;;
    --mutant) MUTANT=${2:?--mutant needs a name}; shift 2 ;;
    -h|--help) awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "$0"; exit 0 ;;
    *) echo "sim_check: error: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ $JOBS =~ ^[1-9][0-9]*$ ]] || { echo "sim_check: error: --jobs needs a positive number" >&2; exit 2; }
if [[ -n $MUTANT ]] && ! python3 "$ROOT/tools/sim/mutants.py" show "$MUTANT" > /dev/null; then exit 2; fi

SHARED=${MRCNN_SHARED:-$ROOT/../shared}
GSIM_SRC=$SHARED/third_party/gpgpu-sim
if [[ ! -f $GSIM_SRC/build.sh ]]; then
  echo "sim_check: error: the simulator sources are missing ($GSIM_SRC/build.sh); set MRCNN_SHARED" >&2
  exit 3
fi
C118=${MRCNN_CUDA118_CACHE:-$ROOT/.cache/cuda118}
SIMCACHE=${MRCNN_GPGPUSIM_CACHE:-$ROOT/.cache/gpgpusim}
PY=${PYTHON:-$ROOT/.venv/bin/python}

mkdir -p "$OUTDIR/logs" "$BUILD"
OUTDIR=$(cd "$OUTDIR" && pwd)
BUILD=$(cd "$BUILD" && pwd)
LOGS=$OUTDIR/logs
RECORDS=$OUTDIR/records.jsonl
: > "$RECORDS"
rm -f "$OUTDIR/sim_check.json" "$OUTDIR/sim_check.md"

log() { echo "[sim_check] $*" >&2; }
die() { echo "[sim_check] ERROR: $*" >&2; exit 1; }
T0=$(date +%s)
TIMING=""
lap() { local now; now=$(date +%s); TIMING+="$1=$((now - LAP)) "; LAP=$now; }
LAP=$T0

# ------------------------------------------------------------------ 1. toolchain
log "CUDA 11.8 toolchain (tools/fetch_cuda118.sh)"
bash "$ROOT/tools/fetch_cuda118.sh" > "$LOGS/fetch_cuda118.log" 2>&1 \
  || { tail -20 "$LOGS/fetch_cuda118.log" >&2; die "the CUDA 11.8 toolchain could not be fetched"; }
# shellcheck disable=SC1091
source "$C118/env.sh"
lap fetch

# ------------------------------------------------------------------ 2. simulator
mkdir -p "$SIMCACHE"
log "GPGPU-Sim in $SIMCACHE (built once: ~6.5 min on 2 cores; see $LOGS/gpgpusim_build.log)"
(
  flock 9   # one build at a time (a test and a manual run may race)
  bash "$GSIM_SRC/build.sh" "$C118/cuda" "$SIMCACHE"
) 9> "$SIMCACHE/.lock" > "$LOGS/gpgpusim_build.log" 2>&1 \
  || { tail -30 "$LOGS/gpgpusim_build.log" >&2; die "the simulator build failed"; }
GPGPUSIM_ROOT=$(sed -n 's/^GPGPUSIM_ROOT=//p' "$LOGS/gpgpusim_build.log" | tail -n1)
[[ -n $GPGPUSIM_ROOT ]] || die "the simulator build did not say where it is"
lap simulator

# ------------------------------------------------------------------ 3. build (sm_86, shared cudart)
SRC=$ROOT
if [[ -n $MUTANT ]]; then
  # A copy of what the CUDA build reads, mutated; built in its own folder.
  BUILD=$BUILD/mutant-$MUTANT
  SRC=$BUILD/src
  rm -rf "$SRC" && mkdir -p "$SRC/tests"
  cp -a "$ROOT/CMakeLists.txt" "$ROOT/cmake" "$ROOT/plugins" "$SRC/"
  cp -a "$ROOT/tests/cuda" "$SRC/tests/"
  python3 "$ROOT/tools/sim/mutants.py" apply "$MUTANT" "$SRC" || die "mutant $MUTANT could not be applied"
  log "mutant $MUTANT: $(cd "$SRC" && diff -r "$ROOT/plugins" plugins | grep -c '^[<>]') changed lines in a copy of the sources"
fi
B=$BUILD/cmake
log "building for sm_86 in $B"
cmake -S "$SRC" -B "$B" -DCMAKE_BUILD_TYPE=Release -DMRCNN_WITH_CUDA=ON -DMRCNN_BUILD_TRT=OFF \
  "-DCMAKE_CUDA_COMPILER=$MRCNN_CUDA118_NVCC" "-DCMAKE_CUDA_HOST_COMPILER=$MRCNN_CUDA118_HOST_CXX" \
  -DMRCNN_CUDA_ARCHS=86 -DMRCNN_CUDA_PTX_ARCH=86 -DMRCNN_STATIC_CUDART=OFF -DMRCNN_CAPI_CHECKS=ON \
  -DCMAKE_CUDA_FLAGS=-cudart=shared -DCMAKE_SKIP_BUILD_RPATH=ON > "$LOGS/configure.log" 2>&1 \
  || { tail -30 "$LOGS/configure.log" >&2; die "cmake configure failed"; }
cmake --build "$B" --target mrcnn_check_cuda_kernels mrcnn_cuda_ops -j "$JOBS" > "$LOGS/build.log" 2>&1 \
  || { grep -B2 -A8 -m3 'error' "$LOGS/build.log" >&2 || tail -30 "$LOGS/build.log" >&2; die "build failed"; }
CHECK=$B/mrcnn_check_cuda_kernels
OPS=$B/libmrcnn_cuda_ops.so
[[ -x $CHECK && -f $OPS ]] || die "the build did not produce $CHECK and $OPS"
lap build

# ------------------------------------------------------------------ 4. run under the simulator
RUN=$BUILD/run
rm -rf "$RUN" && mkdir -p "$RUN"
cp "$GPGPUSIM_ROOT"/gpgpu-sim/configs/tested-cfgs/SM86_RTX3070/* "$RUN/"
sed -i 's/^-gpgpu_ptx_sim_mode 0/-gpgpu_ptx_sim_mode 1/' "$RUN/gpgpusim.config"
grep -q '^-gpgpu_ptx_sim_mode 1' "$RUN/gpgpusim.config" || die "could not set functional mode in gpgpusim.config"
cd "$RUN"
export CUDA_INSTALL_PATH=$GPGPUSIM_ROOT/cudaroot
set +eu
# shellcheck disable=SC1091
source "$GPGPUSIM_ROOT/gpgpu-sim/setup_environment" > "$LOGS/setup_environment.log" 2>&1
set -eu
[[ ${LD_LIBRARY_PATH:-} == *"$GPGPUSIM_ROOT"* ]] || die "setup_environment did not put the simulator's libcudart first"

# program NAME CMD...: one simulator process; its cases go to the records (tools/sim/simrun.py).
program() {
  local name=$1; shift
  log "simulating: $name ($LOGS/$name.log)"
  timeout 1200 python3 "$ROOT/tools/sim/simrun.py" run --program "$name" --records "$RECORDS" \
    --log "$LOGS/$name.log" -- "$@" || log "$name exited non-zero"
}
SYNC_OPS=ProposalLayer,DetectionLayer,NMS
capi() {
  [[ -x $PY ]] || die "no Python at $PY for the C-ABI cases (run tools/setup.sh, or set PYTHON)"
  PYTORCH_BIN=$OPS program capi "$PY" "$ROOT/tools/sim/capi_cases.py" --lib "$OPS" "$@"
}
if [[ -n $MUTANT ]]; then
  IFS=$'\t' read -r mprog mcases < <(python3 "$ROOT/tools/sim/mutants.py" show "$MUTANT")
  case $mprog in
    check) program check "$CHECK" --only "$mcases" ;;
    capi) capi --only "$mcases" ;;
    *) die "mutant $MUTANT: unknown program $mprog" ;;
  esac
else
  program check "$CHECK"
  program check-1warp "$CHECK" --threads 32 --only "$SYNC_OPS"
  capi
fi
lap run
cd "$ROOT"

# ------------------------------------------------------------------ 5. summary
TIMING+="total=$(($(date +%s) - T0))"
log "timing (s): $TIMING"
python3 "$ROOT/tools/sim/simrun.py" summary --records "$RECORDS" --out "$OUTDIR" --timing "$TIMING" \
  ${MUTANT:+--mutant "$MUTANT"}
