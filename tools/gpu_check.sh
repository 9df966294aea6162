#!/usr/bin/env bash
# One prepared call on a GPU machine: build, verify and measure the PyTorch GPU path.
#
#   bash tools/gpu_check.sh [--dry-run] [--out DIR] [--arch NN] [--jobs N]
#   bash tools/gpu_check.sh --fetch-wheels        # here, before a device call (see below)
#
# Steps (each logged to DIR/logs/<step>.log, timed, and recorded in DIR/gpu_check.json):
#   env        GPU, driver, CUDA, Python, PyTorch, torchvision, nvcc versions
#   build_cpu  mrcnn_trt.plugins._cpu for this Python (tools/native_ext.py; no install)
#   build_cuda libmrcnn_cuda_ops.so + mrcnn_check_cuda_kernels with this machine's nvcc for
#              the local GPU's architecture (nvidia-smi compute_cap); SASS checked with
#              tools/fatbin_archs.py
#   kernels    tests/cuda/check_cuda_kernels.cpp: every op on the GPU vs the CPU kernels,
#              bit for bit, float32 and float16 ("GPU: compared")
#   tests      pytest tests/test_torch_ops.py tests/test_native_model.py with MRCNN_REQUIRE_CUDA=1
#              (a missing GPU or library fails instead of skipping); they need torch, numpy,
#              Pillow and pytest only
#   bench      bench/bench_gpu.py: ops vs torchvision, end to end R-101 1024 batch 1/8,
#              FP32/FP16 autocast vs torchvision maskrcnn_resnet50_fpn, peak memory
#   rtx        tests/test_rtx.py when the GPU is a TensorRT for RTX target (sm_75/80/86/89/120/121)
#              and its wheels are installed; else skipped with the reason (sm_90 is not a target)
# Then DIR/gpu_check.json (all of it) and DIR/gpu_check.md (a short table).
#
# --dry-run: the same steps on the CPU where they can run (CI: tests/test_gpu_check.py):
# builds for sm_90 (the device's arch: what the device will compile) without running
# it, runs the check program (it must report "GPU: skipped"), a quick selection of the
# tests and the bench in --quick mode.
#
# DIR: --out, else $OUT (an output folder the machine's job runner may set), else runs/gpu_check.
# Python: $PYTHON (default: .venv/bin/python if present, else python3). When mrcnn_trt is not
# installed for it (or MRCNN_GPU_CHECK_STAGE=1), a symlinked package tree under DIR/work/pkg
# goes on PYTHONPATH (Python >= 3.11: PYTHONSAFEPATH keeps the checkout from shadowing it).
# Pure-Python dependencies of the steps (pytest for `tests`, pybind11 for `build_cpu`): when
# that Python lacks one, the wheels in .cache/gpu-wheels are unpacked into DIR/work/pydeps (a
# wheel is a zip file: no pip, no package index). Fill that folder with --fetch-wheels on a
# machine with a package index and carry it along to the GPU machine.
# Exit status: 0 when every step passed, 1 otherwise. Target: < 8 minutes on an H200.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DRY=0
OUTDIR=${OUT:-$ROOT/runs/gpu_check}
ARCH=""
JOBS=$(nproc 2>/dev/null || echo 2)
while (($#)); do
  case "$1" in
    --dry-run) DRY=1; shift ;;
    --out) OUTDIR=$2; shift 2 ;;
    --arch) ARCH=$2; shift 2 ;;
    --jobs) JOBS=$2; shift 2 ;;
    --fetch-wheels)
      py=${PYTHON:-python3}
      mkdir -p "$ROOT/.cache/gpu-wheels"
      exec "$py" -m pip download -q --only-binary=:all: --no-deps -d "$ROOT/.cache/gpu-wheels" \
        pytest pluggy iniconfig packaging pygments pybind11 ;;
    -h|--help) awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "$0"; exit 0 ;;
    *) echo "gpu_check: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ $JOBS =~ ^[0-9]+$ ]] || { echo "gpu_check: --jobs needs a number" >&2; exit 2; }
mkdir -p "$OUTDIR/logs" "$OUTDIR/work" || exit 1
OUTDIR=$(cd "$OUTDIR" && pwd)
WORK=$OUTDIR/work
LOGS=$OUTDIR/logs
if [[ -z ${PYTHON:-} ]]; then
  if [[ -x $ROOT/.venv/bin/python ]]; then PYTHON=$ROOT/.venv/bin/python; else PYTHON=python3; fi
fi
cd "$ROOT" || exit 1
STEPS_TSV=$WORK/steps.tsv
: > "$STEPS_TSV"
FAILED=0
T_START=$(date +%s)

log() { echo "[gpu_check] $*" >&2; }
# step NAME COMMAND... : runs it with output to logs/NAME.log; records status and seconds.
step() {
  local name=$1; shift
  local t0 t1 rc
  t0=$(date +%s)
  log "$name: $*"
  "$@" > "$LOGS/$name.log" 2>&1
  rc=$?
  t1=$(date +%s)
  local status=ok
  if ((rc != 0)); then status=failed; FAILED=1; log "$name FAILED (exit $rc); last lines of $LOGS/$name.log:"; tail -n 25 "$LOGS/$name.log" >&2; fi
  printf '%s\t%s\t%s\t%s\n' "$name" "$status" "$((t1 - t0))" "$rc" >> "$STEPS_TSV"
  return $rc
}
skip() { printf '%s\t%s\t0\t%s\n' "$1" skipped "$2" >> "$STEPS_TSV"; log "$1 skipped: $2"; }

# ----------------------------------------------------------------- python + package
if [[ ${MRCNN_GPU_CHECK_STAGE:-0} == 1 ]] || ! "$PYTHON" -c "import mrcnn_trt.model" > /dev/null 2>&1; then
  # Not installed for this Python: the package tree of setup.py's PACKAGE_DIRS as symlinks.
  # PYTHONSAFEPATH: the repository root (the working directory) must not shadow it with
  # its mrcnn_trt/ folder, which holds only the root package.
  PKG=$WORK/pkg/mrcnn_trt
  rm -rf "$WORK/pkg"
  mkdir -p "$PKG"
  for f in "$ROOT"/mrcnn_trt/*; do ln -s "$f" "$PKG/$(basename "$f")"; done
  for d in model data train export plugins engine calib eval; do ln -s "$ROOT/$d" "$PKG/$d"; done
  export PYTHONPATH=$WORK/pkg${PYTHONPATH:+:$PYTHONPATH} PYTHONSAFEPATH=1
  log "mrcnn_trt is not installed for $PYTHON: using the symlinked tree $WORK/pkg"
fi
missing=()
for m in pytest pybind11; do "$PYTHON" -c "import $m" > /dev/null 2>&1 || missing+=("$m"); done
if ((${#missing[@]})); then
  if compgen -G "$ROOT/.cache/gpu-wheels/*.whl" > /dev/null; then
    rm -rf "$WORK/pydeps" && mkdir -p "$WORK/pydeps"
    for w in "$ROOT"/.cache/gpu-wheels/*.whl; do
      echo "unpacking $(basename "$w")"
      "$PYTHON" -m zipfile -e "$w" "$WORK/pydeps" || log "could not unpack $w"
    done > "$LOGS/pydeps.log" 2>&1
    export PYTHONPATH=$WORK/pydeps${PYTHONPATH:+:$PYTHONPATH}
    log "$PYTHON lacks ${missing[*]}: using the carried wheels (.cache/gpu-wheels -> $WORK/pydeps)"
  else
    log "$PYTHON lacks ${missing[*]} and no wheels were carried (.cache/gpu-wheels: run --fetch-wheels)"
  fi
fi

# ---------------------------------------------------------------------------- env
env_info() {
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "dry_run: $DRY"
  if command -v nvidia-smi > /dev/null; then
    nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total --format=csv,noheader
  else
    echo "nvidia-smi: not found"
  fi
  echo "nvcc: $( (nvcc --version 2> /dev/null || /usr/local/cuda/bin/nvcc --version) | tail -n 2 | tr '\n' ' ')"
  "$PYTHON" - << 'EOF'
import json, platform, sys
info = {"python": platform.python_version()}
try:
    import torch
    info.update(torch=torch.__version__, torch_cuda=torch.version.cuda, cuda_available=torch.cuda.is_available())
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        info.update(gpu=p.name, capability=f"{p.major}.{p.minor}")
except Exception as e:
    info["torch"] = f"unavailable: {e}"
try:
    import torchvision
    info["torchvision"] = torchvision.__version__
except Exception as e:
    info["torchvision"] = f"unavailable: {type(e).__name__}"
try:
    import pytest
    info["pytest"] = pytest.__version__
except Exception:
    info["pytest"] = "unavailable"
print("python_env: " + json.dumps(info))
EOF
}
step env env_info

if [[ -z $ARCH ]]; then
  if ((DRY)); then
    ARCH=90
  else
    ARCH=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2> /dev/null | head -n 1 | tr -d ' .')
  fi
fi
[[ $ARCH =~ ^[0-9]+$ ]] || { log "cannot tell the GPU architecture (nvidia-smi); pass --arch"; ARCH=90; FAILED=1; }

# ----------------------------------------------------------------------- builds
step build_cpu "$PYTHON" tools/native_ext.py --jobs "$JOBS"

NVCC=$(command -v nvcc || true)
[[ -z $NVCC && -x /usr/local/cuda/bin/nvcc ]] && NVCC=/usr/local/cuda/bin/nvcc
BUILD=${MRCNN_GPU_CHECK_BUILD:-$ROOT/.cache/gpu-check/build-sm$ARCH}
build_cuda() {
  [[ -n $NVCC ]] || { echo "no nvcc on this machine"; return 1; }
  local gen=()
  command -v ninja > /dev/null && [[ ! -f $BUILD/Makefile ]] && gen=(-G Ninja)
  cmake -S "$ROOT" -B "$BUILD" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DMRCNN_WITH_CUDA=ON -DMRCNN_BUILD_TRT=OFF \
    "-DCMAKE_CUDA_COMPILER=$NVCC" "-DMRCNN_CUDA_ARCHS=$ARCH" || return 1
  cmake --build "$BUILD" --target mrcnn_cuda_ops mrcnn_check_cuda_kernels -j "$JOBS" || return 1
  local listing
  listing=$("$PYTHON" tools/fatbin_archs.py "$BUILD/libmrcnn_cuda_ops.so") || return 1
  echo "$listing"
  grep -q "^SASS:.* sm_$ARCH\b\|^SASS: sm_$ARCH\b" <<< "$listing" || { echo "no sm_$ARCH SASS"; return 1; }
}
if step build_cuda build_cuda; then
  export MRCNN_CUDA_OPS=$BUILD/libmrcnn_cuda_ops.so
fi

# ------------------------------------------------------------------------ checks
if [[ -x $BUILD/mrcnn_check_cuda_kernels ]]; then
  check_kernels() {
    "$BUILD/mrcnn_check_cuda_kernels" || return 1
    if ((DRY)); then grep -q "GPU: skipped" "$LOGS/kernels.log"; else grep -q "GPU: compared" "$LOGS/kernels.log"; fi
  }
  step kernels check_kernels
else
  skip kernels "the check program was not built"
fi

if "$PYTHON" -c "import pytest" > /dev/null 2>&1; then
  if ((DRY)); then
    step tests env MRCNN_PROGRESS=0 "$PYTHON" -m pytest -q -p no:cacheprovider \
      "tests/test_torch_ops.py::test_equals_reference" "tests/test_native_model.py::test_cuda_same_detections_as_cpu" \
      -k "cpu-0-dtype0 or cuda" --junitxml="$OUTDIR/tests.xml"
  else
    step tests env MRCNN_PROGRESS=0 MRCNN_REQUIRE_CUDA=1 "$PYTHON" -m pytest -q -p no:cacheprovider \
      tests/test_torch_ops.py tests/test_native_model.py --junitxml="$OUTDIR/tests.xml"
  fi
else
  skip tests "pytest is not installed for $PYTHON (bash tools/gpu_check.sh --fetch-wheels here, carry .cache/gpu-wheels)"
  FAILED=1
fi

if ((DRY)); then
  step bench "$PYTHON" bench/bench_gpu.py --device cpu --quick --threads 2 --out "$OUTDIR/bench.json" \
    --markdown "$OUTDIR/bench.md"
else
  step bench "$PYTHON" bench/bench_gpu.py --device cuda --out "$OUTDIR/bench.json" --markdown "$OUTDIR/bench.md"
fi

# ------------------------------------------------------------------------- rtx
# TensorRT for RTX builds plans for its own GPU list only: on such a GPU with the wheels
# installed, tests/test_rtx.py; otherwise skipped with the reason (an H200, sm_90, is not one).
RTX_TARGETS=$("$PYTHON" -c "from mrcnn_trt.engine.archs import RTX_TARGETS; print(*RTX_TARGETS)" 2> /dev/null)
if [[ " $RTX_TARGETS " != *" $ARCH "* ]]; then
  skip rtx "sm_$ARCH is not a TensorRT for RTX target (${RTX_TARGETS:-unknown})"
elif ! "$PYTHON" -c "import tensorrt_rtx_libs, tensorrt_rtx_bindings" > /dev/null 2>&1; then
  skip rtx "TensorRT for RTX is not installed for $PYTHON (pip install -e '.[rtx]')"
else
  step rtx env MRCNN_PROGRESS=0 "$PYTHON" -m pytest -q -p no:cacheprovider tests/test_rtx.py
fi

# ----------------------------------------------------------------------- summary
"$PYTHON" - "$OUTDIR" "$DRY" "$ARCH" "$(( $(date +%s) - T_START ))" "$FAILED" << 'EOF'
import json, os, re, sys
out, dry, arch, seconds = sys.argv[1], sys.argv[2] == "1", sys.argv[3], int(sys.argv[4])
failed = sys.argv[5] == "1"   # the script's exit status: a step failed, or one that must run was skipped
steps = []
for line in open(os.path.join(out, "work", "steps.tsv")):
    name, status, secs, rc = line.rstrip("\n").split("\t")
    steps.append({"step": name, "status": status, "seconds": int(secs), "detail": rc})
env = {}
for line in open(os.path.join(out, "logs", "env.log")):
    if line.startswith("python_env: "):
        env.update(json.loads(line[len("python_env: "):]))
    elif ":" in line and not line.startswith("python_env"):
        k, v = line.split(":", 1)
        env[k.strip()] = v.strip()
    elif line.strip():
        env["nvidia_smi"] = line.strip()
kernels = os.path.join(out, "logs", "kernels.log")
tests = os.path.join(out, "logs", "tests.log")
result = {"dry_run": dry, "arch": int(arch), "seconds": seconds, "steps": steps, "environment": env,
          "kernels": open(kernels).read().strip().splitlines()[-2:] if os.path.exists(kernels) else None,
          "tests": (open(tests).read().strip().splitlines() or [""])[-1] if os.path.exists(tests) else None}
bench = os.path.join(out, "bench.json")
if os.path.exists(bench):
    result["bench"] = json.load(open(bench))
ok = not failed
result["ok"] = ok
with open(os.path.join(out, "gpu_check.json.tmp"), "w") as f:
    json.dump(result, f, indent=1)
os.replace(os.path.join(out, "gpu_check.json.tmp"), os.path.join(out, "gpu_check.json"))
md = [f"# GPU check{' (dry run, CPU)' if dry else ''}: {'all steps passed' if ok else 'FAILED'}", "",
      f"GPU: {env.get('nvidia_smi', env.get('gpu', 'none'))}; nvcc: {env.get('nvcc', '?')}; "
      f"Python {env.get('python')}, torch {env.get('torch')}, torchvision {env.get('torchvision')}; sm_{arch}; "
      f"{seconds} s", "", "| step | status | seconds |", "|---|---|---|"]
md += [f"| {s['step']} | {s['status']}{'' if s['status'] != 'skipped' else ': ' + s['detail']} | {s['seconds']} |"
       for s in steps]
if result["kernels"]:
    md += ["", "check_cuda_kernels: " + " / ".join(result["kernels"])]
if result["tests"]:
    md += ["", "tests: " + result["tests"]]
if os.path.exists(os.path.join(out, "bench.md")):
    md += ["", open(os.path.join(out, "bench.md")).read()]
with open(os.path.join(out, "gpu_check.md"), "w") as f:
    f.write("\n".join(md) + "\n")
print("\n".join(md))
EOF
log "results: $OUTDIR/gpu_check.json, $OUTDIR/gpu_check.md"
exit $FAILED
