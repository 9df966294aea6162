"""COCO bbox / mask AP of a model on a COCO-format dataset (used for the shipped shapes model).

    python -m mrcnn_trt.train.evaluate_shapes --weights mrcnn_trt/assets/shapes_r14.pth \\
        --data-root data/shapes --split test [--min-confidence 0.0 0.5]

Runs ``mrcnn_trt.model.load_model(path)`` on every image of the split through the
evaluation loop of ``mrcnn-eval`` and scores the results with pycocotools ``COCOeval``
(through :class:`mrcnn_trt.eval.evaluators.COCOEvaluator`). ``--min-confidence`` evaluates the same
weights with other DETECTION_MIN_CONFIDENCE values (the config stored in the file is
used otherwise).
"""
from __future__ import annotations

import argparse
import json
import time
from typing import Optional

from mrcnn_trt.cli import run_main
from mrcnn_trt.data.coco import CocoDataset
from mrcnn_trt.eval.evaluate import evaluate
from mrcnn_trt.eval.evaluators import COCOEvaluator
from mrcnn_trt.fileio import write_json_atomic
from mrcnn_trt.model import load_model
from mrcnn_trt.model.checkpoint import config_from_checkpoint, read_checkpoint, shipped_model_path
from mrcnn_trt.runtime.torch_runner import TorchRunner


def evaluate_ap(weights: Optional[str], data_root: str, split: str = "val", min_confidence: Optional[float] = None,
                limit: Optional[int] = None, batch: int = 8, ops: str = "torch") -> dict:
    """``{"bbox": {"AP", "AP50", "AP75"}, "segm": {...}, "seconds": ...}`` for one model and split
    (the evaluation loop of ``mrcnn-eval``, :func:`mrcnn_trt.eval.evaluate.evaluate`)."""
    cfg = None
    if min_confidence is not None:
        sd, extra = read_checkpoint(weights or shipped_model_path())
        cfg = config_from_checkpoint(extra, sd, None).replace(DETECTION_MIN_CONFIDENCE=float(min_confidence))
    model, cfg, _ = load_model(weights, cfg, ops_backend=ops)
    ds = CocoDataset.from_root(data_root, split)
    t0 = time.time()
    m = evaluate(TorchRunner.from_model(model), ds, COCOEvaluator(ds, class_names=cfg.CLASS_NAMES),
                 batch_size=batch, limit=limit, warmup=0)
    return {"bbox": {k: m["bbox"][k] for k in ("AP", "AP50", "AP75")},
            "segm": {k: m["segm"][k] for k in ("AP", "AP50", "AP75")},
            "per_class_segm_AP": m["segm"].get("per_class"),
            "images": m["num_images"], "detections": m.get("num_detections"),
            "min_confidence": cfg.DETECTION_MIN_CONFIDENCE, "seconds": round(time.time() - t0, 1)}


@run_main
def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m mrcnn_trt.train.evaluate_shapes",
                                description="COCO bbox/segm AP of a checkpoint on a COCO-format split.")
    p.add_argument("--weights", help="checkpoint (default: the shipped shapes model)")
    p.add_argument("--data-root", required=True, help="COCO-layout folder (annotations/instances_<split>.json)")
    p.add_argument("--split", default="val")
    p.add_argument("--limit", type=int, help="first N images only")
    p.add_argument("--min-confidence", type=float, nargs="*",
                   help="DETECTION_MIN_CONFIDENCE values to evaluate (default: the checkpoint's)")
    p.add_argument("--json", help="write the results to this file")
    args = p.parse_args(argv)
    confs = args.min_confidence or [None]
    results = []
    for c in confs:
        r = evaluate_ap(args.weights, args.data_root, args.split, c, args.limit)
        results.append(r)
        # percent here; the JSON keeps fractions of 1, as metrics.json does
        print(f"min_confidence {r['min_confidence']}: box AP {100 * r['bbox']['AP']:.1f} %, AP50 "
              f"{100 * r['bbox']['AP50']:.1f} % | mask AP {100 * r['segm']['AP']:.1f} %, AP50 "
              f"{100 * r['segm']['AP50']:.1f} % ({r['images']} images, {r['detections']} detections, {r['seconds']} s)")
    if args.json:
        write_json_atomic(args.json, results)
    else:
        print(json.dumps(results, indent=1, default=str)[:2000])
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
