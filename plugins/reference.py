"""Pure-PyTorch building blocks of the op references: the PyTorch twin of ``common/mrcnn_math.h``.

Box decoding, clipping, the +1 IoU, the stable score sort, greedy NMS, TF
``crop_and_resize`` and the FPN level of a box. Each op's reference
(``plugins/<op>/reference.py``) is written with them; together they define the
semantics that the C++ CPU kernels, the CUDA kernels, the ONNX Runtime custom
ops and the TensorRT plugins must reproduce (``plugins/opdefs.py`` summarises
them). They follow ``docs/model.md`` §3.3-§3.9 exactly, extended to batches of
N >= 1 images with fixed-size, zero-padded outputs plus a per-image count.

Conventions
-----------
* Boxes are ``(y1, x1, y2, x2)``. "Pixel" boxes live in the padded
  ``S x S`` network input; "normalized" boxes are pixel / S (not / (S-1)).
* All box arithmetic is float32 (FP16 inputs are upcast).
* NMS uses the legacy "+1" areas and suppresses a box when its IoU with a kept
  box is strictly greater than the threshold (the original CUDA path).
* Sorting by score is stable and descending: ties keep the lower index first.
  NaN scores are treated as -inf (never preferred).
* Rounding is half-to-even (``torch.round``).
"""
from __future__ import annotations

from typing import List

import numpy as np
import torch
from torch import Tensor


# --------------------------------------------------------------------------- boxes
def apply_box_deltas(boxes: Tensor, deltas: Tensor) -> Tensor:
    """Apply (dy, dx, log dh, log dw) to boxes ``[..., 4]`` (docs/model.md §3.4).

    Deltas must already be multiplied by the std devs. Works in any coordinate
    frame (pixels for the RPN, normalized for the detection layer).
    """
    boxes = boxes.float()
    deltas = deltas.float()
    height = boxes[..., 2] - boxes[..., 0]
    width = boxes[..., 3] - boxes[..., 1]
    center_y = boxes[..., 0] + 0.5 * height
    center_x = boxes[..., 1] + 0.5 * width
    center_y = center_y + deltas[..., 0] * height
    center_x = center_x + deltas[..., 1] * width
    height = height * torch.exp(deltas[..., 2])
    width = width * torch.exp(deltas[..., 3])
    y1 = center_y - 0.5 * height
    x1 = center_x - 0.5 * width
    y2 = y1 + height
    x2 = x1 + width
    return torch.stack([y1, x1, y2, x2], dim=-1)


def clip_boxes(boxes: Tensor, window: Tensor) -> Tensor:
    """Clip ``[..., 4]`` boxes to ``window`` (y1, x1, y2, x2), broadcastable to ``[..., 4]``.

    y coordinates are clamped to [wy1, wy2] and x coordinates to [wx1, wx2]
    (docs/model.md §3.4: with window = (0, 0, S, S) for proposals, the image window for detections).
    """
    window = window.to(boxes.dtype)
    wy1, wx1, wy2, wx2 = window[..., 0], window[..., 1], window[..., 2], window[..., 3]
    y1 = torch.minimum(torch.maximum(boxes[..., 0], wy1), wy2)
    x1 = torch.minimum(torch.maximum(boxes[..., 1], wx1), wx2)
    y2 = torch.minimum(torch.maximum(boxes[..., 2], wy1), wy2)
    x2 = torch.minimum(torch.maximum(boxes[..., 3], wx1), wx2)
    return torch.stack([y1, x1, y2, x2], dim=-1)


def box_iou_plus1(a: Tensor, b: Tensor) -> Tensor:
    """IoU matrix ``[A, B]`` with the legacy +1 pixel convention (docs/model.md §3.5)."""
    a = a.float()
    b = b.float()
    area_a = (a[:, 3] - a[:, 1] + 1) * (a[:, 2] - a[:, 0] + 1)
    area_b = (b[:, 3] - b[:, 1] + 1) * (b[:, 2] - b[:, 0] + 1)
    xx1 = torch.maximum(a[:, None, 1], b[None, :, 1])
    yy1 = torch.maximum(a[:, None, 0], b[None, :, 0])
    xx2 = torch.minimum(a[:, None, 3], b[None, :, 3])
    yy2 = torch.minimum(a[:, None, 2], b[None, :, 2])
    w = torch.clamp(xx2 - xx1 + 1, min=0)
    h = torch.clamp(yy2 - yy1 + 1, min=0)
    inter = w * h
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def sort_scores_desc(scores: Tensor) -> Tensor:
    """Indices that sort ``scores`` [K] descending; stable; NaN last (as -inf)."""
    s = torch.nan_to_num(scores.float(), nan=float("-inf"))
    return torch.sort(s, descending=True, stable=True).indices


def nms(boxes: Tensor, scores: Tensor, threshold: float, max_keep: int | None = None) -> Tensor:
    """Greedy NMS with +1 areas; returns kept indices (int64) in descending score order.

    A box is suppressed when IoU with an already kept box is > ``threshold``
    (compared in float32). ``max_keep`` stops early after that many boxes.
    """
    k = boxes.shape[0]
    if k == 0:
        return torch.zeros(0, dtype=torch.int64, device=boxes.device)
    order = sort_scores_desc(scores)
    b = boxes[order].float()
    over = (box_iou_plus1(b, b) > torch.tensor(threshold, dtype=torch.float32)).cpu().numpy()

    suppressed = np.zeros(k, dtype=bool)
    keep: List[int] = []
    limit = k if max_keep is None else max_keep
    for i in range(k):
        if suppressed[i]:
            continue
        keep.append(i)
        if len(keep) >= limit:
            break
        suppressed |= over[i]
    return order[torch.tensor(keep, dtype=torch.int64, device=order.device)]


# --------------------------------------------------------------------------- ROI crops
def crop_and_resize(image: Tensor, boxes: Tensor, box_ind: Tensor, crop_size: int,
                    extrapolation_value: float = 0.0) -> Tensor:
    """TF ``crop_and_resize`` (bilinear), docs/model.md §3.8.

    Args:
        image: ``[N, C, H, W]`` feature maps.
        boxes: ``[K, 4]`` normalized (y1, x1, y2, x2): 0 maps to index 0 and 1
            to index H-1 (corner aligned).
        box_ind: ``[K]`` image index of each box.
        crop_size: P >= 2; sample i of P sits at
            ``y1*(H-1) + i*((y2-y1)*(H-1)/(P-1))``.
    Returns:
        ``[K, C, P, P]``; samples outside [0, H-1] x [0, W-1] are
        ``extrapolation_value``. Computed in float32, cast to ``image.dtype``.
    """
    n, c, h, w = image.shape
    k = boxes.shape[0]
    p = int(crop_size)
    if k == 0:
        return image.new_zeros((0, c, p, p))
    feat = image.float().permute(0, 2, 3, 1)  # N,H,W,C
    boxes = boxes.float()
    y1, x1, y2, x2 = boxes[:, 0:1], boxes[:, 1:2], boxes[:, 2:3], boxes[:, 3:4]
    idx = torch.arange(p, dtype=torch.float32, device=image.device)[None, :]
    height_scale = (y2 - y1) * (h - 1) / (p - 1)
    width_scale = (x2 - x1) * (w - 1) / (p - 1)
    in_y = y1 * (h - 1) + idx * height_scale  # K,P
    in_x = x1 * (w - 1) + idx * width_scale   # K,P
    valid_y = (in_y >= 0) & (in_y <= h - 1)  # False for NaN
    valid_x = (in_x >= 0) & (in_x <= w - 1)
    in_y = torch.where(valid_y, in_y, torch.zeros_like(in_y))  # keep gather indices in range
    in_x = torch.where(valid_x, in_x, torch.zeros_like(in_x))
    top = torch.floor(in_y)
    left = torch.floor(in_x)
    y_lerp = in_y - top
    x_lerp = in_x - left
    top_i = top.clamp(0, h - 1).long()
    bot_i = torch.ceil(in_y).clamp(0, h - 1).long()
    left_i = left.clamp(0, w - 1).long()
    right_i = torch.ceil(in_x).clamp(0, w - 1).long()
    b = box_ind.long()[:, None, None]
    tl = feat[b, top_i[:, :, None], left_i[:, None, :]]   # K,P,P,C
    tr = feat[b, top_i[:, :, None], right_i[:, None, :]]
    bl = feat[b, bot_i[:, :, None], left_i[:, None, :]]
    br = feat[b, bot_i[:, :, None], right_i[:, None, :]]
    xl = x_lerp[:, None, :, None]
    yl = y_lerp[:, :, None, None]
    top_v = tl + (tr - tl) * xl
    bot_v = bl + (br - bl) * xl
    out = top_v + (bot_v - top_v) * yl
    valid = (valid_y[:, :, None] & valid_x[:, None, :])[..., None]
    out = torch.where(valid, out, torch.full_like(out, float(extrapolation_value)))
    return out.permute(0, 3, 1, 2).contiguous().to(image.dtype)


def roi_levels(boxes: Tensor, image_size: int, canonical_size: float = 224.0,
               canonical_level: int = 4, min_level: int = 2, max_level: int = 5) -> Tensor:
    """FPN level of each normalized box ``[..., 4]`` (docs/model.md §3.7): int64.

    ``round(k0 + log2(sqrt(h*w) / (canonical_size / image_size)))`` clamped to
    [min_level, max_level]; round half to even; non-finite values (zero or
    negative area) give ``min_level``.
    """
    boxes = boxes.float()
    h = boxes[..., 2] - boxes[..., 0]
    w = boxes[..., 3] - boxes[..., 1]
    level = canonical_level + torch.log2(torch.sqrt(h * w) / (canonical_size / image_size))
    level = torch.where(torch.isfinite(level), torch.round(level), torch.full_like(level, min_level))
    return level.clamp(min_level, max_level).long()
