"""End-to-end latency per image on CPU: PyTorch eager vs ONNX Runtime (standard
flavor, plugin flavor) vs INT8, for R-101 at 1024 and the small shipped model.

    python bench/bench_e2e.py [--threads 2] [--repeat 5] [--models r101,shapes] [--int8]
    python bench/bench_e2e.py --batches 1,2,4,8 [--models shapes,r101]   # images/s vs batch (dynamic batch)
    python bench/bench_e2e.py --eval 200                                  # pipelined evaluation vs 1/latency

"End to end" = molding + network + unmolding of one real-looking image (a
synthetic shapes image; the seed photos when ../shared/data is present), batch 1.
The network-only time (runner call) is printed too. Medians over --repeat runs
after one warm-up; ratios are relative to PyTorch eager. Export times and ONNX
file sizes are printed as well. R-101 uses random weights (sharpened so the
heads produce detections) with DETECTION_MIN_CONFIDENCE 0.3: the cost of the
detection/mask stages depends on the number of detections.

--batches: one dynamic-batch export per model (``--batch dynamic --max-batch
max(B)``, mask head on the valid slots), network images/s at each batch B on
distinct images (the seed photos, else synthetic ones), batches interleaved
over --repeat rounds, medians. --eval N: the shipped model evaluated
(pycocotools) on N synthetic images, serial vs pipelined loop, interleaved:
end-to-end images/s next to 1 / (mean network time per image); their ratio is
metrics.json's pipeline_efficiency.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import torch
from benchlib import load_avg, random_coco_model

from mrcnn_trt.data import open_dataset
from mrcnn_trt.data.synthetic import SyntheticShapesDataset, write_dataset
from mrcnn_trt.eval.evaluate import evaluate
from mrcnn_trt.eval.evaluators import COCOEvaluator
from mrcnn_trt.export.exporter import export_onnx
from mrcnn_trt.model.checkpoint import shipped_model_path
from mrcnn_trt.model.loading import load_model
from mrcnn_trt.model.molding import load_image, mold_batch
from mrcnn_trt.runtime.runners import OnnxRunner, detect

HERE = os.path.dirname(os.path.abspath(__file__))
SEED_IMAGES = os.path.join(HERE, "..", "..", "shared", "data", "seed-images")


def test_image():
    if os.path.isdir(SEED_IMAGES):
        files = sorted(f for f in os.listdir(SEED_IMAGES) if f.endswith(".jpg"))
        return load_image(os.path.join(SEED_IMAGES, files[0]))

    return SyntheticShapesDataset(1, seed=99, split="val").load_image(0)


def time_runner(runner, image, repeat):
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
    if name == "shapes":
        m, _, _ = load_model(shipped_model_path())
        return m
    return random_coco_model("resnet101", min_confidence=0.3)


def test_images(n):
    """n distinct images: the seed photos (cycled), else synthetic shapes images."""
    if os.path.isdir(SEED_IMAGES):
        files = sorted(f for f in os.listdir(SEED_IMAGES) if f.endswith(".jpg"))
        return [load_image(os.path.join(SEED_IMAGES, files[i % len(files)])) for i in range(n)]

    ds = SyntheticShapesDataset(n, seed=99, split="val")
    return [ds.load_image(i) for i in range(n)]


def batch_table(args):
    sizes = [int(b) for b in args.batches.split(",")]
    tmp = tempfile.mkdtemp(prefix="mrcnn_bench_batch_")
    rows = []
    for name in args.models.split(","):
        model = build(name)
        path = os.path.join(tmp, f"{name}_dyn.onnx")
        export_onnx(model, path, batch=max(max(sizes), 2), dynamic_batch=True, mask_head="valid")
        runner = OnnxRunner(path, threads=args.threads)
        x, w, _ = mold_batch(test_images(max(sizes)), model.config)
        times = {b: [] for b in sizes}
        for b in sizes:   # warm-up
            runner(x[:b], w[:b])
        for _ in range(args.repeat):
            for b in sizes:
                t0 = time.perf_counter()
                runner(x[:b], w[:b])
                times[b].append(time.perf_counter() - t0)
        ips = {b: b / statistics.median(v) for b, v in times.items()}
        rows.append((name, ips))
        print(f"   {name}: " + ", ".join(f"batch {b} {v:.2f} img/s" for b, v in ips.items()), file=sys.stderr)
    print("\n| model | " + " | ".join(f"batch {b}" for b in sizes) + " |")
    print("|---|" + "---|" * len(sizes))
    for name, ips in rows:
        print(f"| {name} | " + " | ".join(f"{ips[b]:.2f} img/s ({ips[b] / ips[sizes[0]]:.2f}x)" for b in sizes) + " |")
    print(f"\nONNX Runtime (our ops, dynamic batch), {args.threads} threads, network images/s, "
          f"median of {args.repeat} interleaved rounds")


def eval_table(args):
    os.environ.setdefault("MRCNN_PROGRESS", "0")
    tmp = tempfile.mkdtemp(prefix="mrcnn_bench_eval_")
    model = build("shapes")
    rows = []
    for mask_head in ("all", "valid"):
        path = os.path.join(tmp, f"shapes_{mask_head}.onnx")
        export_onnx(model, path, weights_path=shipped_model_path(), mask_head=mask_head)
        # as mrcnn-eval: ONNX Runtime's threads do not spin between ops (serial or pipelined)
        rows.append((mask_head, {depth: OnnxRunner(path, threads=args.threads) for depth in (0, 2)}))
    root = os.path.join(tmp, "val")
    write_dataset(root, num_images=args.eval, seed=777, split="val", show_progress=False)
    ds = open_dataset(root, "val")
    res = {}
    for _ in range(2):
        for mask_head, runners in rows:
            for depth, runner in runners.items():
                m = evaluate(runner, ds, COCOEvaluator(ds, class_names=runner.config.CLASS_NAMES), pipeline=depth)
                res.setdefault((mask_head, depth), []).append(m)
    print("\n| shipped model, ORT | loop | mask AP | network ms / image (mean) | 1 / mean | end-to-end img/s | "
          "efficiency |")
    print("|---|---|---|---|---|---|---|")
    for (mask_head, depth), ms in res.items():
        lat = statistics.median(m["latency_per_image_ms"]["mean"] for m in ms)
        ips = statistics.median(m["throughput_ips"] for m in ms)
        eff = statistics.median(m["pipeline_efficiency"] for m in ms)   # ips x mean network time per image
        print(f"| mask head {mask_head} | {'pipelined' if depth else 'serial'} | {100 * ms[0]['segm']['AP']:.2f} | "
              f"{lat:.1f} | {1000 / lat:.1f} | {ips:.1f} | {eff:.2f} |")
    print(f"\n{args.eval} synthetic images, {args.threads} threads, median of 2 interleaved runs")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--models", default="shapes,r101")
    ap.add_argument("--int8", action="store_true", help="also quantize (mrcnn-calibrate) and time the INT8 model")
    ap.add_argument("--batches", help="images/s at these batch sizes, e.g. 1,2,4,8 (dynamic-batch export)")
    ap.add_argument("--eval", type=int, default=0, metavar="N",
                    help="pipelined vs serial evaluation of the shipped model on N synthetic images")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"# load average {load_avg()} (start)", file=sys.stderr)
    if args.batches:
        batch_table(args)
    if args.eval:
        eval_table(args)
    if args.batches or args.eval:
        print(f"# load average {load_avg()} (end)", file=sys.stderr)
        return
    from mrcnn_trt.runtime.runners import OnnxRunner
    from mrcnn_trt.runtime.torch_runner import TorchRunner
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
