"""Training targets: ground-truth preparation, RPN targets, detection targets.

Follows ``docs/model.md`` §4.1, §4.2 and §4.4, with the
original's bugs fixed (docs/model.md §6.1):

* **Zero GT boxes** (an instance whose mask vanished when the image was
  resized) are dropped in :func:`prepare_sample`, and every target function
  ignores boxes of zero height or width, so no target is ever ``log(0)``.
* **Images without a usable instance** (no GT, or only crowd/ignore regions)
  make :func:`prepare_sample` return ``None``; the data loader skips them
  instead of crashing the collate function.
* **Mini-masks** (:func:`minimize_mask`) are resized as 0/255 bytes, not
  byte-scaled by their own min/max: a crop that is entirely foreground stays
  entirely foreground (the original turned it into an empty mask).
* Validation samples are not augmented (``augment=False``).

Conventions: boxes are ``(y1, x1, y2, x2)``. GT boxes are int pixel boxes of
the padded ``S x S`` network input with exclusive ends (``extract_bboxes``).
IoUs for training targets have **no** "+1" (``compute_overlaps``), in pixels
for the RPN (anchors vs GT) and in normalized coordinates (pixel / S) for the
detection targets. Crowd / ignore instances have negative class ids: they
never become positives, and anchors / proposals overlapping them (IoU >=
0.001) never become negatives.

All random choices take an explicit ``numpy.random.Generator`` so that runs
are reproducible (and resumable) from a seed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from PIL import Image

from ..data.base import extract_bboxes
from ..model.molding import mold_image
from ..plugins.reference import crop_and_resize

CROWD_IOU = 0.001     # an anchor / proposal touching a crowd region this much cannot be negative
RPN_POSITIVE_IOU = 0.7
RPN_NEGATIVE_IOU = 0.3
HEAD_POSITIVE_IOU = 0.5


# --------------------------------------------------------------------------- box math
def _iou(b1, b2, xp):
    """IoU matrix of boxes ``[N, 4]`` x ``[M, 4]`` (y1, x1, y2, x2) in the array module ``xp``
    (numpy or torch, the boxes' own): no "+1"; a pair whose union is empty gets 0."""
    area1 = (b1[:, 2] - b1[:, 0]) * (b1[:, 3] - b1[:, 1])
    area2 = (b2[:, 2] - b2[:, 0]) * (b2[:, 3] - b2[:, 1])
    y1 = xp.maximum(b1[:, None, 0], b2[None, :, 0])
    x1 = xp.maximum(b1[:, None, 1], b2[None, :, 1])
    y2 = xp.minimum(b1[:, None, 2], b2[None, :, 2])
    x2 = xp.minimum(b1[:, None, 3], b2[None, :, 3])
    inter = (y2 - y1).clip(min=0) * (x2 - x1).clip(min=0)
    union = area1[:, None] + area2[None, :] - inter
    return xp.where(union > 0, inter / xp.where(union > 0, union, 1), 0)


def compute_overlaps(boxes1: np.ndarray, boxes2: np.ndarray) -> np.ndarray:
    """IoU matrix ``[len(boxes1), len(boxes2)]`` without "+1" (``utils.compute_overlaps``), float64.

    Zero-area boxes get IoU 0 with everything (no division by zero).
    """
    b1 = np.asarray(boxes1, dtype=np.float64).reshape(-1, 4)
    b2 = np.asarray(boxes2, dtype=np.float64).reshape(-1, 4)
    with np.errstate(divide="ignore", invalid="ignore"):
        return _iou(b1, b2, np)


def box_iou_torch(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """Torch version of :func:`compute_overlaps` (float32, no "+1")."""
    return _iou(boxes1.float().reshape(-1, 4), boxes2.float().reshape(-1, 4), torch)


def box_refinement(boxes, gt_boxes):
    """Deltas ``(dy, dx, log(gh/h), log(gw/w))`` taking ``boxes`` to ``gt_boxes`` (numpy or torch,
    ``[..., 4]``), docs/model.md §3.4; not yet divided by the std devs."""
    lib = torch if torch.is_tensor(boxes) else np
    h = boxes[..., 2] - boxes[..., 0]
    w = boxes[..., 3] - boxes[..., 1]
    cy = boxes[..., 0] + 0.5 * h
    cx = boxes[..., 1] + 0.5 * w
    gh = gt_boxes[..., 2] - gt_boxes[..., 0]
    gw = gt_boxes[..., 3] - gt_boxes[..., 1]
    gcy = gt_boxes[..., 0] + 0.5 * gh
    gcx = gt_boxes[..., 1] + 0.5 * gw
    return lib.stack([(gcy - cy) / h, (gcx - cx) / w, lib.log(gh / h), lib.log(gw / w)], -1)


def _nonzero_area(boxes: np.ndarray) -> np.ndarray:
    boxes = np.asarray(boxes).reshape(-1, 4)
    return (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])


# --------------------------------------------------------------------------- RPN targets
def build_rpn_targets(anchors: np.ndarray, gt_class_ids: np.ndarray, gt_boxes: np.ndarray, config,
                      rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """RPN targets of one image (docs/model.md §4.2).

    Args:
        anchors: ``[A, 4]`` pixel anchors.
        gt_class_ids: ``[G]``; negative = crowd / ignore.
        gt_boxes: ``[G, 4]`` pixel boxes (zero-area boxes are ignored).
        rng: random generator for the 128 / 256 subsampling.
    Returns:
        ``rpn_match`` int8 ``[A]`` (1 positive, -1 negative, 0 neutral) and
        ``rpn_bbox`` float32 ``[RPN_TRAIN_ANCHORS_PER_IMAGE, 4]``: the deltas of
        the positive anchors, in ascending anchor order, divided by
        RPN_BBOX_STD_DEV; the remaining rows are zero.
    """
    anchors = np.asarray(anchors, dtype=np.float64)
    gt_class_ids = np.asarray(gt_class_ids).reshape(-1)
    gt_boxes = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)
    n_train = int(config.RPN_TRAIN_ANCHORS_PER_IMAGE)
    rpn_match = np.zeros([anchors.shape[0]], dtype=np.int8)
    rpn_bbox = np.zeros((n_train, 4), dtype=np.float32)

    usable = _nonzero_area(gt_boxes)
    crowd = (gt_class_ids < 0) & usable
    objects = (gt_class_ids > 0) & usable
    if crowd.any():
        crowd_iou_max = compute_overlaps(anchors, gt_boxes[crowd]).max(axis=1)
        no_crowd = crowd_iou_max < CROWD_IOU
    else:
        no_crowd = np.ones(anchors.shape[0], dtype=bool)
    gt_boxes = gt_boxes[objects]
    if gt_boxes.shape[0] == 0:
        # no object: every crowd-free anchor is a negative candidate
        rpn_match[no_crowd] = -1
    else:
        overlaps = compute_overlaps(anchors, gt_boxes)        # [A, G]
        anchor_iou_argmax = np.argmax(overlaps, axis=1)
        anchor_iou_max = overlaps[np.arange(overlaps.shape[0]), anchor_iou_argmax]
        # 1. negatives; 2. the best anchor of each GT; 3. IoU >= 0.7 (in this order, like the original)
        rpn_match[(anchor_iou_max < RPN_NEGATIVE_IOU) & no_crowd] = -1
        gt_iou_argmax = np.argmax(overlaps, axis=0)
        rpn_match[gt_iou_argmax] = 1
        rpn_match[anchor_iou_max >= RPN_POSITIVE_IOU] = 1

    # subsample: at most half positives, the rest negatives
    ids = np.where(rpn_match == 1)[0]
    extra = len(ids) - n_train // 2
    if extra > 0:
        rpn_match[rng.choice(ids, extra, replace=False)] = 0
    ids = np.where(rpn_match == -1)[0]
    extra = len(ids) - (n_train - int(np.sum(rpn_match == 1)))
    if extra > 0:
        rpn_match[rng.choice(ids, extra, replace=False)] = 0

    ids = np.where(rpn_match == 1)[0]
    if ids.size:
        a = anchors[ids]
        g = gt_boxes[anchor_iou_argmax[ids]]
        deltas = box_refinement(a, g) / np.asarray(config.RPN_BBOX_STD_DEV, dtype=np.float64)
        rpn_bbox[: ids.size] = deltas
    return rpn_match, rpn_bbox


# --------------------------------------------------------------------------- masks
def minimize_mask(boxes: np.ndarray, masks: np.ndarray, mini_shape: Sequence[int]) -> np.ndarray:
    """Crop each mask to its box and resize it to ``mini_shape`` (docs/model.md §4.1 step 6).

    Args:
        boxes: ``[G, 4]`` int pixel boxes, exclusive ends.
        masks: ``[H, W, G]`` bool.
    Returns:
        ``[G, mh, mw]`` bool. The crop is resized as bytes 0/255 with PIL
        bilinear and thresholded at >= 128; unlike the original (which
        byte-scaled every crop by its own min/max), an all-ones crop stays all
        ones. A zero box gives an empty mini-mask.
    """
    mh, mw = int(mini_shape[0]), int(mini_shape[1])
    g = masks.shape[-1]
    out = np.zeros((g, mh, mw), dtype=bool)
    for i in range(g):
        y1, x1, y2, x2 = (int(v) for v in boxes[i])
        if y2 <= y1 or x2 <= x1:
            continue
        crop = masks[y1:y2, x1:x2, i].astype(np.uint8) * 255
        small = Image.fromarray(crop, mode="L").resize((mw, mh), Image.BILINEAR)
        out[i] = np.asarray(small) >= 128
    return out


def resize_masks(masks: np.ndarray, size_hw: Tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of ``[H, W, G]`` bool masks to ``size_hw`` (the
    original's ``scipy.ndimage.zoom(order=0)``)."""
    h, w = masks.shape[:2]
    nh, nw = int(size_hw[0]), int(size_hw[1])
    if (h, w) == (nh, nw):
        return masks.astype(bool, copy=False)
    out = np.zeros((nh, nw, masks.shape[-1]), dtype=bool)
    for i in range(masks.shape[-1]):
        im = Image.fromarray(masks[:, :, i].astype(np.uint8) * 255, mode="L")
        out[:, :, i] = np.asarray(im.resize((nw, nh), Image.NEAREST)) >= 128
    return out


# --------------------------------------------------------------------------- one training image
@dataclass
class TrainSample:
    """One prepared training image (what the data loader yields).

    ``image`` uint8 ``[S, S, 3]`` (resized, zero padded); ``window`` the image
    area; ``rpn_match`` int8 ``[A]``; ``rpn_bbox`` float32 ``[256, 4]``;
    ``gt_class_ids`` int32 ``[G]`` (negative = crowd); ``gt_boxes`` float32
    ``[G, 4]`` pixels (exclusive ends); ``gt_masks`` bool ``[G, mh, mw]``
    (mini-masks in the GT box frame, or full ``[G, S, S]`` masks when
    USE_MINI_MASK is off).
    """

    image: np.ndarray
    window: Tuple[int, int, int, int]
    rpn_match: np.ndarray
    rpn_bbox: np.ndarray
    gt_class_ids: np.ndarray
    gt_boxes: np.ndarray
    gt_masks: np.ndarray
    image_id: object = None
    key: int = 0    # the item's sampling key in the run (seeds its ROI sampling in the training step)


def prepare_sample(sample, config, anchors: np.ndarray, rng: np.random.Generator,
                   augment: bool = False) -> Optional[TrainSample]:
    """Turn a dataset :class:`~mrcnn_trt.data.base.Sample` into training targets (docs/model.md §4.1).

    Steps: optional horizontal flip (p = 0.5, training only; done on the
    original image so the window stays valid), resize + zero pad like
    inference (:func:`~mrcnn_trt.model.molding.mold_image`), masks resized
    nearest and padded, boxes from the resized masks, instances whose mask
    vanished dropped, RPN targets, random subsampling of the GT to
    MAX_GT_INSTANCES, mini-masks.

    Returns ``None`` when the image has no usable (positive-class, non-empty)
    instance; the caller skips it.
    """
    image = np.asarray(sample.image)
    masks = np.asarray(sample.masks, dtype=bool)
    class_ids = np.asarray(sample.class_ids, dtype=np.int32).reshape(-1)
    if masks.ndim == 2:
        masks = masks[:, :, None]
    if not np.any(class_ids > 0):
        return None
    if augment and rng.random() < 0.5:
        image = image[:, ::-1]
        masks = masks[:, ::-1]
    s = int(config.IMAGE_MAX_DIM)
    padded, info = mold_image(np.ascontiguousarray(image), config.IMAGE_MIN_DIM, s)
    y1, x1, y2, x2 = info.window
    full = np.zeros((s, s, masks.shape[-1]), dtype=bool)
    full[y1:y2, x1:x2] = resize_masks(np.ascontiguousarray(masks), (y2 - y1, x2 - x1))
    boxes = extract_bboxes(full)
    keep = _nonzero_area(boxes)
    full, boxes, class_ids = full[:, :, keep], boxes[keep], class_ids[keep]
    if not np.any(class_ids > 0):
        return None
    rpn_match, rpn_bbox = build_rpn_targets(anchors, class_ids, boxes, config, rng)
    if class_ids.shape[0] > config.MAX_GT_INSTANCES:
        ids = np.sort(rng.choice(np.arange(class_ids.shape[0]), config.MAX_GT_INSTANCES, replace=False))
        full, boxes, class_ids = full[:, :, ids], boxes[ids], class_ids[ids]
    if config.USE_MINI_MASK:
        gt_masks = minimize_mask(boxes, full, config.MINI_MASK_SHAPE)
    else:
        gt_masks = np.ascontiguousarray(full.transpose(2, 0, 1))
    return TrainSample(image=padded, window=info.window, rpn_match=rpn_match, rpn_bbox=rpn_bbox,
                       gt_class_ids=class_ids.astype(np.int32), gt_boxes=boxes.astype(np.float32),
                       gt_masks=gt_masks, image_id=getattr(sample, "image_id", None))


# --------------------------------------------------------------------------- detection targets
@dataclass
class DetectionTargets:
    """Sampled head targets of one image (docs/model.md §4.4), positives first.

    ``rois`` ``[K, 4]`` normalized; ``class_ids`` int64 ``[K]`` (0 for
    negatives); ``deltas`` ``[K, 4]`` (divided by BBOX_STD_DEV; zero for
    negatives); ``masks`` ``[P, 28, 28]`` float {0, 1} for the P positives only.
    """

    rois: torch.Tensor
    class_ids: torch.Tensor
    deltas: torch.Tensor
    masks: torch.Tensor

    @property
    def num_positive(self) -> int:
        return int(self.masks.shape[0])


def detection_targets(proposals: torch.Tensor, gt_class_ids: torch.Tensor, gt_boxes: torch.Tensor,
                      gt_masks: torch.Tensor, config, rng: np.random.Generator) -> DetectionTargets:
    """Sample ROIs and build the head targets of one image (docs/model.md §4.4).

    Args:
        proposals: ``[R, 4]`` normalized proposals (only the valid rows).
        gt_class_ids: ``[G]`` ints, negative = crowd.
        gt_boxes: ``[G, 4]`` **normalized** boxes.
        gt_masks: ``[G, mh, mw]`` mini-masks (or ``[G, S, S]`` full masks when
            USE_MINI_MASK is off).
        rng: random generator for the positive/negative sampling.

    Positives: IoU >= 0.5 with a non-crowd GT, a random subset of at most
    ``int(TRAIN_ROIS_PER_IMAGE * ROI_POSITIVE_RATIO)``, each assigned its
    highest-IoU GT. Negatives: max IoU < 0.5 and crowd IoU < 0.001,
    ``int(P / ROI_POSITIVE_RATIO - P)`` of them at random (none without
    positives, like the original). Mask targets: the GT mini-mask cropped with
    the ROI expressed in the GT box frame, TF crop-and-resize to MASK_SHAPE,
    rounded.
    """
    dev = proposals.device
    proposals = proposals.detach().float().reshape(-1, 4)
    gt_class_ids = gt_class_ids.to(dev).long().reshape(-1)
    gt_boxes = gt_boxes.to(dev).float().reshape(-1, 4)
    mh, mw = (int(v) for v in config.MASK_SHAPE)

    def empty():
        return DetectionTargets(rois=proposals.new_zeros((0, 4)), class_ids=torch.zeros(0, dtype=torch.long, device=dev),
                                deltas=proposals.new_zeros((0, 4)), masks=proposals.new_zeros((0, mh, mw)))

    usable = (gt_boxes[:, 2] > gt_boxes[:, 0]) & (gt_boxes[:, 3] > gt_boxes[:, 1])
    objects = torch.nonzero((gt_class_ids > 0) & usable).flatten()
    crowds = torch.nonzero((gt_class_ids < 0) & usable).flatten()
    if proposals.shape[0] == 0 or objects.numel() == 0:
        return empty()
    overlaps = box_iou_torch(proposals, gt_boxes[objects])          # [R, G']
    roi_iou_max, roi_gt = overlaps.max(dim=1)
    if crowds.numel():
        no_crowd = box_iou_torch(proposals, gt_boxes[crowds]).max(dim=1).values < CROWD_IOU
    else:
        no_crowd = torch.ones(proposals.shape[0], dtype=torch.bool, device=dev)

    pos = torch.nonzero(roi_iou_max >= HEAD_POSITIVE_IOU).flatten().cpu().numpy()
    if pos.size == 0:
        return empty()
    n_pos = int(config.TRAIN_ROIS_PER_IMAGE * config.ROI_POSITIVE_RATIO)
    pos = rng.permutation(pos)[:n_pos]
    neg = torch.nonzero((roi_iou_max < HEAD_POSITIVE_IOU) & no_crowd).flatten().cpu().numpy()
    r = 1.0 / config.ROI_POSITIVE_RATIO
    n_neg = int(r * pos.size - pos.size)
    neg = rng.permutation(neg)[:n_neg]

    pos_t = torch.from_numpy(pos).long().to(dev)
    neg_t = torch.from_numpy(neg).long().to(dev)
    pos_rois = proposals[pos_t]
    gt_local = roi_gt[pos_t]
    gt_index = objects[gt_local]
    assigned = gt_boxes[gt_index]
    std = torch.tensor(config.BBOX_STD_DEV, dtype=torch.float32, device=dev)
    deltas = box_refinement(pos_rois, assigned) / std

    # mask targets
    m = gt_masks.to(dev).float()[:, None]                           # [G, 1, mh', mw']
    if config.USE_MINI_MASK:
        gh = assigned[:, 2] - assigned[:, 0]
        gw = assigned[:, 3] - assigned[:, 1]
        boxes = torch.stack([(pos_rois[:, 0] - assigned[:, 0]) / gh, (pos_rois[:, 1] - assigned[:, 1]) / gw,
                             (pos_rois[:, 2] - assigned[:, 0]) / gh, (pos_rois[:, 3] - assigned[:, 1]) / gw], 1)
    else:
        boxes = pos_rois
    masks = torch.round(crop_and_resize(m, boxes, gt_index, mh)[:, 0])

    rois = torch.cat([pos_rois, proposals[neg_t]], 0)
    class_ids = torch.cat([gt_class_ids[gt_index], torch.zeros(neg.size, dtype=torch.long, device=dev)])
    deltas = torch.cat([deltas, proposals.new_zeros((neg.size, 4))], 0)
    return DetectionTargets(rois=rois, class_ids=class_ids, deltas=deltas, masks=masks)


def batch_detection_targets(rois: torch.Tensor, roi_count: torch.Tensor, samples: List[TrainSample], config,
                            rng) -> List[DetectionTargets]:
    """:func:`detection_targets` for each image of a batch (proposals ``[N, R, 4]`` + counts).

    ``rng``: one generator drawn from image after image, or a sequence with one
    generator per image (then an image's sampling does not depend on which
    other images share its batch, or its process)."""
    s = float(config.IMAGE_MAX_DIM)
    rngs = list(rng) if isinstance(rng, (list, tuple)) else [rng] * len(samples)
    if len(rngs) != len(samples):
        raise ValueError(f"{len(rngs)} generators for {len(samples)} images")
    out = []
    for i, smp in enumerate(samples):
        n = int(roi_count[i])
        out.append(detection_targets(rois[i, :n], torch.from_numpy(smp.gt_class_ids),
                                     torch.from_numpy(smp.gt_boxes) / s, torch.from_numpy(smp.gt_masks),
                                     config, rngs[i]))
    return out
