"""Standard-ONNX expansion of the mrcnn custom nodes (export/standardize.py) vs the PyTorch references.

Each test builds a small ONNX graph holding the custom node(s) exactly as the
trt flavor writes them (domain "mrcnn", attributes of plugins/opdefs.py),
expands it, runs it in stock ONNX Runtime (CPU) and compares with the
pure-PyTorch references. Every expanded graph must pass the full ONNX checker,
use only the standard domain and only operators TensorRT 8.6 / 10.x parse.
"""
import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto as T
from onnx import helper

from mrcnn_trt.export import trt_ops_table
from mrcnn_trt.export import standardize
from mrcnn_trt.export.standardize import expand_custom_nodes
from mrcnn_trt.plugins.reference import roi_levels
from mrcnn_trt.plugins.detection_layer.reference import detection_layer
from mrcnn_trt.plugins.proposal_layer.reference import proposal_layer
from mrcnn_trt.plugins.pyramid_roi_align.reference import pyramid_roi_align

ort = pytest.importorskip("onnxruntime")

STD = (0.1, 0.1, 0.2, 0.2)


def _vi(name, elem, shape):
    return helper.make_tensor_value_info(name, elem, shape)


def _model(nodes, inputs, outputs, opset=17, initializers=()):
    g = helper.make_graph(list(nodes), "g", inputs, outputs, initializer=list(initializers))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset), helper.make_opsetid("mrcnn", 1)])
    m.ir_version = 8
    return m


def _run(model, feeds):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def _check_standard(m):
    """Full checker, standard domain only, every op in the TensorRT 8.6 and 10.x tables."""
    onnx.checker.check_model(m, full_check=True)
    assert {n.domain for n in m.graph.node} <= {""}
    assert all(o.domain in ("", "ai.onnx") for o in m.opset_import)
    ops_used = {n.op_type for n in m.graph.node}
    for v in ("8.6", "10.4"):
        assert ops_used <= set(trt_ops_table.TABLES[trt_ops_table.table_key(v)][0]), v
    if {o.version for o in m.opset_import if o.domain == ""} <= {16, 17}:
        assert trt_ops_table.check_trt_supported(m, "8.6") == []
        assert trt_ops_table.check_trt_supported(m, "10.4") == []
    names = [n.name for n in m.graph.node if n.name]
    assert len(names) == len(set(names))


# ----------------------------------------------------------------------------- PyramidROIAlign
SIZES = [(32, 24), (16, 12), (8, 6), (4, 3)]   # H/4 .. H/32 of a (non-square) 128 x 96 input


def _roi_model(n, r, c, p, opset=17, image_size=128, canonical_size=28.0):
    node = helper.make_node("PyramidROIAlign", ["boxes", "P2", "P3", "P4", "P5"], ["crops"], domain="mrcnn",
                            pooled_size=p, image_size=image_size, canonical_size=canonical_size, canonical_level=4)
    ins = [_vi("boxes", T.FLOAT, [n, r, 4])] + [_vi(f"P{i + 2}", T.FLOAT, [n, c, h, w])
                                                   for i, (h, w) in enumerate(SIZES)]
    return _model([node], ins, [_vi("crops", T.FLOAT, [n, r, c, p, p])], opset=opset)


def _roi_inputs(rng, n, r, c):
    yx = rng.uniform(-0.3, 1.0, (n, r, 2))
    side = np.exp(rng.uniform(np.log(0.02), np.log(1.2), (n, r, 1))) * rng.uniform(0.6, 1.4, (n, r, 2))
    boxes = np.concatenate([yx, yx + side], -1)
    boxes[0, 0] = [0.0, 0.0, 1.0, 1.0]              # exactly the whole map (samples at H-1, W-1)
    boxes[0, 1] = [0.25, 0.5, 0.25, 0.5]            # zero size: level 2, one point sampled
    boxes[0, 2] = [0.6, 0.7, 0.4, 0.2]              # inverted
    boxes[1, 0] = [0.5, 0.1, 0.5, 0.9]              # zero height, nonzero width
    boxes[1, 1] = [-2.0, -2.0, -1.0, -1.0]          # entirely outside: all zeros
    fmaps = [rng.standard_normal((n, c, h, w)).astype(np.float32) for h, w in SIZES]
    return boxes.astype(np.float32), fmaps


@pytest.mark.parametrize("p,opset", [(7, 17), (4, 16), (5, 20)])
def test_pyramid_roi_align_matches_reference(p, opset):
    rng = np.random.default_rng(p)
    n, r, c = 2, 48, 3
    m = expand_custom_nodes(_roi_model(n, r, c, p, opset))
    _check_standard(m)
    modes = {a.s.decode() for nd in m.graph.node if nd.op_type == "GridSample" for a in nd.attribute
             if a.name == "mode"}
    assert modes == ({"bilinear"} if opset < 20 else {"linear"})
    boxes, fmaps = _roi_inputs(rng, n, r, c)
    out = _run(m, {"boxes": boxes, **{f"P{i + 2}": f for i, f in enumerate(fmaps)}})[0]
    tb = torch.from_numpy(boxes)
    ref = pyramid_roi_align(tb, [torch.from_numpy(f) for f in fmaps], p, 128, canonical_size=28.0).numpy()
    levels = roi_levels(tb, 128, 28.0).numpy()
    assert set(levels.ravel().tolist()) == {2, 3, 4, 5}          # every level is exercised
    assert out.shape == ref.shape == (n, r, c, p, p)
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-4)
    assert np.all(out[1, 1] == 0) and np.any(out[0, 0] != 0)


def test_pyramid_roi_align_non_finite_boxes_give_zero_crops():
    rng = np.random.default_rng(3)
    m = expand_custom_nodes(_roi_model(1, 4, 2, 3))
    boxes = np.array([[[np.nan, 0, 1, 1], [0, np.inf, 1, 1], [0.1, 0.1, 0.5, 0.5], [0, 0, 1, np.nan]]], np.float32)
    fmaps = [rng.standard_normal((1, 2, h, w)).astype(np.float32) for h, w in SIZES]
    out = _run(m, {"boxes": boxes, **{f"P{i + 2}": f for i, f in enumerate(fmaps)}})[0]
    assert np.all(out[0, [0, 1, 3]] == 0)
    ref = pyramid_roi_align(torch.from_numpy(boxes[:, 2:3]), [torch.from_numpy(f) for f in fmaps], 3, 128,
                                canonical_size=28.0).numpy()
    np.testing.assert_allclose(out[:, 2:3], ref, rtol=0, atol=1e-5)


# ----------------------------------------------------------------------------- ProposalLayer
def _proposal_model(n, a, pre, post, thr, image_size):
    node = helper.make_node("ProposalLayer", ["scores", "deltas", "anchors"], ["rois", "count"], domain="mrcnn",
                            pre_nms_topk=pre, post_nms_topk=post, nms_threshold=thr, rpn_bbox_std_dev=list(STD),
                            image_size=image_size)
    return _model([node], [_vi("scores", T.FLOAT, [n, a]), _vi("deltas", T.FLOAT, [n, a, 4]),
                           _vi("anchors", T.FLOAT, [a, 4])],
                  [_vi("rois", T.FLOAT, [n, post, 4]), _vi("count", T.INT32, [n])])


def _proposal_inputs(rng, n, a, s):
    scores = np.round(rng.random((n, a)), 2).astype(np.float32)    # many ties
    scores[0, 5:40] = scores[0, 0]
    scores[1, [3, 77]] = np.nan
    deltas = (rng.standard_normal((n, a, 4)) * 0.3).astype(np.float32)
    centers = rng.uniform(0, s, (12, 2))[rng.integers(0, 12, a)] + rng.normal(0, 6, (a, 2))  # clustered: overlaps
    hw = rng.uniform(4, s / 3, (a, 2))
    anchors = np.concatenate([centers - hw / 2, centers + hw / 2], 1)
    anchors[:10, 2:] = anchors[:10, :2]                               # zero-size anchors
    return scores, deltas, anchors.astype(np.float32)


@pytest.mark.parametrize("pre,post,thr,max_topk", [
    (300, 100, 0.7, 3840),    # one TopK
    (300, 100, 0.5, 64),      # chunked TopK (5 chunks)
    (1000, 60, 0.7, 128),     # pre_nms_topk > A: k = A, chunked
    (150, 400, 0.3, 3840),    # post_nms_topk > k: padded rows
])
def test_proposal_layer_matches_reference(pre, post, thr, max_topk):
    rng = np.random.default_rng(pre + post)
    n, a, s = 2, 500, 256
    m = expand_custom_nodes(_proposal_model(n, a, pre, post, thr, s), max_topk=max_topk)
    _check_standard(m)
    k_used = [int(onnx.numpy_helper.to_array(i).reshape(-1)[0]) for nd in m.graph.node if nd.op_type == "TopK"
              for i in m.graph.initializer if i.name == nd.input[1]]
    assert max(k_used) <= max_topk
    scores, deltas, anchors = _proposal_inputs(rng, n, a, s)
    rois, count = _run(m, {"scores": scores, "deltas": deltas, "anchors": anchors})
    ref_rois, ref_count, _ = proposal_layer(torch.from_numpy(scores), torch.from_numpy(deltas),
                                                torch.from_numpy(anchors), pre, post, thr, STD, s)
    assert count.dtype == np.int32 and rois.shape == (n, post, 4)
    np.testing.assert_array_equal(count, ref_count.numpy())
    assert count.min() > 0
    if post > min(pre, a):
        assert count.max() < post                                     # padded rows exist
    np.testing.assert_allclose(rois, ref_rois.numpy(), rtol=0, atol=1e-5)
    for i in range(n):
        assert np.all(rois[i, count[i]:] == 0)


# ----------------------------------------------------------------------------- DetectionLayer
def _detection_model(n, r, k, min_conf, thr, max_inst, s):
    node = helper.make_node("DetectionLayer", ["rois", "roi_count", "probs", "deltas", "window"], ["dets", "count"],
                            domain="mrcnn", num_classes=k, min_confidence=min_conf, nms_threshold=thr,
                            max_instances=max_inst, bbox_std_dev=list(STD), image_size=s)
    return _model([node], [_vi("rois", T.FLOAT, [n, r, 4]), _vi("roi_count", T.INT32, [n]),
                           _vi("probs", T.FLOAT, [n, r, k]), _vi("deltas", T.FLOAT, [n, r, k, 4]),
                           _vi("window", T.FLOAT, [n, 4])],
                  [_vi("dets", T.FLOAT, [n, max_inst, 6]), _vi("count", T.INT32, [n])])


def _detection_ref(rois, cnt, probs, deltas, win, k, min_conf, thr, max_inst, s):
    d, c = detection_layer(*(torch.from_numpy(x) for x in (rois, cnt, probs, deltas, win)),
                               k, min_conf, thr, max_inst, STD, s)
    return d.numpy(), c.numpy()


def _compare_detections(dets, count, ref_dets, ref_count):
    assert count.dtype == np.int32
    np.testing.assert_array_equal(count, ref_count)
    np.testing.assert_allclose(dets[..., :4], ref_dets[..., :4], rtol=0, atol=1e-3)
    np.testing.assert_array_equal(dets[..., 4:], ref_dets[..., 4:])
    for i in range(len(count)):
        assert np.all(dets[i, count[i]:] == 0)


@pytest.mark.parametrize("min_conf,max_inst", [(0.5, 15), (0.0, 60), (0.3, 300)])
def test_detection_layer_matches_reference(min_conf, max_inst):
    rng = np.random.default_rng(int(min_conf * 10) + max_inst)
    n, r, k, s, thr = 3, 200, 6, 256, 0.3
    m = expand_custom_nodes(_detection_model(n, r, k, min_conf, thr, max_inst, s))
    _check_standard(m)
    centers = rng.uniform(0.1, 0.9, (10, 2))[rng.integers(0, 10, (n, r))] + rng.normal(0, 0.02, (n, r, 2))
    hw = rng.uniform(0.0, 0.3, (n, r, 2))
    rois = np.concatenate([centers - hw / 2, centers + hw / 2], -1).astype(np.float32)
    logits = rng.standard_normal((n, r, k)) * 2
    probs = np.round(np.exp(logits) / np.exp(logits).sum(-1, keepdims=True), 2).astype(np.float32)  # ties
    probs[0, :20] = [0.05, min_conf, 0.1, 0.1, 0.05, 0.0][:k]       # score exactly min_confidence
    deltas = (rng.standard_normal((n, r, k, 4)) * 0.3).astype(np.float32)
    deltas[1, 150:] = np.nan                                          # rows past roi_count are ignored
    probs[1, 150:] = np.nan
    cnt = np.array([r, 150, 0], np.int32)
    win = np.array([[0, 0, s, s], [20.5, 10, 200, 250], [30, 30, 100, 100]], np.float32)
    dets, count = _run(m, {"rois": rois, "roi_count": cnt, "probs": probs, "deltas": deltas, "window": win})
    ref = _detection_ref(rois, cnt, probs, deltas, win, k, min_conf, thr, max_inst, s)
    _compare_detections(dets, count, *ref)
    assert count[0] > 0 and count[2] == 0
    if max_inst == 15:
        assert count[0] == 15                                         # truncated to max_instances


def test_detection_nms_keeps_iou_equal_to_threshold():
    # two class-1 boxes (pixels, +1 areas): [0,0,9,9] and [0,5,9,14] -> inter 50, union 150, IoU exactly 1/3
    s = 256
    rois = (np.array([[[0, 0, 9, 9], [0, 5, 9, 14], [50, 50, 60, 60]]], np.float32) / s)
    probs = np.array([[[0.1, 0.9, 0.0], [0.2, 0.8, 0.0], [0.0, 0.0, 1.0]]], np.float32)
    deltas = np.zeros((1, 3, 3, 4), np.float32)
    win = np.array([[0, 0, s, s]], np.float32)
    cnt = np.array([3], np.int32)
    for thr, expect in ((1.0 / 3.0, 3), (0.33, 2)):
        m = expand_custom_nodes(_detection_model(1, 3, 3, 0.7, thr, 10, s))
        dets, count = _run(m, {"rois": rois, "roi_count": cnt, "probs": probs, "deltas": deltas, "window": win})
        ref = _detection_ref(rois, cnt, probs, deltas, win, 3, 0.7, thr, 10, s)
        _compare_detections(dets, count, *ref)
        assert count[0] == expect


# ----------------------------------------------------------------------------- combined chain
def test_proposal_roialign_detection_chain():
    """Proposal -> PyramidROIAlign -> tiny standard-op head -> DetectionLayer, shapes found by re-inference."""
    rng = np.random.default_rng(7)
    n, a, s, pre, post, c, p, k = 2, 400, 128, 200, 40, 4, 3, 5
    props = helper.make_node("ProposalLayer", ["scores", "deltas", "anchors"], ["rois", "rcount"], domain="mrcnn",
                             pre_nms_topk=pre, post_nms_topk=post, nms_threshold=0.6, image_size=s)
    align = helper.make_node("PyramidROIAlign", ["rois", "P2", "P3", "P4", "P5"], ["crops"], domain="mrcnn",
                             pooled_size=p, image_size=s, canonical_size=28.0)
    w_cls = rng.standard_normal((c * p * p, k)).astype(np.float32)
    w_box = (rng.standard_normal((c * p * p, k * 4)) * 0.05).astype(np.float32)
    head = [
        helper.make_node("Reshape", ["crops", "flat_shape"], ["flat"]),
        helper.make_node("MatMul", ["flat", "w_cls"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=-1),
        helper.make_node("MatMul", ["flat", "w_box"], ["box_flat"]),
        helper.make_node("Reshape", ["box_flat", "box_shape"], ["box_deltas"]),
    ]
    det = helper.make_node("DetectionLayer", ["rois", "rcount", "probs", "box_deltas", "window"], ["dets", "dcount"],
                           domain="mrcnn", num_classes=k, min_confidence=0.0, nms_threshold=0.3, max_instances=12,
                           image_size=s)
    inits = [onnx.numpy_helper.from_array(np.array([n, post, c * p * p], np.int64), "flat_shape"),
             onnx.numpy_helper.from_array(np.array([n, post, k, 4], np.int64), "box_shape"),
             onnx.numpy_helper.from_array(w_cls, "w_cls"), onnx.numpy_helper.from_array(w_box, "w_box")]
    ins = [_vi("scores", T.FLOAT, [n, a]), _vi("deltas", T.FLOAT, [n, a, 4]), _vi("anchors", T.FLOAT, [a, 4]),
           _vi("window", T.FLOAT, [n, 4])] + [_vi(f"P{i + 2}", T.FLOAT, [n, c, h, w]) for i, (h, w) in
                                              enumerate(SIZES)]
    outs = [_vi("dets", T.FLOAT, [n, 12, 6]), _vi("dcount", T.INT32, [n]), _vi("rois", T.FLOAT, [n, post, 4]),
            _vi("rcount", T.INT32, [n]), _vi("probs", T.FLOAT, None), _vi("box_deltas", T.FLOAT, None),
            _vi("crops", T.FLOAT, None)]
    m = expand_custom_nodes(_model([props, align] + head + [det], ins, outs, initializers=inits))
    _check_standard(m)
    assert [o.name for o in m.graph.output] == [o.name for o in outs]
    scores, deltas, anchors = _proposal_inputs(rng, n, a, s)
    fmaps = [rng.standard_normal((n, c, h, w)).astype(np.float32) for h, w in SIZES]
    win = np.array([[0, 0, s, s], [10, 0, 118, 128]], np.float32)
    feeds = {"scores": scores, "deltas": deltas, "anchors": anchors, "window": win,
             **{f"P{i + 2}": f for i, f in enumerate(fmaps)}}
    dets, dcount, rois, rcount, probs, box_deltas, crops = _run(m, feeds)
    # each stage against the reference applied to the previous stage's ORT output
    ref_rois, ref_rcount, _ = proposal_layer(*(torch.from_numpy(x) for x in (scores, deltas, anchors)),
                                                 pre, post, 0.6, STD, s)
    np.testing.assert_array_equal(rcount, ref_rcount.numpy())
    np.testing.assert_allclose(rois, ref_rois.numpy(), rtol=0, atol=1e-5)
    ref_crops = pyramid_roi_align(torch.from_numpy(rois), [torch.from_numpy(f) for f in fmaps], p, s,
                                      canonical_size=28.0).numpy()
    np.testing.assert_allclose(crops, ref_crops, rtol=0, atol=1e-4)
    ref = _detection_ref(rois, rcount, probs, box_deltas, win, k, 0.0, 0.3, 12, s)
    _compare_detections(dets, dcount, *ref)
    assert dcount.min() > 0


# ----------------------------------------------------------------------------- errors and the TRT checker
def test_expand_rejects_bad_models():
    good = _detection_model(1, 4, 3, 0.5, 0.3, 2, 128)
    with pytest.raises(ValueError, match="opset"):
        expand_custom_nodes(_roi_model(1, 2, 1, 2, opset=15))
    bad = onnx.ModelProto()
    bad.CopyFrom(good)
    bad.graph.node[0].op_type = "NoSuchOp"
    with pytest.raises(ValueError, match="unknown mrcnn op"):
        expand_custom_nodes(bad)
    bad.CopyFrom(good)
    bad.graph.input[0].type.tensor_type.shape.dim[1].dim_param = "R"
    with pytest.raises(ValueError, match="static shape"):
        expand_custom_nodes(bad)
    bad.CopyFrom(good)
    bad.graph.input[1].type.tensor_type.elem_type = T.INT64
    with pytest.raises(ValueError, match="roi_count"):
        expand_custom_nodes(bad)
    bad.CopyFrom(good)
    for at in bad.graph.node[0].attribute:
        if at.name == "num_classes":
            at.i = 4
    with pytest.raises(ValueError, match="num_classes"):
        expand_custom_nodes(bad)


def test_expand_refuses_custom_nodes_outside_the_main_graph():
    """Only the main graph is expanded: an mrcnn node in a model function or in a
    branch of an If is refused by name, not left behind."""
    good = _detection_model(1, 4, 3, 0.5, 0.3, 2, 128)
    inner = onnx.NodeProto()
    inner.CopyFrom(good.graph.node[0])
    in_function = onnx.ModelProto()
    in_function.CopyFrom(good)
    in_function.functions.append(helper.make_function(
        "local", "Wrapped", list(inner.input), list(inner.output), [inner],
        [helper.make_opsetid("", 17), helper.make_opsetid("mrcnn", 1)]))
    with pytest.raises(ValueError, match="outside the main graph are not supported: function Wrapped"):
        expand_custom_nodes(in_function)

    branch = helper.make_graph([inner], "then", [], [helper.make_tensor_value_info(inner.output[0], T.FLOAT, None)])
    in_if = onnx.ModelProto()
    in_if.CopyFrom(good)
    in_if.graph.node.append(helper.make_node("If", [good.graph.input[1].name], ["if_out"], name="choose",
                                             then_branch=branch, else_branch=branch))
    with pytest.raises(ValueError, match="outside the main graph are not supported: subgraph of choose"):
        expand_custom_nodes(in_if)


def test_each_contract_op_is_expanded_by_its_registered_expander(monkeypatch):
    """One expander per op of the contract (plugins/opdefs.py), the ``expand`` of the op's folder,
    chosen by the node's op name; a contract op without one is refused by name, before anything
    is rewritten."""
    from mrcnn_trt.plugins.opdefs import OP_DEFS

    assert set(standardize.EXPANDERS) == set(OP_DEFS)
    # the table is filled from the op folders: plugins/<torch_name>/expand.py
    for op, d in OP_DEFS.items():
        assert standardize.EXPANDERS[op].__module__ == f"mrcnn_trt.plugins.{d.torch_name}.expand"
    calls = []
    real = standardize.EXPANDERS["DetectionLayer"]
    monkeypatch.setitem(standardize.EXPANDERS, "DetectionLayer",
                        lambda *a: calls.append(a[1]) or real(*a))
    expanded = expand_custom_nodes(_detection_model(1, 4, 3, 0.5, 0.3, 2, 128))
    assert not any(n.domain == "mrcnn" for n in expanded.graph.node)
    assert calls == [["rois", "roi_count", "probs", "deltas", "window"]]
    monkeypatch.delitem(standardize.EXPANDERS, "DetectionLayer")
    with pytest.raises(ValueError, match="'DetectionLayer' has no standard-ONNX expansion"):
        expand_custom_nodes(_detection_model(1, 4, 3, 0.5, 0.3, 2, 128))


def test_check_trt_supported_flags_problems():
    chk = trt_ops_table.check_trt_supported
    trt_flavor = _proposal_model(1, 5000, 4000, 100, 0.7, 256)
    assert any("mrcnn" in p and "plugin" in p for p in chk(trt_flavor, "8.6"))
    unchunked = expand_custom_nodes(trt_flavor, max_topk=None)
    probs = chk(unchunked, "10.4", include_warnings=True)
    assert any("K = 4000 exceeds" in p for p in probs)
    assert not any(p.startswith("warning:") for p in probs)          # 4000 boxes <= TensorRT's NMS limit
    chunked = expand_custom_nodes(trt_flavor)
    assert chk(chunked, "8.6") == [] and chk(chunked, "10.1") == []
    big = expand_custom_nodes(_proposal_model(1, 8000, 6000, 100, 0.7, 256))
    assert chk(big, "8.6") == []
    assert any(p.startswith("warning:") and "6000 boxes" in p for p in chk(big, "8.6", include_warnings=True))
    linear = expand_custom_nodes(_roi_model(1, 2, 1, 2, opset=20))
    assert any("opset 20" in p for p in chk(linear, "8.6"))
    assert any("'linear'" in p for p in chk(linear, "10.4"))
    uniq = _model([helper.make_node("Unique", ["x"], ["y"])], [_vi("x", T.FLOAT, [4])], [_vi("y", T.FLOAT, None)])
    assert any("Unique" in p and "unsupported" in p for p in chk(uniq, "10.4"))
    assert trt_ops_table.op_support("IsInf", "8.6.1") is not None
    assert trt_ops_table.op_support("Unique", "8.6") is None
    for v in ("8.5.3", "7.2", "11.0", "x"):
        with pytest.raises(ValueError):
            trt_ops_table.table_key(v)
