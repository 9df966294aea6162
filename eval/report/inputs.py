"""What the report reads from an evaluation's output folder (metrics.json, the
COCO-format predictions and ground truth) and from the evaluated dataset.
"""
from __future__ import annotations

import os
from typing import Callable, Tuple

import numpy as np

from mrcnn_trt.data.synthetic import is_synthetic_image
from mrcnn_trt.errors import UserError
from mrcnn_trt.fileio import read_json

from ..error_analysis import EvalData


# ----------------------------------------------------------------------------- inputs on disk
def _read_results(path: str) -> list:
    if not os.path.isfile(path):
        raise UserError(f"--report: {path} not found (the evaluation writes it; run mrcnn-eval first)")
    return read_json(path)


def load_eval_data(out_dir: str, metrics: dict, dataset) -> Tuple[object, Callable[[object], np.ndarray]]:
    """The evaluated ground truth and predictions (:class:`.error_analysis.EvalData`) and an
    ``image id -> RGB image`` loader (through ``dataset``)."""
    if metrics.get("dataset") == "cityscapes":
        cs_dir = os.path.join(out_dir, "cityscapes")
        gt = read_json(os.path.join(cs_dir, "coco_gt.json"))
        results = _read_results(os.path.join(cs_dir, "coco_instances_results.json"))
        data = EvalData(gt, results)
        names = {i: img["file_name"] for i, img in data.images.items()}
        return data, lambda image_id: dataset.load_image(dataset.index_of(names[image_id]))
    results = _read_results(os.path.join(out_dir, "coco_instances_results.json"))
    gt = dataset.coco.dataset
    # the evaluation took the first images in the dataset's order, minus unreadable ones
    skipped = " ".join(metrics.get("skipped_images") or [])
    n_done = int(metrics.get("num_images") or 0)
    ids = []
    for i in range(min(len(dataset), n_done + len(metrics.get("skipped_images") or []))):
        if skipped and dataset.image_path(i) in skipped:
            continue
        ids.append(dataset.image_id(i))
    data = EvalData(gt, results, ids[:n_done])
    return data, lambda image_id: dataset.load_image(dataset.index_of(image_id))


def data_is_synthetic(dataset) -> bool:
    """True when the evaluated images were written by ``mrcnn-make-dataset`` (synthetic
    shapes, not the real dataset): comparisons with published numbers mean nothing."""
    try:
        return len(dataset) > 0 and is_synthetic_image(dataset.image_path(0))
    except (AttributeError, IndexError, OSError, TypeError):
        return False
