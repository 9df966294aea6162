import json
import os

from mrcnn_trt.apps.demo import main


def test_demo_on_seed_images(seed_images, tiny_weights, tmp_path):
    out = tmp_path / "out"
    rc = main(["--weights", tiny_weights, *seed_images[:3], "--out", str(out), "--batch", "2"])
    assert rc == 0
    for f in seed_images[:3]:
        stem = os.path.splitext(os.path.basename(f))[0]
        js = json.loads((out / f"{stem}.json").read_text())
        assert js["height"] > 0 and isinstance(js["detections"], list)
        for d in js["detections"]:
            assert len(d["box_yxyx"]) == 4 and d["mask_rle"]["size"] == [js["height"], js["width"]]
        assert (out / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "summary.json").read_text())["processed"] == 3


def test_demo_reports_bad_files_and_fails_when_nothing_processed(tiny_weights, tmp_path, capsys):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"garbage")
    rc = main(["--weights", tiny_weights, str(bad), "--out", str(tmp_path / "o")])
    assert rc == 1
    assert "cannot read image" in capsys.readouterr().err


def test_demo_missing_weights_is_one_line_error(tmp_path, capsys):
    img = tmp_path / "x.png"
    from PIL import Image

    Image.new("RGB", (10, 10)).save(img)
    rc = main(["--weights", str(tmp_path / "nope.pth"), str(img), "--out", str(tmp_path / "o")])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: weights file not found")
