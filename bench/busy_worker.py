"""One measurement of bench/bench_busy.py, in a fresh process:

    python bench/busy_worker.py '{"setting": "torch:project", "model": "shapes", "threads": 2, "images": 20}'

prints one JSON line (per-image times in ms, the thread settings in effect). The
OpenMP runtime reads its wait policy when ``import torch`` loads it, so ``main``
applies the setting first (``torch:project``: :func:`mrcnn_trt.threads.prepare_process`)
and only then imports torch and the modules that load it.
"""
from __future__ import annotations

import json
import os
import statistics
import sys
import time

from mrcnn_trt.data.synthetic import SyntheticShapesDataset
from mrcnn_trt.model.molding import load_image
from mrcnn_trt.threads import configure_torch, prepare_process

HERE = os.path.dirname(os.path.abspath(__file__))
SEED_IMAGES = os.path.join(HERE, "..", "..", "shared", "data", "seed-images")


def images_for(model: str, n: int):
    """``n`` distinct images: the seed photos for R-101 when ../shared is present, else
    synthetic shapes images (the same in every worker)."""
    if model == "r101" and os.path.isdir(SEED_IMAGES):
        files = sorted(f for f in os.listdir(SEED_IMAGES) if f.endswith(".jpg"))
        return [load_image(os.path.join(SEED_IMAGES, files[i % len(files)])) for i in range(n)]
    ds = SyntheticShapesDataset(n, seed=99, split="val")
    return [ds.load_image(i) for i in range(n)]


def time_calls(call, images) -> list:
    """Two untimed calls, then the time of each call in ms."""
    for img in images[:2]:
        call(img)   # warm-up
    times = []
    for img in images:
        t0 = time.perf_counter()
        call(img)
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def main(argv=None) -> int:
    job = json.loads((sys.argv[1:] if argv is None else argv)[0])
    backend, setting = job["setting"].split(":")
    if setting == "project":
        prepare_process()
    # torch (and what loads it) only now: the setting above is in the environment
    import torch

    from benchlib import random_coco_model

    from mrcnn_trt.model.loading import load_model
    from mrcnn_trt.runtime.runners import OnnxRunner, detect

    threads = int(job["threads"])
    if backend == "torch":
        if setting == "project":
            configure_torch(threads)
        else:
            torch.set_num_threads(1 if setting == "1thread" else threads)
        if job["model"] == "shapes":
            model, _, _ = load_model(None)
        else:
            model = random_coco_model("resnet101", min_confidence=0.3)

        def call(img):
            with torch.no_grad():
                return model.detect([img])
    else:
        torch.set_num_threads(1)   # only the unmolding touches torch
        spin = {"spin": {"spinning": True}, "nospin": {"spinning": False}}.get(setting, {})
        runner = OnnxRunner(job["onnx"], threads=threads, **spin)

        def call(img):
            return detect(runner, [img])

    times = time_calls(call, images_for(job["model"], int(job["images"])))
    print(json.dumps({"median_ms": statistics.median(times), "mean_ms": statistics.fmean(times), "times_ms": times,
                      "torch_threads": torch.get_num_threads(), "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
                      "gomp_spincount": os.environ.get("GOMP_SPINCOUNT")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
