"""``mrcnn-eval``: COCO / Cityscapes AP and latency for any backend.

    mrcnn-eval --engine model.plan --dataset cityscapes --data-root CITYSCAPES/
    mrcnn-eval --engine model.onnx --dataset coco --data-root COCO/ --split val2017 --limit 500
    mrcnn-eval --engine mask_rcnn_coco.pth --dataset cityscapes --data-root CS/ --class-map coco-to-cityscapes

The backend is chosen from the file (.plan -> TensorRT, .onnx -> ONNX Runtime
with our ops, .pth -> PyTorch). COCO data: ``DATA_ROOT/annotations/instances_<split>.json``
+ images (or pass the json itself); Cityscapes: ``DATA_ROOT/leftImg8bit`` + ``gtFine``.

Writes to --out: metrics.json, per_class.txt, COCO-format predictions, the
official Cityscapes result files, and --save-vis K pictures. Reading and
molding the next images and unmolding/scoring the last ones overlap the
network call (--pipeline); a dynamic-batch model (mrcnn-export --batch dynamic)
takes any --batch up to its maximum.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Optional, Sequence

from ..cli import run_main
from ..errors import UserError
from ..options import nonnegative_int, positive_int

CLASS_MAPS = ("auto", "none", "coco-to-cityscapes", "shapes-to-cityscapes")



def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mrcnn-eval", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--engine", help="model.plan | model.onnx | weights.pth (default: the shipped shapes model)")
    p.add_argument("--dataset", choices=["coco", "cityscapes"], required=True)
    p.add_argument("--data-root", required=True, help="dataset folder (or a COCO instances .json)")
    p.add_argument("--split", default="val")
    p.add_argument("--limit", type=int, help="evaluate the first N images")
    p.add_argument("--batch", type=positive_int, default=1, metavar="N",
                   help="images per network call (default 1; at most the model's batch, or the top of a "
                        "dynamic batch's range)")
    p.add_argument("--out", default="eval_out", help="output folder (default eval_out)")
    p.add_argument("--backend", choices=["auto", "tensorrt", "onnxruntime", "torch"], default="auto")
    p.add_argument("--config", help="config for a .pth (default: from the checkpoint)")
    p.add_argument("--class-map", choices=CLASS_MAPS, default="auto",
                   help="model classes -> dataset classes (auto: by class names)")
    p.add_argument("--save-vis", type=int, default=0, metavar="K", help="save K pictures of detections")
    p.add_argument("--threads", type=int, default=2, help="CPU threads (ONNX Runtime / PyTorch)")
    p.add_argument("--warmup", type=int, default=1, help="untimed warm-up calls")
    p.add_argument("--pipeline", type=nonnegative_int, default=2, metavar="N",
                   help="batches read/molded ahead and post-processed behind the network call, overlapped "
                        "with it (default 2; 0: one step after the other)")
    return p


def per_class_table(metrics: dict) -> str:
    rows = []
    for kind in ("bbox", "segm"):
        pc = (metrics.get(kind) or {}).get("per_class") or {}
        for name, ap in pc.items():
            rows.append((kind, name, ap))
    cs = metrics.get("cityscapes") or {}
    for name, v in (cs.get("per_class") or {}).items():
        rows.append(("cityscapes", name, f"{_fmt(v.get('AP'))}  AP50 {_fmt(v.get('AP50'))}"))
    lines = [f"{'metric':<11} {'class':<16} AP"]
    lines += [f"{k:<11} {n:<16} {_fmt(v)}" for k, n, v in rows]
    return "\n".join(lines)


def _fmt(v):
    if isinstance(v, str):
        return v
    return "  n/a" if v is None or v != v else f"{v:.4f}"


def summary_line(metrics: dict) -> str:
    parts = []
    for kind in ("bbox", "segm"):
        if kind in metrics:
            parts.append(f"{kind} AP {_fmt(metrics[kind].get('AP'))} AP50 {_fmt(metrics[kind].get('AP50'))}")
    if "cityscapes" in metrics:
        parts.append(f"cityscapes AP {_fmt(metrics['cityscapes'].get('AP'))} "
                     f"AP50 {_fmt(metrics['cityscapes'].get('AP50'))}")
    lat = metrics.get("latency_ms", {})
    eff = metrics.get("pipeline_efficiency")
    parts.append(f"latency p50 {lat.get('p50')} ms/call, {metrics.get('throughput_ips')} img/s end-to-end"
                 + (f" ({100 * eff:.0f} % of the network's rate)" if eff else ""))
    return " | ".join(parts)


@run_main
def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.batch < 1:
        raise UserError("--batch must be >= 1")
    if args.engine and not os.path.exists(args.engine):
        raise UserError(f"model file not found: {args.engine}")
    if not os.path.exists(args.data_root):
        raise UserError(f"data root not found: {args.data_root}")
    from ..data import open_dataset
    from ..fileio import write_bytes_atomic, write_json_atomic
    from .evaluate import evaluate
    from .evaluators import make_evaluator
    from .runners import open_runner

    dataset = open_dataset(args.data_root, split=args.split, fmt=args.dataset)
    if len(dataset) == 0:
        raise UserError(f"no images in {args.data_root} (split {args.split})")
    runner = open_runner(args.engine, args.backend, threads=args.threads, config=args.config)
    if runner.fixed_batch is not None and args.batch > runner.fixed_batch:
        raise UserError(f"--batch {args.batch} exceeds the model's fixed batch {runner.fixed_batch}")
    if runner.max_batch is not None and args.batch > runner.max_batch:
        raise UserError(f"--batch {args.batch} exceeds the model's dynamic batch range 1..{runner.max_batch}")
    os.makedirs(args.out, exist_ok=True)
    evaluator = make_evaluator(args.dataset, dataset, runner.config.CLASS_NAMES, args.class_map, args.out)
    metrics = evaluate(runner, dataset, evaluator, batch_size=args.batch, limit=args.limit, out_dir=args.out,
                       save_vis=args.save_vis, warmup=args.warmup, pipeline=args.pipeline)
    metrics.update(backend=runner.backend, model=os.path.abspath(args.engine) if args.engine else "shipped:shapes",
                   dataset=args.dataset, data_root=os.path.abspath(args.data_root), split=args.split)
    write_json_atomic(os.path.join(args.out, "metrics.json"), metrics)
    table = per_class_table(metrics)
    write_bytes_atomic(os.path.join(args.out, "per_class.txt"), (table + "\n").encode())
    print(table)
    print(summary_line(metrics))
    if metrics.get("interrupted"):
        return 130
    if metrics.get("skipped_images"):
        print(f"error: {len(metrics['skipped_images'])} image(s) could not be read and were left out "
              f"(listed in metrics.json)", file=sys.stderr)
        return 4
    return 0


if __name__ == "__main__":
    sys.exit(main())
