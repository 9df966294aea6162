"""Error analysis (TIDE via tidecv, confusion matrix, AP by size) on hand-built cases, and
``mrcnn-eval --report`` end to end on synthetic data (HTML content, no external reference,
rendering in headless Chromium), with and without tidecv installed."""
import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from pycocotools import mask as mask_utils

H, W = 200, 300
CATS = [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]
#: (category, x, y, w, h) of four rectangular objects in one image
OBJECTS = [(1, 10, 10, 50, 40), (1, 100, 20, 60, 60), (2, 200, 100, 40, 80), (2, 20, 120, 70, 50)]


def rect(x, y, w, h, height=H, width=W):
    m = np.zeros((height, width), np.uint8)
    m[y:y + h, x:x + w] = 1
    r = mask_utils.encode(np.asfortranarray(m))
    return {"size": r["size"], "counts": r["counts"].decode("ascii")}, [x, y, w, h]


def make_gt(objects=OBJECTS, cats=CATS, crowds=()):
    gt = {"images": [{"id": 1, "height": H, "width": W, "file_name": "a"}], "categories": cats, "annotations": []}
    for crowd, items in ((0, objects), (1, crowds)):
        for c, x, y, w, h in items:
            seg, box = rect(x, y, w, h)
            gt["annotations"].append({"id": len(gt["annotations"]) + 1, "image_id": 1, "category_id": c,
                                      "segmentation": seg, "bbox": box, "area": float(w * h), "iscrowd": crowd})
    return gt


def make_dets(change=lambda *o: [o], objects=OBJECTS):
    """One detection per object (through ``change``), scores 0.9, 0.8, ... in that order."""
    out = []
    for o in objects:
        for c, x, y, w, h in change(*o):
            seg, box = rect(x, y, w, h)
            out.append({"image_id": 1, "category_id": c, "bbox": box, "score": round(0.9 - 0.1 * len(out), 2),
                        "segmentation": seg})
    return out


def analyse(dets, gt=None, iou_type="segm"):
    from mrcnn_trt.eval.error_analysis import EvalData, confusion_matrix, tide_analysis

    data = EvalData(gt or make_gt(), dets)
    return data, tide_analysis(data, iou_type), confusion_matrix(data, iou_type, score_thresh=0.0)


# ----------------------------------------------------------------------------- hand-built cases
@pytest.mark.parametrize("iou_type", ["segm", "bbox"])
def test_predictions_equal_to_ground_truth_give_no_errors(iou_type):
    _, tide, cm = analyse(make_dets(), iou_type=iou_type)
    assert tide.ap50 == pytest.approx(100.0)
    assert all(v == 0 for v in tide.main.values()) and all(v == 0 for v in tide.special.values())
    assert all(n == 0 for n in tide.counts.values()) and tide.cases == ()
    assert cm.matrix.tolist() == [[2, 0, 0], [0, 2, 0], [0, 0, 0]]


def test_swapped_classes_are_classification_errors_and_confusions():
    _, tide, cm = analyse(make_dets(lambda c, *r: [(3 - c, *r)]))
    assert tide.counts["Cls"] == 4 and sum(tide.counts.values()) == 4
    assert tide.ap50 == pytest.approx(0.0) and tide.main["Cls"] == pytest.approx(100.0)
    assert {(c.category_id, c.other_class, round(c.iou, 6)) for c in tide.cases} == {(1, 2, 1.0), (2, 1, 1.0)}
    assert cm.count("cat", "dog") == 2 and cm.count("dog", "cat") == 2
    assert np.trace(cm.matrix) == 0 and cm.confusions(1)[0][2] == 2


def test_shifted_boxes_are_localization_errors():
    # shifted right by half the width + 3 px: IoU about 0.3, in [0.1, 0.5)
    for iou_type in ("segm", "bbox"):
        _, tide, cm = analyse(make_dets(lambda c, x, y, w, h: [(c, x + w // 2 + 3, y, w, h)]), iou_type=iou_type)
        assert tide.counts["Loc"] == 4 and sum(tide.counts.values()) == 4, iou_type
        assert tide.main["Loc"] == pytest.approx(100.0)
        assert all(0.1 <= c.iou < 0.5 and c.gt is not None for c in tide.cases)
        assert cm.matrix.tolist() == [[0, 0, 2], [0, 0, 2], [2, 2, 0]]   # background + missed, no confusion


def test_duplicates_hand_computed_ap():
    # per class: TP 0.9, dup 0.8, TP 0.7, dup 0.6 -> precision 1 up to recall 0.5, then 2/3
    _, tide, cm = analyse(make_dets(lambda *o: [o, o]))
    ap = (51 + 50 * 2 / 3) / 101 * 100
    assert tide.counts["Dupe"] == 4 and sum(tide.counts.values()) == 4
    assert tide.ap50 == pytest.approx(ap) and tide.main["Dupe"] == pytest.approx(100 - ap)
    assert tide.per_class["cat"]["AP50"] == pytest.approx(ap) and tide.per_class["cat"]["Dupe"] == pytest.approx(100 - ap)
    assert np.trace(cm.matrix) == 4 and cm.matrix[2].sum() == 4 and cm.on_matched.sum() == 4


def test_dropped_detections_are_missed():
    _, tide, cm = analyse(make_dets()[:3])
    # dog: 1 of 2 found -> AP50 51/101; cat 100; mean
    assert tide.per_class["dog"]["AP50"] == pytest.approx(51 / 101 * 100)
    assert tide.ap50 == pytest.approx((100 + 51 / 101 * 100) / 2)
    assert tide.counts["Miss"] == 1 and tide.main["Miss"] == pytest.approx(100 - tide.ap50)
    assert [(c.kind, c.gt) for c in tide.cases] == [("Miss", 3)]
    assert cm.count("dog", "missed") == 1 and cm.count("dog", "dog") == 1


def test_background_both_and_crowd():
    dets = make_dets() + [
        {"image_id": 1, "category_id": 1, "score": 0.95, **dict(zip(("segmentation", "bbox"), rect(250, 5, 30, 30)))},
        # wrong class and IoU ~0.3 with the first dog: both
        {"image_id": 1, "category_id": 1, "score": 0.85, **dict(zip(("segmentation", "bbox"), rect(220, 100, 40, 80)))},
        # on a crowd region: ignored everywhere
        {"image_id": 1, "category_id": 2, "score": 0.99, **dict(zip(("segmentation", "bbox"), rect(150, 150, 40, 40)))},
    ]
    gt = make_gt(crowds=[(2, 140, 140, 60, 60)])
    _, tide, cm = analyse(dets, gt)
    assert tide.counts["Bkg"] == 1 and tide.counts["Both"] == 1 and sum(tide.counts.values()) == 2
    both = [c for c in tide.cases if c.kind == "Both"][0]
    assert both.other_class == 2 and 0.1 <= both.iou < 0.5
    assert cm.matrix[2].tolist() == [2, 0, 0]     # background row: the two cat false positives, not the crowd one
    assert cm.matrix[:2, 2].tolist() == [0, 0]    # nothing missed; the crowd is never missed


def test_rider_found_as_person_is_a_confusion():
    from mrcnn_trt.data.classmap import CITYSCAPES_LABEL_IDS

    cats = [{"id": v, "name": k} for k, v in CITYSCAPES_LABEL_IDS.items()]
    person, rider = CITYSCAPES_LABEL_IDS["person"], CITYSCAPES_LABEL_IDS["rider"]
    objs = [(person, 10, 10, 30, 80), (rider, 100, 10, 30, 80)]
    _, tide, cm = analyse(make_dets(lambda c, *r: [(person, *r)], objs), make_gt(objs, cats))
    assert cm.count("rider", "person") == 1 and cm.count("person", "person") == 1
    assert tide.counts["Cls"] == 1 and tide.cases[0].other_class == rider
    # the report explains it for a COCO model
    from mrcnn_trt.config import COCO_CLASS_NAMES
    from mrcnn_trt.eval.report import class_mapping_notes

    notes = " ".join(class_mapping_notes(cm, COCO_CLASS_NAMES))
    assert "'rider'" in notes and "riders detected as person: 1, riders missed: 0" in notes


def test_ap_by_size_and_pr_curves_agree_with_tide():
    from mrcnn_trt.eval.error_analysis import EvalData, coco_curves, tide_analysis

    objs = [(1, 5, 5, 20, 20), (1, 40, 40, 50, 50), (1, 100, 10, 120, 120), (2, 250, 150, 25, 25)]
    dets = make_dets(objects=objs)[1:] + make_dets(lambda c, x, y, w, h: [(c, x + 4, y, w, h)], objs)[:1]
    dets[-1]["score"] = 0.1       # the small cat, shifted by 4 px (IoU 320/480 = 0.67), last
    data = EvalData(make_gt(objs), dets)
    curves = coco_curves(data, "segm")
    assert curves.gt_by_size["cat"] == {"small": 1, "medium": 1, "large": 1}
    assert curves.ap_by_size["cat"]["medium"] == pytest.approx(100) and curves.ap_by_size["cat"]["large"] == pytest.approx(100)
    # the small cat: found at IoU .50-.65, missed at .70-.95: AP 4/10
    assert curves.ap_by_size["cat"]["small"] == pytest.approx(40.0)
    tide = tide_analysis(data, "segm")
    for name in ("cat", "dog"):   # AP50 from pycocotools' curve = TIDE's AP50
        assert np.nanmean(curves.precision[name]["0.50"]) * 100 == pytest.approx(tide.per_class[name]["AP50"])


def test_no_detections_at_all():
    from mrcnn_trt.eval.error_analysis import coco_curves

    data, tide, cm = analyse([])
    assert tide.counts["Miss"] == 4 and tide.ap50 == 0
    assert cm.matrix[:2, 2].tolist() == [2, 2]
    assert coco_curves(data).ap_by_size["cat"]["all"] == 0


def test_reference_comparison():
    from mrcnn_trt.eval.report import compare_with_references

    cs = {"dataset": "cityscapes", "cityscapes": {"AP": 0.30, "AP50": 0.5,
                                                  "per_class": {"person": {"AP": 0.32}, "rider": {"AP": None}}}}
    rows = {m: (o, cells) for m, o, cells in compare_with_references(cs).rows}
    assert rows["AP[val]"][1][0][:2] == (31.5, "val") and rows["AP[val]"][1][1][:2] == (36.4, "val")
    assert rows["person"][1][0][1] == "test" and rows["person"][1][0][2] == pytest.approx(32 - 30.5)
    assert np.isnan(rows["rider"][0]) and np.isnan(rows["rider"][1][0][2])
    coco = {"dataset": "coco", "segm": {"AP": 0.3}, "bbox": {"AP": 0.35}}
    rows = {m: (o, cells) for m, o, cells in compare_with_references(coco).rows}
    assert rows["segm AP"][1][0][:2] == (35.7, "COCO test-dev") and rows["segm AP"][1][1][:2] == (29.6, "COCO 2014 minival")
    assert rows["bbox AP"][1][1][2] == pytest.approx(35 - 34.7)


# ----------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def cs_report(tmp_path_factory):
    """mrcnn-eval --report with the shipped model on synthetic Cityscapes-format data."""
    from mrcnn_trt.data.synthetic import write_dataset
    from mrcnn_trt.eval.cli import main

    root = tmp_path_factory.mktemp("report")
    write_dataset(str(root / "cs"), fmt="cityscapes", num_images=5, seed=78, split="val", show_progress=False)
    out = root / "out"
    rc = main(["--dataset", "cityscapes", "--data-root", str(root / "cs"), "--out", str(out), "--report"])
    assert rc == 0
    return out


def test_report_files_and_content(cs_report):
    out = cs_report
    page = (out / "report.html").read_text()
    md = (out / "report.md").read_text()
    rep = json.loads((out / "report.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    from mrcnn_trt.eval.report.document import md_text
    md_plain = md.replace("\\[", "[").replace("\\]", "]")     # Markdown escapes brackets (no links from data)
    assert md_text("31.5 [val]") == "31.5 \\[val\\]" and "31.5 \\[val\\]" in md
    # the paper table, with its splits
    for text in ("Side by side with the paper", "paper: fine only", "paper: fine + COCO", "31.5 [val]",
                 "26.2 [test]", "36.4 [val]", "18.7 [test]"):
        assert text in page and text in md_plain, text
    # the TIDE buckets
    for text in ("classification (Cls)", "localization (Loc)", "both (cls + loc) (Both)", "duplicate (Dupe)",
                 "background (Bkg)", "missed (Miss)"):
        assert text in page and text in md_plain, text
    # the confusion matrix (8 Cityscapes classes + background / missed)
    assert "true \\\\ predicted" in md and "<th>true \\ predicted</th>" in page   # Markdown escapes the backslash
    assert re.search(r"<th>background</th>(<td>\d+</td>){9}</tr>", page)
    # pictures: embedded, and nothing outside the file
    assert len(re.findall(r'<img src="data:image/(png|jpeg);base64,', page)) >= 5
    text = re.sub(r'src="data:image/(png|jpeg);base64,[A-Za-z0-9+/=]+"', "embedded", page)
    assert not re.search(r"https?:|ftp:|file:|//[a-z]|url\(|@import|<script|<link|<iframe|<object", text, re.I)
    assert not re.search(r'(src|href)="(?!#)', text)
    for name in re.findall(r"\]\((report_files/[^)]+)\)", md):
        assert (out / name).is_file(), name
    # the numbers are the evaluation's
    ours = {r["metric"]: r["ours"] for r in rep["comparison"]["rows"]}
    assert ours["AP"] == pytest.approx(metrics["cityscapes"]["AP"] * 100)
    assert ours["person"] == pytest.approx(metrics["cityscapes"]["per_class"]["person"]["AP"] * 100)
    # TIDE's AP50 and pycocotools' mask AP50 of the same predictions agree
    assert rep["tide"]["segm"]["AP50"] == pytest.approx(metrics["segm"]["AP50"] * 100, abs=1.0)
    gt = json.loads((out / "cityscapes" / "coco_gt.json").read_text())
    n_objects = sum(1 for a in gt["annotations"] if not a["iscrowd"])
    m = np.array(rep["confusion"]["matrix"])
    assert m[:-1].sum() == n_objects            # every object once: matched, confused or missed
    facts = rep["run"]
    assert facts["backend"] == "torch" and facts["images evaluated"] == "5"
    # the shipped model cuts at 0.50: said where the AP is, not only in the run facts
    assert facts["DETECTION_MIN_CONFIDENCE"].startswith("0.50 (AP under-reported: the model drops detections")
    assert rep["ap_under_reported"] is True
    assert "under-reported: cut-off 0.50" in page and "under-reported: cut-off 0.50" in md
    assert re.search(r"<td>\d+\.\d \*</td>", page)                 # each of our AP cells carries the mark
    # synthetic data: the comparison says so in the table itself, and no difference is coloured
    assert rep["synthetic_data"] is True
    paper = page.split('id="paper"')[1].split("<h2")[0]
    assert "ours (synthetic data, val, 5 images" in paper
    assert "(synthetic)</td>" in paper and 'class="pos"' not in paper and 'class="neg"' not in paper
    # the official Cityscapes mean names the classes it averages
    counted = [c for c, v in metrics["cityscapes"]["per_class"].items() if v["AP"] is not None and v["AP"] == v["AP"]]
    assert 0 < len(counted) < 8
    assert f"official mean ({len(counted)} of 8 classes: those with ground truth or detections)" in page


def test_lab4_comparison_on_synthetic_data_says_so_in_the_table():
    """LAB 4: a Cityscapes-class model fine-tuned and evaluated on synthetic data; before,
    'person 68.5 vs paper 30.5 +38.0' showed in green with no note."""
    from mrcnn_trt.config import CITYSCAPES_CLASS_NAMES
    from mrcnn_trt.eval.report import Table, compare_with_references, paper_section, render_html

    metrics = {"dataset": "cityscapes", "split": "val", "num_images": 50, "min_confidence": 0.0,
               "cityscapes": {"AP": 0.6, "AP50": 0.9, "per_class": {"person": {"AP": 0.685}}}}
    comp = compare_with_references(metrics)
    for synthetic in (True, False):
        sec = paper_section(metrics, comp, CITYSCAPES_CLASS_NAMES, synthetic=synthetic)
        table = next(b for b in sec.blocks if isinstance(b, Table))
        person = next(r for r in table.rows if r[0] == "person")
        page = render_html("t", [], [sec], ".")
        if synthetic:
            assert person[:4] == ["person", "68.5", "30.5 [test]", "+38.0 (synthetic)"]
            assert table.header[1].startswith("ours (synthetic data, val, 50 images")
            notes = [b for b in sec.blocks if isinstance(b, str) and b.startswith("Note:")]
            assert notes and "synthetic data" in notes[0]
            assert sec.blocks.index(notes[0]) < sec.blocks.index(table)       # read before the numbers
            assert 'class="pos"' not in page
        else:
            assert person[:4] == ["person", "68.5", "30.5 [test]", "+38.0"] and 'class="pos">+38.0<' in page
            assert "under-reported" not in page and "synthetic" not in page


def test_markdown_and_html_escape_hostile_class_names(tmp_path):
    """Class names come from the data: none of them may become markup in report.md / report.html."""
    from mrcnn_trt.data.synthetic import write_dataset
    from mrcnn_trt.eval.cli import main

    write_dataset(str(tmp_path / "coco"), fmt="coco", num_images=3, seed=4, split="val", show_progress=False)
    ann = tmp_path / "coco" / "annotations" / "instances_val.json"
    gt = json.loads(ann.read_text())
    hostile = ["<script>alert(1)</script>", "<img src=x onerror=alert(2)>", "a|b*c_[d](javascript:e)`f`"]
    for cat, name in zip(sorted(gt["categories"], key=lambda c: c["id"]), hostile):
        cat["name"] = name
    ann.write_text(json.dumps(gt))
    out = tmp_path / "out"
    assert main(["--dataset", "coco", "--data-root", str(tmp_path / "coco"), "--class-map", "none", "--out", str(out),
                 "--report"]) == 0
    md = (out / "report.md").read_text()
    page = (out / "report.html").read_text()
    for doc in (md, page):
        assert "<script" not in doc.lower() and "<img src=x" not in doc and "onerror=alert(2)>" not in doc
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in doc
    assert not re.search(r"(?<!\\)\]\(javascript", md) and "a\\|b\\*c\\_\\[d\\](javascript:e)\\`f\\`" in md
    # no raw HTML at all in the Markdown; its only links are the pictures under report_files/
    assert not re.search(r"<[a-zA-Z/!]", md)
    links = re.findall(r"(?<!\\)\]\(([^)]*)\)", md)        # unescaped "](": the start of a link target
    assert links and all(t.startswith("report_files/") for t in links), links


def test_report_renders_in_headless_chromium(cs_report, tmp_path):
    from PIL import Image

    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if not exe:
        pytest.skip("chromium is not installed (tools/system_deps.sh installs Debian's chromium as root)")
    shot = tmp_path / "shot.png"
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'profile'}", "--hide-scrollbars", "--window-size=1200,3200",
           f"--screenshot={shot}", (cs_report / "report.html").as_uri()]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert shot.is_file(), r.stderr[-2000:]
    img = np.asarray(Image.open(shot).convert("RGB")).astype(np.int32)
    assert img.shape[:2] == (3200, 1200)
    gray = img.mean(axis=2)
    assert gray.std() > 20 and (gray < 200).mean() > 0.02          # text and tables, not a blank page
    # matplotlib's first colour (the TIDE and size charts): the embedded PNGs were decoded and drawn
    blue = (np.abs(img - np.array([31, 119, 180])).max(axis=2) < 12).sum()
    assert blue > 2000, blue


def test_report_on_coco_layout_with_limit(tmp_path):
    """COCO data: the report takes the evaluated images only (the first --limit)."""
    from mrcnn_trt.data.synthetic import write_dataset
    from mrcnn_trt.eval.cli import main

    write_dataset(str(tmp_path / "coco"), fmt="coco", num_images=5, seed=5, split="val", show_progress=False)
    out = tmp_path / "out"
    assert main(["--dataset", "coco", "--data-root", str(tmp_path / "coco"), "--limit", "3", "--out", str(out),
                 "--report"]) == 0
    rep = json.loads((out / "report.json").read_text())
    gt = json.loads((tmp_path / "coco" / "annotations" / "instances_val.json").read_text())
    first3 = sorted(i["id"] for i in gt["images"])[:3]
    n = sum(1 for a in gt["annotations"] if a["image_id"] in first3 and not a["iscrowd"])
    assert np.array(rep["confusion"]["matrix"])[:-1].sum() == n
    page = (out / "report.html").read_text()
    assert "paper: R-101-FPN" in page and "35.7 [COCO test-dev]" in page and "29.6 [COCO 2014 minival]" in page


def test_eval_works_without_tidecv_and_report_says_what_is_missing(tmp_path, monkeypatch, capsys):
    from mrcnn_trt.data.synthetic import write_dataset
    from mrcnn_trt.eval.cli import main

    monkeypatch.setitem(sys.modules, "tidecv", None)     # import tidecv -> ImportError
    write_dataset(str(tmp_path / "coco"), fmt="coco", num_images=2, seed=1, split="val", show_progress=False)
    args = ["--dataset", "coco", "--data-root", str(tmp_path / "coco")]
    assert main(args + ["--out", str(tmp_path / "plain")]) == 0
    assert (tmp_path / "plain" / "metrics.json").is_file()
    capsys.readouterr()
    rc = main(args + ["--out", str(tmp_path / "rep"), "--report"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc != 0 and len(err) == 1 and "tidecv" in err[0] and "[report]" in err[0]
    assert not (tmp_path / "rep" / "metrics.json").exists()   # refused before the model ran
