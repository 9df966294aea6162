"""Hostile ground truth, saved predictions and sidecars: every bad input generated here is
refused when it is opened, before any inference, with one ``error:`` line naming the
entry, exit 2 and no traceback; predictions are saved before scoring and can be rescored
(``mrcnn-eval --from-predictions``); scoring stops at once on SIGTERM; one mrcnn-eval at
a time writes into an output folder.

Inputs that would crash or hang pycocotools run in subprocesses with timeouts, so that a
regression fails the test instead of killing or stalling the test run.
"""
from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from mrcnn_trt import fileio
from mrcnn_trt.data import open_dataset
from mrcnn_trt.data.coco_checks import decode_rle_string, rle_string_problems
from mrcnn_trt.data.synthetic import write_dataset
from mrcnn_trt.errors import UserError
from mrcnn_trt.eval.cli import locked_output, main as eval_main

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
W, H = 96, 80          # synthetic image size


@pytest.fixture(scope="module")
def coco_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("coco")
    write_dataset(str(root), fmt="coco", num_images=6, seed=5, split="val", size=(W, H), show_progress=False)
    return root


@pytest.fixture(scope="module")
def cs_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cs")
    write_dataset(str(root), fmt="cityscapes", num_images=4, seed=6, split="val", size=(W, H), show_progress=False)
    return root


def env():
    return dict(os.environ, MRCNN_PROGRESS="0")


def last_err_line(capsys):
    lines = capsys.readouterr().err.strip().splitlines()
    return lines[-1] if lines else ""


# ----------------------------------------------------------------- compressed RLE decoding
def test_rle_string_decoder_equals_pycocotools():
    from pycocotools import mask as mask_utils

    rng = np.random.default_rng(0)
    strings, areas, masks = [], [], []
    for i in range(40):
        h, w = int(rng.integers(1, 60)), int(rng.integers(1, 60))
        m = (rng.random((h, w)) < rng.random()).astype(np.uint8)
        if i % 5 == 0:
            m[:] = i % 2
        rle = mask_utils.encode(np.asfortranarray(m))
        strings.append(rle["counts"].decode())
        areas.append(h * w)
        masks.append(m)
    assert rle_string_problems(strings, areas) == {}
    for s, m in zip(strings, masks):
        p = m.reshape(-1, order="F")         # independent: the runs of the column-major pixels
        change = np.flatnonzero(p[1:] != p[:-1]) + 1
        runs = np.diff(np.concatenate(([0], change, [p.size]))).tolist()
        runs = [0] + runs if p[0] else runs  # an RLE starts with a (maybe empty) run of zeros
        assert decode_rle_string(s) == runs


@pytest.mark.parametrize("s,why", [
    ("a", "ends inside a number"),
    ("0\x00", "outside '0'..'o'"),
    ("0p", "outside '0'..'o'"),
    ("0é", "outside '0'..'o'"),
    ("ooooooo0", "longer than 6 characters"),
    ("0@", "negative run"),            # '@' = 16: the sign bit alone, -16
    ("011@", "negative run"),          # the fourth run is 1 - 16 (a delta from the second)
])
def test_rle_string_problems(s, why):
    assert why in rle_string_problems([s], [1])[0]
    with pytest.raises(ValueError, match=why.replace("(", r"\(").replace(".", r"\.")):
        decode_rle_string(s)


# ----------------------------------------------------------------- COCO: one family of bad files
def _resize_first_image(d, h):
    """Say image 1 is ``h`` high (its annotations as polygons, which fit any size)."""
    d["images"][0]["height"] = h
    for a in d["annotations"]:
        if a["image_id"] == d["images"][0]["id"]:
            a["segmentation"] = [[10, 10, 20, 10, 20, 20]]


def _zigzag(n):
    return [v for i in range(n) for v in ((0.0, 0.0) if i % 2 else (W, H))]


#: (name, change of the parsed file, expected text of the error line)
COCO_CASES = [
    ("polygon-1e12", lambda d: d["annotations"][0].update(segmentation=[[0, 0, 1e12, 0, 1e12, 1e12]]),
     "annotation id 7 has a polygon vertex (1e+12, 0) far outside its 96x80 image"),
    ("polygon-1e7", lambda d: d["annotations"][0].update(segmentation=[[0, 0, 5, 0, 5, -1e7]]),
     "annotation id 7 has a polygon vertex (5, -1e+07) far outside"),
    ("polygon-nan", lambda d: d["annotations"][0].update(segmentation=[[0, 0, float("nan"), 0, 5, 5]]),
     "annotation id 7 has a polygon that is not a list of numbers"),
    ("polygon-outline", lambda d: d["annotations"][0].update(segmentation=[_zigzag(40000)]),
     "annotation id 7 has polygons whose outline is"),
    ("rle-sum-short", lambda d: d["annotations"][0].update(segmentation={"size": [H, W], "counts": [5, 10]}),
     f"annotation id 7 has RLE counts adding up to 15, not height x width = {H * W}"),
    ("rle-sum-long", lambda d: d["annotations"][0].update(segmentation={"size": [H, W],
                                                                        "counts": [H * W, 10 ** 9]}),
     "annotation id 7 has RLE counts adding up to"),
    ("rle-negative", lambda d: d["annotations"][0].update(segmentation={"size": [H, W], "counts": [-5, H * W + 5]}),
     "annotation id 7 has RLE counts that are not all integers >= 0"),
    ("rle-other-size", lambda d: d["annotations"][0]["segmentation"].update(size=[H + 1, W]),
     f"annotation id 7 has an RLE segmentation of size [{H + 1}, {W}] but its image is [{H}, {W}]"),
    ("rle-garbage", lambda d: d["annotations"][0]["segmentation"].update(counts="\u00ff\u00fe\u0001garbage"),
     "annotation id 7 has a compressed RLE string that has a character outside '0'..'o'"),
    ("rle-truncated", lambda d: d["annotations"][0]["segmentation"].update(
        counts=d["annotations"][0]["segmentation"]["counts"][:-1] + "a"),
     "annotation id 7 has a compressed RLE string that ends inside a number"),
    ("rle-wrong-sum", lambda d: d["annotations"][0]["segmentation"].update(counts="0" + "00" * 3 + "5"),
     "annotation id 7 has a compressed RLE string that has runs adding up to 5"),
    ("string-image-ids", lambda d: [img.update(id=str(img["id"])) for img in d["images"]] and
     [a.update(image_id=str(a["image_id"])) for a in d["annotations"]],
     "image entry 0 has id '"),
    ("string-ann-image-id", lambda d: d["annotations"][0].update(image_id=str(d["annotations"][0]["image_id"])),
     "annotation id 7 refers to image_id '"),
    ("string-category-id", lambda d: d["categories"][0].update(id="1"),
     "category entry 0 has id '1': category ids must be integers"),
    ("duplicate-annotation-id", lambda d: d["annotations"][1].update(id=7),
     "annotation id 7 appears twice in 'annotations'"),
    ("no-file-name", lambda d: d["images"][0].pop("file_name"), "has file_name None: expected the image's file name"),
    ("file-name-escapes", lambda d: d["images"][0].update(file_name="../../etc/passwd"),
     "has file_name '../../etc/passwd': expected a path inside the image folder"),
    ("no-height", lambda d: d["images"][0].pop("height"), "has height None and width 96: expected integers >= 1"),
    ("size-differs-from-file", lambda d: _resize_first_image(d, H + 3),
     f"says {W}x{H + 3} but "),
    ("images-not-a-list", lambda d: d.update(images={"a": 1}), "no 'images' list"),
]


def _write_coco(coco_root, tmp_path, change):
    data = json.loads((coco_root / "annotations" / "instances_val.json").read_text())
    for i, a in enumerate(data["annotations"]):
        a["id"] = 100 + i
    data["annotations"][0]["id"] = 7
    change(data)
    root = tmp_path / "bad"
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "instances_val.json").write_text(json.dumps(data))
    os.symlink(coco_root / "images", root / "images")
    return root


@pytest.mark.parametrize("name,change,expect", COCO_CASES, ids=[c[0] for c in COCO_CASES])
def test_bad_coco_annotations_are_refused_when_opened(coco_root, tmp_path, name, change, expect):
    root = _write_coco(coco_root, tmp_path, change)
    t0 = time.time()
    with pytest.raises(UserError) as e:
        open_dataset(str(root), split="val", fmt="coco")
    assert expect in str(e.value) and str(root / "annotations" / "instances_val.json") in str(e.value)
    assert "\n" not in str(e.value) and time.time() - t0 < 10


@pytest.mark.parametrize("content,expect", [
    (b"\xff\xfe{\x00}", "not UTF-8 text"),
    (b"[" * 100000 + b"]" * 100000, "nested too deeply"),
    (b'[{"id": 1}]', "the top level is not a JSON object"),
    (b"{", "not valid JSON"),
])
def test_unreadable_coco_files_are_one_line(coco_root, tmp_path, content, expect):
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "instances_val.json").write_bytes(content)
    with pytest.raises(UserError, match=expect):
        open_dataset(str(tmp_path), split="val", fmt="coco")


def test_the_real_sample_passes_the_checks(coco_sample):
    ds = open_dataset(os.path.join(coco_sample, "instances_sample.json"), fmt="coco")
    assert sorted(ds.image_ids) == [785, 40083, 196141, 197388]


# ----------------------------------------------------------------- Cityscapes: one family of bad files
def _png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bomb_png(w=30000, h=30000):
    """A PNG of a few dozen bytes whose header declares w x h 16-bit grey pixels."""
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 0, 0, 0, 0))
            + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 8)) + _png_chunk(b"IEND", b""))


def _ids_png(path, ids):
    Image.fromarray(np.asarray(ids, dtype=np.uint16)).save(path)


CS_CASES = [
    ("garbage", lambda p: p.write_bytes(os.urandom(300)), "is not a readable instanceIds image"),
    ("empty", lambda p: p.write_bytes(b""), "is not a readable instanceIds image"),
    ("truncated", lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]),
     "is not a readable instanceIds image"),
    ("rgb", lambda p: Image.new("RGB", (W, H)).save(p), "is a RGB image: an instanceIds file holds one channel"),
    ("wrong-size", lambda p: _ids_png(p, np.zeros((H, W + 1))), f"is {W + 1}x{H} but its image is {W}x{H}"),
    ("bomb", lambda p: p.write_bytes(bomb_png()), "is not a usable instanceIds image"),
    ("unknown-label", lambda p: _ids_png(p, np.full((H, W), 500)), "has the id 500 at pixel (x=0, y=0): its label "
                                                                  "id 500 is not a Cityscapes label"),
    ("unknown-instance-label", lambda p: _ids_png(p, np.pad(np.full((H - 1, W), 26), ((1, 0), (0, 0)),
                                                            constant_values=40001)),
     "has the id 40001 at pixel (x=0, y=0): its label id 40 is not a Cityscapes label"),
]


def _bad_cityscapes(cs_root, tmp_path, change):
    import shutil

    root = tmp_path / "cs"
    shutil.copytree(cs_root, root)
    gt = sorted((root / "gtFine" / "val").rglob("*_gtFine_instanceIds.png"))[1]
    change(gt)
    return root, gt


@pytest.mark.parametrize("name,change,expect", CS_CASES, ids=[c[0] for c in CS_CASES])
def test_bad_cityscapes_ground_truth_is_refused_when_opened(cs_root, tmp_path, name, change, expect):
    root, gt = _bad_cityscapes(cs_root, tmp_path, change)
    with pytest.raises(UserError) as e:
        open_dataset(str(root), split="val", fmt="cityscapes")
    assert str(e.value).startswith(str(gt)) and expect in str(e.value) and "\n" not in str(e.value)


# ----------------------------------------------------------------- the commands, as processes
def test_mrcnn_eval_refuses_every_bad_ground_truth_before_inference(coco_root, cs_root, tiny_weights, tmp_path):
    """Each bad file of the families above, through the real command in a child
    process (timeouts: a pycocotools crash or hang fails here, it cannot stall the run):
    exit 2, one error line, no traceback, no inference, no output folder."""
    runs = []
    for name, change, expect in COCO_CASES:
        root = _write_coco(coco_root, tmp_path / name, change)
        runs.append((name, ["--dataset", "coco", "--data-root", str(root)], expect))
    for name, change, expect in CS_CASES:
        root, _ = _bad_cityscapes(cs_root, tmp_path / name, change)
        runs.append((name, ["--dataset", "cityscapes", "--data-root", str(root)], expect))
    script = ("import json, sys, io, contextlib\n"
              "from mrcnn_trt.eval.cli import main\n"
              "out = []\n"
              "for name, argv in json.loads(sys.argv[1]):\n"
              "    err = io.StringIO()\n"
              "    with contextlib.redirect_stderr(err):\n"
              "        rc = main(argv)\n"
              "    out.append([name, rc, err.getvalue()])\n"
              "print(json.dumps(out))\n")
    argvs = [[name, ["--model", tiny_weights, *argv, "-o", str(tmp_path / name / "out"), "--min-confidence", "0"]]
             for name, argv, _ in runs]
    p = subprocess.run([sys.executable, "-c", script, json.dumps(argvs)], capture_output=True, text=True,
                       env=env(), timeout=300)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr[-3000:]
    results = {name: (rc, err) for name, rc, err in json.loads(p.stdout)}
    for name, _, expect in runs:
        rc, err = results[name]
        lines = err.strip().splitlines()
        assert rc == 2 and "Traceback" not in err, (name, err)
        assert lines[-1].startswith("error: ") and expect in lines[-1], (name, err)
        assert "scoring" not in err and not (tmp_path / name / "out").exists(), name


# ----------------------------------------------------------------- 3. predictions before scoring
def _metric_sections(m):
    keep = {k: m[k] for k in ("bbox", "segm") if k in m}
    if "cityscapes" in m:
        keep["cityscapes"] = {k: m["cityscapes"][k] for k in ("AP", "AP50", "per_class", "AP_mappable",
                                                              "num_images", "num_detections")}
    return keep


@pytest.fixture(scope="module")
def coco_run(coco_root, tiny_weights, tmp_path_factory):
    """An mrcnn-eval run on the COCO data (read-only: tests that change it copy it)."""
    out = tmp_path_factory.mktemp("coco_run") / "out"
    assert eval_main(["--model", tiny_weights, "--dataset", "coco", "--data-root", str(coco_root), "-o", str(out),
                      "--min-confidence", "0"]) == 0
    return out


def _copy(run, tmp_path):
    import shutil

    return shutil.copytree(run, tmp_path / "run")


@pytest.mark.parametrize("kind", ["coco", "cityscapes"])
def test_rescoring_saved_predictions_gives_the_same_metrics(kind, coco_root, cs_root, coco_run, tiny_weights,
                                                            tmp_path, capsys):
    root = coco_root if kind == "coco" else cs_root
    first, second = tmp_path / "first", tmp_path / "second"
    if kind == "coco":
        first = _copy(coco_run, tmp_path)
    else:
        assert eval_main(["--model", tiny_weights, "--dataset", kind, "--data-root", str(root), "-o", str(first),
                          "--min-confidence", "0", "--class-map", "shapes-to-cityscapes"]) == 0
    m1 = json.loads((first / "metrics.json").read_text())
    manifest = first / ("predictions.json" if kind == "coco" else "cityscapes/predictions.json")
    assert json.loads(manifest.read_text())["format"] == "mrcnn-predictions/1"
    capsys.readouterr()
    assert eval_main(["--dataset", kind, "--data-root", str(root), "-o", str(second), "--from-predictions",
                      str(first)]) == 0
    m2 = json.loads((second / "metrics.json").read_text())
    assert m2["from_predictions"] == str(manifest)
    assert _metric_sections(m2) == _metric_sections(m1)
    det = m1["cityscapes"]["num_detections"] if kind == "cityscapes" else m1["segm"] and m1["bbox"]
    assert det and m1["num_images"] == m2["num_images"] > 0
    out = capsys.readouterr()
    assert "latency" not in out.out and "scoring" in out.err
    # the same again, into the very folder the predictions are in
    assert eval_main(["--dataset", kind, "--data-root", str(root), "-o", str(first), "--from-predictions",
                      str(manifest)]) == 0
    assert _metric_sections(json.loads((first / "metrics.json").read_text())) == _metric_sections(m1)


def test_failed_scoring_keeps_the_predictions_and_says_how_to_rescore(coco_root, tiny_weights, tmp_path,
                                                                      monkeypatch, capsys):
    from mrcnn_trt.eval import evaluators

    real = evaluators.coco_evaluate

    def broken(*a, **k):
        raise AssertionError("Results do not correspond to current coco set")

    monkeypatch.setattr(evaluators, "coco_evaluate", broken)
    out = tmp_path / "o"
    assert eval_main(["--model", tiny_weights, "--dataset", "coco", "--data-root", str(coco_root), "-o", str(out),
                      "--min-confidence", "0"]) == 2
    line = last_err_line(capsys)
    manifest = out / "predictions.json"
    assert line == (f"error: scoring failed (AssertionError: Results do not correspond to current coco set); the "
                    f"predictions are saved in {manifest}: rescore them with mrcnn-eval --from-predictions "
                    f"{manifest}")
    saved = json.loads((out / "coco_instances_results.json").read_text())
    assert saved and not (out / "metrics.json").exists()
    monkeypatch.setattr(evaluators, "coco_evaluate", real)
    assert eval_main(["--dataset", "coco", "--data-root", str(coco_root), "-o", str(out), "--from-predictions",
                      str(manifest)]) == 0
    assert json.loads((out / "metrics.json").read_text())["num_images"] == 6


PRED_CASES = [
    ("garbage-rle", lambda r: r[0]["segmentation"].update(counts="\u00ff\u00fe"),
     "result 0 has a compressed RLE string that has a character outside '0'..'o'"),
    ("rle-other-size", lambda r: r[0]["segmentation"].update(size=[3, 3]),
     "result 0 has an RLE segmentation of size [3, 3] but its image is"),
    ("string-image-id", lambda r: r[0].update(image_id=str(r[0]["image_id"])),
     "result 0 has image_id '"),
    ("unknown-category", lambda r: r[0].update(category_id=999), "result 0 has category_id 999"),
    ("nan-score", lambda r: r[0].update(score=float("nan")), "result 0 has score nan: expected a finite number"),
]


@pytest.mark.parametrize("name,change,expect", PRED_CASES, ids=[c[0] for c in PRED_CASES])
def test_bad_saved_predictions_are_one_line(name, change, expect, coco_root, coco_run, tmp_path, capsys):
    out = _copy(coco_run, tmp_path)
    res_file = out / "coco_instances_results.json"
    results = json.loads(res_file.read_text())
    change(results)
    res_file.write_text(json.dumps(results))
    capsys.readouterr()
    for source in (out, res_file):      # the manifest, and the file alone (a COCO results list)
        assert eval_main(["--dataset", "coco", "--data-root", str(coco_root), "-o", str(tmp_path / "r"),
                          "--from-predictions", str(source)]) == 2
        line = last_err_line(capsys)
        assert line.startswith(f"error: {res_file}: ") and expect in line, line


def test_from_predictions_misuse_is_one_line(coco_root, cs_root, tiny_weights, tmp_path, capsys):
    cases = [
        (["--dataset", "coco", "--data-root", str(coco_root), "--from-predictions", str(tmp_path)],
         f"no saved predictions in {tmp_path}"),
        (["--dataset", "coco", "--data-root", str(coco_root), "--from-predictions", str(tmp_path / "nope.json")],
         "predictions not found"),
        (["--model", tiny_weights, "--dataset", "coco", "--data-root", str(coco_root), "--from-predictions",
          str(tmp_path)], "--model is not used with it"),
    ]
    (tmp_path / "x.json").write_text('{"format": "mrcnn-predictions/1", "dataset": "coco", "image_ids": []}')
    cases.append((["--dataset", "cityscapes", "--data-root", str(cs_root), "--from-predictions",
                   str(tmp_path / "x.json")], "holds 'coco' predictions but --dataset is cityscapes"))
    for argv, expect in cases:
        assert eval_main([*argv, "-o", str(tmp_path / "o")]) == 2
        assert expect in last_err_line(capsys)


def _big_scoring_job(tmp_path, n_images=300, n_gt=12, n_det=100):
    """A COCO file and a plain COCO results list whose bbox scoring takes seconds."""
    rng = np.random.default_rng(1)
    images, anns, results = [], [], []
    for i in range(1, n_images + 1):
        images.append({"id": i, "file_name": f"{i}.png", "height": 200, "width": 200})
        for _ in range(n_gt):
            x, y, s = (float(v) for v in rng.uniform(0, 150, 3) / [1, 1, 3])
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": 1, "iscrowd": 0, "area": s * s,
                         "bbox": [x, y, s + 1, s + 1],
                         "segmentation": [[x, y, x + s + 1, y, x + s + 1, y + s + 1, x, y + s + 1]]})
        for _ in range(n_det):
            x, y, s = (float(v) for v in rng.uniform(0, 150, 3) / [1, 1, 3])
            results.append({"image_id": i, "category_id": 1, "bbox": [x, y, s + 1, s + 1],
                            "score": float(rng.random())})
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "instances_val.json").write_text(json.dumps(
        {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "box"}]}))
    (tmp_path / "images").mkdir()
    Image.new("RGB", (200, 200)).save(tmp_path / "images" / "1.png")   # the folder is found by its first image
    (tmp_path / "results.json").write_text(json.dumps(results))
    return tmp_path


def test_sigterm_while_cocoeval_scores_stops_at_once(tmp_path):
    root = _big_scoring_job(tmp_path)
    code = ("import sys; from mrcnn_trt.eval.cli import main; sys.exit(main(sys.argv[1:]))")
    p = subprocess.Popen([sys.executable, "-c", code, "--dataset", "coco", "--data-root", str(root), "-o",
                          str(tmp_path / "o"), "--from-predictions", str(root / "results.json")],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
    try:
        err = ""
        t0 = time.time()
        while "scoring" not in err and time.time() - t0 < 120:
            line = p.stderr.readline()
            if not line and p.poll() is not None:
                break
            err += line
        assert "scoring 300 image(s)" in err, err
        time.sleep(1.0)
        assert p.poll() is None, "scoring finished before the signal: make the job larger"
        t_sig = time.time()
        p.send_signal(signal.SIGTERM)
        _, rest = p.communicate(timeout=30)
        elapsed = time.time() - t_sig
    finally:
        if p.poll() is None:
            p.kill()
    err += rest
    assert p.returncode == 143 and elapsed < 5, (p.returncode, elapsed, err)
    assert "Traceback" not in err and err.strip().splitlines()[-1] == "terminated"
    assert "scoring stopped: the predictions are saved in" in err
    assert not (tmp_path / "o" / "metrics.json").exists()


# ----------------------------------------------------------------- 18. one run per output folder
def test_second_eval_into_a_locked_output_folder_is_refused(coco_root, coco_run, tiny_weights, tmp_path, capsys):
    out = tmp_path / "o"
    out.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from mrcnn_trt.eval.cli import locked_output\n"
                               "with locked_output(sys.argv[1]):\n    print('locked', flush=True); time.sleep(60)",
         str(out)], stdout=subprocess.PIPE, text=True, env=env())
    try:
        assert holder.stdout.readline().strip() == "locked"
        argv = ["--dataset", "coco", "--data-root", str(coco_root), "-o", str(out), "--from-predictions",
                str(coco_run)]      # any mrcnn-eval run (with a model too: the same lock)
        assert eval_main(argv) == 2
        assert last_err_line(capsys) == (f"error: output folder {out} is in use by another mrcnn-eval "
                                         f"(pid {holder.pid}): wait for it to finish or pass another -o/--out")
        assert not (out / "metrics.json").exists()
        with_model = ["--model", tiny_weights, "--dataset", "coco", "--data-root", str(coco_root), "-o", str(out),
                      "--min-confidence", "0"]
        assert eval_main(with_model) == 2 and "is in use by another mrcnn-eval" in last_err_line(capsys)
        assert not (out / "metrics.json").exists() and not (out / "predictions.json").exists()
    finally:
        holder.kill()
        holder.wait()
    assert eval_main(argv) == 0     # a killed holder leaves no lock behind
    assert (out / "metrics.json").exists() and not (out / ".mrcnn-eval.lock").exists()


def test_lock_is_exclusive_within_one_process_too(tmp_path):
    with locked_output(str(tmp_path)):
        with pytest.raises(UserError, match="in use by another mrcnn-eval"):
            with locked_output(str(tmp_path)):
                pass
    with locked_output(str(tmp_path)):
        pass


# ----------------------------------------------------------------- 5. sidecars: readable, one integrity rule
@pytest.mark.parametrize("content,expect", [
    (b"\xff\xfe\x00{", "not UTF-8 text"),
    (b"[1, 2]", "is not a JSON object (found a list)"),
    (b"[" * 100000 + b"]" * 100000, "nested too deeply"),
    (b'{"a": ', "not valid JSON"),
])
def test_unreadable_sidecars_are_one_line(tmp_path, content, expect):
    p = tmp_path / "m.onnx"
    p.write_bytes(b"not a model")
    (tmp_path / "m.onnx.json").write_bytes(content)
    from mrcnn_trt.runtime.runners import read_sidecar

    with pytest.raises(UserError, match=expect.replace("(", r"\(").replace(")", r"\)")):
        read_sidecar(str(p))
    with pytest.raises(UserError):
        fileio.read_json_object(str(tmp_path / "m.onnx.json"))
    from mrcnn_trt.config import Config   # --config FILE.json: the same reader

    with pytest.raises(UserError, match=expect.replace("(", r"\(").replace(")", r"\)")):
        Config.from_json(str(tmp_path / "m.onnx.json"))


def test_read_json_of_a_folder_is_one_line(tmp_path):
    with pytest.raises(UserError, match="cannot read"):
        fileio.read_json(str(tmp_path))


@pytest.mark.parametrize("sha", [None, "", "abc", "A" * 64, 12])
def test_every_command_applies_the_same_integrity_rule(tmp_path, sha, coco_root, capsys):
    """A sidecar that does not vouch for its model (no or a malformed onnx_sha256) is
    refused by every reader: mrcnn-eval's runner, mrcnn-calibrate (--fp16 and INT8),
    mrcnn-build-engine's check, mrcnn-triton repo (which uses that check)."""
    from mrcnn_trt.calib.fp16 import convert_model
    from mrcnn_trt.calib.qdq import quantize_model
    from mrcnn_trt.engine.errors import SidecarMismatch
    from mrcnn_trt.engine.sidecars import check_onnx_sidecar

    model = tmp_path / "m.onnx"
    model.write_bytes(b"a graph that was edited after export")
    side = {"flavor": "trt", "image_size": 64, "batch": 1, "num_classes": 4, "config": {}}
    if sha is not None:
        side["onnx_sha256"] = sha
    (tmp_path / "m.onnx.json").write_text(json.dumps(side))
    expect = "nothing vouches for"
    assert eval_main(["--model", str(model), "--dataset", "coco", "--data-root", str(coco_root), "-o",
                      str(tmp_path / "o")]) == 2
    assert expect in last_err_line(capsys)
    with pytest.raises(UserError, match=expect):
        convert_model(str(model), str(tmp_path / "h.onnx"))
    with pytest.raises(UserError, match=expect):
        quantize_model(str(model), str(tmp_path / "q.onnx"), str(coco_root))
    with pytest.raises(SidecarMismatch, match=expect):
        check_onnx_sidecar(str(model))
    assert not (tmp_path / "h.onnx").exists() and not (tmp_path / "q.onnx").exists()


def test_a_changed_model_is_refused_everywhere(tmp_path, coco_root, capsys):
    from mrcnn_trt.calib.fp16 import convert_model
    from mrcnn_trt.engine.errors import SidecarMismatch
    from mrcnn_trt.engine.sidecars import check_onnx_sidecar

    model = tmp_path / "m.onnx"
    model.write_bytes(b"original")
    side = {"flavor": "trt", "image_size": 64, "batch": 1, "num_classes": 4, "config": {},
            "onnx_sha256": fileio.sha256_file(str(model))}
    (tmp_path / "m.onnx.json").write_text(json.dumps(side))
    model.write_bytes(b"modified")
    assert eval_main(["--model", str(model), "--dataset", "coco", "--data-root", str(coco_root), "-o",
                      str(tmp_path / "o")]) == 2
    assert "does not match its sidecar" in last_err_line(capsys)
    with pytest.raises(UserError, match="does not match its sidecar"):
        convert_model(str(model), str(tmp_path / "h.onnx"))
    with pytest.raises(SidecarMismatch, match="does not match its sidecar"):
        check_onnx_sidecar(str(model))
