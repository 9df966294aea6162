"""Per-image time on a quiet and on a busy machine: PyTorch and ONNX Runtime.

    python bench/bench_busy.py                                   # shipped model, 2 threads, 3 rounds
    python bench/bench_busy.py --models shapes,r101 --images 20 --r101-images 3 --rounds 3
    python bench/bench_busy.py --settings torch:default,torch:project,ort:spin,ort:project --threads 1,2

"Busy" = one competing CPU-bound process (a Python busy loop) per available core,
started before and stopped after each measurement. Every measurement runs in a
fresh process (bench/busy_worker.py; the OpenMP runtime reads its wait policy when ``import torch`` loads
it), which loads the model, makes two untimed calls and then times ``--images``
distinct images one at a time (``model.detect`` for PyTorch; molding + network +
unmolding via :func:`mrcnn_trt.runtime.runners.detect` for ONNX Runtime). Quiet and
busy measurements alternate within each round; the table gives per-image medians
over all rounds and busy / quiet (with one competitor per core a fair share of the
CPU alone gives 2x).

Settings (``--settings``, ``backend:name``):

* ``torch:default`` - what the commands did before: PyTorch's own OpenMP defaults
  (threads spin while they wait), ``torch.set_num_threads(threads)``;
* ``torch:project`` - what every ``mrcnn-*`` command does now
  (:func:`mrcnn_trt.threads.prepare_process` before ``import torch``, then
  :func:`mrcnn_trt.threads.configure_torch`);
* ``torch:1thread`` - PyTorch's defaults with one thread (whatever ``--threads`` says);
* ``ort:spin`` / ``ort:nospin`` - ONNX Runtime's intra-op threads spin between ops (its
  default) / do not (``session.intra_op.allow_spinning = 0``);
* ``ort:project`` - the commands' sessions (:class:`mrcnn_trt.runtime.runners.OnnxRunner`
  defaults).

R-101 (1024 px, random weights sharpened to give detections) is slow: it takes
``--r101-images`` images (default 3). ``--json FILE`` writes every measurement.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from benchlib import load_avg, random_coco_model

from mrcnn_trt.export.exporter import export_onnx
from mrcnn_trt.model.checkpoint import shipped_model_path
from mrcnn_trt.model.loading import load_model

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
#: one measurement in a fresh process: bench/busy_worker.py
WORKER = os.path.join(HERE, "busy_worker.py")

#: environment variables that decide how idle OpenMP threads wait: cleared for every worker,
#: so ``torch:default`` really is PyTorch's default whatever the calling shell set
WAIT_VARS = ("OMP_WAIT_POLICY", "KMP_BLOCKTIME", "GOMP_SPINCOUNT", "OMP_NUM_THREADS", "MKL_NUM_THREADS")

SETTINGS = ("torch:default", "torch:project", "torch:1thread", "ort:spin", "ort:nospin", "ort:project")
BUSY_LOOP = "while True:\n    pass\n"


# --------------------------------------------------------------------------- parent
def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def run_worker(job: dict, busy: bool, timeout: float) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in WAIT_VARS}
    env["MRCNN_PROGRESS"] = "0"
    competitors = []
    if busy:
        competitors = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(available_cores())]
        time.sleep(0.5)   # let them start spinning
    t0 = time.perf_counter()
    try:
        r = subprocess.run([sys.executable, WORKER, json.dumps(job)], env=env,
                           capture_output=True, text=True, timeout=timeout)
    finally:
        competitor_cpu = sum(cpu_seconds(p.pid) for p in competitors)
        for p in competitors:
            p.kill()
        for p in competitors:
            p.wait()
    if r.returncode != 0:
        raise SystemExit(f"worker {job} failed:\n{r.stderr[-3000:]}")
    out = json.loads(r.stdout.strip().splitlines()[-1])
    # CPU seconds the competitors got while the worker ran (they did compete: the busy mode works)
    out.update(competitors=len(competitors), competitor_cpu_s=round(competitor_cpu, 2),
               worker_wall_s=round(time.perf_counter() - t0, 2))
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc; 0.0 elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def export_models(models, tmp: str) -> dict:
    """One ONNX export per model (trt flavor, mask head on the valid slots: the CPU export the README recommends)."""
    paths = {}
    for name in models:
        path = os.path.join(tmp, f"{name}.onnx")
        if name == "shapes":
            model, _, _ = load_model(None)
            export_onnx(model, path, weights_path=shipped_model_path(), mask_head="valid")
        else:
            export_onnx(random_coco_model("resnet101", min_confidence=0.3), path, mask_head="valid")
        paths[name] = path
    return paths


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="shapes", help="shapes and/or r101 (default shapes)")
    ap.add_argument("--settings", default="torch:default,torch:project,ort:spin,ort:project",
                    help=f"comma list of {', '.join(SETTINGS)}")
    ap.add_argument("--threads", default="2", help="comma list of thread counts (default 2)")
    ap.add_argument("--images", type=int, default=20, help="timed images per measurement, shapes (default 20)")
    ap.add_argument("--r101-images", type=int, default=3, help="timed images per measurement, R-101 (default 3)")
    ap.add_argument("--rounds", type=int, default=3, help="quiet/busy rounds (default 3)")
    ap.add_argument("--json", metavar="FILE", help="write every measurement here")
    args = ap.parse_args(argv)
    models = [m for m in args.models.split(",") if m]
    settings = [s for s in args.settings.split(",") if s]
    threads = [int(t) for t in args.threads.split(",") if t]
    bad = [m for m in models if m not in ("shapes", "r101")] + [s for s in settings if s not in SETTINGS]
    if bad:
        ap.error(f"unknown model or setting: {', '.join(bad)}")
    os.environ.setdefault("MRCNN_PROGRESS", "0")
    print(f"# load average {load_avg()} (start), {available_cores()} cores", file=sys.stderr)
    tmp = tempfile.mkdtemp(prefix="mrcnn_bench_busy_")
    onnx = export_models(models, tmp) if any(s.startswith("ort:") for s in settings) else {}
    results = {}   # (model, setting, threads, busy) -> [median ms per round]
    runs = []
    for rnd in range(args.rounds):
        for model in models:
            n = args.images if model == "shapes" else args.r101_images
            for setting in settings:
                for t in threads:
                    job = {"model": model, "setting": setting, "threads": t, "images": n, "onnx": onnx.get(model)}
                    for busy in ((False, True) if rnd % 2 == 0 else (True, False)):
                        r = run_worker(job, busy, timeout=600 + 120 * n)
                        results.setdefault((model, setting, t, busy), []).append(r["median_ms"])
                        runs.append({**job, "busy": busy, "round": rnd, **r})
                        print(f"   round {rnd + 1}: {model} {setting} {t} threads {'busy ' if busy else 'quiet'}: "
                              f"{r['median_ms']:.1f} ms/image", file=sys.stderr)
    print("\n| model | backend, settings | threads | quiet ms / image | busy ms / image | busy / quiet |")
    print("|---|---|---|---|---|---|")
    for model in models:
        for setting in settings:
            for t in threads:
                q = statistics.median(results[(model, setting, t, False)])
                b = statistics.median(results[(model, setting, t, True)])
                print(f"| {model} | {setting} | {t} | {q:.1f} | {b:.1f} | {b / q:.2f}x |")
    print(f"\n{available_cores()} cores, busy = {available_cores()} competing busy loops; medians of per-image "
          f"medians over {args.rounds} rounds ({args.images} shapes / {args.r101_images} R-101 images each); "
          f"load average {load_avg()} (end)")
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump({"runs": runs, "cores": available_cores()}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
