"""Building blocks of the standard-ONNX expansions of the custom ops (``plugins/<op>/expand.py``).

:class:`Builder` collects the nodes and initializers of one expansion under a
unique name prefix; the helpers below are the ONNX spellings of the reference's
building blocks (``plugins/reference.py``: box decoding and clipping, in the
same operation order) and of the selections every expansion needs (the kept
mask of ``NonMaxSuppression``, a ``TopK`` made in chunks for TensorRT's limit,
zeroing and padding rows past a count). ``export/standardize.py`` drives them.
``onnx`` is imported at first use.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple, Union

import numpy as np

from mrcnn_trt.lazy import lazy_import

onnx = lazy_import("onnx")

FLT_MAX = float(np.finfo(np.float32).max)

Shape = Tuple[int, ...]


class Builder:
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
        self.inits.append(onnx.numpy_helper.from_array(arr, name))
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
        self.nodes.append(onnx.helper.make_node(op_type, list(inputs), outs, name=self.fresh(op_type), **attrs))
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


def decode(b: Builder, boxes: str, deltas: str) -> List[str]:
    """``reference.apply_box_deltas`` column by column, same operation order. Returns [y1, x1, y2, x2]."""
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


def clip(b: Builder, cols: Sequence[str], wy1: str, wx1: str, wy2: str, wx2: str) -> List[str]:
    """``reference.clip_boxes``: min(max(v, lo), hi) per coordinate."""
    y1, x1, y2, x2 = cols
    return [b.op("Min", [b.op("Max", [y1, wy1]), wy2]), b.op("Min", [b.op("Max", [x1, wx1]), wx2]),
            b.op("Min", [b.op("Max", [y2, wy1]), wy2]), b.op("Min", [b.op("Max", [x2, wx1]), wx2])]


def kept_mask(b: Builder, selected: str, shape: Sequence[int]) -> str:
    """float [N, B] mask, 1 at the (batch, box) pairs listed in NMS ``selected`` [M, 3]."""
    pairs = b.op("Gather", [selected, b.i64([0, 2])], axis=1)                     # [M, 2]
    first = b.op("Gather", [selected, b.i64(0)], axis=1)                          # [M]
    ones = b.op("Cast", [b.op("GreaterOrEqual", [first, b.i64(0)])], to=onnx.TensorProto.FLOAT)
    zeros = b.f32(np.zeros(shape, np.float32), "zeros")
    return b.op("ScatterND", [zeros, pairs, ones])


def zero_rows_past_count(b: Builder, rows: str, count_i32: str, m: int) -> str:
    """rows [N, m, D]: zero rows with index >= count [N]."""
    ar = b.const(np.arange(m, dtype=np.int32)[None, :], np.int32, "arange")
    valid = b.op("Less", [ar, b.unsq(count_i32, [1])])                            # [N, m]
    return b.op("Where", [b.unsq(valid, [2]), rows, b.f32(0.0)])


def pad_rows(b: Builder, rows: str, n: int, m: int, total: int, d: int, out: Optional[str]) -> str:
    if total == m:
        return b.op("Identity", [rows], out)
    pad = b.f32(np.zeros((n, total - m, d), np.float32), "pad")
    return b.op("Concat", [rows, pad], out, axis=1)


def chunked_topk_indices(b: Builder, key: str, n: int, k: int, max_topk: Optional[int]) -> str:
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
