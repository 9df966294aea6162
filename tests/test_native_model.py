"""The model on the native ops backend (``torch.ops.mrcnn.*``, model/backends.py NativeOps).

* the default backend; same detections as the reference ops (bit for bit on
  the CPU with correctly rounded reference exp/log2);
* training still gets gradients through the crops (reference fallback);
* ``torch.export`` / ``torch.compile(fullgraph=True)`` trace the whole model
  with the three operators as single nodes;
* on CUDA (tools/gpu_check.sh on a GPU machine): same detections as on the
  CPU (boxes are integers: equal, or 1 px apart where a rounding flips; scores
  within 1e-4), in float32 and under float16 autocast.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import draw_shapes
from mrcnn_trt.config import preset
from mrcnn_trt.model import build_model
from mrcnn_trt.model.backends import BACKENDS, DEFAULT_BACKEND, NativeOps, make_ops
from mrcnn_trt.model.loading import load_model


def shapes_images(count=2, size=(320, 240)):
    return [draw_shapes(7 + i, *size) for i in range(count)]


def decisive(model):
    """Random weights give near-uniform class scores; sharpen them (as tests/test_export.py)."""
    with torch.no_grad():
        model.classifier.linear_class.weight.mul_(300)
        model.classifier.linear_bbox.weight.mul_(30)
    return model


def box_iou(a, b):
    y1, x1 = np.maximum(a[0], b[0]), np.maximum(a[1], b[1])
    y2, x2 = np.minimum(a[2], b[2]), np.minimum(a[3], b[3])
    inter = max(0, y2 - y1) * max(0, x2 - x1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else float(np.array_equal(a, b))


def assert_same_detections(got, want, score_tol=1e-4, flips=0.02):
    """Per image: the same number of detections, matched one to one (same class, IoU >= 0.9);
    box coordinates equal except a few (<= `flips` of them) 1 px apart (integer rounding of
    values that differ in the last bits), scores within `score_tol`, masks mostly equal."""
    for g, w in zip(got, want):
        assert len(g["scores"]) == len(w["scores"]), (len(g["scores"]), len(w["scores"]))
        used = set()
        diffs = []
        for i in np.argsort(-w["scores"], kind="stable"):
            cands = [j for j in range(len(g["scores"])) if j not in used and g["class_ids"][j] == w["class_ids"][i]]
            assert cands, f"detection {i} (class {w['class_ids'][i]}) has no match"
            j = max(cands, key=lambda j: (box_iou(g["rois"][j], w["rois"][i]), -abs(g["scores"][j] - w["scores"][i])))
            used.add(j)
            assert box_iou(g["rois"][j], w["rois"][i]) >= 0.9
            assert abs(float(g["scores"][j]) - float(w["scores"][i])) <= score_tol
            diffs.append(np.abs(g["rois"][j].astype(int) - w["rois"][i].astype(int)))
            gm, wm = g["masks"][..., j], w["masks"][..., i]
            if wm.any():
                assert (gm & wm).sum() / (gm | wm).sum() >= 0.9
        if diffs:
            d = np.stack(diffs)
            assert d.max() <= 1 and (d > 0).mean() <= flips, (d.max(), (d > 0).mean())


@pytest.fixture(scope="module")
def shipped():
    model, cfg, _ = load_model(None)
    return model


# --------------------------------------------------------------------------- backend choice
def test_native_is_the_default_backend():
    assert DEFAULT_BACKEND == "native" and set(BACKENDS) == {"native", "torch", "cpu"}
    m = build_model("tiny")
    assert isinstance(m.ops, NativeOps) and m.ops.name == "native"
    assert m.set_ops_backend("torch").ops.name == "torch"
    with pytest.raises(ValueError, match="unknown ops backend 'gpu' \\(native\\|torch\\|cpu\\)"):
        make_ops(m.config, "gpu")


def test_same_detections_as_reference_on_cpu(exact_transcendentals, shipped):
    images = shapes_images(2)
    want = shipped.set_ops_backend("torch").detect(images)
    got = shipped.set_ops_backend("native").detect(images)
    assert sum(len(w["scores"]) for w in want) > 2
    for g, w in zip(got, want):
        for k in ("rois", "class_ids", "scores", "masks"):
            assert np.array_equal(g[k], w[k]), k


def test_same_graph_outputs_as_reference_batch(exact_transcendentals):
    torch.manual_seed(0)
    m = decisive(build_model(preset("tiny").replace(DETECTION_MIN_CONFIDENCE=0.3))).eval()
    s = m.config.IMAGE_MAX_DIM
    images = torch.rand(2, 3, s, s, generator=torch.Generator().manual_seed(1)) * 255
    windows = torch.tensor([[0.0, 0.0, s, s], [16.0, 0.0, s - 16.0, s]])
    with torch.no_grad():
        want = m.set_ops_backend("torch")(images, windows)
        got = m.set_ops_backend("native")(images, windows)
    assert int(want[1].min()) > 0
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_training_gets_gradients_through_the_crops():
    """The operators have no backward; with gradients enabled the native backend crops with
    the reference, so the losses' gradients reach the FPN exactly as with the reference ops."""
    torch.manual_seed(0)
    grads = {}
    for backend in ("torch", "native"):
        m = build_model("tiny", ops_backend=backend).train()
        torch.manual_seed(1)
        m.initialize_weights()
        s = m.config.IMAGE_MAX_DIM
        maps = m.features(m.normalize(torch.rand(1, 3, s, s, generator=torch.Generator().manual_seed(2)) * 255))
        boxes = torch.tensor([[[0.1, 0.1, 0.5, 0.6], [0.2, 0.3, 0.9, 0.8]]])
        crops = m.ops.pyramid_roi_align(boxes, maps[:4], mask=False)
        crops.square().sum().backward()
        grads[backend] = {n: p.grad.clone() for n, p in m.fpn.named_parameters() if p.grad is not None}
    assert "P4_conv2.1.weight" in grads["native"] and grads["native"]["P4_conv2.1.weight"].abs().sum() > 0
    assert grads["native"].keys() == grads["torch"].keys()
    for k, v in grads["native"].items():
        torch.testing.assert_close(v, grads["torch"][k], rtol=0, atol=0, msg=k)


# --------------------------------------------------------------------------- compile / export
@pytest.fixture(scope="module")
def tiny_inputs():
    torch.manual_seed(0)
    m = decisive(build_model(preset("tiny").replace(DETECTION_MIN_CONFIDENCE=0.3))).eval()
    s = m.config.IMAGE_MAX_DIM
    images = torch.rand(2, 3, s, s, generator=torch.Generator().manual_seed(3)) * 255
    windows = torch.tensor([[0.0, 0.0, s, s], [0.0, 8.0, s, s - 8.0]])
    return m, images, windows


def test_export_has_the_operators_as_nodes(tiny_inputs):
    m, images, windows = tiny_inputs
    with torch.no_grad():
        ep = torch.export.export(m, (images, windows))
        want = m(images, windows)
        got = ep.module()(images, windows)
    targets = [str(n.target) for n in ep.graph.nodes if n.op == "call_function"]
    assert targets.count("mrcnn.proposal_layer.default") == 1
    assert targets.count("mrcnn.detection_layer.default") == 1
    assert targets.count("mrcnn.pyramid_roi_align.default") == 2
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_compile_fullgraph(tiny_inputs):
    """fullgraph=True: any graph break (e.g. at an op that dynamo cannot trace) raises."""
    m, images, windows = tiny_inputs
    with torch.no_grad():
        compiled = torch.compile(m, backend="eager", fullgraph=True)
        got = compiled(images, windows)
        want = m(images, windows)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch._dynamo.reset()


# --------------------------------------------------------------------------- CUDA
def test_cuda_compile_inductor(tiny_inputs, cuda_only):
    """The default torch.compile backend (inductor) on the GPU, the operators as extern kernels."""
    m, images, windows = tiny_inputs
    m = m.to("cuda")
    try:
        with torch.no_grad():
            want = m(images.cuda(), windows.cuda())
            got = torch.compile(m, fullgraph=True)(images.cuda(), windows.cuda())
    finally:
        m.to("cpu")
        torch._dynamo.reset()
    # inductor may fuse the convolutions' float math differently: near-identical detections
    assert int((got[1] - want[1]).abs().max()) <= 1 and int(want[1].min()) > 0
    n = int(torch.minimum(got[1], want[1]).min())
    torch.testing.assert_close(got[0][:, :n], want[0][:, :n], rtol=0, atol=1.0)   # rounded boxes, scores

def test_cuda_same_detections_as_cpu(shipped, cuda_only):
    images = shapes_images(4)
    shipped.set_ops_backend("native")
    want = shipped.to("cpu").detect(images)
    try:
        got = shipped.to("cuda").detect(images)
    finally:
        shipped.to("cpu")
    assert sum(len(w["scores"]) for w in want) > 4
    assert_same_detections(got, want)


def test_cuda_r101_batch_matches_cpu(cuda_only):
    """R-101 at 1024, batch 2, random (sharpened) weights: CUDA vs CPU, float32."""
    torch.manual_seed(0)
    m = decisive(build_model(preset("coco").replace(DETECTION_MIN_CONFIDENCE=0.3))).eval()
    images = shapes_images(2, size=(1024, 768))
    want = m.detect(images)
    got = m.to("cuda").detect(images)
    assert sum(len(w["scores"]) for w in want) > 2
    assert_same_detections(got, want)


def test_cuda_autocast_float16(shipped, cuda_only):
    """Under float16 autocast the feature maps reach the operators as float16 (crops in float16);
    the detections stay close to the float32 ones (the best one matches)."""
    from mrcnn_trt.model.molding import mold_batch

    images = shapes_images(2)
    m = shipped.set_ops_backend("native").to("cuda")
    try:
        want = m.detect(images)
        batch, windows, _ = mold_batch(images, m.config)
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.float16):
            out = m.run(torch.from_numpy(batch).cuda(), torch.from_numpy(windows).cuda(), intermediates=True)
            got = m.detect(images)
    finally:
        shipped.to("cpu")
    assert out["P2"].dtype == torch.float16 and out["detections"].dtype == torch.float32
    for g, w in zip(got, want):
        assert abs(len(g["scores"]) - len(w["scores"])) <= max(2, len(w["scores"]) // 5)
        if len(w["scores"]):
            i, j = int(np.argmax(w["scores"])), int(np.argmax(g["scores"]))
            assert g["class_ids"][j] == w["class_ids"][i] and box_iou(g["rois"][j], w["rois"][i]) >= 0.8
