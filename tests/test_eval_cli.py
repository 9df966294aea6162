"""mrcnn-eval end to end on synthetic data, and the quick start."""
import json
import os

import pytest

from mrcnn_trt.data.synthetic import write_dataset
from mrcnn_trt.eval.cli import main as eval_main
from mrcnn_trt.export.exporter import export_onnx
from mrcnn_trt.model.checkpoint import shipped_model_path
from mrcnn_trt.model.loading import load_model


@pytest.fixture(scope="module")
def shapes_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_dataset(str(root / "coco"), fmt="coco", num_images=12, seed=77, split="val")
    write_dataset(str(root / "cs"), fmt="cityscapes", num_images=6, seed=78, split="val")
    return root


@pytest.fixture(scope="module")
def shipped_onnx(tmp_path_factory):
    path = shipped_model_path()
    model, _, _ = load_model(path)
    out = str(tmp_path_factory.mktemp("onnx") / "shapes.onnx")
    export_onnx(model, out, weights_path=path)
    return path, out


def _metrics(out):
    with open(os.path.join(out, "metrics.json")) as f:
        return json.load(f)


def test_pytorch_and_onnxruntime_give_the_same_ap(shapes_data, shipped_onnx, tmp_path):
    pth, onnx_path = shipped_onnx
    aps = {}
    for name, model in (("torch", pth), ("ort", onnx_path)):
        out = str(tmp_path / name)
        rc = eval_main(["--engine", model, "--dataset", "coco", "--data-root", str(shapes_data / "coco"),
                        "--out", out, "--save-vis", "2"])
        assert rc == 0
        m = _metrics(out)
        assert m["num_images"] == 12 and m["backend"] == {"torch": "torch", "ort": "onnxruntime"}[name]
        assert m["latency_ms"]["p50"] > 0 and m["throughput_ips"] > 0
        assert len(m["bbox"]) >= 12 and "per_class" in m["segm"]
        assert len(os.listdir(os.path.join(out, "vis"))) == 2
        assert os.path.isfile(os.path.join(out, "per_class.txt"))
        aps[name] = (m["bbox"]["AP"], m["segm"]["AP"])
    assert aps["torch"][1] > 0.3  # the shipped model is a real model (mask AP ~0.45 on shapes)
    assert abs(aps["torch"][0] - aps["ort"][0]) <= 0.002
    assert abs(aps["torch"][1] - aps["ort"][1]) <= 0.002


def test_cityscapes_official_metrics(shapes_data, shipped_onnx, tmp_path):
    _, onnx_path = shipped_onnx
    out = str(tmp_path / "cs")
    assert eval_main(["--engine", onnx_path, "--dataset", "cityscapes", "--data-root", str(shapes_data / "cs"),
                      "--out", out]) == 0
    m = _metrics(out)
    assert 0.3 < m["cityscapes"]["AP"] <= 1.0 and m["cityscapes"]["AP50"] >= m["cityscapes"]["AP"]
    assert set(m["cityscapes"]["mappable_classes"]) == {"person", "car", "bicycle"}
    assert "AP" in m["segm"]  # COCO-style AP on the same predictions


def test_bad_inputs_give_one_line_and_nonzero_exit(shapes_data, shipped_onnx, tmp_path, capsys, coco_sample):
    _, onnx_path = shipped_onnx
    cases = [
        (["--engine", str(tmp_path / "nope.onnx"), "--dataset", "coco", "--data-root", str(shapes_data / "coco")],
         "model file not found"),
        (["--engine", onnx_path, "--dataset", "coco", "--data-root", str(tmp_path / "nodata")], "data root not found"),
        (["--engine", onnx_path, "--dataset", "cityscapes", "--data-root", str(shapes_data / "coco")], ""),
        (["--engine", onnx_path, "--dataset", "coco", "--data-root",
          os.path.join(coco_sample, "instances_sample.json")], "share no name"),
    ]
    for args, msg in cases:
        rc = eval_main(args + ["--out", str(tmp_path / "o")])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc != 0, args
        assert err and err[-1].startswith("error: ") and msg in err[-1], err


def test_unreadable_image_is_reported(tmp_path, shipped_onnx, capsys):
    _, onnx_path = shipped_onnx
    root = tmp_path / "coco"
    write_dataset(str(root), fmt="coco", num_images=3, seed=5, split="val")
    imgs = sorted(os.listdir(root / "images"))
    (root / "images" / imgs[1]).write_bytes(b"broken")
    rc = eval_main(["--engine", onnx_path, "--dataset", "coco", "--data-root", str(root), "--out", str(tmp_path / "o")])
    assert rc == 4
    assert "could not be read" in capsys.readouterr().err
    m = _metrics(str(tmp_path / "o"))
    assert m["num_images"] == 2 and len(m["skipped_images"]) == 1


def test_ctrl_c_keeps_valid_outputs(shapes_data, shipped_onnx, tmp_path, monkeypatch):
    from mrcnn_trt.runtime.runners import OnnxRunner

    _, onnx_path = shipped_onnx
    calls = {"n": 0}
    orig = OnnxRunner.run

    def interrupted_run(self, images, windows):
        calls["n"] += 1
        if calls["n"] == 5:  # warm-up + 3 images, then Ctrl-C
            raise KeyboardInterrupt
        return orig(self, images, windows)

    monkeypatch.setattr(OnnxRunner, "run", interrupted_run)
    out = str(tmp_path / "o")
    rc = eval_main(["--engine", onnx_path, "--dataset", "coco", "--data-root", str(shapes_data / "coco"),
                    "--out", out])
    assert rc == 130
    m = _metrics(out)
    assert m["interrupted"] is True and m["num_images"] == 3 and "AP" in m["segm"]
    assert not [f for f in os.listdir(out) if f.endswith(".part")]


@pytest.mark.slow
def test_quickstart_shortest_setting(tmp_path, capsys):
    from mrcnn_trt.apps.quickstart import main

    rc = main(["--num-images", "6", "--out", str(tmp_path / "qs"), "--skip-torch"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "onnxruntime (custom ops)" in printed and "mask AP" in printed
    print(printed)  # the AP table in the CI log
    s = json.loads((tmp_path / "qs" / "summary.json").read_text())
    assert {r["backend"] for r in s["rows"]} >= {"onnxruntime (custom ops)", "onnxruntime (standard ops)"}
    assert all(r["mask_AP_fraction"] is not None for r in s["rows"])
    for flavor in ("trt", "standard"):   # no confidence cut-off: AP counts every detection
        side = json.loads((tmp_path / "qs" / f"shapes_{flavor}.onnx.json").read_text())
        assert side["config"]["DETECTION_MIN_CONFIDENCE"] == 0
    # the table prints percent (one decimal) of the fractions summary.json keeps
    row = next(r for r in s["rows"] if r["backend"] == "onnxruntime (custom ops)" and r["data"] == "coco")
    line = next(ln for ln in printed.splitlines() if ln.startswith("onnxruntime (custom ops)") and " coco " in ln)
    box, mask = line[28:].split()[1:3]
    assert box == f"{100 * row['bbox_AP_fraction']:.1f}" and mask == f"{100 * row['mask_AP_fraction']:.1f}"
    assert "AP in percent" in printed


def test_printed_ap_is_percent_and_json_keeps_fractions():
    from mrcnn_trt.eval.cli import per_class_table, summary_line

    m = {"bbox": {"AP": 0.5854, "AP50": 0.9, "per_class": {"circle": 0.612, "square": float("nan")}},
         "segm": {"AP": 0.559, "AP50": 0.88, "per_class": {"circle": 0.6}},
         "cityscapes": {"AP": 0.4, "AP50": 0.75, "per_class": {"person": {"AP": 0.325, "AP50": 0.5}}},
         "latency_ms": {"p50": 12.0}, "throughput_ips": 50.0}
    line = summary_line(m)
    assert "box AP 58.5 %, AP50 90.0 %" in line and "mask AP 55.9 %, AP50 88.0 %" in line
    assert "cityscapes AP 40.0 %, AP50 75.0 %" in line and "0.5" not in line.split("|")[0]
    table = per_class_table(m).splitlines()
    assert table[0].endswith("AP (%)")
    assert table[1].split() == ["box", "circle", "61.2"] and table[2].split() == ["box", "square", "n/a"]
    assert table[4].split() == ["cityscapes", "person", "32.5", "AP50", "50.0"]
