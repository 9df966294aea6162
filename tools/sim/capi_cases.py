"""The C-ABI library (libmrcnn_cuda_ops.so) driven from Python, against the CPU operators.

Run by tools/sim_check.sh under GPGPU-Sim (there is no PyTorch CUDA there): every call
goes through ``mrcnn_trt.plugins.cuda.launch`` -- the argument marshalling, workspace size
and stream argument of ``torch.ops.mrcnn.*`` on CUDA (``cuda.run``) -- with device buffers
from the CUDA runtime (ctypes) and a stream of its own. The reference is
``mrcnn_trt.plugins.cpu.run``, the CPU kernel of the same operators. Every output element
must be bit-identical.

Cases: the three ops in float32 and float16, then the ProposalLayer / DetectionLayer /
PyramidROIAlign edge cases of the CPU tests (zero valid boxes, all boxes suppressed, ties,
post_nms_topk / max_instances reached, batches with different counts per image,
degenerate and out-of-image boxes, float16 overflow). Each case also checks, on the CPU
result, that its input really produces the edge it is named after.

Protocol (tools/sim/simrun.py): ``CASE <name>`` then ``RESULT {json}`` per case.

    python tools/sim/capi_cases.py --lib build/sim/libmrcnn_cuda_ops.so [--only OP,...] [--list]
"""
from __future__ import annotations

import argparse
import ctypes
import json
import math
import os
import sys
import time
import traceback
import zlib

import numpy as np

from mrcnn_trt.plugins import cpu, cuda, opdefs

STD4 = [0.1, 0.1, 0.2, 0.2]
CASES = []   # (name, op, builder)


def case(name: str, op: str):
    def deco(fn):
        CASES.append((name, op, fn))
        return fn
    return deco


# ------------------------------------------------------------------ CUDA runtime
class Cudart:
    """The CUDA runtime the library loaded (the simulator's), through ctypes."""

    def __init__(self, lib_path: str):
        path = None
        with open("/proc/self/maps") as f:
            for line in f:
                p = line.split()[-1]
                if "libcudart.so" in os.path.basename(p):
                    path = p
                    break
        if path is None:
            raise RuntimeError(f"{lib_path} did not load a libcudart.so")
        self.path = path
        self.rt = ctypes.CDLL(path)
        self.rt.cudaGetErrorString.restype = ctypes.c_char_p
        self.rt.cudaMalloc.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_size_t]
        self.rt.cudaFree.argtypes = [ctypes.c_void_p]
        self.rt.cudaMemcpy.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        self.rt.cudaStreamCreate.argtypes = [ctypes.POINTER(ctypes.c_void_p)]
        self.rt.cudaStreamSynchronize.argtypes = [ctypes.c_void_p]

    def check(self, rc: int, what: str) -> None:
        if rc != 0:
            raise RuntimeError(f"{what}: {self.rt.cudaGetErrorString(rc).decode()} ({rc})")

    def malloc(self, nbytes: int) -> int:
        p = ctypes.c_void_p()
        self.check(self.rt.cudaMalloc(ctypes.byref(p), max(1, nbytes)), "cudaMalloc")
        return p.value

    def free(self, p: int) -> None:
        self.rt.cudaFree(p)

    def upload(self, a: np.ndarray) -> int:
        a = np.ascontiguousarray(a)
        p = self.malloc(a.nbytes)
        if a.nbytes:
            self.check(self.rt.cudaMemcpy(p, a.ctypes.data, a.nbytes, 1), "cudaMemcpy H2D")
        return p

    def download(self, p: int, shape, dtype) -> np.ndarray:
        a = np.empty(shape, dtype=dtype)
        if a.nbytes:
            self.check(self.rt.cudaMemcpy(a.ctypes.data, p, a.nbytes, 2), "cudaMemcpy D2H")
        return a

    def stream(self) -> int:
        s = ctypes.c_void_p()
        self.check(self.rt.cudaStreamCreate(ctypes.byref(s)), "cudaStreamCreate")
        return s.value

    def sync(self, s: int) -> None:
        self.check(self.rt.cudaStreamSynchronize(s), "cudaStreamSynchronize")


# ------------------------------------------------------------------ comparison
def compare(got: np.ndarray, want: np.ndarray):
    """(mismatching elements by bits, max |got - want| over them; inf when NaN is involved)."""
    if got.shape != want.shape or got.dtype != want.dtype:
        raise AssertionError(f"shape/dtype {got.shape} {got.dtype} vs CPU {want.shape} {want.dtype}")
    uint = {2: np.uint16, 4: np.uint32, 8: np.uint64}[got.dtype.itemsize]
    bad = got.reshape(-1).view(uint) != want.reshape(-1).view(uint)
    n = int(bad.sum())
    if n == 0:
        return 0, 0.0
    g = got.reshape(-1)[bad].astype(np.float64)
    w = want.reshape(-1)[bad].astype(np.float64)
    d = np.abs(g - w)
    d[np.isnan(d)] = np.inf
    return n, float(d.max())


def run_case(rt: Cudart, stream: int, name: str, op: str, build) -> dict:
    import torch

    print(f"CASE {name}", flush=True)
    t0 = time.monotonic()
    res = {"case": name, "elements": 0, "mismatches": 0, "max_abs_diff": 0.0}
    ptrs = []
    try:
        inputs, attrs, float16, expect = build(np.random.default_rng(zlib.crc32(name.encode())))
        attrs = opdefs.validate_attrs(op, attrs)
        d = opdefs.op_def(op)
        shapes = [tuple(x.shape) for x in inputs]
        out_shapes = opdefs.output_shapes(op, shapes, attrs, extra=True)
        dts = {"f32": np.float32, "i32": np.int32, "data": np.float16 if float16 else np.float32}
        out_dtypes = [dts[t.role] for t in d.outputs + d.extra_outputs]
        ins = [rt.upload(x) for x in inputs]
        ptrs += ins
        outs = [rt.malloc(int(np.prod(s)) * np.dtype(t).itemsize) for s, t in zip(out_shapes, out_dtypes)]
        ptrs += outs
        ws_bytes = cuda.workspace_size(op, attrs, shapes)
        ws = rt.malloc(ws_bytes)
        ptrs.append(ws)
        cuda.launch(op, attrs, shapes, float16, [p if x.size else 0 for p, x in zip(ins, inputs)], outs, ws,
                    ws_bytes, 0, stream)
        rt.sync(stream)
        got = [rt.download(p, s, t) for p, s, t in zip(outs, out_shapes, out_dtypes)]
        want = [w.numpy() for w in cpu.run(op, [torch.from_numpy(x) for x in inputs], attrs, threads=1)]
        names = [t.name for t in d.outputs + d.extra_outputs]
        for o, (g, w) in enumerate(zip(got, want)):
            w = w.astype(g.dtype, copy=False)
            n, m = compare(g, w)
            res["elements"] += g.size
            res["mismatches"] += n
            res["max_abs_diff"] = max(res["max_abs_diff"], m)
            if n:   # the first differing elements, for the log
                uint = {2: np.uint16, 4: np.uint32}[g.dtype.itemsize]
                idx = np.argwhere(g.view(uint) != w.view(uint))[:5]
                for i in idx:
                    print(f"  {names[o]}{list(map(int, i))}: GPU {g[tuple(i)]!r} ({int(g.view(uint)[tuple(i)]):#x}) "
                          f"CPU {w[tuple(i)]!r} ({int(w.view(uint)[tuple(i)]):#x})", flush=True)
        if expect is not None:
            why = expect(want)
            if why:
                res["error"] = f"the input does not exercise this case: {why}"
    except Exception as e:  # reported per case; the summary fails on it
        res["error"] = f"{type(e).__name__}: {e}"
        traceback.print_exc(file=sys.stdout)
    finally:
        for p in ptrs:
            rt.free(p)
    res["seconds"] = round(time.monotonic() - t0, 3)
    if math.isinf(res["max_abs_diff"]):
        res["max_abs_diff"] = 1e308
    print("RESULT " + json.dumps(res), flush=True)
    return res


# ------------------------------------------------------------------ inputs
def boxes_norm(rng, shape, lo=-0.1, hi=1.0):
    y = rng.uniform(lo, hi, shape).astype(np.float32)
    x = rng.uniform(lo, hi, shape).astype(np.float32)
    h = rng.uniform(0.0, 0.6, shape).astype(np.float32)
    w = rng.uniform(0.0, 0.6, shape).astype(np.float32)
    return np.stack([y, x, y + h, x + w], -1)


def anchors_px(rng, a, lo, hi, size=(4, 100)):
    cy, cx = rng.uniform(lo, hi, a), rng.uniform(lo, hi, a)
    h, w = rng.uniform(*size, a), rng.uniform(*size, a)
    return np.stack([cy - h / 2, cx - w / 2, cy + h / 2, cx + w / 2], -1).astype(np.float32)


def maps(rng, n, c, size, dt):
    return [rng.uniform(-4, 4, (n, c, size >> l, size >> l)).astype(dt) for l in range(2, 6)]


def counts(*want):
    def check(outs):
        got = outs[1].tolist()
        return None if got == list(want) else f"CPU counts {got}, want {list(want)}"
    return check


# --- PyramidROIAlign
def _pyramid(float16):
    def build(rng):
        dt = np.float16 if float16 else np.float32
        b = boxes_norm(rng, (2, 24))
        b[0, 3, 2] = b[0, 3, 0]                                  # zero height
        b[1, 5] = [1.2, 1.3, 1.5, 1.6]                           # outside the image
        return [b] + maps(rng, 2, 3, 256, dt), dict(pooled_size=7, image_size=256), float16, None
    return build


case("PyramidROIAlign fp32", "PyramidROIAlign")(_pyramid(False))
case("PyramidROIAlign fp16", "PyramidROIAlign")(_pyramid(True))


@case("PyramidROIAlign NaN/inf/degenerate boxes", "PyramidROIAlign")
def _pyr_nan(rng):
    nan, inf = float("nan"), float("inf")
    b = np.array([[[nan, 0.1, 0.5, 0.5], [0.1, 0.1, nan, nan], [0.0, 0.0, inf, 0.5], [0.3, 0.3, 0.3, 0.3],
                   [-0.5, -0.5, -0.1, -0.1], [0.1, 0.1, 0.6, 0.6]]], np.float32)
    m = [x + 5 for x in maps(rng, 1, 2, 64, np.float32)]

    def expect(outs):
        c = outs[0]
        return None if (c[0, :3] == 0).all() and (c[0, 5] != 0).all() else "non-finite boxes did not give zero crops"
    return [b] + m, dict(pooled_size=7, image_size=64), False, expect


@case("PyramidROIAlign no ROIs (R = 0)", "PyramidROIAlign")
def _pyr_empty(rng):
    return [np.zeros((2, 0, 4), np.float32)] + maps(rng, 2, 3, 64, np.float32), dict(pooled_size=7, image_size=64), \
        False, None


# --- ProposalLayer
def _proposal(float16):
    def build(rng):
        dt = np.float16 if float16 else np.float32
        a = 1500
        s = (rng.integers(0, 64, (2, a)) / 64).astype(dt)   # many ties
        s[0, 17] = np.nan
        d = rng.uniform(-1, 1, (2, a, 4)).astype(dt)
        return [s, d, anchors_px(rng, a, -20, 276)], dict(pre_nms_topk=600, post_nms_topk=150,
                                                            rpn_bbox_std_dev=STD4, image_size=256), float16, None
    return build


case("ProposalLayer fp32", "ProposalLayer")(_proposal(False))
case("ProposalLayer fp16", "ProposalLayer")(_proposal(True))


@case("ProposalLayer zero anchors (no valid box)", "ProposalLayer")
def _prop_zero(rng):
    return [np.zeros((2, 0), np.float32), np.zeros((2, 0, 4), np.float32), np.zeros((0, 4), np.float32)], \
        dict(pre_nms_topk=10, post_nms_topk=5, image_size=64), False, counts(0, 0)


@case("ProposalLayer all boxes suppressed but one", "ProposalLayer")
def _prop_same(rng):
    a = 50
    same = np.tile(np.array([[10, 10, 30, 30]], np.float32), (a, 1))
    return [rng.random((1, a), dtype=np.float32), np.zeros((1, a, 4), np.float32), same], \
        dict(pre_nms_topk=100, post_nms_topk=20, nms_threshold=0.7, image_size=64), False, counts(1)


@case("ProposalLayer post_nms_topk reached, score ties", "ProposalLayer")
def _prop_max(rng):
    a = 300
    return [np.full((1, a), 0.5, np.float32), rng.uniform(-1, 1, (1, a, 4)).astype(np.float32),
            anchors_px(rng, a, 0, 64)], \
        dict(pre_nms_topk=200, post_nms_topk=40, nms_threshold=1.0, image_size=64), False, counts(40)


@case("ProposalLayer batch 3, different counts", "ProposalLayer")
def _prop_batch(rng):
    a = 200
    anchors = anchors_px(rng, a, 0, 128)
    s = rng.random((3, a), dtype=np.float32)
    s[1] = np.nan                                     # image 1: every score NaN
    d = rng.uniform(-1, 1, (3, a, 4)).astype(np.float32)
    d[2] = 0
    anchors[::3] = [40, 40, 80, 80]                   # image 2: a third of the boxes identical

    def expect(outs):
        c = outs[1].tolist()
        return None if len(set(c)) == 3 else f"counts {c} are not all different"
    return [s, d, anchors], dict(pre_nms_topk=150, post_nms_topk=100, nms_threshold=0.5, image_size=128), False, \
        expect


@case("ProposalLayer degenerate and out-of-image anchors", "ProposalLayer")
def _prop_degenerate(rng):
    a = 400
    anchors = anchors_px(rng, a, -150, 250, size=(0, 60))
    anchors[::4, 2] = anchors[::4, 0]                 # zero height
    anchors[1::4] += 500                              # entirely outside: clipped to the border
    return [rng.random((2, a), dtype=np.float32), rng.uniform(-2, 2, (2, a, 4)).astype(np.float32), anchors], \
        dict(pre_nms_topk=300, post_nms_topk=120, nms_threshold=0.6, image_size=128), False, None


@case("ProposalLayer fp16 overflow (huge deltas)", "ProposalLayer")
def _prop_overflow(rng):
    a = 300
    d = rng.uniform(-1, 1, (2, a, 4)).astype(np.float16)
    d[:, ::2, 2:] = np.float16(60000.0)                # exp(dh * 0.2) overflows: infinite boxes, clipped
    d[:, 1::5, :2] = np.float16(-65504.0)
    return [(rng.integers(0, 32, (2, a)) / 32).astype(np.float16), d, anchors_px(rng, a, 0, 512)], \
        dict(pre_nms_topk=200, post_nms_topk=80, nms_threshold=0.7, image_size=512), True, None


# --- DetectionLayer
def _det_inputs(rng, n, r, k, dt, count):
    rois = boxes_norm(rng, (n, r), 0.0, 0.9)
    p = rng.integers(1, 17, (n, r, k)).astype(np.float32)
    p /= p.sum(-1, keepdims=True)                        # ties between classes and ROIs
    d = rng.uniform(-0.5, 0.5, (n, r, k, 4)).astype(dt)
    win = np.tile(np.array([[0, 0, 256, 256]], np.float32), (n, 1))
    win[-1] = [32, 0, 224, 256]
    return [rois, np.array(count, np.int32), p.astype(dt), d, win]


def _detection(float16):
    def build(rng):
        dt = np.float16 if float16 else np.float32
        return _det_inputs(rng, 2, 200, 6, dt, [150, 200]), dict(num_classes=6, min_confidence=0.3,
                                                                    nms_threshold=0.3, max_instances=60,
                                                                    image_size=256), float16, None
    return build


case("DetectionLayer fp32", "DetectionLayer")(_detection(False))
case("DetectionLayer fp16", "DetectionLayer")(_detection(True))


@case("DetectionLayer zero valid ROIs", "DetectionLayer")
def _det_zero(rng):
    return _det_inputs(rng, 2, 40, 4, np.float32, [0, 0]), dict(num_classes=4, image_size=256), False, counts(0, 0)


@case("DetectionLayer no ROIs (R = 0)", "DetectionLayer")
def _det_r0(rng):
    return _det_inputs(rng, 2, 0, 4, np.float32, [0, 0]), dict(num_classes=4, image_size=256), False, counts(0, 0)


@case("DetectionLayer all suppressed but one per class", "DetectionLayer")
def _det_same(rng):
    n, r, k = 1, 60, 3
    x = _det_inputs(rng, n, r, k, np.float32, [r])
    x[0][:] = [0.2, 0.2, 0.6, 0.6]
    x[3][:] = 0
    p = np.zeros((n, r, k), np.float32)
    p[0, np.arange(r), 1 + np.arange(r) % 2] = 0.9       # classes 1 and 2 alternate, same box
    p[0, :, 0] = 0.1
    x[2] = p
    return x, dict(num_classes=k, min_confidence=0.5, nms_threshold=0.3, image_size=256), False, counts(2)


@case("DetectionLayer max_instances reached, ties", "DetectionLayer")
def _det_max(rng):
    n, r, k = 2, 300, 5
    x = _det_inputs(rng, n, r, k, np.float32, [300, 250])
    x[2][:] = 0.2                                        # every class ties: argmax = class 0 ...
    x[2][:, ::2, 3] = 0.25                               # ... except half the ROIs, all equal scores
    return x, dict(num_classes=k, min_confidence=0.0, nms_threshold=0.9, max_instances=20, image_size=256), \
        False, counts(20, 20)


@case("DetectionLayer batch 3, counts 0 / 17 / over R", "DetectionLayer")
def _det_batch(rng):
    x = _det_inputs(rng, 3, 40, 4, np.float32, [0, 17, 43])
    x[2][1, 17:] = np.nan                                # rows past the count: never read
    x[0][1, 17:] = 1e30

    def expect(outs):
        c = outs[1].tolist()
        return None if c[0] == 0 and 0 < c[1] <= 17 and c[2] > 0 else f"counts {c}"
    return x, dict(num_classes=4, min_confidence=0.0, nms_threshold=0.5, max_instances=30, image_size=256), False, \
        expect


@case("DetectionLayer degenerate/out-of-image ROIs, NaN scores", "DetectionLayer")
def _det_degenerate(rng):
    n, r, k = 2, 80, 4
    x = _det_inputs(rng, n, r, k, np.float32, [80, 60])
    x[0][:, ::5, 2] = x[0][:, ::5, 0]                     # zero height
    x[0][:, 1::5] += 1.5                                  # outside the image: clipped to the window
    x[2][:, 2::7, 1] = np.nan                             # NaN wins the argmax
    return x, dict(num_classes=k, min_confidence=0.0, nms_threshold=0.5, max_instances=50, image_size=256), \
        False, None


@case("DetectionLayer fp16 overflow (huge deltas)", "DetectionLayer")
def _det_overflow(rng):
    n, r, k = 2, 120, 4
    x = _det_inputs(rng, n, r, k, np.float16, [120, 90])
    x[3][:, ::3, :, 2:] = np.float16(60000.0)
    x[3][:, 1::4, :, :2] = np.float16(-65504.0)
    return x, dict(num_classes=k, min_confidence=0.2, nms_threshold=0.5, max_instances=40, image_size=256), \
        True, None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lib", required=True, help="libmrcnn_cuda_ops.so to drive")
    ap.add_argument("--only", help="comma-separated ops")
    ap.add_argument("--case", help="only the cases whose name contains this")
    ap.add_argument("--list", action="store_true", help="list the cases and exit")
    a = ap.parse_args(argv)
    only = set(a.only.split(",")) if a.only else None
    todo = [c for c in CASES if (only is None or c[1] in only) and (a.case is None or a.case in c[0])]
    if a.list:
        print("\n".join(f"{op}\t{name}" for name, op, _ in todo))
        return 0
    os.environ["MRCNN_CUDA_OPS"] = os.path.abspath(a.lib)   # read by cuda.library()
    cuda.library()
    info = cuda.info()
    rt = Cudart(a.lib)
    print(f"library {a.lib}: debug_checks {info.get('debug_checks')}, archs {info['archs']}; runtime {rt.path}",
          flush=True)
    rt.check(rt.rt.cudaSetDevice(0), "cudaSetDevice")
    stream = rt.stream()
    results = [run_case(rt, stream, name, op, fn) for name, op, fn in todo]
    bad = [r for r in results if r["mismatches"] or "error" in r]
    print(f"{len(results)} cases, {len(bad)} failed", flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
