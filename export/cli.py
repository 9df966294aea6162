"""``mrcnn-export``: PyTorch weights -> ONNX (+ ``model.onnx.json`` sidecar).

    mrcnn-export --weights mask_rcnn_coco.pth                 # R-101 COCO, trt flavor, batch 1
    mrcnn-export --weights w.pth --config cityscapes --flavor standard --batch 2 -o cs.onnx
    mrcnn-export --weights w.pth --batch dynamic --max-batch 8 -o dyn.onnx   # any batch 1..8
    mrcnn-export --weights w.pth --mask-head valid -o cpu.onnx   # ONNX Runtime: no work on empty detection slots
    mrcnn-export                                              # the shipped shapes model
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Optional, Sequence

from ..cli import run_main
from ..errors import UserError
from ..options import positive_int


def batch_size(text: str):
    """``--batch``: a fixed batch N >= 1, or ``dynamic``."""
    if text.strip().lower() == "dynamic":
        return "dynamic"
    return positive_int(text)


batch_size.__name__ = "batch size"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mrcnn-export", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", help="checkpoint (.pth); default: the shipped shapes model")
    p.add_argument("--config", help="preset (coco, cityscapes, shapes, ...) or JSON; default: from the checkpoint")
    p.add_argument("--backbone", choices=["resnet101", "resnet50"], help="override the config's backbone")
    p.add_argument("--image-size", type=int, help="override IMAGE_MAX_DIM (multiple of 64)")
    p.add_argument("--min-confidence", type=float, help="override DETECTION_MIN_CONFIDENCE (0 for COCO AP)")
    p.add_argument("--batch", type=batch_size, default=1, metavar="N|dynamic",
                   help="fixed batch size N (default 1), or 'dynamic': any batch 1..--max-batch")
    p.add_argument("--max-batch", type=positive_int, metavar="N",
                   help="largest batch of a --batch dynamic model (default 8)")
    p.add_argument("--flavor", choices=["trt", "standard"], default="trt",
                   help="trt: custom plugin nodes (default); standard: only standard ONNX ops")
    p.add_argument("--mask-head", choices=["all", "valid"], default="all",
                   help="all: the mask head runs on every detection slot (static shapes, default: TensorRT "
                        "and ONNX Runtime); valid: only on the slots with a detection (data-dependent shapes: "
                        "ONNX Runtime only, faster on the CPU; trt flavor)")
    p.add_argument("-o", "--output", default="model.onnx", help="output file (default model.onnx)")
    return p


@run_main
def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    dynamic = args.batch == "dynamic"
    if args.max_batch is not None and not dynamic:
        raise UserError("--max-batch goes with --batch dynamic")
    batch = (args.max_batch or 8) if dynamic else args.batch
    if dynamic and batch < 2:
        raise UserError("--batch dynamic needs --max-batch >= 2 (for one image export --batch 1)")
    if args.weights and not os.path.isfile(args.weights):
        raise UserError(f"weights file not found: {args.weights}")
    out_dir = os.path.dirname(os.path.abspath(args.output))
    if os.path.isdir(out_dir) and not os.access(out_dir, os.W_OK):
        raise UserError(f"output folder is not writable: {out_dir}")
    from ..config import preset
    from ..model.checkpoint import build_model, config_from_checkpoint, load_weights, read_checkpoint, \
        shipped_model_path
    from .exporter import export_onnx

    weights = args.weights or shipped_model_path()
    sd, extra = read_checkpoint(weights)
    cfg = config_from_checkpoint(extra, sd, preset(args.config) if args.config else None)
    changes = {}
    if args.backbone:
        changes["BACKBONE"] = args.backbone
    if args.image_size:
        changes["IMAGE_MAX_DIM"] = args.image_size
        changes["IMAGE_MIN_DIM"] = min(cfg.IMAGE_MIN_DIM, args.image_size)
    if args.min_confidence is not None:
        changes["DETECTION_MIN_CONFIDENCE"] = args.min_confidence
    if changes:
        cfg = cfg.replace(**changes)
    model = build_model(cfg)
    load_weights(model, weights)
    model.eval()
    print(f"exporting {cfg.NAME} ({cfg.BACKBONE}, {cfg.NUM_CLASSES} classes, {cfg.IMAGE_MAX_DIM}px, "
          f"batch {f'1..{batch} (dynamic)' if dynamic else batch}, flavor {args.flavor}) ...", file=sys.stderr)
    side = export_onnx(model, args.output, batch=batch, flavor=args.flavor, weights_path=weights,
                       dynamic_batch=dynamic, mask_head=args.mask_head)
    print(f"wrote {args.output} ({side['onnx_bytes'] / 1e6:.1f} MB, {side['export_seconds']} s) "
          f"and {args.output}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
