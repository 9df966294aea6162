"""ONNX export: both flavors in ONNX Runtime against the PyTorch model."""
import json
import os

import numpy as np
import onnx
import pytest
import torch

from mrcnn_trt.config import preset
from mrcnn_trt.runtime.runners import OnnxRunner, detect
from mrcnn_trt.export.cli import main as export_main
from mrcnn_trt.export.exporter import export_onnx
from mrcnn_trt.fileio import sha256_file
from mrcnn_trt.model import build_model, save_checkpoint
from mrcnn_trt.model.checkpoint import shipped_model_path
from mrcnn_trt.model.loading import load_model
from mrcnn_trt.model.molding import load_image


def mask_iou(a, b):
    inter = np.logical_and(a, b).sum()
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else inter / union


def assert_same_detections(ours, ref):
    assert len(ours["class_ids"]) == len(ref["class_ids"])
    np.testing.assert_array_equal(ours["class_ids"], ref["class_ids"])
    if len(ref["class_ids"]):
        assert np.abs(ours["rois"].astype(np.int64) - ref["rois"]).max() <= 0.5
        np.testing.assert_allclose(ours["scores"], ref["scores"], atol=1e-3)
        for i in range(len(ref["class_ids"])):
            assert mask_iou(ours["masks"][:, :, i], ref["masks"][:, :, i]) >= 0.99


def synthetic_images(n, size=(200, 300), seed=0):
    from mrcnn_trt.data.synthetic import SyntheticShapesDataset

    ds = SyntheticShapesDataset(n, seed=seed, split="val")
    return [ds.load_image(i) for i in range(n)]


def _decisive(model):
    """Random weights give near-uniform class scores; sharpen them so that the
    comparison is about the graph, not about ties between 1/81 scores."""
    with torch.no_grad():
        model.classifier.linear_class.weight.mul_(300)
        model.classifier.linear_bbox.weight.mul_(30)
    return model


@pytest.fixture(scope="module")
def r101(tmp_path_factory):
    torch.manual_seed(0)
    cfg = preset("coco").replace(DETECTION_MIN_CONFIDENCE=0.3)
    m = _decisive(build_model(cfg)).eval()
    d = tmp_path_factory.mktemp("r101")
    paths = {}
    for flavor in ("trt", "standard"):
        paths[flavor] = str(d / f"r101_{flavor}.onnx")
        export_onnx(m, paths[flavor], flavor=flavor)
    return m, paths


@pytest.mark.slow
def test_r101_both_flavors_match_pytorch_on_real_and_synthetic(r101, seed_images):
    m, paths = r101
    images = [load_image(seed_images[0]), load_image(seed_images[3]), synthetic_images(1)[0]]
    ref = m.detect(images)
    assert sum(len(r["class_ids"]) for r in ref) > 10
    for flavor, p in paths.items():
        runner = OnnxRunner(p)
        for im, r in zip(images, ref):
            assert_same_detections(detect(runner, [im])[0], r)


@pytest.mark.slow
def test_r101_graph_is_valid_with_custom_nodes(r101):
    _, paths = r101
    model = onnx.load(paths["trt"])
    onnx.checker.check_model(model, full_check=True)
    ops = [(n.domain, n.op_type) for n in model.graph.node if n.domain == "mrcnn"]
    assert sorted(ops) == sorted([("mrcnn", "PyramidROIAlign")] * 2 + [("mrcnn", "ProposalLayer"),
                                                                        ("mrcnn", "DetectionLayer")])
    assert {o.domain: o.version for o in model.opset_import} == {"": 17, "mrcnn": 1}
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    outs = {o.name: [d.dim_value for d in o.type.tensor_type.shape.dim] for o in inferred.graph.output}
    assert outs == {"detections": [1, 100, 6], "count": [1], "masks": [1, 100, 28, 28]}
    anchors = [i for i in model.graph.initializer if list(i.dims) == [261888, 4]]
    assert len(anchors) == 1
    side = json.loads(open(paths["trt"] + ".json").read())
    assert side["onnx_sha256"] == sha256_file(paths["trt"]) and side["flavor"] == "trt"
    assert side["num_classes"] == 81 and side["image_size"] == 1024 and side["opset"] == 17
    assert side["op_versions"] == {"mrcnn": 1} and side["mean_pixel"] == [123.7, 116.8, 103.9]


@pytest.mark.slow
def test_standard_flavor_uses_only_trt_supported_ops(r101):
    from mrcnn_trt.export.trt_ops_table import check_trt_supported

    _, paths = r101
    model = onnx.load(paths["standard"])
    onnx.checker.check_model(model, full_check=True)
    assert {n.domain for n in model.graph.node} <= {"", "ai.onnx"}
    for v in ("8.6.1", "10.4.0"):
        assert check_trt_supported(model, v) == []


@pytest.mark.slow
def test_shipped_model_both_flavors_match_pytorch(tmp_path, seed_images):
    path = shipped_model_path()
    if not os.path.isfile(path):
        pytest.fail(f"shipped model missing: {path}")
    model, cfg, _ = load_model(path)
    images = synthetic_images(4, seed=7) + [load_image(seed_images[1])]
    ref = model.detect(images)
    assert sum(len(r["class_ids"]) for r in ref[:4]) >= 4
    for flavor in ("trt", "standard"):
        p = str(tmp_path / f"shapes_{flavor}.onnx")
        export_onnx(model, p, flavor=flavor, weights_path=path)
        runner = OnnxRunner(p)
        for im, r in zip(images, ref):
            assert_same_detections(detect(runner, [im])[0], r)


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    torch.manual_seed(0)
    m = _decisive(build_model("tiny"))
    p = str(tmp_path_factory.mktemp("tiny") / "tiny.pth")
    save_checkpoint(p, m, m.config)
    return p


@pytest.mark.slow
@pytest.mark.parametrize("flavor", ["trt", "standard"])
def test_batch_two_equals_batch_one(tiny_weights, tmp_path, flavor):
    images = synthetic_images(2, seed=3)
    p1, p2 = str(tmp_path / "b1.onnx"), str(tmp_path / "b2.onnx")
    assert export_main(["--weights", tiny_weights, "--flavor", flavor, "-o", p1]) == 0
    assert export_main(["--weights", tiny_weights, "--flavor", flavor, "--batch", "2", "-o", p2]) == 0
    r1, r2 = OnnxRunner(p1), OnnxRunner(p2)
    assert r2.fixed_batch == 2
    both = detect(r2, images)
    for im, b in zip(images, both):
        assert_same_detections(detect(r1, [im])[0], b)
        assert len(b["class_ids"]) > 0


def test_export_errors_are_clear_and_leave_nothing(tiny_weights, tmp_path, capsys):
    out = tmp_path / "m.onnx"
    assert export_main(["--weights", str(tmp_path / "missing.pth"), "-o", str(out)]) == 2
    assert "weights file not found" in capsys.readouterr().err
    # a 4-class checkpoint with a 9-class config
    assert export_main(["--weights", tiny_weights, "--config", "cityscapes", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "the file has 4 classes, the config 9: choose the matching --config" in err
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    assert export_main(["--weights", tiny_weights, "-o", str(blocker / "m.onnx")]) == 2
    assert "cannot create output folder" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["a_file"]


def test_failed_export_leaves_no_partial_file(tiny_weights, tmp_path, monkeypatch):
    import mrcnn_trt.export.exporter as ex

    def boom(proto, flavor):
        raise RuntimeError("simulated crash while writing")

    monkeypatch.setattr(ex, "finalize_model", boom)
    m, _, _ = load_model(tiny_weights)
    with pytest.raises(RuntimeError):
        ex.export_onnx(m, str(tmp_path / "m.onnx"))
    assert os.listdir(tmp_path) == []


def test_onnx_runner_rejects_modified_file(tiny_weights, tmp_path):
    from mrcnn_trt.errors import UserError

    p = str(tmp_path / "m.onnx")
    assert export_main(["--weights", tiny_weights, "-o", p]) == 0
    with open(p, "ab") as f:
        f.write(b"\0")
    with pytest.raises(UserError, match="does not match its sidecar"):
        OnnxRunner(p)


@pytest.mark.parametrize("flavor", ["trt", "standard"])
def test_exported_mean_subtraction_is_exact(tiny_weights, tmp_path, flavor):
    """The graph's first tensor after the input equals float32(float64(pixel) - MEAN_PIXEL)
    for every pixel value (ONNX Runtime runs the graph cut at the backbone's input)."""
    import onnx.utils
    import onnxruntime as ort

    p = str(tmp_path / "m.onnx")
    assert export_main(["--weights", tiny_weights, "--flavor", flavor, "-o", p]) == 0
    model = onnx.load(p)
    first_conv = next(n for n in model.graph.node if n.op_type == "Conv")
    cut = str(tmp_path / "cut.onnx")
    onnx.utils.extract_model(p, cut, ["images"], [first_conv.input[0]])
    s = json.loads(open(p + ".json").read())["image_size"]
    img = (np.arange(3 * s * s) % 256).astype(np.float32).reshape(1, 3, s, s)
    got = ort.InferenceSession(cut, providers=["CPUExecutionProvider"]).run(None, {"images": img})[0]
    mean = np.array(load_model(tiny_weights)[1].MEAN_PIXEL, np.float64).reshape(1, 3, 1, 1)
    np.testing.assert_array_equal(got, (img.astype(np.float64) - mean).astype(np.float32))
