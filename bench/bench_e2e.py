"""End-to-end latency per image on CPU: PyTorch eager vs ONNX Runtime (standard
flavor, plugin flavor) vs INT8, for R-101 at 1024 and the small shipped model.

    python bench/bench_e2e.py [--threads 2] [--repeat 5] [--models r101,shapes] [--int8]

"End to end" = molding + network + unmolding of one real-looking image (a
synthetic shapes image; the seed photos when ../shared/data is present), batch 1.
The network-only time (runner call) is printed too. Medians over --repeat runs
after one warm-up; ratios are relative to PyTorch eager. Export times and ONNX
file sizes are printed as well. R-101 uses random weights (sharpened so the
heads produce detections) with DETECTION_MIN_CONFIDENCE 0.3: the cost of the
detection/mask stages depends on the number of detections.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
SEED_IMAGES = os.path.join(HERE, "..", "..", "shared", "data", "seed-images")


def test_image():
    if os.path.isdir(SEED_IMAGES):
        from mrcnn_trt.model.molding import load_image

        files = sorted(f for f in os.listdir(SEED_IMAGES) if f.endswith(".jpg"))
        return load_image(os.path.join(SEED_IMAGES, files[0]))
    from mrcnn_trt.data.synthetic import SyntheticShapesDataset

    return SyntheticShapesDataset(1, seed=99, split="val").load_image(0)


def time_runner(runner, image, repeat):
    from mrcnn_trt.runtime.runners import detect

    detect(runner, [image])  # warm-up
    e2e, net, ndet = [], [], 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        r = detect(runner, [image])[0]
        e2e.append((time.perf_counter() - t0) * 1e3)
        net.append(runner.last_latency_ms)
        ndet = len(r["class_ids"])
    return statistics.median(e2e), statistics.median(net), ndet


def build(name):
    from mrcnn_trt.config import preset
    from mrcnn_trt.model import build_model
    from mrcnn_trt.model.checkpoint import load_model, shipped_model_path

    if name == "shapes":
        m, _, _ = load_model(shipped_model_path())
        return m
    torch.manual_seed(0)
    m = build_model(preset("coco").replace(DETECTION_MIN_CONFIDENCE=0.3))
    with torch.no_grad():
        m.classifier.linear_class.weight.mul_(300)
        m.classifier.linear_bbox.weight.mul_(30)
    return m.eval()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--models", default="shapes,r101")
    ap.add_argument("--int8", action="store_true", help="also quantize (mrcnn-calibrate) and time the INT8 model")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from mrcnn_trt.runtime.runners import OnnxRunner, TorchRunner
    from mrcnn_trt.export.exporter import export_onnx

    rows = []
    tmp = tempfile.mkdtemp(prefix="mrcnn_bench_")
    for name in args.models.split(","):
        model = build(name)
        image = test_image()
        print(f"== {name}: {model.config.BACKBONE} {model.config.IMAGE_MAX_DIM}px", file=sys.stderr)
        runners = [("pytorch eager (torch ops)", lambda: TorchRunner.from_model(model.set_ops_backend("torch")))]
        runners.append(("pytorch eager (C++ ops)", lambda: TorchRunner.from_model(model.set_ops_backend("cpu"))))
        for flavor in ("standard", "trt"):
            path = os.path.join(tmp, f"{name}_{flavor}.onnx")
            t0 = time.perf_counter()
            export_onnx(model, path, flavor=flavor)
            print(f"   export {flavor}: {time.perf_counter() - t0:.1f} s, {os.path.getsize(path) / 1e6:.1f} MB",
                  file=sys.stderr)
            label = "ORT standard ops" if flavor == "standard" else "ORT plugin ops"
            runners.append((label, lambda p=path: OnnxRunner(p, threads=args.threads)))
        if args.int8:
            from mrcnn_trt.calib.cli import main as calibrate

            src = os.path.join(tmp, f"{name}_trt.onnx")
            dst = os.path.join(tmp, f"{name}_int8.onnx")
            from mrcnn_trt.data.synthetic import write_dataset

            calib_dir = os.path.join(tmp, "calib")
            if not os.path.isdir(calib_dir):
                write_dataset(calib_dir, fmt="coco", num_images=32, seed=5, split="val")
            if calibrate([src, "--images", calib_dir, "--calib-count", "32", "--target", "cpu", "-o", dst]) == 0:
                runners.append(("ORT INT8 (Q/DQ, cpu form)", lambda: OnnxRunner(dst, threads=args.threads)))
        base = None
        for label, make in runners:
            e2e, net, ndet = time_runner(make(), image, args.repeat)
            base = base or e2e
            rows.append((name, label, e2e, net, base / e2e, ndet))
            print(f"   {label}: {e2e:.1f} ms", file=sys.stderr)
    print(f"\n{'model':<8}{'backend':<28}{'e2e ms':>10}{'net ms':>10}{'speed-up':>10}{'dets':>6}")
    for name, label, e2e, net, ratio, ndet in rows:
        print(f"{name:<8}{label:<28}{e2e:>10.1f}{net:>10.1f}{ratio:>9.2f}x{ndet:>6}")
    print(f"\n{args.threads} threads, median of {args.repeat} runs, batch 1")


if __name__ == "__main__":
    main()
