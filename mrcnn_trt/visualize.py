"""Draw detections (masks, boxes, labels) on an image and save a PNG.

    from mrcnn_trt.visualize import draw_detections
    draw_detections(image, result, class_names).save("x.png")

Pictures people can read:

- small images are enlarged by an integer factor (:func:`display_scale`) so that the
  labels can be small relative to the objects and still legible; the picture of a
  320x240 image is 640x480. Coordinates in the result dicts stay in original pixels;
- labels use a scalable TrueType font (DejaVu Sans, shipped with matplotlib) sized to
  the picture (:func:`font_size`), on a dark box, and are placed without overlapping
  each other and inside the picture (:func:`place_labels`: the highest score first,
  each at the first free spot among above / inside / below its box, else at the
  nearest free spot of the picture with a leader line to its box);
- masks get an outline of a thickness that scales with the picture and a dark halo
  around it, so an outline stays visible on an object of its own colour and after
  a thumbnail shrinks the picture (:func:`blend_mask`).
"""
from __future__ import annotations

import colorsys
import functools
import importlib.util
import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from numpy.lib.stride_tricks import sliding_window_view

#: pictures are enlarged (integer factor, at most MAX_SCALE) until their longer side is at least this
MIN_DISPLAY_SIDE = 640
MAX_SCALE = 4
LABEL_BG = (16, 16, 16)
HALO = (0, 0, 0)

Rect = Tuple[int, int, int, int]     # (x1, y1, x2, y2), x2/y2 exclusive, picture pixels


def colors(n: int, seed: int = 0):
    """n distinct bright colours (evenly spaced hues, shuffled deterministically)."""
    hsv = [(i / max(n, 1), 0.9, 1.0) for i in range(n)]
    rgb = [tuple(int(255 * c) for c in colorsys.hsv_to_rgb(*h)) for h in hsv]
    rng = np.random.default_rng(seed)
    rng.shuffle(rgb)
    return rgb


def text_color(color) -> Tuple[int, int, int]:
    """``color`` lightened (towards white) until its luminance is at least 150 of 255, so a
    dark hue (deep blue, purple) stays readable on the dark label box; light colours unchanged."""
    r, g, b = (float(c) for c in color[:3])
    y = 0.299 * r + 0.587 * g + 0.114 * b
    if y >= 150:
        return int(r), int(g), int(b)
    t = (150 - y) / (255 - y)
    return tuple(int(round(c + (255 - c) * t)) for c in (r, g, b))   # type: ignore[return-value]


# ----------------------------------------------------------------------------- fonts and sizes
def _font_candidates(bold: bool) -> List[str]:
    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    paths = []
    spec = importlib.util.find_spec("matplotlib")
    if spec is not None and spec.submodule_search_locations:
        for d in spec.submodule_search_locations:
            paths.append(os.path.join(d, "mpl-data", "fonts", "ttf", name))
    paths.append(os.path.join("/usr/share/fonts/truetype/dejavu", name))
    return paths


@functools.lru_cache(maxsize=64)
def label_font(size: int, bold: bool = True):
    """DejaVu Sans (matplotlib's copy, else the system's) at ``size`` pixels; Pillow's own
    scalable default font if neither is there; its bitmap font as the last resort."""
    for path in _font_candidates(bold):
        if os.path.isfile(path):
            try:
                return ImageFont.truetype(path, size)
            except OSError:
                pass
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):   # Pillow < 10.1 or no FreeType
        return ImageFont.load_default()


def display_scale(height: int, width: int) -> int:
    """Integer enlargement of an ``height`` x ``width`` image for its picture: 1 for images
    whose longer side is at least :data:`MIN_DISPLAY_SIDE`, else up to :data:`MAX_SCALE`."""
    side = max(int(height), int(width), 1)
    return int(min(MAX_SCALE, max(1, -(-MIN_DISPLAY_SIDE // side))))


def font_size(height: int, width: int) -> int:
    """Label font size (pixels) for a picture of ``height`` x ``width``: 1/45 of the longer
    side, between 11 and 28."""
    return int(np.clip(round(max(height, width) / 45.0), 11, 28))


def line_width(height: int, width: int) -> int:
    """Box and outline thickness (pixels) for a picture: 2 up to 800 px, then 1 per 400 px."""
    return int(max(2, round(max(height, width) / 400.0)))


# ----------------------------------------------------------------------------- masks
def _square_filter(mask: np.ndarray, px: int, reduce) -> np.ndarray:
    """``reduce`` (np.all: erosion, np.any: dilation) over the (2 px + 1)^2 square around each
    pixel, outside the array counting as empty; separable: rows, then columns."""
    k = 2 * px + 1
    padded = np.pad(mask, px, constant_values=False)
    rows = reduce(sliding_window_view(padded, k, axis=1), axis=-1)
    return reduce(sliding_window_view(rows, k, axis=0), axis=-1)


def _erode(mask: np.ndarray, px: int) -> np.ndarray:
    return mask if px <= 0 else _square_filter(mask, px, np.all)


def _dilate(mask: np.ndarray, px: int) -> np.ndarray:
    return mask if px <= 0 else _square_filter(mask, px, np.any)


def blend_mask(image: np.ndarray, mask: np.ndarray, color, alpha: float = 0.5, thickness: int = 1,
               halo: int = 0, hatched: bool = False) -> np.ndarray:
    """Draw ``mask`` ``[H, W]`` (non-zero = inside) on ``image`` ``[H, W, 3] float32`` (in
    place) and return ``image``: the inside tinted with ``color`` at ``alpha`` (only on
    diagonal stripes, 4 px on / 4 px off, when ``hatched``: a pattern no object has), an outline of
    ``thickness`` pixels in full colour on the inner side of the border, and ``halo``
    pixels of black just outside it (the outline stays visible on any background)."""
    full = mask.astype(bool)
    ys, xs = np.nonzero(full.any(axis=1))[0], np.nonzero(full.any(axis=0))[0]
    if ys.size == 0:
        return image
    # work in the mask's bounding box (plus the halo): the filters cost per pixel
    g = max(halo, 0) + 1
    y1, y2 = max(0, ys[0] - g), min(full.shape[0], ys[-1] + 1 + g)
    x1, x2 = max(0, xs[0] - g), min(full.shape[1], xs[-1] + 1 + g)
    m = full[y1:y2, x1:x2]
    view = image[y1:y2, x1:x2]
    col = np.array(color, dtype=np.float32)
    if hatched:
        yy, xx = np.mgrid[y1:y2, x1:x2]
        tint = m & (((xx + yy) % 8) < 4)
    else:
        tint = m
    if alpha > 0:
        view[tint] = view[tint] * (1 - alpha) + col * alpha
    if halo > 0:
        view[_dilate(m, halo) & ~m] = HALO
    view[m & ~_erode(m, max(1, thickness))] = col
    return image


def resize_mask(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """``mask`` resized to ``height`` x ``width`` (area-weighted, then >= 0.5): thin parts
    do not vanish arbitrarily as with nearest-neighbour sampling."""
    if mask.shape == (height, width):
        return mask.astype(bool)
    im = Image.fromarray(mask.astype(np.uint8) * 255)
    resample = Image.BOX if height < mask.shape[0] else Image.NEAREST
    return np.asarray(im.resize((width, height), resample)) >= 128


# ----------------------------------------------------------------------------- labels
@dataclass(frozen=True)
class Label:
    """One label: ``text``, its ``rect`` (None: no free place was left in the picture, the
    label is not drawn) and its detection's ``box`` (picture pixels, see :data:`Rect`),
    ``color``, and ``leader`` when it sits away from its box."""

    index: int
    text: str
    rect: Optional[Rect]
    box: Rect
    color: Tuple[int, int, int]
    leader: bool = False


def _overlaps(a: Rect, b: Rect) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _clamp(x: int, y: int, w: int, h: int, width: int, height: int) -> Tuple[int, int]:
    return int(min(max(x, 0), max(width - w, 0))), int(min(max(y, 0), max(height - h, 0)))


def fit_text(text: str, font, max_width: int) -> str:
    """``text``, shortened with an ellipsis until it is at most ``max_width`` pixels wide."""
    if font.getlength(text) <= max_width:
        return text
    while len(text) > 1 and font.getlength(text + "…") > max_width:
        text = text[:-1]
    return text + "…"


def place_labels(boxes: Sequence[Rect], sizes: Sequence[Tuple[int, int]], width: int, height: int,
                 order: Optional[Sequence[int]] = None) -> List[Optional[Tuple[Rect, bool]]]:
    """Positions of label rectangles of ``sizes`` ``(w, h)`` for ``boxes`` in a ``width`` x
    ``height`` picture: ``[(rect, away_from_box)]`` in the order of ``boxes``.

    Greedy, in ``order`` (default: as given; pass the highest score first): each label
    takes the first spot among above-left, inside top-left, below-left, inside
    bottom-left, above-right, below-right of its box (each shifted inside the picture)
    that overlaps no label placed before; if none is free, the free spot of the picture
    nearest to its box's top-left corner (``away_from_box`` = True: draw a leader line);
    if the picture has no free spot left, None: the label is left out rather than drawn
    over another (its box and mask are still drawn). Labels wider than the picture must
    be shortened by the caller (:func:`fit_text`)."""
    n = len(boxes)
    order = list(range(n)) if order is None else list(order)
    placed: List[Optional[Tuple[Rect, bool]]] = [None] * n
    occupied = np.zeros((height, width), bool)
    rects: List[Rect] = []
    for i in order:
        x1, y1, x2, y2 = boxes[i]
        w, h = sizes[i]
        w, h = min(w, width), min(h, height)
        spots = [(x1, y1 - h), (x1, y1), (x1, y2), (x1, y2 - h), (x2 - w, y1 - h), (x2 - w, y2)]
        choice = None
        for sx, sy in spots:
            sx, sy = _clamp(sx, sy, w, h, width, height)
            r = (sx, sy, sx + w, sy + h)
            if not any(_overlaps(r, q) for q in rects):
                choice = (r, False)
                break
        if choice is None:
            choice = _nearest_free(occupied, w, h, x1, y1)
        if choice is None:
            continue
        r = choice[0]
        rects.append(r)
        occupied[r[1]:r[3], r[0]:r[2]] = True
        placed[i] = choice
    return placed


def _nearest_free(occupied: np.ndarray, w: int, h: int, ax: int, ay: int) -> Optional[Tuple[Rect, bool]]:
    """The free ``w`` x ``h`` rectangle of ``occupied`` whose top-left corner is nearest to
    ``(ax, ay)``: first within a few label sizes of it, else anywhere."""
    height, width = occupied.shape
    x0, y0 = max(0, ax - 3 * w), max(0, ay - 6 * h)
    x1, y1 = min(width, ax + 4 * w), min(height, ay + 6 * h)
    if (x0, y0, x1, y1) != (0, 0, width, height):
        near = _nearest_free_in(occupied[y0:y1, x0:x1], w, h, ax - x0, ay - y0)
        if near is not None:
            x, y = near
            return (x + x0, y + y0, x + x0 + w, y + y0 + h), True
    found = _nearest_free_in(occupied, w, h, ax, ay)
    if found is None:
        return None
    x, y = found
    return (x, y, x + w, y + h), True


def _nearest_free_in(occupied: np.ndarray, w: int, h: int, ax: int, ay: int) -> Optional[Tuple[int, int]]:
    """Top-left corner of the free ``w`` x ``h`` place of ``occupied`` nearest to ``(ax, ay - h)``
    (an integral image gives the occupancy of every position at once), or None."""
    height, width = occupied.shape
    if w > width or h > height:
        return None
    s = np.zeros((height + 1, width + 1), np.int32)
    s[1:, 1:] = occupied.cumsum(0).cumsum(1)
    used = s[h:, w:] - s[:-h, w:] - s[h:, :-w] + s[:-h, :-w]     # [height-h+1, width-w+1]
    ys, xs = np.nonzero(used == 0)
    if ys.size == 0:
        return None
    k = int(np.argmin((xs - ax) ** 2 + (ys - (ay - h)) ** 2))
    return int(xs[k]), int(ys[k])


def label_layout(image_shape: Sequence[int], result: Dict[str, np.ndarray], class_names: Sequence[str]
                 ) -> Tuple[int, List[Label]]:
    """Where :func:`draw_detections` puts the labels of ``result`` on an image of
    ``image_shape`` ``(H, W, ...)``: ``(scale, labels)``, every rect in picture pixels
    (original pixels times ``scale``), inside the picture, in detection order; a label
    with ``rect`` None found no free place and is not drawn."""
    h0, w0 = int(image_shape[0]), int(image_shape[1])
    s = display_scale(h0, w0)
    height, width = h0 * s, w0 * s
    font = label_font(font_size(height, width))
    pad = max(2, getattr(font, "size", 11) // 6)
    cols = colors(len(result["class_ids"]))
    texts, sizes, boxes = [], [], []
    for i, cid in enumerate(result["class_ids"]):
        cid = int(cid)
        name = class_names[cid] if 0 <= cid < len(class_names) else str(cid)
        text = fit_text(f"{name} {float(result['scores'][i]):.2f}", font, width - 2 * pad)
        sizes.append((int(np.ceil(font.getlength(text))) + 2 * pad, sum(font.getmetrics()) + 2 * pad))
        y1, x1, y2, x2 = (int(v) * s for v in result["rois"][i])
        boxes.append((x1, y1, x2, y2))
        texts.append(text)
    order = sorted(range(len(texts)), key=lambda i: -float(result["scores"][i]))
    spots = place_labels(boxes, sizes, width, height, order)
    labels = [Label(i, texts[i], spot[0] if spot else None, boxes[i], tuple(cols[i]), bool(spot and spot[1]))
              for i, spot in enumerate(spots)]
    return s, labels


def _leader(box: Rect, rect: Rect) -> Tuple[Tuple[int, int], Tuple[int, int]]:
    """A line from the label ``rect`` to the nearest point of ``box``."""
    cx = min(max((rect[0] + rect[2]) // 2, box[0]), box[2] - 1)
    cy = min(max((rect[1] + rect[3]) // 2, box[1]), box[3] - 1)
    lx = min(max(cx, rect[0]), rect[2] - 1)
    ly = rect[3] - 1 if cy >= rect[3] else (rect[1] if cy < rect[1] else (rect[1] + rect[3]) // 2)
    return (lx, ly), (cx, cy)


# ----------------------------------------------------------------------------- pictures
def draw_detections(image: np.ndarray, result: Dict[str, np.ndarray], class_names: Sequence[str],
                    alpha: float = 0.5) -> Image.Image:
    """The picture of ``result`` (a ``detect`` dict: ``rois`` ``[N, 4]`` y1, x1, y2, x2,
    ``class_ids``, ``scores``, ``masks`` ``[H, W, N]``) on ``image`` ``[H, W, 3]`` uint8:
    masks blended at ``alpha`` with their outline and halo, boxes, "label score" labels
    (:func:`label_layout`). The picture is the image enlarged by :func:`display_scale`."""
    h0, w0 = image.shape[:2]
    s, labels = label_layout(image.shape, result, class_names)
    height, width = h0 * s, w0 * s
    pic = Image.fromarray(np.ascontiguousarray(image[:, :, :3]).astype(np.uint8))
    if s > 1:
        pic = pic.resize((width, height), Image.BILINEAR)
    img = np.asarray(pic, dtype=np.float32).copy()
    t = line_width(height, width)
    masks = result["masks"]
    n_masks = masks.shape[-1] if masks.ndim == 3 else 0
    # masks are non-negative (0/1): equal sums in the box window and overall = nothing outside it
    totals = masks.reshape(-1, n_masks).sum(axis=0, dtype=np.float64) if n_masks else []
    for lab in labels:
        i = lab.index
        if n_masks > i:
            # the mask lies in its box (unmolding pastes it there): draw in the box plus a margin
            y1, x1, y2, x2 = (int(v) for v in result["rois"][i])
            y1, x1, y2, x2 = max(0, y1 - 2), max(0, x1 - 2), min(h0, y2 + 2), min(w0, x2 + 2)
            m = masks[:, :, i]
            if y2 <= y1 or x2 <= x1 or m[y1:y2, x1:x2].sum(dtype=np.float64) != totals[i]:
                y1, x1, y2, x2 = 0, 0, h0, w0            # a mask outside its box: the whole image
            m = m[y1:y2, x1:x2].astype(bool)
            if s > 1:
                m = np.repeat(np.repeat(m, s, 0), s, 1)
            blend_mask(img[y1 * s:y2 * s, x1 * s:x2 * s], m, lab.color, alpha, thickness=t, halo=1)
    out = Image.fromarray(img.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(out)
    for lab in labels:
        x1, y1, x2, y2 = lab.box
        draw.rectangle([x1, y1, max(x1, x2 - 1), max(y1, y2 - 1)], outline=lab.color, width=t)
    font = label_font(font_size(height, width))
    pad = max(2, getattr(font, "size", 11) // 6)
    for lab in labels:
        if lab.rect is not None and lab.leader:
            a, b = _leader(lab.box, lab.rect)
            draw.line([a, b], fill=lab.color, width=max(1, t // 2))
    for lab in labels:
        if lab.rect is None:
            continue
        x1, y1, x2, y2 = lab.rect
        draw.rectangle([x1, y1, x2 - 1, y2 - 1], fill=LABEL_BG)
        draw.text((x1 + pad, y1 + pad), lab.text, fill=text_color(lab.color), font=font)
    return out
