"""The PyTorch operators torch.ops.mrcnn.* (plugins/torch_ops.py) on CPU and CUDA.

* registered on ``import mrcnn_trt.plugins.torch_ops`` with the contract's schemas; pass
  ``torch.library.opcheck`` (schema, fake kernel, autograd registration, AOT dispatch);
* equal, bit for bit, to the PyTorch references (plugins/<op>/reference.py) (reference with
  correctly rounded exp/log2) in float32 and float16, ties, NaN scores,
  degenerate boxes, padded ROI rows; on CUDA also equal to the CPU operators
  (the CUDA tests run where a GPU and libmrcnn_cuda_ops.so exist: tools/gpu_check.sh);
* the contract's type, device and attribute rules; empty inputs;
* ``torch.export`` keeps each operator as one node, ``torch.compile(fullgraph=True)``
  traces through them.
"""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch

import mrcnn_trt.plugins.torch_ops  # noqa: F401  (registers torch.ops.mrcnn.*)
from mrcnn_trt.plugins.detection_layer.reference import detection_layer
from mrcnn_trt.plugins.proposal_layer.reference import proposal_layer
from mrcnn_trt.plugins.pyramid_roi_align.reference import pyramid_roi_align
from mrcnn_trt.plugins import opdefs

STD = [0.1, 0.1, 0.2, 0.2]


def assert_same(a: torch.Tensor, b: torch.Tensor, what=""):
    assert a.dtype == b.dtype and a.shape == b.shape, (what, a.dtype, b.dtype, a.shape, b.shape)
    torch.testing.assert_close(a.cpu(), b.cpu(), rtol=0, atol=0, equal_nan=True, msg=what)


# --------------------------------------------------------------------------- inputs
def boxes(g, shape, lo, hi, degenerate=0.2):
    b = torch.rand(*shape, 4, generator=g) * (hi - lo) + lo
    y1, y2 = torch.minimum(b[..., 0], b[..., 2]), torch.maximum(b[..., 0], b[..., 2])
    x1, x2 = torch.minimum(b[..., 1], b[..., 3]), torch.maximum(b[..., 1], b[..., 3])
    out = torch.stack([y1, x1, y2, x2], -1)
    flat = out.view(-1, 4)
    sel = torch.rand(flat.shape[0], generator=g) < degenerate
    flat[sel, 2] = flat[sel, 0]                                  # zero height
    return out.contiguous()


def roi_align_inputs(g, n=2, r=37, c=3, size=128, dtype=torch.float32):
    bx = boxes(g, (n, r), -0.05, 1.0)
    maps = [(torch.randn(n, c, size >> (k + 2), (size >> (k + 2)) + k, generator=g) * 3).to(dtype)
            for k in range(4)]
    return (bx, *maps, 7, size, 224.0, 4)


def proposal_inputs(g, n=2, a=900, pre=400, post=120, size=256, dtype=torch.float32):
    scores = torch.floor(torch.rand(n, a, generator=g) * 32) / 32          # many ties
    if n:
        scores[0, 5] = float("nan")
    deltas = torch.randn(n, a, 4, generator=g) * 0.3
    anchors = boxes(g, (a,), -20, size + 20, degenerate=0.0)
    return (scores.to(dtype), deltas.to(dtype), anchors, pre, post, 0.7, STD, size)


def detection_inputs(g, n=2, r=150, k=6, size=256, dtype=torch.float32, min_conf=0.3):
    rois = boxes(g, (n, r), 0.0, 0.9, degenerate=0.05)
    count = torch.tensor([r - 20, r][:n], dtype=torch.int32)
    probs = torch.softmax(torch.floor(torch.randn(n, r, k, generator=g) * 4), -1)   # ties between classes
    deltas = torch.randn(n, r, k, 4, generator=g) * 0.2
    window = torch.tensor([[0.0, 0.0, size, size], [32.0, 0.0, size - 32.0, size]][:n])
    return (rois, count, probs.to(dtype), deltas.to(dtype), window, k, min_conf, 0.3, 40, STD, size)


INPUTS = {"PyramidROIAlign": roi_align_inputs, "ProposalLayer": proposal_inputs, "DetectionLayer": detection_inputs}


def on(args, device):
    return tuple(a.to(device) if isinstance(a, torch.Tensor) else a for a in args)


def call(op, args):
    out = getattr(torch.ops.mrcnn, opdefs.OP_DEFS[op].torch_name)(*args)
    return list(out) if isinstance(out, (tuple, list)) else [out]


def reference(op, args):
    """The reference (plugins/<op>/reference.py) with the operator's argument list; outputs in the operator's dtypes."""
    if op == "PyramidROIAlign":
        return [pyramid_roi_align(args[0], list(args[1:5]), *args[5:])]
    if op == "ProposalLayer":
        rois, count, ai = proposal_layer(*args)
        return [rois, count, ai.int()]
    return list(detection_layer(*args))


# --------------------------------------------------------------------------- registration
def test_registered_with_the_contract_schema():
    for op, d in opdefs.OP_DEFS.items():
        packet = getattr(torch.ops.mrcnn, d.torch_name)
        want = torch._C.parse_schema(f"mrcnn::{d.torch_name}{opdefs.torch_schema(op)}")
        assert packet.default._schema == want, op
        assert [a.name for a in want.arguments] == [t.name for t in d.inputs] + list(d.attr_names)
        assert len(want.returns) == len(d.outputs) + len(d.extra_outputs)


@pytest.mark.parametrize("op", list(opdefs.OP_DEFS))
def test_opcheck(op, device):
    g = torch.Generator().manual_seed(1)
    args = on(INPUTS[op](g), device)
    packet = getattr(torch.ops.mrcnn, opdefs.OP_DEFS[op].torch_name)
    result = torch.library.opcheck(packet.default, args)
    assert set(result.values()) == {"SUCCESS"}, result


# --------------------------------------------------------------------------- values
@pytest.mark.parametrize("op", list(opdefs.OP_DEFS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("seed", [0, 1])
def test_equals_reference(exact_transcendentals, op, dtype, seed, device):
    g = torch.Generator().manual_seed(seed)
    args = INPUTS[op](g, dtype=dtype)
    want = reference(op, args)
    got = call(op, on(args, device))
    assert len(got) == len(want)
    for i, (a, b) in enumerate(zip(got, want)):
        assert a.device.type == device
        assert_same(a, b, f"{op} output {i}")
    if op != "PyramidROIAlign":
        assert int(got[1].min()) > 0                      # the inputs give real proposals / detections
    if device == "cuda":                                  # and the CPU operator gives the same bits
        for i, (a, b) in enumerate(zip(got, call(op, args))):
            assert_same(a, b, f"{op} output {i}: CUDA vs CPU")


def test_float16_computes_in_float32(exact_transcendentals, device):
    """Half feature maps are read exactly and the crops rounded once: the float32 result of the
    float16 maps, rounded to float16."""
    g = torch.Generator().manual_seed(3)
    args = roi_align_inputs(g, dtype=torch.float16)
    f32 = call("PyramidROIAlign", on((args[0], *[m.float() for m in args[1:5]], *args[5:]), device))[0]
    f16 = call("PyramidROIAlign", on(args, device))[0]
    assert f16.dtype == torch.float16
    assert_same(f16, f32.half())


def test_empty_inputs(device):
    g = torch.Generator().manual_seed(4)
    args = list(roi_align_inputs(g, r=0))
    crops = call("PyramidROIAlign", on(args, device))[0]
    assert crops.shape == (2, 0, 3, 7, 7)
    args = list(detection_inputs(g))
    args[1] = torch.zeros(2, dtype=torch.int32)                 # no valid ROI
    dets, count = call("DetectionLayer", on(args, device))
    assert count.tolist() == [0, 0] and not dets.any()
    args = list(proposal_inputs(g, n=0))
    rois, count, ai = call("ProposalLayer", on(args, device))
    assert rois.shape == (0, 120, 4) and count.shape == (0,) and ai.shape == (0, 120)


def test_runs_on_the_current_stream(cuda_only):
    device = cuda_only
    g = torch.Generator().manual_seed(5)
    args = on(proposal_inputs(g), device)
    want = call("ProposalLayer", args)
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        got = call("ProposalLayer", args)
    torch.cuda.current_stream().wait_stream(s)
    for a, b in zip(got, want):
        assert_same(a, b)


def test_cuda_library_matches_this_gpu(cuda_only):
    from mrcnn_trt.plugins import cuda

    info = cuda.info()
    major, minor = torch.cuda.get_device_capability()
    sass = [int(a) for a in re.findall(r"\d+", info["archs"].split("ptx:")[0])]
    ptx = [int(a) for a in re.findall(r"\d+", info["archs"].split("ptx:")[1])]
    assert major * 10 + minor in sass or any(p <= major * 10 + minor for p in ptx), info["archs"]


# --------------------------------------------------------------------------- contract rules
def test_type_device_and_attribute_errors():
    g = torch.Generator().manual_seed(6)
    args = list(detection_inputs(g))
    bad = list(args)
    bad[2] = bad[2].half()                                  # probs half, deltas float
    with pytest.raises(TypeError, match="input deltas is torch.float32 but probs is torch.float16"):
        call("DetectionLayer", bad)
    bad = list(args)
    bad[1] = bad[1].long()
    with pytest.raises(TypeError, match="input roi_count must be torch.int32"):
        call("DetectionLayer", bad)
    bad = list(args)
    bad[0] = bad[0].double()
    with pytest.raises(TypeError, match="input rois must be torch.float32"):
        call("DetectionLayer", bad)
    bad = list(args)
    bad[5] = 7                                              # num_classes does not match probs
    with pytest.raises(ValueError, match=re.escape("input probs must be [N,R,7] (num_classes = 7), got [2,150,6]")):
        call("DetectionLayer", bad)
    bad = list(args)
    bad[6] = 1.5
    with pytest.raises(ValueError, match=re.escape("DetectionLayer.min_confidence = 1.5 is out of range")):
        call("DetectionLayer", bad)
    if torch.cuda.is_available():
        bad = list(args)
        bad[4] = bad[4].cuda()
        with pytest.raises(ValueError, match="input window is on cuda"):
            call("DetectionLayer", bad)


def test_fake_kernel_shapes_follow_the_contract():
    from torch._subclasses.fake_tensor import FakeTensorMode

    g = torch.Generator().manual_seed(7)
    for op, make in INPUTS.items():
        for dtype in (torch.float32, torch.float16):
            args = make(g, dtype=dtype)
            real = call(op, args)
            with FakeTensorMode() as mode:
                fake = call(op, tuple(mode.from_tensor(a) if isinstance(a, torch.Tensor) else a for a in args))
            assert [(f.shape, f.dtype) for f in fake] == [(r.shape, r.dtype) for r in real], (op, dtype)


# --------------------------------------------------------------------------- compile / export
class _Ops(torch.nn.Module):
    def forward(self, boxes, p2, p3, p4, p5, scores, deltas, anchors):
        rois, count, _ = torch.ops.mrcnn.proposal_layer(scores, deltas, anchors, 400, 37, 0.7, STD, 128)
        crops = torch.ops.mrcnn.pyramid_roi_align(rois, p2, p3, p4, p5, 7, 128, 224.0, 4)
        return crops.mean(dim=(2, 3, 4)) + count[:, None].float(), \
            torch.ops.mrcnn.pyramid_roi_align(boxes, p2, p3, p4, p5, 7, 128, 224.0, 4)


def _ops_args(g):
    r = roi_align_inputs(g, r=37, size=128)
    p = proposal_inputs(g, a=900, size=128)
    return (*r[:5], *p[:3])


def test_export_keeps_one_node_per_operator():
    g = torch.Generator().manual_seed(8)
    args = _ops_args(g)
    ep = torch.export.export(_Ops(), args)
    targets = [str(n.target) for n in ep.graph.nodes if n.op == "call_function"]
    assert targets.count("mrcnn.pyramid_roi_align.default") == 2
    assert targets.count("mrcnn.proposal_layer.default") == 1
    for a, b in zip(ep.module()(*args), _Ops()(*args)):
        assert_same(a, b)


def test_compile_fullgraph_traces_through_the_operators(device):
    g = torch.Generator().manual_seed(9)
    args = on(_ops_args(g), device)
    compiled = torch.compile(_Ops(), backend="aot_eager", fullgraph=True)   # fullgraph: a graph break raises
    for a, b in zip(compiled(*args), _Ops()(*args)):
        assert_same(a, b)
    torch._dynamo.reset()


def test_equals_cpu_kernel_wrappers():
    """The operators and the pybind wrappers (plugins/cpu.py) run the same kernels."""
    from mrcnn_trt.plugins import cpu

    g = torch.Generator().manual_seed(10)
    a = proposal_inputs(g)
    got = call("ProposalLayer", a)
    want = cpu.proposal_layer(*a)
    assert_same(got[0], want[0])
    assert_same(got[1], want[1])
    assert np.array_equal(got[2].numpy(), want[2].numpy())
