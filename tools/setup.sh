#!/usr/bin/env bash
# Create .venv (Python >= 3.10) and install mrcnn-trt with its CPU dependencies.
# Idempotent: a re-run installs only what changed; the native parts (C++ kernels, ORT custom-op
# library, calibration statistics) are reused from .cache/native/ when their sources, flags and
# compiler are unchanged (tools/native_ext.py BuildExt), also by a later `pip install -e ".[extra]"`.
# Each step prints one line with its time; pip's output goes to .cache/setup.log and is shown only
# when a step fails.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
mkdir -p .cache
LOG=.cache/setup.log
: > "$LOG"
T0=$SECONDS
N=0
TOTAL=6

step() {   # step "what" cmd...: run quietly, print the step with its time; the log tail on failure
  local what=$1 t=$SECONDS; shift
  N=$((N + 1))
  printf 'setup: [%d/%d] %s ... ' "$N" "$TOTAL" "$what" >&2
  if ! "$@" >> "$LOG" 2>&1; then
    echo "failed after $((SECONDS - t)) s" >&2
    echo "setup: $what failed; the last lines of $LOG:" >&2
    tail -n 40 "$LOG" >&2
    exit 1
  fi
  echo "$((SECONDS - t)) s (total $((SECONDS - T0)) s)" >&2
}

skip() {   # skip "what" "why": a step that had nothing to do
  N=$((N + 1))
  printf 'setup: [%d/%d] %s ... %s\n' "$N" "$TOTAL" "$1" "$2" >&2
}

installed() {   # installed NAME==VERSION...: all of them are in .venv at exactly that version
  .venv/bin/python - "$@" <<'PYEOF' 2>/dev/null
import sys
from importlib.metadata import PackageNotFoundError, version
try:
    # "2.13.0+cpu" is 2.13.0: the local part of a version names the build, not the release
    sys.exit(0 if all(version(r.split("==")[0]).split("+")[0] == r.split("==")[1] for r in sys.argv[1:]) else 1)
except PackageNotFoundError:
    sys.exit(1)
PYEOF
}

echo "setup: installing into .venv (a few minutes the first time; the pip log is $LOG)" >&2
if [ ! -x .venv/bin/python ]; then
  step "creating .venv" "$PY" -m venv .venv
else
  skip "creating .venv" "exists"
fi
if .venv/bin/python -c "import setuptools, wheel, pybind11, sys; sys.exit(int(setuptools.__version__.split('.')[0]) < 68)" \
     2>/dev/null; then
  skip "pip, setuptools, wheel, pybind11" "installed"
else
  step "pip, setuptools, wheel, pybind11" .venv/bin/python -m pip install -q --upgrade pip setuptools wheel pybind11
fi
# torch is pinned: an unpinned torch would pull a multi-GB CUDA build.
if installed "torch==2.13.0"; then
  skip "torch 2.13.0 (CPU)" "installed"
else
  step "torch 2.13.0 (CPU)" .venv/bin/python -m pip install -q "torch==2.13.0"
fi
# --no-build-isolation: the build requirements (pyproject.toml) are the ones just installed in .venv;
# pip would otherwise make a fresh environment with them for every install
step "mrcnn-trt + dependencies + native parts" .venv/bin/python -m pip install -q --no-build-isolation -e ".[test,serve]"
# Triton Inference Server for `mrcnn-triton serve` and its tests: the standalone tritonserver (2.51,
# Python backend) of the nvidia-pytriton wheel, installed last and with --no-deps: the wheel declares
# numpy<2 (and more) for its own Python API, which is not used; the server binary bundles its libraries.
if installed "nvidia-pytriton==0.7.0"; then
  skip "Triton server (nvidia-pytriton)" "installed"
else
  N=$((N + 1)); t=$SECONDS
  printf 'setup: [%d/%d] %s ... ' "$N" "$TOTAL" "Triton server (nvidia-pytriton)" >&2
  if .venv/bin/python -m pip install -q --no-deps "nvidia-pytriton==0.7.0" >> "$LOG" 2>&1; then
    echo "$((SECONDS - t)) s (total $((SECONDS - T0)) s)" >&2
  else
    echo "not installed; the Triton server tests will be skipped" >&2
  fi
fi
# the [report] extra (mrcnn-eval --report), without the GUI OpenCV that tidecv declares
if installed "tidecv==1.0.1" && .venv/bin/python -c "import cv2, seaborn, pandas, appdirs" 2>/dev/null; then
  skip "report extra (tidecv)" "installed"
else
  step "report extra (tidecv)" bash -c '.venv/bin/python -m pip install -q "opencv-python-headless>=4.8" \
    "seaborn>=0.13" "pandas>=2" "appdirs>=1.4" && .venv/bin/python -m pip install -q --no-deps "tidecv==1.0.1"'
fi
echo "setup: .venv ready in $((SECONDS - T0)) s (pip log: $LOG)" >&2
