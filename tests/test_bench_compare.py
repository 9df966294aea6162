"""bench/bench_compare.py in its small mode (the shipped model at 256 px, one round):
every row runs and returns the same detection count; the torchvision rows
only when their venv (.cache/torchvision-venv, built by the full benchmark)
exists."""
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TV_VENV = os.path.join(REPO, ".cache", "torchvision-venv", "mrcnn-bench.json")
OURS = ["PyTorch eager", "ONNX Runtime, our ops", "ONNX Runtime, standard ops", "ONNX Runtime INT8 (cpu form)"]
pytestmark = pytest.mark.slow   # every test shares one long module fixture


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("bench")
    out = str(d / "bench.json")
    r = subprocess.run([sys.executable, os.path.join(REPO, "bench", "bench_compare.py"), "--small", "--calib-images",
                        "2", "--work", str(d / "work"), "--json", out], capture_output=True, text=True, timeout=900,
                       env={**os.environ, "MRCNN_PROGRESS": "0"})
    assert r.returncode == 0, r.stderr[-3000:]
    with open(out) as f:
        return json.load(f), r.stdout, r.stderr


def test_small_mode_our_rows(small_run):
    res, table, _ = small_run
    ours = [r for r in res["rows"] if r["model"].startswith("ours")]
    assert [r["backend"].split(" (")[0] if r["backend"].startswith("PyTorch") else r["backend"] for r in ours] == OURS
    assert len({r["dets"] for r in ours}) == 1 and ours[0]["dets"] > 0   # the same work for every row
    for r in ours:
        assert len(r["ms"]) == 1 and r["median_s"] > 0 and r["gflop"] > 1
    assert res["ceiling_gflops"] > 1
    assert "| ours shapes R-14 | ONNX Runtime, our ops | 256x256 |" in table and "% conv ceiling" in table


def test_small_mode_torchvision_rows(small_run):
    res, _, log = small_run
    if not os.path.isfile(TV_VENV):
        assert "torchvision rows skipped: no torchvision venv" in log
        pytest.skip("no torchvision venv (.cache/torchvision-venv): `python bench/bench_compare.py` builds it")
    tv = [r for r in res["rows"] if r["model"].startswith("torchvision")]
    assert [r["backend"] for r in tv] == ["PyTorch eager", "PyTorch eager (native resize)", "ONNX Runtime"]
    assert all(r["dets"] > 0 and r["median_s"] > 0 for r in tv)
