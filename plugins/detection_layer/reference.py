"""The PyTorch reference of DetectionLayer (the semantics; contract: ``plugins/opdefs.py``)."""
from __future__ import annotations

from typing import Sequence, Tuple

import torch
from torch import Tensor

from ..reference import apply_box_deltas, clip_boxes, nms, sort_scores_desc


def detection_layer(rois: Tensor, roi_count: Tensor, probs: Tensor, deltas: Tensor, window: Tensor,
                    num_classes: int, min_confidence: float, nms_threshold: float, max_instances: int,
                    bbox_std_dev: Sequence[float], image_size: int) -> Tuple[Tensor, Tensor]:
    """Refine, filter and per-class NMS the classifier output (docs/model.md §3.9), batched.

    Args:
        rois: ``[N, R, 4]`` normalized proposals; rows >= ``roi_count[i]`` are ignored.
        roi_count: ``[N]`` valid rows per image.
        probs: ``[N, R, K]`` class probabilities.
        deltas: ``[N, R, K, 4]`` class-specific deltas (not yet scaled).
        window: ``[N, 4]`` image window (y1, x1, y2, x2) in padded pixels.
    Returns:
        detections ``[N, max_instances, 6]`` float32 rows (y1, x1, y2, x2, class, score)
        in rounded padded pixels, sorted by score; count ``[N]`` int32.
    """
    n, r, k = probs.shape
    if k != num_classes:
        raise ValueError(f"probs have {k} classes, num_classes is {num_classes}")
    dev = probs.device
    std = torch.tensor(bbox_std_dev, dtype=torch.float32, device=dev)
    thr = torch.tensor(min_confidence, dtype=torch.float32)
    dets = torch.zeros((n, max_instances, 6), dtype=torch.float32, device=dev)
    count = torch.zeros((n,), dtype=torch.int32, device=dev)
    for i in range(n):
        m = max(0, min(int(roi_count[i]), r))  # counts outside [0, R] are clamped
        if m == 0:
            continue
        p = probs[i, :m].float()
        class_ids = torch.argmax(p, dim=1)
        ar = torch.arange(m, device=dev)
        class_scores = p[ar, class_ids]
        d = deltas[i, :m].float()[ar, class_ids] * std
        refined = apply_box_deltas(rois[i, :m].float(), d) * float(image_size)
        refined = clip_boxes(refined, window[i].float())
        refined = torch.round(refined)
        keep_mask = class_ids > 0
        if min_confidence > 0:
            keep_mask &= class_scores >= thr
        keep = torch.nonzero(keep_mask).flatten()
        if keep.numel() == 0:
            continue
        survivors = []
        for cls in torch.unique(class_ids[keep]).tolist():  # ascending
            ixs = keep[class_ids[keep] == cls]
            kept = nms(refined[ixs], class_scores[ixs], nms_threshold)
            survivors.append(ixs[kept])
        survivors = torch.sort(torch.cat(survivors)).values  # ascending ROI index
        top = sort_scores_desc(class_scores[survivors])[:max_instances]
        sel = survivors[top]
        c = sel.numel()
        dets[i, :c, :4] = refined[sel]
        dets[i, :c, 4] = class_ids[sel].float()
        dets[i, :c, 5] = class_scores[sel]
        count[i] = c
    return dets, count
