"""COCO and Cityscapes evaluators: ground truth fed back scores AP 1, perturbations
lower it, and the numbers equal those of pycocotools / cityscapesscripts called
directly on the same files."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from mrcnn_trt.config import COCO_CLASS_NAMES
from mrcnn_trt.data import classmap
from mrcnn_trt.data.cityscapes import CityscapesDataset
from mrcnn_trt.data.coco import CocoDataset
from mrcnn_trt.data.synthetic import write_dataset
from mrcnn_trt.eval.evaluators import STAT_NAMES, CityscapesEvaluator, COCOEvaluator

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COCO_SAMPLE = os.path.join(REPO, "..", "shared", "data", "coco-val2017-sample")
needs_sample = pytest.mark.skipif(not os.path.isdir(COCO_SAMPLE),
                                  reason="../shared/data/coco-val2017-sample not present")


def gt_output(sample, keep=None, shift=0, erode=0, scores=None, class_map=None):
    """The sample's non-crowd ground truth as a ``detect`` output, optionally perturbed:
    ``keep`` (instance selection), boxes shifted right by ``shift`` x width, masks eroded
    ``erode`` times."""
    idx = np.flatnonzero(sample.class_ids > 0)
    if keep is not None:
        idx = idx[keep(idx)]
    rois = sample.boxes[idx].astype(np.int32).copy()
    if shift:
        dx = np.maximum(1, np.round((rois[:, 3] - rois[:, 1]) * shift)).astype(np.int32)
        rois[:, 1] += dx
        rois[:, 3] += dx
    masks = sample.masks[:, :, idx].astype(np.uint8)
    if erode:
        for j in range(masks.shape[2]):
            masks[:, :, j] = ndimage.binary_erosion(masks[:, :, j], iterations=erode)
    cids = sample.class_ids[idx].astype(np.int32)
    if class_map:
        cids = np.array([class_map[c] for c in cids], np.int32)
    if scores is None:
        scores = np.linspace(0.99, 0.5, len(idx))
    return {"rois": rois, "class_ids": cids, "scores": np.asarray(scores, np.float32)[: len(idx)],
            "masks": masks}


def run_coco(ds, make_output, **kw):
    ev = COCOEvaluator(ds, **kw)
    for s in ds:
        ev.process([s], [make_output(s)])
    return ev, ev.evaluate()


def direct_coco(ann_file, results_file, img_ids, iou_type, keep_bbox_for_segm=False):
    """pycocotools called directly on the evaluator's saved results file."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(ann_file)
        res = json.load(open(results_file))
        if iou_type == "segm" and not keep_bbox_for_segm:
            for r in res:
                r.pop("bbox", None)
        if iou_type == "bbox":
            for r in res:
                r.pop("segmentation", None)
        dt = gt.loadRes(res)
        e = COCOeval(gt, dt, iou_type)
        e.params.imgIds = sorted(img_ids)
        e.evaluate()
        e.accumulate()
        e.summarize()
    return e


def assert_stats_equal(metrics, e):
    for name, v in zip(STAT_NAMES, e.stats):
        got = metrics[name]
        if v < 0:
            assert math.isnan(got), name
        else:
            assert got == pytest.approx(v, abs=1e-12), name


@pytest.fixture(scope="module")
def shapes_coco(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("ev_coco"))
    write_dataset(d, "coco", 10, seed=3, split="val", crowd_prob=0.1, show_progress=False)
    return CocoDataset.from_root(d, "val")


@pytest.fixture(scope="module")
def shapes_cs(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("ev_cs"))
    write_dataset(d, "cityscapes", 8, seed=5, split="val", crowd_prob=0.1, show_progress=False)
    return CityscapesDataset(d, "val")


# ---------------------------------------------------------------------------- COCO
@needs_sample
def test_coco_real_sample_ground_truth_scores_one(tmp_path):
    ds = CocoDataset(os.path.join(COCO_SAMPLE, "instances_sample.json"))
    ev, m = run_coco(ds, gt_output, output_dir=str(tmp_path))
    for t in ("bbox", "segm"):
        assert m[t]["AP"] == pytest.approx(1.0) and m[t]["AP50"] == pytest.approx(1.0)
        assert m[t]["AP75"] == pytest.approx(1.0) and m[t]["AR100"] == pytest.approx(1.0)
        assert m[t]["per_class"] == {"person": pytest.approx(1.0)}
    assert m["num_images"] == 4 and m["num_detections"] == 14
    saved = json.load(open(tmp_path / "coco_instances_results.json"))
    assert len(saved) == 14 and isinstance(saved[0]["segmentation"]["counts"], str)


@needs_sample
def test_coco_real_sample_perturbed_lower_and_equal_to_pycocotools(tmp_path):
    ann = os.path.join(COCO_SAMPLE, "instances_sample.json")
    ds = CocoDataset(ann)
    rng = np.random.default_rng(0)

    def perturbed(s):
        return gt_output(s, keep=lambda idx: np.arange(len(idx)) % 4 != 3, shift=0.12, erode=3,
                         scores=rng.uniform(0.3, 1.0, 64))

    ev, m = run_coco(ds, perturbed, output_dir=str(tmp_path))
    assert m["bbox"]["AP"] < 0.9 and m["segm"]["AP"] < 0.9 and m["segm"]["AR100"] < 1.0
    res_file = str(tmp_path / "coco_instances_results.json")
    for t in ("bbox", "segm"):
        e = direct_coco(ann, res_file, ds.image_ids, t)
        assert_stats_equal(m[t], e)
        p = e.eval["precision"][:, :, 0, 0, -1]
        assert m[t]["per_class"]["person"] == pytest.approx(p[p > -1].mean())
    # the original protocol (segm results keep their bbox: box area) also matches pycocotools
    ev2, m2 = run_coco(ds, lambda s: gt_output(s, shift=0.12, erode=3), output_dir=str(tmp_path / "o"),
                       segm_box_area=True)
    e = direct_coco(ann, str(tmp_path / "o" / "coco_instances_results.json"), ds.image_ids, "segm",
                    keep_bbox_for_segm=True)
    assert_stats_equal(m2["segm"], e)


def test_coco_synthetic_ground_truth_and_perturbations(shapes_coco, tmp_path):
    _, m = run_coco(shapes_coco, gt_output)
    for t in ("bbox", "segm"):
        for name in ("AP", "AP50", "AP75", "AR100"):
            assert m[t][name] == pytest.approx(1.0), (t, name)
        assert all(v == pytest.approx(1.0) for v in m[t]["per_class"].values())
        assert set(m[t]["per_class"]) == {"circle", "square", "triangle"}
    _, shifted = run_coco(shapes_coco, lambda s: gt_output(s, shift=0.25))
    assert shifted["bbox"]["AP"] < 0.6 and shifted["segm"]["AP"] == pytest.approx(1.0)
    _, eroded = run_coco(shapes_coco, lambda s: gt_output(s, erode=2))
    assert eroded["segm"]["AP"] < 0.8
    _, dropped = run_coco(shapes_coco, lambda s: gt_output(s, keep=lambda i: np.arange(len(i)) % 2 == 0))
    assert dropped["segm"]["AR100"] < 0.8 and dropped["segm"]["AP"] < 0.8
    # equal to pycocotools on the saved file
    ev, m = run_coco(shapes_coco, lambda s: gt_output(s, shift=0.1, erode=1), output_dir=str(tmp_path))
    for t in ("bbox", "segm"):
        assert_stats_equal(m[t], direct_coco(shapes_coco.annotation_file, str(tmp_path / "coco_instances_results.json"),
                                             shapes_coco.image_ids, t))


def test_coco_empty_predictions_and_restriction(shapes_coco):
    def empty(s):
        return {"rois": np.zeros((0, 4), np.int32), "class_ids": np.zeros(0, np.int32),
                "scores": np.zeros(0, np.float32), "masks": np.zeros((0, 28, 28), np.uint8)}

    _, m = run_coco(shapes_coco, empty)
    for t in ("bbox", "segm"):
        assert m[t]["AP"] == 0.0 and m[t]["AR100"] == 0.0
        assert all(v == 0.0 for v in m[t]["per_class"].values())
    assert m["num_detections"] == 0
    # only half of the images processed: the others' ground truth must not count as missed
    ev = COCOEvaluator(shapes_coco)
    for i in range(0, len(shapes_coco), 2):
        s = shapes_coco[i]
        ev.process(s, gt_output(s))
    m = ev.evaluate()
    assert m["segm"]["AP"] == pytest.approx(1.0) and m["num_images"] == len(range(0, len(shapes_coco), 2))
    ev.reset()
    with pytest.warns(UserWarning):
        assert ev.evaluate() == {}


def test_coco_class_map_and_bad_inputs(shapes_coco):
    # a "model" with other internal ids: 5 -> circle(1), 6 -> square(2), 7 -> triangle(3), 9 unmapped
    cmap = {5: 1, 6: 2, 7: 3}
    ev = COCOEvaluator(shapes_coco, class_map=cmap)
    for s in shapes_coco:
        out = gt_output(s, class_map={1: 5, 2: 6, 3: 7})
        extra = {k: v[:1] if k != "masks" else v[:, :, :1] for k, v in out.items()}
        extra["class_ids"] = np.array([9], np.int32)
        out = {k: np.concatenate([out[k], extra[k]], axis=2 if k == "masks" else 0) for k in out}
        ev.process([s], [out])
    m = ev.evaluate()
    assert m["segm"]["AP"] == pytest.approx(1.0) and m["num_dropped_detections"] == len(shapes_coco)
    s = shapes_coco[0]
    with pytest.raises(ValueError, match="not in the COCO"):
        ev.process([12345], [gt_output(s)])
    bad = gt_output(s)
    bad["masks"] = bad["masks"][:-1]
    with pytest.raises(ValueError, match="original-image pixels"):
        ev.process([s], [bad])
    with pytest.raises(ValueError):
        ev.process([s, s], [gt_output(s)])


def test_coco_evaluator_from_json_path(shapes_coco):
    ev = COCOEvaluator(shapes_coco.annotation_file)  # internal i = i-th sorted category id
    assert ev.class_map == {1: 1, 2: 2, 3: 3}
    s = shapes_coco[0]
    ev.process([{"image_id": s.image_id}], [gt_output(s)])
    assert ev.evaluate()["bbox"]["AP"] == pytest.approx(1.0)


# ---------------------------------------------------------------------------- Cityscapes
def run_cs(ds, make_output, out_dir, **kw):
    ev = CityscapesEvaluator(ds, output_dir=out_dir, **kw)
    for s in ds:
        ev.process([s], [make_output(s)])
    m = ev.evaluate()
    return ev, dict(m["cityscapes"], coco={k: m[k] for k in ("bbox", "segm")})


DIRECT_CS = r"""
import json, sys
import numpy as np
# the two NumPy-2 incompatibilities of cityscapesscripts 2.3.0, patched globally in this process
np.in1d = lambda a, b, **k: np.isin(np.ravel(a), b, **k)
from cityscapesscripts.evaluation import evalInstanceLevelSemanticLabeling as m
def write(d, f):
    with open(f, "w") as fh:
        json.dump(d, fh, default=lambda o: o.item() if isinstance(o, np.generic) else o.__dict__)
m.writeDict2JSON = write
m.args.gtInstancesFile = sys.argv[1]
sys.argv = sys.argv[:1]
m.main()   # searches CITYSCAPES_DATASET/gtFine/val and CITYSCAPES_RESULTS
"""


def direct_cityscapes(gt_root, results_dir, work):
    os.makedirs(work, exist_ok=True)
    env = dict(os.environ, CITYSCAPES_DATASET=gt_root, CITYSCAPES_RESULTS=results_dir)
    r = subprocess.run([sys.executable, "-c", DIRECT_CS, os.path.join(work, "gt.json")], cwd=work, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    with open(os.path.join(gt_root, "evaluationResults", "resultInstanceLevelSemanticLabeling.json")) as f:
        return json.load(f)


def test_cityscapes_ground_truth_scores_one(shapes_cs, tmp_path):
    cwd_before = os.listdir(os.getcwd())
    np_had_in1d = hasattr(np, "in1d")
    ev, m = run_cs(shapes_cs, gt_output, str(tmp_path / "ev"))
    assert m["AP"] == pytest.approx(1.0) and m["AP50"] == pytest.approx(1.0)
    for name in ("person", "car", "bicycle"):
        assert m["per_class"][name]["AP"] == pytest.approx(1.0)
    for name in ("rider", "truck", "bus", "train", "motorcycle"):  # no GT, no predictions: undefined
        assert math.isnan(m["per_class"][name]["AP"])
    assert m["coco"]["segm"]["AP"] == pytest.approx(1.0) and m["coco"]["bbox"]["AP"] == pytest.approx(1.0)
    # files: official format, caches in the output folder, nothing in the cwd
    txts = sorted(f for f in os.listdir(m["results_dir"]) if f.endswith("_pred.txt"))
    assert len(txts) == len(shapes_cs)
    lines = [ln.split() for t in txts for ln in open(os.path.join(m["results_dir"], t))]
    assert len(lines) == m["num_detections"] > 0
    line = lines[0]
    assert line[0].startswith("masks/") and int(line[1]) in (24, 26, 33) and 0 < float(line[2]) <= 1
    for f in ("gtInstances.json", "matches.json", "resultInstanceLevelSemanticLabeling.json", "coco_gt.json"):
        assert os.path.isfile(tmp_path / "ev" / f), f
    assert os.listdir(os.getcwd()) == cwd_before
    assert hasattr(np, "in1d") == np_had_in1d  # numpy itself is not patched by the shim


def test_cityscapes_perturbed_lower_and_equal_to_official_script(shapes_cs, tmp_path):
    rng = np.random.default_rng(1)

    def perturbed(s):
        return gt_output(s, keep=lambda idx: np.arange(len(idx)) % 3 != 2, erode=2,
                         scores=rng.uniform(0.2, 1.0, 64))

    ev, m = run_cs(shapes_cs, perturbed, str(tmp_path / "ev"))
    assert m["AP"] < 0.8 and m["coco"]["segm"]["AP"] < 0.8
    ref = direct_cityscapes(shapes_cs.root, m["results_dir"], str(tmp_path / "direct"))
    assert m["AP"] == pytest.approx(ref["averages"]["allAp"], abs=1e-12)
    assert m["AP50"] == pytest.approx(ref["averages"]["allAp50%"], abs=1e-12)
    for name, v in ref["averages"]["classes"].items():
        if math.isnan(v["ap"]):
            assert math.isnan(m["per_class"][name]["AP"])
        else:
            assert m["per_class"][name]["AP"] == pytest.approx(v["ap"], abs=1e-12)
            assert m["per_class"][name]["AP50"] == pytest.approx(v["ap50%"], abs=1e-12)
    # COCO-style numbers on the same predictions equal pycocotools on the written files
    res = []
    num = {img["file_name"]: img["id"] for img in json.load(open(m["coco_gt_file"]))["images"]}
    from pycocotools import mask as mask_utils

    for txt in sorted(f for f in os.listdir(m["results_dir"]) if f.endswith("_pred.txt")):
        iid = txt[: -len("_pred.txt")]
        for line in open(os.path.join(m["results_dir"], txt)):
            rel, lid, score = line.split()
            mk = np.array(Image.open(os.path.join(m["results_dir"], rel))) > 0
            rle = mask_utils.encode(np.asfortranarray(mk.astype(np.uint8)))
            rle["counts"] = rle["counts"].decode()
            res.append({"image_id": num[iid], "category_id": int(lid), "score": float(score), "segmentation": rle})
    rf = tmp_path / "res.json"
    rf.write_text(json.dumps(res))
    e = direct_coco(m["coco_gt_file"], str(rf), list(num.values()), "segm")
    assert_stats_equal(m["coco"]["segm"], e)


def test_cityscapes_coco_model_mapping_rider_counts(tmp_path):
    """A COCO model on Cityscapes: 7 classes map, rider cannot be predicted -> AP 0 in the mean."""
    root = tmp_path / "cs"
    gt_dir = root / "gtFine" / "val" / "town"
    img_dir = root / "leftImg8bit" / "val" / "town"
    gt_dir.mkdir(parents=True)
    img_dir.mkdir(parents=True)
    ids = np.full((64, 96), 7, np.uint16)
    ids[5:30, 5:30] = 24000      # person
    ids[35:60, 40:80] = 25000    # rider
    ids[5:25, 60:90] = 26        # car group (ignore region)
    Image.fromarray(ids).save(gt_dir / "town_000001_000019_gtFine_instanceIds.png")
    Image.fromarray(np.zeros((64, 96, 3), np.uint8)).save(img_dir / "town_000001_000019_leftImg8bit.png")
    ds = CityscapesDataset(str(root), "val")
    s = ds[0]
    assert s.class_ids.tolist() == [-3, 1, 2]  # car group (26), person (24000), rider (25000)
    person, dog = COCO_CLASS_NAMES.index("person"), COCO_CLASS_NAMES.index("dog")
    m_person = (ids == 24000).astype(np.uint8)
    out = {"rois": np.array([[5, 5, 30, 30], [35, 40, 60, 80]], np.int32),
           "class_ids": np.array([person, dog], np.int32), "scores": np.array([0.9, 0.8], np.float32),
           "masks": np.stack([m_person, (ids == 25000).astype(np.uint8)], axis=2)}
    ev = CityscapesEvaluator(ds, output_dir=str(tmp_path / "ev"), class_names=COCO_CLASS_NAMES)
    assert ev.label_map == classmap.coco_to_cityscapes()
    ev.process([s], [out])
    m = ev.evaluate()["cityscapes"]
    assert m["num_dropped_detections"] == 1  # the dog
    assert m["per_class"]["person"]["AP"] == pytest.approx(1.0)
    assert m["per_class"]["rider"]["AP"] == 0.0
    assert m["AP"] == pytest.approx(0.5)              # official mean over classes with GT or predictions
    assert m["AP_mappable"] == pytest.approx(1.0)     # mean over the 7 mappable classes
    assert "rider" not in m["mappable_classes"] and len(m["mappable_classes"]) == 7


def test_cityscapes_errors(shapes_cs, tmp_path):
    ev = CityscapesEvaluator(shapes_cs, output_dir=str(tmp_path))
    with pytest.raises(ValueError, match="no Cityscapes ground truth"):
        ev.process(["nowhere_000000_000000"], [gt_output(shapes_cs[0])])
    s = shapes_cs[0]
    ev.process([s], [gt_output(s)])
    with pytest.raises(ValueError, match="twice"):
        ev.process([s], [gt_output(s)])
    with pytest.raises(ValueError):
        CityscapesEvaluator(shapes_cs, output_dir=str(tmp_path / "x"), label_map={1: 99})


@needs_sample
def test_coco_model_classes_by_name_on_sample():
    """A COCO (81-class) model on the person-only sample: person maps by name, others drop."""
    ds = CocoDataset(os.path.join(COCO_SAMPLE, "instances_sample.json"))
    ev = COCOEvaluator(ds, class_names=COCO_CLASS_NAMES)
    dog = COCO_CLASS_NAMES.index("dog")
    assert ev.class_map[COCO_CLASS_NAMES.index("person")] == 1 and dog not in ev.class_map
    for s in ds:
        out = gt_output(s)
        out["class_ids"] = out["class_ids"].copy()
        out["class_ids"][0] = dog
        ev.process([s], [out])
    m = ev.evaluate()
    assert m["num_dropped_detections"] == 4 and m["segm"]["AR100"] == pytest.approx(10 / 14)
    with pytest.raises(Exception, match="none of the model"):
        COCOEvaluator(ds, class_names=("BG", "circle"))


def test_encode_mask_rle_equals_pycocotools():
    from pycocotools import mask as mask_utils

    from mrcnn_trt.eval.evaluators import encode_mask_rle

    rng = np.random.default_rng(0)
    planes = [np.zeros((7, 9), np.uint8), np.ones((7, 9), np.uint8)]
    for _ in range(30):
        h, w = rng.integers(1, 40, 2)
        p = np.zeros((h, w), np.uint8)
        y1, x1 = rng.integers(0, h), rng.integers(0, w)
        p[y1:y1 + rng.integers(1, h + 1), x1:x1 + rng.integers(1, w + 1)] = 1
        p &= (rng.random((h, w)) < rng.uniform(0.3, 1.0)).astype(np.uint8)
        planes.append(p)
    planes.append((rng.random((50, 60)) < 0.5).astype(np.uint8) * 255)
    for p in planes:
        ref = mask_utils.encode(np.asfortranarray((p != 0).astype(np.uint8)))
        got = encode_mask_rle(p)
        assert got["counts"] == ref["counts"] and list(got["size"]) == list(ref["size"])
