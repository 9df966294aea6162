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
import sys
from dataclasses import dataclass
from typing import Any, Dict, Optional, Sequence, Tuple

from .. import options
from ..cli import run_main
from ..config import MAX_IMAGE_DIM, Config
from ..errors import UserError
from ..fileio import refuse_overwriting_inputs, sidecar_path
from ..model.checkpoint import config_from_checkpoint, read_checkpoint, shipped_model_path


def batch_size(text: str):
    """``--batch``: a fixed batch N >= 1, or ``dynamic``."""
    if text.strip().lower() == "dynamic":
        return "dynamic"
    return options.batch_count(text)


batch_size.__name__ = "batch size"


def _image_size(text: str) -> int:
    v = options.positive_int(text)
    if v % 64:
        raise argparse.ArgumentTypeError(f"must be a multiple of 64, got {v}")
    if v > MAX_IMAGE_DIM:
        raise argparse.ArgumentTypeError(f"must be <= {MAX_IMAGE_DIM}, got {v}")
    return v


@dataclass(frozen=True)
class OverrideOptions(options.OptionGroup):
    """``--backbone``, ``--image-size`` (read with ``--min-confidence``) -> the changes
    to the checkpoint's config (:meth:`mrcnn_trt.config.Config.replace` keywords;
    :func:`apply_overrides` adds IMAGE_MIN_DIM)."""

    def add(self, parser):
        parser.add_argument("--backbone", choices=["resnet101", "resnet50"], help="override the config's backbone")
        parser.add_argument("--image-size", type=_image_size, metavar="S",
                            help="override IMAGE_MAX_DIM (a multiple of 64)")

    def parse(self, args) -> Dict[str, Any]:
        changes: Dict[str, Any] = {}
        if args.backbone:
            changes["BACKBONE"] = args.backbone
        if args.image_size:
            changes["IMAGE_MAX_DIM"] = args.image_size
        if args.min_confidence is not None:
            changes["DETECTION_MIN_CONFIDENCE"] = args.min_confidence
        return changes


def apply_overrides(cfg: Config, changes: Dict[str, Any]) -> Config:
    """``cfg`` with ``changes``; a smaller IMAGE_MAX_DIM also caps IMAGE_MIN_DIM."""
    if not changes:
        return cfg
    if "IMAGE_MAX_DIM" in changes:
        changes = dict(changes, IMAGE_MIN_DIM=min(cfg.IMAGE_MIN_DIM, changes["IMAGE_MAX_DIM"]))
    return cfg.replace(**changes)


@dataclass(frozen=True)
class ExportBatchOptions(options.OptionGroup):
    """``--batch N|dynamic``, ``--max-batch`` -> (batch, dynamic): the fixed batch, or the
    largest batch of a dynamic-batch model."""

    def add(self, parser):
        parser.add_argument("--batch", type=batch_size, default=1, metavar="N|dynamic",
                            help="fixed batch size N (default 1), or 'dynamic': any batch 1..--max-batch")
        parser.add_argument("--max-batch", type=options.batch_count, metavar="N",
                            help="largest batch of a --batch dynamic model (default 8)")

    def parse(self, args) -> Tuple[int, bool]:
        dynamic = args.batch == "dynamic"
        if args.max_batch is not None and not dynamic:
            raise UserError("--max-batch goes with --batch dynamic")
        batch = (args.max_batch or 8) if dynamic else args.batch
        if dynamic and batch < 2:
            raise UserError("--batch dynamic needs --max-batch >= 2 (for one image export --batch 1)")
        return batch, dynamic


@dataclass(frozen=True)
class GraphOptions(options.OptionGroup):
    """``--flavor``, ``--mask-head`` -> the graph keywords of :func:`~mrcnn_trt.export.exporter.export_onnx`."""

    def add(self, parser):
        parser.add_argument("--flavor", choices=["trt", "standard"], default="trt",
                            help="trt (default): custom plugin nodes; standard: only standard ONNX ops")
        parser.add_argument("--mask-head", choices=["all", "valid"], default="all",
                            help="all (default; TensorRT and ONNX Runtime): the mask head runs on every detection "
                                 "slot (static shapes); valid: only on the slots with a detection (data-dependent "
                                 "shapes: ONNX Runtime only, faster on the CPU; trt flavor)")

    def parse(self, args) -> Dict[str, str]:
        return {"flavor": args.flavor, "mask_head": args.mask_head}


WEIGHTS = options.WeightsOptions()
CONFIG = options.ConfigOptions()
OVERRIDES = OverrideOptions()
BATCH = ExportBatchOptions()
GRAPH = GraphOptions()
OUT = options.OutputOptions(default="runs/model.onnx", what="file", example="model.onnx", noun="model file")

#: mrcnn-export's options, in the order of --help
GROUPS = (WEIGHTS, CONFIG, OVERRIDES,
          options.MinConfidenceOptions(help="override DETECTION_MIN_CONFIDENCE, baked into the graph: 0 for COCO AP "
                                            "evaluation, e.g. 0.7 for deployment (default: the config's)"),
          BATCH, GRAPH, OUT)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mrcnn-export", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    return options.add_groups(p, *GROUPS)


@run_main
def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    batch, dynamic = BATCH.parse(args)
    weights, out = WEIGHTS.parse(args), OUT.parse(args)
    refuse_overwriting_inputs([out, sidecar_path(out)], [weights], hint="give the ONNX model another name (-o)")
    from ..model.loading import build_model, load_weights   # the command's work (loads torch)
    from .exporter import export_onnx

    weights = weights or shipped_model_path()
    sd, extra = read_checkpoint(weights)
    cfg = apply_overrides(config_from_checkpoint(extra, sd, CONFIG.parse(args)), OVERRIDES.parse(args))
    model = build_model(cfg)
    load_weights(model, weights)
    model.eval()
    graph = GRAPH.parse(args)
    print(f"exporting {cfg.NAME} ({cfg.BACKBONE}, {cfg.NUM_CLASSES} classes, {cfg.IMAGE_MAX_DIM}px, "
          f"batch {f'1..{batch} (dynamic)' if dynamic else batch}, flavor {graph['flavor']}, "
          f"min confidence {cfg.DETECTION_MIN_CONFIDENCE:g}) ...", file=sys.stderr)
    side = export_onnx(model, out, batch=batch, weights_path=weights, dynamic_batch=dynamic, **graph)
    print(f"wrote {out} ({side['onnx_bytes'] / 1e6:.1f} MB, {side['export_seconds']} s) and {out}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
