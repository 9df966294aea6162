"""DetectionLayer as standard ONNX ops (the standard flavor, ``export/standardize.py``).

DetectionLayer (rois [N,R,4], roi_count [N] int32, probs [N,R,K], deltas [N,R,K,4],
window [N,4] -> detections [N,max_instances,6], count [N])
class = ``ArgMax`` (first max), score and deltas of that class by
``GatherElements``; decode on the normalized roi, * image_size, clip to the
window (Max/Min), ``Round``. candidate = class > 0 and row < roi_count and
(score >= min_confidence if min_confidence > 0). One ``NonMaxSuppression``
over K "classes": scores [N,K,R] = score where (class == k and candidate)
else -3e38, score_threshold = -1e38 (both runtimes keep a box only when
score > score_threshold, checked for ORT), boxes with y2, x2 + 1,
max_output_boxes_per_class = R. The selected boxes are scattered into a
kept mask [N,R]; ``TopK(min(max_instances, R))`` on where(kept, score,
-inf) (ties: lower ROI index first, as the reference's stable sort of the
survivors in ascending ROI order) gives the rows (y1, x1, y2, x2, class,
score), rows >= count are zeroed, count = min(sum(kept), max_instances).

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

_NMS_FILL = -3.0e38       # score of non-candidates in the NMS
_NMS_SCORE_THRESHOLD = -1.0e38


def expand(b: Builder, ins: Sequence[str], outs: Sequence[str], a: dict, shapes: Dict[str, Shape],
           max_topk: Optional[int]):
    rois, roi_count, probs, deltas, window = ins
    n, r, k = shapes[probs]
    if k != int(a["num_classes"]):
        raise ValueError(f"DetectionLayer: probs have {k} classes, num_classes is {a['num_classes']}")
    if shapes[rois] != (n, r, 4) or shapes[deltas] != (n, r, k, 4) or shapes[window] != (n, 4) \
            or shapes[roi_count] != (n,):
        raise ValueError(f"DetectionLayer input shapes do not match rois [N,R,4], roi_count [N], probs [N,R,K], "
                         f"deltas [N,R,K,4], window [N,4]: {[shapes[x] for x in ins]}")
    S = float(a["image_size"])
    mi = int(a["max_instances"])

    cls = b.op("ArgMax", [probs], axis=2, keepdims=1, select_last_index=0)        # [N, R, 1] int64
    score = b.reshape(b.op("GatherElements", [probs, cls], axis=2), [n, r])
    cls4 = b.op("Expand", [b.unsq(cls, [3]), b.i64([n, r, 1, 4])])
    d = b.reshape(b.op("GatherElements", [deltas, cls4], axis=2), [n, r, 4])
    d = b.op("Mul", [d, b.f32(np.array(a["bbox_std_dev"], np.float32))])
    cols = decode(b, rois, d)
    s = b.f32(S)
    cols = [b.op("Mul", [c_, s]) for c_ in cols]
    win = [b.unsq(b.col(window, j), [1]) for j in range(4)]                         # [N, 1] each
    cols = clip(b, cols, *win)
    cols = [b.op("Round", [c_]) for c_ in cols]
    refined = b.stack_last(cols)                                                    # [N, R, 4]
    cls = b.reshape(cls, [n, r])

    cand = b.op("Greater", [cls, b.i64(0)])
    rows_i = b.const(np.arange(r, dtype=np.int32)[None, :], np.int32, "rows")
    cnt = b.unsq(b.op("Cast", [roi_count], to=onnx.TensorProto.INT32), [1])
    cand = b.op("And", [cand, b.op("Less", [rows_i, cnt])])
    if a["min_confidence"] > 0:
        cand = b.op("And", [cand, b.op("GreaterOrEqual", [score, b.f32(a["min_confidence"])])])

    classes = b.i64(np.arange(k, dtype=np.int64)[None, :, None], "classes")        # [1, K, 1]
    in_class = b.op("And", [b.op("Equal", [b.unsq(cls, [1]), classes]), b.unsq(cand, [1])])  # [N, K, R]
    nms_scores = b.op("Where", [in_class, b.unsq(score, [1]), b.f32(_NMS_FILL)])
    one = b.f32(1.0)
    nms_boxes = b.stack_last([cols[0], cols[1], b.op("Add", [cols[2], one]), b.op("Add", [cols[3], one])])
    sel = b.op("NonMaxSuppression", [nms_boxes, nms_scores, b.i64([r]), b.f32([a["nms_threshold"]]),
                                     b.f32([_NMS_SCORE_THRESHOLD])], center_point_box=0)
    kept = kept_mask(b, sel, [n, r])                                              # [N, R]
    key = b.op("Where", [b.op("Greater", [kept, b.f32(0.5)]), score, b.f32(-np.inf)])
    m = min(mi, r)
    top = chunked_topk_indices(b, key, n, m, max_topk)                         # [N, m]
    table = b.op("Concat", [refined, b.unsq(b.op("Cast", [cls], to=onnx.TensorProto.FLOAT), [2]),
                            b.unsq(score, [2])], axis=2)                          # [N, R, 6]
    rows = b.op("GatherElements", [table, b.op("Expand", [b.unsq(top, [2]), b.i64([n, m, 6])])], axis=1)
    total = b.op("Min", [b.op("ReduceSum", [kept, b.i64([1])], keepdims=0), b.f32(float(mi))])
    count = b.op("Cast", [total], to=onnx.TensorProto.INT32)
    rows = zero_rows_past_count(b, rows, count, m)
    pad_rows(b, rows, n, m, mi, 6, outs[0] or None)
    b.op("Identity", [count], outs[1] if len(outs) > 1 and outs[1] else None)
