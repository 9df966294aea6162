"""Accuracy and CPU latency of FP32, FP16 and INT8 (Q/DQ) for one model.

    python bench/bench_int8.py                      # the shipped shapes model
    python bench/bench_int8.py --sensitivity        # + which layer groups cost accuracy
    python bench/bench_int8.py --methods minmax,entropy,percentile --json out.json
    python bench/bench_int8.py --counts 8,16,32,64,128,256,500   # mask AP vs calibration images
    python bench/bench_int8.py --r101 8 --no-accuracy               # calibration speed of R-101 at 1024

Steps: export the model (trt flavor, the mrcnn custom ops), make a fresh
synthetic COCO validation set (--val-images, --val-seed, distinct from the
training seed) and a calibration set (training split, --calib-seed), convert
to FP16 and calibrate once per method (``calib.qdq.calibrate_ranges``), write
the two INT8 forms from the same ranges (``--target tensorrt`` and ``cpu``),
then evaluate every model with pycocotools (COCOEvaluator: bbox and mask AP)
in ONNX Runtime, and time the network call on the CPU (--threads, median over
--repeat runs on one image, the models interleaved so that load on a shared
machine hits them alike). Prints a table; --json writes everything.

--sensitivity quantizes one layer group at a time (all others float) and
all groups but one (with the TensorRT form's settings), to show where INT8
loses accuracy; this is how calib.qdq.DEFAULT_EXCLUDE was chosen.

Calibration speed: each calibration's seconds per image next to the FP32
network time per image (the median latency above). ``--r101 N`` does the same
for R-101 at 1024 (random weights) on N photos of ../shared/data/seed-images:
FP32 inference per image vs percentile and min-max calibration per image, in
interleaved rounds. ``--counts`` calibrates (percentile) on growing random
subsets of the calibration set and evaluates both INT8 forms: how many
images are enough (calib/README.md).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

from benchlib import load_avg, random_coco_model

from mrcnn_trt.calib.fp16 import convert_model
from mrcnn_trt.calib.qdq import (
    DEFAULT_EXCLUDE, GROUP_NAMES, calibrate_ranges, fused_int8_ops, quantize_model, tensorrt_qdq_problems,
)
from mrcnn_trt.data import open_dataset
from mrcnn_trt.data.synthetic import write_dataset
from mrcnn_trt.eval.evaluate import evaluate
from mrcnn_trt.eval.evaluators import COCOEvaluator
from mrcnn_trt.export.exporter import export_onnx
from mrcnn_trt.model.checkpoint import shipped_model_path
from mrcnn_trt.model.loading import load_model
from mrcnn_trt.model.molding import mold_batch
from mrcnn_trt.runtime.batcher import ImageBatcher
from mrcnn_trt.runtime.runners import OnnxRunner


def evaluate_ap(path, dataset, threads):
    runner = OnnxRunner(path, threads=threads)
    m = evaluate(runner, dataset, COCOEvaluator(dataset, class_names=runner.config.CLASS_NAMES))
    return {"bbox_AP": 100 * m["bbox"]["AP"], "mask_AP": 100 * m["segm"]["AP"],
            "bbox_AP50": 100 * m["bbox"]["AP50"], "mask_AP50": 100 * m["segm"]["AP50"]}


def time_models(paths, image, config, threads, repeat):
    """Median network latency (ms) of each model on one molded image; runs are interleaved."""
    x, w, _ = mold_batch([image], config)
    runners = {k: OnnxRunner(p, threads=threads) for k, p in paths.items()}
    for r in runners.values():   # warm-up
        for _ in range(3):
            r(x, w)
    times = {k: [] for k in runners}
    for _ in range(repeat):
        for k, r in runners.items():
            t0 = time.perf_counter()
            r.session.run(["detections", "count", "masks"], {"images": x, "windows": w})
            times[k].append((time.perf_counter() - t0) * 1e3)
    return {k: statistics.median(v) for k, v in times.items()}, times


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", help="checkpoint (default: the shipped shapes model)")
    ap.add_argument("--val-images", type=int, default=200)
    ap.add_argument("--val-seed", type=int, default=777)
    ap.add_argument("--calib-images", type=int, default=500)
    ap.add_argument("--calib-seed", type=int, default=555)
    ap.add_argument("--methods", default="percentile",
                    help="calibration methods to compare, comma separated (default percentile; the first one is "
                         "used by --sensitivity)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=30, help="timed runs per model (default 30)")
    ap.add_argument("--sensitivity", action="store_true", help="per-group INT8 sensitivity analysis")
    ap.add_argument("--counts", help="mask AP vs calibration images, e.g. 8,16,32,64,128,256,500")
    ap.add_argument("--r101", type=int, default=0, metavar="N",
                    help="calibration speed of R-101 at 1024 on N seed photos (s/image vs FP32 inference)")
    ap.add_argument("--rounds", type=int, default=2, help="interleaved rounds of --r101 (default 2)")
    ap.add_argument("--no-accuracy", action="store_true", help="skip the shipped model's accuracy tables")
    ap.add_argument("--work", help="working folder (default: a temporary one)")
    ap.add_argument("--json", help="write all results here")
    args = ap.parse_args(argv)
    os.environ.setdefault("MRCNN_PROGRESS", "0")

    work = args.work or tempfile.mkdtemp(prefix="bench-int8-")
    os.makedirs(work, exist_ok=True)
    t0 = time.time()
    print(f"# load average {load_avg()} (start)", flush=True)
    out = {"args": vars(args)}
    if not args.no_accuracy:
        out.update(accuracy(args, work))
    if args.r101:
        out["r101_speed"] = r101_speed(args, work)
    print(f"# total {time.time() - t0:.0f} s; files in {work}; load average {load_avg()} (end)", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    return 0


def accuracy(args, work):
    weights = args.weights or shipped_model_path()
    model, cfg, _ = load_model(weights)
    src = os.path.join(work, "model.onnx")
    export_onnx(model, src, weights_path=weights)
    val_root, cal_root = os.path.join(work, "val"), os.path.join(work, "calib")
    write_dataset(val_root, num_images=args.val_images, seed=args.val_seed, split="val", show_progress=False)
    write_dataset(cal_root, num_images=args.calib_images, seed=args.calib_seed, split="train", show_progress=False)
    val = open_dataset(val_root, "val")
    print(f"# {os.path.basename(weights)}: {cfg.NAME}, {cfg.IMAGE_MAX_DIM} px; {args.val_images} val images "
          f"(seed {args.val_seed}), {args.calib_images} calibration images (seed {args.calib_seed}, train split); "
          f"ONNX Runtime CPU, {args.threads} threads", flush=True)

    models = {"FP32": src}
    models["FP16 (simulated)"] = os.path.join(work, "model.fp16.onnx")
    convert_model(src, models["FP16 (simulated)"])
    ranges, calib_s = {}, {}
    # the sensitivity analysis tries other exclusions with the same ranges: collect every group's
    exclude = () if args.sensitivity else DEFAULT_EXCLUDE
    for method in args.methods.split(","):
        t, tm = time.time(), {}
        batcher = ImageBatcher(cal_root, cfg, batch_size=1, sample=args.calib_images, seed=0, split="train")
        ranges[method], n = calibrate_ranges(src, batcher, batch=1, image_size=cfg.IMAGE_MAX_DIM, method=method,
                                             threads=args.threads, exclude=exclude, timings=tm)
        calib_s[method] = tm["images_s"] / n
        print(f"# calibration {method}: {n} images, {time.time() - t:.0f} s", flush=True)
        for target in ("tensorrt", "cpu"):
            name = f"INT8 {target} form ({method})"
            models[name] = os.path.join(work, f"model.{method}.{target}.int8.onnx")
            quantize_model(src, models[name], cal_root, method=method, target=target, tensors_data=ranges[method])
    import onnx

    results = {}
    for name, path in models.items():
        t = time.time()
        results[name] = evaluate_ap(path, val, args.threads)
        if "tensorrt" in name:
            assert tensorrt_qdq_problems(onnx.load(path)) == []
        print(f"# evaluated {name}: {time.time() - t:.0f} s", flush=True)
    image = val.load_image(0)
    medians, _ = time_models(models, image, cfg, args.threads, args.repeat)
    fused = {name: fused_int8_ops(path).get("QLinearConv", 0) for name, path in models.items()}

    base = results["FP32"]
    lines = ["| model (ONNX Runtime CPU) | bbox AP | mask AP | Δ mask AP | QLinearConv | latency ms (median) | "
             "vs FP32 |", "|---|---|---|---|---|---|---|"]
    for name in models:
        r = results[name]
        lines.append(f"| {name} | {r['bbox_AP']:.2f} | {r['mask_AP']:.2f} | {r['mask_AP'] - base['mask_AP']:+.2f} | "
                     f"{fused[name]} | {medians[name]:.1f} | {medians['FP32'] / medians[name]:.2f}x |")
    print("\n".join(lines), flush=True)
    fp32_s = medians["FP32"] / 1e3
    lines = ["| calibration | s / image | FP32 inference s / image | ratio |", "|---|---|---|---|"]
    for method, sec in calib_s.items():
        lines.append(f"| {method} | {sec:.3f} | {fp32_s:.3f} | {sec / fp32_s:.2f}x |")
    print("\n".join(lines), flush=True)

    counts = []
    if args.counts:
        method = args.methods.split(",")[0]
        for count in [int(c) for c in args.counts.split(",")]:
            batcher = ImageBatcher(cal_root, cfg, sample=count, seed=0, split="train")
            data, n = calibrate_ranges(src, batcher, batch=1, image_size=cfg.IMAGE_MAX_DIM, method=method,
                                       threads=args.threads)
            row = {"count": n}
            for target in ("tensorrt", "cpu"):
                p = os.path.join(work, f"count.{target}.int8.onnx")
                quantize_model(src, p, cal_root, method=method, target=target, tensors_data=data)
                row[target] = evaluate_ap(p, val, args.threads)
            counts.append(row)
            print(f"# {n} calibration images: mask AP {row['tensorrt']['mask_AP']:.2f} (tensorrt form) "
                  f"{row['cpu']['mask_AP']:.2f} (cpu form)", flush=True)
        lines = [f"| calibration images ({method}) | mask AP tensorrt form | Δ vs FP32 | mask AP cpu form | Δ vs FP32 |",
                 "|---|---|---|---|---|"]
        for r in counts:
            t, c = r["tensorrt"]["mask_AP"], r["cpu"]["mask_AP"]
            lines.append(f"| {r['count']} | {t:.2f} | {t - base['mask_AP']:+.2f} | {c:.2f} | "
                         f"{c - base['mask_AP']:+.2f} |")
        print("\n".join(lines), flush=True)

    sens = []
    if args.sensitivity:
        method = args.methods.split(",")[0]
        groups = [g for g in GROUP_NAMES if g != "other"]
        p = os.path.join(work, "sens.int8.onnx")
        variants = [("all groups", ())] + [(f"all but {g}", (g,)) for g in groups] + \
                   [(f"only {g}", tuple(x for x in groups if x != g)) for g in groups] + \
                   [(f"default (float: {','.join(DEFAULT_EXCLUDE)})", DEFAULT_EXCLUDE)]
        for label, excl in variants:
            quantize_model(src, p, cal_root, method=method, target="tensorrt", exclude=excl,
                           tensors_data=ranges[method])
            r = evaluate_ap(p, val, args.threads)
            sens.append({"variant": label, "exclude": list(excl), **r})
            print(f"# {label}: mask AP {r['mask_AP']:.2f} bbox AP {r['bbox_AP']:.2f}", flush=True)
        lines = ["| INT8 (TensorRT form) quantized groups | bbox AP | mask AP | Δ bbox | Δ mask |",
                 "|---|---|---|---|---|"]
        for s in sens:
            lines.append(f"| {s['variant']} | {s['bbox_AP']:.2f} | {s['mask_AP']:.2f} | "
                         f"{s['bbox_AP'] - base['bbox_AP']:+.2f} | {s['mask_AP'] - base['mask_AP']:+.2f} |")
        print("\n".join(lines), flush=True)
    return {"weights": weights, "results": results, "latency_ms": medians, "qlinearconv": fused,
            "calibration_s_per_image": calib_s, "counts": counts, "sensitivity": sens}


def r101_speed(args, work):
    """FP32 inference vs percentile / min-max calibration per image, R-101 at 1024, N seed photos."""
    seed = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "seed-images")
    if not os.path.isdir(seed):
        print(f"# --r101: no photos at {seed}; using synthetic images", flush=True)

        seed = os.path.join(work, "r101_images")
        write_dataset(seed, num_images=args.r101, seed=4, split="val", show_progress=False)
    m = random_coco_model("resnet101", min_confidence=0.3)
    src = os.path.join(work, "r101.onnx")
    export_onnx(m, src)
    cfg = m.config
    runner = OnnxRunner(src, threads=args.threads)
    batches = list(ImageBatcher(seed, cfg, limit=args.r101))
    runner(batches[0].images, batches[0].windows)   # warm-up
    times = {"FP32 inference": [], "percentile calibration": [], "minmax calibration": []}
    setup = []   # one-time graph + session creation of each calibration (not per image)
    for k in range(args.rounds):
        t = time.perf_counter()
        for b in batches:
            runner(b.images, b.windows)
        times["FP32 inference"].append((time.perf_counter() - t) / len(batches))
        for method in ("percentile", "minmax"):
            tm = {}
            _, n = calibrate_ranges(src, ImageBatcher(seed, cfg, limit=args.r101), batch=1,
                                    image_size=cfg.IMAGE_MAX_DIM, method=method, threads=args.threads, timings=tm)
            times[f"{method} calibration"].append(tm["images_s"] / n)
            setup.append(tm["setup_s"])
        print(f"# R-101 round {k + 1}: " + ", ".join(f"{k2} {v[-1]:.2f} s/image" for k2, v in times.items())
              + f" (load {load_avg()})", flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    lines = [f"| R-101 at 1024, {args.r101} photos, {args.threads} threads | s / image | vs FP32 inference |",
             "|---|---|---|"]
    for k, v in med.items():
        lines.append(f"| {k} | {v:.2f} | {v / med['FP32 inference']:.2f}x |")
    print("\n".join(lines), flush=True)
    print(f"(calibration per image once its session exists; the one-time graph + session setup took "
          f"{statistics.median(setup):.1f} s, median)", flush=True)
    return {"seconds_per_image": times, "median": med, "setup_s": setup}


if __name__ == "__main__":
    sys.exit(main())
