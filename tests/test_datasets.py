"""Dataset loaders (COCO, Cityscapes, image folders), the synthetic shapes generator
and its on-disk formats, class maps."""
from __future__ import annotations

import filecmp
import json
import os

import numpy as np
import pytest
from PIL import Image

from mrcnn_trt.config import CITYSCAPES_CLASS_NAMES, COCO_CLASS_NAMES, SHAPES_CLASS_NAMES
from mrcnn_trt.data import ImageFolderDataset, extract_bboxes, load_rgb_image, open_dataset
from mrcnn_trt.data import classmap
from mrcnn_trt.data.cityscapes import CityscapesDataset
from mrcnn_trt.data.coco import CocoDataset
from mrcnn_trt.data.synthetic import SyntheticShapesDataset, generate, write_dataset
from mrcnn_trt.errors import UserError

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COCO_SAMPLE = os.path.join(REPO, "..", "shared", "data", "coco-val2017-sample")
SEED = 7
N_COCO = 12
N_CS = 8

# shapes internal id -> Cityscapes internal id (circle->person 1, square->car 3, triangle->bicycle 8)
SHAPE_TO_CS_INTERNAL = {s: classmap.CITYSCAPES_LABEL_TO_INTERNAL[l] for s, l in classmap.SHAPES_TO_CITYSCAPES.items()}


def boxes_reference(masks):
    """Independent extract_bboxes: per mask, np.argwhere extents (+1)."""
    out = []
    for i in range(masks.shape[2]):
        p = np.argwhere(masks[:, :, i])
        out.append([0, 0, 0, 0] if len(p) == 0 else [p[:, 0].min(), p[:, 1].min(), p[:, 0].max() + 1,
                                                     p[:, 1].max() + 1])
    return np.array(out, dtype=np.int32).reshape(-1, 4)


@pytest.fixture(scope="module")
def coco_dir(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("shapes_coco"))
    write_dataset(d, "coco", N_COCO, seed=SEED, split="val", crowd_prob=0.15, show_progress=False)
    write_dataset(d, "coco", 4, seed=SEED, split="poly", segmentation="polygon", show_progress=False)
    return d


@pytest.fixture(scope="module")
def cs_dir(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("shapes_cs"))
    write_dataset(d, "cityscapes", N_CS, seed=SEED, split="val", crowd_prob=0.15, show_progress=False)
    return d


# ---------------------------------------------------------------------------- basics
def test_extract_bboxes_exclusive_and_empty():
    m = np.zeros((10, 12, 3), dtype=bool)
    m[2:5, 3:9, 0] = True
    m[9, 11, 1] = True
    got = extract_bboxes(m)
    assert got.dtype == np.int32
    assert got.tolist() == [[2, 3, 5, 9], [9, 11, 10, 12], [0, 0, 0, 0]]
    assert extract_bboxes(np.zeros((4, 4, 0), bool)).shape == (0, 4)


def test_load_rgb_image_conversions(tmp_path):
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (5, 7), dtype=np.uint8)
    rgba = rng.integers(0, 256, (5, 7, 4), dtype=np.uint8)
    g16 = rng.integers(0, 65536, (5, 7)).astype(np.uint16)
    Image.fromarray(gray).save(tmp_path / "g.png")
    Image.fromarray(rgba).save(tmp_path / "a.png")
    Image.fromarray(g16).save(tmp_path / "g16.png")
    Image.fromarray(gray).convert("P").save(tmp_path / "p.png")
    for name in ("g.png", "a.png", "g16.png", "p.png"):
        im = load_rgb_image(str(tmp_path / name))
        assert im.shape == (5, 7, 3) and im.dtype == np.uint8, name
    assert (load_rgb_image(str(tmp_path / "g.png")) == gray[:, :, None]).all()
    assert (load_rgb_image(str(tmp_path / "a.png")) == rgba[:, :, :3]).all()
    exp16 = np.rint(g16 / 257.0).astype(np.uint8)
    assert (load_rgb_image(str(tmp_path / "g16.png")) == exp16[:, :, None]).all()
    with pytest.raises(UserError):
        load_rgb_image(str(tmp_path / "missing.png"))
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(UserError):
        load_rgb_image(str(tmp_path / "bad.png"))


def test_image_folder_dataset(tmp_path):
    for i in range(3):
        Image.fromarray(np.full((4, 6, 3), i, np.uint8)).save(tmp_path / f"{i}.png")
    (tmp_path / "notes.txt").write_text("x")
    ds = open_dataset(str(tmp_path))
    assert isinstance(ds, ImageFolderDataset) and len(ds) == 3
    s = ds[2]
    assert s.image_id == "2.png" and s.masks.shape == (4, 6, 0) and s.class_ids.shape == (0,)
    assert (ds.load_image(1) == 1).all()
    with pytest.raises(IndexError):
        ds[3]


# ---------------------------------------------------------------------------- generator
def test_generator_deterministic_and_seed_dependent():
    a, b = generate(3, 5, "train"), generate(3, 5, "train")
    assert (a.image == b.image).all() and (a.masks == b.masks).all() and (a.class_ids == b.class_ids).all()
    c = generate(4, 5, "train")
    d = generate(3, 5, "val")
    assert not np.array_equal(a.image, c.image) and not np.array_equal(a.image, d.image)


def test_generator_instances_are_valid():
    areas, touches = [], 0
    for i in range(40):
        s = generate(11, i, "train", 320, 240, crowd_prob=0.1)
        h, w, g = s.masks.shape
        assert (h, w) == (240, 320) and s.image.shape == (240, 320, 3) and s.image.dtype == np.uint8
        assert 1 <= g <= 8
        assert set(s.class_ids.tolist()) <= {1, 2, 3}
        # later shapes occlude earlier ones: visible masks are disjoint
        assert s.masks.sum(axis=2).max() <= 1
        for j in range(g):
            m = s.masks[:, :, j]
            assert m.sum() >= 10
            areas.append(int(m.sum()))
            y1, x1, y2, x2 = extract_bboxes(m[:, :, None])[0]
            touches += int(y1 == 0 or x1 == 0 or y2 == h or x2 == w)
            # the painted shape differs from its surroundings (mask matches the picture)
            ring = np.zeros_like(m)
            ring[max(y1 - 3, 0):y2 + 3, max(x1 - 3, 0):x2 + 3] = True
            ring &= ~s.masks.any(axis=2)
            if ring.sum() > 20 and m.sum() > 20:
                diff = np.abs(s.image[m].mean(0) - s.image[ring].mean(0)).max()
                assert diff > 10
    assert min(areas) < 60 and max(areas) > 0.08 * 320 * 240  # tiny to large
    assert touches > 0  # some instances cross the border


def test_write_dataset_prefix_independent_of_n(tmp_path):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    write_dataset(a, "coco", 3, seed=1, split="val", show_progress=False)
    write_dataset(b, "coco", 5, seed=1, split="val", show_progress=False)
    for i in range(3):
        f = f"images/val_{i:06d}.png"
        assert filecmp.cmp(os.path.join(a, f), os.path.join(b, f), shallow=False)
    ja = json.load(open(os.path.join(a, "annotations", "instances_val.json")))
    jb = json.load(open(os.path.join(b, "annotations", "instances_val.json")))
    na = len(ja["annotations"])
    assert ja["annotations"] == jb["annotations"][:na]


# ---------------------------------------------------------------------------- COCO format
def test_synthetic_coco_files_match_generator(coco_dir):
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO

    coco = COCO(os.path.join(coco_dir, "annotations", "instances_val.json"))
    assert [(c["id"], c["name"]) for c in coco.loadCats(coco.getCatIds())] == [(1, "circle"), (2, "square"),
                                                                              (3, "triangle")]
    assert sorted(coco.getImgIds()) == list(range(1, N_COCO + 1))
    n_crowd = 0
    for img_id in coco.getImgIds():
        info = coco.imgs[img_id]
        assert (info["width"], info["height"]) == (320, 240)
        s = generate(SEED, img_id - 1, "val", crowd_prob=0.15)
        on_disk = np.array(Image.open(os.path.join(coco_dir, "images", info["file_name"])))
        assert (on_disk == s.image).all()
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[img_id], iscrowd=None))
        assert len(anns) == s.masks.shape[2]
        for j, ann in enumerate(anns):
            m = coco.annToMask(ann).astype(bool)
            assert (m == s.masks[:, :, j]).all()
            assert ann["area"] == m.sum()
            assert ann["category_id"] == s.class_ids[j]
            assert ann["iscrowd"] == int(s.crowd[j])
            y1, x1, y2, x2 = boxes_reference(m[:, :, None])[0]
            assert ann["bbox"] == [x1, y1, x2 - x1, y2 - y1]
            assert ann["bbox"] == mask_utils.toBbox(coco.annToRLE(ann)).tolist()
            n_crowd += ann["iscrowd"]
    assert n_crowd > 0


def test_synthetic_coco_polygons_decode_exactly(coco_dir):
    from pycocotools.coco import COCO

    coco = COCO(os.path.join(coco_dir, "annotations", "instances_poly.json"))
    n_poly = 0
    for img_id in coco.getImgIds():
        s = generate(SEED, img_id - 1, "poly")
        for j, ann in enumerate(coco.loadAnns(coco.getAnnIds(imgIds=[img_id]))):
            if isinstance(ann["segmentation"], list):
                n_poly += 1
                assert s.unoccluded[j]
            assert (coco.annToMask(ann).astype(bool) == s.masks[:, :, j]).all()
    assert n_poly > 0


def test_coco_dataset_reads_synthetic(coco_dir):
    ds = open_dataset(coco_dir, "val")
    assert isinstance(ds, CocoDataset)
    assert ds.class_names == SHAPES_CLASS_NAMES and ds.source_class_ids == {1: 1, 2: 2, 3: 3}
    assert sorted(ds.image_ids) == list(range(1, N_COCO + 1))
    mem = SyntheticShapesDataset(N_COCO, seed=SEED, split="val", crowd_prob=0.15)
    for i in range(len(ds)):
        s = ds[i]
        ref = mem[ds.image_ids[i] - 1]
        assert s.image.dtype == np.uint8 and s.image.shape == (240, 320, 3)
        assert s.masks.dtype == bool and s.class_ids.dtype == np.int32 and s.boxes.dtype == np.int32
        assert s.original_size == (240, 320) and s.path.endswith(".png") and os.path.isfile(s.path)
        assert (s.image == ref.image).all()
        assert (s.masks == ref.masks).all()
        assert s.class_ids.tolist() == ref.class_ids.tolist()  # crowds negative in both
        assert (s.boxes == boxes_reference(s.masks)).all()
    assert any((ds[i].class_ids < 0).any() for i in range(len(ds)))


def test_coco_dataset_original_image_order_and_class_subset(coco_dir):
    ann = os.path.join(coco_dir, "annotations", "instances_val.json")
    ds = CocoDataset(ann)
    from pycocotools.coco import COCO

    coco = COCO(ann)
    ids = []
    for c in sorted(coco.getCatIds()):
        ids.extend(coco.getImgIds(catIds=[c]))
    assert ds.image_ids == list(set(ids))
    sub = CocoDataset(ann, class_ids=[3])
    assert sub.class_names == ("BG", "triangle") and sub.source_class_ids == {1: 3}
    for s in sub:
        assert set(np.abs(s.class_ids).tolist()) == {1}
    with pytest.raises(UserError):
        CocoDataset(ann, class_ids=[99])


def test_coco_dataset_errors(tmp_path, coco_dir):
    with pytest.raises(UserError):
        CocoDataset(str(tmp_path / "nope.json"))
    with pytest.raises(UserError):
        CocoDataset.from_root(coco_dir, "test")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(Exception):
        CocoDataset(str(bad))


@pytest.mark.skipif(not os.path.isdir(COCO_SAMPLE), reason="../shared/data/coco-val2017-sample not present")
def test_coco_dataset_real_sample():
    from pycocotools.coco import COCO

    ann = os.path.join(COCO_SAMPLE, "instances_sample.json")
    ds = CocoDataset(ann)
    coco = COCO(ann)
    assert ds.image_dir == COCO_SAMPLE or os.path.samefile(ds.image_dir, COCO_SAMPLE)
    assert sorted(ds.image_ids) == [785, 40083, 196141, 197388]
    assert ds.class_names == ("BG", "person") and ds.source_class_ids == {1: 1}
    total = 0
    for s in ds:
        info = coco.imgs[s.image_id]
        assert s.original_size == (info["height"], info["width"])
        assert s.image.shape == (info["height"], info["width"], 3)
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[s.image_id], iscrowd=None))
        assert s.masks.shape[2] == len(anns)
        for j, a in enumerate(anns):
            assert isinstance(a["segmentation"], list)  # polygons
            assert (s.masks[:, :, j] == coco.annToMask(a).astype(bool)).all()
            # box from the mask vs the annotation's polygon box: within a pixel
            y1, x1, y2, x2 = s.boxes[j]
            bx, by, bw, bh = a["bbox"]
            assert abs(x1 - bx) <= 1 and abs(y1 - by) <= 1 and abs(x2 - (bx + bw)) <= 1.01 and abs(
                y2 - (by + bh)) <= 1.01
        assert (s.class_ids == 1).all()
        total += len(anns)
    assert total == 14


# ---------------------------------------------------------------------------- Cityscapes format
def test_synthetic_cityscapes_files(cs_dir):
    gts = []
    for root, _, files in os.walk(os.path.join(cs_dir, "gtFine", "val")):
        gts += [os.path.join(root, f) for f in files if f.endswith("_gtFine_instanceIds.png")]
    assert len(gts) == N_CS
    for p in gts:
        name = os.path.basename(p)
        city, seq, frame = name.split("_")[:3]
        assert os.path.basename(os.path.dirname(p)) == city and len(seq) == 6 and frame == "000019"
        im = Image.open(p)
        ids = np.array(im)
        assert ids.dtype == np.uint16
        labels = np.array(Image.open(p.replace("_instanceIds.png", "_labelIds.png")))
        assert labels.dtype == np.uint8
        exp = np.where(ids >= 1000, ids // 1000, ids)
        assert (labels == exp).all()
        assert set(np.unique(exp).tolist()) <= {7, 24, 26, 33}
        poly = json.load(open(p.replace("_instanceIds.png", "_polygons.json")))
        assert poly["imgWidth"] == 320 and poly["objects"][0]["label"] == "road"
        img = os.path.join(cs_dir, "leftImg8bit", "val", city, f"{city}_{seq}_{frame}_leftImg8bit.png")
        assert os.path.isfile(img)


def test_cityscapes_dataset_reads_synthetic(cs_dir):
    ds = open_dataset(cs_dir, "val")
    assert isinstance(ds, CityscapesDataset) and len(ds) == N_CS
    assert ds.class_names == CITYSCAPES_CLASS_NAMES
    assert ds.source_class_ids == {1: 24, 2: 25, 3: 26, 4: 27, 5: 28, 6: 31, 7: 32, 8: 33}
    n_group = 0
    for i in range(len(ds)):
        s = ds[i]
        idx = int(s.image_id.split("_")[1])
        assert s.image_id == f"synth{idx % 2}_{idx:06d}_000019"
        ref = generate(SEED, idx, "val", crowd_prob=0.15)
        assert (s.image == ref.image).all()
        # loader orders by instance id: compare as sets of (class, mask)
        exp = {}
        for j in range(ref.masks.shape[2]):
            cid = SHAPE_TO_CS_INTERNAL[int(ref.class_ids[j])]
            exp.setdefault(-cid if ref.crowd[j] else cid, []).append(ref.masks[:, :, j])
        got = {}
        for j in range(s.masks.shape[2]):
            got.setdefault(int(s.class_ids[j]), []).append(s.masks[:, :, j])
        assert sorted(got) == sorted(exp)
        for cid in exp:
            if cid > 0:
                a = sorted(m.tobytes() for m in got[cid])
                b = sorted(m.tobytes() for m in exp[cid])
                assert a == b
            else:  # group regions of one class merge into one region
                assert (np.any(got[cid], axis=0) == np.any(exp[cid], axis=0)).all()
                n_group += 1
        assert (s.boxes == boxes_reference(s.masks)).all()
    assert n_group > 0


def test_cityscapes_dataset_errors(tmp_path, cs_dir):
    with pytest.raises(UserError):
        CityscapesDataset(str(tmp_path), "val")
    with pytest.raises(UserError):
        CityscapesDataset(cs_dir, "train")


# ---------------------------------------------------------------------------- class maps, CLI
def test_classmaps():
    m = classmap.coco_to_cityscapes()
    assert {COCO_CLASS_NAMES[k]: v for k, v in m.items()} == {
        "person": 24, "bicycle": 33, "car": 26, "motorcycle": 32, "bus": 28, "train": 31, "truck": 27}
    assert 25 not in m.values()  # rider has no COCO class
    assert classmap.cityscapes_label_map(CITYSCAPES_CLASS_NAMES) == {1: 24, 2: 25, 3: 26, 4: 27, 5: 28, 6: 31,
                                                                     7: 32, 8: 33}
    assert classmap.cityscapes_label_map(SHAPES_CLASS_NAMES) == {1: 24, 2: 26, 3: 33}
    assert classmap.cityscapes_label_map(COCO_CLASS_NAMES) == m


def test_make_dataset_cli(tmp_path, capsys):
    from mrcnn_trt.data.cli import main

    out = str(tmp_path / "cs")
    assert main(["--format", "cityscapes", "--out", out, "--num-images", "3", "--seed", "2", "--size", "96x64",
                 "--split", "val", "--quiet"]) == 0
    ds = CityscapesDataset(out, "val")
    assert len(ds) == 3 and ds[0].image.shape == (64, 96, 3)
    assert "wrote 3 images" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        main(["--out", str(tmp_path / "x"), "--num-images", "0", "--quiet"])
    assert e.value.code == 2 and "error:" in capsys.readouterr().err
    assert main(["--format", "cityscapes", "--image-format", "jpg", "--out", str(tmp_path / "y"),
                 "--num-images", "1", "--quiet"]) == 2
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "z"), "--size", "big"])
    assert main(["--out", str(tmp_path / "j"), "--num-images", "2", "--image-format", "jpg", "--quiet"]) == 0
    ds = CocoDataset.from_root(str(tmp_path / "j"), "val")   # the default split, as in every command
    assert len(ds) == 2 and ds.image_path(0).endswith(".jpg")


def test_rerun_with_fewer_images_leaves_no_stale_files(tmp_path):
    for fmt in ("coco", "cityscapes"):
        d = str(tmp_path / fmt)
        write_dataset(d, fmt, 5, seed=0, split="val", size=(64, 48), show_progress=False)
        write_dataset(d, fmt, 2, seed=0, split="train", size=(64, 48), show_progress=False)
        write_dataset(d, fmt, 3, seed=1, split="val", size=(64, 48), show_progress=False)
        assert len(open_dataset(d, "val")) == 3 and len(open_dataset(d, "train")) == 2
        if fmt == "coco":
            assert sorted(os.listdir(os.path.join(d, "images"))) == [f"train_{i:06d}.png" for i in range(2)] + [
                f"val_{i:06d}.png" for i in range(3)]
