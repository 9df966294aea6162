"""Pictures people can read (mrcnn_trt.visualize and the report's gallery tiles): labels
inside the picture and not overlapping each other on crowded and tiny images, a
TrueType font sized to the picture, outlines and missed-object marks that survive a
128 px thumbnail, and class names of the evaluated dataset."""
import itertools
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import ImageFont

from mrcnn_trt import visualize as V


def detections(boxes, class_ids=None, scores=None, hw=(240, 320)):
    """A ``detect`` dict with rectangular masks for ``boxes`` ``(y1, x1, y2, x2)``."""
    n = len(boxes)
    masks = np.zeros(hw + (n,), np.uint8)
    for i, (y1, x1, y2, x2) in enumerate(boxes):
        masks[y1:y2, x1:x2, i] = 1
    return {"rois": np.array(boxes, np.int32).reshape(n, 4),
            "class_ids": np.array(class_ids if class_ids is not None else [1 + i % 3 for i in range(n)], np.int32),
            "scores": np.array(scores if scores is not None else np.linspace(0.99, 0.5, n), np.float32),
            "masks": masks}


def assert_readable_layout(labels, height, width):
    labels = [lab for lab in labels if lab.rect is not None]
    for lab in labels:
        x1, y1, x2, y2 = lab.rect
        assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height, (lab.text, lab.rect)
    for a, b in itertools.combinations(labels, 2):
        assert not V._overlaps(a.rect, b.rect), (a.text, a.rect, b.text, b.rect)


NAMES = ["BG", "circle", "square", "triangle"]


def test_crowded_labels_do_not_overlap_and_stay_inside():
    rng = np.random.default_rng(0)
    boxes = []
    for _ in range(24):      # a crowd in the top-right corner, boxes touching the right edge
        y1, x1 = int(rng.integers(0, 60)), int(rng.integers(230, 300))
        boxes.append((y1, x1, y1 + int(rng.integers(8, 40)), min(320, x1 + int(rng.integers(8, 60)))))
    image = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
    r = detections(boxes)
    scale, labels = V.label_layout(image.shape, r, NAMES)
    assert scale == 2 and len(labels) == 24 and all(lab.rect is not None for lab in labels)   # room for all
    assert_readable_layout(labels, 480, 640)
    assert any(lab.leader for lab in labels)           # crowded: some labels moved away, with a leader line
    best = labels[int(np.argmax(r["scores"]))]
    assert not best.leader and V._overlaps(best.rect, (best.box[0], best.box[1] - 1, best.box[2], best.box[3] + 1))
    pic = np.asarray(V.draw_detections(image, r, NAMES))
    assert pic.shape == (480, 640, 3)
    for lab in labels:   # the picture has every label box where the layout says (dark background, corners free)
        x1, y1, x2, y2 = lab.rect
        assert tuple(pic[y1, x1]) == V.LABEL_BG and tuple(pic[y2 - 1, x2 - 1]) == V.LABEL_BG, lab.text
        inside = pic[y1:y2, x1:x2].reshape(-1, 3)
        text = (np.abs(inside.astype(int) - np.array(V.text_color(lab.color))).max(axis=1) < 60).sum()
        assert text > 5, lab.text                       # its text in the detection's colour (lightened)


def test_the_reported_case_overlap_and_right_edge():
    # "circle 0.86" hidden under "triangle 0.61": two objects side by side, the second at the right edge
    boxes = [(100, 250, 130, 290), (104, 262, 134, 320)]
    r = detections(boxes, class_ids=[1, 3], scores=[0.86, 0.61])
    scale, labels = V.label_layout((240, 320, 3), r, NAMES)
    assert [lab.text for lab in labels] == ["circle 0.86", "triangle 0.61"]
    assert_readable_layout(labels, 240 * scale, 320 * scale)


@pytest.mark.parametrize("hw", [(24, 32), (48, 20), (8, 8)])
def test_tiny_images_are_enlarged_and_long_labels_shortened(hw):
    h, w = hw
    boxes = [(0, 0, h // 2, w // 2), (h // 4, w // 4, h, w), (1, 1, h - 1, w - 1)]
    names = ["BG", "a very long class name that cannot fit", "x", "y"]
    r = detections(boxes, class_ids=[1, 2, 3], hw=hw)
    scale, labels = V.label_layout((h, w, 3), r, names)
    assert scale == V.MAX_SCALE
    assert_readable_layout(labels, h * scale, w * scale)
    assert labels[0].text.endswith("…")
    # the best score always gets a label; in an 8x8 image (a 32x32 picture) not all fit: the rest are left out
    assert labels[0].rect is not None
    assert (sum(lab.rect is None for lab in labels) > 0) == (hw == (8, 8))
    pic = V.draw_detections(np.zeros((h, w, 3), np.uint8), r, names)
    assert pic.size == (w * scale, h * scale)


def test_font_is_truetype_and_sized_to_the_picture():
    f = V.label_font(V.font_size(480, 640))
    assert isinstance(f, ImageFont.FreeTypeFont) and f.size == 14 and "DejaVu" in f.getname()[0]
    assert V.font_size(1024, 2048) == 28 and V.font_size(100, 100) == 11
    # on the synthetic 320x240 images a label is about 9 original pixels tall, not 12+ over 6-px objects
    scale, labels = V.label_layout((240, 320, 3), detections([(10, 10, 30, 30)]), NAMES)
    height = labels[0].rect[3] - labels[0].rect[1]
    assert height / scale < 12
    assert V.display_scale(1024, 2048) == 1 and V.display_scale(240, 320) == 2


def test_label_text_is_light_enough_on_the_dark_box():
    for c in V.colors(12):
        r, g, b = V.text_color(c)
        assert 0.299 * r + 0.587 * g + 0.114 * b >= 149
    assert V.text_color((255, 255, 0)) == (255, 255, 0)       # already light: unchanged


def test_outline_thickness_and_halo():
    img = np.full((60, 60, 3), 255.0, np.float32)
    m = np.zeros((60, 60), bool)
    m[10:50, 10:50] = True
    V.blend_mask(img, m, (255, 0, 0), alpha=0.0, thickness=3, halo=1)
    red = (img == [255, 0, 0]).all(axis=2)
    assert red[10:13, 10:50].all() and red[47:50, 10:50].all() and not red[13:47, 13:47].any()
    black = (img == 0).all(axis=2)
    assert black[9, 10:50].all() and black[50, 10:50].all() and black.sum() == 42 * 42 - 40 * 40
    assert not (black & m).any()


def _miss_case(image, box):
    from pycocotools import mask as mask_utils

    x, y, w, h = box
    m = np.zeros(image.shape[:2], np.uint8)
    m[y:y + h, x:x + w] = 1
    rle = mask_utils.encode(np.asfortranarray(m))
    data = SimpleNamespace(gts=[{"bbox": [x, y, w, h], "rle": rle, "area": float(w * h)}], dets=[])
    return data, SimpleNamespace(kind="Miss", det=None, gt=0, score=0.0)


@pytest.mark.parametrize("background", ["orange", "texture"])
def test_missed_object_survives_the_128px_tile(background):
    """A large missed object (900x700 crop -> 128 px) of the marker's own colour, or on a busy
    texture: its outline, halo and hatching are still there in the tile."""
    from mrcnn_trt.eval.report.galleries import MISS_COLOR, TILE, _tile

    rng = np.random.default_rng(1)
    if background == "orange":
        image = np.empty((1000, 1200, 3), np.uint8)
        image[:] = MISS_COLOR
    else:
        image = rng.integers(0, 255, (1000, 1200, 3), dtype=np.uint8)
    box = (200, 150, 700, 560)
    data, case = _miss_case(image, box)
    tile = np.asarray(_tile(image, data, case)).astype(int)
    assert tile.shape[1] == TILE
    pic = tile[:TILE]
    # where the object's border lands in the tile
    crop_w = 700 * 1.5       # 25 % margins on each side
    f = TILE / max(crop_w, 560 * 1.5)
    ox = (TILE - round(crop_w * f)) // 2
    oy = (TILE - round(560 * 1.5 * f)) // 2
    x1, y1 = ox + round(175 * f), oy + round(140 * f)
    x2, y2 = ox + round(875 * f), oy + round(700 * f)
    halo = (np.abs(pic).max(axis=2) < 30)
    orange = (np.abs(pic - np.array(MISS_COLOR)).max(axis=2) < 40)
    # the dark halo runs along the top and left border (within 2 px of the expected line)
    top = halo[max(0, y1 - 2):y1 + 2, x1 + 3:x2 - 3].any(axis=0).mean()
    left = halo[y1 + 3:y2 - 3, max(0, x1 - 2):x1 + 2].any(axis=1).mean()
    assert top > 0.9 and left > 0.9, (top, left)
    # the orange outline inside it
    assert orange[y1:y1 + 4, x1 + 3:x2 - 3].any(axis=0).mean() > 0.9
    if background == "texture":
        # hatching: inside the object, orange on about half of the pixels (stripes), not a faint tint
        inner = orange[y1 + 6:y2 - 6, x1 + 6:x2 - 6].mean()
        assert 0.25 < inner < 0.75, inner


def test_picture_class_names_are_the_evaluated_dataset_names():
    from mrcnn_trt.data.classmap import shapes_to_cityscapes
    from mrcnn_trt.eval.evaluate import picture_class_names

    cs = SimpleNamespace(label_map=shapes_to_cityscapes())
    assert picture_class_names(cs, NAMES) == ["BG", "person", "car", "bicycle"]
    coco = SimpleNamespace(class_map={1: 7, 2: 9}, coco=SimpleNamespace(cats={7: {"name": "ring"}, 9: {"name": "box"}}))
    assert picture_class_names(coco, NAMES) == ["BG", "ring", "box", "triangle"]
    assert picture_class_names(SimpleNamespace(), NAMES) == NAMES


def test_losses_legends_cover_no_curve(tmp_path):
    """losses.png: each legend lies outside its plotting area (it covered the end of the curves)."""
    from mrcnn_trt.train.losses import LOSS_NAMES
    from mrcnn_trt.train.loop import losses_figure, plot_losses

    steps = [{"step": i, **{k: 1.0 / i for k in ("loss",) + LOSS_NAMES}} for i in range(1, 40)]
    hist = {"steps": steps, "epochs": [{"epoch": e, "train": {"loss": 1.0 / e}, "val": {"loss": 1.2 / e}}
                                       for e in (1, 2, 3)]}
    fig = losses_figure(hist)
    fig.canvas.draw()
    for ax in fig.axes:
        legend, area = ax.get_legend().get_window_extent(), ax.get_window_extent()
        assert legend.x0 >= area.x1 and not legend.overlaps(area)
        assert fig.bbox.contains(legend.x1 - 1, legend.y0 + 1)          # and inside the picture
    assert all(float(t).is_integer() for t in fig.axes[1].get_xticks())
    plot_losses(hist, str(tmp_path / "losses.png"))
    assert (tmp_path / "losses.png").read_bytes()[:4] == b"\x89PNG"
