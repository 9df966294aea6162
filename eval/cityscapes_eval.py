"""The Cityscapes evaluator (:class:`CityscapesEvaluator`, the interface of
:mod:`.evaluators`): the official ``cityscapesscripts`` instance-level evaluation
(through :mod:`.cityscapes_shim`) plus COCO-style AP on the same predictions, and the
checks of saved predictions read back for ``mrcnn-eval --from-predictions``.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
import warnings
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np
from PIL import Image

from mrcnn_trt.config import CITYSCAPES_CLASS_NAMES
from mrcnn_trt.data.cityscapes import read_instance_ids
from mrcnn_trt.data.classmap import CITYSCAPES_LABEL_IDS, CITYSCAPES_LABEL_NAMES, cityscapes_label_map
from mrcnn_trt.errors import UserError
from mrcnn_trt.fileio import write_bytes_atomic

from . import cityscapes_shim, predictions
from .evaluator_base import (SavingEvaluator, _check_output, _jsonable_results, _load_coco, _pairs, coco_evaluate,
                         encode_mask_rle)


@contextlib.contextmanager
def _open_image(path: str):
    """``PIL.Image.open`` (header only until pixels are asked for); one
    :class:`UserError` line if the file is not a readable image."""
    try:
        im = Image.open(path)
    except Exception as e:  # noqa: BLE001 - missing, not an image, a decompression bomb
        raise UserError(f"cannot read {path} ({type(e).__name__}: {e})") from None
    with im:
        yield im


def _check_pred_txt(txt: str, results_dir: str, image: Mapping[str, int]) -> None:
    """Check one saved ``<image_id>_pred.txt`` before the official tool reads it: lines
    ``masks/<file>.png <labelId> <score>``, each mask a file under ``results_dir`` of
    the image's size (header only), a Cityscapes instance label id, a finite score."""
    if not os.path.isfile(txt):
        raise UserError(f"saved predictions incomplete: {txt} is missing")
    try:
        with open(txt, encoding="utf-8") as f:
            lines = [ln.split() for ln in f if ln.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read {txt}: {e}") from None
    root = os.path.realpath(results_dir)
    for n, parts in enumerate(lines, start=1):
        where = f"{txt} line {n}"
        if len(parts) != 3:
            raise UserError(f"{where}: expected 'masks/<file>.png <labelId> <score>'")
        rel, label, score = parts
        try:
            label_id, score_v = int(label), float(score)
        except ValueError:
            raise UserError(f"{where}: label id {label!r} or score {score!r} is not a number") from None
        if label_id not in CITYSCAPES_LABEL_NAMES:
            raise UserError(f"{where}: {label_id} is not a Cityscapes instance label id")
        if not math.isfinite(score_v):
            raise UserError(f"{where}: score {score!r} is not a finite number")
        mask = os.path.realpath(os.path.join(os.path.dirname(txt), rel))
        if os.path.commonpath([root, mask]) != root or not os.path.isfile(mask):
            raise UserError(f"{where}: mask {rel} is not a file under {results_dir}")
        with _open_image(mask) as im:
            if (im.height, im.width) != (image["height"], image["width"]):
                raise UserError(f"{where}: mask {rel} is {im.width}x{im.height} but the image is "
                                f"{image['width']}x{image['height']}")


def cityscapes_gt_to_coco(gt_files: Sequence[str], image_ids: Sequence[str]) -> dict:
    """A COCO instances dict from Cityscapes ``*_gtFine_instanceIds.png`` files.

    Images get ids 1..N (``file_name`` = the Cityscapes id); categories are the 8 instance
    classes with their label ids as category ids; instances (id >= 1000) become
    ``iscrowd=0`` RLE annotations, group regions (plain instance-class label id) ``iscrowd=1``.
    """
    from pycocotools import mask as mask_utils

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


class CityscapesEvaluator(SavingEvaluator):
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
        self.results_dir = os.path.join(self.output_dir, "results")
        self._fresh = False      # results_dir is emptied by the first process() call
        self._image_ids: List[str] = []
        self._gt_files: List[str] = []
        self._coco_results: Dict[str, List[dict]] = {}
        self._dropped = 0
        self._num_dets = 0

    def gt_file(self, image_id: str) -> str:
        city = str(image_id).split("_")[0]
        return os.path.join(self.gt_root, "gtFine", self.split, city, f"{image_id}_gtFine_instanceIds.png")

    def _start_results(self) -> None:
        if os.path.isdir(self.results_dir):
            shutil.rmtree(self.results_dir)
        os.makedirs(os.path.join(self.results_dir, "masks"), exist_ok=True)
        self._fresh = True

    def process(self, samples, outputs) -> None:
        if not self._fresh:
            self._start_results()
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

    @property
    def image_ids(self) -> List[str]:
        """The ids of the images processed (or loaded) so far, in order."""
        return list(self._image_ids)

    def save_predictions(self) -> str:
        """Write the manifest ``output_dir/predictions.json`` (:mod:`.predictions`) next to
        the official prediction files of ``results/`` (written by :meth:`process`), with
        the COCO-style results of the same detections; returns its path."""
        res = [r for iid in self._image_ids for r in self._coco_results[iid]]
        self.predictions_path = predictions.write_manifest(
            self.output_dir, "cityscapes", self._image_ids, split=self.split,
            results_dir=os.path.relpath(self.results_dir, self.output_dir), num_detections=self._num_dets,
            num_dropped_detections=self._dropped, label_map={str(k): v for k, v in self.label_map.items()},
            results=_jsonable_results(res))
        return self.predictions_path

    def load_predictions(self, path: str) -> None:
        """Take the predictions saved by :meth:`save_predictions` (``path``: the
        manifest) instead of :meth:`process` calls: the official evaluation reads the
        ``*_pred.txt`` files where they are (checked first), the COCO-style metrics use
        the saved results."""
        man = predictions.read_predictions(path, "cityscapes")
        results_dir = os.path.join(os.path.dirname(os.path.abspath(path)), str(man.get("results_dir") or "results"))
        ids = [str(i) for i in man["image_ids"]]
        gts, images = [], {}
        for iid in ids:
            gt = self.gt_file(iid)
            if not os.path.isfile(gt):
                raise UserError(f"{path}: image {iid!r} has no ground truth {gt}")
            with _open_image(gt) as im:
                images[iid] = {"height": im.height, "width": im.width}
            _check_pred_txt(os.path.join(results_dir, f"{iid}_pred.txt"), results_dir, images[iid])
            gts.append(gt)
        results = man.get("results") or []
        if not isinstance(results, list):
            raise UserError(f"{path}: 'results' is not a list")

        predictions.check_results(results, images, set(CITYSCAPES_LABEL_NAMES), True, path)
        label_map = man.get("label_map") or {}
        try:
            label_map = {int(k): int(v) for k, v in label_map.items()}
        except (AttributeError, TypeError, ValueError):
            label_map = None
        if not label_map or set(label_map.values()) - set(CITYSCAPES_LABEL_NAMES):
            raise UserError(f"{path}: 'label_map' is not a map of model class ids to Cityscapes label ids")
        self.label_map = label_map
        self.reset()
        self.results_dir = results_dir
        self._image_ids, self._gt_files = ids, gts
        self._coco_results = {iid: [] for iid in ids}
        for r in results:
            self._coco_results[str(r["image_id"])].append(r)
        self._num_dets = int(man.get("num_detections") or len(results))
        self._dropped = int(man.get("num_dropped_detections") or 0)

    def score(self) -> dict:
        """The official Cityscapes numbers (+ COCO-style AP) of the saved predictions
        (:meth:`evaluate` saves them first)."""
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
