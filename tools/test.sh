#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite. .ci/run calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
bash tools/install_rtx.sh     # TensorRT for RTX: engine builds without a GPU (tests/test_rtx.py)
bash tools/system_deps.sh   # optional system packages (chromium); never fails
export MRCNN_PROGRESS=0
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
