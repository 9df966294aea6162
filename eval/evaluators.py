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

A per-image output is the original ``detect`` contract (docs/model.md §3.10): a dict with

- ``rois``: int32 ``[D, 4]`` ``(y1, x1, y2, x2)`` in original-image pixels (x2/y2 exclusive),
- ``class_ids``: int32 ``[D]`` model internal ids,
- ``scores``: float32 ``[D]``,
- ``masks``: uint8 ``[H, W, D]`` in {0, 1} (an empty ``(0, 28, 28)`` array is accepted for
  ``D == 0``, as the original returns).

A "sample" is anything with an ``image_id`` (a :class:`mrcnn_trt.data.Sample`, a dict with
``"image_id"``) or the image id itself. All AP/AR numbers are fractions in [0, 1]; a value that
the protocol leaves undefined (no ground truth for that class / area range) is ``nan``.

- :class:`COCOEvaluator`: pycocotools ``COCOeval`` for ``bbox`` and ``segm``.
- :class:`CityscapesEvaluator`: the official ``cityscapesscripts`` instance-level evaluation
  (through :mod:`.cityscapes_shim`), plus COCO-style AP on the same predictions.
"""
from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import tempfile
import warnings
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from mrcnn_trt.errors import UserError

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
        path = os.fspath(obj)
        if not os.path.isfile(path):
            raise UserError(f"COCO annotation file not found: {path}")
        with contextlib.redirect_stdout(io.StringIO()):
            return COCO(path)
    raise TypeError(f"expected a CocoDataset, a pycocotools COCO or a json path, got {type(obj).__name__}")


def class_map_by_name(class_names: Sequence[str], coco) -> Dict[int, int]:
    """Model internal id -> COCO category id of the category with the same name
    (classes without one are left out)."""
    by_name = {c["name"]: int(c["id"]) for c in coco.dataset.get("categories", [])}
    return {i: by_name[n] for i, n in enumerate(class_names) if i > 0 and n in by_name}


# ---------------------------------------------------------------------------- COCO
class COCOEvaluator(DatasetEvaluator):
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
    def results(self) -> List[dict]:
        """The COCO result dicts collected so far."""
        return self._results

    def evaluate(self) -> dict:
        if not self._img_ids:
            warnings.warn("COCOEvaluator.evaluate() called without processed images")
            return {}
        metrics, self.summaries = coco_evaluate(self.coco, self._results, self._img_ids, self.iou_types,
                                                self.segm_box_area)
        metrics["num_images"] = len(set(self._img_ids))
        metrics["num_detections"] = len(self._results)
        metrics["num_dropped_detections"] = self._dropped
        if self.output_dir:
            from mrcnn_trt.fileio import write_bytes_atomic

            os.makedirs(self.output_dir, exist_ok=True)
            write_bytes_atomic(os.path.join(self.output_dir, "coco_instances_results.json"),
                               json.dumps(_jsonable_results(self._results)).encode())
            text = "".join(f"== {t} ==\n{s}\n" for t, s in self.summaries.items())
            write_bytes_atomic(os.path.join(self.output_dir, "coco_eval_summary.txt"), text.encode())
        return metrics


# ---------------------------------------------------------------------------- Cityscapes
def cityscapes_gt_to_coco(gt_files: Sequence[str], image_ids: Sequence[str]) -> dict:
    """A COCO instances dict from Cityscapes ``*_gtFine_instanceIds.png`` files.

    Images get ids 1..N (``file_name`` = the Cityscapes id); categories are the 8 instance
    classes with their label ids as category ids; instances (id >= 1000) become
    ``iscrowd=0`` RLE annotations, group regions (plain instance-class label id) ``iscrowd=1``.
    """
    from pycocotools import mask as mask_utils

    from mrcnn_trt.data.cityscapes import read_instance_ids
    from mrcnn_trt.data.classmap import CITYSCAPES_LABEL_IDS

    label_ids = set(CITYSCAPES_LABEL_IDS.values())
    images, anns = [], []
    for n, (path, iid) in enumerate(zip(gt_files, image_ids), start=1):
        ids = read_instance_ids(path)
        h, w = ids.shape
        images.append({"id": n, "file_name": str(iid), "height": h, "width": w})
        for v in np.unique(ids):
            v = int(v)
            lid, crowd = (v // 1000, 0) if v >= 1000 else (v, 1)
            if lid not in label_ids:
                continue
            rle = mask_utils.encode(np.asfortranarray((ids == v).astype(np.uint8)))
            x, y, bw, bh = (float(t) for t in mask_utils.toBbox(rle))
            anns.append({"id": len(anns) + 1, "image_id": n, "category_id": lid,
                         "segmentation": {"size": [h, w], "counts": rle["counts"].decode("ascii")},
                         "area": float(mask_utils.area(rle)), "bbox": [x, y, bw, bh], "iscrowd": crowd})
    cats = [{"id": lid, "name": name, "supercategory": "cityscapes"}
            for name, lid in sorted(CITYSCAPES_LABEL_IDS.items(), key=lambda t: t[1])]
    return {"info": {"description": "Cityscapes gtFine instances as COCO"}, "images": images,
            "annotations": anns, "categories": cats}


class CityscapesEvaluator(DatasetEvaluator):
    """The official Cityscapes instance-level evaluation (``cityscapesscripts`` 2.3.0:
    AP over overlaps 0.50:0.95 and AP at 0.5, GT instances < 100 px and group / void
    regions ignored), restricted to the processed images.

    :meth:`process` writes predictions in the tool's format under
    ``output_dir/results``: ``<image_id>_pred.txt`` with lines
    ``masks/<image_id>_<k>.png <labelId> <score>`` and one PNG per detection.
    :meth:`evaluate` runs the official code (:mod:`.cityscapes_shim`) and, with
    ``coco_metrics=True``, COCO-style bbox/segm AP on the same predictions (the processed
    GT converted to ``output_dir/coco_gt.json`` by :func:`cityscapes_gt_to_coco`, groups as
    crowds; the predictions as ``output_dir/coco_instances_results.json``, category ids =
    Cityscapes label ids, image ids = those of coco_gt.json).

    Args:
        gt_root: Cityscapes root (``gtFine/<split>/<city>/...``) or a
            :class:`~mrcnn_trt.data.cityscapes.CityscapesDataset`.
        split: the split folder.
        output_dir: where results go (default: a new temporary folder).
        label_map: model internal id -> Cityscapes label id; default
            :func:`mrcnn_trt.data.classmap.cityscapes_label_map` of ``class_names``
            (identity for a Cityscapes model, the 7 shared classes for a COCO model,
            circle/square/triangle -> person/car/bicycle for a shapes model). Unmapped
            detections are dropped.
        class_names: the model's class names (default: the Cityscapes preset's).

    Result keys: ``AP``, ``AP50`` (official means over the 8 classes, nan-skipping),
    ``per_class`` ``{name: {"AP", "AP50"}}`` (nan: no GT and no prediction),
    ``AP_mappable``/``AP50_mappable`` (mean over the classes in ``label_map``; equals ``AP``
    when all 8 are mappable), ``coco`` (COCO-style metrics) and file paths.
    """

    def __init__(self, gt_root, split: str = "val", output_dir: Optional[str] = None,
                 label_map: Optional[Mapping[int, int]] = None, class_names: Optional[Sequence[str]] = None,
                 coco_metrics: bool = True):
        from mrcnn_trt.config import CITYSCAPES_CLASS_NAMES
        from mrcnn_trt.data.classmap import CITYSCAPES_LABEL_NAMES, cityscapes_label_map

        if hasattr(gt_root, "root") and hasattr(gt_root, "split"):
            gt_root, split = gt_root.root, gt_root.split
        self.gt_root = os.fspath(gt_root)
        self.split = split
        if not os.path.isdir(os.path.join(self.gt_root, "gtFine", split)):
            raise UserError(f"no Cityscapes ground truth folder {os.path.join(self.gt_root, 'gtFine', split)}")
        if label_map is None:
            label_map = cityscapes_label_map(class_names or CITYSCAPES_CLASS_NAMES)
        bad = sorted(set(label_map.values()) - set(CITYSCAPES_LABEL_NAMES))
        if bad:
            raise ValueError(f"label_map values {bad} are not Cityscapes instance label ids")
        self.label_map = {int(k): int(v) for k, v in label_map.items()}
        self.output_dir = os.path.abspath(output_dir) if output_dir else tempfile.mkdtemp(prefix="cs-eval-")
        self.results_dir = os.path.join(self.output_dir, "results")
        self.coco_metrics = coco_metrics
        self.log = ""
        self.reset()

    def reset(self) -> None:
        import shutil

        if os.path.isdir(self.results_dir):
            shutil.rmtree(self.results_dir)
        os.makedirs(os.path.join(self.results_dir, "masks"), exist_ok=True)
        self._image_ids: List[str] = []
        self._gt_files: List[str] = []
        self._coco_results: Dict[str, List[dict]] = {}
        self._dropped = 0
        self._num_dets = 0

    def gt_file(self, image_id: str) -> str:
        city = str(image_id).split("_")[0]
        return os.path.join(self.gt_root, "gtFine", self.split, city, f"{image_id}_gtFine_instanceIds.png")

    def process(self, samples, outputs) -> None:
        from PIL import Image

        for image_id, out in _pairs(samples, outputs):
            image_id = str(image_id)
            gt = self.gt_file(image_id)
            if not os.path.isfile(gt):
                raise ValueError(f"no Cityscapes ground truth for image {image_id!r} ({gt})")
            if image_id in self._coco_results:
                raise ValueError(f"image {image_id!r} processed twice")
            with Image.open(gt) as im:
                hw = (im.height, im.width)
            rois, class_ids, scores, masks = _check_output(out, hw)
            lines, res = [], []
            for i in range(rois.shape[0]):
                lid = self.label_map.get(int(class_ids[i]))
                if lid is None:
                    self._dropped += 1
                    continue
                score = float(f"{float(scores[i]):.6f}")  # exactly what the txt says
                rel = f"masks/{image_id}_{i}.png"
                plane = np.ascontiguousarray(masks[:, :, i])
                Image.fromarray(plane != 0).save(os.path.join(self.results_dir, rel), compress_level=1)  # 1-bit PNG
                lines.append(f"{rel} {lid} {score:.6f}\n")
                if self.coco_metrics:
                    y1, x1, y2, x2 = (int(v) for v in rois[i])
                    res.append({"image_id": image_id, "category_id": lid, "bbox": [x1, y1, x2 - x1, y2 - y1],
                                "score": score, "segmentation": encode_mask_rle(plane)})
            with open(os.path.join(self.results_dir, f"{image_id}_pred.txt"), "w") as f:
                f.writelines(lines)
            self._coco_results[image_id] = res
            self._image_ids.append(image_id)
            self._gt_files.append(gt)
            self._num_dets += len(lines)

    def evaluate(self) -> dict:
        from mrcnn_trt.data.classmap import CITYSCAPES_LABEL_NAMES

        from . import cityscapes_shim

        if not self._image_ids:
            warnings.warn("CityscapesEvaluator.evaluate() called without processed images")
            return {}
        run = cityscapes_shim.run(self._gt_files, self.results_dir, self.output_dir)
        self.log = run.log
        avg = run.result["averages"]
        per_class = {name: {"AP": float(v["ap"]), "AP50": float(v["ap50%"])} for name, v in avg["classes"].items()}
        mappable = [CITYSCAPES_LABEL_NAMES[lid] for lid in sorted(set(self.label_map.values()))]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            ap_m = float(np.nanmean([per_class[n]["AP"] for n in mappable])) if mappable else float("nan")
            ap50_m = float(np.nanmean([per_class[n]["AP50"] for n in mappable])) if mappable else float("nan")
        metrics = {
            "AP": float(avg["allAp"]), "AP50": float(avg["allAp50%"]), "per_class": per_class,
            "AP_mappable": ap_m, "AP50_mappable": ap50_m, "mappable_classes": mappable,
            "num_images": len(self._image_ids), "num_detections": self._num_dets,
            "num_dropped_detections": self._dropped,
            "results_dir": self.results_dir, "export_file": run.export_file,
        }
        if self.coco_metrics:
            from mrcnn_trt.fileio import write_bytes_atomic

            gt = cityscapes_gt_to_coco(self._gt_files, self._image_ids)
            gt_path = os.path.join(self.output_dir, "coco_gt.json")
            write_bytes_atomic(gt_path, json.dumps(gt).encode())
            num = {img["file_name"]: img["id"] for img in gt["images"]}
            results = []
            for iid in self._image_ids:
                for r in self._coco_results[iid]:
                    r = dict(r)
                    r["image_id"] = num[iid]
                    results.append(r)
            res_path = os.path.join(self.output_dir, "coco_instances_results.json")
            write_bytes_atomic(res_path, json.dumps(_jsonable_results(results)).encode())
            coco_gt = _load_coco(gt_path)
            cm, self.coco_summaries = coco_evaluate(coco_gt, results, list(num.values()))
            metrics["coco_gt_file"] = gt_path
            metrics["coco_results_file"] = res_path
            return {"cityscapes": metrics, **cm}
        return {"cityscapes": metrics}


# ---------------------------------------------------------------------------- choice
def make_evaluator(dataset_kind: str, dataset, class_names: Sequence[str], class_map: str,
                   out: str) -> DatasetEvaluator:
    """The evaluator of ``mrcnn-eval`` for a dataset kind ("coco" | "cityscapes") and a
    ``--class-map`` choice ("auto" (by class names) | "none" | "coco-to-cityscapes" |
    "shapes-to-cityscapes"); its files go to ``out``."""
    from mrcnn_trt.data.classmap import coco_to_cityscapes, shapes_to_cityscapes

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
