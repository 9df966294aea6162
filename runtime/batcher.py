"""One image batcher for calibration, evaluation, serving and benchmarks.

It reads images from an image folder, a COCO json / COCO root, a Cityscapes
root or any :class:`mrcnn_trt.data.base.Dataset`, molds them with the model's
own code (:func:`mrcnn_trt.model.molding.mold_batch`) and yields batches:

    for b in ImageBatcher("calib_images/", config, batch_size=8, sample=500, seed=0):
        b.images    # float32 [N,3,S,S] RGB 0..255, resized + zero padded
        b.windows   # float32 [N,4] (y1, x1, y2, x2) of each image in the padded square
        b.infos     # MoldInfo per image (original size, window, scale)
        b.indices   # dataset indices
        b.originals # the original HxWx3 uint8 images

Which images, in which order (each choice is explicit):

* default: every image, in the dataset's order;
* ``limit=N``: the first N images, in the dataset's order (evaluation);
* ``sample=N``: a fixed-seed random subset of N images (calibration), in a
  reproducible random order;
* ``shuffle=True``: every image (or the ``limit`` first) in a fixed-seed random order.

:func:`as_pairs` and :func:`pad_batch` normalize and pad batches for
networks with a fixed batch size (TensorRT calibrators, ONNX Runtime).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Iterable, Iterator, List, Optional, Tuple

import numpy as np

from mrcnn_trt.cli import progress as progress_bar
from mrcnn_trt.data import open_dataset
from mrcnn_trt.errors import UserError
from mrcnn_trt.model.molding import mold_batch


@dataclass
class Batch:
    images: np.ndarray
    windows: np.ndarray
    infos: list
    indices: List[int]
    originals: List[np.ndarray]


def select_indices(n: int, limit: Optional[int] = None, sample: Optional[int] = None, shuffle: bool = False,
                   seed: int = 0) -> List[int]:
    """Dataset indices for :class:`ImageBatcher` (see the module docstring)."""
    if limit is not None and sample is not None:
        raise ValueError("give limit (first N) or sample (random N), not both")
    for name, v in (("limit", limit), ("sample", sample)):
        if v is not None and v < 1:
            raise UserError(f"{name} must be >= 1, got {v}")
    if sample is not None:
        return [int(i) for i in np.random.default_rng(seed).permutation(n)[:sample]]
    order = np.arange(n if limit is None else min(limit, n))
    if shuffle:
        order = np.random.default_rng(seed).permutation(order)
    return [int(i) for i in order]


class ImageBatcher:
    def __init__(self, source, config, batch_size: int = 1, limit: Optional[int] = None,
                 sample: Optional[int] = None, shuffle: bool = False, seed: int = 0, split: str = "val",
                 skip_unreadable: bool = True, progress: Optional[str] = None):
        if batch_size < 1:
            raise UserError("batch size must be >= 1")
        self.dataset = open_dataset(source, split=split) if isinstance(source, str) else source
        self.config = config
        self.batch_size = int(batch_size)
        n = len(self.dataset)
        if n == 0:
            raise UserError(f"no images found in {source}")
        self.indices = select_indices(n, limit=limit, sample=sample, shuffle=shuffle, seed=seed)
        self.skip_unreadable = skip_unreadable
        self.progress = progress
        self.skipped: List[str] = []

    def __len__(self) -> int:
        return (len(self.indices) + self.batch_size - 1) // self.batch_size

    @property
    def num_images(self) -> int:
        return len(self.indices)

    def load(self, indices: Iterable[int]) -> Optional[Batch]:
        """Read and mold the images ``indices`` (unreadable ones are skipped and
        recorded in :attr:`skipped`, or raise without ``skip_unreadable``);
        None when none could be read."""
        idx, ims = [], []
        for i in indices:
            try:
                ims.append(self.dataset.load_image(i))
                idx.append(i)
            except (UserError, ValueError, OSError) as e:
                if not self.skip_unreadable:
                    raise
                self.skipped.append(str(e))
                print(f"warning: {e}; skipped", file=sys.stderr)
        if not ims:
            return None
        images, windows, infos = mold_batch(ims, self.config)
        return Batch(images, windows, infos, idx, ims)

    def chunks(self) -> List[List[int]]:
        """The dataset indices of each batch, in order."""
        return [self.indices[s:s + self.batch_size] for s in range(0, len(self.indices), self.batch_size)]

    def __iter__(self) -> Iterator[Batch]:
        chunks = self.chunks()
        if self.progress:
            chunks = progress_bar(chunks, total=len(chunks), desc=self.progress, unit="batch")
        for chunk in chunks:
            b = self.load(chunk)
            if b is not None:
                yield b


def as_pairs(batches: Iterable, image_size: int) -> Iterator[Tuple[np.ndarray, np.ndarray]]:
    """Normalize the accepted batch forms to (images [n,3,S,S], windows [n,4]) float32."""
    for b in batches:
        if hasattr(b, "images"):
            images, windows = b.images, getattr(b, "windows", None)
        elif isinstance(b, (tuple, list)) and len(b) == 2:
            images, windows = b
        else:
            images, windows = b, None
        images = np.ascontiguousarray(images, dtype=np.float32)
        if images.ndim != 4 or images.shape[1] != 3 or images.shape[2:] != (image_size, image_size):
            raise UserError(f"batch has shape {tuple(images.shape)}, expected [n,3,{image_size},{image_size}]")
        n = images.shape[0]
        if windows is None:
            windows = np.tile(np.array([[0, 0, image_size, image_size]], np.float32), (n, 1))
        windows = np.ascontiguousarray(windows, dtype=np.float32).reshape(-1, 4)
        if windows.shape[0] != n:
            raise UserError(f"batch has {n} images but {windows.shape[0]} windows")
        yield images, windows


def pad_batch(images: np.ndarray, windows: np.ndarray, batch: int) -> Tuple[np.ndarray, np.ndarray]:
    """Zero-pad a partial batch to ``batch`` images (whole-square windows)."""
    n = images.shape[0]
    if n > batch:
        raise UserError(f"batch of {n} images for a network with batch {batch}")
    if n == batch:
        return images, windows
    s = images.shape[-1]
    pad = batch - n
    images = np.concatenate([images, np.zeros((pad, 3, s, s), np.float32)])
    windows = np.concatenate([windows, np.tile(np.array([[0, 0, s, s]], np.float32), (pad, 1))])
    return images, windows
