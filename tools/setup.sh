#!/usr/bin/env bash
# Create .venv (Python >= 3.10) and install mrcnn-trt with its CPU dependencies.
# Idempotent: re-running only reinstalls the package (rebuilding the C++ kernels if changed).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# torch is pinned: an unpinned torch would pull a multi-GB CUDA build.
.venv/bin/python -m pip install -q --upgrade pip setuptools wheel pybind11 >/dev/null
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[test]"
# The [report] extra (mrcnn-eval --report), without the GUI OpenCV that tidecv declares.
.venv/bin/python -m pip install -q "opencv-python-headless>=4.8" "seaborn>=0.13" "pandas>=2" "appdirs>=1.4"
.venv/bin/python -m pip install -q --no-deps "tidecv==1.0.1"
