#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite. .ci/run calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
bash tools/system_deps.sh   # optional system packages (chromium); never fails
export MRCNN_PROGRESS=0
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
