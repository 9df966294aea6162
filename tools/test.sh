#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite. .ci/run calls exactly this.
# With no arguments, the GPU-simulator check (tools/sim_check.sh: mostly one simulator process,
# ~15 min) runs beside the suite; tests/test_sim_check.py waits for its summary. With pytest
# arguments (a subset, -m "not slow"), test_sim_check.py runs the script itself when selected.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
bash tools/install_rtx.sh     # TensorRT for RTX: engine builds without a GPU (tests/test_rtx.py)
bash tools/system_deps.sh   # optional system packages (chromium); never fails
export MRCNN_PROGRESS=0
SIM_PID=""
if [ $# -eq 0 ]; then
  SIM_OUT=$PWD/runs/sim_check_suite
  rm -rf "$SIM_OUT" && mkdir -p "$SIM_OUT"
  (
    set +e
    bash tools/sim_check.sh --out "$SIM_OUT" > "$SIM_OUT.stdout" 2> "$SIM_OUT.stderr" < /dev/null
    echo $? > "$SIM_OUT.exit.tmp" && mv "$SIM_OUT.exit.tmp" "$SIM_OUT.exit"
  ) &
  SIM_PID=$!
  export MRCNN_SIM_CHECK_OUT=$SIM_OUT
  rm -f "$SIM_OUT.exit"
fi
set +e
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
status=$?
if [ -n "$SIM_PID" ] && kill -0 "$SIM_PID" 2> /dev/null; then
  pkill -TERM -P "$SIM_PID" 2> /dev/null; kill "$SIM_PID" 2> /dev/null   # pytest stopped early
fi
exit $status
