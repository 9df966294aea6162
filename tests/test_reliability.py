"""First-use defects: odd inputs, permissions, full disks, signals, misleading messages.

One test (or a few) per reported item; the corpus of odd inputs is built here.
Commands run in-process where possible (fast) and as real processes where a
signal must be delivered.
"""
import argparse
import errno
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image

from mrcnn_trt import fileio
from mrcnn_trt.apps.demo import main as demo_main
from mrcnn_trt.data.synthetic import write_dataset
from mrcnn_trt.eval.cli import main as eval_main
from mrcnn_trt.export.cli import main as export_main
from mrcnn_trt.model import build_model, save_checkpoint

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def coco_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("coco")
    write_dataset(str(root), fmt="coco", num_images=6, seed=5, split="val", size=(96, 80))
    return root


def png(path, size=(40, 30), color=(200, 30, 30)):
    Image.new("RGB", size, color).save(path)
    return str(path)


def last_err_line(capsys):
    lines = capsys.readouterr().err.strip().splitlines()
    return lines[-1] if lines else ""


def run_cli(args, **kw):
    """A console command as a real process (for signals)."""
    code = f"import sys; from {args[0]} import main; sys.exit(main({args[1:]!r}))"
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, MRCNN_PROGRESS="0"), **kw)


# ----------------------------------------------------------------- 1. same-named inputs
def test_demo_keeps_same_named_inputs_apart(tiny_weights, tmp_path):
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
    inputs = [png(tmp_path / "a" / "x.png"), png(tmp_path / "b" / "x.png", color=(0, 90, 0)),
              png(tmp_path / "y.png")]
    Image.new("RGB", (30, 20), (1, 2, 3)).save(tmp_path / "y.jpg")
    inputs.append(str(tmp_path / "y.jpg"))
    out = tmp_path / "out"
    assert demo_main(["--weights", tiny_weights, *inputs, "-o", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    jsons = [e["json"] for e in summary["images"]]
    assert summary["processed"] == 4 and len(set(jsons)) == 4
    assert sorted(jsons) == sorted([os.path.join("a", "x.json"), os.path.join("b", "x.json"), "y_png.json",
                                    "y_jpg.json"])
    for e in summary["images"]:
        assert json.loads((out / e["json"]).read_text())["image"] == e["image"]
        assert (out / e["png"]).is_file()


# ----------------------------------------------------------------- 2. permissions
def test_artifacts_follow_the_umask(tiny_weights, tmp_path):
    old = os.umask(0o022)
    try:
        fileio.write_json_atomic(tmp_path / "m.json", {"a": 1})
        out = str(tmp_path / "m.onnx")
        assert export_main(["--weights", tiny_weights, "-o", out]) == 0
        ck = tmp_path / "ck.pth"
        save_checkpoint(str(ck), build_model("tiny"), build_model("tiny").config)
        for f in ("m.json", "m.onnx", "m.onnx.json", "ck.pth"):
            assert oct(os.stat(tmp_path / f).st_mode & 0o777) == oct(0o644), f
        os.umask(0o077)
        fileio.write_json_atomic(tmp_path / "private.json", {"a": 1})
        assert os.stat(tmp_path / "private.json").st_mode & 0o777 == 0o600
    finally:
        os.umask(old)


# ----------------------------------------------------------------- 3. stale .part files
def test_stale_part_files_of_killed_processes_are_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    stale = tmp_path / f".big.pth.{dead}.abc123_x.part"
    stale.write_bytes(b"x" * 100)
    old = time.time() - 3600
    os.utime(stale, (old, old))
    young = tmp_path / f".other.pth.{dead}.zzz.part"          # a minute has not passed: kept
    young.write_bytes(b"y")
    alive = tmp_path / f".mine.pth.{os.getpid()}.qqq.part"      # this process is running: kept
    alive.write_bytes(b"z")
    os.utime(alive, (old, old))
    foreign = tmp_path / ".notes.part"                          # not our naming: kept
    foreign.write_bytes(b"n")
    os.utime(foreign, (old, old))
    fileio.write_json_atomic(tmp_path / "new.json", {})
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([young.name, alive.name, foreign.name, "new.json"])


def test_sigkill_during_a_write_leaves_a_part_file_that_the_next_write_removes(tmp_path):
    code = ("import os, time\nfrom mrcnn_trt.fileio import atomic_path\n"
            f"with atomic_path({str(tmp_path / 'ck.pth')!r}) as t:\n"
            "    open(t, 'wb').write(b'x' * 1000); print('writing', flush=True); time.sleep(60)\n")
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "writing"
    p.kill()
    p.wait()
    parts = [f for f in os.listdir(tmp_path) if f.endswith(".part")]
    assert len(parts) == 1
    old = time.time() - 120
    os.utime(tmp_path / parts[0], (old, old))
    fileio.write_bytes_atomic(tmp_path / "ck.pth", b"done")
    assert os.listdir(tmp_path) == ["ck.pth"]


# ----------------------------------------------------------------- 4. unusable --out, full disk
@pytest.mark.parametrize("tool", ["demo", "eval", "make-dataset", "train"])
def test_out_under_a_file_is_one_line_and_leaves_nothing(tool, tiny_weights, coco_data, tmp_path, capsys):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    out = str(blocker / "sub" / "out")
    img = png(tmp_path / "i.png")
    argv = {
        "demo": (demo_main, ["--weights", tiny_weights, img, "-o", out]),
        "eval": (eval_main, ["--model", tiny_weights, "--dataset", "coco", "--data-root", str(coco_data), "-o", out,
                             "--min-confidence", "0"]),
        "make-dataset": ("mrcnn_trt.data.cli", ["--out", out, "--num-images", "1"]),
        "train": ("mrcnn_trt.train.cli", ["--dataset", "shapes", "--weights", "none", "--layers", "all",
                                          "--config", "tiny", "--epochs", "1", "--out", out]),
    }[tool]
    fn, args = argv
    if isinstance(fn, str):
        import importlib

        fn = importlib.import_module(fn).main
    assert fn(args) == 2
    line = last_err_line(capsys)
    assert line.startswith("error: cannot create output folder") and "afile" in line and "is a file" in line
    assert sorted(os.listdir(tmp_path)) == sorted(["afile", "i.png"])


def test_read_only_parent_is_one_line(tiny_weights, tmp_path, capsys):
    if os.geteuid() == 0:
        pytest.skip("root ignores directory permissions")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        assert demo_main(["--weights", tiny_weights, png(tmp_path / "i.png"), "-o", str(ro / "out")]) == 2
        assert last_err_line(capsys).startswith("error: cannot create output folder")
    finally:
        ro.chmod(0o700)


class _FullDisk:
    """A file object whose writes fail like a full disk."""

    def __init__(self, *a, **k):
        pass

    def write(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def flush(self):
        pass

    def fileno(self):
        return 0

    def close(self):
        pass


def _full_open(real_open):
    def fake(path, mode="r", *a, **k):
        if "w" in mode or "a" in mode:
            return _FullDisk()
        return real_open(path, mode, *a, **k)
    return fake


@pytest.mark.parametrize("tool", ["export", "demo", "eval"])
def test_full_disk_is_one_line_naming_the_file(tool, tiny_weights, tiny_onnx, coco_data, tmp_path, monkeypatch,
                                               capsys):
    import builtins

    from mrcnn_trt.export import exporter

    fake = _full_open(builtins.open)
    monkeypatch.setattr(fileio, "open", fake, raising=False)
    monkeypatch.setattr(exporter, "open", fake, raising=False)
    out = tmp_path / "out"
    if tool == "export":
        rc = export_main(["--weights", tiny_weights, "-o", str(out / "m.onnx")])
        expect = "m.onnx"
    elif tool == "demo":
        rc = demo_main(["--weights", tiny_weights, png(tmp_path / "i.png"), "-o", str(out)])
        expect = "i.json"
    else:
        rc = eval_main(["--model", tiny_onnx, "--dataset", "coco", "--data-root", str(coco_data), "-o", str(out)])
        expect = ".json"
    assert rc == 2
    line = last_err_line(capsys)
    assert line.startswith("error: no space left on the device: ") and expect in line and str(out) in line
    assert not any(f.endswith(".part") for _, _, fs in os.walk(tmp_path) for f in fs)


# ----------------------------------------------------------------- 5. --device cuda without CUDA
@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is visible")
@pytest.mark.parametrize("tool", ["demo", "train"])
def test_cuda_device_without_cuda_is_one_line(tool, tiny_weights, tmp_path, capsys):
    from mrcnn_trt.train.cli import main as train_main

    if tool == "demo":
        rc = demo_main(["--weights", tiny_weights, png(tmp_path / "i.png"), "-o", str(tmp_path / "o"),
                        "--device", "cuda"])
    else:
        rc = train_main(["--dataset", "shapes", "--weights", "none", "--layers", "all", "--config", "tiny",
                         "--epochs", "1", "-o", str(tmp_path / "o"), "--device", "cuda"])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: device cuda: ") and "--device cpu" in err[-1]
    assert not (tmp_path / "o").exists()


# ----------------------------------------------------------------- 6, 10. numbers rejected by the parser
@pytest.mark.parametrize("module,argv", [
    ("mrcnn_trt.train.cli", ["--dataset", "shapes", "--weights", "none", "--epochs", "1", "-o", "x", "--lr", "-1"]),
    ("mrcnn_trt.train.cli", ["--dataset", "shapes", "--weights", "none", "--epochs", "0", "-o", "x"]),
    ("mrcnn_trt.train.cli", ["--dataset", "shapes", "--weights", "none", "--epochs", "1", "-o", "x", "--lr", "nan"]),
    ("mrcnn_trt.train.cli", ["--dataset", "shapes", "--weights", "none", "--epochs", "1", "-o", "x",
                             "--workers", "-2"]),
    ("mrcnn_trt.eval.cli", ["--dataset", "coco", "--data-root", ".", "--limit", "0"]),
    ("mrcnn_trt.eval.cli", ["--dataset", "coco", "--data-root", ".", "--limit", "-1"]),
    ("mrcnn_trt.eval.cli", ["--dataset", "coco", "--data-root", ".", "--threads", "0"]),
    ("mrcnn_trt.eval.cli", ["--dataset", "coco", "--data-root", ".", "--save-vis", "-1"]),
    ("mrcnn_trt.eval.cli", ["--dataset", "coco", "--data-root", ".", "--warmup", "-1"]),
    ("mrcnn_trt.eval.cli", ["--dataset", "coco", "--data-root", ".", "--batch", "0"]),
    ("mrcnn_trt.apps.demo", ["x.png", "-o", "o", "--batch", "0"]),
    ("mrcnn_trt.apps.demo", ["x.png", "-o", "o", "--min-confidence", "1.5"]),
    ("mrcnn_trt.export.cli", ["--batch", "0"]),
    ("mrcnn_trt.export.cli", ["--image-size", "100"]),
    ("mrcnn_trt.calib.cli", ["m.onnx", "--fp16", "--threads", "0"]),
    ("mrcnn_trt.calib.cli", ["m.onnx", "--calib-images", "d", "--calib-count", "0"]),
    ("mrcnn_trt.data.cli", ["-o", "x", "--num-images", "0"]),
    ("mrcnn_trt.data.cli", ["-o", "x", "--crowd-prob", "2"]),
    ("mrcnn_trt.apps.quickstart", ["--threads", "-1"]),
])
def test_invalid_numbers_are_rejected_by_the_parser(module, argv, capsys):
    import importlib

    main = importlib.import_module(module).main
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "error: argument" in err and ("must be" in err or "expected" in err)
    assert "exporting" not in err


# ----------------------------------------------------------------- 7. malformed COCO annotations
@pytest.mark.parametrize("change,expect", [
    (lambda a: a.update(bbox="oops"), "annotation id 7 has bbox 'oops'"),
    (lambda a: a.update(segmentation=[[1, 2, 3, 4]]), "annotation id 7 has a polygon with 4 coordinates"),
    (lambda a: a.update(category_id=999), "annotation id 7 refers to category_id 999"),
    (lambda a: a.update(segmentation={"counts": "x", "size": "big"}), "annotation id 7 has an RLE segmentation"),
])
def test_malformed_coco_annotation_is_named_when_the_dataset_opens(coco_data, tmp_path, tiny_weights, change,
                                                                   expect, capsys):
    data = json.loads((coco_data / "annotations" / "instances_val.json").read_text())
    data["annotations"][0]["id"] = 7
    change(data["annotations"][0])
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "instances_val.json").write_text(json.dumps(data))
    os.symlink(coco_data / "images", tmp_path / "images")
    t0 = time.time()
    rc = eval_main(["--model", tiny_weights, "--dataset", "coco", "--data-root", str(tmp_path), "-o",
                    str(tmp_path / "o")])
    assert rc == 2 and time.time() - t0 < 30
    line = last_err_line(capsys)
    assert line.startswith("error: ") and expect in line
    assert not (tmp_path / "o").exists()


def test_coco_file_without_annotations_says_so(coco_data, tmp_path, capsys):
    data = json.loads((coco_data / "annotations" / "instances_val.json").read_text())
    data["annotations"] = []
    p = tmp_path / "instances_val.json"
    p.write_text(json.dumps(data))
    assert eval_main(["--dataset", "coco", "--data-root", str(p), "--images", str(coco_data / "images")]) == 2
    assert "has no annotations" in last_err_line(capsys)


def test_missing_coco_images_name_the_option_that_exists(coco_data, tmp_path, tiny_weights, capsys):
    ann = str(coco_data / "annotations" / "instances_val.json")
    assert eval_main(["--model", tiny_weights, "--dataset", "coco", "--data-root", ann, "--images",
                      str(tmp_path / "nowhere"), "-o", str(tmp_path / "o")]) == 2
    line = last_err_line(capsys)
    assert "--images DIR" in line and "nowhere" in line
    # and that option exists and works
    assert eval_main(["--model", tiny_weights, "--dataset", "coco", "--data-root", ann, "--images",
                      str(coco_data / "images"), "-o", str(tmp_path / "o"), "--limit", "1",
                      "--min-confidence", "0"]) == 0


# ----------------------------------------------------------------- 8, 14. signals
def _wait_for(p, text, timeout=120):
    t0 = time.time()
    buf = ""
    while time.time() - t0 < timeout:
        line = p.stderr.readline()
        if not line and p.poll() is not None:
            break
        buf += line
        if text in line:
            return buf
    raise AssertionError(f"{text!r} not seen: {buf[-2000:]}")


@pytest.mark.parametrize("delay", [0.0, 1.5, 4.0])
def test_ctrl_c_during_export_at_any_moment(tiny_weights, tmp_path, delay):
    out = str(tmp_path / "m.onnx")
    p = run_cli(["mrcnn_trt.export.cli", "--weights", tiny_weights, "-o", out])
    _wait_for(p, "exporting")
    time.sleep(delay)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    if p.returncode == 0:     # finished before the signal arrived: a complete export
        assert os.path.isfile(out) and os.path.isfile(out + ".json")
        return
    assert p.returncode == 130, err
    assert err.strip().splitlines()[-1] == "interrupted"
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 3, err
    assert [f for f in os.listdir(tmp_path)] == []


# a command that has returned 0, then takes a while in the interpreter's finalization (a
# module global whose __del__ runs after Python has reset its signal handlers)
_SLOW_SHUTDOWN = """
import os, sys, time
from mrcnn_trt.cli import run_main

class Slow:
    def __del__(self, write=os.write, sleep=time.sleep):
        write(2, b"finalizing\\n")
        sleep(3)

keep = Slow()
sys.exit(run_main(lambda argv: 0)())
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_after_the_command_ended_keeps_its_exit_code(sig):
    """Python restores the default action of SIGINT/SIGTERM while it finalizes: a late
    Ctrl-C killed a finished command silently (status -2) instead of exit 0."""
    p = subprocess.Popen([sys.executable, "-c", _SLOW_SHUTDOWN], stderr=subprocess.PIPE, text=True)
    _wait_for(p, "finalizing")
    p.send_signal(sig)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert err == "", err


def test_sigterm_during_eval_writes_partial_metrics(tiny_onnx, tmp_path):
    root = tmp_path / "data"
    write_dataset(str(root), fmt="coco", num_images=300, seed=9, split="val", size=(96, 80))
    out = tmp_path / "o"
    p = run_cli(["mrcnn_trt.eval.cli", "--model", tiny_onnx, "--dataset", "coco", "--data-root", str(root), "-o",
                 str(out), "--threads", "1", "--save-vis", "300"])
    t0 = time.time()
    while len(list((out / "vis").glob("*.png"))) < 3 and time.time() - t0 < 180:   # a few images done
        time.sleep(0.05)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=180)
    assert p.returncode == 143, err
    m = json.loads((out / "metrics.json").read_text())
    assert m["interrupted"] is True and 3 <= m["num_images"] < 300 and "AP" in m["segm"]


def test_sigterm_during_training_keeps_the_last_complete_epoch(tmp_path):
    out = tmp_path / "run"
    p = run_cli(["mrcnn_trt.train.cli", "--dataset", "shapes", "--weights", "none", "--layers", "all", "--config",
                 "tiny", "--epochs", "50", "--steps-per-epoch", "2", "--synthetic-images", "8", "--val-split",
                 "none", "--workers", "0", "--threads", "1", "-o", str(out)])
    t0 = time.time()
    while not (out / "epoch_0001.pth").exists() and time.time() - t0 < 180:
        time.sleep(0.2)
    time.sleep(0.5)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 143, err
    lines = err.strip().splitlines()
    assert lines[-1] == "terminated"
    said = [ln for ln in lines if ln.startswith("stopped during epoch")]
    assert said and "the last complete epoch is" in said[0] and "--weights last" in said[0]
    n = int(said[0].split("the last complete epoch is ")[1].split()[0])
    assert n >= 1 and (out / f"epoch_{n:04d}.pth").exists()
    from mrcnn_trt.model.checkpoint import read_checkpoint

    assert read_checkpoint(str(out / "last.pth"))[1]["epoch"] == n


# ----------------------------------------------------------------- 9. edited sidecar
@pytest.mark.parametrize("field,value", [("image_size", 512), ("num_classes", 9), ("batch", 3)])
def test_edited_sidecar_is_one_line(tiny_onnx, tmp_path, field, value, capsys, coco_data):
    import shutil

    p = str(tmp_path / "m.onnx")
    shutil.copy(tiny_onnx, p)
    side = json.loads(open(tiny_onnx + ".json").read())
    side[field] = value
    open(p + ".json", "w").write(json.dumps(side))
    assert eval_main(["--model", p, "--dataset", "coco", "--data-root", str(coco_data), "-o",
                      str(tmp_path / "o")]) == 2
    line = last_err_line(capsys)
    assert line.startswith(f"error: {p}.json does not match the model (") and field.split("_")[0] in line


# ----------------------------------------------------------------- 11. confidence cut-off
def test_confidence_cut_off_is_recorded_and_warned(tiny_weights, coco_data, tmp_path, capsys):
    hi, lo = str(tmp_path / "hi.onnx"), str(tmp_path / "lo.onnx")
    assert export_main(["--weights", tiny_weights, "--min-confidence", "0.7", "-o", hi]) == 0
    assert export_main(["--weights", tiny_weights, "--min-confidence", "0", "-o", lo]) == 0
    assert json.loads(open(hi + ".json").read())["min_confidence"] == 0.7
    capsys.readouterr()
    assert eval_main(["--model", hi, "--dataset", "coco", "--data-root", str(coco_data), "-o",
                      str(tmp_path / "e1")]) == 0
    err = capsys.readouterr().err
    assert "drops detections scoring below 0.7" in err and "--min-confidence 0" in err
    assert json.loads((tmp_path / "e1" / "metrics.json").read_text())["min_confidence"] == 0.7
    assert eval_main(["--model", lo, "--dataset", "coco", "--data-root", str(coco_data), "-o",
                      str(tmp_path / "e2")]) == 0
    assert "drops detections" not in capsys.readouterr().err
    # a .pth can be evaluated with another cut-off; an exported model cannot
    assert eval_main(["--model", hi, "--dataset", "coco", "--data-root", str(coco_data), "--min-confidence", "0",
                      "-o", str(tmp_path / "e3")]) == 2
    assert "baked into exported models" in last_err_line(capsys)


# ----------------------------------------------------------------- 13. exit codes
def test_demo_with_some_unreadable_files_exits_4(tiny_weights, tmp_path):
    good = png(tmp_path / "good.png")
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    rc = demo_main(["--weights", tiny_weights, good, str(tmp_path / "bad.jpg"), "-o", str(tmp_path / "o")])
    assert rc == 4
    s = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert s["processed"] == 1 and s["failed"] == 1


def test_exit_codes_are_documented_in_one_table():
    from mrcnn_trt import errors

    text = open(os.path.join(REPO, "README.md")).read()
    table = text[text.index("## Exit codes"):]
    table = table[:table.index("\n## ", 5)]
    codes = {v for k, v in vars(errors).items() if k.startswith("EXIT_")}
    from mrcnn_trt.engine.errors import EXIT_CODES

    codes |= set(EXIT_CODES.values())
    for c in codes:
        assert f"| {c} |" in table, c


# ----------------------------------------------------------------- 15. messages
@pytest.mark.parametrize("content,expect", [
    (os.urandom(2000), "is not a PyTorch checkpoint"),
    (b"hello, not weights", "is not a PyTorch checkpoint"),
    (b"", "is empty, not a PyTorch checkpoint"),
    (None, "is a folder, not a weights file"),
])
def test_bad_weights_messages(tmp_path, content, expect, capsys):
    w = tmp_path / "w.pth"
    if content is None:
        w.mkdir()
    else:
        w.write_bytes(content)
    assert export_main(["--weights", str(w), "-o", str(tmp_path / "m.onnx")]) == 2
    line = last_err_line(capsys)
    assert expect in line and "execute Python code" not in line
    assert line.endswith((")", "file", "checkpoint", "torch.save)"))


def test_malicious_pickle_still_refused_without_running(tmp_path, capsys):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"x": Evil()}, tmp_path / "evil.pth")
    assert export_main(["--weights", str(tmp_path / "evil.pth"), "-o", str(tmp_path / "m.onnx")]) == 2
    assert "would execute Python code" in last_err_line(capsys)
    assert not marker.exists()


def test_build_engine_names_a_missing_onnx_before_tensorrt(tmp_path, capsys):
    from mrcnn_trt.engine.cli import main as build_main

    assert build_main([str(tmp_path / "missing.onnx"), "--arch", "sm_86"]) == 2
    line = last_err_line(capsys)
    assert "missing.onnx" in line and "not found" in line and "TensorRT" not in line


# ----------------------------------------------------------------- 16. notices and warnings
def test_shipped_model_on_real_photos_says_what_it_knows(tmp_path, seed_images, capsys):
    assert demo_main([seed_images[0], "-o", str(tmp_path / "o")]) == 0
    err = capsys.readouterr().err
    assert err.count("only knows circles, squares and triangles") == 1 and "--weights" in err
    # synthetic images: no notice
    write_dataset(str(tmp_path / "syn"), fmt="coco", num_images=1, seed=1, split="val", size=(96, 80))
    assert demo_main([str(tmp_path / "syn" / "images"), "-o", str(tmp_path / "o2")]) == 0
    assert "only knows" not in capsys.readouterr().err


def test_random_frozen_backbone_warns(tmp_path, capsys):
    from mrcnn_trt.train.cli import main as train_main

    assert train_main(["--dataset", "shapes", "--weights", "none", "--layers", "heads", "--config", "tiny",
                       "--epochs", "1", "--steps-per-epoch", "1", "--synthetic-images", "2", "--val-split", "none",
                       "--workers", "0", "-o", str(tmp_path / "r")]) == 0
    assert "warning: --weights none starts from random weights" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train_main(["--help"])
    assert "resnet50_imagenet.pth" not in capsys.readouterr().out


def test_short_training_run_has_a_visible_loss_curve(tmp_path):
    from mrcnn_trt.train.cli import main as train_main

    out = tmp_path / "r"
    assert train_main(["--dataset", "shapes", "--weights", "none", "--layers", "all", "--config", "tiny",
                       "--epochs", "1", "--steps-per-epoch", "3", "--synthetic-images", "4", "--val-split", "none",
                       "--workers", "0", "-o", str(out), "--quiet"]) == 0
    hist = json.loads((out / "losses.json").read_text())
    assert len(hist["steps"]) >= 1
    img = np.asarray(Image.open(out / "losses.png").convert("L"))
    left = img[:, : img.shape[1] // 2]
    assert (left < 128).mean() > 0.01       # more than axes and labels: a curve is drawn


def test_every_option_has_help_and_defaults_appear_once():
    import importlib
    import re

    text = open(os.path.join(REPO, "setup.py")).read()
    for name, module in re.findall(r'"(mrcnn-[a-z-]+) = ([\w.]+):main"', text):
        top = importlib.import_module(module).build_parser()
        parsers = [(name, top)]
        for a in top._actions:          # subcommands (mrcnn-triton repo/serve/infer) too
            if isinstance(a, argparse._SubParsersAction):
                parsers += [(f"{name} {sub}", sp) for sub, sp in a.choices.items()]
        for label, parser in parsers:
            for a in parser._actions:
                if a.dest == "help":
                    continue
                assert a.help and a.help.strip(), f"{label} {a.option_strings or a.dest} has no help"
            assert "(default: None)" not in parser.format_help(), label
            for a in parser._actions:
                if a.help:
                    assert a.help.count("default") <= 1, f"{label} {a.option_strings}: {a.help}"


# ----------------------------------------------------------------- 17. no warnings printed
def test_export_prints_no_warnings(tiny_weights, tmp_path):
    p = run_cli(["mrcnn_trt.export.cli", "--weights", tiny_weights, "-o", str(tmp_path / "m.onnx")])
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    lines = [ln for ln in err.strip().splitlines() if ln]
    assert len(lines) == 1 and lines[0].startswith("exporting"), err
