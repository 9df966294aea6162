"""mrcnn-calibrate: INT8 Q/DQ models (TensorRT and ONNX Runtime CPU forms) and
FP16 models, checked against the float32 model they come from."""
import json
import os
import sys
import types

import numpy as np
import onnx
import pytest

from mrcnn_trt.calib import qdq
from mrcnn_trt.calib.cli import main as calibrate_main
from mrcnn_trt.calib.precision import onnx_precision
from mrcnn_trt.engine.errors import PrecisionUnsupported
from mrcnn_trt.engine.precision import plan_precision
from mrcnn_trt.engine.sidecars import check_onnx_sidecar
from mrcnn_trt.runtime.runners import OnnxRunner, detect
from mrcnn_trt.fileio import sha256_file
from mrcnn_trt.plugins.onnx_schemas import register_schemas

CUSTOM = sorted(["PyramidROIAlign", "PyramidROIAlign", "ProposalLayer", "DetectionLayer"])


def _images(n, seed):
    from mrcnn_trt.data.synthetic import SyntheticShapesDataset

    ds = SyntheticShapesDataset(n, seed=seed, split="val")
    return [ds.load_image(i) for i in range(n)]


def _iou(a, b):
    y1, x1 = max(a[0], b[0]), max(a[1], b[1])
    y2, x2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0, y2 - y1) * max(0, x2 - x1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _match(ref, other, min_score=0.7):
    """For each confident reference detection, the best same-class box IoU and
    mask IoU among ``other``'s detections."""
    out = []
    for i in np.flatnonzero(ref["scores"] >= min_score):
        best = (0.0, 0.0)
        for j in np.flatnonzero(other["class_ids"] == ref["class_ids"][i]):
            b = _iou(ref["rois"][i], other["rois"][j])
            if b > best[0]:
                m1, m2 = ref["masks"][:, :, i], other["masks"][:, :, j]
                union = np.logical_or(m1, m2).sum()
                best = (b, np.logical_and(m1, m2).sum() / union if union else 1.0)
        out.append(best)
    return np.array(out).reshape(-1, 2)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """The shipped model exported to ONNX, a small calibration set, and its
    Q/DQ (both targets) and FP16 conversions made with the CLI."""
    from mrcnn_trt.data.synthetic import write_dataset
    from mrcnn_trt.export.exporter import export_onnx
    from mrcnn_trt.model.checkpoint import shipped_model_path
    from mrcnn_trt.model.loading import load_model

    path = shipped_model_path()
    if not os.path.isfile(path):
        pytest.fail(f"shipped model missing: {path}")
    d = tmp_path_factory.mktemp("calib")
    model, _, _ = load_model(path)
    src = str(d / "shapes.onnx")
    export_onnx(model, src, weights_path=path)
    write_dataset(str(d / "calib"), num_images=16, seed=31, split="train", show_progress=False)
    out = {"dir": d, "src": src, "calib": str(d / "calib")}
    for target in ("tensorrt", "cpu"):
        out[target] = str(d / f"shapes.{target}.int8.onnx")
        assert calibrate_main([src, "--calib-images", out["calib"], "--split", "train", "--calib-count", "16",
                               "--target", target, "-o", out[target]]) == 0
    assert calibrate_main([src, "--fp16"]) == 0
    out["fp16"] = str(d / "shapes.fp16.onnx")
    return out


def _producers(model):
    return {o: n for n in model.graph.node for o in n.output}


@pytest.mark.parametrize("target", ["tensorrt", "cpu"])
def test_qdq_model_keeps_custom_nodes_float_and_quantizes_the_layers(work, target):
    register_schemas()
    model = onnx.load(work[target])
    onnx.checker.check_model(model, full_check=True)
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("QuantizeLinear") > 30 and ops.count("DequantizeLinear") > 30
    assert sorted(n.op_type for n in model.graph.node if n.domain == "mrcnn") == CUSTOM
    assert {o.domain: o.version for o in model.opset_import} == {"": 17, "mrcnn": 1}
    prod = _producers(model)
    inits = {t.name: t for t in model.graph.initializer}
    for n in model.graph.node:
        if n.domain != "mrcnn":
            continue
        for x in n.input:   # every input is a float tensor, never a quantized one
            assert not (x in prod and prod[x].op_type == "QuantizeLinear"), (n.op_type, x)
    proposal = next(n for n in model.graph.node if n.op_type == "ProposalLayer")
    assert inits[proposal.input[2]].data_type == onnx.TensorProto.FLOAT          # anchors untouched
    detection = next(n for n in model.graph.node if n.op_type == "DetectionLayer")
    assert detection.input[4] == "windows"
    # layers: quantized groups get DQ weights, the excluded ones keep float weights
    side = json.load(open(work[target] + ".json"))
    q = side["quantization"]
    assert q["excluded_groups"] == list(qdq.DEFAULT_EXCLUDE) and q["target"] == target
    names = {n.name: n for n in model.graph.node}
    assert len(q["quantized_nodes"]) == 37 and len(q["excluded_nodes"]) == 13
    for name in q["quantized_nodes"]:
        assert prod[names[name].input[1]].op_type == "DequantizeLinear"
    for name in q["excluded_nodes"]:
        w = names[name].input[1]
        assert w in inits and inits[w].data_type == onnx.TensorProto.FLOAT
    assert set(q["groups"]) == {"backbone", "fpn", "rpn", "rpn_out", "classifier", "classifier_out", "mask",
                                "mask_out"}
    # TensorRT's parser rules hold only for the TensorRT form
    problems = qdq.tensorrt_qdq_problems(model)
    assert (problems == []) == (target == "tensorrt")
    if target == "cpu":
        assert any("INT32" in p for p in problems) and any("UINT8" in p for p in problems)


def test_sidecar_and_engine_precision_checks(work):
    src_side = json.load(open(work["src"] + ".json"))
    for target in ("tensorrt", "cpu"):
        side = json.load(open(work[target] + ".json"))
        assert side["onnx_sha256"] == sha256_file(work[target]) != src_side["onnx_sha256"]
        assert side["precision"] == "int8-qdq"
        q = side["quantization"]
        assert q["source_onnx_sha256"] == src_side["onnx_sha256"] and q["calib_count"] == 16
        assert q["bias"] == ("float32" if target == "tensorrt" else "int32")
        for k in ("config", "image_size", "batch", "num_classes", "class_names", "flavor", "mean_pixel"):
            assert side[k] == src_side[k]
        # what mrcnn-build-engine reads
        check_onnx_sidecar(work[target])
        prec = onnx_precision(work[target])
        assert prec.has_qdq and not prec.has_fp16
        assert plan_precision("11.1.0", fp16=False, int8=True, model=prec).label == "qdq-int8"
        plan10 = plan_precision("10.4.0", fp16=True, int8=True, model=prec)
        assert plan10.int8_mode == "qdq" and not plan10.calibrate
    fp16 = onnx_precision(work["fp16"])
    assert fp16.has_fp16 and not fp16.has_qdq
    assert plan_precision("11.1.0", fp16=True, int8=False, model=fp16).label == "fp16"
    check_onnx_sidecar(work["fp16"])


def test_build_engine_refuses_the_cpu_form(work, monkeypatch, capsys):
    from mrcnn_trt.engine.cli import main as build_main

    fake = types.ModuleType("tensorrt")
    fake.__version__ = "10.4.0.26"
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    out = str(work["dir"] / "x.plan")
    assert build_main([work["cpu"], "--arch", "sm_86", "--int8", "-o", out]) == PrecisionUnsupported.exit_code
    assert "--target tensorrt" in capsys.readouterr().err
    assert not os.path.exists(out)


def test_cpu_form_runs_int8_kernels(work):
    """ONNX Runtime fuses every quantized convolution into QLinearConv (real
    INT8 arithmetic); only the excluded layers and the deconvolution stay float."""
    side = json.load(open(work["cpu"] + ".json"))
    model = onnx.load(work["cpu"])
    names = {n.name: n.op_type for n in model.graph.node}
    quantized_convs = sum(names[n] == "Conv" for n in side["quantization"]["quantized_nodes"])
    ops = qdq.fused_int8_ops(work["cpu"])
    assert ops.get("QLinearConv", 0) == quantized_convs >= 30
    assert ops.get("Conv", 0) + ops.get("FusedConv", 0) == 11   # 10 RPN outputs + mask logits
    float_ops = qdq.fused_int8_ops(work["src"])
    assert "QLinearConv" not in float_ops


@pytest.mark.parametrize("which", ["tensorrt", "cpu", "fp16"])
def test_detections_close_to_fp32(work, which):
    images = _images(6, seed=404)
    fp32, runner = OnnxRunner(work["src"]), OnnxRunner(work[which])
    ref = [detect(fp32, [im])[0] for im in images]
    got = [detect(runner, [im])[0] for im in images]
    matches = np.concatenate([_match(r, g) for r, g in zip(ref, got)])
    assert len(matches) >= 12
    box_iou, mask_iou = matches[:, 0], matches[:, 1]
    if which == "fp16":
        assert (box_iou >= 0.9).mean() >= 0.95, box_iou
        assert np.median(mask_iou) >= 0.95
    else:   # boxes of these small shapes move by a pixel or so
        assert (box_iou >= 0.7).mean() >= 0.85, box_iou
        assert np.median(box_iou) >= 0.85 and np.median(mask_iou) >= 0.85
    n_ref = sum(int((r["scores"] >= 0.7).sum()) for r in ref)
    n_got = sum(int((g["scores"] >= 0.7).sum()) for g in got)
    assert abs(n_ref - n_got) <= max(2, 0.15 * n_ref)


def test_fp16_model_types(work):
    register_schemas()
    model = onnx.load(work["fp16"])
    onnx.checker.check_model(model, full_check=True)
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    types_ = {v.name: v.type.tensor_type.elem_type for v in
              list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output)}
    types_.update({t.name: t.data_type for t in inferred.graph.initializer})
    F, H = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16
    assert [types_[i.name] for i in model.graph.input] == [F, F]
    assert [types_[o.name] for o in model.graph.output] == [F, onnx.TensorProto.INT32, F]
    data = {"PyramidROIAlign": (1, 2, 3, 4), "ProposalLayer": (0, 1), "DetectionLayer": (2, 3)}
    for n in model.graph.node:
        if n.domain != "mrcnn":
            continue
        for i, x in enumerate(n.input):
            if types_[x] in (F, H):
                assert types_[x] == (H if i in data[n.op_type] else F), (n.op_type, i)
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    assert all(types_[n.input[1]] == H for n in convs)
    side = json.load(open(work["fp16"] + ".json"))
    assert side["precision"] == "fp16" and side["onnx_sha256"] == sha256_file(work["fp16"])
    assert side["fp16"]["float16_custom_nodes"] == CUSTOM


@pytest.mark.slow
def test_batch_two_model_and_methods(tmp_path):
    """A batch-2 export calibrates with a partial last batch (padded), with each
    calibration method; quantized outputs stay near the float ones."""
    import torch

    from mrcnn_trt.data.synthetic import write_dataset
    from mrcnn_trt.export.exporter import export_onnx
    from mrcnn_trt.model import build_model

    torch.manual_seed(0)
    m = build_model("tiny").eval()
    src = str(tmp_path / "tiny.onnx")
    export_onnx(m, src, batch=2)
    write_dataset(str(tmp_path / "c"), num_images=5, seed=3, split="val", show_progress=False)
    images = _images(2, seed=9)
    from mrcnn_trt.model.molding import mold_batch

    x, w, _ = mold_batch(images, m.config)
    ref = OnnxRunner(src).run(x, w)
    for method in ("minmax", "entropy", "percentile"):
        out = str(tmp_path / f"tiny.{method}.onnx")
        assert calibrate_main([src, "--calib-images", str(tmp_path / "c"), "--calib-count", "3", "--method", method,
                               "--target", "cpu", "--exclude", "none", "-o", out]) == 0
        side = json.load(open(out + ".json"))
        assert side["quantization"]["calib_count"] == 3 and side["quantization"]["excluded_nodes"] == []
        assert side["batch"] == 2
        got = OnnxRunner(out).run(x, w)
        assert got["detections"].shape == ref["detections"].shape and got["count"].shape == (2,)


def test_groups_and_cli_errors(work, tmp_path, capsys, monkeypatch):
    model = onnx.load(work["src"])
    qdq.ensure_node_names(model)
    groups = qdq.node_groups(model)
    assert "other" not in groups.values()
    counts = {g: list(groups.values()).count(g) for g in set(groups.values())}
    assert counts == {"backbone": 17, "fpn": 8, "rpn": 5, "rpn_out": 10, "classifier": 2, "classifier_out": 2,
                      "mask": 5, "mask_out": 1}
    assert qdq.parse_groups(None) == qdq.DEFAULT_EXCLUDE and qdq.parse_groups("none") == ()
    assert qdq.parse_groups("mask,fpn") == ("mask", "fpn")

    out = str(tmp_path / "x.int8.onnx")
    assert calibrate_main([work["src"], "--images", str(tmp_path / "nowhere"), "-o", out]) == 2
    assert "calibration images not found" in capsys.readouterr().err
    assert calibrate_main([work["src"], "--calib-images", work["calib"], "-o", out]) == 2   # split val is absent
    assert "instances_val.json" in capsys.readouterr().err
    assert calibrate_main([work["src"], "--calib-images", work["calib"], "--exclude", "heads", "-o", out]) == 2
    assert "unknown layer group 'heads'" in capsys.readouterr().err
    assert calibrate_main([work["tensorrt"], "--calib-images", work["calib"], "--split", "train", "-o", out]) == 2
    assert "already quantized" in capsys.readouterr().err
    assert calibrate_main([work["fp16"], "--fp16", "-o", out]) == 2
    assert "float16 tensors" in capsys.readouterr().err
    assert calibrate_main([work["src"], "--calib-images", work["calib"], "--split", "train", "-o", work["src"]]) == 2
    assert "must not overwrite" in capsys.readouterr().err

    def boom(*a, **k):
        raise RuntimeError("simulated crash while quantizing")

    monkeypatch.setattr(qdq, "quantize_with_ranges", boom)
    with pytest.raises(RuntimeError):
        qdq.quantize_model(work["src"], out, work["calib"], count=2, split="train")
    assert sorted(os.listdir(tmp_path)) == []
