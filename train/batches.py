"""What a training step reads: prepared images in seeded, reproducible batches.

Every random draw of an image (flip, RPN anchor subsampling, ROI sampling) is
seeded by ``--seed`` and the image's key (its place in the run), so it is the
same whichever batch or process the image lands in. Training images get the
horizontal flip, validation images do not.
"""
from __future__ import annotations

from typing import List, Sequence

import numpy as np
import torch

from ..model.anchors import generate_pyramid_anchors
from ..threads import worker_init
from .targets import TrainSample, prepare_sample


class PreparedData(torch.utils.data.Dataset):
    """Dataset of prepared :class:`TrainSample` (or ``None`` for unusable images).

    Items are addressed by ``(index, key)`` pairs; ``key`` seeds the image's
    random generator (flip + RPN subsampling), so a run is reproducible
    whatever the number of loader workers.
    """

    def __init__(self, dataset, config, seed: int, augment: bool):
        self.dataset = dataset
        self.config = config
        self.seed = int(seed)
        self.augment = augment
        self.anchors = generate_pyramid_anchors(config)

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, item):
        index, key = item
        rng = np.random.default_rng([self.seed, int(key), int(index), int(self.augment)])
        sample = prepare_sample(self.dataset[int(index)], self.config, self.anchors, rng, augment=self.augment)
        if sample is not None:
            sample.key = int(key)
        return sample


class _KeySampler(torch.utils.data.Sampler):
    def __init__(self, items):
        self.items = list(items)

    def __iter__(self):
        return iter(self.items)

    def __len__(self):
        return len(self.items)


def _collate(batch):
    return [b for b in batch if b is not None]


def make_loader(data: PreparedData, items: Sequence, batch_size: int, workers: int):
    """Batches of ``items``; ``workers`` loader processes compute with one thread each
    (:func:`mrcnn_trt.threads.worker_init`), so they do not oversubscribe the cores."""
    return torch.utils.data.DataLoader(data, batch_size=batch_size, sampler=_KeySampler(items),
                                       num_workers=workers, collate_fn=_collate,
                                       worker_init_fn=worker_init if workers else None,
                                       persistent_workers=False, prefetch_factor=4 if workers else None)


def epoch_items(n: int, steps: int, batch: int, seed: int, epoch: int) -> List[tuple]:
    """``steps * batch`` (index, key) pairs: seeded permutations of 0..n-1, repeated as needed."""
    rng = np.random.default_rng([seed, epoch, 7])
    need = steps * batch
    idx = []
    while len(idx) < need:
        idx.extend(rng.permutation(n).tolist())
    return [(i, epoch * 1_000_003 + k) for k, i in enumerate(idx[:need])]


class Subset:
    """A view of some indices of a dataset (for a held-out validation fraction)."""

    def __init__(self, dataset, indices):
        self.dataset = dataset
        self.indices = [int(i) for i in indices]
        self.class_names = getattr(dataset, "class_names", None)

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, i):
        return self.dataset[self.indices[i]]


def train_rng(seed: int, sample: TrainSample) -> np.random.Generator:
    """The generator of a training image's ROI sampling (by its key: the same in any batch or process)."""
    return np.random.default_rng([seed, sample.key, 1])


def val_item(i: int) -> tuple:
    """The ``(index, key)`` item of validation image ``i`` (its key is its place: no epoch)."""
    return (int(i), int(i))


def val_rng(seed: int, sample: TrainSample) -> np.random.Generator:
    """The generator of a validation image's ROI sampling (by its key: the same in any batch or process)."""
    return np.random.default_rng([seed, 99, int(sample.key)])
