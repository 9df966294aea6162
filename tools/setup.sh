#!/usr/bin/env bash
# Create .venv (Python >= 3.10) and install mrcnn-trt with its CPU dependencies.
# Idempotent: re-running only reinstalls the package (rebuilding the C++ kernels if changed).
# pip's output goes to .cache/setup.log; it is shown only when a step fails.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
mkdir -p .cache
LOG=.cache/setup.log
: > "$LOG"

step() {   # step "what" cmd...: run quietly, show the log tail on failure
  local what=$1; shift
  if ! "$@" >> "$LOG" 2>&1; then
    echo "setup: $what failed; the last lines of $LOG:" >&2
    tail -n 40 "$LOG" >&2
    exit 1
  fi
}

if [ ! -x .venv/bin/python ]; then
  step "creating .venv" "$PY" -m venv .venv
fi
# torch is pinned: an unpinned torch would pull a multi-GB CUDA build.
step "pip upgrade" .venv/bin/python -m pip install -q --upgrade pip setuptools wheel pybind11
step "torch" .venv/bin/python -m pip install -q "torch==2.13.0"
step "mrcnn-trt" .venv/bin/python -m pip install -q -e ".[test,serve]"
# Triton Inference Server for `mrcnn-triton serve` and its tests: the standalone tritonserver (2.51,
# Python backend) of the nvidia-pytriton wheel, installed last and with --no-deps: the wheel declares
# numpy<2 (and more) for its own Python API, which is not used; the server binary bundles its libraries.
if ! .venv/bin/python -c "import importlib.metadata as m; assert m.version('nvidia-pytriton') == '0.7.0'" \
     2>/dev/null; then
  .venv/bin/python -m pip install -q --no-deps "nvidia-pytriton==0.7.0" >> "$LOG" 2>&1 \
    || echo "warning: nvidia-pytriton could not be installed; the Triton server tests will be skipped" >&2
fi
# the [report] extra (mrcnn-eval --report), without the GUI OpenCV that tidecv declares
step "report extra" .venv/bin/python -m pip install -q "opencv-python-headless>=4.8" "seaborn>=0.13" "pandas>=2" \
  "appdirs>=1.4"
step "tidecv" .venv/bin/python -m pip install -q --no-deps "tidecv==1.0.1"
echo "setup: .venv ready (pip log: $LOG)"
