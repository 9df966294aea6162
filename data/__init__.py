"""Datasets behind one interface (:mod:`.base`): COCO (:mod:`.coco`), Cityscapes
(:mod:`.cityscapes`), plain image folders, and the synthetic shapes generator
(:mod:`.synthetic`, command ``mrcnn-make-dataset``).

:func:`open_dataset` picks the loader from a path.
"""
from __future__ import annotations

import os
from typing import Optional

from mrcnn_trt.errors import UserError

from .base import Dataset, ImageFolderDataset, Sample, extract_bboxes, load_rgb_image  # noqa: F401
from .cityscapes import CityscapesDataset
from .coco import CocoDataset


def detect_format(path: str) -> str:
    """``"coco"``, ``"cityscapes"`` or ``"images"`` for a dataset path (see :func:`open_dataset`)."""
    if os.path.isfile(path):
        return "coco" if path.endswith(".json") else "images"
    if not os.path.isdir(path):
        raise UserError(f"dataset path not found: {path}")
    if os.path.isdir(os.path.join(path, "leftImg8bit")):
        return "cityscapes"
    if os.path.isdir(os.path.join(path, "annotations")):
        return "coco"
    return "images"


def open_dataset(path: str, split: str = "val", fmt: Optional[str] = None, **kw) -> Dataset:
    """Open a dataset:

    - ``path/leftImg8bit`` exists -> :class:`~.cityscapes.CityscapesDataset` (``split``);
    - ``path/annotations`` exists -> :meth:`~.coco.CocoDataset.from_root`
      (``annotations/instances_<split>.json``);
    - ``path`` is a ``.json`` file -> :class:`~.coco.CocoDataset` (images found next to it);
    - otherwise a folder (or a file) of images without annotations.
    """
    fmt = fmt or detect_format(path)
    if fmt == "cityscapes":
        return CityscapesDataset(path, split, **kw)
    if fmt == "coco":
        if os.path.isfile(path):
            return CocoDataset(path, kw.pop("image_dir", None), **kw)
        return CocoDataset.from_root(path, split, **kw)
    if fmt == "images":
        return ImageFolderDataset(path, **kw)
    raise UserError(f"unknown dataset format {fmt!r}: use coco, cityscapes or images")
