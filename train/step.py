"""One training step: the training forward pass to the five losses, one optimizer
step on a batch, and the mean validation losses (docs/model.md §4.3-§4.5).

Real mini-batches: N >= 1 prepared images go through the batched model in one
forward pass; each loss is pooled over the batch (:mod:`.losses`); one
optimizer step per batch, after clipping the global gradient norm to
GRADIENT_CLIP_NORM (5.0). (The original ran batch size 1 and summed gradients
over 16 images, clipping after each image.)
"""
from __future__ import annotations

from typing import Dict, List

import numpy as np
import torch

from ..model.backends import CpuKernelOps
from ..plugins import cpu
from .batches import val_rng
from .losses import (LOSS_NAMES, mrcnn_bbox_loss, mrcnn_class_loss, mrcnn_mask_loss, rpn_bbox_loss,
                     rpn_class_loss)
from .targets import TrainSample, batch_detection_targets


def proposal_ops(model):
    """The ops object that makes training proposals: the compiled CPU kernels when the
    model runs the PyTorch reference ops on the CPU and the kernels are built (same
    semantics, ~50x faster than the Python NMS loop), else the model's own ops.
    Proposals need no gradient, so this changes nothing but speed."""
    key = (id(model.ops), model.anchors.device.type)
    cached = getattr(model, "_train_proposal_ops", None)
    if cached is not None and cached[0] == key:
        return cached[1]
    ops = model.ops
    if getattr(ops, "name", "") == "torch" and model.anchors.device.type == "cpu" and cpu.available():
        ops = CpuKernelOps(model.config)
    object.__setattr__(model, "_train_proposal_ops", (key, ops))
    return ops


def loss_counts(samples: List[TrainSample], targets) -> Dict[str, int]:
    """How many rows each of the five losses averages over, for these images:
    RPN anchors with a label, positive anchors with a target row, sampled ROIs,
    positive ROIs (box and mask). A mean over several processes weights each
    process's mean by its count (:mod:`mrcnn_trt.train.distributed`)."""
    return {
        "rpn_class": int(sum(int((s.rpn_match != 0).sum()) for s in samples)),
        "rpn_bbox": int(sum(min(int((s.rpn_match == 1).sum()), int(s.rpn_bbox.shape[0])) for s in samples)),
        "mrcnn_class": int(sum(int(torch.as_tensor(t.class_ids).numel()) for t in targets)),
        "mrcnn_bbox": int(sum(int((torch.as_tensor(t.class_ids) > 0).sum()) for t in targets)),
        "mrcnn_mask": int(sum(int(t.num_positive) for t in targets)),
    }


def forward_losses(model, samples: List[TrainSample], rng, return_counts: bool = False):
    """Training forward pass on prepared samples -> the five losses (docs/model.md §4.3-§4.5).

    The model must be in training mode (BatchNorm stays frozen). Proposals are
    made without gradient (POST_NMS_ROIS_TRAINING per image), detection targets
    are sampled per image (``rng``: one generator, or one per image; see
    :func:`~mrcnn_trt.train.targets.batch_detection_targets`), and the heads run
    on the sampled ROIs of all images together. ``return_counts``: also return
    :func:`loss_counts`, as ``(losses, counts)``.
    """
    cfg = model.config
    dev = model.anchors.device
    images = torch.from_numpy(np.stack([s.image for s in samples])).to(dev).permute(0, 3, 1, 2).float()
    maps = model.features(model.normalize(images))
    rpn_logits, rpn_probs, rpn_deltas = model.rpn_outputs(maps)
    rpn_match = torch.from_numpy(np.stack([s.rpn_match for s in samples])).to(dev)
    rpn_bbox = torch.from_numpy(np.stack([s.rpn_bbox for s in samples])).to(dev)
    with torch.no_grad():
        rois, count, _ = proposal_ops(model).proposal_layer(rpn_probs[:, :, 1].detach(), rpn_deltas.detach(),
                                                            model.anchors, training=True)
    targets = batch_detection_targets(rois, count, samples, cfg, rng)
    mrcnn_maps = maps[:4]
    n = len(samples)

    def padded(rows: List[torch.Tensor]):
        k = max([r.shape[0] for r in rows] + [0])
        out = torch.zeros((n, k, 4), dtype=torch.float32, device=dev)
        valid = torch.zeros((n, k), dtype=torch.bool, device=dev)
        for i, r in enumerate(rows):
            out[i, : r.shape[0]] = r
            valid[i, : r.shape[0]] = True
        return out, valid

    # box head on all sampled ROIs
    roi_pad, roi_valid = padded([t.rois for t in targets])
    crops = model.ops.pyramid_roi_align(roi_pad, mrcnn_maps, mask=False)[roi_valid]
    class_logits, _, class_deltas = model.classifier(crops)
    class_ids = torch.cat([t.class_ids for t in targets]).to(dev)
    deltas = torch.cat([t.deltas for t in targets]).to(dev)
    # mask head on the positives
    pos_pad, pos_valid = padded([t.rois[: t.num_positive] for t in targets])
    mcrops = model.ops.pyramid_roi_align(pos_pad, mrcnn_maps, mask=True)[pos_valid]
    mask_logits = model.mask.logits(mcrops)
    pos_ids = torch.cat([t.class_ids[: t.num_positive] for t in targets]).to(dev)
    pos_masks = torch.cat([t.masks for t in targets]).to(dev)

    losses = {
        "rpn_class": rpn_class_loss(rpn_match, rpn_logits),
        "rpn_bbox": rpn_bbox_loss(rpn_bbox, rpn_match, rpn_deltas),
        "mrcnn_class": mrcnn_class_loss(class_ids, class_logits),
        "mrcnn_bbox": mrcnn_bbox_loss(deltas, class_ids, class_deltas),
        "mrcnn_mask": mrcnn_mask_loss(pos_masks, pos_ids, mask_logits),
    }
    return (losses, loss_counts(samples, targets)) if return_counts else losses


def train_step(model, optimizer, samples: List[TrainSample], rng,
               clip_norm: float) -> Dict[str, float]:
    """One optimizer step on a batch; returns the float losses (plus ``loss``, ``grad_norm``)."""
    model.train()
    losses = forward_losses(model, samples, rng)
    loss = sum(losses[k] for k in LOSS_NAMES)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    params = [p for g in optimizer.param_groups for p in g["params"]]
    gnorm = torch.nn.utils.clip_grad_norm_(params, clip_norm)
    optimizer.step()
    out = {k: float(v.detach()) for k, v in losses.items()}
    out["loss"] = float(loss.detach())
    out["grad_norm"] = float(gnorm)
    return out


@torch.no_grad()
def validation_losses(model, loader, seed: int) -> Dict[str, float]:
    """Mean losses over a validation loader (training-mode forward, no augmentation):
    each batch's pooled losses, weighted by its number of images."""
    model.train()
    sums: Dict[str, float] = {}
    n = 0
    for samples in loader:
        if not samples:
            continue
        losses = forward_losses(model, samples, [val_rng(seed, s) for s in samples])
        losses = {k: float(v) for k, v in losses.items()}
        losses["loss"] = sum(losses[k] for k in LOSS_NAMES)
        for k, v in losses.items():
            sums[k] = sums.get(k, 0.0) + v * len(samples)
        n += len(samples)
    return {k: v / n for k, v in sums.items()} if n else {}

