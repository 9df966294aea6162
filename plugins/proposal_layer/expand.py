"""ProposalLayer as standard ONNX ops (the standard flavor, ``export/standardize.py``).

ProposalLayer (scores [N,A], deltas [N,A,4], anchors [A,4] -> rois [N,post,4], count [N])
NaN scores -> -inf; ``TopK(min(pre_nms_topk, A))`` (ONNX TopK breaks ties
by the lower index = the reference's stable sort). Whenever a TopK's K
would exceed ``max_topk`` (TensorRT's limit, ``TOPK_MAX_K`` = 3840; this applies to every
TopK emitted here) the selection is made in chunks: TopK(<= max_topk),
overwrite the chosen keys with -inf (``ScatterElements``), TopK again, ...
(exact: keys are first clamped to >= -FLT_MAX so the -inf marks sort
last). deltas (``GatherElements``) * std and anchors (``Gather``) are
decoded in pixels with the formula and operation order of
``apply_box_deltas``, clipped to [0, image_size] with Max/Min, then
``NonMaxSuppression`` (center_point_box=0) on the boxes with y2, x2 + 1
(the legacy +1 areas; ORT and TensorRT suppress when IoU > threshold, as
the reference does) and *pseudo-scores* k - position (all distinct, > 0),
so NMS visits the boxes exactly in the sorted order whatever its tie rule;
max_output_boxes_per_class = post_nms_topk. The selected indices are
scattered (``ScatterND``) into a kept mask [N,k]; ``TopK`` on
``kept*2k - position`` lists the kept positions first, ascending; rows are
gathered, / image_size, rows >= count are zeroed; count = sum(kept) (int32).

``expand(b, inputs, outputs, attrs, shapes, max_topk)`` adds the subgraph to ``b``
(:class:`mrcnn_trt.plugins.onnx_builder.Builder`); it reproduces ``reference.py``.
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence

import numpy as np

from mrcnn_trt.lazy import lazy_import

from ..onnx_builder import (Builder, Shape, chunked_topk_indices, clip, decode, kept_mask, pad_rows,
                           zero_rows_past_count)

onnx = lazy_import("onnx")


def expand(b: Builder, ins: Sequence[str], outs: Sequence[str], a: dict, shapes: Dict[str, Shape],
           max_topk: Optional[int]):
    scores, deltas, anchors = ins
    n, na = shapes[scores]
    if shapes[deltas] != (n, na, 4) or shapes[anchors] != (na, 4):
        raise ValueError(f"ProposalLayer expects scores [N,A], deltas [N,A,4], anchors [A,4]; got "
                         f"{shapes[scores]}, {shapes[deltas]}, {shapes[anchors]}")
    k = min(int(a["pre_nms_topk"]), na)
    post = int(a["post_nms_topk"])
    S = float(a["image_size"])

    key = b.nan_to(scores, -np.inf)                                                # sort_scores_desc: NaN as -inf
    order = chunked_topk_indices(b, key, n, k, max_topk)                       # [N, k]
    order4 = b.op("Expand", [b.unsq(order, [2]), b.i64([n, k, 4])])
    d = b.op("GatherElements", [deltas, order4], axis=1)
    d = b.op("Mul", [d, b.f32(np.array(a["rpn_bbox_std_dev"], np.float32))])
    anc = b.op("Gather", [anchors, order], axis=0)                                  # [N, k, 4]
    cols = decode(b, anc, d)
    zero, s = b.f32(0.0), b.f32(S)
    cols = clip(b, cols, zero, zero, s, s)
    boxes = b.stack_last(cols)                                                      # [N, k, 4] pixels

    one = b.f32(1.0)
    nms_boxes = b.stack_last([cols[0], cols[1], b.op("Add", [cols[2], one]), b.op("Add", [cols[3], one])])
    pseudo = b.f32(np.broadcast_to((k - np.arange(k, dtype=np.float32))[None, None, :], (n, 1, k)).copy(),
                   "pseudo_scores")
    sel = b.op("NonMaxSuppression", [nms_boxes, pseudo, b.i64([post]), b.f32([a["nms_threshold"]])],
               center_point_box=0)
    kept = kept_mask(b, sel, [n, k])                                              # [N, k]
    m = min(post, k)
    pos = b.f32(np.arange(k, dtype=np.float32), "pos")
    rank_key = b.op("Sub", [b.op("Mul", [kept, b.f32(float(2 * k))]), pos])
    first = chunked_topk_indices(b, rank_key, n, m, max_topk)                  # kept positions first, ascending
    rows = b.op("GatherElements", [boxes, b.op("Expand", [b.unsq(first, [2]), b.i64([n, m, 4])])], axis=1)
    rows = b.op("Div", [rows, s])
    count = b.op("Cast", [b.op("ReduceSum", [kept, b.i64([1])], keepdims=0)], to=onnx.TensorProto.INT32)
    rows = zero_rows_past_count(b, rows, count, m)
    pad_rows(b, rows, n, m, post, 4, outs[0] or None)
    b.op("Identity", [count], outs[1] if len(outs) > 1 and outs[1] else None)
