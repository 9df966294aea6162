"""Dynamic batch (mrcnn-export --batch dynamic) and the mask head on the valid
detection slots only (--mask-head valid, and always in PyTorch eager)."""
import json
import os

import numpy as np
import onnx
import pytest
import torch

from mrcnn_trt.errors import UserError
from mrcnn_trt.export.cli import main as export_main
from mrcnn_trt.model import build_model, save_checkpoint
from mrcnn_trt.model.molding import mold_batch
from mrcnn_trt.runtime.runners import OnnxRunner, detect


def _images(n, seed=3):
    from mrcnn_trt.data.synthetic import SyntheticShapesDataset

    ds = SyntheticShapesDataset(n, seed=seed, split="val")
    return [ds.load_image(i) for i in range(n)]


def _decisive_tiny():
    torch.manual_seed(0)
    m = build_model("tiny").eval()
    with torch.no_grad():   # sharp class scores: detections, with fewer than the 20 slots filled
        m.classifier.linear_class.weight.mul_(300)
        m.classifier.linear_bbox.weight.mul_(30)
        m.classifier.linear_class.bias[0] += 450.0
    return m


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("dyn")
    m = _decisive_tiny()
    w = str(d / "tiny.pth")
    save_checkpoint(w, m, m.config)
    paths = {"dyn": str(d / "dyn.onnx"), "b1": str(d / "b1.onnx")}
    assert export_main(["--weights", w, "--batch", "dynamic", "--max-batch", "4", "--mask-head", "valid",
                        "-o", paths["dyn"]]) == 0
    assert export_main(["--weights", w, "-o", paths["b1"]]) == 0
    return m, w, paths


def test_graph_and_sidecar(models):
    _, _, paths = models
    side = json.load(open(paths["dyn"] + ".json"))
    assert side["dynamic_batch"] is True and side["batch"] == 4 and side["batch_range"] == [1, 4]
    assert side["mask_head"] == "valid" and side["inputs"]["images"][0] == "batch"
    g = onnx.load(paths["dyn"]).graph
    for v in list(g.input) + list(g.output):
        assert v.type.tensor_type.shape.dim[0].dim_param == "batch", v.name
    fixed = json.load(open(paths["b1"] + ".json"))
    assert fixed["dynamic_batch"] is False and fixed["batch"] == 1 and fixed["mask_head"] == "all"
    r = OnnxRunner(paths["dyn"])
    assert r.fixed_batch is None and r.max_batch == 4 and r.batch_limit() == 4


def test_batches_1_3_and_max_equal_batch_1(models):
    """Every image's raw outputs at batch 1, 3 and 4 of the dynamic model equal those of
    the fixed batch-1 export (all mask slots computed) on the valid rows, rows past
    the count are zero, and so do the unmolded results."""
    m, _, paths = models
    images = _images(5)
    x, w, _ = mold_batch(images, m.config)
    dyn, b1 = OnnxRunner(paths["dyn"]), OnnxRunner(paths["b1"])
    ref = [b1(x[i:i + 1], w[i:i + 1]) for i in range(5)]
    counts = [int(r["count"][0]) for r in ref]
    assert all(0 < c < m.config.DETECTION_MAX_INSTANCES for c in counts) and len(set(counts)) > 1, counts
    for bs in (1, 3, 4):
        got = []
        for s in range(0, 5, bs):
            out = dyn(x[s:s + bs], w[s:s + bs])
            got += [{k: v[i] for k, v in out.items()} for i in range(out["count"].shape[0])]
        for i, (g, r) in enumerate(zip(got, ref)):
            c = counts[i]
            assert int(g["count"]) == c
            np.testing.assert_array_equal(g["detections"], r["detections"][0])
            np.testing.assert_array_equal(g["masks"][:c], r["masks"][0][:c])
            assert not g["masks"][c:].any()
    alone = [detect(b1, [im])[0] for im in images]
    for bs in (3, 4):
        res = [r for s in range(0, 5, bs) for r in detect(dyn, images[s:s + bs])]
        for a, b in zip(res, alone):
            for k in ("rois", "class_ids", "scores", "masks"):
                np.testing.assert_array_equal(a[k], b[k])


def test_batch_above_the_range_is_refused(models, tmp_path, capsys):
    _, _, paths = models
    x, w, _ = mold_batch(_images(5), models[0].config)
    with pytest.raises(UserError, match=r"takes 1\.\.4 images per call, got 5"):
        OnnxRunner(paths["dyn"])(x, w)
    from mrcnn_trt.data.synthetic import write_dataset
    from mrcnn_trt.eval.cli import main as eval_main

    write_dataset(str(tmp_path / "coco"), num_images=6, seed=5, split="val", show_progress=False)
    base = ["--engine", paths["dyn"], "--dataset", "coco", "--data-root", str(tmp_path / "coco")]
    assert eval_main(base + ["--batch", "5", "--out", str(tmp_path / "e5")]) == 2
    assert "dynamic batch range 1..4" in capsys.readouterr().err
    # mrcnn-eval --batch 3 on the dynamic model: the same predictions as batch 1
    assert eval_main(base + ["--batch", "3", "--out", str(tmp_path / "e3")]) == 0
    assert eval_main(base + ["--batch", "1", "--out", str(tmp_path / "e1")]) == 0
    m3, m1 = (json.load(open(tmp_path / e / "metrics.json")) for e in ("e3", "e1"))
    assert m3["batch"] == 3 and m3["num_images"] == m1["num_images"] == 6
    assert json.dumps(m3["segm"], sort_keys=True) == json.dumps(m1["segm"], sort_keys=True)


def test_export_option_errors(models, tmp_path, capsys):
    _, w, _ = models
    out = str(tmp_path / "x.onnx")
    assert export_main(["--weights", w, "--max-batch", "4", "-o", out]) == 2
    assert "--max-batch goes with --batch dynamic" in capsys.readouterr().err
    assert export_main(["--weights", w, "--batch", "dynamic", "--max-batch", "1", "-o", out]) == 2
    assert "--max-batch >= 2" in capsys.readouterr().err
    assert export_main(["--weights", w, "--batch", "dynamic", "--flavor", "standard", "-o", out]) == 2
    assert "standard flavor needs static shapes" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        export_main(["--weights", w, "--batch", "0", "-o", out])
    assert not os.path.exists(out)


def test_valid_mask_head_skips_empty_slots(models):
    """The mask head of the --mask-head valid graph runs on max(count) boxes, not on all
    DETECTION_MAX_INSTANCES slots (its PyramidROIAlign output, made a graph output here)."""
    from mrcnn_trt.plugins.ort import make_session

    m, _, paths = models
    model = onnx.load(paths["dyn"])
    roi_aligns = [n for n in model.graph.node if n.op_type == "PyramidROIAlign"]
    mask_crops = roi_aligns[-1].output[0]
    model.graph.output.append(onnx.helper.make_tensor_value_info(mask_crops, onnx.TensorProto.FLOAT, None))
    sess = make_session(model)
    x, w, _ = mold_batch(_images(3), m.config)
    count, crops = sess.run(["count", mask_crops], {"images": x, "windows": w})
    assert crops.shape[:2] == (3, int(count.max())) and count.max() < m.config.DETECTION_MAX_INSTANCES


def test_eager_mask_head_on_valid_slots_equals_all_slots(models):
    """PyTorch: the trimmed mask head gives the masks of the full one on every valid row,
    zeros elsewhere; no detection at all skips the head."""
    m = models[0]
    x, w, _ = mold_batch(_images(3), m.config)
    x, w = torch.from_numpy(x), torch.from_numpy(w)
    with torch.no_grad():
        trimmed = m.run(x, w, intermediates=True)
        full_slots = m.valid_slots
        m.valid_slots = lambda count, d: (d, False)
        try:
            full = m.run(x, w)
        finally:
            m.valid_slots = full_slots
        for i, c in enumerate(trimmed["count"].tolist()):
            torch.testing.assert_close(trimmed["masks"][i, :c], full["masks"][i, :c], rtol=0, atol=1e-6)
            assert not trimmed["masks"][i, c:].any()
        assert trimmed["mask_probs_all"].shape[1] == int(trimmed["count"].max())
        empty = build_model("tiny").eval()
        empty.load_state_dict(m.state_dict())
        empty.classifier.linear_class.bias[0] = 1e4   # everything is background
        out = empty.run(x, w, intermediates=True)
        assert int(out["count"].max()) == 0 and out["mask_probs_all"].shape[1] == 0
        assert out["masks"].shape == full["masks"].shape and not out["masks"].any()


def test_calibrating_a_dynamic_model_keeps_its_batch_range(models, tmp_path):
    from mrcnn_trt.calib.cli import main as calibrate_main
    from mrcnn_trt.data.synthetic import write_dataset

    m, _, paths = models
    write_dataset(str(tmp_path / "c"), num_images=5, seed=8, split="train", show_progress=False)
    out = str(tmp_path / "dyn.int8.onnx")
    assert calibrate_main([paths["dyn"], "--images", str(tmp_path / "c"), "--split", "train", "--calib-count", "5",
                           "--target", "cpu", "-o", out]) == 0
    side = json.load(open(out + ".json"))
    assert side["dynamic_batch"] is True and side["quantization"]["calib_count"] == 5
    r = OnnxRunner(out)
    x, w, _ = mold_batch(_images(3), m.config)
    assert r(x, w)["detections"].shape[0] == 3


def test_tensorrt_refuses_the_valid_slot_mask_head(models, tmp_path, capsys):
    """A --mask-head valid export is for ONNX Runtime: mrcnn-build-engine says so in one line
    (before looking for TensorRT), exit code 20, no plan left behind."""
    from mrcnn_trt.engine.cli import main as build_main
    from mrcnn_trt.engine.errors import ModelUnsupported

    _, _, paths = models
    plan = tmp_path / "dyn.plan"
    assert build_main([paths["dyn"], "--arch", "sm_89", "-o", str(plan)]) == ModelUnsupported.exit_code == 20
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--mask-head valid" in err[0] and "--mask-head all" in err[0], err
    assert not plan.exists() and not os.path.exists(str(plan) + ".json")
