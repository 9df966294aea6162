"""Synthetic "shapes" instance-segmentation data, in memory or written in the exact
COCO or Cityscapes on-disk formats.

Each image has 1..``max_instances`` instances of circle / square / triangle
(:data:`mrcnn_trt.config.SHAPES_CLASS_NAMES`, internal ids 1..3) with random colours on
a textured, noisy background. Sizes range from ``min_size`` (6 px) to half the short
side (log-uniform); shapes may cross the border and overlap. Squares and triangles are
randomly rotated.

Geometry and occlusion (exact by construction):

- every shape is a polygon (circles: 12..64 vertices) in pixel-edge coordinates; its
  full mask is the polygon rasterized by pycocotools (``frPyObjects`` + ``decode``), so
  a COCO polygon annotation decodes to exactly the mask that was drawn;
- shapes are painted in order, later ones occlude earlier ones; an instance's mask is its
  *visible* part; a new shape is rejected if it would leave an earlier one with less
  than ``max(10 px, 35 %)`` of its in-image area visible, or if less than 40 % of its
  own area lies inside the image, so no annotated instance is tiny or sliver-like
  (apart from genuinely small shapes) and every painted shape is annotated.

Determinism: image ``i`` of split ``s`` with seed ``S`` depends only on ``(S, s, i)``
(``numpy.random.default_rng(SeedSequence([S, crc32(s), i]))``), not on the number of
images, and is identical across runs and machines.

On disk (:func:`write_dataset`):

- COCO: ``DIR/images/<split>_<i:06d>.png`` (or .jpg) and
  ``DIR/annotations/instances_<split>.json`` (image ids 1..N, category ids 1..3 =
  circle, square, triangle; ``segmentation`` compressed RLE, or with
  ``segmentation="polygon"`` a polygon for every instance that is unoccluded and inside
  the image and RLE for the others; ``area`` = mask pixels; ``bbox`` = mask extent
  ``[x, y, w, h]``; ``iscrowd``).
- Cityscapes: ``DIR/leftImg8bit/<split>/<city>/<city>_<i:06d>_000019_leftImg8bit.png``,
  ``DIR/gtFine/<split>/<city>/..._gtFine_instanceIds.png`` (16-bit, ``labelId*1000+k``,
  background = road 7, crowd/group regions = the plain label id), ``_gtFine_labelIds.png``
  and ``_gtFine_polygons.json`` (full shape polygons in drawing order; Cityscapes'
  own rasterizer (PIL) may differ from the PNGs by a pixel on edges). Shapes map to
  Cityscapes classes circle -> person (24), square -> car (26), triangle -> bicycle (33)
  (:data:`mrcnn_trt.data.classmap.SHAPES_TO_CITYSCAPES`); cities are ``synth0``,
  ``synth1``.
"""
from __future__ import annotations

import json
import math
import os
import re
import shutil
import zlib
from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np
from PIL import Image, PngImagePlugin

from mrcnn_trt.cli import progress
from mrcnn_trt.config import SHAPES_CLASS_NAMES
from mrcnn_trt.errors import UserError
from mrcnn_trt.fileio import write_bytes_atomic, write_json_atomic

from .base import Dataset, ImageId, Sample, extract_bboxes
from .cityscapes import IMAGE_SUFFIX, INSTANCE_SUFFIX, LABEL_SUFFIX, POLYGON_SUFFIX
from .classmap import CITYSCAPES_LABEL_NAMES, SHAPES_TO_CITYSCAPES

DEFAULT_SIZE = (320, 240)  # (width, height)
CITIES = ("synth0", "synth1")
ROAD_LABEL_ID = 7


@dataclass
class ShapesImage:
    """One generated image (see the module docstring)."""

    image: np.ndarray        # [H, W, 3] uint8
    masks: np.ndarray        # [H, W, G] bool, visible parts
    class_ids: np.ndarray    # [G] int32 in 1..3 (positive even for crowds)
    crowd: np.ndarray        # [G] bool
    polygons: List[List[float]]  # full polygons [x0, y0, x1, y1, ...], pixel-edge coordinates
    unoccluded: np.ndarray   # [G] bool: visible mask == full polygon mask, inside the image


def _rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), zlib.crc32(split.encode()), int(index)]))


def _polygon_mask(poly: List[float], h: int, w: int) -> np.ndarray:
    from pycocotools import mask as mask_utils

    rle = mask_utils.frPyObjects([poly], h, w)
    return mask_utils.decode(rle)[:, :, 0].astype(bool)


def _shoelace(poly: List[float]) -> float:
    x = np.asarray(poly[0::2])
    y = np.asarray(poly[1::2])
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def _shape_polygon(cls: int, cx: float, cy: float, size: float, angle: float) -> List[float]:
    if cls == 1:  # circle, diameter = size
        r, n = size / 2.0, int(np.clip(round(size * 0.8), 12, 64))
    elif cls == 2:  # square, side = size
        r, n = size / math.sqrt(2.0), 4
    else:  # equilateral triangle, side = size
        r, n = size / math.sqrt(3.0), 3
    t = angle + 2.0 * math.pi * np.arange(n) / n
    xs, ys = cx + r * np.cos(t), cy + r * np.sin(t)
    return [float(round(v, 2)) for xy in zip(xs, ys) for v in xy]


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    base = rng.uniform(0, 255, size=3)
    gh, gw = int(rng.integers(2, 9)), int(rng.integers(2, 9))
    low = rng.uniform(0, 255, size=(gh, gw, 3)).astype(np.uint8)
    low = np.asarray(Image.fromarray(low).resize((w, h), Image.BILINEAR), dtype=np.float32)
    mix = rng.uniform(0.2, 0.7)
    bg = ((1.0 - mix) * base).astype(np.float32)[None, None, :] + np.float32(mix) * low
    if rng.random() < 0.5:  # stripes / waves texture
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        theta = rng.uniform(0, math.pi)
        period = rng.uniform(4, 40)
        wave = np.sin((xx * math.cos(theta) + yy * math.sin(theta)) * 2 * math.pi / period)
        bg += (rng.uniform(5, 30) * rng.uniform(0.3, 1.0, size=3)).astype(np.float32) * wave[:, :, None]
    return bg.astype(np.float32)


def _pick_colour(rng: np.random.Generator, avoid: List[np.ndarray]) -> np.ndarray:
    best, best_d = None, -1.0
    for _ in range(12):
        c = rng.uniform(0, 255, size=3)
        d = min((float(np.linalg.norm(c - a)) for a in avoid), default=1e9)
        if d >= 90:
            return c
        if d > best_d:
            best, best_d = c, d
    return best


def generate_shapes_image(rng: np.random.Generator, width: int = DEFAULT_SIZE[0], height: int = DEFAULT_SIZE[1],
                          max_instances: int = 8, min_instances: int = 1, min_size: float = 6.0,
                          max_size: Optional[float] = None, crowd_prob: float = 0.0) -> ShapesImage:
    """Generate one image with its instances (see the module docstring)."""
    h, w = int(height), int(width)
    if max_size is None:
        max_size = min(h, w) / 2.0
    max_size = max(max_size, min_size)
    bg = _background(rng, h, w)
    n_target = int(rng.integers(min_instances, max_instances + 1))

    polys: List[List[float]] = []
    fulls: List[np.ndarray] = []
    visible: List[np.ndarray] = []
    in_image: List[int] = []
    classes: List[int] = []
    colours: List[np.ndarray] = []
    inside: List[bool] = []
    attempts = 0
    while len(polys) < n_target and (attempts < 12 * n_target or (len(polys) < min_instances and attempts < 1000)):
        attempts += 1
        cls = int(rng.integers(1, 4))
        size = float(math.exp(rng.uniform(math.log(min_size), math.log(max_size))))
        margin = 0.3 * size
        cx = float(rng.uniform(-margin, w + margin))
        cy = float(rng.uniform(-margin, h + margin))
        angle = float(rng.uniform(0, 2 * math.pi))
        poly = _shape_polygon(cls, cx, cy, size, angle)
        full = _polygon_mask(poly, h, w)
        area_in = int(full.sum())
        if area_in < max(10.0, 0.4 * _shoelace(poly)):
            continue
        ok = True
        new_visible = []
        for j in range(len(polys)):
            v = visible[j] & ~full
            if v.sum() < max(10.0, 0.35 * in_image[j]):
                ok = False
                break
            new_visible.append(v)
        if not ok:
            continue
        # colour: contrast with the background under the shape and the shapes it overlaps
        avoid = [bg[full].mean(axis=0)] + [colours[j] for j in range(len(polys)) if (fulls[j] & full).any()]
        colour = _pick_colour(rng, avoid)
        visible = new_visible
        xs, ys = np.asarray(poly[0::2]), np.asarray(poly[1::2])
        inside.append(bool(xs.min() >= 0 and ys.min() >= 0 and xs.max() <= w and ys.max() <= h))
        polys.append(poly)
        fulls.append(full)
        visible.append(full.copy())
        in_image.append(area_in)
        classes.append(cls)
        colours.append(colour)

    img = bg
    yy = xx = None
    for j in range(len(polys)):
        colour = colours[j]
        if rng.random() < 0.5:  # gentle shading across the shape
            if yy is None:
                yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
            g = rng.normal(0, 0.15, size=2)
            shade = 1.0 + g[0] * (xx / w - 0.5) + g[1] * (yy / h - 0.5)
            img[fulls[j]] = colour[None, :].astype(np.float32) * shade[fulls[j]][:, None]
        else:
            img[fulls[j]] = colour
    img += np.float32(rng.uniform(2, 10)) * rng.standard_normal(img.shape, dtype=np.float32)
    image = np.clip(img + 0.5, 0, 255).astype(np.uint8)

    g = len(polys)
    masks = np.stack(visible, axis=2) if g else np.zeros((h, w, 0), dtype=bool)
    crowd = rng.random(g) < crowd_prob if crowd_prob > 0 else np.zeros(g, dtype=bool)
    unoccluded = np.array([inside[j] and bool((visible[j] == fulls[j]).all()) for j in range(g)], dtype=bool)
    return ShapesImage(image=image, masks=masks, class_ids=np.array(classes, dtype=np.int32),
                       crowd=crowd.astype(bool), polygons=polys, unoccluded=unoccluded)


def generate(seed: int, index: int, split: str = "train", width: int = DEFAULT_SIZE[0],
             height: int = DEFAULT_SIZE[1], **kw) -> ShapesImage:
    """Image ``index`` of ``split`` for ``seed`` (deterministic)."""
    return generate_shapes_image(_rng(seed, split, index), width, height, **kw)


class SyntheticShapesDataset(Dataset):
    """In-memory shapes dataset (no files): item ``i`` is generated on the fly from
    ``(seed, split, i)``; crowds get negative ids; ``image_id`` is ``i + 1`` (as the
    COCO files written by :func:`write_dataset`)."""

    name = "shapes"

    def __init__(self, num_images: int, seed: int = 0, split: str = "train",
                 size: Tuple[int, int] = DEFAULT_SIZE, **kw):
        super().__init__(SHAPES_CLASS_NAMES, {1: 1, 2: 2, 3: 3})
        self.num_images, self.seed, self.split = int(num_images), int(seed), split
        self.width, self.height = int(size[0]), int(size[1])
        self.kw = kw

    def __len__(self) -> int:
        return self.num_images

    def image_path(self, i: int) -> str:
        return ""

    def image_id(self, i: int) -> ImageId:
        return i + 1

    def generate(self, i: int) -> ShapesImage:
        return generate(self.seed, self._check_index(i), self.split, self.width, self.height, **self.kw)

    def load_image(self, i: int) -> np.ndarray:
        return self.generate(i).image

    def __getitem__(self, i: int) -> Sample:
        i = self._check_index(i)
        s = self.generate(i)
        ids = np.where(s.crowd, -s.class_ids, s.class_ids).astype(np.int32)
        return Sample(image=s.image, masks=s.masks, class_ids=ids, boxes=extract_bboxes(s.masks),
                      image_id=i + 1, path="", original_size=(self.height, self.width))


# ---------------------------------------------------------------------------- writers
#: written into every generated image (PNG "Software" text, JPEG comment), so tools can tell
#: synthetic images from real photos (the shipped shapes model only knows the former)
SYNTHETIC_MARK = "mrcnn-make-dataset"


def _save_png(path: str, arr: np.ndarray, mark: bool = False) -> None:
    info = None
    if mark:
        info = PngImagePlugin.PngInfo()
        info.add_text("Software", SYNTHETIC_MARK)
    Image.fromarray(arr).save(path, compress_level=1, pnginfo=info)


def _save_image(path: str, arr: np.ndarray, image_format: str) -> None:
    """A generated RGB image, marked as synthetic."""
    if image_format == "png":
        _save_png(path, arr, mark=True)
    else:
        Image.fromarray(arr).save(path, quality=95, comment=SYNTHETIC_MARK.encode())


def is_synthetic_image(path: str) -> bool:
    """True for an image written by ``mrcnn-make-dataset`` (reads the header only)."""
    if not os.path.isfile(path):   # a FIFO would block the open
        return False
    try:
        with Image.open(path) as im:
            mark = im.info.get("Software") or im.info.get("comment") or b""
    except Exception:  # noqa: BLE001 - any unreadable file is not ours
        return False
    if isinstance(mark, bytes):
        mark = mark.decode("latin-1")
    return mark == SYNTHETIC_MARK


def _coco_annotations(s: ShapesImage, image_id: int, first_ann_id: int, polygons: bool) -> List[dict]:
    from pycocotools import mask as mask_utils

    anns = []
    for j in range(s.masks.shape[2]):
        m = np.asfortranarray(s.masks[:, :, j].astype(np.uint8))
        rle = mask_utils.encode(m)
        x, y, bw, bh = (int(v) for v in mask_utils.toBbox(rle))
        if polygons and s.unoccluded[j] and not s.crowd[j]:
            segm = [list(s.polygons[j])]
        else:
            segm = {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}
        anns.append({
            "id": first_ann_id + j, "image_id": image_id, "category_id": int(s.class_ids[j]),
            "segmentation": segm, "area": float(mask_utils.area(rle)), "bbox": [x, y, bw, bh],
            "iscrowd": int(s.crowd[j]),
        })
    return anns


def _cityscapes_files(s: ShapesImage) -> Tuple[np.ndarray, np.ndarray, dict]:
    """(instanceIds uint16, labelIds uint8, polygons json) of one image."""
    h, w = s.image.shape[:2]
    inst = np.full((h, w), ROAD_LABEL_ID, dtype=np.uint16)
    labels = np.full((h, w), ROAD_LABEL_ID, dtype=np.uint8)
    counters = {}
    objects = [{"label": "road", "polygon": [[0, 0], [w, 0], [w, h], [0, h]]}]
    for j in range(s.masks.shape[2]):
        lid = SHAPES_TO_CITYSCAPES[int(s.class_ids[j])]
        m = s.masks[:, :, j]
        if s.crowd[j]:
            inst[m] = lid
        else:
            k = counters.get(lid, 0)
            counters[lid] = k + 1
            inst[m] = lid * 1000 + k
        labels[m] = lid
        name = CITYSCAPES_LABEL_NAMES[lid] + ("group" if s.crowd[j] else "")
        p = s.polygons[j]
        objects.append({"label": name, "polygon": [[p[i], p[i + 1]] for i in range(0, len(p), 2)]})
    return inst, labels, {"imgHeight": h, "imgWidth": w, "objects": objects}


def _remove_previous(out: str, fmt: str, split: str) -> None:
    """Delete files an earlier run wrote for this split (only our own names: COCO
    ``images/<split>_NNNNNN.png|jpg``; Cityscapes city folders ``synth0``/``synth1``), so a
    smaller rerun leaves no stale images behind."""
    if fmt == "coco":
        img_dir = os.path.join(out, "images")
        if os.path.isdir(img_dir):
            pat = re.compile(re.escape(split) + r"_\d{6}\.(png|jpg)$")
            for f in os.listdir(img_dir):
                if pat.match(f) and is_synthetic_image(os.path.join(img_dir, f)):   # never a real image
                    os.remove(os.path.join(img_dir, f))
    else:
        for top in ("leftImg8bit", "gtFine"):
            for city in CITIES:
                d = os.path.join(out, top, split, city)
                if os.path.isdir(d):
                    shutil.rmtree(d)


def write_dataset(out: str, fmt: str = "coco", num_images: int = 100, seed: int = 0, split: str = "train",
                  size: Tuple[int, int] = DEFAULT_SIZE, image_format: str = "png", segmentation: str = "rle",
                  show_progress: bool = True, **gen_kw) -> dict:
    """Write ``num_images`` shapes images to ``out`` in COCO or Cityscapes layout.

    Returns a summary dict (paths, counts). Files that an earlier run wrote for the same
    split are removed first (see :func:`_remove_previous`); the COCO json is written
    atomically after all images.
    """
    if fmt not in ("coco", "cityscapes"):
        raise UserError(f"unknown format {fmt!r}: use coco or cityscapes")
    if image_format not in ("png", "jpg"):
        raise UserError(f"unknown image format {image_format!r}: use png or jpg")
    if fmt == "cityscapes" and image_format != "png":
        raise UserError("Cityscapes images are PNG (leftImg8bit); --image-format jpg is for COCO only")
    if segmentation not in ("rle", "polygon"):
        raise UserError(f"unknown segmentation {segmentation!r}: use rle or polygon")
    if num_images < 1:
        raise UserError("--num-images must be >= 1")
    w, h = int(size[0]), int(size[1])
    if w < 32 or h < 32:
        raise UserError(f"image size {w}x{h} is too small (at least 32x32)")
    if "_" in split or os.sep in split or not split:
        raise UserError(f"split name {split!r} must be non-empty without '_' or '/'")

    _remove_previous(out, fmt, split)
    it = range(num_images)
    if show_progress:
        it = progress(it, total=num_images, desc=f"shapes {fmt}/{split}", unit="img")
    n_inst = 0
    if fmt == "coco":
        img_dir = os.path.join(out, "images")
        os.makedirs(img_dir, exist_ok=True)
        images, anns = [], []
        for i in it:
            s = generate(seed, i, split, w, h, **gen_kw)
            name = f"{split}_{i:06d}.{image_format}"
            path = os.path.join(img_dir, name)
            _save_image(path, s.image, image_format)
            images.append({"id": i + 1, "file_name": name, "width": w, "height": h})
            anns.extend(_coco_annotations(s, i + 1, len(anns) + 1, segmentation == "polygon"))
            n_inst += s.masks.shape[2]
        ann_file = os.path.join(out, "annotations", f"instances_{split}.json")
        data = {
            "info": {"description": "mrcnn-trt synthetic shapes", "version": "1.0",
                     "seed": int(seed), "split": split},
            "licenses": [],
            "images": images,
            "annotations": anns,
            "categories": [{"id": i, "name": n, "supercategory": "shape"}
                           for i, n in enumerate(SHAPES_CLASS_NAMES) if i > 0],
        }
        write_bytes_atomic(ann_file, json.dumps(data, separators=(",", ":")).encode())
        return {"format": "coco", "root": out, "annotation_file": ann_file, "image_dir": img_dir,
                "images": num_images, "instances": n_inst}

    for i in it:
        s = generate(seed, i, split, w, h, **gen_kw)
        city = CITIES[i % len(CITIES)]
        stem = f"{city}_{i:06d}_000019"
        img_dir = os.path.join(out, "leftImg8bit", split, city)
        gt_dir = os.path.join(out, "gtFine", split, city)
        os.makedirs(img_dir, exist_ok=True)
        os.makedirs(gt_dir, exist_ok=True)
        inst, labels, polys = _cityscapes_files(s)
        _save_image(os.path.join(img_dir, stem + IMAGE_SUFFIX), s.image, "png")
        _save_png(os.path.join(gt_dir, stem + INSTANCE_SUFFIX), inst)
        _save_png(os.path.join(gt_dir, stem + LABEL_SUFFIX), labels)
        write_json_atomic(os.path.join(gt_dir, stem + POLYGON_SUFFIX), polys)
        n_inst += s.masks.shape[2]
    return {"format": "cityscapes", "root": out, "split": split, "images": num_images, "instances": n_inst}
