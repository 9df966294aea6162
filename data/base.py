"""The dataset interface shared by every loader (COCO, Cityscapes, image folders).

A dataset is an indexable collection of :class:`Sample` objects::

    ds = CocoDataset.from_root("shapes", split="val")
    len(ds)              # number of images
    s = ds[0]            # Sample: image, masks, class_ids, boxes, image_id, path, original_size
    ds.class_names       # ("BG", "circle", ...): index = internal class id
    ds.source_class_ids  # {internal id: dataset category id (COCO) / label id (Cityscapes)}
    ds.image_ids         # dataset-native ids (COCO int ids, Cityscapes "city_seq_frame")
    ds.load_image(0)     # just the RGB image (inference without annotations)

Conventions (those of the original ``Dataset.load_mask`` / ``utils.extract_bboxes``,
docs/model.md §4.1):

- ``image``: ``[H, W, 3] uint8`` RGB. Grayscale, palette, RGBA/LA (alpha dropped),
  CMYK and 16-bit images are converted; EXIF orientation is *not* applied (COCO and
  Cityscapes annotations refer to the stored pixel grid).
- ``masks``: ``[H, W, G] bool``, one channel per instance.
- ``class_ids``: ``[G] int32`` internal ids ``1..K-1``; crowd (COCO ``iscrowd``) and
  group/ignore regions (Cityscapes ids < 1000 of an instance class) have the
  **negative** id ``-class_id``.
- ``boxes``: ``[G, 4] int32`` ``(y1, x1, y2, x2)`` from the masks, with exclusive
  ``y2``/``x2`` (last pixel + 1); all zeros for an empty mask.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Sequence, Tuple, Union

import numpy as np

from mrcnn_trt.errors import UserError
from mrcnn_trt.imageio import IMAGE_EXTENSIONS, load_rgb_image, to_rgb_uint8  # noqa: F401 (re-exported)

ImageId = Union[int, str]



@dataclass
class Sample:
    """One image with its instance annotations (see the module docstring for conventions)."""

    image: np.ndarray                # [H, W, 3] uint8 RGB
    masks: np.ndarray                # [H, W, G] bool
    class_ids: np.ndarray            # [G] int32, internal ids; negative = crowd / ignore region
    boxes: np.ndarray                # [G, 4] int32 (y1, x1, y2, x2), y2/x2 exclusive
    image_id: ImageId                # the dataset's own id
    path: str = ""                   # image file
    original_size: Tuple[int, int] = (0, 0)  # (h, w) of the stored image
    extra: Dict = field(default_factory=dict)


def extract_bboxes(masks: np.ndarray) -> np.ndarray:
    """Boxes ``[G, 4] int32 (y1, x1, y2, x2)`` of ``masks [H, W, G]``.

    ``y2``/``x2`` are exclusive (last mask pixel + 1), as in the original
    ``utils.extract_bboxes``; a box is all zeros if its mask is empty.
    """
    g = masks.shape[-1]
    boxes = np.zeros((g, 4), dtype=np.int32)
    for i in range(g):
        m = masks[:, :, i]
        rows = np.flatnonzero(m.any(axis=1))
        if rows.size == 0:
            continue
        cols = np.flatnonzero(m.any(axis=0))
        boxes[i] = (rows[0], cols[0], rows[-1] + 1, cols[-1] + 1)
    return boxes


class Dataset:
    """Base class: subclasses fill ``_class_names``, ``_source_class_ids`` and
    implement ``__len__``, ``image_path(i)``, ``image_id(i)`` and
    ``load_annotations(i, h, w) -> (masks, class_ids)``."""

    name = "dataset"

    def __init__(self, class_names: Sequence[str], source_class_ids: Dict[int, object]):
        if not class_names or class_names[0] != "BG":
            raise ValueError("class_names must start with 'BG'")
        self._class_names = tuple(class_names)
        self._source_class_ids = dict(source_class_ids)

    # -------------------------------------------------------------- interface
    def __len__(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def image_path(self, i: int) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def image_id(self, i: int) -> ImageId:  # pragma: no cover - abstract
        raise NotImplementedError

    def load_annotations(self, i: int, height: int, width: int) -> Tuple[np.ndarray, np.ndarray]:
        """``(masks [H, W, G] bool, class_ids [G] int32)`` of image ``i``."""
        return np.zeros((height, width, 0), dtype=bool), np.zeros((0,), dtype=np.int32)

    # -------------------------------------------------------------- provided
    @property
    def class_names(self) -> Tuple[str, ...]:
        """Class names by internal id; index 0 is ``"BG"``."""
        return self._class_names

    @property
    def num_classes(self) -> int:
        return len(self._class_names)

    @property
    def source_class_ids(self) -> Dict[int, object]:
        """Internal id (1..K-1) -> dataset category id (COCO) or label id (Cityscapes)."""
        return dict(self._source_class_ids)

    @property
    def image_ids(self) -> List[ImageId]:
        return [self.image_id(i) for i in range(len(self))]

    def index_of(self, image_id: ImageId) -> int:
        """Position of a dataset image id (KeyError if absent)."""
        if not hasattr(self, "_index_cache"):
            self._index_cache = {iid: i for i, iid in enumerate(self.image_ids)}
        return self._index_cache[image_id]

    def load_image(self, i: int) -> np.ndarray:
        """The RGB image ``[H, W, 3] uint8`` of item ``i``."""
        return load_rgb_image(self.image_path(self._check_index(i)))

    def __getitem__(self, i: int) -> Sample:
        i = self._check_index(i)
        image = self.load_image(i)
        h, w = image.shape[:2]
        masks, class_ids = self.load_annotations(i, h, w)
        return Sample(
            image=image,
            masks=masks,
            class_ids=class_ids.astype(np.int32),
            boxes=extract_bboxes(masks),
            image_id=self.image_id(i),
            path=self.image_path(i),
            original_size=(h, w),
        )

    def __iter__(self) -> Iterator[Sample]:
        for i in range(len(self)):
            yield self[i]

    def _check_index(self, i: int) -> int:
        n = len(self)
        if not isinstance(i, (int, np.integer)):
            raise TypeError(f"dataset index must be an int, got {type(i).__name__}")
        i = int(i)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"index {i} out of range for a dataset of {n} images")
        return i

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} images, {self.num_classes - 1} classes)"


class ImageFolderDataset(Dataset):
    """Images of a folder (or a list of files) without annotations: every Sample
    has zero instances. ``image_id`` is the file name."""

    name = "images"

    def __init__(self, paths: Union[str, Sequence[str]], class_names: Sequence[str] = ("BG",)):
        if isinstance(paths, (str, os.PathLike)):
            root = os.fspath(paths)
            if os.path.isdir(root):
                files = sorted(
                    os.path.join(root, f) for f in os.listdir(root)
                    if f.lower().endswith(IMAGE_EXTENSIONS) and not f.startswith(".")
                )
                if not files:
                    raise UserError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in folder {root}")
            elif os.path.isfile(root):
                files = [root]
            else:
                raise UserError(f"no such image file or folder: {root}")
        else:
            files = [os.fspath(p) for p in paths]
        super().__init__(class_names, {i: i for i in range(1, len(class_names))})
        self._paths = files

    def __len__(self) -> int:
        return len(self._paths)

    def image_path(self, i: int) -> str:
        return self._paths[i]

    def image_id(self, i: int) -> ImageId:
        return os.path.basename(self._paths[i])
