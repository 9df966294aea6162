"""Cityscapes fine instance annotations (``leftImg8bit`` + ``gtFine`` folders).

Layout (as distributed)::

    root/leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    root/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_instanceIds.png   (16-bit)

Each pixel of an instanceIds image holds ``labelId * 1000 + k`` for pixel ``k`` of an
instance, or a plain label id (< 1000) elsewhere. For the 8 instance classes
(:mod:`mrcnn_trt.data.classmap`) a plain label id marks a *group* region ("cargroup",
crowds of persons...): these become ignore regions with the negative id
``-class_id``, like COCO crowds. Pixels of every other label are background.

Internal class ids are 1..8 in :data:`mrcnn_trt.config.CITYSCAPES_CLASS_NAMES` order;
``source_class_ids`` maps them to label ids (person 24 ... bicycle 33). ``image_id``
is the string ``<city>_<seq>_<frame>``. Instances are ordered by instance id.
"""
from __future__ import annotations

import glob
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import List, Optional, Tuple

import numpy as np
from PIL import Image

from mrcnn_trt.cli import progress
from mrcnn_trt.config import CITYSCAPES_CLASS_NAMES
from mrcnn_trt.errors import UserError

from .base import Dataset, ImageId
from .classmap import CITYSCAPES_INTERNAL_TO_LABEL, CITYSCAPES_LABEL_TO_INTERNAL

IMAGE_SUFFIX = "_leftImg8bit.png"
INSTANCE_SUFFIX = "_gtFine_instanceIds.png"
LABEL_SUFFIX = "_gtFine_labelIds.png"
POLYGON_SUFFIX = "_gtFine_polygons.json"


#: PIL modes an instanceIds image may have: 16-bit grey as distributed, or 8-bit grey
INSTANCE_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "L")
#: the label ids of cityscapesscripts' ``labels.py`` (0..33; -1, the license plate, cannot be stored)
MAX_LABEL_ID = 33


def read_instance_ids(path: str, expect_hw: Optional[Tuple[int, int]] = None) -> np.ndarray:
    """A ``*_gtFine_instanceIds.png`` as ``[H, W] int32``, checked: a readable
    single-channel image (no decompression bomb), of size ``expect_hw`` if given,
    every pixel a known id (a label id 0..33, or label id x 1000 + instance).
    Anything else is one :class:`UserError` line naming the file."""
    if not os.path.isfile(path):
        raise UserError(f"Cityscapes annotation not found: {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                mode, (w, h) = im.mode, im.size
                if mode not in INSTANCE_MODES:
                    raise UserError(f"{path} is a {mode} image: an instanceIds file holds one channel "
                                    f"(16-bit label id x 1000 + instance)")
                if expect_hw is not None and (h, w) != tuple(expect_hw):
                    raise UserError(f"{path} is {w}x{h} but its image is {expect_hw[1]}x{expect_hw[0]}")
                raw = np.array(im)
    except UserError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise UserError(f"{path} is not a usable instanceIds image: {e}") from None
    except Exception as e:  # noqa: BLE001 - any decoder failure of a damaged file
        raise UserError(f"{path} is not a readable instanceIds image ({type(e).__name__}: {e})") from None
    if raw.ndim != 2:
        raise UserError(f"{path} holds {raw.ndim}-dimensional data: an instanceIds file holds one channel")
    if raw.dtype.kind == "u" and raw.dtype.itemsize <= 2:    # the ids present, from a histogram (fast)
        present = np.flatnonzero(np.bincount(raw.ravel(), minlength=1))
    else:
        present = np.unique(raw)
    bad = present[((present > MAX_LABEL_ID) & (present < 1000)) | (present >= (MAX_LABEL_ID + 1) * 1000)
                  | (present < 0)]
    if bad.size:
        v = int(bad[0])
        y, x = np.argwhere(raw == v)[0]
        raise UserError(f"{path} has the id {v} at pixel (x={x}, y={y}): its label id {v // 1000 if v >= 1000 else v} "
                        f"is not a Cityscapes label (0..{MAX_LABEL_ID}; ids are label id or label id x 1000 + "
                        f"instance)")
    return raw.astype(np.int32)


def _image_hw(path: str) -> Optional[Tuple[int, int]]:
    """(h, w) of an image from its header; None if it cannot be read (it is then
    skipped and listed like any unreadable image when it is read)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as im:
                return im.size[1], im.size[0]
    except Exception:  # noqa: BLE001
        return None


def instances_from_ids(ids: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """``instanceIds [H, W]`` -> ``(masks [H, W, G] bool, class_ids [G] int32)``.

    Instances (id >= 1000 of an instance class) get their internal class id, group
    regions (id < 1000 equal to an instance class label id) the negative id; ordered
    by instance id.
    """
    masks, class_ids = [], []
    for v in np.unique(ids):
        v = int(v)
        if v >= 1000:
            cid = CITYSCAPES_LABEL_TO_INTERNAL.get(v // 1000)
        else:
            cid = CITYSCAPES_LABEL_TO_INTERNAL.get(v)
            cid = -cid if cid is not None else None
        if cid is None:
            continue
        masks.append(ids == v)
        class_ids.append(cid)
    h, w = ids.shape
    if not masks:
        return np.zeros((h, w, 0), dtype=bool), np.zeros((0,), dtype=np.int32)
    return np.stack(masks, axis=2), np.array(class_ids, dtype=np.int32)


class CityscapesDataset(Dataset):
    """Cityscapes (or a folder in its layout) for one split ("train", "val", "test").

    Args:
        root: folder holding ``leftImg8bit/`` and ``gtFine/``.
        split: the split folder name.
        require_annotations: if False, images without an instanceIds file are kept
            (with no instances), e.g. for the test split.
        check_annotations: read every instanceIds file when opening
            (:meth:`check_annotations`; default True).
    """

    name = "cityscapes"

    def __init__(self, root: str, split: str = "val", require_annotations: bool = True,
                 check_annotations: bool = True):
        self.root = os.fspath(root)
        self.split = split
        img_root = os.path.join(self.root, "leftImg8bit", split)
        if not os.path.isdir(img_root):
            raise UserError(f"not a Cityscapes folder: {img_root} does not exist")
        images = sorted(glob.glob(os.path.join(img_root, "*", "*" + IMAGE_SUFFIX)))
        if not images:
            raise UserError(f"no *{IMAGE_SUFFIX} images under {img_root}")
        self._images: List[str] = []
        self._gts: List[str] = []
        missing = []
        for p in images:
            city = os.path.basename(os.path.dirname(p))
            stem = os.path.basename(p)[: -len(IMAGE_SUFFIX)]
            gt = os.path.join(self.root, "gtFine", split, city, stem + INSTANCE_SUFFIX)
            if not os.path.isfile(gt):
                missing.append(gt)
                if require_annotations:
                    continue
            self._images.append(p)
            self._gts.append(gt)
        if require_annotations and missing:
            if not self._images:
                raise UserError(f"no gtFine instance annotations for the images under {img_root} "
                                f"(e.g. {missing[0]})")
            raise UserError(f"{len(missing)} image(s) of {img_root} have no gtFine annotation, "
                            f"e.g. {missing[0]}")
        super().__init__(CITYSCAPES_CLASS_NAMES, CITYSCAPES_INTERNAL_TO_LABEL)
        if check_annotations:
            self.check_annotations()

    def check_annotations(self) -> None:
        """Read every instanceIds file once (:func:`read_instance_ids`): readable, one
        channel, the size of its image, only known ids; the first bad one is one
        :class:`UserError` line. Done when the dataset is opened, before any inference.
        Files of images that cannot be read are not compared (those images are skipped)."""
        def check(pair):
            hw = _image_hw(pair[0])
            if hw is not None:
                read_instance_ids(pair[1], hw)

        pairs = [(img, gt) for img, gt in zip(self._images, self._gts) if os.path.isfile(gt)]
        pool = ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1))   # PNG decoding frees the GIL
        try:
            done = pool.map(check, pairs)
            for _ in progress(done, total=len(pairs), desc="checking gtFine", unit="file") if len(pairs) >= 50 \
                    else done:
                pass    # the first bad file (in dataset order) raises here
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def __len__(self) -> int:
        return len(self._images)

    def image_path(self, i: int) -> str:
        return self._images[i]

    def gt_path(self, i: int) -> str:
        """The ``*_gtFine_instanceIds.png`` of image ``i``."""
        return self._gts[i]

    def image_id(self, i: int) -> ImageId:
        return os.path.basename(self._images[i])[: -len(IMAGE_SUFFIX)]

    def city(self, i: int) -> str:
        return os.path.basename(os.path.dirname(self._images[i]))

    def load_annotations(self, i: int, height: int, width: int) -> Tuple[np.ndarray, np.ndarray]:
        gt = self._gts[i]
        if not os.path.isfile(gt):
            return np.zeros((height, width, 0), dtype=bool), np.zeros((0,), dtype=np.int32)
        return instances_from_ids(read_instance_ids(gt, (height, width)))
