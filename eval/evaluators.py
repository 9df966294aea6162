"""Official-metric evaluators with one interface (like detectron2's ``DatasetEvaluator``)::

    ev = COCOEvaluator(dataset, output_dir="out/eval")
    ev.reset()
    for sample in dataset:
        out = model.detect([sample.image])[0]
        ev.process([sample], [out])
    metrics = ev.evaluate()      # {"bbox": {"AP": ..., "per_class": {...}}, "segm": {...}, ...}

``evaluate()`` returns named sections, exactly as they appear in ``mrcnn-eval``'s
metrics.json: ``bbox`` / ``segm`` (COCO-style, both evaluators) and ``cityscapes`` (the
official Cityscapes numbers); the evaluation loop merges them without interpreting them.

A per-image output is the original ``detect`` contract (docs/model.md §3.10: ``rois``,
``class_ids``, ``scores``, ``masks``; shapes in :mod:`.evaluator_base`).
A "sample" is anything with an ``image_id`` (a :class:`mrcnn_trt.data.Sample`, a dict with
``"image_id"``) or the image id itself. All AP/AR numbers are fractions in [0, 1]; a value that
the protocol leaves undefined (no ground truth for that class / area range) is ``nan``.

- :class:`COCOEvaluator`: pycocotools ``COCOeval`` for ``bbox`` and ``segm``.
- :class:`~.cityscapes_eval.CityscapesEvaluator` (:mod:`.cityscapes_eval`, importable from
  here too): the official ``cityscapesscripts`` instance-level evaluation (through
  :mod:`.cityscapes_shim`), plus COCO-style AP on the same predictions.

The interface and the COCO-format helpers both use live in :mod:`.evaluator_base`
(importable from here too). Both save their predictions before scoring (``save_predictions``, :mod:`.predictions`) and
can score saved ones instead of processed ones (``load_predictions``).
"""
from __future__ import annotations

import json
import os
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np

from mrcnn_trt.data.classmap import coco_to_cityscapes, shapes_to_cityscapes
from mrcnn_trt.errors import UserError
from mrcnn_trt.fileio import read_json, write_bytes_atomic

from . import predictions
from .cityscapes_eval import CityscapesEvaluator, cityscapes_gt_to_coco
from .evaluator_base import (STAT_NAMES, DatasetEvaluator, SavingEvaluator, _check_output, _jsonable_results,
                             _load_coco, _pairs, class_map_by_name, coco_evaluate, encode_detections, encode_mask_rle,
                             run_cocoeval)

__all__ = ["STAT_NAMES", "DatasetEvaluator", "COCOEvaluator", "CityscapesEvaluator", "cityscapes_gt_to_coco",
           "class_map_by_name", "coco_evaluate", "encode_detections", "encode_mask_rle", "make_evaluator",
           "run_cocoeval"]

# ---------------------------------------------------------------------------- COCO
class COCOEvaluator(SavingEvaluator):
    """COCO bbox + segm AP with pycocotools, restricted to the processed images.

    Args:
        dataset_or_coco_json: a :class:`~mrcnn_trt.data.coco.CocoDataset` (or any object
            with a pycocotools ``.coco``), a ``COCO`` object, or an instances json path.
        class_map: model internal id -> COCO category id. Default: with ``class_names``
            (the model's), each class maps to the category of the same name
            (:func:`class_map_by_name`); otherwise the model is taken to use the dataset's own
            internal ids: the dataset's ``source_class_ids``, or for a json/COCO object the
            original convention (internal id i = i-th sorted category id). Detections of
            unmapped classes are dropped (counted in ``num_dropped_detections``).
        class_names: the model's class names (index 0 "BG"), for the by-name default.
        output_dir: if given, ``coco_instances_results.json`` (all predictions, RLE counts as
            str) and ``coco_eval_summary.txt`` are written there by :meth:`evaluate`.
        iou_types: ``("bbox", "segm")`` by default.
        segm_box_area: see :func:`coco_evaluate`.
    """

    def __init__(self, dataset_or_coco_json, class_map: Optional[Mapping[int, int]] = None,
                 output_dir: Optional[str] = None, iou_types: Sequence[str] = ("bbox", "segm"),
                 segm_box_area: bool = False, class_names: Optional[Sequence[str]] = None):
        self.coco = _load_coco(dataset_or_coco_json)
        af = getattr(dataset_or_coco_json, "annotation_file", None) or (
            dataset_or_coco_json if isinstance(dataset_or_coco_json, (str, os.PathLike)) else None)
        self.annotation_file = os.path.abspath(af) if af else None
        self.predictions_path: Optional[str] = None
        if class_map is None and class_names is not None:
            class_map = class_map_by_name(class_names, self.coco)
            if not class_map:
                raise UserError("none of the model's classes is a category of the COCO ground truth "
                                f"({', '.join(c['name'] for c in self.coco.dataset.get('categories', [])[:5])}...)")
        if class_map is None:
            if hasattr(dataset_or_coco_json, "source_class_ids"):
                class_map = dataset_or_coco_json.source_class_ids
            else:
                class_map = {i + 1: c for i, c in enumerate(sorted(self.coco.getCatIds()))}
        self.class_map = {int(k): int(v) for k, v in class_map.items()}
        self.output_dir = output_dir
        self.iou_types = tuple(iou_types)
        self.segm_box_area = segm_box_area
        self.summaries: Dict[str, str] = {}
        self.reset()

    def reset(self) -> None:
        self._results: List[dict] = []
        self._img_ids: List[int] = []
        self._dropped = 0

    def process(self, samples, outputs) -> None:
        for image_id, out in _pairs(samples, outputs):
            if isinstance(image_id, np.integer):
                image_id = int(image_id)
            img = self.coco.imgs.get(image_id)
            if img is None:
                raise ValueError(f"image id {image_id!r} is not in the COCO ground truth")
            hw = (img["height"], img["width"]) if "height" in img else None
            rois, class_ids, scores, masks = _check_output(out, hw)
            res, dropped = encode_detections(image_id, rois, class_ids, scores, masks, self.class_map,
                                             with_masks="segm" in self.iou_types)
            self._results.extend(res)
            self._img_ids.append(image_id)
            self._dropped += dropped

    @property
    def image_ids(self) -> List[int]:
        """The ids of the images processed (or loaded) so far, sorted."""
        return sorted(set(self._img_ids))

    @property
    def results(self) -> List[dict]:
        """The COCO result dicts collected so far."""
        return self._results

    def save_predictions(self) -> Optional[str]:
        """Write ``coco_instances_results.json`` and then the manifest ``predictions.json``
        (:mod:`.predictions`) into ``output_dir``; returns the manifest's path (None
        without ``output_dir``). :meth:`evaluate` does this before scoring."""
        if not self.output_dir:
            return None
        write_bytes_atomic(os.path.join(self.output_dir, predictions.COCO_RESULTS),
                           json.dumps(_jsonable_results(self._results)).encode())
        self.predictions_path = predictions.write_manifest(
            self.output_dir, "coco", sorted(set(self._img_ids)), results_file=predictions.COCO_RESULTS,
            num_detections=len(self._results), num_dropped_detections=self._dropped, iou_types=list(self.iou_types),
            segm_box_area=self.segm_box_area, annotation_file=self.annotation_file)
        return self.predictions_path

    def load_predictions(self, path: str) -> None:
        """Take the predictions saved by :meth:`save_predictions` (``path``: the manifest)
        or a plain COCO results list (then every image of the ground truth is scored)
        instead of :meth:`process` calls; everything is checked against the ground truth."""
        man = predictions.read_predictions(path, "coco")
        if man.get("plain"):
            results, img_ids, where = man["results"], sorted(self.coco.getImgIds()), path
        else:
            where = os.path.join(os.path.dirname(path), str(man.get("results_file") or predictions.COCO_RESULTS))
            results, img_ids = read_json(where), man["image_ids"]
            if not isinstance(results, list):
                raise UserError(f"{where} is not a COCO results list")
            unknown = [i for i in img_ids if not isinstance(i, int) or i not in self.coco.imgs]
            if unknown:
                raise UserError(f"{path}: image id {unknown[0]!r} is not an image of the ground truth")
            self.segm_box_area = bool(man.get("segm_box_area", self.segm_box_area))
        segm = "segm" in self.iou_types and all(isinstance(r, dict) and "segmentation" in r for r in results)
        if not segm and not man.get("plain") and "segm" in self.iou_types:
            raise UserError(f"{where}: results without 'segmentation' cannot be scored for masks")
        if not segm:
            self.iou_types = tuple(t for t in self.iou_types if t != "segm")
        predictions.check_results(results, self.coco.imgs, set(self.coco.getCatIds()), segm, where)
        listed = set(img_ids)
        stray = next((r["image_id"] for r in results if r["image_id"] not in listed), None)
        if stray is not None:
            raise UserError(f"{where}: a result for image {stray!r}, which {path} does not list")
        self.reset()
        self._results, self._img_ids = list(results), list(img_ids)
        self._dropped = int(man.get("num_dropped_detections") or 0)

    def score(self) -> dict:
        """COCO bbox / segm AP of the saved predictions (:meth:`evaluate` saves them first)."""
        metrics, self.summaries = coco_evaluate(self.coco, self._results, self._img_ids, self.iou_types,
                                                self.segm_box_area)
        metrics["num_images"] = len(set(self._img_ids))
        metrics["num_detections"] = len(self._results)
        metrics["num_dropped_detections"] = self._dropped
        if self.output_dir:

            text = "".join(f"== {t} ==\n{s}\n" for t, s in self.summaries.items())
            write_bytes_atomic(os.path.join(self.output_dir, "coco_eval_summary.txt"), text.encode())
        return metrics


# ---------------------------------------------------------------------------- choice
def make_evaluator(dataset_kind: str, dataset, class_names: Sequence[str], class_map: str,
                   out: str) -> DatasetEvaluator:
    """The evaluator of ``mrcnn-eval`` for a dataset kind ("coco" | "cityscapes") and a
    ``--class-map`` choice ("auto" (by class names) | "none" | "coco-to-cityscapes" |
    "shapes-to-cityscapes"); its files go to ``out``."""
    if dataset_kind == "coco":
        if class_map not in ("auto", "none"):
            raise UserError(f"--class-map {class_map} is for Cityscapes data")
        if class_map == "auto":
            ds_names = [n for n in dataset.class_names[1:]]
            missing = [n for n in ds_names if n not in class_names]
            if len(missing) == len(ds_names):
                raise UserError(f"the model's classes ({', '.join(class_names[1:6])}, ...) share no name with the "
                                f"dataset's ({', '.join(ds_names[:5])}, ...)")
            return COCOEvaluator(dataset, class_names=class_names, output_dir=out)
        if len(class_names) != len(dataset.class_names):
            raise UserError(f"model has {len(class_names)} classes, dataset {len(dataset.class_names)}; "
                            f"use --class-map auto")
        return COCOEvaluator(dataset, output_dir=out)
    label_map = {"coco-to-cityscapes": lambda: coco_to_cityscapes(class_names),
                 "shapes-to-cityscapes": shapes_to_cityscapes}.get(class_map)
    kw = {"label_map": label_map()} if label_map else {"class_names": class_names}

    return CityscapesEvaluator(dataset, output_dir=os.path.join(out, "cityscapes"), **kw)
