"""bench/bench_busy.py: the busy-machine mode really competes for the CPU, and the table comes out."""
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_busy_bench_runs_and_competes(tmp_path):
    out = tmp_path / "busy.json"
    r = subprocess.run([sys.executable, os.path.join(REPO, "bench", "bench_busy.py"), "--settings",
                        "torch:project,ort:project", "--images", "2", "--rounds", "1", "--json", str(out)],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "| shapes | torch:project | 2 |" in r.stdout and "| shapes | ort:project | 2 |" in r.stdout
    runs = json.loads(out.read_text())["runs"]
    assert sorted((x["setting"], x["busy"]) for x in runs) == [
        ("ort:project", False), ("ort:project", True), ("torch:project", False), ("torch:project", True)]
    for x in runs:
        assert len(x["times_ms"]) == 2 and x["median_ms"] > 0
        if x["busy"]:   # one busy loop per core, and they got CPU time while the worker ran
            assert x["competitors"] == len(os.sched_getaffinity(0))
            assert x["competitor_cpu_s"] > 0.25 * x["worker_wall_s"]
        else:
            assert x["competitors"] == 0 and x["competitor_cpu_s"] == 0
    torch_runs = [x for x in runs if x["setting"] == "torch:project"]
    assert all(x["gomp_spincount"] == "1000" and x["omp_wait_policy"] is None for x in torch_runs)
