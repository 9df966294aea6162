"""Hostile and odd inputs on the command line: models, images, outputs, numbers.

Each family of bad inputs is generated here (nothing stored), then given to every
command that reads it; each must answer with one ``error:`` line and its documented
exit code, or skip and list the input (exit 4). ``test_no_traceback.py`` runs every
command over the whole corpus and fails on the word ``Traceback``.
"""
import contextlib
import hashlib
import io
import json
import os
import pickle
import shutil
import signal
import traceback
import zipfile

import numpy as np
import pytest
from PIL import Image

from mrcnn_trt.apps.demo import main as demo_main
from mrcnn_trt.calib.cli import main as calibrate_main
from mrcnn_trt.data.cli import main as make_dataset_main
from mrcnn_trt.data.synthetic import write_dataset
from mrcnn_trt.engine.cli import main as build_engine_main
from mrcnn_trt.eval.cli import main as eval_main
from mrcnn_trt.export.cli import main as export_main
from mrcnn_trt.train.cli import main as train_main


# ----------------------------------------------------------------- fixtures and generators
@pytest.fixture(scope="module")
def coco_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("coco")
    write_dataset(str(root), fmt="coco", num_images=3, seed=5, split="val", size=(96, 80), show_progress=False)
    return root


@pytest.fixture(scope="module")
def calib_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("calib")
    for i in range(2):
        png(d / f"c{i}.png", (64, 48), (40 * i, 90, 200))
    return d


def png(path, size=(40, 30), color=(200, 30, 30)):
    Image.new("RGB", size, color).save(path)
    return str(path)


def bomb_png(path, w=30000, h=30000):
    """A tiny PNG whose header declares w x h pixels (a decompression bomb)."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b""))
    open(path, "wb").write(data)
    return str(path)


def fifo(path):
    os.mkfifo(path)
    return str(path)


@contextlib.contextmanager
def deadline(seconds=120):
    """Fail instead of hanging (a FIFO opened for reading blocks forever)."""
    def on_alarm(signum, frame):
        raise TimeoutError(f"still running after {seconds} s: blocked on an input?")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


#: images that are not readable as images, one per family (each written by ``bad_image``)
BAD_IMAGES = ["bomb", "fifo", "truncated", "garbage", "empty", "folder", "zip"]


def bad_image(kind, folder):
    p = os.path.join(folder, f"bad_{kind}.png")
    if kind == "bomb":
        return bomb_png(p)
    if kind == "fifo":
        return fifo(p)
    if kind == "folder":
        os.mkdir(p)
        return p
    good = io.BytesIO()
    Image.new("RGB", (64, 64), (9, 200, 9)).save(good, format="PNG")
    data = {"truncated": good.getvalue()[:60], "garbage": np.random.default_rng(1).bytes(3000), "empty": b"",
            "zip": _zip_bytes()}[kind]
    open(p, "wb").write(data)
    return p


def _zip_bytes():
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w") as z:
        z.writestr("model.onnx", b"\x08\x07")
    return b.getvalue()


#: ONNX files that onnx itself cannot load (TensorRT's parser could not either)
UNLOADABLE_ONNX = ["garbage", "truncated", "empty", "zip", "pickle", "text", "no_graph", "external_escape"]
#: ONNX files onnx loads but ONNX Runtime refuses
UNRUNNABLE_ONNX = ["unknown_op", "unknown_domain", "bad_custom_attribute"]


def bad_onnx(kind, good, folder):
    """``folder/<kind>.onnx`` + a sidecar copied from ``good`` and re-hashed to the new
    file (an attacker's sidecar that passes the sha256 check, so the loader is reached)."""
    import onnx

    p = os.path.join(folder, f"{kind}.onnx")
    raw = open(good, "rb").read()
    if kind in ("garbage", "truncated", "empty", "zip", "pickle", "text"):
        data = {"garbage": np.random.default_rng(2).bytes(5000), "truncated": raw[:len(raw) // 2], "empty": b"",
                "zip": _zip_bytes(), "pickle": pickle.dumps({"weights": [1, 2, 3]}),
                "text": b"<html><body>not a model</body></html>"}[kind]
        open(p, "wb").write(data)
    else:
        m = onnx.load(good)
        if kind == "no_graph":
            m = onnx.ModelProto(ir_version=m.ir_version, opset_import=m.opset_import)
        elif kind == "external_escape":
            secret = os.path.join(os.path.dirname(folder), "secret.bin")
            t = max(m.graph.initializer, key=lambda t: len(t.raw_data))
            open(secret, "wb").write(t.raw_data)
            t.ClearField("raw_data")
            t.data_location = onnx.TensorProto.EXTERNAL
            for k, v in (("location", "../secret.bin"), ("offset", "0"), ("length", str(os.path.getsize(secret)))):
                e = t.external_data.add()
                e.key, e.value = k, v
        elif kind == "unknown_op":
            next(n for n in m.graph.node if n.op_type == "Relu").op_type = "NoSuchOp"
        elif kind == "unknown_domain":
            n = next(n for n in m.graph.node if n.op_type == "Relu")
            n.domain = "evil.example"
            m.opset_import.add(domain="evil.example", version=1)
        elif kind == "bad_custom_attribute":
            n = next(n for n in m.graph.node if n.domain == "mrcnn" and n.op_type == "PyramidROIAlign")
            next(a for a in n.attribute if a.name == "pooled_size").i = 1   # the op library's minimum is 2
        onnx.save(m, p)
    side = json.loads(open(good + ".json").read())
    side["onnx_sha256"] = hashlib.sha256(open(p, "rb").read()).hexdigest()
    open(p + ".json", "w").write(json.dumps(side))
    return p


def call(main, argv, capsys):
    """(exit code, stderr) of an in-process ``main(argv)``; an exception escaping it
    is returned as its traceback text (what the console script would print)."""
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    except BaseException:   # noqa: BLE001 - reported by the caller
        code = "exception"
        out = capsys.readouterr()
        return code, out.err + out.out + traceback.format_exc()
    out = capsys.readouterr()
    return code, out.err + out.out


def one_error_line(err):
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("error:")]
    return len(lines) == 1 and "Traceback" not in err, lines


# ----------------------------------------------------------------- item 4: one model loader
@pytest.mark.parametrize("kind", UNLOADABLE_ONNX + UNRUNNABLE_ONNX)
def test_unloadable_onnx_is_one_line_in_every_command(kind, tiny_onnx, coco_data, calib_dir, tmp_path, capsys):
    d = tmp_path / "models"
    d.mkdir()
    p = bad_onnx(kind, tiny_onnx, str(d))
    runs = {
        "eval": (eval_main, ["--model", p, "--dataset", "coco", "--data-root", str(coco_data), "-o",
                             str(tmp_path / "e")], 2),
        "calibrate-int8": (calibrate_main, [p, "--calib-images", str(calib_dir), "--calib-count", "2", "-o",
                                            str(tmp_path / "q.onnx")], 2),
        "calibrate-fp16": (calibrate_main, [p, "--fp16", "-o", str(tmp_path / "h.onnx")], 2),
    }
    if kind in UNLOADABLE_ONNX:   # 18 (parse failed) as engine/README.md documents, before TensorRT is looked for
        runs["build-engine"] = (build_engine_main, [p, "--arch", "sm_89", "-o", str(tmp_path / "m.plan")], 18)
    for name, (main, argv, expect) in runs.items():
        code, err = call(main, argv, capsys)
        ok, lines = one_error_line(err)
        assert code == expect and ok, (name, code, err)
        assert p in lines[0] or "sidecar" in lines[0], (name, lines)
    assert not any(f.endswith((".onnx", ".plan")) for f in os.listdir(tmp_path))   # nothing written
    if kind == "external_escape":
        assert "outside the model's folder" in lines[0]


def test_model_loader_names_the_file_kind(tiny_onnx, tmp_path):
    from mrcnn_trt.errors import UserError
    from mrcnn_trt.runtime.modelfile import ModelFileError, load_onnx, onnx_session

    for kind in UNLOADABLE_ONNX:
        with pytest.raises(ModelFileError) as e:
            load_onnx(bad_onnx(kind, tiny_onnx, str(tmp_path)))
        assert "\n" not in str(e.value)
    for kind in UNRUNNABLE_ONNX:
        p = bad_onnx(kind, tiny_onnx, str(tmp_path))
        load_onnx(p)   # onnx reads these ...
        with pytest.raises(ModelFileError, match="ONNX Runtime cannot load"):   # ... ONNX Runtime does not
            onnx_session(p, threads=1)
    with pytest.raises(UserError, match="not a regular file"):
        load_onnx(fifo(tmp_path / "pipe.onnx"))
    with pytest.raises(UserError, match="is a folder"):
        load_onnx(str(tmp_path))
    assert load_onnx(tiny_onnx).graph.node   # the real model loads


# ----------------------------------------------------------------- items 6, 18: one safe image opener
@pytest.mark.parametrize("kind", BAD_IMAGES)
def test_unreadable_image_is_a_user_error_naming_it(kind, tmp_path):
    from mrcnn_trt.errors import UserError
    from mrcnn_trt.imageio import load_rgb_image

    p = bad_image(kind, str(tmp_path))
    with deadline(30), pytest.raises(UserError) as e:
        load_rgb_image(p)
    assert p in str(e.value) and "\n" not in str(e.value)
    if kind == "bomb":
        assert "too large: 900000000 pixels (at most 89478485" in str(e.value)
    bomb_png(tmp_path / "medium.png", 10000, 10000)   # between Pillow's warning and error: our own limit
    with pytest.raises(UserError, match=r"too large: 10000x10000 = 100000000 pixels"):
        load_rgb_image(str(tmp_path / "medium.png"))


def test_demo_skips_and_lists_every_bad_image(tiny_weights, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    good = [png(photos / "good.png"), png(photos / "thin.png", (3, 2000)), png(photos / "line.png", (20000, 1))]
    bad = [bad_image(k, str(photos)) for k in BAD_IMAGES if k != "folder"]
    out = tmp_path / "out"
    with deadline():
        assert demo_main(["--weights", tiny_weights, str(photos), "-o", str(out)]) == 4
    summary = json.loads((out / "summary.json").read_text())
    assert summary["processed"] == len(good) and summary["failed"] == len(bad)
    failed = {e["image"]: e["error"] for e in summary["images"] if "error" in e}
    assert sorted(failed) == sorted(bad)
    assert "too large" in failed[os.path.join(str(photos), "bad_bomb.png")]
    assert "not a regular file" in failed[os.path.join(str(photos), "bad_fifo.png")]


def test_eval_and_calibration_skip_a_bomb_and_a_fifo(tiny_onnx, coco_data, calib_dir, tmp_path, capsys):
    root = tmp_path / "coco"
    shutil.copytree(coco_data, root)
    victim = sorted(os.listdir(root / "images"))[0]
    os.remove(root / "images" / victim)
    bomb_png(root / "images" / victim)
    out = tmp_path / "e"
    with deadline():
        code = eval_main(["--model", tiny_onnx, "--dataset", "coco", "--data-root", str(root), "-o", str(out)])
    assert code == 4
    metrics = json.loads((out / "metrics.json").read_text())
    assert any(victim in json.dumps(s) for s in metrics.get("skipped_images", metrics.get("skipped", [])))
    cal = tmp_path / "cal"
    shutil.copytree(calib_dir, cal)
    fifo(cal / "pipe.png")
    bomb_png(cal / "bomb.png")
    with deadline():
        assert calibrate_main([tiny_onnx, "--calib-images", str(cal), "--calib-count", "4", "-o",
                               str(tmp_path / "q.onnx")]) == 0
    err = capsys.readouterr().err
    assert "pipe.png is not a regular file" in err and "bomb.png is too large" in err
    assert json.loads(open(tmp_path / "q.onnx.json").read())["quantization"]["calib_count"] == 2


# ----------------------------------------------------------------- item 7: thin images
@pytest.mark.parametrize("h,w", [(3, 2000), (1, 20000), (2000, 3), (20000, 1), (1, 1)])
def test_thin_images_keep_at_least_one_pixel(h, w):
    from mrcnn_trt.config import preset
    from mrcnn_trt.model.molding import mold_batch, unmold_detections

    cfg = preset("tiny")
    img = np.full((h, w, 3), 77, np.uint8)
    batch, windows, infos = mold_batch([img], cfg)
    y1, x1, y2, x2 = infos[0].window
    assert batch.shape == (1, 3, 128, 128) and y2 - y1 >= 1 and x2 - x1 >= 1
    assert max(y2 - y1, x2 - x1) == min(128, max(round(max(h, w) * infos[0].scale), 1))
    assert batch[0, :, y1:y2, x1:x2].min() == 77 and batch.sum() == 77 * 3 * (y2 - y1) * (x2 - x1)
    r = unmold_detections(np.zeros((20, 6), np.float32), 0, np.zeros((20, 28, 28), np.float32), infos[0])
    assert r["masks"].shape == (h, w, 0)


# ----------------------------------------------------------------- item 9: never overwrite an input
def test_demo_into_its_input_folder_replaces_nothing(tiny_weights, tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    a = png(photos / "a.png")
    before = open(a, "rb").read()
    code, err = call(demo_main, ["--weights", tiny_weights, str(photos), "-o", str(photos)], capsys)
    assert code == 2 and one_error_line(err)[0] and "would overwrite the input" in err
    assert open(a, "rb").read() == before and os.listdir(photos) == ["a.png"]
    # a foreign PNG where a drawing would go is not replaced either; our own drawings are
    out = tmp_path / "out"
    out.mkdir()
    png(out / "a.png", color=(1, 2, 3))
    code, err = call(demo_main, ["--weights", tiny_weights, a, "-o", str(out)], capsys)
    assert code == 2 and "is not a drawing of mrcnn-demo" in err
    os.remove(out / "a.png")
    for _ in range(2):
        assert call(demo_main, ["--weights", tiny_weights, a, "-o", str(out)], capsys)[0] == 0


def test_export_onto_its_weights_keeps_the_checkpoint(tiny_weights, tmp_path, capsys):
    w = tmp_path / "w.pth"
    shutil.copy(tiny_weights, w)
    before = w.read_bytes()
    os.link(w, tmp_path / "hard.pth")
    for target in (w, tmp_path / "hard.pth", tmp_path / "." / "w.pth"):
        code, err = call(export_main, ["--weights", str(w), "-o", str(target)], capsys)
        assert code == 2 and one_error_line(err)[0] and "would overwrite the input" in err, err
    code, err = call(export_main, ["--weights", str(w), "-o", str(tmp_path)], capsys)
    assert code == 2 and "is a folder" in err
    assert w.read_bytes() == before


def test_make_dataset_refuses_a_real_dataset_and_replaces_its_own(tmp_path, capsys):
    real = tmp_path / "real"
    (real / "annotations").mkdir(parents=True)
    (real / "images").mkdir()
    ann = real / "annotations" / "instances_val.json"
    ann.write_text(json.dumps({"images": [], "annotations": [], "categories": []}))
    photo = png(real / "images" / "val_000000.png")
    snapshot = {p: open(p, "rb").read() for p in (str(ann), photo)}
    code, err = call(make_dataset_main, ["--out", str(real), "--num-images", "1", "--quiet"], capsys)
    assert code == 2 and one_error_line(err)[0] and "not written by mrcnn-make-dataset" in err
    ann.unlink()
    snapshot.pop(str(ann))
    code, err = call(make_dataset_main, ["--out", str(real), "--num-images", "1", "--quiet"], capsys)
    assert code == 2 and "without the synthetic mark" in err
    assert {p: open(p, "rb").read() for p in snapshot} == snapshot and not ann.exists()
    cs = tmp_path / "cs"
    city = cs / "leftImg8bit" / "val" / "synth0"
    city.mkdir(parents=True)
    png(city / "holiday.png")
    code, err = call(make_dataset_main, ["--out", str(cs), "--format", "cityscapes", "--num-images", "1",
                                         "--quiet"], capsys)
    assert code == 2 and "does not write" in err and (city / "holiday.png").exists()
    own = tmp_path / "own"
    for n in (3, 1):   # reruns replace their own files
        assert call(make_dataset_main, ["--out", str(own), "--num-images", str(n), "--quiet", "--split", "val"],
                    capsys)[0] == 0
    assert sorted(os.listdir(own / "images")) == ["val_000000.png"]


# ----------------------------------------------------------------- items 14, 15: training
TRAIN = ["--dataset", "shapes", "--config", "tiny", "--weights", "none", "--layers", "all", "--epochs", "1",
         "--steps-per-epoch", "1", "--synthetic-images", "2", "--val-steps", "1", "--workers", "0", "--threads", "1",
         "--quiet"]


@pytest.mark.parametrize("export", ["OUT/last.pth", "OUT/epoch_0001.pth", "OUT/losses.json", "OUT", "FILE/x.pth"])
def test_train_export_is_checked_before_training(export, tmp_path, capsys):
    out = tmp_path / "run"
    (tmp_path / "afile").write_text("x")
    target = export.replace("OUT", str(out)).replace("FILE", str(tmp_path / "afile"))
    if export == "OUT":
        out.mkdir()
    code, err = call(train_main, TRAIN + ["-o", str(out), "--export", target], capsys)
    assert code == 2 and one_error_line(err)[0], err
    assert not out.exists() or os.listdir(out) == []   # refused before any epoch


def test_train_refuses_to_overwrite_its_weights_with_export(tiny_weights, tmp_path, capsys):
    w = tmp_path / "w.pth"
    shutil.copy(tiny_weights, w)
    code, err = call(train_main, [a if a != "none" else str(w) for a in TRAIN]
                     + ["-o", str(tmp_path / "r"), "--export", str(w)], capsys)
    assert code == 2 and "would overwrite the input" in err


def test_divergence_in_validation_or_weights_is_not_saved(tmp_path, capsys):
    out = tmp_path / "run"
    code, err = call(train_main, TRAIN + ["-o", str(out), "--lr", "1e9", "--warmup-steps", "0", "--val-split", "val"],
                     capsys)
    assert code == 2 and one_error_line(err)[0] and "training diverged in epoch 1: " in err, err
    assert not (out / "last.pth").exists() and not (out / "epoch_0001.pth").exists()


def test_check_divergence_rules():
    import torch

    from mrcnn_trt.errors import UserError
    from mrcnn_trt.train.loop import WEIGHT_LIMIT, check_divergence

    m = torch.nn.Linear(2, 2)
    check_divergence(m, 1, {"loss": 1.0}, 0, "o")
    with pytest.raises(UserError, match="validation loss is nan"):
        check_divergence(m, 2, {"loss": float("nan")}, 1, "o")
    with torch.no_grad():
        m.weight[0, 0] = WEIGHT_LIMIT * 10
    with pytest.raises(UserError, match=r"weight weight reaches 1e\+05.*last complete epoch is 1"):
        check_divergence(m, 2, {"loss": 1.0}, 1, "o")
    m.weight.requires_grad_(False)   # frozen weights are not judged
    check_divergence(m, 2, {"loss": 1.0}, 1, "o")


# ----------------------------------------------------------------- item 16: bounds
@pytest.mark.parametrize("module,argv", [
    ("mrcnn_trt.eval.cli", ["--dataset", "coco", "--data-root", "x", "--threads", "100000"]),
    ("mrcnn_trt.calib.cli", ["m.onnx", "--fp16", "--threads", "100000"]),
    ("mrcnn_trt.apps.demo", ["x.png", "-o", "o", "--batch", "100000"]),
    ("mrcnn_trt.export.cli", ["--image-size", "16384"]),
    ("mrcnn_trt.export.cli", ["--batch", "dynamic", "--max-batch", "100000"]),
    ("mrcnn_trt.train.cli", ["--dataset", "shapes", "--weights", "none", "--epochs", "1", "-o", "o",
                             "--workers", "100000"]),
    ("mrcnn_trt.train.cli", ["--dataset", "shapes", "--weights", "none", "--epochs", "1", "-o", "o",
                             "--threads", "100000"]),
    ("mrcnn_trt.data.cli", ["--out", "o", "--size", "100000x100000"]),
    ("mrcnn_trt.data.cli", ["--out", "o", "--max-instances", "1000000"]),
])
def test_resource_options_are_bounded_by_the_parser(module, argv, capsys):
    """Only the parser runs: a regression fails here instead of starting 100000 threads."""
    import importlib

    with pytest.raises(SystemExit) as e:
        importlib.import_module(module).build_parser().parse_args(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and "must be <=" in err and "Traceback" not in err, err


@pytest.mark.parametrize("change,expect", [
    ({"IMAGE_MAX_DIM": 64000}, "IMAGE_MAX_DIM must be <= 2048"),
    ({"IMAGE_MAX_DIM": "1024"}, "IMAGE_MAX_DIM must be int"),
    ({"DETECTION_MIN_CONFIDENCE": "high"}, "DETECTION_MIN_CONFIDENCE must be float"),
    ({"MEAN_PIXEL": [1, "a", 3]}, "MEAN_PIXEL must be a list"),
    ({"PRE_NMS_LIMIT": 10 ** 9}, "PRE_NMS_LIMIT must be <="),
    ({"USE_MINI_MASK": 1}, "USE_MINI_MASK must be bool"),
    ({"preset": 5}, "config preset must be one of"),
])
def test_config_values_are_validated_when_read(change, expect, tmp_path):
    """The config is refused when read, before any model is built (the sweep below runs
    the commands with such files)."""
    from mrcnn_trt.config import preset
    from mrcnn_trt.errors import UserError

    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"preset": "tiny", **change}))
    with pytest.raises(UserError, match=expect):
        preset(str(cfg))
    assert preset("tiny").replace().IMAGE_MAX_DIM == 128   # the presets themselves pass


@pytest.mark.parametrize("content", [b"\xff\xfe\x00garbage", b"[1, 2]", b"[" * 100000 + b"]" * 100000, b"7"])
def test_config_files_that_are_not_objects_are_one_line(content, tmp_path):
    from mrcnn_trt.config import preset
    from mrcnn_trt.errors import UserError

    cfg = tmp_path / "c.json"
    cfg.write_bytes(content)
    with pytest.raises(UserError) as e:
        preset(str(cfg))
    assert "\n" not in str(e.value) and str(cfg) in str(e.value) or "JSON object" in str(e.value)


# ----------------------------------------------------------------- item 17: mrcnn-calibrate --fp16
def test_fp16_refuses_unrelated_models_and_lying_sidecars(tiny_onnx, tmp_path, capsys):
    import onnx
    from onnx import TensorProto, helper

    g = helper.make_graph([helper.make_node("Relu", ["images"], ["features"])], "other",
                          [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 128, 128]),
                           helper.make_tensor_value_info("windows", TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info("features", TensorProto.FLOAT, [1, 3, 128, 128])])
    other = str(tmp_path / "other.onnx")
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), other)
    side = json.loads(open(tiny_onnx + ".json").read())
    side["onnx_sha256"] = hashlib.sha256(open(other, "rb").read()).hexdigest()
    open(other + ".json", "w").write(json.dumps(side))   # the sidecar of another model, re-hashed
    code, err = call(calibrate_main, [other, "--fp16", "-o", str(tmp_path / "o.onnx")], capsys)
    assert code == 2 and one_error_line(err)[0] and "does not match the model" in err, err
    assert "the graph lacks count, detections, masks" in err
    mine = str(tmp_path / "mine.onnx")
    shutil.copy(tiny_onnx, mine)
    side = json.loads(open(tiny_onnx + ".json").read())
    del side["onnx_sha256"]
    open(mine + ".json", "w").write(json.dumps(side))    # a sidecar that does not say which file it describes
    code, err = call(calibrate_main, [mine, "--fp16", "-o", str(tmp_path / "o.onnx")], capsys)
    assert code == 2 and "records no onnx_sha256" in err, err
    code, err = call(calibrate_main, [mine, "--fp16", "-o", mine], capsys)
    assert code == 2 and "would overwrite the input" in err
    assert not (tmp_path / "o.onnx").exists() and not (tmp_path / "o.onnx.json").exists()
