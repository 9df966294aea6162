"""The five Mask R-CNN losses (docs/model.md §4.5), batched over N images.

Every loss is a mean over the elements that take part in it, pooled over the
whole batch (not a mean of per-image means). When nothing takes part (no
anchor / ROI / positive) the loss is ``0`` computed from the predictions
(``pred.sum() * 0``), so it is a differentiable scalar and ``backward()`` works
(with zero gradient).

The mask loss is computed from the mask head's **logits** with
``binary_cross_entropy_with_logits``: mathematically the original's
``binary_cross_entropy(sigmoid(x))`` but numerically stable for saturated
pixels (the sigmoid version clamps ``log`` at -100).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

LOSS_NAMES = ("rpn_class", "rpn_bbox", "mrcnn_class", "mrcnn_bbox", "mrcnn_mask")


def _zero(t: torch.Tensor) -> torch.Tensor:
    return t.sum() * 0.0


def rpn_class_loss(rpn_match: torch.Tensor, rpn_logits: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the RPN logits ``[N, A, 2]`` over the anchors with
    ``rpn_match`` ``[N, A]`` != 0; target 1 for positives (match 1), 0 for negatives."""
    match = rpn_match.to(rpn_logits.device).reshape(rpn_logits.shape[:2])
    sel = match != 0
    if not bool(sel.any()):
        return _zero(rpn_logits)
    target = (match[sel] == 1).long()
    return F.cross_entropy(rpn_logits[sel], target)


def rpn_bbox_loss(rpn_bbox: torch.Tensor, rpn_match: torch.Tensor, rpn_deltas: torch.Tensor) -> torch.Tensor:
    """Smooth-L1 (beta 1, mean over elements) between the predicted deltas
    ``[N, A, 4]`` of the positive anchors (ascending index, per image) and the
    first ``num_pos`` rows of each image's ``rpn_bbox`` ``[N, T, 4]``."""
    match = rpn_match.to(rpn_deltas.device).reshape(rpn_deltas.shape[:2])
    rpn_bbox = rpn_bbox.to(rpn_deltas.device)
    preds, targets = [], []
    for i in range(rpn_deltas.shape[0]):
        pos = torch.nonzero(match[i] == 1).flatten()
        k = min(int(pos.numel()), int(rpn_bbox.shape[1]))
        if k == 0:
            continue
        preds.append(rpn_deltas[i, pos[:k]])
        targets.append(rpn_bbox[i, :k])
    if not preds:
        return _zero(rpn_deltas)
    return F.smooth_l1_loss(torch.cat(preds), torch.cat(targets).float(), beta=1.0)


def mrcnn_class_loss(target_class_ids: torch.Tensor, class_logits: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over all sampled ROIs: logits ``[M, K]``, targets ``[M]``
    (no active-class masking, like the original)."""
    if class_logits.shape[0] == 0:
        return _zero(class_logits)
    return F.cross_entropy(class_logits, target_class_ids.to(class_logits.device).long())


def mrcnn_bbox_loss(target_deltas: torch.Tensor, target_class_ids: torch.Tensor,
                    pred_deltas: torch.Tensor) -> torch.Tensor:
    """Smooth-L1 (mean) over the positive ROIs (class > 0) between the deltas
    predicted for the GT class (``pred_deltas`` ``[M, K, 4]``) and the targets ``[M, 4]``."""
    ids = target_class_ids.to(pred_deltas.device).long()
    pos = torch.nonzero(ids > 0).flatten()
    if pos.numel() == 0:
        return _zero(pred_deltas)
    pred = pred_deltas[pos, ids[pos]]
    return F.smooth_l1_loss(pred, target_deltas.to(pred.device)[pos].float(), beta=1.0)


def mrcnn_mask_loss(target_masks: torch.Tensor, target_class_ids: torch.Tensor,
                    mask_logits: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy (mean over P x 28 x 28) of the GT-class channel of
    the mask logits ``[P, K, 28, 28]`` against ``target_masks`` ``[P, 28, 28]``
    (one row per positive ROI; ``target_class_ids`` ``[P]`` > 0)."""
    if mask_logits.shape[0] == 0:
        return _zero(mask_logits)
    ids = target_class_ids.to(mask_logits.device).long()
    pred = mask_logits[torch.arange(ids.numel(), device=ids.device), ids]
    return F.binary_cross_entropy_with_logits(pred, target_masks.to(pred.device).float())
