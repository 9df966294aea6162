"""ONNX Runtime CPU execution of the mrcnn custom ops (plugins/ort.py, libmrcnn_ort_ops.so)
and their ONNX schemas (plugins/onnx_schemas.py).

The library is built by ``pip install -e .`` after ``tools/fetch_ort_headers.sh`` fetched the
ORT headers (setup.py runs it); these tests fail when it is missing.
"""
from __future__ import annotations

import re

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from mrcnn_trt.plugins.detection_layer.reference import detection_layer
from mrcnn_trt.plugins.proposal_layer.reference import proposal_layer
from mrcnn_trt.plugins.pyramid_roi_align.reference import pyramid_roi_align
from mrcnn_trt.plugins import ort as mort
from mrcnn_trt.plugins.onnx_schemas import register_schemas

STD = [0.1, 0.1, 0.2, 0.2]
S, A, C, R, K = 128, 600, 4, 40, 5
F, I32, F16 = TensorProto.FLOAT, TensorProto.INT32, TensorProto.FLOAT16


@pytest.fixture
def exact_transcendentals(monkeypatch):
    """Reference exp/log2 correctly rounded, as in the kernels (see test_plugins_cpu.py)."""
    exp, log2 = torch.exp, torch.log2
    monkeypatch.setattr(torch, "exp", lambda x: exp(x.double()).to(x.dtype))
    monkeypatch.setattr(torch, "log2", lambda x: log2(x.double()).to(x.dtype))


def test_library_is_available():
    assert mort.custom_ops_available(), (
        f"{mort.library_path()} missing or not loadable: run tools/fetch_ort_headers.sh, then pip install -e .")


def pipeline_model(data_type=F, post=R, pooled=7, **overrides) -> onnx.ModelProto:
    """ProposalLayer -> PyramidROIAlign and DetectionLayer on the proposals (ints/floats per opdefs)."""
    attrs = {
        "ProposalLayer": dict(pre_nms_topk=400, post_nms_topk=post, nms_threshold=0.7, rpn_bbox_std_dev=STD,
                              image_size=S),
        "PyramidROIAlign": dict(pooled_size=pooled, image_size=S, canonical_size=224.0, canonical_level=4),
        "DetectionLayer": dict(num_classes=K, min_confidence=0.2, nms_threshold=0.3, max_instances=20,
                               bbox_std_dev=STD, image_size=S),
    }
    for op, a in overrides.items():
        attrs[op] = {**attrs[op], **a}
    nodes = [
        helper.make_node("ProposalLayer", ["scores", "deltas", "anchors"], ["rois", "count"], domain="mrcnn",
                         **attrs["ProposalLayer"]),
        helper.make_node("PyramidROIAlign", ["rois", "P2", "P3", "P4", "P5"], ["crops"], domain="mrcnn",
                         **attrs["PyramidROIAlign"]),
        helper.make_node("DetectionLayer", ["rois", "count", "probs", "box_deltas", "window"], ["dets", "det_count"],
                         domain="mrcnn", **attrs["DetectionLayer"]),
    ]
    d = data_type
    inputs = [helper.make_tensor_value_info("scores", d, ["N", A]),
              helper.make_tensor_value_info("deltas", d, ["N", A, 4]),
              helper.make_tensor_value_info("anchors", F, [A, 4])]
    inputs += [helper.make_tensor_value_info(f"P{lv}", d, ["N", C, S >> lv, S >> lv]) for lv in range(2, 6)]
    inputs += [helper.make_tensor_value_info("probs", d, ["N", post, K]),
               helper.make_tensor_value_info("box_deltas", d, ["N", post, K, 4]),
               helper.make_tensor_value_info("window", F, ["N", 4])]
    p = int(attrs["PyramidROIAlign"]["pooled_size"])
    m = attrs["DetectionLayer"]["max_instances"]
    outputs = [helper.make_tensor_value_info("rois", F, ["N", post, 4]),
               helper.make_tensor_value_info("count", I32, ["N"]),
               helper.make_tensor_value_info("crops", d, ["N", post, C, p, p]),
               helper.make_tensor_value_info("dets", F, ["N", m, 6]),
               helper.make_tensor_value_info("det_count", I32, ["N"])]
    graph = helper.make_graph(nodes, "mrcnn_ops", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("mrcnn", 1)])
    model.ir_version = 10
    return model


def feeds(seed: int, n: int, np_dtype=np.float32, post=R):
    rng = np.random.default_rng(seed)
    a = rng.uniform(-10, S + 10, (A, 4)).astype(np.float32)
    anchors = np.concatenate([np.minimum(a[:, :2], a[:, 2:]), np.maximum(a[:, :2], a[:, 2:])], 1)
    scores = rng.random((n, A), dtype=np.float32)
    scores[:, ::7] = 0.5          # ties
    scores[:, 3::11] = np.nan      # NaN scores
    probs = rng.random((n, post, K), dtype=np.float32)
    probs /= probs.sum(-1, keepdims=True)
    f = dict(scores=scores, deltas=rng.standard_normal((n, A, 4), dtype=np.float32),
             anchors=anchors, probs=probs, box_deltas=rng.standard_normal((n, post, K, 4), dtype=np.float32),
             window=np.tile(np.array([[8, 0, S - 8, S]], np.float32), (n, 1)))
    for lv in range(2, 6):
        f[f"P{lv}"] = rng.standard_normal((n, C, S >> lv, S >> lv), dtype=np.float32)
    for k in ("scores", "deltas", "probs", "box_deltas", "P2", "P3", "P4", "P5"):
        f[k] = f[k].astype(np_dtype)
    return f


def reference(f, post=R, pooled=7):
    t = {k: torch.from_numpy(v) for k, v in f.items()}
    rois, count, _ = proposal_layer(t["scores"], t["deltas"], t["anchors"], 400, post, 0.7, STD, S)
    crops = pyramid_roi_align(rois, [t[f"P{lv}"] for lv in range(2, 6)], pooled, S)
    dets, det_count = detection_layer(rois, count, t["probs"], t["box_deltas"], t["window"], K, 0.2, 0.3, 20,
                                          STD, S)
    return [rois, count, crops, dets, det_count]


@pytest.mark.parametrize("n", [1, 2])
@pytest.mark.parametrize("threads", [1, 2])
def test_model_with_custom_nodes_matches_reference(exact_transcendentals, n, threads):
    model = pipeline_model()
    sess = mort.make_session(model.SerializeToString(), threads=threads)
    f = feeds(n, n)
    got = sess.run(None, f)
    want = reference(f)
    for name, g, w in zip(["rois", "count", "crops", "dets", "det_count"], got, want):
        assert g.dtype == w.numpy().dtype, name
        np.testing.assert_array_equal(g, w.numpy(), err_msg=name)
    assert got[1].min() > 0 and got[4].min() > 0  # non-trivial outputs


def test_float16_model_matches_reference(exact_transcendentals):
    model = pipeline_model(F16)
    sess = mort.make_session(model, threads=2)  # ModelProto accepted too
    f = feeds(3, 1, np.float16)
    got = sess.run(None, f)
    want = reference(f)
    assert got[2].dtype == np.float16
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w.numpy())


def test_model_file_path_and_zero_padding(tmp_path, exact_transcendentals):
    path = tmp_path / "m.onnx"
    onnx.save(pipeline_model(post=R), str(path))
    sess = mort.make_session(str(path))
    f = feeds(4, 1)
    f["scores"][:] = np.nan  # every score NaN: still proposals (NaN sorts as -inf, stable by index)
    rois, count, crops, dets, det_count = sess.run(None, f)
    want = reference(f)
    np.testing.assert_array_equal(rois, want[0].numpy())
    c = int(count[0])
    assert 0 < c <= R and (rois[0, c:] == 0).all()
    d = int(det_count[0])
    assert (dets[0, d:] == 0).all()


def test_schemas_check_and_infer_shapes():
    register_schemas()
    register_schemas()  # idempotent
    model = pipeline_model()
    onnx.checker.check_model(model, full_check=True)
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    vi = {v.name: v for v in list(inferred.graph.value_info) + list(inferred.graph.output)}

    def shape(name):
        return [d.dim_value or d.dim_param for d in vi[name].type.tensor_type.shape.dim]

    assert shape("crops") == ["N", R, C, 7, 7]
    assert shape("dets") == ["N", 20, 6]
    assert vi["count"].type.tensor_type.elem_type == I32


def test_schema_shape_inference_catches_mismatch():
    register_schemas()
    model = pipeline_model()
    # declare a wrong pooled size on the crops output: strict inference must object
    model.graph.output[2].type.tensor_type.shape.dim[3].dim_value = 5
    with pytest.raises(onnx.shape_inference.InferenceError):
        onnx.shape_inference.infer_shapes(model, strict_mode=True)


def test_schema_rejects_unknown_attribute_and_wrong_type():
    register_schemas()
    model = pipeline_model()
    model.graph.node[1].attribute.append(helper.make_attribute("pooled_sizee", 7))
    with pytest.raises(onnx.checker.ValidationError):
        onnx.checker.check_model(model, full_check=True)
    model = pipeline_model()
    for a in model.graph.node[1].attribute:
        if a.name == "pooled_size":
            a.CopyFrom(helper.make_attribute("pooled_size", 7.0))
    with pytest.raises(onnx.checker.ValidationError):
        onnx.checker.check_model(model, full_check=True)


@pytest.mark.parametrize("overrides,msg", [
    ({"PyramidROIAlign": {"pooled_size": 1}}, "PyramidROIAlign.pooled_size = 1 is out of range [2, 64]"),
    ({"PyramidROIAlign": {"pooled_size": 7.0}}, "PyramidROIAlign.pooled_size must be an int"),
    ({"ProposalLayer": {"rpn_bbox_std_dev": [0.1, 0.1, 0.2]}}, "ProposalLayer.rpn_bbox_std_dev needs 4 value(s), got 3"),
    ({"ProposalLayer": {"nms_threshold": 2.0}}, "ProposalLayer.nms_threshold = 2 is out of range [0, 1]"),
    ({"DetectionLayer": {"image_size": 10}}, "DetectionLayer.image_size = 10 is out of range [64, 8192]"),
])
def test_invalid_attributes_fail_session_creation(overrides, msg):
    model = pipeline_model(**overrides)
    with pytest.raises(Exception, match=re.escape(msg)):
        mort.make_session(model)


def test_shape_errors_at_run_time():
    sess = mort.make_session(pipeline_model(post=R))
    f = feeds(0, 1)
    f["window"] = np.zeros((1, 3), np.float32)  # the declared input is [N, 4] but ORT passes [1, 3] ...
    with pytest.raises(Exception):
        sess.run(None, f)
    # ... while a batch mismatch reaches the kernel's own check
    f = feeds(0, 1)
    f["window"] = np.zeros((2, 4), np.float32)
    with pytest.raises(Exception, match=re.escape("DetectionLayer: input window [2,4] does not match rois [1,")):
        sess.run(None, f)


def test_missing_library_gives_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(mort, "library_path", lambda: str(tmp_path / "libmrcnn_ort_ops.so"))
    assert not mort.custom_ops_available()
    with pytest.raises(mort.CustomOpsUnavailable, match="fetch_ort_headers.sh"):
        mort.make_session(pipeline_model())
    # models without mrcnn nodes still run
    node = helper.make_node("Relu", ["x"], ["y"])
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", F, [2])],
                          [helper.make_tensor_value_info("y", F, [2])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 10
    sess = mort.make_session(m.SerializeToString())
    np.testing.assert_array_equal(sess.run(None, {"x": np.array([-1, 2], np.float32)})[0], [0, 2])
