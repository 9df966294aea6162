"""tools/gpu_check.sh --dry-run: the device script's steps on the CPU (what CI can run).

It stages the package as on the GPU machine (symlinked tree, no install), builds
libmrcnn_cuda_ops.so with the system nvcc for sm_90 (the device's
architecture: the device build is compiled here first; the build folder
.cache/gpu-check/build-sm90 is reused), runs the kernel check program without a
GPU, a selection of the operator/model tests and the benchmark in quick mode,
and writes gpu_check.json / gpu_check.md. Skipped without nvcc or cmake (they
are on the CI machines: a CI run fails instead).

It runs with a Python like the device's: this environment's packages (torch, numpy, ...)
but neither pytest nor pybind11, so the steps that need them (tests, build_cpu) pass only
from the wheels that ``--fetch-wheels`` carries in .cache/gpu-wheels (fetched here first;
PyPI needed).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
pytestmark = pytest.mark.slow   # every test shares one long module fixture


def _nvcc():
    return shutil.which("nvcc") or (os.path.exists("/usr/local/cuda/bin/nvcc") and "/usr/local/cuda/bin/nvcc")


HIDDEN = re.compile(r"^(_?pytest|py|pluggy|iniconfig|pybind11)([-_.].*)?$", re.IGNORECASE)


def bare_python(folder: Path) -> str:
    """A venv whose site-packages links every package of this one except pytest and
    pybind11 (and pytest's own dependencies): the device's Python guarantees neither."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True, timeout=120)
    site = Path(subprocess.run([str(folder / "bin" / "python"), "-c", "import sysconfig; "
                                "print(sysconfig.get_paths()['purelib'])"], check=True, capture_output=True,
                               text=True).stdout.strip())
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if not HIDDEN.match(entry.name) and entry.name != "__pycache__":
            (site / entry.name).symlink_to(entry)
    return str(folder / "bin" / "python")


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    if not _nvcc() or not shutil.which("cmake"):
        if CI:
            pytest.fail("nvcc and cmake are needed for tools/gpu_check.sh --dry-run")
        pytest.skip("nvcc or cmake not installed")
    r = subprocess.run(["bash", "tools/gpu_check.sh", "--fetch-wheels"], cwd=REPO, capture_output=True, text=True,
                       timeout=600, env=dict(os.environ, PYTHON=sys.executable))
    if r.returncode != 0:
        msg = f"tools/gpu_check.sh --fetch-wheels failed (PyPI needed):\n{r.stderr[-2000:]}"
        if CI:
            pytest.fail(msg)
        pytest.skip(msg)
    python = bare_python(tmp_path_factory.mktemp("device_python") / "venv")
    for m in ("pytest", "pybind11"):
        probe = subprocess.run([python, "-c", f"import {m}"], capture_output=True, timeout=60)
        assert probe.returncode != 0, f"the stand-in device Python still imports {m}"
    out = tmp_path_factory.mktemp("gpu_check")
    # MRCNN_GPU_CHECK_STAGE: use the symlinked package tree, as on the GPU machine (no install there)
    env = dict(os.environ, PYTHON=python, MRCNN_PROGRESS="0", MRCNN_GPU_CHECK_STAGE="1")
    env.pop("OUT", None)
    r = subprocess.run(["bash", "tools/gpu_check.sh", "--dry-run", "--out", str(out), "--jobs", "2"], cwd=REPO,
                       capture_output=True, text=True, timeout=1800, env=env)
    return r, out


def test_dry_run_passes_every_step(dry_run):
    r, out = dry_run
    assert r.returncode == 0, r.stderr[-5000:]
    result = json.loads((out / "gpu_check.json").read_text())
    assert result["dry_run"] is True and result["ok"] is True and result["arch"] == 90
    steps = {s["step"]: s["status"] for s in result["steps"]}
    assert steps == {"env": "ok", "build_cpu": "ok", "build_cuda": "ok", "kernels": "ok", "tests": "ok",
                     "bench": "ok", "rtx": "skipped"}, steps
    rtx = next(s for s in result["steps"] if s["step"] == "rtx")
    assert rtx["detail"] == "sm_90 is not a TensorRT for RTX target (75 80 86 89 120 121)", rtx


def test_dry_run_uses_the_carried_wheels(dry_run):
    r, out = dry_run
    assert "lacks pytest pybind11: using the carried wheels" in r.stderr, r.stderr[-3000:]
    unpacked = (out / "logs" / "pydeps.log").read_text()
    assert re.search(r"unpacking pytest-[0-9.]+-py3-none-any\.whl", unpacked), unpacked
    assert re.search(r"unpacking pybind11-[0-9.]+-py3-none-any\.whl", unpacked), unpacked
    assert "_cpu" in (out / "logs" / "build_cpu.log").read_text()


def test_dry_run_builds_the_device_code(dry_run):
    _, out = dry_run
    build = (out / "logs" / "build_cuda.log").read_text()
    assert "SASS: sm_90" in build and "PTX: compute_90" in build
    kernels = (out / "logs" / "kernels.log").read_text()
    assert "GPU: skipped" in kernels and "OK (0 failures)" in kernels


def test_dry_run_reports(dry_run):
    _, out = dry_run
    result = json.loads((out / "gpu_check.json").read_text())
    assert "passed" in result["tests"]
    bench = result["bench"]
    assert bench["quick"] is True and bench["environment"]["device"] == "cpu"
    ours = [r for r in bench["ops"] if r["impl"] == "ours"]
    assert {r["op"].split()[0] for r in ours} == {"PyramidROIAlign", "ProposalLayer", "DetectionLayer"}
    assert all(r["ms"] > 0 for r in ours)
    refs = [r for r in bench["ops"] if r["impl"] == "reference"]
    assert refs and all(r["vs_ours"] > 1 for r in refs)          # the compiled ops beat the Python loops
    e2e = {(r["model"], r["batch"]): r for r in bench["e2e"]}
    assert e2e[("ours (native ops) tiny", 2)]["detections"] == 2 * 20
    md = (out / "gpu_check.md").read_text()
    assert "| build_cuda | ok |" in md and "| op | implementation | median ms | CPU-time ms | vs ours (CPU time) |" in md
