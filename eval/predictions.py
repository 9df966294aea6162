"""Saved predictions: what an evaluator writes before it scores, so that a failed or
interrupted scoring step can be rerun without inference (``mrcnn-eval --from-predictions``).

Each evaluator writes, into its output folder, its predictions and then a manifest
``predictions.json`` (written last, atomically: its presence means the predictions are
complete)::

    {"format": "mrcnn-predictions/1", "dataset": "coco" | "cityscapes",
     "image_ids": [...],              # every processed image, with or without detections
     "num_detections": D, "num_dropped_detections": d,
     # coco:       "results_file": "coco_instances_results.json", "iou_types": [...],
     #             "segm_box_area": false, "annotation_file": "/abs/instances_val.json"
     # cityscapes: "results_dir": "results" (the official *_pred.txt + masks/),
     #             "results": [COCO result dicts with the Cityscapes image ids], "split": "val"}

- COCO (``mrcnn-eval -o OUT``): ``OUT/coco_instances_results.json`` + ``OUT/predictions.json``;
- Cityscapes: ``OUT/cityscapes/results/`` + ``OUT/cityscapes/predictions.json``.

:func:`find_predictions` takes a run's output folder, the evaluator's folder, a manifest,
or (COCO) a plain COCO results list written by any tool (then every image of the
dataset is scored). Everything read back is checked like ground truth: one
:class:`~mrcnn_trt.errors.UserError` line naming the file and the bad entry.
"""
from __future__ import annotations

import math
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence

from mrcnn_trt.data.coco_checks import Batch, rle_problem
from mrcnn_trt.errors import UserError
from mrcnn_trt.fileio import read_json, write_json_atomic

FORMAT = "mrcnn-predictions/1"
MANIFEST = "predictions.json"
COCO_RESULTS = "coco_instances_results.json"


def write_manifest(folder: str, dataset: str, image_ids: Sequence, **fields) -> str:
    """Write ``folder/predictions.json`` (atomically, after the predictions); returns its path."""
    path = os.path.join(folder, MANIFEST)
    write_json_atomic(path, {"format": FORMAT, "dataset": dataset, "image_ids": list(image_ids), **fields})
    return path


def find_predictions(path: str, dataset: str) -> str:
    """The manifest (or, for COCO, the plain results file) behind ``path``: a run's
    output folder, an evaluator's folder, a manifest or a results file."""
    if os.path.isdir(path):
        sub = "cityscapes" if dataset == "cityscapes" else ""
        for cand in (os.path.join(path, MANIFEST), os.path.join(path, sub, MANIFEST)):
            if os.path.isfile(cand):
                return cand
        raise UserError(f"no saved predictions in {path}: expected {os.path.join(path, sub, MANIFEST)} "
                        f"(written by mrcnn-eval before scoring)")
    if os.path.isfile(path):
        return path
    raise UserError(f"predictions not found: {path}")


def read_predictions(path: str, dataset: str) -> Dict[str, Any]:
    """The manifest at ``path`` (checked against ``dataset``), or for COCO a plain
    results list as ``{"dataset": "coco", "results": [...], "image_ids": None}``."""
    data = read_json(path)
    if isinstance(data, list):
        if dataset != "coco":
            raise UserError(f"{path} is a plain results list: Cityscapes predictions are rescored from the "
                            f"{MANIFEST} of an mrcnn-eval run")
        return {"format": FORMAT, "dataset": "coco", "results": data, "image_ids": None, "plain": True}
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise UserError(f"{path} is not a predictions manifest ({FORMAT}) nor a COCO results list")
    if data.get("dataset") != dataset:
        raise UserError(f"{path} holds {data.get('dataset')!r} predictions but --dataset is {dataset}")
    if not isinstance(data.get("image_ids"), list):
        raise UserError(f"{path}: 'image_ids' is not a list")
    return data


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def result_problem(r, images: Mapping[Any, dict], category_ids, segm: bool, batch=None) -> Optional[str]:
    """What is wrong with one COCO result dict, or None. ``images``: image id ->
    ``{"height", "width"}``; ``batch``: see :func:`mrcnn_trt.data.coco_checks.rle_problem`."""
    if not isinstance(r, dict):
        return "is not a JSON object"
    img = images.get(r.get("image_id")) if isinstance(r.get("image_id"), (int, str)) else None
    if img is None:
        return f"has image_id {r.get('image_id')!r}, which is not an image of the ground truth"
    if not _is_int(r.get("category_id")) or r["category_id"] not in category_ids:
        return f"has category_id {r.get('category_id')!r}, which is not a category of the ground truth"
    if not _is_number(r.get("score")):
        return f"has score {r.get('score')!r}: expected a finite number"
    bbox = r.get("bbox")
    if not (isinstance(bbox, list) and len(bbox) == 4 and all(map(_is_number, bbox)) and bbox[2] >= 0
            and bbox[3] >= 0):
        return f"has bbox {bbox!r}: expected [x, y, width, height]"
    if segm:
        seg = r.get("segmentation")
        if not isinstance(seg, dict):
            return "has no RLE segmentation"
        return rle_problem(seg, img["height"], img["width"], batch)
    return None


def check_results(results: List, images: Mapping[Any, dict], category_ids, segm: bool, where: str) -> None:
    """One :class:`UserError` line for the first bad result of ``results`` (see
    :func:`result_problem`; compressed RLE strings are checked all at once)."""
    batch = Batch()
    for n, r in enumerate(results):
        batch.owner = f"result {n}"
        why = result_problem(r, images, category_ids, segm, batch)
        if why:
            raise UserError(f"{where}: result {n} {why}")
    found = batch.first_problem()
    if found:
        raise UserError(f"{where}: {found[0]} {found[1]}")
