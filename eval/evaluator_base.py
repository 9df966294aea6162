"""What every evaluator shares: the :class:`DatasetEvaluator` interface, the per-image
output checks, and the COCO-format helpers (pycocotools ``COCOeval`` runs, RLE encoding,
results as JSON) that both :class:`~.evaluators.COCOEvaluator` and
:class:`~.cityscapes_eval.CityscapesEvaluator` use.

A per-image output is the original ``detect`` contract (docs/model.md §3.10): a dict with

- ``rois``: int32 ``[D, 4]`` ``(y1, x1, y2, x2)`` in original-image pixels (x2/y2 exclusive),
- ``class_ids``: int32 ``[D]`` model internal ids,
- ``scores``: float32 ``[D]``,
- ``masks``: uint8 ``[H, W, D]`` in {0, 1} (an empty ``(0, 28, 28)`` array is accepted for
  ``D == 0``, as the original returns).

AP/AR numbers are fractions in [0, 1]; a value the protocol leaves undefined is ``nan``.
"""
from __future__ import annotations

import contextlib
import copy
import io
import os
import warnings
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from mrcnn_trt.data.coco import _quiet_coco

#: above this DETECTION_MIN_CONFIDENCE, COCO AP is visibly under-reported
AP_CONFIDENCE_WARNING = 0.05

STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


class DatasetEvaluator:
    """``reset()``, then ``process(samples, outputs)`` per batch, then ``evaluate() -> dict``
    of named metrics.json sections (``{}`` when nothing was processed)."""

    def reset(self) -> None:
        raise NotImplementedError

    def process(self, samples, outputs) -> None:
        raise NotImplementedError

    def evaluate(self) -> dict:
        raise NotImplementedError


class SavingEvaluator(DatasetEvaluator):
    """An evaluator that saves its predictions (``save_predictions``), then scores them
    (``score``): whatever happens while scoring, the predictions are on disk."""

    def evaluate(self) -> dict:
        if not self.image_ids:
            warnings.warn(f"{type(self).__name__}.evaluate() called without processed images")
            return {}
        self.save_predictions()   # first: a failed or interrupted scoring step loses nothing
        return self.score()

    def score(self) -> dict:
        raise NotImplementedError


# ---------------------------------------------------------------------------- helpers
def _as_list(x, kind: type) -> list:
    if isinstance(x, kind) or not isinstance(x, (list, tuple)):
        return [x]
    return list(x)


def sample_image_id(sample) -> Any:
    """The image id of a Sample / dict / plain id."""
    if hasattr(sample, "image_id"):
        return sample.image_id
    if isinstance(sample, Mapping):
        return sample["image_id"]
    return sample


def _pairs(samples, outputs) -> List[Tuple[Any, dict]]:
    outs = _as_list(outputs, dict)
    if isinstance(samples, (list, tuple)):
        samps = list(samples)
    else:
        samps = [samples]
    if len(samps) != len(outs):
        raise ValueError(f"process(): {len(samps)} samples but {len(outs)} outputs")
    return [(sample_image_id(s), o) for s, o in zip(samps, outs)]


def _check_output(out: dict, hw: Optional[Tuple[int, int]] = None) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Validate one ``detect`` output; returns ``(rois [D,4] int, class_ids [D], scores [D], masks [H,W,D])``
    (masks as given, not copied: any non-zero value is foreground)."""
    for k in ("rois", "class_ids", "scores", "masks"):
        if k not in out:
            raise ValueError(f"detection output lacks {k!r} (needs rois, class_ids, scores, masks)")
    rois = np.asarray(out["rois"]).reshape(-1, 4)
    class_ids = np.asarray(out["class_ids"]).reshape(-1).astype(np.int64)
    scores = np.asarray(out["scores"], dtype=np.float32).reshape(-1)
    masks = np.asarray(out["masks"])
    d = rois.shape[0]
    if class_ids.shape[0] != d or scores.shape[0] != d:
        raise ValueError(f"detection output: {d} rois, {class_ids.shape[0]} class_ids, {scores.shape[0]} scores")
    if d == 0:
        h, w = hw if hw is not None else (masks.shape[:2] if masks.ndim == 3 else (0, 0))
        return rois, class_ids, scores, np.zeros((h, w, 0), dtype=np.uint8)
    if masks.ndim != 3 or masks.shape[2] != d:
        raise ValueError(f"detection masks must be [H, W, {d}], got shape {masks.shape}")
    if hw is not None and tuple(masks.shape[:2]) != tuple(hw):
        raise ValueError(f"detection masks are {masks.shape[1]}x{masks.shape[0]} but the image is "
                         f"{hw[1]}x{hw[0]}: masks must be in original-image pixels")
    return rois, class_ids, scores, masks  # any non-zero value is foreground


def _nan_if_neg(v: float) -> float:
    v = float(v)
    return float("nan") if v < 0 else v


def _empty_results(coco_gt):
    from pycocotools.coco import COCO

    res = COCO()
    res.dataset = {"images": list(coco_gt.dataset["images"]),
                   "categories": copy.deepcopy(coco_gt.dataset.get("categories", [])),
                   "annotations": []}
    with contextlib.redirect_stdout(io.StringIO()):
        res.createIndex()
    return res


def run_cocoeval(coco_gt, results: Sequence[dict], img_ids: Iterable[int], iou_type: str = "segm",
                 segm_box_area: bool = False):
    """pycocotools ``COCOeval`` (evaluate + accumulate + summarize, its printing captured)
    restricted to ``img_ids``; returns ``(COCOeval, summary text)``.

    ``results``: COCO result dicts (``image_id``, ``category_id``, ``score``, ``bbox``
    ``[x, y, w, h]`` and, for segm, ``segmentation`` RLE). For ``segm`` the ``bbox`` is
    dropped before ``loadRes`` so the detection's area (used by the small/medium/large
    ranges) is its mask area, as detectron2 does; ``segm_box_area=True`` keeps it, as the
    original ``evaluate_coco`` did (area = box area). ``ev.eval["precision"]`` is
    ``[T IoUs, R=101 recalls, K classes, A=4 areas (all, small, medium, large), M=3 maxDets]``.
    """
    from pycocotools.cocoeval import COCOeval

    if iou_type not in ("bbox", "segm"):
        raise ValueError(f"unknown iou type {iou_type!r}")
    dts = []
    for r in results:
        d = {"image_id": r["image_id"], "category_id": r["category_id"], "score": float(r["score"])}
        if iou_type == "bbox":
            d["bbox"] = list(r["bbox"])
        else:
            d["segmentation"] = r["segmentation"]
            if segm_box_area:
                d["bbox"] = list(r["bbox"])
        dts.append(d)
    log = io.StringIO()
    with contextlib.redirect_stdout(log), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        coco_dt = coco_gt.loadRes(dts) if dts else _empty_results(coco_gt)
        ev = COCOeval(coco_gt, coco_dt, iou_type)
        ev.params.imgIds = sorted(set(int(i) for i in img_ids))
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev, log.getvalue()


def coco_evaluate(coco_gt, results: Sequence[dict], img_ids: Iterable[int],
                  iou_types: Sequence[str] = ("bbox", "segm"), segm_box_area: bool = False
                  ) -> Tuple[Dict[str, dict], Dict[str, str]]:
    """COCO metrics of ``results`` on ``img_ids`` (:func:`run_cocoeval` per iou type).

    Returns ``({iou_type: {STAT_NAMES..., "per_class": {name: AP}}}, {iou_type: summary text}})``.
    """
    img_ids = list(img_ids)
    metrics, summaries = {}, {}
    cats = {c["id"]: c["name"] for c in coco_gt.dataset.get("categories", [])}
    for iou_type in iou_types:
        ev, summaries[iou_type] = run_cocoeval(coco_gt, results, img_ids, iou_type, segm_box_area)
        out = {name: _nan_if_neg(v) for name, v in zip(STAT_NAMES, ev.stats)}
        precision = ev.eval["precision"]  # [T, R, K, A, M]
        per_class = {}
        for k, cat_id in enumerate(ev.params.catIds):
            p = precision[:, :, k, 0, -1]
            p = p[p > -1]
            per_class[cats.get(cat_id, str(cat_id))] = float(np.mean(p)) if p.size else float("nan")
        out["per_class"] = per_class
        metrics[iou_type] = out
    return metrics, summaries


def mask_planes(masks: np.ndarray, idx: Sequence[int]):
    """Yield contiguous ``[H, W] uint8`` copies of ``masks[:, :, i]`` for ``i`` in ``idx``
    (one strided copy per plane: far cheaper than transposing all of ``[H, W, D]``)."""
    for i in idx:
        yield np.ascontiguousarray(masks[:, :, i], dtype=np.uint8)


def encode_mask_rle(plane: np.ndarray) -> dict:
    """``pycocotools.mask.encode`` of one ``[H, W]`` mask (same compressed RLE, bytes
    counts), computed from the columns its pixels span instead of a Fortran copy of the
    whole image: fast for the small masks of large (e.g. 2048x1024) images."""
    from pycocotools import mask as mask_utils

    h, w = plane.shape
    col_any = plane.any(axis=0)
    cols = np.flatnonzero(col_any)
    if cols.size == 0:
        counts = [h * w]
    else:
        x1, x2 = int(cols[0]), int(cols[-1]) + 1
        v = np.ascontiguousarray(plane[:, x1:x2].T).reshape(-1) != 0  # column-major pixels of those columns
        change = np.flatnonzero(v[1:] != v[:-1]) + 1
        runs = np.diff(np.concatenate(([0], change, [v.size]))).tolist()
        lead, trail = x1 * h, (w - x2) * h
        if v[0]:
            runs = [lead] + runs
        else:
            runs[0] += lead
        if v[-1]:
            if trail:
                runs.append(trail)
        else:
            runs[-1] += trail
        counts = runs
    return mask_utils.frPyObjects({"counts": counts, "size": [h, w]}, h, w)


def encode_detections(image_id, rois, class_ids, scores, masks, class_map: Mapping[int, int],
                      with_masks: bool = True) -> Tuple[List[dict], int]:
    """COCO result dicts of one image (docs/model.md §5, ``build_coco_results``): ``bbox =
    [x1, y1, x2 - x1, y2 - y1]`` from the int box, ``category_id = class_map[class_id]``,
    ``segmentation`` = ``pycocotools.mask.encode`` of the uint8 mask (bytes counts).
    Detections of classes missing from ``class_map`` are dropped; returns ``(results, dropped)``."""
    keep = [i for i in range(rois.shape[0]) if int(class_ids[i]) in class_map]
    dropped = rois.shape[0] - len(keep)
    if not keep:
        return [], dropped
    rles = [encode_mask_rle(p) for p in mask_planes(masks, keep)] if with_masks else None
    res = []
    for n, i in enumerate(keep):
        y1, x1, y2, x2 = (int(v) for v in rois[i])
        r = {"image_id": image_id, "category_id": int(class_map[int(class_ids[i])]),
             "bbox": [x1, y1, x2 - x1, y2 - y1], "score": float(scores[i])}
        if rles is not None:
            r["segmentation"] = rles[n]
        res.append(r)
    return res, dropped


def _jsonable_results(results: Sequence[dict]) -> List[dict]:
    out = []
    for r in results:
        r = dict(r)
        seg = r.get("segmentation")
        if isinstance(seg, dict) and isinstance(seg.get("counts"), bytes):
            r["segmentation"] = {"size": list(seg["size"]), "counts": seg["counts"].decode("ascii")}
        out.append(r)
    return out


def _load_coco(obj):
    """A pycocotools COCO object from a COCO object, a dataset with ``.coco``, or a json path."""
    from pycocotools.coco import COCO

    if isinstance(obj, COCO):
        return obj
    if hasattr(obj, "coco") and isinstance(obj.coco, COCO):
        return obj.coco
    if isinstance(obj, (str, os.PathLike)):
        return _quiet_coco(os.fspath(obj))   # checked like a dataset's file
    raise TypeError(f"expected a CocoDataset, a pycocotools COCO or a json path, got {type(obj).__name__}")


def class_map_by_name(class_names: Sequence[str], coco) -> Dict[int, int]:
    """Model internal id -> COCO category id of the category with the same name
    (classes without one are left out)."""
    by_name = {c["name"]: int(c["id"]) for c in coco.dataset.get("categories", [])}
    return {i: by_name[n] for i, n in enumerate(class_names) if i > 0 and n in by_name}
