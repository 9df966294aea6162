"""Peak memory (RSS) of export, calibration and evaluation, each in its own process.

    python bench/bench_memory.py                 # R-101 at 1024 (random weights)
    python bench/bench_memory.py --model shapes  # the shipped model at 256

Steps: ``export`` (PyTorch model -> ONNX, trt flavor), ``calibrate``
(mrcnn-calibrate --target cpu on --calib-count photos of ../shared/data/seed-images,
synthetic images without them), ``eval`` (mrcnn-eval on the COCO val2017 sample of
../shared/data, or on synthetic images, at --eval-images 1x and 4x to show that
evaluation memory does not grow with the number of images). Each step runs in a
fresh Python process that reports its own peak resident set size
(``getrusage(RUSAGE_SELF).ru_maxrss``).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.join(HERE, "..", "..", "shared", "data")

_PEAK = "import json, resource; print('PEAK ' + json.dumps(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))"

EXPORT = """
import sys, torch
from mrcnn_trt.config import preset
from mrcnn_trt.export.exporter import export_onnx
from mrcnn_trt.model import build_model
from mrcnn_trt.model.checkpoint import shipped_model_path
from mrcnn_trt.model.loading import load_model
torch.set_num_threads(2)
if sys.argv[1] == "shapes":
    m, _, _ = load_model(shipped_model_path())
else:
    torch.manual_seed(0)
    m = build_model(preset("coco").replace(DETECTION_MIN_CONFIDENCE=0.3))
export_onnx(m.eval(), sys.argv[2])
"""

CLI = """
import sys, importlib
rc = importlib.import_module(sys.argv[1]).main(sys.argv[2:])
assert rc == 0, rc
"""


def run(code: str, args, label: str) -> float:
    env = {**os.environ, "MRCNN_PROGRESS": "0"}
    r = subprocess.run([sys.executable, "-c", code + "\n" + _PEAK, *args], capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise SystemExit(f"{label} failed:\n{r.stderr[-3000:]}")
    kb = json.loads(next(line for line in r.stdout.splitlines() if line.startswith("PEAK "))[5:])
    mb = kb / 1024
    print(f"   {label}: peak RSS {mb:.0f} MB", file=sys.stderr, flush=True)
    return mb


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=["r101", "shapes"], default="r101")
    ap.add_argument("--calib-count", type=int, default=8)
    ap.add_argument("--eval-images", type=int, default=4, help="images of the smaller evaluation (the larger: 4x)")
    ap.add_argument("--work", help="working folder (default: a temporary one)")
    args = ap.parse_args(argv)
    work = args.work or tempfile.mkdtemp(prefix="bench-memory-")
    os.makedirs(work, exist_ok=True)
    onnx_path = os.path.join(work, f"{args.model}.onnx")
    res = {"export": run(EXPORT, [args.model, onnx_path], "export")}

    seed = os.path.join(SHARED, "seed-images")
    if not os.path.isdir(seed):
        from mrcnn_trt.data.synthetic import write_dataset

        seed = os.path.join(work, "calib")
        write_dataset(seed, num_images=args.calib_count, seed=5, split="val", show_progress=False)
    res["calibrate"] = run(CLI, ["mrcnn_trt.calib.cli", onnx_path, "--images", seed, "--calib-count",
                                 str(args.calib_count), "--target", "cpu", "-o",
                                 os.path.join(work, "int8.onnx")], f"calibrate ({args.calib_count} images)")

    # evaluation data: COCO classes for R-101 (the val2017 sample, repeated), shapes for the shipped model
    from mrcnn_trt.data.synthetic import write_dataset

    n_small, n_large = args.eval_images, 4 * args.eval_images
    if args.model == "r101" and os.path.isdir(os.path.join(SHARED, "coco-val2017-sample")):
        root = os.path.join(work, "coco")
        _repeat_coco_sample(os.path.join(SHARED, "coco-val2017-sample"), root, n_large)
    else:
        root = os.path.join(work, "shapes")
        write_dataset(root, num_images=n_large, seed=777, split="val", show_progress=False)
    for n in (n_small, n_large):
        res[f"eval {n} images"] = run(CLI, ["mrcnn_trt.eval.cli", "--engine", onnx_path, "--dataset", "coco",
                                            "--data-root", root, "--limit", str(n), "--out",
                                            os.path.join(work, f"eval{n}")], f"eval ({n} images)")
    print(f"\n| step ({args.model}) | peak RSS MB |\n|---|---|")
    for k, v in res.items():
        print(f"| {k} | {v:.0f} |")
    return 0


def _repeat_coco_sample(src: str, dst: str, n: int) -> None:
    """A COCO folder with the sample's images repeated to ``n`` (new ids and file names)."""
    with open(os.path.join(src, "instances_sample.json")) as f:
        coco = json.load(f)
    images, anns = [], []
    os.makedirs(os.path.join(dst, "val"), exist_ok=True)
    for i in range(n):
        im = dict(coco["images"][i % len(coco["images"])])
        old = im["id"]
        im["id"], im["file_name"] = i + 1, f"{i:04d}_{im['file_name']}"
        shutil.copy(os.path.join(src, coco["images"][i % len(coco["images"])]["file_name"]),
                    os.path.join(dst, "val", im["file_name"]))
        images.append(im)
        for a in coco["annotations"]:
            if a["image_id"] == old:
                anns.append({**a, "id": len(anns) + 1, "image_id": i + 1})
    os.makedirs(os.path.join(dst, "annotations"), exist_ok=True)
    with open(os.path.join(dst, "annotations", "instances_val.json"), "w") as f:
        json.dump({**coco, "images": images, "annotations": anns}, f)


if __name__ == "__main__":
    sys.exit(main())
