"""Error analysis of instance predictions: TIDE error types, a class confusion
matrix, precision-recall curves and AP by object size.

Everything works on what the evaluators leave on disk (no model run):

- ``gt``: a COCO instances dict (``images``, ``annotations`` with polygon or RLE
  ``segmentation``, ``bbox`` ``[x, y, w, h]``, ``area``, ``iscrowd``; ``categories``),
  e.g. the COCO dataset's json or the Cityscapes evaluator's ``coco_gt.json``;
- ``results``: COCO result dicts (``image_id``, ``category_id``, ``score``, ``bbox``
  ``[x, y, w, h]`` in pixels, ``segmentation`` compressed RLE), e.g.
  ``coco_instances_results.json``.

    data = EvalData(gt, results)                       # only the images listed in gt (or image_ids)
    tide = tide_analysis(data, "segm")                 # tidecv: dAP per error type and per class
    cm = confusion_matrix(data, "segm", score_thresh=0.5)
    curves = coco_curves(data, "segm")                 # PR curves per class, AP by object size

Conventions: AP values here are percentages (0-100, like the paper and TIDE);
``nan`` means undefined (no ground truth of that class / size). Matching always
uses IoU >= 0.5 (COCO's AP50 criterion) on masks (``"segm"``) or boxes (``"bbox"``).
Crowd annotations (COCO ``iscrowd``, Cityscapes group regions) are never
matched nor missed; a detection lying on one is ignored.

The TIDE error types (Bolya et al., ECCV 2020), for each false positive:
``Cls`` right place (IoU >= 0.5), wrong class; ``Loc`` right class, IoU in
[0.1, 0.5); ``Both`` wrong class and IoU in [0.1, 0.5); ``Dupe`` right class and
place but the object was already matched by a higher score; ``Bkg`` IoU < 0.1
with every object; and ``Miss`` for objects no detection comes near. dAP is the
AP50 gained by fixing all errors of one type (``tidecv``); ``FalsePos`` /
``FalseNeg`` are the AP50 gained with perfect precision / perfect recall.

``tidecv`` (the ``[report]`` extra) is needed by :func:`tide_analysis` only.
"""
from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from mrcnn_trt.errors import UserError

from .evaluator_base import run_cocoeval

IOU_TYPES = ("segm", "bbox")
#: TIDE main error types, in TIDE's order, with a readable name
TIDE_ERRORS: Dict[str, str] = {
    "Cls": "classification", "Loc": "localization", "Both": "both (cls + loc)",
    "Dupe": "duplicate", "Bkg": "background", "Miss": "missed",
}
TIDE_SPECIAL: Dict[str, str] = {"FalsePos": "all false positives", "FalseNeg": "all false negatives"}
#: COCO object size ranges (area in pixels)
SIZE_RANGES: Dict[str, Tuple[float, float]] = {"small": (0, 32 ** 2), "medium": (32 ** 2, 96 ** 2),
                                               "large": (96 ** 2, 1e10)}
BACKGROUND = "background"
MISSED = "missed"


def require_tidecv():
    """Import ``tidecv``; a clear :class:`~mrcnn_trt.errors.UserError` when it is missing."""
    try:
        import tidecv  # noqa: F401
    except ImportError as e:
        raise UserError(f"the error analysis needs tidecv ({e}); install the report extra: "
                        f"pip install -e '.[report]' (or run tools/setup.sh)") from None
    return tidecv


# ----------------------------------------------------------------------------- inputs
@dataclass
class EvalData:
    """Ground truth and detections of the evaluated images, indexed for analysis.

    Args:
        gt: COCO instances dict (see the module docstring).
        results: COCO result dicts; results on images outside the selection are dropped.
        image_ids: the evaluated images (default: every image of ``gt``).

    Attributes (after construction):
        classes: ``{category_id: name}`` in category-id order.
        image_ids: sorted evaluated image ids.
        gts: list of GT dicts (``id``, ``image_id``, ``category_id``, ``bbox``, ``area``,
            ``iscrowd``, ``rle``); ``gt_index[image_id]`` -> indices into ``gts``.
        dets: list of detection dicts (``image_id``, ``category_id``, ``score``, ``bbox``,
            ``rle``, ``area``); ``det_index[image_id]`` -> indices, by descending score.
    """

    gt: dict
    results: Sequence[dict]
    image_ids: Optional[Sequence] = None
    classes: Dict[int, str] = field(init=False)
    images: Dict[int, dict] = field(init=False)
    gts: List[dict] = field(init=False)
    dets: List[dict] = field(init=False)
    gt_index: Dict[int, List[int]] = field(init=False)
    det_index: Dict[int, List[int]] = field(init=False)

    def __post_init__(self):
        from pycocotools import mask as mask_utils

        ids = set(img["id"] for img in self.gt["images"]) if self.image_ids is None else set(self.image_ids)
        self.images = {img["id"]: img for img in self.gt["images"] if img["id"] in ids}
        missing = ids - set(self.images)
        if missing:
            raise ValueError(f"{len(missing)} evaluated image id(s) are not in the ground truth, "
                             f"e.g. {sorted(missing, key=str)[0]!r}")
        self.image_ids = sorted(self.images)
        self.classes = {int(c["id"]): c["name"] for c in sorted(self.gt["categories"], key=lambda c: c["id"])}
        self.gts, self.dets = [], []
        self.gt_index = {i: [] for i in self.image_ids}
        self.det_index = {i: [] for i in self.image_ids}
        for ann in self.gt.get("annotations", []):
            img = self.images.get(ann["image_id"])
            if img is None:
                continue
            rle = _to_rle(ann["segmentation"], img["height"], img["width"])
            area = float(ann["area"]) if "area" in ann else float(mask_utils.area(rle))
            bbox = list(ann["bbox"]) if "bbox" in ann else [float(v) for v in mask_utils.toBbox(rle)]
            self.gt_index[ann["image_id"]].append(len(self.gts))
            self.gts.append({"id": ann.get("id", len(self.gts) + 1), "image_id": ann["image_id"],
                             "category_id": int(ann["category_id"]), "bbox": bbox, "area": area,
                             "iscrowd": int(ann.get("iscrowd", 0)), "rle": rle})
        for r in self.results:
            img = self.images.get(r["image_id"])
            if img is None:
                continue
            rle = _to_rle(r["segmentation"], img["height"], img["width"]) if "segmentation" in r else None
            self.dets.append({"image_id": r["image_id"], "category_id": int(r["category_id"]),
                              "score": float(r["score"]), "bbox": [float(v) for v in r["bbox"]], "rle": rle,
                              "area": float(mask_utils.area(rle)) if rle is not None else
                              float(r["bbox"][2] * r["bbox"][3])})
        for k, d in enumerate(self.dets):
            self.det_index[d["image_id"]].append(k)
        for v in self.det_index.values():
            v.sort(key=lambda k: -self.dets[k]["score"])

    @property
    def class_names(self) -> List[str]:
        return list(self.classes.values())

    def class_name(self, category_id: int) -> str:
        return self.classes.get(int(category_id), str(category_id))

    def coco(self):
        """A pycocotools ``COCO`` of the evaluated images (built once)."""
        if getattr(self, "_coco", None) is None:
            from pycocotools.coco import COCO

            coco = COCO()
            keep = set(self.image_ids)
            coco.dataset = {"images": [self.images[i] for i in self.image_ids],
                            "annotations": [a for a in self.gt.get("annotations", []) if a["image_id"] in keep],
                            "categories": list(self.gt["categories"])}
            with contextlib.redirect_stdout(io.StringIO()):
                coco.createIndex()
            self._coco = coco
        return self._coco

    def det_results(self) -> List[dict]:
        """The selected detections as COCO result dicts (for pycocotools)."""
        out = []
        for d in self.dets:
            r = {"image_id": d["image_id"], "category_id": d["category_id"], "score": d["score"], "bbox": d["bbox"]}
            if d["rle"] is not None:
                r["segmentation"] = d["rle"]
            out.append(r)
        return out


def _to_rle(seg, h: int, w: int) -> dict:
    """Compressed RLE of a COCO segmentation (polygons, uncompressed or compressed RLE)."""
    from pycocotools import mask as mask_utils

    if isinstance(seg, list):
        return mask_utils.merge(mask_utils.frPyObjects(seg, h, w))
    if isinstance(seg.get("counts"), list):
        return mask_utils.frPyObjects(seg, h, w)
    counts = seg["counts"]
    return {"size": list(seg["size"]), "counts": counts.encode("ascii") if isinstance(counts, str) else counts}


def _region(item: dict, iou_type: str):
    return item["rle"] if iou_type == "segm" else item["bbox"]


def pairwise_iou(dets: Sequence[dict], gts: Sequence[dict], iou_type: str = "segm") -> np.ndarray:
    """IoU ``[D, G]`` between detections and GT (crowd GT: intersection over the detection's area,
    as COCO)."""
    from pycocotools import mask as mask_utils

    if not dets or not gts:
        return np.zeros((len(dets), len(gts)), dtype=np.float64)
    iou = mask_utils.iou([_region(d, iou_type) for d in dets], [_region(g, iou_type) for g in gts],
                         [int(g["iscrowd"]) for g in gts])
    return np.asarray(iou, dtype=np.float64).reshape(len(dets), len(gts))


# ----------------------------------------------------------------------------- TIDE
@dataclass(frozen=True)
class ErrorCase:
    """One error for the galleries: ``kind`` a TIDE short name; ``det`` / ``gt`` index
    ``EvalData.dets`` / ``EvalData.gts`` (None when not applicable); ``other_class`` the
    class of the object a ``Cls``/``Both`` detection lies on; ``iou`` with that object."""

    kind: str
    image_id: object
    category_id: int
    score: float
    det: Optional[int] = None
    gt: Optional[int] = None
    other_class: Optional[int] = None
    iou: float = 0.0


@dataclass(frozen=True)
class TideResult:
    """TIDE at IoU 0.5 for one iou type. ``ap50`` (percent), ``main`` ``{type: dAP}``
    (:data:`TIDE_ERRORS` order), ``special`` ``{FalsePos, FalseNeg: dAP}``, ``counts``
    ``{type: number of errors}``, ``per_class`` ``{name: {"AP50": ap, type: dAP, ...}}``
    (classes with ground truth or detections) and ``cases`` (every error, for galleries)."""

    iou_type: str
    ap50: float
    main: Dict[str, float]
    special: Dict[str, float]
    counts: Dict[str, int]
    per_class: Dict[str, Dict[str, float]]
    cases: Tuple[ErrorCase, ...] = ()

    def to_json(self) -> dict:
        return {"iou_type": self.iou_type, "AP50": self.ap50, "dAP": self.main, "special_dAP": self.special,
                "counts": self.counts, "per_class": self.per_class}


def tide_analysis(data: EvalData, iou_type: str = "segm", pos_thresh: float = 0.5,
                  bg_thresh: float = 0.1) -> TideResult:
    """TIDE error analysis (``tidecv``) of ``data`` on masks (``"segm"``) or boxes (``"bbox"``).

    GT crowd regions become TIDE ignore regions; at most 100 detections per image
    count (as in COCO)."""
    if iou_type not in IOU_TYPES:
        raise ValueError(f"iou_type must be one of {IOU_TYPES}, got {iou_type!r}")
    require_tidecv()
    from tidecv.errors.main_errors import (BackgroundError, BoxError, ClassError, DuplicateError,
                                           FalsePositiveError, MissedError, OtherError)
    from tidecv.quantify import TIDE, TIDERun

    mode = TIDE.MASK if iou_type == "segm" else TIDE.BOX
    if not any(data.gt_index.values()) and not data.dets:
        zero = {k: 0.0 for k in TIDE_ERRORS}
        return TideResult(iou_type, float("nan"), zero, {k: 0.0 for k in TIDE_SPECIAL},
                          {k: 0 for k in TIDE_ERRORS}, {})
    gt_data, pred_data, gt_ids, det_ids = _tide_data(data, with_masks=mode == TIDE.MASK)
    run = TIDERun(gt_data, pred_data, pos_thresh, bg_thresh, mode, gt_data.max_dets, True)

    types = {ClassError: "Cls", BoxError: "Loc", OtherError: "Both", DuplicateError: "Dupe",
             BackgroundError: "Bkg", MissedError: "Miss"}
    # = run.fix_main_errors() / fix_special_errors(), with AP undefined (nothing left to score,
    # e.g. fixing the misses of a run without detections) reported as nan instead of raising
    main = {short: _gain(run.fix_errors(lambda e, t=t: isinstance(e, t)), run.ap, clip=True)
            for t, short in types.items()}
    special = {"FalsePos": _gain(run.fix_errors(transform=FalsePositiveError.fix), run.ap),
               "FalseNeg": _gain(run.fix_errors(false_neg_dict=run.false_negatives), run.ap)}
    # detections on crowd regions are ignored by the AP (tidecv's fixes leave them out too) but
    # tidecv still lists them as background errors: not counted, not shown here
    errors = [e for e in run.errors if not (hasattr(e, "pred") and e.pred.get("used", False) is None)]
    counts = {short: sum(1 for e in errors if type(e) is t) for t, short in types.items()}
    cases = tuple(_error_case(data, e, types[type(e)], gt_ids, det_ids, iou_type) for e in errors
                  if type(e) in types)
    return TideResult(iou_type, float(run.ap), main, special, counts, _per_class_gains(data, run, types), cases)


def _tide_data(data: EvalData, with_masks: bool):
    """``data`` as tidecv's ground truth and predictions (crowd objects as ignore regions; at
    most 100 detections per image; without masks skipped when ``with_masks``). Returns them
    with the index maps TIDE annotation ``_id`` -> index into ``data.gts``, TIDE prediction
    ``_id`` -> index into ``data.dets``."""
    from tidecv.data import Data

    gt_data, pred_data = Data("gt", max_dets=100), Data("predictions", max_dets=100)
    for cid, name in data.classes.items():
        gt_data.add_class(cid, name)
        pred_data.add_class(cid, name)
    gt_ids = []
    for image_id in data.image_ids:
        gt_data.add_image(image_id, str(data.images[image_id].get("file_name", image_id)))
        for g in data.gt_index[image_id]:
            gt = data.gts[g]
            if gt["iscrowd"]:
                gt_data.add_ignore_region(image_id, gt["category_id"], gt["bbox"], gt["rle"])
            else:
                gt_data.add_ground_truth(image_id, gt["category_id"], gt["bbox"], gt["rle"])
            gt_ids.append(g)
    det_ids = []
    for k, d in enumerate(data.dets):
        if d["rle"] is None and with_masks:
            continue
        pred_data.add_detection(d["image_id"], d["category_id"], d["score"], d["bbox"], d["rle"])
        det_ids.append(k)
    return gt_data, pred_data, gt_ids, det_ids


def _per_class_gains(data: EvalData, run, types: dict) -> Dict[str, Dict[str, float]]:
    """Class name -> its AP50 and, per error type, the AP50 it gains when those errors are fixed."""
    base = _class_aps(run.ap_data)
    per_class: Dict[str, Dict[str, float]] = {data.class_name(cid): {"AP50": ap} for cid, ap in base.items()}
    for t, short in types.items():
        fixed = _class_aps(run.fix_errors(lambda e, t=t: isinstance(e, t)))
        for cid, ap in base.items():
            per_class[data.class_name(cid)][short] = max(fixed.get(cid, ap) - ap, 0.0)
    return per_class


def _error_case(data: EvalData, e, short: str, gt_ids: list, det_ids: list, iou_type: str) -> ErrorCase:
    """One tidecv error as an :class:`ErrorCase`: its detection and the object it is about, if any."""
    if short == "Miss":
        return ErrorCase("Miss", e.gt["image"], e.gt["class"], 0.0, gt=gt_ids[e.gt["_id"]])
    k = det_ids[e.pred["_id"]]
    g = None
    if short in ("Cls", "Loc"):
        g = gt_ids[e.gt["_id"]]
    elif short == "Dupe" and e.suppressor.get("matched_with") is not None:
        g = gt_ids[e.suppressor["matched_with"]]
    elif short == "Both":
        g = _best_object(data, k, iou_type)
    iou = det_gt_iou(data, k, g, iou_type) if g is not None else 0.0
    other = data.gts[g]["category_id"] if g is not None and short in ("Cls", "Both") else None
    return ErrorCase(short, e.pred["image"], e.pred["class"], float(e.pred["score"]), det=k, gt=g,
                     other_class=other, iou=iou)


def det_gt_iou(data: EvalData, det: int, gt: int, iou_type: str) -> float:
    """IoU of detection ``det`` with object ``gt`` (indices into ``data.dets`` / ``data.gts``)."""
    return float(pairwise_iou([data.dets[det]], [data.gts[gt]], iou_type)[0, 0])


def _best_object(data: EvalData, det: int, iou_type: str) -> Optional[int]:
    """The non-crowd object of the detection's image with the highest IoU (None if none)."""
    d = data.dets[det]
    gts = [g for g in data.gt_index[d["image_id"]] if not data.gts[g]["iscrowd"]]
    if not gts:
        return None
    iou = pairwise_iou([d], [data.gts[g] for g in gts], iou_type)[0]
    return gts[int(iou.argmax())] if iou.max() > 0 else None


def _gain(ap_data, base: float, clip: bool = False) -> float:
    """mAP of a fixed tidecv ClassedAPDataObject minus ``base`` (tidecv clips the main errors'
    gains at 0: negative ones come from binning); nan when nothing is left to score."""
    aps = list(_class_aps(ap_data).values())
    if not aps:
        return float("nan")
    gain = sum(aps) / len(aps) - base
    return max(gain, 0.0) if clip else gain


def _class_aps(ap_data) -> Dict[int, float]:
    """Per-class AP (percent) of a tidecv ClassedAPDataObject (classes with GT or detections)."""
    return {int(c): float(obj.get_ap()) for c, obj in list(ap_data.objs.items()) if not obj.is_empty()}


# ----------------------------------------------------------------------------- confusion matrix
@dataclass(frozen=True)
class ConfusionMatrix:
    """Ground-truth class (rows) vs predicted class (columns) of detections with score >=
    ``score_thresh``, matched at IoU >= ``iou_thresh``.

    ``matrix`` is ``[K + 1, K + 1]`` int: rows are the K classes then ``background``
    (detections that match no object: false positives), columns the K classes then
    ``missed`` (objects no detection matched). The diagonal holds true positives.

    Matching, per image: first as COCO does (each detection, by descending score, takes
    the unmatched object *of its class* with the highest IoU >= iou_thresh), then the
    remaining detections take remaining objects of *any* class (a class confusion).
    Detections left over that cover a crowd region (IoU >= iou_thresh) are ignored.
    ``on_matched[j]`` counts the background-row detections of class j that lie on an
    object another detection already matched (duplicates, or a second label)."""

    classes: Tuple[str, ...]
    matrix: np.ndarray
    iou_type: str
    iou_thresh: float
    score_thresh: float
    on_matched: np.ndarray

    @property
    def labels_gt(self) -> List[str]:
        return list(self.classes) + [BACKGROUND]

    @property
    def labels_pred(self) -> List[str]:
        return list(self.classes) + [MISSED]

    def count(self, gt_class: str, pred_class: str) -> int:
        return int(self.matrix[self.labels_gt.index(gt_class), self.labels_pred.index(pred_class)])

    def confusions(self, n: int = 10) -> List[Tuple[str, str, int]]:
        """The ``n`` largest off-diagonal class confusions ``(gt class, predicted class, count)``."""
        k = len(self.classes)
        cells = [(self.classes[i], self.classes[j], int(self.matrix[i, j]))
                 for i in range(k) for j in range(k) if i != j and self.matrix[i, j] > 0]
        return sorted(cells, key=lambda t: -t[2])[:n]

    def to_json(self) -> dict:
        return {"iou_type": self.iou_type, "iou_thresh": self.iou_thresh, "score_thresh": self.score_thresh,
                "rows_gt": self.labels_gt, "cols_pred": self.labels_pred, "matrix": self.matrix.tolist(),
                "background_on_matched_objects": dict(zip(self.classes, self.on_matched.tolist()))}


def _match_greedily(iou: np.ndarray, det_cls: np.ndarray, gt_cls: np.ndarray,
                    iou_thresh: float) -> Tuple[np.ndarray, np.ndarray]:
    """Match detections (rows of ``iou`` ``[D, G]``, in descending score order) to objects:
    each takes the free object of highest IoU >= ``iou_thresh``, first among objects of its
    own class, then (in a second pass) among the others. Returns the object index of each
    detection (-1: none) ``[D]`` and which objects were taken ``[G]``."""
    gt_taken = np.zeros(iou.shape[1], dtype=bool)
    det_match = np.full(iou.shape[0], -1)
    for same_class in (True, False):
        for i in range(iou.shape[0]):
            if det_match[i] >= 0:
                continue
            cand = iou[i].copy()
            cand[gt_taken] = -1.0
            if same_class:
                cand[gt_cls != det_cls[i]] = -1.0
            if cand.size and cand.max() >= iou_thresh:
                j = int(cand.argmax())
                det_match[i], gt_taken[j] = j, True
    return det_match, gt_taken


def confusion_matrix(data: EvalData, iou_type: str = "segm", score_thresh: float = 0.5,
                     iou_thresh: float = 0.5) -> ConfusionMatrix:
    """The class confusion matrix of ``data`` (see :class:`ConfusionMatrix`)."""
    cids = list(data.classes)
    col = {c: i for i, c in enumerate(cids)}
    k = len(cids)
    m = np.zeros((k + 1, k + 1), dtype=np.int64)
    on_matched = np.zeros(k, dtype=np.int64)
    for image_id in data.image_ids:
        dets = [d for d in data.det_index[image_id] if data.dets[d]["score"] >= score_thresh]
        gts = [g for g in data.gt_index[image_id] if not data.gts[g]["iscrowd"]]
        crowds = [g for g in data.gt_index[image_id] if data.gts[g]["iscrowd"]]
        iou = pairwise_iou([data.dets[d] for d in dets], [data.gts[g] for g in gts], iou_type)
        det_cls = np.array([data.dets[d]["category_id"] for d in dets], dtype=np.int64)
        gt_cls = np.array([data.gts[g]["category_id"] for g in gts], dtype=np.int64)
        det_match, gt_taken = _match_greedily(iou, det_cls, gt_cls, iou_thresh)
        crowd_iou = pairwise_iou([data.dets[d] for d in dets], [data.gts[g] for g in crowds], iou_type)
        for i in range(len(dets)):
            p = col[int(det_cls[i])] if int(det_cls[i]) in col else None
            if p is None:
                continue
            if det_match[i] >= 0:
                m[col[int(gt_cls[det_match[i]])], p] += 1
            elif not (crowd_iou.shape[1] and crowd_iou[i].max() >= iou_thresh):
                m[k, p] += 1
                if iou.shape[1] and iou[i].max() >= iou_thresh:
                    on_matched[p] += 1
        for j in np.flatnonzero(~gt_taken):
            m[col[int(gt_cls[j])], k] += 1
    return ConfusionMatrix(tuple(data.classes.values()), m, iou_type, iou_thresh, score_thresh, on_matched)


# ----------------------------------------------------------------------------- curves, sizes
@dataclass(frozen=True)
class CocoCurves:
    """From pycocotools' accumulated precision (maxDets 100):

    ``recall``: the 101 recall points; ``precision[name][iou]`` the interpolated precision
    ``[101]`` of class ``name`` at IoU ``"0.50"`` / ``"0.75"`` (nan: undefined);
    ``ap_by_size[name]`` ``{"all", "small", "medium", "large"}`` AP (percent, IoU
    0.50:0.95) and ``gt_by_size[name]`` the number of (non-crowd) objects per size."""

    iou_type: str
    recall: np.ndarray
    precision: Dict[str, Dict[str, np.ndarray]]
    ap_by_size: Dict[str, Dict[str, float]]
    gt_by_size: Dict[str, Dict[str, int]]

    def to_json(self) -> dict:
        return {"iou_type": self.iou_type, "ap_by_size": self.ap_by_size, "gt_by_size": self.gt_by_size}


def coco_curves(data: EvalData, iou_type: str = "segm") -> CocoCurves:
    """Per-class PR curves and AP by object size with pycocotools (the evaluators' COCOeval)."""
    ev, _ = run_cocoeval(data.coco(), data.det_results(), data.image_ids, iou_type)
    prec = ev.eval["precision"]   # [T, R, K, A, M]
    ious = list(np.round(ev.params.iouThrs, 2))
    areas = ev.params.areaRngLbl  # all, small, medium, large
    precision, by_size = {}, {}
    for k, cid in enumerate(ev.params.catIds):
        name = data.class_name(cid)
        curves = {}
        for t_name in ("0.50", "0.75"):
            p = prec[ious.index(float(t_name)), :, k, 0, -1].astype(np.float64)
            curves[t_name] = np.where(p < 0, np.nan, p)
        precision[name] = curves
        sizes = {}
        for a, label in enumerate(areas):
            p = prec[:, :, k, a, -1]
            p = p[p > -1]
            sizes["all" if label == "all" else label] = float(np.mean(p) * 100) if p.size else float("nan")
        by_size[name] = sizes
    counts = {name: {s: 0 for s in SIZE_RANGES} for name in data.class_names}
    for g in data.gts:
        if g["iscrowd"]:
            continue
        for s, (lo, hi) in SIZE_RANGES.items():
            if lo <= g["area"] < hi:
                counts[data.class_name(g["category_id"])][s] += 1
    return CocoCurves(iou_type, np.asarray(ev.params.recThrs), precision, by_size, counts)
