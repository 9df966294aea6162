"""One image batcher for calibration, evaluation and benchmarks.

It reads images from an image folder, a COCO json / COCO root, a Cityscapes
root or any :class:`mrcnn_trt.data.base.Dataset`, molds them with the model's
own code (:func:`mrcnn_trt.model.molding.mold_batch`) and yields batches:

    for b in ImageBatcher("calib_images/", config, batch_size=8, count=500, seed=0):
        b.images    # float32 [N,3,S,S] RGB 0..255, resized + zero padded
        b.windows   # float32 [N,4] (y1, x1, y2, x2) of each image in the padded square
        b.infos     # MoldInfo per image (original size, window, scale)
        b.indices   # dataset indices
        b.originals # the original HxWx3 uint8 images

With ``count`` a fixed-seed random subset of that many images is taken (in a
reproducible order); ``shuffle`` alone permutes all of them.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Iterator, List, Optional, Union

import numpy as np

from .errors import UserError


@dataclass
class Batch:
    images: np.ndarray
    windows: np.ndarray
    infos: list
    indices: List[int]
    originals: List[np.ndarray]


class ImageBatcher:
    def __init__(self, source, config, batch_size: int = 1, count: Optional[int] = None, shuffle: bool = False,
                 seed: int = 0, split: str = "val", skip_unreadable: bool = True, progress: Optional[str] = None):
        from .data import open_dataset

        if batch_size < 1:
            raise UserError("batch size must be >= 1")
        self.dataset = open_dataset(source, split=split) if isinstance(source, str) else source
        self.config = config
        self.batch_size = int(batch_size)
        n = len(self.dataset)
        if n == 0:
            raise UserError(f"no images found in {source}")
        order = np.arange(n)
        if count is not None or shuffle:
            order = np.random.default_rng(seed).permutation(n)
        if count is not None:
            if count < 1:
                raise UserError("count must be >= 1")
            order = order[:count]
        self.order = [int(i) for i in order]
        self.skip_unreadable = skip_unreadable
        self.progress = progress
        self.skipped: List[str] = []

    def __len__(self) -> int:
        return (len(self.order) + self.batch_size - 1) // self.batch_size

    @property
    def num_images(self) -> int:
        return len(self.order)

    def __iter__(self) -> Iterator[Batch]:
        from .cli import progress as progress_bar
        from .model.molding import mold_batch

        chunks = range(0, len(self.order), self.batch_size)
        if self.progress:
            chunks = progress_bar(chunks, total=len(self), desc=self.progress, unit="batch")
        for start in chunks:
            idx, ims = [], []
            for i in self.order[start:start + self.batch_size]:
                try:
                    ims.append(self.dataset.load_image(i))
                    idx.append(i)
                except (UserError, ValueError, OSError) as e:
                    if not self.skip_unreadable:
                        raise
                    self.skipped.append(str(e))
                    print(f"warning: {e}; skipped", file=sys.stderr)
            if not ims:
                continue
            images, windows, infos = mold_batch(ims, self.config)
            yield Batch(images, windows, infos, idx, ims)
