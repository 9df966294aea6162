#!/usr/bin/env bash
# Install the pinned TensorRT for RTX wheels (setup.py RTX_REQUIREMENTS, the [rtx] extra) into .venv.
# The wheel files are kept in .cache/wheels (downloaded from PyPI once; reruns install from there).
# Without network and without cached wheels it prints a warning and exits 0: the TensorRT for RTX
# tests then skip, saying why. Used by tools/test.sh; users run `pip install -e ".[rtx]"`.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
CACHE=.cache/wheels
mapfile -t REQS < <("$PY" - <<'PYEOF'
import ast
for node in ast.parse(open("setup.py").read()).body:
    if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "RTX_REQUIREMENTS" for t in node.targets):
        print("\n".join(ast.literal_eval(node.value)))
PYEOF
)
[ "${#REQS[@]}" -gt 0 ] || { echo "install_rtx.sh: RTX_REQUIREMENTS not found in setup.py" >&2; exit 1; }
if "$PY" - "${REQS[@]}" <<'PYEOF'
import sys
from importlib.metadata import PackageNotFoundError, version
try:
    ok = all(version(r.split("==")[0]) == r.split("==")[1] for r in sys.argv[1:])
except PackageNotFoundError:
    ok = False
sys.exit(0 if ok else 1)
PYEOF
then
  exit 0   # already installed
fi
mkdir -p "$CACHE"
if ! "$PY" -m pip install -q --no-deps --no-index --find-links "$CACHE" "${REQS[@]}" 2>/dev/null; then
  if ! "$PY" -m pip download -q --no-deps -d "$CACHE" "${REQS[@]}" >> .cache/setup.log 2>&1; then
    echo "warning: could not download ${REQS[*]} (no network?): the TensorRT for RTX tests will be skipped" >&2
    exit 0
  fi
  "$PY" -m pip install -q --no-deps --no-index --find-links "$CACHE" "${REQS[@]}" >> .cache/setup.log 2>&1
fi
echo "installed ${REQS[*]} (wheels cached in $CACHE)" >&2
