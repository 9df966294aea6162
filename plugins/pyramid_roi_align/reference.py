"""The PyTorch reference of PyramidROIAlign (the semantics; contract: ``plugins/opdefs.py``)."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from ..reference import crop_and_resize, roi_levels


def pyramid_roi_align(boxes: Tensor, feature_maps: Sequence[Tensor], pool_size: int, image_size: int,
                      canonical_size: float = 224.0, canonical_level: int = 4) -> Tensor:
    """Crop each box from its FPN level (docs/model.md §3.8), batched.

    Args:
        boxes: ``[N, R, 4]`` normalized boxes.
        feature_maps: [P2, P3, P4, P5], each ``[N, C, H_l, W_l]``.
    Returns:
        ``[N, R, C, pool_size, pool_size]`` in the dtype of P2.
    """
    n, r = boxes.shape[:2]
    c = feature_maps[0].shape[1]
    levels = roi_levels(boxes, image_size, canonical_size, canonical_level)  # N,R
    out = feature_maps[0].new_zeros((n * r, c, pool_size, pool_size))
    flat_boxes = boxes.reshape(-1, 4)
    flat_levels = levels.reshape(-1)
    batch_ind = torch.arange(n, device=boxes.device).repeat_interleave(r)
    for i, fmap in enumerate(feature_maps):
        sel = torch.nonzero(flat_levels == i + 2).flatten()
        if sel.numel() == 0:
            continue
        out[sel] = crop_and_resize(fmap, flat_boxes[sel], batch_ind[sel], pool_size).to(out.dtype)
    return out.reshape(n, r, c, pool_size, pool_size)
