"""``mrcnn-export``: PyTorch weights -> ONNX (+ ``model.onnx.json`` sidecar).

    mrcnn-export --weights mask_rcnn_coco.pth --min-confidence 0 -o coco_eval.onnx   # for COCO AP
    mrcnn-export --weights mask_rcnn_coco.pth -o coco.onnx     # deployment: the preset's cut-off (0.7)
    mrcnn-export --weights w.pth --config cityscapes --flavor standard --batch 2 -o cs.onnx
    mrcnn-export --weights w.pth --batch dynamic --max-batch 8 -o dyn.onnx   # any batch 1..8
    mrcnn-export --weights w.pth --mask-head valid -o cpu.onnx   # ONNX Runtime: no work on empty detection slots
    mrcnn-export                                              # the shipped shapes model

DETECTION_MIN_CONFIDENCE is part of the graph (detections below it never leave
it): COCO AP is defined over all detections, so export with --min-confidence 0
for evaluation and keep the preset's value (0.7 for coco) for deployment. The
sidecar records it (``min_confidence``) and mrcnn-eval warns about a cut-off.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Optional, Sequence

from .. import options
from ..cli import run_main
from ..errors import UserError


def batch_size(text: str):
    """``--batch``: a fixed batch N >= 1, or ``dynamic``."""
    if text.strip().lower() == "dynamic":
        return "dynamic"
    return options.batch_count(text)


batch_size.__name__ = "batch size"


def _image_size(text: str) -> int:
    from ..config import MAX_IMAGE_DIM

    v = options.positive_int(text)
    if v % 64:
        raise argparse.ArgumentTypeError(f"must be a multiple of 64, got {v}")
    if v > MAX_IMAGE_DIM:
        raise argparse.ArgumentTypeError(f"must be <= {MAX_IMAGE_DIM}, got {v}")
    return v


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mrcnn-export", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    options.add_weights(p)
    options.add_config(p)
    p.add_argument("--backbone", choices=["resnet101", "resnet50"], help="override the config's backbone")
    p.add_argument("--image-size", type=_image_size, metavar="S",
                   help="override IMAGE_MAX_DIM (a multiple of 64)")
    options.add_min_confidence(p, help="override DETECTION_MIN_CONFIDENCE, baked into the graph: 0 for COCO AP "
                                       "evaluation, e.g. 0.7 for deployment (default: the config's)")
    p.add_argument("--batch", type=batch_size, default=1, metavar="N|dynamic",
                   help="fixed batch size N (default 1), or 'dynamic': any batch 1..--max-batch")
    p.add_argument("--max-batch", type=options.batch_count, metavar="N",
                   help="largest batch of a --batch dynamic model (default 8)")
    p.add_argument("--flavor", choices=["trt", "standard"], default="trt",
                   help="trt (default): custom plugin nodes; standard: only standard ONNX ops")
    p.add_argument("--mask-head", choices=["all", "valid"], default="all",
                   help="all (default; TensorRT and ONNX Runtime): the mask head runs on every detection slot "
                        "(static shapes); valid: only on the slots with a detection (data-dependent shapes: "
                        "ONNX Runtime only, faster on the CPU; trt flavor)")
    options.add_output(p, default="runs/model.onnx", what="file")
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
    from ..fileio import refuse_overwriting_inputs, sidecar_path

    if args.weights and not os.path.exists(args.weights):
        raise UserError(f"weights file not found: {args.weights}")
    if os.path.isdir(args.out):
        raise UserError(f"-o {args.out} is a folder; give the model file, e.g. {os.path.join(args.out, 'model.onnx')}")
    refuse_overwriting_inputs([args.out, sidecar_path(args.out)], [args.weights],
                              hint="give the ONNX model another name (-o)")
    out_dir = os.path.dirname(os.path.abspath(args.out))
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
          f"batch {f'1..{batch} (dynamic)' if dynamic else batch}, flavor {args.flavor}, "
          f"min confidence {cfg.DETECTION_MIN_CONFIDENCE:g}) ...", file=sys.stderr)
    side = export_onnx(model, args.out, batch=batch, flavor=args.flavor, weights_path=weights,
                       dynamic_batch=dynamic, mask_head=args.mask_head)
    print(f"wrote {args.out} ({side['onnx_bytes'] / 1e6:.1f} MB, {side['export_seconds']} s) "
          f"and {args.out}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
