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
- instances whose mask is empty (or smaller than 1 pixel after decoding) are skipped;
- the file is checked when it is opened, before any inference (:mod:`.coco_checks`): a
  malformed entry (ids, file names, polygons far outside the image, RLE of another size
  or not adding up, undecodable compressed RLE, image files of another size) is one
  :class:`~mrcnn_trt.errors.UserError` line naming it.

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
from mrcnn_trt.fileio import read_json

from .base import Dataset, ImageId
from .coco_checks import annotation_problem, check_coco_dict, check_image_sizes  # noqa: F401 (annotation_problem re-exported)


def _quiet_coco(annotation_file: str):
    """A checked ``pycocotools.coco.COCO`` of ``annotation_file`` (without its progress
    prints): the file is read with :func:`mrcnn_trt.fileio.read_json` and refused with
    one line unless it passes :func:`.coco_checks.check_coco_dict`."""
    from pycocotools.coco import COCO

    if not os.path.isfile(annotation_file):
        raise UserError(f"COCO annotation file not found: {annotation_file}")
    data = read_json(annotation_file)
    check_coco_dict(data, annotation_file)
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


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


class CocoDataset(Dataset):
    """A COCO instances file plus the folder of its images.

    Args:
        annotation_file: ``instances_<split>.json``.
        image_dir: folder holding the images' ``file_name``s.
        class_ids: optional subset of COCO category ids to load (default: all).
        all_images: include images without annotations (default: the original's union
            over categories, which leaves them out).
        check_files: compare each image file's size with the annotation file's
            ``height``/``width`` when opening (reads the headers only; default True).

    The annotation file is checked when it is opened (:mod:`.coco_checks`): a malformed
    entry is refused with one :class:`~mrcnn_trt.errors.UserError` line naming it.
    """

    name = "coco"

    def __init__(self, annotation_file: str, image_dir: Optional[str] = None,
                 class_ids: Optional[Sequence[int]] = None, all_images: bool = False,
                 split: Optional[str] = None, check_files: bool = True):
        self.annotation_file = os.fspath(annotation_file)
        self.coco = _quiet_coco(self.annotation_file)   # checked: one line naming a bad entry
        coco = self.coco
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
        if check_files:
            check_image_sizes((coco.imgs[i] for i in ids), self.image_dir, self.annotation_file)

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

