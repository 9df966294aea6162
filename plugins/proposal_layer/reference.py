"""The PyTorch reference of ProposalLayer (the semantics; contract: ``plugins/opdefs.py``)."""
from __future__ import annotations

from typing import Sequence, Tuple

import torch
from torch import Tensor

from ..reference import apply_box_deltas, clip_boxes, nms, sort_scores_desc


def proposal_layer(scores: Tensor, deltas: Tensor, anchors: Tensor, pre_nms_topk: int, post_nms_topk: int,
                   nms_threshold: float, rpn_bbox_std_dev: Sequence[float], image_size: int
                   ) -> Tuple[Tensor, Tensor, Tensor]:
    """RPN proposals (docs/model.md §3.6), batched and zero-padded.

    Args:
        scores: ``[N, A]`` foreground probabilities.
        deltas: ``[N, A, 4]`` raw RPN deltas (not yet scaled by the std devs).
        anchors: ``[A, 4]`` pixel anchors.
    Returns:
        rois ``[N, post_nms_topk, 4]`` normalized (float32), count ``[N]`` int32,
        anchor_index ``[N, post_nms_topk]`` int64 (the anchor each proposal came
        from; -1 in padded rows).
    """
    n, a = scores.shape
    dev = scores.device
    std = torch.tensor(rpn_bbox_std_dev, dtype=torch.float32, device=dev)
    rois = torch.zeros((n, post_nms_topk, 4), dtype=torch.float32, device=dev)
    count = torch.zeros((n,), dtype=torch.int32, device=dev)
    anchor_index = torch.full((n, post_nms_topk), -1, dtype=torch.int64, device=dev)
    k = min(pre_nms_topk, a)
    window = torch.tensor([0.0, 0.0, float(image_size), float(image_size)], device=dev)
    for i in range(n):
        order = sort_scores_desc(scores[i])[:k]
        d = deltas[i, order].float() * std
        boxes = apply_box_deltas(anchors[order].float(), d)
        boxes = clip_boxes(boxes, window)
        # already sorted: NMS on positions 0..k-1 with decreasing pseudo-scores keeps the order
        keep = nms(boxes, -torch.arange(k, dtype=torch.float32, device=dev), nms_threshold, post_nms_topk)
        m = keep.numel()
        rois[i, :m] = boxes[keep] / float(image_size)
        count[i] = m
        anchor_index[i, :m] = order[keep]
    return rois, count, anchor_index
