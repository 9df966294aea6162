"""The report's galleries: per class, crops of the highest-scoring false positives
and of the largest missed objects, drawn at the tile's own size so outlines and the
missed-object hatching survive the shrinking.
"""
from __future__ import annotations

import math
import os
from typing import Callable, Dict, List, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw

from mrcnn_trt.fileio import atomic_path
from mrcnn_trt.visualize import blend_mask, fit_text, label_font, resize_mask

from .document import Figure


# ----------------------------------------------------------------------------- galleries
TILE = 128
CAPTION_H = 18
CAPTION_PX = 11
FP_COLOR = (230, 40, 40)
GT_COLOR = (40, 200, 80)
MISS_COLOR = (255, 150, 0)


def _crop_box(boxes: Sequence[Sequence[float]], h: int, w: int) -> Tuple[int, int, int, int]:
    """Union of ``[x, y, w, h]`` boxes with a 25 % margin (at least 8 px), clipped: ``(x1, y1, x2, y2)``."""
    x1 = min(b[0] for b in boxes)
    y1 = min(b[1] for b in boxes)
    x2 = max(b[0] + b[2] for b in boxes)
    y2 = max(b[1] + b[3] for b in boxes)
    mx, my = max(8.0, 0.25 * (x2 - x1)), max(8.0, 0.25 * (y2 - y1))
    x1, y1 = int(max(0, math.floor(x1 - mx))), int(max(0, math.floor(y1 - my)))
    x2, y2 = int(min(w, math.ceil(x2 + mx))), int(min(h, math.ceil(y2 + my)))
    return x1, y1, max(x2, x1 + 1), max(y2, y1 + 1)


def _tile(image: np.ndarray, data, case):
    """One gallery tile: the crop around the case scaled to :data:`TILE` px, its masks drawn
    at the tile's own resolution (so outlines keep their thickness however much the crop
    shrinks: 2 px in colour with a 1 px black halo; a missed object also hatched in
    orange), and a caption."""
    from pycocotools import mask as mask_utils

    h, w = image.shape[:2]
    det = data.dets[case.det] if case.det is not None else None
    gt = data.gts[case.gt] if case.gt is not None else None
    boxes = [x["bbox"] for x in (det, gt) if x is not None]
    x1, y1, x2, y2 = _crop_box(boxes, h, w)
    pic = Image.fromarray(np.ascontiguousarray(image[y1:y2, x1:x2, :3]).astype(np.uint8))
    f = TILE / max(pic.size)
    size = (max(1, round(pic.width * f)), max(1, round(pic.height * f)))
    # shrink smoothly; enlarge small objects with visible pixels
    pic = pic.resize(size, Image.BILINEAR if f < 1 else Image.NEAREST)
    crop = np.asarray(pic, dtype=np.float32).copy()
    if gt is not None:
        m = resize_mask(mask_utils.decode(gt["rle"])[y1:y2, x1:x2], size[1], size[0])
        if case.kind == "Miss":
            blend_mask(crop, m, MISS_COLOR, 0.75, thickness=3, halo=1, hatched=True)
        else:
            blend_mask(crop, m, GT_COLOR, 0.0, thickness=2, halo=1)
    if det is not None and det["rle"] is not None:
        m = resize_mask(mask_utils.decode(det["rle"])[y1:y2, x1:x2], size[1], size[0])
        blend_mask(crop, m, FP_COLOR, 0.45, thickness=2, halo=1)
    pic = Image.fromarray(crop.clip(0, 255).astype(np.uint8))
    tile = Image.new("RGB", (TILE, TILE + CAPTION_H), (255, 255, 255))
    tile.paste(pic, ((TILE - pic.width) // 2, (TILE - pic.height) // 2))
    draw = ImageDraw.Draw(tile)
    font = label_font(CAPTION_PX, bold=False)
    draw.text((3, TILE + 3), fit_text(_case_caption(data, case), font, TILE - 6), fill=(20, 20, 20), font=font)
    return tile


def _case_caption(data, case) -> str:
    if case.kind == "Miss":
        return f"missed, {int(data.gts[case.gt]['area'])} px"
    if case.kind == "Cls":
        return f"is {data.class_name(case.other_class)} {case.score:.2f}"
    if case.kind in ("Loc", "Both"):
        return f"{case.kind.lower()} IoU {case.iou:.2f} {case.score:.2f}"
    return f"{case.kind.lower()} {case.score:.2f}"


def write_galleries(data, tide, load_image: Callable[[object], np.ndarray], files_dir: str,
                    per_class: int = 6) -> List[Tuple[str, str, Figure]]:
    """Per class: the ``per_class`` highest-scoring false positives and the largest missed
    objects, as JPEG strips under ``files_dir``; returns ``(class name, kind, Figure)``."""
    picks: Dict[Tuple[str, int], list] = {}
    for case in tide.cases:
        key = ("miss" if case.kind == "Miss" else "fp", case.category_id)
        picks.setdefault(key, []).append(case)
    for key, cases in picks.items():
        if key[0] == "fp":
            cases.sort(key=lambda c: -c.score)
        else:
            cases.sort(key=lambda c: -data.gts[c.gt]["area"])
        del cases[per_class:]
    by_image: Dict[object, list] = {}
    for key, cases in picks.items():
        for n, c in enumerate(cases):
            by_image.setdefault(c.image_id, []).append((key, n, c))
    tiles: Dict[Tuple[str, int], dict] = {k: {} for k in picks}
    for image_id, jobs in by_image.items():
        image = load_image(image_id)
        for key, n, c in jobs:
            tiles[key][n] = _tile(image, data, c)
    out = []
    order = sorted(picks, key=lambda k: (list(data.classes).index(k[1]) if k[1] in data.classes else 1e9,
                                         k[0] != "fp"))
    for kind, cid in order:
        ts = [tiles[(kind, cid)][n] for n in sorted(tiles[(kind, cid)])]
        strip = Image.new("RGB", (len(ts) * (TILE + 4), TILE + CAPTION_H), (255, 255, 255))
        for n, t in enumerate(ts):
            strip.paste(t, (n * (TILE + 4), 0))
        name = data.class_name(cid)
        fname = f"gallery_{kind}_{_slug(name)}.jpg"
        with atomic_path(os.path.join(files_dir, fname)) as tmp:
            strip.save(tmp, format="JPEG", quality=88)
        what = "highest-scoring false positives" if kind == "fp" else "largest missed objects"
        out.append((name, kind, Figure(fname, f"{name}: {what} ({len(ts)})")))
    return out


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name.lower())
