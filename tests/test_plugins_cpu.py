"""The C++ CPU kernels (mrcnn_trt.plugins.cpu) against the PyTorch references (plugins/**/reference.py).

Bit-exact comparisons evaluate the reference with ``torch.exp``/``torch.log2``
computed in float64 and rounded once (``exact_transcendentals``): the kernels
use correctly rounded exp/log2 (plugins/common/mrcnn_math.h), while PyTorch's
float32 exp is off by one ulp for ~1% of inputs. One test compares against the
unpatched reference with a tolerance.

Independent cross-checks use ONNX Runtime's own ``NonMaxSuppression`` and
``GridSample`` operators.
"""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from mrcnn_trt.plugins.reference import crop_and_resize, nms
from mrcnn_trt.plugins.detection_layer.reference import detection_layer
from mrcnn_trt.plugins.proposal_layer.reference import proposal_layer
from mrcnn_trt.plugins.pyramid_roi_align.reference import pyramid_roi_align
from mrcnn_trt.plugins import cpu, opdefs

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
STD = (0.1, 0.1, 0.2, 0.2)


class Drawn:
    """The few ``numpy.random.Generator`` methods these tests use, with every value drawn by
    Hypothesis (``st.data()``), so that a failing case shrinks to small, simple numbers.

    Large arrays are Hypothesis arrays: a drawn background value with drawn values at a
    drawn subset of positions (many equal values: ties are part of the search)."""

    def __init__(self, data):
        self.data = data

    def _floats(self, shape, lo, hi, dtype=np.float32, exclude_max=False):
        width = 64 if np.dtype(dtype) == np.float64 else 32
        if width == 32:   # Hypothesis wants bounds that float32 represents exactly
            lo, hi = float(np.float32(lo)), float(np.float32(hi))
        elements = st.floats(lo, hi, width=width, exclude_max=exclude_max, allow_subnormal=False)
        return self.data.draw(arrays(dtype, shape, elements=elements))

    def uniform(self, lo, hi, size):
        return self._floats(size, lo, hi)

    def random(self, shape, dtype=np.float64):
        return self._floats(shape, 0.0, 1.0, dtype, exclude_max=True)

    def standard_normal(self, shape, dtype=np.float32):
        return self._floats(shape, -4.0, 4.0, dtype)

    def integers(self, lo, hi, size):
        return self.data.draw(arrays(np.int64, size, elements=st.integers(lo, hi - 1)))

    def permutation(self, k):
        return np.array(self.data.draw(st.permutations(range(k))), dtype=np.int64)


def assert_same(a: torch.Tensor, b: torch.Tensor):
    """Identical dtype, shape and values (NaN == NaN)."""
    assert a.dtype == b.dtype, (a.dtype, b.dtype)
    assert a.shape == b.shape, (a.shape, b.shape)
    torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True)


def ordered(b: np.ndarray) -> np.ndarray:
    """(y1, x1, y2, x2) with y1 <= y2 and x1 <= x2."""
    return np.concatenate([np.minimum(b[..., :2], b[..., 2:]), np.maximum(b[..., :2], b[..., 2:])], -1)


def make_boxes(rng, shape, lo: float, hi: float, mode: str) -> np.ndarray:
    """Boxes [..., 4] in [lo, hi] with edge cases: 'normal', 'degenerate' (zero height/width,
    points), 'inverted' (y1 > y2), 'grid' (coordinates on a coarse grid: ties and exact overlaps)."""
    b = rng.uniform(lo, hi, size=tuple(shape) + (4,)).astype(np.float32)
    if mode == "grid":
        step = (hi - lo) / 8
        b = (np.round((b - lo) / step) * step + lo).astype(np.float32)
    if mode != "inverted":
        b = ordered(b)
    if mode == "degenerate":
        flat = b.reshape(-1, 4)
        k = flat.shape[0]
        sel = rng.random(k)
        flat[sel < 0.3, 2] = flat[sel < 0.3, 0]           # zero height
        flat[(sel >= 0.3) & (sel < 0.6), 3] = flat[(sel >= 0.3) & (sel < 0.6), 1]  # zero width
        flat[sel >= 0.85, 2:] = flat[sel >= 0.85, :2]     # a point
    return b


def make_scores(rng, shape, mode: str) -> np.ndarray:
    """Scores in [0, 1]; 'ties' draws from 5 values, 'nan' sprinkles NaN, 'mixed' both."""
    s = rng.random(shape, dtype=np.float32)
    if mode in ("ties", "mixed"):
        s = (np.floor(s * 5) / 4).astype(np.float32)
    if mode in ("nan", "mixed"):
        s[rng.random(shape) < 0.15] = np.nan
    return s


def test_module_is_built():
    assert cpu.available(), "mrcnn_trt.plugins._cpu is missing: pip install -e ."


def test_half_conversions_match_numpy():
    """mrcnn_math.h half_to_float on every binary16 pattern; float_to_half (round to nearest even)
    on normal, subnormal, overflow and tie cases."""
    from mrcnn_trt.plugins import _cpu

    bits = np.arange(65536, dtype=np.uint16)
    want = bits.view(np.float16).astype(np.float32)
    got = _cpu.half_bits_to_float(bits)
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(got), nan)
    assert np.array_equal(got[~nan].view(np.uint32), want[~nan].view(np.uint32))  # also +-0

    rng = np.random.default_rng(0)
    f = np.concatenate([
        rng.standard_normal(200000).astype(np.float32) * np.float32(10.0) ** rng.integers(-9, 6, 200000),
        want[~nan],                                   # exactly representable
        (want[~nan].astype(np.float64) + np.float64(2.0) ** -25).astype(np.float32),  # near ties
        np.array([65504, 65519.99, 65520, 1e9, -1e9, np.inf, -np.inf, 2.0 ** -25, 2.0 ** -26, 3 * 2.0 ** -26,
                  -0.0], np.float32)]).astype(np.float32)
    with np.errstate(over="ignore"):
        expect = f.astype(np.float16).view(np.uint16)
    assert np.array_equal(_cpu.float_to_half_bits(f), expect)
    assert np.isnan(_cpu.half_bits_to_float(_cpu.float_to_half_bits(np.array([np.nan], np.float32))))[0]


# --------------------------------------------------------------------------- attributes
def test_cpp_attribute_tables_match_opdefs():
    tables = cpu.attr_tables()
    assert set(tables) == set(opdefs.OPS)
    for op, attrs in opdefs.OPS.items():
        cpp = tables[op]
        assert [a["name"] for a in cpp] == [a.name for a in attrs], op
        for a, c in zip(attrs, cpp):
            assert c["type"] == a.type, (op, a.name)
            default = list(a.default) if a.type == "floats" else [a.default]
            assert c["default"] == pytest.approx(default, rel=0, abs=0), (op, a.name)
            assert c["length"] == (a.length if a.type == "floats" else 1)
            assert c["min"] == a.min and c["max"] == a.max, (op, a.name)
            assert c["doc"] == a.doc


def test_cpp_param_struct_defaults_match_opdefs():
    got = cpu.param_defaults()
    for op, attrs in opdefs.OPS.items():
        for a in attrs:
            v = got[op][a.name]
            if a.type == "int":
                assert isinstance(v, int) and v == a.default, (op, a.name, v)
            elif a.type == "float":
                assert v == pytest.approx(float(np.float32(a.default)), rel=0, abs=0), (op, a.name, v)
            else:
                assert v == pytest.approx([float(np.float32(x)) for x in a.default], rel=0, abs=0)


@pytest.mark.parametrize("op,attrs,msg", [
    ("PyramidROIAlign", {"pooled_size": 1}, "PyramidROIAlign.pooled_size = 1 is out of range [2, 64]"),
    ("PyramidROIAlign", {"canonical_level": 6}, "canonical_level = 6 is out of range"),
    ("PyramidROIAlign", {"canonical_size": float("nan")}, "PyramidROIAlign.canonical_size must be finite"),
    ("ProposalLayer", {"nms_threshold": 1.5}, "ProposalLayer.nms_threshold = 1.5 is out of range [0, 1]"),
    ("ProposalLayer", {"rpn_bbox_std_dev": [0.1, 0.1, 0.2]}, "rpn_bbox_std_dev needs 4 value(s), got 3"),
    ("ProposalLayer", {"rpn_bbox_std_dev": [0.1, float("inf"), 0.2, 0.2]}, "rpn_bbox_std_dev must be finite"),
    ("ProposalLayer", {"pre_nms_topk": 2.5}, "pre_nms_topk must be an int"),
    ("DetectionLayer", {"max_instances": 0}, "DetectionLayer.max_instances = 0 is out of range"),
    ("DetectionLayer", {"num_clases": 3}, "DetectionLayer: unknown field 'num_clases'"),
])
def test_attribute_validation_errors(op, attrs, msg):
    with pytest.raises(ValueError, match=re.escape(msg)):
        cpu.validate(op, attrs)


def test_attribute_validation_fills_defaults_and_agrees_with_opdefs():
    def f32(v):  # the C++ side stores float attributes as float32 (as ONNX does)
        if isinstance(v, tuple):
            return tuple(float(np.float32(x)) for x in v)
        return float(np.float32(v)) if isinstance(v, float) else v

    for op in opdefs.OPS:
        attrs = {a.name: a.default for a in opdefs.OPS[op]}
        attrs[opdefs.OPS[op][0].name] = opdefs.OPS[op][0].min + 1  # a non-default value too
        want = {k: f32(v) for k, v in opdefs.validate_attrs(op, attrs).items()}
        assert cpu.validate(op, attrs) == want
        assert cpu.validate(op, {}) == {k: f32(v) for k, v in opdefs.validate_attrs(op, {}).items()}
    with pytest.raises(ValueError, match="out of range"):
        cpu.pyramid_roi_align(torch.zeros(1, 1, 4), [torch.zeros(1, 1, 4, 4)] * 4, pool_size=65, image_size=64)


# --------------------------------------------------------------------------- crop_and_resize
@SETTINGS
@given(data=st.data(), n=st.integers(1, 2), c=st.integers(1, 3), h=st.integers(1, 12),
       w=st.integers(1, 12), k=st.integers(0, 6), p=st.integers(2, 9),
       mode=st.sampled_from(["normal", "degenerate", "inverted", "grid"]),
       half=st.booleans(), extrapolation=st.sampled_from([0.0, -1.5]))
def test_crop_and_resize_matches_reference(data, n, c, h, w, k, p, mode, half, extrapolation):
    rng = Drawn(data)
    image = torch.from_numpy(rng.standard_normal((n, c, h, w), dtype=np.float32))
    if half:
        image = image.half()
    boxes = torch.from_numpy(make_boxes(rng, (k,), -0.5, 1.5, mode))  # partly outside the map
    box_ind = torch.from_numpy(rng.integers(0, n, k))
    want = crop_and_resize(image, boxes, box_ind, p, extrapolation)
    got = cpu.crop_and_resize(image, boxes, box_ind, p, extrapolation, threads=2)
    assert_same(got, want)


def test_crop_and_resize_rejects_bad_box_index():
    with pytest.raises(ValueError, match="box_ind"):
        cpu.crop_and_resize(torch.zeros(1, 1, 4, 4), torch.zeros(1, 4), torch.tensor([1]), 2)


def _ort_session(graph_nodes, inputs, outputs, opset=17):
    import onnx
    import onnxruntime as ort

    g = onnx.helper.make_graph(graph_nodes, "g", inputs, outputs)
    m = onnx.helper.make_model(g, opset_imports=[onnx.helper.make_opsetid("", opset)])
    m.ir_version = 8
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    return ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])


@settings(max_examples=15, deadline=None)
@given(data=st.data(), h=st.integers(2, 16), w=st.integers(2, 16), p=st.integers(2, 8))
def test_crop_and_resize_agrees_with_ort_gridsample(data, h, w, p):
    """Independent check: bilinear sampling of in-range boxes equals GridSample(align_corners=1)."""
    import onnx
    from onnx import TensorProto

    rng = Drawn(data)
    k, c = 5, 3
    image = rng.standard_normal((1, c, h, w), dtype=np.float32)
    boxes = make_boxes(rng, (k,), 0.0, 1.0, "normal")
    got = cpu.crop_and_resize(torch.from_numpy(image), torch.from_numpy(boxes), torch.zeros(k, dtype=torch.long), p)
    # sample positions in pixels (float64), then GridSample's normalized [-1, 1] grid
    i = np.arange(p, dtype=np.float64)
    b = boxes.astype(np.float64)
    ys = b[:, 0:1] * (h - 1) + i * (b[:, 2:3] - b[:, 0:1]) * (h - 1) / (p - 1)   # K,P
    xs = b[:, 1:2] * (w - 1) + i * (b[:, 3:4] - b[:, 1:2]) * (w - 1) / (p - 1)
    gy = np.clip(ys / (h - 1) * 2 - 1, -1, 1)
    gx = np.clip(xs / (w - 1) * 2 - 1, -1, 1)
    grid = np.stack([np.broadcast_to(gx[:, None, :], (k, p, p)), np.broadcast_to(gy[:, :, None], (k, p, p))], -1)
    node = onnx.helper.make_node("GridSample", ["x", "grid"], ["y"], mode="bilinear", padding_mode="zeros",
                                 align_corners=1)
    sess = _ort_session([node], [onnx.helper.make_tensor_value_info("x", TensorProto.FLOAT, [k, c, h, w]),
                                 onnx.helper.make_tensor_value_info("grid", TensorProto.FLOAT, [k, p, p, 2])],
                        [onnx.helper.make_tensor_value_info("y", TensorProto.FLOAT, [k, c, p, p])], opset=16)
    (want,) = sess.run(None, {"x": np.repeat(image, k, 0), "grid": grid.astype(np.float32)})
    # a sample whose float32 position rounds past the last pixel (an edge at 1.0) is TF's
    # extrapolation value 0, where GridSample's clipped grid gives the edge pixel
    inside_y, inside_x = crop_positions_inside(boxes[:, 0], boxes[:, 2], h, p), crop_positions_inside(boxes[:, 1], boxes[:, 3], w, p)
    want = np.where(inside_y[:, None, :, None] & inside_x[:, None, None, :], want, 0.0)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-4, atol=1e-4)


def crop_positions_inside(b1, b2, size, p):
    """[K, P] bool: sample i of [b1, b2] lies on the map of ``size`` pixels, computed in
    float32 one rounding per operation as TF (and plugins/common/mrcnn_math.h crop_axis) do."""
    f = np.float32
    sm1 = f(size - 1)
    scale = (b2.astype(f) - b1.astype(f)) * sm1 / f(p - 1)
    pos = b1.astype(f)[:, None] * sm1 + np.arange(p, dtype=f)[None, :] * scale[:, None]
    return (pos >= 0) & (pos <= sm1)


def test_crop_and_resize_sample_rounding_past_the_edge_is_extrapolated():
    """Hand case: x1 = 0.028319672, x2 = 1.0 on a 15-pixel row, 2 samples: the second sits at
    0.028319672 * 14 + (1 - 0.028319672) * 14 = 14.000001 in float32, past pixel 14, so it is
    the extrapolation value 0 (TF crop_and_resize), not the edge pixel."""
    image = torch.arange(1, 31, dtype=torch.float32).reshape(1, 1, 2, 15)
    boxes = torch.tensor([[0.0, 0.028319672, 1.0, 1.0]], dtype=torch.float32)
    assert not crop_positions_inside(boxes[:, 1].numpy(), boxes[:, 3].numpy(), 15, 2)[0, 1]
    got = cpu.crop_and_resize(image, boxes, torch.zeros(1, dtype=torch.long), 2)
    want = crop_and_resize(image, boxes, torch.zeros(1, dtype=torch.long), 2)
    assert got[0, 0, :, 1].tolist() == [0.0, 0.0]
    assert got[0, 0, 0, 0].item() > 1.0   # the first column is sampled inside the row
    assert torch.equal(got, want)


# --------------------------------------------------------------------------- NMS
@SETTINGS
@given(data=st.data(), k=st.integers(0, 60), thr=st.sampled_from([0.0, 0.3, 0.5, 0.7, 1.0]),
       mode=st.sampled_from(["normal", "degenerate", "grid"]), smode=st.sampled_from(["normal", "ties", "nan", "mixed"]),
       max_keep=st.one_of(st.none(), st.integers(1, 20)))
def test_nms_matches_reference(data, k, thr, mode, smode, max_keep):
    rng = Drawn(data)
    boxes = torch.from_numpy(make_boxes(rng, (k,), 0, 40, mode))
    scores = torch.from_numpy(make_scores(rng, (k,), smode))
    want = nms(boxes, scores, thr, max_keep)
    got = cpu.nms(boxes, scores, thr, max_keep)
    assert_same(got, want)


@SETTINGS
@given(data=st.data(), k=st.integers(1, 80), thr=st.sampled_from([0.0, 0.25, 0.5, 0.7, 0.9]))
def test_nms_agrees_with_ort_nonmaxsuppression(data, k, thr):
    """Independent check: ORT's NonMaxSuppression (no +1, suppresses when IoU > threshold) on
    boxes with x2, y2 shifted by +1 equals our +1-area NMS. Integer coordinates make both
    IoUs exact quotients of the same integers, so even IoU == threshold cases agree;
    distinct scores because ORT's order of equal scores is unspecified."""
    import onnx
    from onnx import TensorProto

    rng = Drawn(data)
    boxes = ordered(rng.integers(0, 30, (k, 4)).astype(np.float32))
    scores = rng.permutation(k).astype(np.float32) / k
    got = cpu.nms(torch.from_numpy(boxes), torch.from_numpy(scores), thr)
    shifted = boxes.copy()
    shifted[:, 2:] += 1
    node = onnx.helper.make_node("NonMaxSuppression", ["b", "s", "m", "t"], ["sel"], center_point_box=0)
    sess = _ort_session(
        [node],
        [onnx.helper.make_tensor_value_info("b", TensorProto.FLOAT, [1, k, 4]),
         onnx.helper.make_tensor_value_info("s", TensorProto.FLOAT, [1, 1, k]),
         onnx.helper.make_tensor_value_info("m", TensorProto.INT64, [1]),
         onnx.helper.make_tensor_value_info("t", TensorProto.FLOAT, [1])],
        [onnx.helper.make_tensor_value_info("sel", TensorProto.INT64, [None, 3])])
    (sel,) = sess.run(None, {"b": shifted[None], "s": scores[None, None], "m": np.array([k], np.int64),
                             "t": np.array([thr], np.float32)})
    assert got.tolist() == sel[:, 2].tolist()


# --------------------------------------------------------------------------- PyramidROIAlign
def _pyramid(rng, n, c, image_size, half):
    maps = [torch.from_numpy(rng.standard_normal((n, c, image_size // s, image_size // s), dtype=np.float32))
            for s in (4, 8, 16, 32)]
    return [m.half() for m in maps] if half else maps


@SETTINGS
@given(data=st.data(), n=st.integers(1, 2), r=st.integers(0, 12), c=st.integers(1, 3),
       image_size=st.sampled_from([64, 128, 256]), p=st.sampled_from([2, 7, 14]),
       mode=st.sampled_from(["normal", "degenerate", "inverted", "grid"]), half=st.booleans(),
       canonical_size=st.sampled_from([224.0, 56.0]), canonical_level=st.integers(2, 5))
def test_pyramid_roi_align_matches_reference(exact_transcendentals, data, n, r, c, image_size, p, mode, half,
                                             canonical_size, canonical_level):
    rng = Drawn(data)
    maps = _pyramid(rng, n, c, image_size, half)
    boxes = torch.from_numpy(make_boxes(rng, (n, r), -0.2, 1.2, mode))
    want = pyramid_roi_align(boxes, maps, p, image_size, canonical_size, canonical_level)
    got = cpu.pyramid_roi_align(boxes, maps, p, image_size, canonical_size, canonical_level, threads=2)
    assert_same(got, want)


def test_pyramid_roi_align_levels_at_exact_sizes(exact_transcendentals):
    """Boxes whose level formula is an exact integer, or just around it, pick the reference's level.
    Each level map is a constant (its level number), so the crop reveals the level chosen."""
    s = 1024
    maps = [torch.full((1, 1, s // st_, s // st_), float(l)) for l, st_ in zip(range(2, 6), (4, 8, 16, 32))]
    sides = [224.0 * 2.0 ** e * f for e in (-3, -2, -1, 0, 1, 2) for f in (1.0, 1 + 1e-7, 1 - 1e-7, 2 ** 0.5)]
    sides += [0.0, 1e-30, float(s) * 4]
    boxes = torch.tensor([[0.0, 0.0, x / s, x / s] for x in sides], dtype=torch.float32)[None]
    want = pyramid_roi_align(boxes, maps, 2, s)
    got = cpu.pyramid_roi_align(boxes, maps, 2, s)
    assert_same(got, want)
    # the level of the exactly canonical box is canonical_level (4)
    assert got[0, sides.index(224.0), 0, 0, 0].item() == 4.0


def test_pyramid_roi_align_nan_and_inf_boxes_give_zero_crops():
    """Non-finite boxes sample nothing (every position invalid): all-zero crops, no crash;
    the other boxes of the batch are unaffected."""
    maps = [torch.randn(1, 2, 64 // s, 64 // s) + 5 for s in (4, 8, 16, 32)]
    nan = float("nan")
    boxes = torch.tensor([[[nan, 0.1, 0.5, 0.5], [0.1, 0.1, nan, nan], [0.0, 0.0, float("inf"), 0.5],
                           [0.1, 0.1, 0.6, 0.6]]])
    got = cpu.pyramid_roi_align(boxes, maps, 7, 64)
    assert (got[0, :3] == 0).all()
    assert_same(got[0, 3:], cpu.pyramid_roi_align(boxes[:, 3:], maps, 7, 64)[0])
    assert (got[0, 3] != 0).all()


# --------------------------------------------------------------------------- ProposalLayer
@SETTINGS
@given(data=st.data(), n=st.integers(1, 2), a=st.integers(0, 300), pre=st.integers(1, 320),
       post=st.integers(1, 60), thr=st.sampled_from([0.0, 0.5, 0.7, 1.0]),
       smode=st.sampled_from(["normal", "ties", "nan", "mixed"]),
       amode=st.sampled_from(["normal", "degenerate", "grid"]), big_deltas=st.booleans(), half=st.booleans())
def test_proposal_layer_matches_reference(exact_transcendentals, data, n, a, pre, post, thr, smode, amode,
                                          big_deltas, half):
    rng = Drawn(data)
    image_size = 128
    scores = torch.from_numpy(make_scores(rng, (n, a), smode))
    deltas = torch.from_numpy(rng.standard_normal((n, a, 4), dtype=np.float32) * (60 if big_deltas else 1))
    anchors = torch.from_numpy(make_boxes(rng, (a,), -20, image_size + 20, amode))
    if half:
        scores, deltas = scores.half(), deltas.half()
    want = proposal_layer(scores, deltas, anchors, pre, post, thr, STD, image_size)
    got = cpu.proposal_layer(scores, deltas, anchors, pre, post, thr, STD, image_size, threads=2)
    for g, w in zip(got, want):
        assert_same(g, w)


def test_proposal_layer_counts_zero_and_max():
    rng = np.random.default_rng(1)
    a = 50
    anchors = torch.from_numpy(make_boxes(rng, (a,), 0, 64, "normal"))
    # identical boxes: NMS keeps one; threshold 1.0 keeps every box up to post_nms_topk
    same = torch.tensor([[10.0, 10.0, 30.0, 30.0]]).repeat(a, 1)
    zero = torch.zeros(1, a, 4)
    rois, count, idx = cpu.proposal_layer(torch.rand(1, a), zero, same, 100, 20, 0.7, STD, 64)
    assert count.tolist() == [1] and (rois[0, 1:] == 0).all() and (idx[0, 1:] == -1).all()
    rois, count, idx = cpu.proposal_layer(torch.rand(1, a), zero, anchors, 100, 20, 1.0, STD, 64)
    assert count.tolist() == [20] and (idx[0] >= 0).all()
    rois, count, idx = cpu.proposal_layer(torch.rand(2, 0), torch.zeros(2, 0, 4), torch.zeros(0, 4), 10, 5, 0.7,
                                          STD, 64)
    assert count.tolist() == [0, 0] and rois.shape == (2, 5, 4) and (rois == 0).all()


def test_proposal_layer_close_to_unpatched_reference():
    """Against PyTorch's own float32 exp: boxes within an ulp or so, same proposals."""
    rng = np.random.default_rng(7)
    a, s = 4000, 512
    scores = torch.from_numpy(rng.random((2, a), dtype=np.float32))
    deltas = torch.from_numpy(rng.standard_normal((2, a, 4), dtype=np.float32))
    anchors = torch.from_numpy(make_boxes(rng, (a,), 0, s, "normal"))
    want = proposal_layer(scores, deltas, anchors, 3000, 500, 0.7, STD, s)
    got = cpu.proposal_layer(scores, deltas, anchors, 3000, 500, 0.7, STD, s)
    assert got[1].tolist() == want[1].tolist()
    assert got[2].tolist() == want[2].tolist()
    torch.testing.assert_close(got[0], want[0], rtol=1e-6, atol=1e-6)


def test_proposal_layer_threads_do_not_change_results():
    rng = np.random.default_rng(3)
    a = 2000
    scores = torch.from_numpy(rng.random((3, a), dtype=np.float32))
    deltas = torch.from_numpy(rng.standard_normal((3, a, 4), dtype=np.float32))
    anchors = torch.from_numpy(make_boxes(rng, (a,), 0, 256, "normal"))
    one = cpu.proposal_layer(scores, deltas, anchors, 1000, 200, 0.7, STD, 256, threads=1)
    two = cpu.proposal_layer(scores, deltas, anchors, 1000, 200, 0.7, STD, 256, threads=2)
    for x, y in zip(one, two):
        assert_same(x, y)


# --------------------------------------------------------------------------- DetectionLayer
@SETTINGS
@given(data=st.data(), n=st.integers(1, 2), r=st.integers(1, 40), k=st.integers(2, 6),
       min_conf=st.sampled_from([0.0, 0.3, 0.7]), thr=st.sampled_from([0.0, 0.3, 0.5, 1.0]),
       max_inst=st.integers(1, 30), pmode=st.sampled_from(["normal", "ties", "nan", "mixed"]),
       rmode=st.sampled_from(["normal", "degenerate", "grid"]), count_mode=st.sampled_from(["random", "zero", "full", "over"]),
       half=st.booleans())
def test_detection_layer_matches_reference(exact_transcendentals, data, n, r, k, min_conf, thr, max_inst, pmode,
                                           rmode, count_mode, half):
    rng = Drawn(data)
    s = 128
    rois = torch.from_numpy(make_boxes(rng, (n, r), -0.1, 1.1, rmode))
    probs = make_scores(rng, (n, r, k), pmode)
    if pmode in ("normal", "nan"):
        with np.errstate(invalid="ignore"):   # an all-zero row gives NaN probabilities: a case too
            probs = probs / np.nansum(probs, -1, keepdims=True)
    probs = torch.from_numpy(probs.astype(np.float32))
    deltas = torch.from_numpy(rng.standard_normal((n, r, k, 4), dtype=np.float32))
    window = torch.from_numpy(np.stack([make_boxes(rng, (), 0, s, "normal") for _ in range(n)]))
    roi_count = {"random": torch.from_numpy(rng.integers(0, r + 1, n)), "zero": torch.zeros(n, dtype=torch.long),
                 "full": torch.full((n,), r), "over": torch.full((n,), r + 3)}[count_mode].to(torch.int32)
    if half:
        probs, deltas = probs.half(), deltas.half()
    args = (k, min_conf, thr, max_inst, STD, s)
    # counts above R mean "all rows" (the kernel clamps; the reference needs count <= R)
    want = detection_layer(rois, roi_count.clamp(max=r), probs, deltas, window, *args)
    got = cpu.detection_layer(rois, roi_count, probs, deltas, window, *args, threads=2)
    for g, w in zip(got, want):
        assert_same(g, w)


def test_detection_layer_ignores_rows_past_count():
    rng = np.random.default_rng(5)
    n, r, k = 1, 30, 4
    rois = torch.from_numpy(make_boxes(rng, (n, r), 0, 1, "normal"))
    probs = torch.softmax(torch.from_numpy(rng.standard_normal((n, r, k), dtype=np.float32)) * 4, -1)
    deltas = torch.from_numpy(rng.standard_normal((n, r, k, 4), dtype=np.float32))
    window = torch.tensor([[0.0, 0.0, 256.0, 256.0]])
    args = (k, 0.0, 0.5, 100, STD, 256)
    base = cpu.detection_layer(rois, torch.tensor([10], dtype=torch.int32), probs, deltas, window, *args)
    junk_probs, junk_rois = probs.clone(), rois.clone()
    junk_probs[:, 10:] = float("nan")
    junk_rois[:, 10:] = 1e30
    other = cpu.detection_layer(junk_rois, torch.tensor([10], dtype=torch.int32), junk_probs, deltas, window, *args)
    for x, y in zip(base, other):
        assert_same(x, y)
    assert 0 < base[1].item() <= 10


def test_detection_layer_rejects_wrong_class_count():
    with pytest.raises(ValueError, match="num_classes"):
        cpu.detection_layer(torch.zeros(1, 2, 4), torch.tensor([2]), torch.zeros(1, 2, 5), torch.zeros(1, 2, 5, 4),
                            torch.zeros(1, 4), 4, 0.5, 0.3, 10, STD, 64)
