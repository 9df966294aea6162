"""PyramidROIAlign as standard ONNX ops (the standard flavor, ``export/standardize.py``).

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

``expand(b, inputs, outputs, attrs, shapes, max_topk)`` adds the subgraph to ``b``
(:class:`mrcnn_trt.plugins.onnx_builder.Builder`); it reproduces ``reference.py``.
"""
from __future__ import annotations

import math
from typing import Dict, Optional, Sequence

import numpy as np

from ..onnx_builder import Builder, Shape


def expand(b: Builder, ins: Sequence[str], outs: Sequence[str], a: dict, shapes: Dict[str, Shape],
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
    # level (reference.roi_levels)
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
        # reference.crop_and_resize: in = lo*(H-1) + i*((hi-lo)*(H-1)/(P-1)), valid iff 0 <= in <= H-1
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
