"""Standard-ONNX flavor: replace the three ``mrcnn`` custom nodes by standard ops.

The exporter first writes the "trt flavor" graph, where ``PyramidROIAlign``
(x2), ``ProposalLayer`` and ``DetectionLayer`` are single nodes in domain
``mrcnn`` version 1 (contract: ``plugins/opdefs.py``). :func:`expand_custom_nodes`
rewrites each of them into a subgraph of standard ONNX operators, so stock
ONNX Runtime (CPU) and TensorRT's built-in layers (ONNX parser, no plugin) run
the model. The subgraphs reproduce ``model/ops.py`` (the pure-PyTorch
references); how each one is built:

PyramidROIAlign (boxes [N,R,4] normalized, P2..P5 [N,C,H_l,W_l] -> [N,R,C,P,P])
    level = clamp(round(k0 + log2(sqrt(h*w) / (canonical_size / image_size))), 2, 5)
    with log2(x) = Log(x) / float32(ln 2) and ONNX ``Round`` (half to even);
    non-finite levels -> 2 (``IsNaN``/``IsInf`` + ``Where``). One sampling grid
    [N, R*P, P, 2] (last dim x then y, ``2*(y1 + i*(y2-y1)/(P-1)) - 1``) is shared
    by all levels; each level runs ``GridSample(align_corners=1, bilinear,
    padding_mode=zeros)`` on all boxes, its samples are kept where the TF
    crop_and_resize coordinate ``y1*(H-1) + i*((y2-y1)*(H-1)/(P-1))`` (computed
    in the reference's operation order) lies in [0, H-1] (same for x) and the box
    belongs to that level, else 0 (``Where``, so inf/NaN features of other
    levels never leak). Non-finite grid values are replaced by 0 before
    ``GridSample`` (their samples are masked anyway).

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

Known differences from the references (pathological inputs only):
    * NaN class scores: the reference keeps a NaN-scored row as a candidate when
      min_confidence == 0 (sorted last); here it is dropped (NaN > threshold is
      false). Scores <= -1e38 (including -inf) are dropped too. ``ArgMax`` over
      rows containing NaN may pick another class than ``torch.argmax``.
    * ProposalLayer with the chunked TopK (k > max_topk): scores -inf, NaN and
      -FLT_MAX all compare equal (ties by index); without chunking NaN == -inf
      as in the reference.
    * NMS: ORT/TensorRT order each box's corners (min/max) and skip boxes of
      non-positive area; the reference uses the corners as given. They differ
      only for boxes inverted by more than one pixel (y2 < y1 - 1), which
      neither layer produces from valid anchors/proposals.
    * log2 via Log / ln 2 differs from torch.log2 by an ulp or so: a level
      can flip only when k0 + log2(...) is within ~1e-6 of a half integer.
      GridSample's normalized coordinates put samples within ~1e-7 of the
      map size of the reference's (~1e-5 px on a 256-wide map), so crops
      differ by that times the local feature gradient (max 1.3e-4 measured
      on 256x256 white-noise maps; < 3e-5 on the small maps of the tests).

TensorRT notes (see ``export/trt_ops_table.py``): every op emitted here is in
the onnx-tensorrt tables for TRT 8.6 and 10.x; K, axes, shapes and NMS
thresholds are initializers; GridSample is 4-D. TensorRT's NMS layer considers
only the 5000 highest-scoring boxes per image (2000 on SM 5.3/6.2) and leaves
the order of equal scores unspecified (hence the pseudo-scores above); its
TopK/ArgMax tie order is unspecified too, so on TensorRT ties may resolve
differently than in ORT and the reference.

Opset: the emitted nodes are valid for ai.onnx opsets 16..24 (GridSample needs
16; its mode is "bilinear" below opset 20 and "linear" from 20 on). TensorRT
8.6 parses opsets <= 17, and the onnx-tensorrt GridSample importers of
8.6-GA/10.1-GA map only "bilinear" to linear interpolation: export with
opset 16 or 17 for TensorRT.
"""
from __future__ import annotations

import math
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper, shape_inference

from mrcnn_trt.plugins.opdefs import DOMAIN, OP_DEFS, OPS, bind_shapes, output_shapes, validate_attrs

from .trt_ops_table import TOPK_MAX_K

MIN_OPSET = 16            # GridSample
MAX_OPSET = 24
FLT_MAX = float(np.finfo(np.float32).max)
_NMS_FILL = -3.0e38       # score of non-candidates in the DetectionLayer NMS
_NMS_SCORE_THRESHOLD = -1.0e38

# inputs / output count of each custom node (the op contract)
_INPUTS = {op: tuple(t.name for t in d.inputs) for op, d in OP_DEFS.items()}
_OUTPUTS = {op: len(d.outputs) for op, d in OP_DEFS.items()}

Shape = Tuple[int, ...]

#: contract op name (plugins/opdefs.py) -> its expansion
#: ``expand(builder, inputs, outputs, attrs, shapes, max_topk)``, filled by :func:`expander`
EXPANDERS: Dict[str, Callable[..., None]] = {}


def expander(op: str):
    """Register the decorated function as the standard-ONNX expansion of contract op ``op``."""
    if op not in OP_DEFS:
        raise ValueError(f"{op!r} is not an op of the contract (plugins/opdefs.py)")

    def register(fn):
        EXPANDERS[op] = fn
        return fn
    return register


# --------------------------------------------------------------------------- graph builder
class _Builder:
    """Collects the nodes and initializers of one expansion under a unique prefix."""

    def __init__(self, prefix: str, taken: set, opset: int):
        self.prefix = prefix
        self.taken = taken
        self.opset = opset
        self.nodes: List[onnx.NodeProto] = []
        self.inits: List[onnx.TensorProto] = []
        self._n = 0

    def fresh(self, hint: str) -> str:
        while True:
            self._n += 1
            name = f"{self.prefix}/{hint}_{self._n}"
            if name not in self.taken:
                self.taken.add(name)
                return name

    def const(self, value, dtype, hint: str = "c") -> str:
        arr = np.asarray(value, dtype=dtype)
        name = self.fresh(hint)
        self.inits.append(numpy_helper.from_array(arr, name))
        return name

    def f32(self, value, hint: str = "f") -> str:
        return self.const(value, np.float32, hint)

    def i64(self, value, hint: str = "i") -> str:
        return self.const(value, np.int64, hint)

    def op(self, op_type: str, inputs: Sequence[str], out: Union[None, str, Sequence[Optional[str]]] = None,
           n_out: int = 1, **attrs) -> Union[str, List[str]]:
        """Add a node; ``out`` names its outputs (None = fresh). Returns the output name(s)."""
        if out is None or isinstance(out, str):
            outs = [out]
        else:
            outs = list(out)
            n_out = len(outs)
        if len(outs) < n_out:
            outs += [None] * (n_out - len(outs))
        outs = [o if o else self.fresh(op_type.lower()) for o in outs]
        self.nodes.append(helper.make_node(op_type, list(inputs), outs, name=self.fresh(op_type), **attrs))
        return outs[0] if n_out == 1 else outs

    # small helpers ---------------------------------------------------------
    def col(self, x: str, j: int) -> str:
        """x[..., j] (drops the last axis)."""
        return self.op("Gather", [x, self.i64(j)], axis=-1)

    def unsq(self, x: str, axes: Sequence[int]) -> str:
        return self.op("Unsqueeze", [x, self.i64(list(axes))])

    def reshape(self, x: str, shape: Sequence[int], out: Optional[str] = None) -> str:
        return self.op("Reshape", [x, self.i64(list(shape))], out)

    def stack_last(self, cols: Sequence[str], out: Optional[str] = None) -> str:
        return self.op("Concat", [self.unsq(c, [-1]) for c in cols], out, axis=-1)

    def topk(self, x: str, k: int, axis: int = -1) -> Tuple[str, str]:
        v, i = self.op("TopK", [x, self.i64([k])], n_out=2, axis=axis, largest=1, sorted=1)
        return v, i

    def nan_to(self, x: str, value: float) -> str:
        return self.op("Where", [self.op("IsNaN", [x]), self.f32(value), x])

    def nonfinite_to(self, x: str, value: float) -> str:
        bad = self.op("Or", [self.op("IsNaN", [x]), self.op("IsInf", [x])])
        return self.op("Where", [bad, self.f32(value), x])


def _decode(b: _Builder, boxes: str, deltas: str) -> List[str]:
    """``ops.apply_box_deltas`` column by column, same operation order. Returns [y1, x1, y2, x2]."""
    by1, bx1, by2, bx2 = (b.col(boxes, j) for j in range(4))
    dy, dx, dh, dw = (b.col(deltas, j) for j in range(4))
    half = b.f32(0.5)
    height = b.op("Sub", [by2, by1])
    width = b.op("Sub", [bx2, bx1])
    cy = b.op("Add", [by1, b.op("Mul", [half, height])])
    cx = b.op("Add", [bx1, b.op("Mul", [half, width])])
    cy = b.op("Add", [cy, b.op("Mul", [dy, height])])
    cx = b.op("Add", [cx, b.op("Mul", [dx, width])])
    height = b.op("Mul", [height, b.op("Exp", [dh])])
    width = b.op("Mul", [width, b.op("Exp", [dw])])
    y1 = b.op("Sub", [cy, b.op("Mul", [half, height])])
    x1 = b.op("Sub", [cx, b.op("Mul", [half, width])])
    y2 = b.op("Add", [y1, height])
    x2 = b.op("Add", [x1, width])
    return [y1, x1, y2, x2]


def _clip(b: _Builder, cols: Sequence[str], wy1: str, wx1: str, wy2: str, wx2: str) -> List[str]:
    """``ops.clip_boxes``: min(max(v, lo), hi) per coordinate."""
    y1, x1, y2, x2 = cols
    return [b.op("Min", [b.op("Max", [y1, wy1]), wy2]), b.op("Min", [b.op("Max", [x1, wx1]), wx2]),
            b.op("Min", [b.op("Max", [y2, wy1]), wy2]), b.op("Min", [b.op("Max", [x2, wx1]), wx2])]


def _kept_mask(b: _Builder, selected: str, shape: Sequence[int]) -> str:
    """float [N, B] mask, 1 at the (batch, box) pairs listed in NMS ``selected`` [M, 3]."""
    pairs = b.op("Gather", [selected, b.i64([0, 2])], axis=1)                     # [M, 2]
    first = b.op("Gather", [selected, b.i64(0)], axis=1)                          # [M]
    ones = b.op("Cast", [b.op("GreaterOrEqual", [first, b.i64(0)])], to=TensorProto.FLOAT)
    zeros = b.f32(np.zeros(shape, np.float32), "zeros")
    return b.op("ScatterND", [zeros, pairs, ones])


def _zero_rows_past_count(b: _Builder, rows: str, count_i32: str, m: int) -> str:
    """rows [N, m, D]: zero rows with index >= count [N]."""
    ar = b.const(np.arange(m, dtype=np.int32)[None, :], np.int32, "arange")
    valid = b.op("Less", [ar, b.unsq(count_i32, [1])])                            # [N, m]
    return b.op("Where", [b.unsq(valid, [2]), rows, b.f32(0.0)])


def _pad_rows(b: _Builder, rows: str, n: int, m: int, total: int, d: int, out: Optional[str]) -> str:
    if total == m:
        return b.op("Identity", [rows], out)
    pad = b.f32(np.zeros((n, total - m, d), np.float32), "pad")
    return b.op("Concat", [rows, pad], out, axis=1)


# --------------------------------------------------------------------------- PyramidROIAlign
@expander("PyramidROIAlign")
def _expand_roi_align(b: _Builder, ins: Sequence[str], outs: Sequence[str], a: dict, shapes: Dict[str, Shape],
                      max_topk: Optional[int] = None):
    boxes, fmaps = ins[0], list(ins[1:5])
    n, r, four = shapes[boxes]
    if four != 4:
        raise ValueError(f"PyramidROIAlign boxes must be [N,R,4], got {shapes[boxes]}")
    fshapes = [shapes[f] for f in fmaps]
    c = fshapes[0][1]
    for s in fshapes:
        if len(s) != 4 or s[0] != n or s[1] != c:
            raise ValueError(f"PyramidROIAlign feature maps must be [N={n},C={c},H,W], got {fshapes}")
    p = int(a["pooled_size"])
    S = float(a["image_size"])

    y1, x1, y2, x2 = (b.col(boxes, j) for j in range(4))                          # [N, R]
    # level (ops.roi_levels)
    h = b.op("Sub", [y2, y1])
    w = b.op("Sub", [x2, x1])
    ratio = b.op("Div", [b.op("Sqrt", [b.op("Mul", [h, w])]), b.f32(a["canonical_size"] / S)])
    lvl = b.op("Add", [b.f32(float(a["canonical_level"])),
                       b.op("Div", [b.op("Log", [ratio]), b.f32(math.log(2.0))])])
    lvl = b.nonfinite_to(b.op("Round", [lvl]), 2.0)
    lvl = b.op("Min", [b.op("Max", [lvl, b.f32(2.0)]), b.f32(5.0)])
    lvl = b.reshape(lvl, [n, 1, r, 1, 1])                                          # broadcast over C, P, P

    # shared GridSample grid [N, R*P, P, 2]
    idx = b.f32(np.arange(p, dtype=np.float32), "idx")                             # [P]

    def norm_coords(lo, hi):
        step = b.op("Div", [b.op("Sub", [hi, lo]), b.f32(float(p - 1))])
        pos = b.op("Add", [b.unsq(lo, [2]), b.op("Mul", [idx, b.unsq(step, [2])])])   # [N, R, P]
        return b.op("Sub", [b.op("Mul", [pos, b.f32(2.0)]), b.f32(1.0)])

    gy = norm_coords(y1, y2)
    gx = norm_coords(x1, x2)
    gy = b.op("Expand", [b.unsq(gy, [3, 4]), b.i64([n, r, p, p, 1])])             # varies along i (rows)
    gx = b.op("Expand", [b.unsq(gx, [2, 4]), b.i64([n, r, p, p, 1])])             # varies along j (cols)
    grid = b.op("Concat", [gx, gy], axis=4)                                         # x first
    grid = b.nonfinite_to(grid, 0.0)
    grid = b.reshape(grid, [n, r * p, p, 2])
    mode = "bilinear" if b.opset < 20 else "linear"

    def in_range(lo, hi, size):
        # ops.crop_and_resize: in = lo*(H-1) + i*((hi-lo)*(H-1)/(P-1)), valid iff 0 <= in <= H-1
        scale = b.op("Div", [b.op("Mul", [b.op("Sub", [hi, lo]), b.f32(float(size - 1))]), b.f32(float(p - 1))])
        pos = b.op("Add", [b.unsq(b.op("Mul", [lo, b.f32(float(size - 1))]), [2]),
                           b.op("Mul", [idx, b.unsq(scale, [2])])])                 # [N, R, P]
        return b.op("And", [b.op("GreaterOrEqual", [pos, b.f32(0.0)]),
                            b.op("LessOrEqual", [pos, b.f32(float(size - 1))])])

    acc = b.f32(0.0)
    for level, (fmap, (_, _, hh, ww)) in enumerate(zip(fmaps, fshapes), start=2):
        crop = b.op("GridSample", [fmap, grid], align_corners=1, mode=mode, padding_mode="zeros")  # [N,C,R*P,P]
        crop = b.reshape(crop, [n, c, r, p, p])
        vy = b.reshape(in_range(y1, y2, hh), [n, 1, r, p, 1])
        vx = b.reshape(in_range(x1, x2, ww), [n, 1, r, 1, p])
        sel = b.op("And", [b.op("Equal", [lvl, b.f32(float(level))]), b.op("And", [vy, vx])])  # [N,1,R,P,P]
        acc = b.op("Where", [sel, crop, acc])
    b.op("Transpose", [acc], outs[0], perm=[0, 2, 1, 3, 4])                        # [N, R, C, P, P]


# --------------------------------------------------------------------------- ProposalLayer
def _chunked_topk_indices(b: _Builder, key: str, n: int, k: int, max_topk: Optional[int]) -> str:
    """Indices [N, k] of the k largest of ``key`` [N, L] along axis 1, ties by lower index."""
    if max_topk is None or k <= max_topk:
        return b.topk(key, k)[1]
    key = b.op("Max", [key, b.f32(-FLT_MAX)])               # -inf marks must sort strictly last
    parts, done = [], 0
    while done < k:
        kk = min(max_topk, k - done)
        _, idx = b.topk(key, kk)
        parts.append(idx)
        done += kk
        if done < k:
            neg = b.f32(np.full((n, kk), -np.inf, np.float32), "neginf")
            key = b.op("ScatterElements", [key, idx, neg], axis=1)
    return b.op("Concat", parts, axis=1)


@expander("ProposalLayer")
def _expand_proposal(b: _Builder, ins: Sequence[str], outs: Sequence[str], a: dict, shapes: Dict[str, Shape],
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
    order = _chunked_topk_indices(b, key, n, k, max_topk)                       # [N, k]
    order4 = b.op("Expand", [b.unsq(order, [2]), b.i64([n, k, 4])])
    d = b.op("GatherElements", [deltas, order4], axis=1)
    d = b.op("Mul", [d, b.f32(np.array(a["rpn_bbox_std_dev"], np.float32))])
    anc = b.op("Gather", [anchors, order], axis=0)                                  # [N, k, 4]
    cols = _decode(b, anc, d)
    zero, s = b.f32(0.0), b.f32(S)
    cols = _clip(b, cols, zero, zero, s, s)
    boxes = b.stack_last(cols)                                                      # [N, k, 4] pixels

    one = b.f32(1.0)
    nms_boxes = b.stack_last([cols[0], cols[1], b.op("Add", [cols[2], one]), b.op("Add", [cols[3], one])])
    pseudo = b.f32(np.broadcast_to((k - np.arange(k, dtype=np.float32))[None, None, :], (n, 1, k)).copy(),
                   "pseudo_scores")
    sel = b.op("NonMaxSuppression", [nms_boxes, pseudo, b.i64([post]), b.f32([a["nms_threshold"]])],
               center_point_box=0)
    kept = _kept_mask(b, sel, [n, k])                                              # [N, k]
    m = min(post, k)
    pos = b.f32(np.arange(k, dtype=np.float32), "pos")
    rank_key = b.op("Sub", [b.op("Mul", [kept, b.f32(float(2 * k))]), pos])
    first = _chunked_topk_indices(b, rank_key, n, m, max_topk)                  # kept positions first, ascending
    rows = b.op("GatherElements", [boxes, b.op("Expand", [b.unsq(first, [2]), b.i64([n, m, 4])])], axis=1)
    rows = b.op("Div", [rows, s])
    count = b.op("Cast", [b.op("ReduceSum", [kept, b.i64([1])], keepdims=0)], to=TensorProto.INT32)
    rows = _zero_rows_past_count(b, rows, count, m)
    _pad_rows(b, rows, n, m, post, 4, outs[0] or None)
    b.op("Identity", [count], outs[1] if len(outs) > 1 and outs[1] else None)


# --------------------------------------------------------------------------- DetectionLayer
@expander("DetectionLayer")
def _expand_detection(b: _Builder, ins: Sequence[str], outs: Sequence[str], a: dict, shapes: Dict[str, Shape],
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
    cols = _decode(b, rois, d)
    s = b.f32(S)
    cols = [b.op("Mul", [c_, s]) for c_ in cols]
    win = [b.unsq(b.col(window, j), [1]) for j in range(4)]                         # [N, 1] each
    cols = _clip(b, cols, *win)
    cols = [b.op("Round", [c_]) for c_ in cols]
    refined = b.stack_last(cols)                                                    # [N, R, 4]
    cls = b.reshape(cls, [n, r])

    cand = b.op("Greater", [cls, b.i64(0)])
    rows_i = b.const(np.arange(r, dtype=np.int32)[None, :], np.int32, "rows")
    cnt = b.unsq(b.op("Cast", [roi_count], to=TensorProto.INT32), [1])
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
    kept = _kept_mask(b, sel, [n, r])                                              # [N, R]
    key = b.op("Where", [b.op("Greater", [kept, b.f32(0.5)]), score, b.f32(-np.inf)])
    m = min(mi, r)
    top = _chunked_topk_indices(b, key, n, m, max_topk)                         # [N, m]
    table = b.op("Concat", [refined, b.unsq(b.op("Cast", [cls], to=TensorProto.FLOAT), [2]),
                            b.unsq(score, [2])], axis=2)                          # [N, R, 6]
    rows = b.op("GatherElements", [table, b.op("Expand", [b.unsq(top, [2]), b.i64([n, m, 6])])], axis=1)
    total = b.op("Min", [b.op("ReduceSum", [kept, b.i64([1])], keepdims=0), b.f32(float(mi))])
    count = b.op("Cast", [total], to=TensorProto.INT32)
    rows = _zero_rows_past_count(b, rows, count, m)
    _pad_rows(b, rows, n, m, mi, 6, outs[0] or None)
    b.op("Identity", [count], outs[1] if len(outs) > 1 and outs[1] else None)


# --------------------------------------------------------------------------- driver
def _static_shapes(model: onnx.ModelProto) -> Dict[str, Shape]:
    """Static shapes of every value known to shape inference (dynamic ones are left out)."""
    try:
        inferred = shape_inference.infer_shapes(model, check_type=False, strict_mode=False, data_prop=True)
    except Exception:  # noqa: BLE001 - fall back to what the graph declares
        inferred = model
    g = inferred.graph
    out: Dict[str, Shape] = {}
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        t = vi.type.tensor_type
        if not t.HasField("shape"):
            continue
        dims = []
        for d in t.shape.dim:
            if d.HasField("dim_value") and d.dim_value >= 0:
                dims.append(int(d.dim_value))
            else:
                dims = None
                break
        if dims is not None:
            out[vi.name] = tuple(dims)
    for init in g.initializer:
        out[init.name] = tuple(int(x) for x in init.dims)
    for node in g.node:
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            for attr in node.attribute:
                if attr.name == "value":
                    out[node.output[0]] = tuple(int(x) for x in attr.t.dims)
    return out


def _output_shapes(op: str, ins: Sequence[str], a: dict, shapes: Dict[str, Shape]) -> List[Shape]:
    return [tuple(int(x) for x in shp) for shp in output_shapes(op, [shapes[x] for x in ins], a)]


def _default_opset(model: onnx.ModelProto) -> Optional[int]:
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx"):
            return int(o.version)
    return None


def is_custom(node: onnx.NodeProto) -> bool:
    return node.domain == DOMAIN and node.op_type in OPS


def expand_custom_nodes(model: onnx.ModelProto, opset: int = 17, *,
                        max_topk: Optional[int] = TOPK_MAX_K) -> onnx.ModelProto:
    """Return a copy of ``model`` with every ``mrcnn`` custom node replaced by standard ONNX ops.

    Args:
        model: the trt-flavor model. Each custom node's inputs must have static
            shapes (from the graph's value_info or ONNX shape inference);
            float32 tensors, counts int32 (``plugins/opdefs.py``).
        opset: ai.onnx opset to import when ``model`` imports none (e.g. a graph
            of custom nodes only). A model that imports ai.onnx keeps its
            version, which must be in [16, 24].
        max_topk: largest K of an emitted ``TopK`` (TensorRT supports K <=
            3840); larger selections (ProposalLayer's pre_nms_topk = 6000)
            are made in exact chunks. None: one TopK of any size.
    Returns:
        A new model: same graph inputs/outputs and value names, custom nodes
        replaced in place by their subgraphs (node names and intermediate
        values prefixed with the custom node's name), the ``mrcnn`` opset import
        removed, shapes re-inferred. ``ir_version`` is kept.
    Raises:
        ValueError: unknown ``mrcnn`` op, bad attributes, wrong input count,
        non-static or inconsistent input shapes, non-float32 data, opset out of range.
    """
    out = onnx.ModelProto()
    out.CopyFrom(model)
    have = _default_opset(out)
    target = have if have is not None else int(opset)
    if not MIN_OPSET <= target <= MAX_OPSET:
        raise ValueError(f"the standard flavor needs ai.onnx opset {MIN_OPSET}..{MAX_OPSET} (GridSample); "
                         f"the model {'imports' if have is not None else 'would import'} opset {target}")
    if have is None:
        out.opset_import.append(helper.make_opsetid("", target))

    g = out.graph
    for node in g.node:
        if node.domain == DOMAIN and node.op_type not in OPS:
            raise ValueError(f"unknown {DOMAIN} op {node.op_type!r} (node {node.name!r})")
        if is_custom(node) and node.op_type not in EXPANDERS:
            raise ValueError(f"{DOMAIN} op {node.op_type!r} has no standard-ONNX expansion (node {node.name!r})")

    taken = {v for node in g.node for v in list(node.input) + list(node.output)}
    taken |= {node.name for node in g.node}
    taken |= {x.name for x in list(g.input) + list(g.output) + list(g.initializer) + list(g.value_info)}
    elem_types = {}
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        elem_types[vi.name] = vi.type.tensor_type.elem_type
    for init in g.initializer:
        elem_types[init.name] = init.data_type

    counter = 0
    while any(is_custom(nd) for nd in g.node):
        shapes = _static_shapes(out)
        progress = False
        new_nodes: List[onnx.NodeProto] = []
        missing = []
        for node in g.node:
            if not is_custom(node):
                new_nodes.append(node)
                continue
            op = node.op_type
            ins = list(node.input)
            if len(ins) != len(_INPUTS[op]) or any(not x for x in ins):
                raise ValueError(f"{op} node {node.name!r} needs inputs {', '.join(_INPUTS[op])}; got {ins}")
            if len(node.output) > _OUTPUTS[op]:
                raise ValueError(f"{op} node {node.name!r} has {len(node.output)} outputs, expected {_OUTPUTS[op]}")
            unknown = [x for x in ins if x not in shapes]
            if unknown:
                missing.append(f"{op} {node.name!r}: {', '.join(unknown)}")
                new_nodes.append(node)
                continue
            attrs = validate_attrs(op, {at.name: helper.get_attribute_value(at) for at in node.attribute})
            for x, t in zip(ins, OP_DEFS[op].inputs):
                et = elem_types.get(x)
                want = TensorProto.INT32 if t.role == "i32" else TensorProto.FLOAT
                if et not in (None, TensorProto.UNDEFINED, want):
                    raise ValueError(f"{op} node {node.name!r}: input {t.name} ({x}) has type "
                                     f"{TensorProto.DataType.Name(et)}, expected {TensorProto.DataType.Name(want)}")
            bind_shapes(op, [shapes[x] for x in ins], attrs)   # the contract's shape rules
            counter += 1
            prefix = f"std{counter}_{node.name or op}"
            b = _Builder(prefix, taken, target)
            outs = list(node.output)
            EXPANDERS[op](b, ins, outs, attrs, shapes, max_topk)
            new_nodes.extend(b.nodes)
            g.initializer.extend(b.inits)
            for name, shp, t in zip(outs, _output_shapes(op, ins, attrs, shapes), OP_DEFS[op].outputs):
                et = TensorProto.INT32 if t.role == "i32" else TensorProto.FLOAT
                if name:
                    shapes[name] = shp
                    elem_types[name] = et
            progress = True
        del g.node[:]
        g.node.extend(new_nodes)
        if not progress:
            raise ValueError("cannot expand custom nodes: inputs without a static shape: " + "; ".join(missing))

    leftover = [f"function {f.name}" for f in out.functions for nd in f.node if nd.domain == DOMAIN]
    leftover += [f"subgraph of {nd.name or nd.op_type}" for nd in g.node for at in nd.attribute
                 if at.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
                 for sg in ([at.g] if at.type == onnx.AttributeProto.GRAPH else list(at.graphs))
                 for inner in sg.node if inner.domain == DOMAIN]
    if leftover:
        raise ValueError(f"{DOMAIN} nodes outside the main graph are not supported: {', '.join(leftover)}")
    keep = [o for o in out.opset_import if o.domain != DOMAIN]
    del out.opset_import[:]
    out.opset_import.extend(keep)
    try:
        out = shape_inference.infer_shapes(out, check_type=True, strict_mode=False, data_prop=True)
    except Exception:  # noqa: BLE001 - keep the graph without extra value_info
        pass
    return out
