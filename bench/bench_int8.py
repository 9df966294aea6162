"""Accuracy and CPU latency of FP32, FP16 and INT8 (Q/DQ) for one model.

    python bench/bench_int8.py                      # the shipped shapes model
    python bench/bench_int8.py --sensitivity        # + which layer groups cost accuracy
    python bench/bench_int8.py --methods minmax,entropy,percentile --json out.json

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
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time


def evaluate_ap(path, dataset, threads):
    from mrcnn_trt.eval.evaluate import evaluate
    from mrcnn_trt.eval.evaluators import COCOEvaluator
    from mrcnn_trt.runtime.runners import OnnxRunner

    runner = OnnxRunner(path, threads=threads)
    m = evaluate(runner, dataset, COCOEvaluator(dataset, class_names=runner.config.CLASS_NAMES))
    return {"bbox_AP": 100 * m["bbox"]["AP"], "mask_AP": 100 * m["segm"]["AP"],
            "bbox_AP50": 100 * m["bbox"]["AP50"], "mask_AP50": 100 * m["segm"]["AP50"]}


def time_models(paths, image, config, threads, repeat):
    """Median network latency (ms) of each model on one molded image; runs are interleaved."""
    from mrcnn_trt.runtime.runners import OnnxRunner
    from mrcnn_trt.model.molding import mold_batch

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
    ap.add_argument("--work", help="working folder (default: a temporary one)")
    ap.add_argument("--json", help="write all results here")
    args = ap.parse_args(argv)
    os.environ.setdefault("MRCNN_PROGRESS", "0")

    from mrcnn_trt.calib.fp16 import convert_model
    from mrcnn_trt.calib.qdq import (DEFAULT_EXCLUDE, GROUP_NAMES, calibrate_ranges, quantize_model,
                                     tensorrt_qdq_problems, fused_int8_ops)
    from mrcnn_trt.runtime.batcher import ImageBatcher
    from mrcnn_trt.data import open_dataset
    from mrcnn_trt.data.synthetic import write_dataset
    from mrcnn_trt.export.exporter import export_onnx
    from mrcnn_trt.model.checkpoint import load_model, shipped_model_path

    work = args.work or tempfile.mkdtemp(prefix="bench-int8-")
    os.makedirs(work, exist_ok=True)
    weights = args.weights or shipped_model_path()
    t0 = time.time()
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
    ranges = {}
    for method in args.methods.split(","):
        t = time.time()
        batcher = ImageBatcher(cal_root, cfg, batch_size=1, sample=args.calib_images, seed=0, split="train")
        ranges[method], n = calibrate_ranges(src, batcher, batch=1, image_size=cfg.IMAGE_MAX_DIM, method=method,
                                             threads=args.threads)
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

    sens = []
    if args.sensitivity:
        method = args.methods.split(",")[0]
        groups = [g for g in GROUP_NAMES if g != "other"]
        p = os.path.join(work, "sens.int8.onnx")
        variants = [("all groups", ())] + [(f"all but {g}", (g,)) for g in groups] + \
                   [(f"only {g}", tuple(x for x in groups if x != g)) for g in groups] + \
                   [(f"default (float: {','.join(DEFAULT_EXCLUDE)})", DEFAULT_EXCLUDE)]
        for label, exclude in variants:
            quantize_model(src, p, cal_root, method=method, target="tensorrt", exclude=exclude,
                           tensors_data=ranges[method])
            r = evaluate_ap(p, val, args.threads)
            sens.append({"variant": label, "exclude": list(exclude), **r})
            print(f"# {label}: mask AP {r['mask_AP']:.2f} bbox AP {r['bbox_AP']:.2f}", flush=True)
        lines = ["| INT8 (TensorRT form) quantized groups | bbox AP | mask AP | Δ bbox | Δ mask |",
                 "|---|---|---|---|---|"]
        for s in sens:
            lines.append(f"| {s['variant']} | {s['bbox_AP']:.2f} | {s['mask_AP']:.2f} | "
                         f"{s['bbox_AP'] - base['bbox_AP']:+.2f} | {s['mask_AP'] - base['mask_AP']:+.2f} |")
        print("\n".join(lines), flush=True)
    print(f"# total {time.time() - t0:.0f} s; files in {work}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "weights": weights, "results": results, "latency_ms": medians,
                       "qlinearconv": fused, "sensitivity": sens}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
