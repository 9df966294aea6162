"""COCO-format instance segmentation datasets (``instances_*.json`` + an image folder).

Follows the original ``CocoDataset.load_coco`` (docs/model.md §5) and ``load_mask`` (§4.1):

- categories are taken in ``sorted(coco.getCatIds())`` order: internal id ``i`` (1..K-1)
  is the i-th sorted category id, ``source_class_ids[i]`` maps it back;
- images are the union over those categories of the images that have an annotation,
  deduplicated with a set, in the same order as the original's ``list(set(ids))``
  (``all_images=True`` takes every image of the file instead, in file order);
- segmentations may be polygons, uncompressed or compressed RLE; they are decoded with
  pycocotools (``frPyObjects`` + ``decode``, i.e. ``COCO.annToMask``);
- ``iscrowd`` annotations get the negative class id ``-class_id``;
- instances whose mask is empty (or smaller than 1 pixel after decoding) are skipped.

Usage::

    ds = CocoDataset("annotations/instances_val2017.json", "val2017")
    ds = CocoDataset.from_root("coco", split="val2017")   # root/annotations/instances_<split>.json
"""
from __future__ import annotations

import contextlib
import io
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from mrcnn_trt.errors import UserError

from .base import Dataset, ImageId


def _quiet_coco(annotation_file: str):
    """``pycocotools.coco.COCO(annotation_file)`` without its progress prints."""
    from pycocotools.coco import COCO

    if not os.path.isfile(annotation_file):
        raise UserError(f"COCO annotation file not found: {annotation_file}")
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return COCO(annotation_file)
    except (ValueError, KeyError, TypeError, AssertionError) as e:
        raise UserError(f"not a COCO instances file: {annotation_file}: {e}") from None


def ann_to_mask(ann: dict, height: int, width: int) -> np.ndarray:
    """Decode one annotation's segmentation (polygons / RLE) to ``[H, W] bool``.

    Same result as ``COCO.annToMask`` (pycocotools ``frPyObjects`` + ``decode``).
    """
    from pycocotools import mask as mask_utils

    segm = ann["segmentation"]
    if isinstance(segm, list):
        if len(segm) == 0:
            return np.zeros((height, width), dtype=bool)
        rles = mask_utils.frPyObjects(segm, height, width)
        rle = mask_utils.merge(rles)
    elif isinstance(segm.get("counts"), list):
        rle = mask_utils.frPyObjects(segm, height, width)
    else:
        rle = segm
    m = mask_utils.decode(rle)
    if m.ndim == 3:
        m = m[:, :, 0]
    return m.astype(bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)


def annotation_problem(ann, image_ids, category_ids) -> Optional[str]:
    """What is wrong with one instance annotation, or None (checked when a file is
    opened, so a bad file fails at once instead of after a whole inference run)."""
    if not isinstance(ann, dict):
        return "is not a JSON object"
    if ann.get("image_id") not in image_ids:
        return f"refers to image_id {ann.get('image_id')!r}, which is not in 'images'"
    if ann.get("category_id") not in category_ids:
        return f"refers to category_id {ann.get('category_id')!r}, which is not in 'categories'"
    bbox = ann.get("bbox")
    if bbox is not None and not (isinstance(bbox, list) and len(bbox) == 4 and all(map(_is_number, bbox))
                                 and bbox[2] >= 0 and bbox[3] >= 0):
        return f"has bbox {bbox!r}: expected [x, y, width, height] with width, height >= 0"
    if "area" in ann and not _is_number(ann["area"]):
        return f"has area {ann['area']!r}: expected a number"
    if ann.get("iscrowd", 0) not in (0, 1):
        return f"has iscrowd {ann.get('iscrowd')!r}: expected 0 or 1"
    segm = ann.get("segmentation")
    if segm is None:
        return "has no segmentation"
    if isinstance(segm, list):
        for poly in segm:
            if not (isinstance(poly, list) and all(map(_is_number, poly))):
                return "has a polygon that is not a list of numbers"
            if len(poly) < 6 or len(poly) % 2:
                return (f"has a polygon with {len(poly)} coordinates: a polygon needs at least 3 points "
                        f"(x, y pairs)")
    elif isinstance(segm, dict):
        size = segm.get("size")
        if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v >= 0 for v in size)):
            return f"has an RLE segmentation with size {size!r}: expected [height, width]"
        if not isinstance(segm.get("counts"), (str, list)):
            return "has an RLE segmentation without 'counts'"
    else:
        return f"has segmentation of type {type(segm).__name__}: expected polygons or RLE"
    return None


def validate_coco(coco, annotation_file: str) -> None:
    """One :class:`UserError` line naming the first malformed annotation (by id), or
    saying the file has no annotations."""
    anns = coco.dataset.get("annotations")
    if not anns:
        raise UserError(f"{annotation_file} has no annotations: evaluation and training need instance "
                        f"annotations (for unlabeled images pass their folder instead)")
    image_ids = {img.get("id") for img in coco.dataset.get("images", []) if isinstance(img, dict)}
    category_ids = {c.get("id") for c in coco.dataset.get("categories", []) if isinstance(c, dict)}
    for ann in anns:
        why = annotation_problem(ann, image_ids, category_ids)
        if why:
            aid = ann.get("id", "?") if isinstance(ann, dict) else "?"
            raise UserError(f"{annotation_file}: annotation id {aid} {why}")


class CocoDataset(Dataset):
    """A COCO instances file plus the folder of its images.

    Args:
        annotation_file: ``instances_<split>.json``.
        image_dir: folder holding the images' ``file_name``s.
        class_ids: optional subset of COCO category ids to load (default: all).
        all_images: include images without annotations (default: the original's union
            over categories, which leaves them out).
    """

    name = "coco"

    def __init__(self, annotation_file: str, image_dir: Optional[str] = None,
                 class_ids: Optional[Sequence[int]] = None, all_images: bool = False,
                 split: Optional[str] = None):
        self.annotation_file = os.fspath(annotation_file)
        self.coco = _quiet_coco(self.annotation_file)
        coco = self.coco
        validate_coco(coco, self.annotation_file)
        if image_dir is None:
            image_dir = self._find_image_dir(split)
        self.image_dir = os.fspath(image_dir)
        if not os.path.isdir(self.image_dir):
            raise UserError(f"COCO image folder not found: {self.image_dir} (pass the folder of the images of "
                            f"{os.path.basename(self.annotation_file)} with --images DIR)")
        all_cat_ids = sorted(coco.getCatIds())
        if class_ids is None:
            cat_ids = all_cat_ids
        else:
            unknown = sorted(set(class_ids) - set(all_cat_ids))
            if unknown:
                raise UserError(f"category ids {unknown} are not in {self.annotation_file}")
            cat_ids = sorted(class_ids)
        cats = coco.loadCats(cat_ids)
        names = ["BG"] + [c["name"] for c in cats]
        super().__init__(names, {i + 1: int(c) for i, c in enumerate(cat_ids)})
        self._cat_to_internal: Dict[int, int] = {int(c): i + 1 for i, c in enumerate(cat_ids)}

        if all_images:
            ids = [img["id"] for img in coco.dataset.get("images", [])]
        else:
            ids = []
            for c in cat_ids:
                ids.extend(coco.getImgIds(catIds=[c]))
            ids = list(set(ids))  # original order: list(set(...))
        self._ids: List[int] = ids

    @classmethod
    def from_root(cls, root: str, split: str = "val", image_dir: Optional[str] = None, **kw) -> "CocoDataset":
        """Open ``root/annotations/instances_<split>.json``; images are looked for in
        ``image_dir`` if given, else ``root/images``, ``root/images/<split>``, ``root/<split>`` or ``root``."""
        ann_dir = os.path.join(root, "annotations")
        ann = os.path.join(ann_dir, f"instances_{split}.json")
        if not os.path.isfile(ann):
            found = sorted(f for f in os.listdir(ann_dir) if f.startswith("instances_")) \
                if os.path.isdir(ann_dir) else []
            hint = f" (found: {', '.join(found)})" if found else ""
            raise UserError(f"no COCO annotation file {ann}{hint}")
        return cls(ann, image_dir, split=split, **kw)

    def _find_image_dir(self, split: Optional[str]) -> str:
        """Guess the image folder from the annotation file's place: with
        ``root/annotations/instances_<split>.json`` try ``root/images``,
        ``root/images/<split>``, ``root/<split>``, ``root``; else the json's folder."""
        ann_dir = os.path.dirname(os.path.abspath(self.annotation_file))
        root = os.path.dirname(ann_dir) if os.path.basename(ann_dir) == "annotations" else ann_dir
        if split is None:
            base = os.path.splitext(os.path.basename(self.annotation_file))[0]
            split = base[len("instances_"):] if base.startswith("instances_") else base
        candidates = [os.path.join(root, "images"), os.path.join(root, "images", split),
                      os.path.join(root, split), root, ann_dir]
        imgs = self.coco.dataset.get("images", [])
        first = imgs[0]["file_name"] if imgs else None
        for c in candidates:
            if os.path.isdir(c) and (first is None or os.path.isfile(os.path.join(c, first))):
                return c
        raise UserError(f"cannot find the images of {self.annotation_file} "
                        f"(looked in {', '.join(candidates)}); pass their folder with --images DIR")

    # ---------------------------------------------------------------- Dataset
    def __len__(self) -> int:
        return len(self._ids)

    def image_id(self, i: int) -> ImageId:
        return self._ids[i]

    def image_info(self, i: int) -> dict:
        return self.coco.imgs[self._ids[i]]

    def image_path(self, i: int) -> str:
        return os.path.join(self.image_dir, self.image_info(i)["file_name"])

    def load_image(self, i: int) -> np.ndarray:
        path = self.image_path(self._check_index(i))
        if not os.path.isfile(path):
            raise UserError(f"image not found: {path} (the images of {os.path.basename(self.annotation_file)} "
                            f"are read from {self.image_dir}; pass another folder with --images DIR)")
        return super().load_image(i)

    def load_annotations(self, i: int, height: int, width: int) -> Tuple[np.ndarray, np.ndarray]:
        info = self.image_info(i)
        if "height" in info and (info["height"], info["width"]) != (height, width):
            raise UserError(
                f"image {self.image_path(i)} is {width}x{height} but the annotation file says "
                f"{info['width']}x{info['height']}")
        anns = self.coco.loadAnns(self.coco.getAnnIds(imgIds=[self._ids[i]], iscrowd=None))
        masks, ids = [], []
        for ann in anns:
            cid = self._cat_to_internal.get(int(ann["category_id"]))
            if cid is None:
                continue
            m = ann_to_mask(ann, height, width)
            if m.max() < 1:  # empty masks are skipped (as the original)
                continue
            if ann.get("iscrowd", 0):
                cid = -cid
            masks.append(m)
            ids.append(cid)
        if not masks:
            return np.zeros((height, width, 0), dtype=bool), np.zeros((0,), dtype=np.int32)
        return np.stack(masks, axis=2), np.array(ids, dtype=np.int32)

