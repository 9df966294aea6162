"""Threads and wait policy of PyTorch in every command (mrcnn_trt/threads.py).

The OpenMP runtime that PyTorch loads (GNU libgomp) prints the settings it read when
OMP_DISPLAY_ENV=VERBOSE: that is the independent check that a command's idle threads
spin briefly (``GOMP_SPINCOUNT = '1000'``) and then sleep, instead of spinning long
(PyTorch's default: 300000).
"""
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WAIT_VARS = ("OMP_WAIT_POLICY", "KMP_BLOCKTIME", "GOMP_SPINCOUNT", "OMP_NUM_THREADS")


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in WAIT_VARS}
    env.update(MRCNN_PROGRESS="0", OMP_DISPLAY_ENV="VERBOSE", **extra)
    return env


def openmp_settings(stderr: str) -> dict:
    """``{"OMP_WAIT_POLICY": "...", "GOMP_SPINCOUNT": "1000", ...}`` from libgomp's display."""
    out = {}
    for line in stderr.splitlines():
        line = line.strip()
        if " = '" in line and line.endswith("'"):
            k, v = line.split(" = '", 1)
            out[k.strip()] = v[:-1]
    return out


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    from mrcnn_trt.data.synthetic import SyntheticShapesDataset
    from PIL import Image

    path = tmp_path_factory.mktemp("img") / "a.png"
    Image.fromarray(SyntheticShapesDataset(1, seed=3, split="val").load_image(0)).save(path)
    return str(path)


def run_demo(image, out, env):
    code = "import sys\nfrom mrcnn_trt.apps.demo import main\nsys.exit(main(sys.argv[1:]))\n"
    return subprocess.run([sys.executable, "-c", code, image, "--out", str(out)], env=env, capture_output=True,
                          text=True, timeout=300)


def test_pytorch_baseline_spins():
    """The reference point: PyTorch alone keeps idle threads spinning (so the check below can fail)."""
    r = subprocess.run([sys.executable, "-c", "import torch"], env=clean_env(), capture_output=True, text=True,
                       timeout=120)
    assert int(openmp_settings(r.stderr)["GOMP_SPINCOUNT"]) >= 300000


def test_command_threads_sleep_soon_when_idle(image, tmp_path):
    """A command (mrcnn-demo, PyTorch) sets the spin count before torch is imported: libgomp read it."""
    r = run_demo(image, tmp_path / "out", clean_env())
    assert r.returncode == 0, r.stderr
    s = openmp_settings(r.stderr)
    assert s["GOMP_SPINCOUNT"] == "1000", s
    assert (tmp_path / "out" / "a.json").is_file()


def test_user_setting_is_kept(image, tmp_path):
    r = run_demo(image, tmp_path / "out", clean_env(OMP_WAIT_POLICY="PASSIVE"))
    assert r.returncode == 0, r.stderr
    s = openmp_settings(r.stderr)
    assert s["OMP_WAIT_POLICY"] == "PASSIVE" and s["GOMP_SPINCOUNT"] == "0", s   # the user's policy decides


def test_prepare_process_keeps_user_values_and_says_when_too_late():
    from mrcnn_trt import threads

    env = {"OMP_WAIT_POLICY": "ACTIVE"}
    threads.prepare_process(env)
    assert env == {"OMP_WAIT_POLICY": "ACTIVE", "KMP_BLOCKTIME": "0"}
    env = {"GOMP_SPINCOUNT": "5"}
    threads.prepare_process(env)
    assert env == {"GOMP_SPINCOUNT": "5", "KMP_BLOCKTIME": "0"}
    env = {}
    threads.prepare_process(env)
    assert env == {"GOMP_SPINCOUNT": "1000", "KMP_BLOCKTIME": "0"}
    code = ("import sys\nfrom mrcnn_trt.threads import prepare_process\nbefore = prepare_process({})\n"
            "import torch\nprint(before, prepare_process({}))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.stdout.split() == ["True", "False"], r.stderr


def test_threads_follow_the_cpu_affinity():
    """One core allowed (taskset, a container's cpuset): one thread, not the machine's count."""
    if not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs Linux and at least 2 cores")
    code = ("import os, json\nos.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})\n"
            "from mrcnn_trt import threads\nn = threads.configure_torch()\nimport torch\n"
            "print(json.dumps([threads.available_cores(), n, torch.get_num_threads(), "
            "torch.get_num_interop_threads()]))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert json.loads(r.stdout) == [1, 1, 1, 1], r.stderr


def test_training_loader_workers_compute_with_one_thread():
    """Each data-loader worker runs one compute thread (the training process keeps its own)."""
    import torch

    from mrcnn_trt.train.loop import make_loader

    class Probe(torch.utils.data.Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, item):
            return torch.get_num_threads()

    before = torch.get_num_threads()
    seen = [n for batch in make_loader(Probe(), [(i, 0) for i in range(4)], 2, workers=1) for n in batch]
    assert seen == [1, 1, 1, 1]
    assert torch.get_num_threads() == before
