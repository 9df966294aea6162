"""Draw detections (masks, boxes, labels) on an image and save a PNG."""
from __future__ import annotations

import colorsys
from typing import Dict, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont


def colors(n: int, seed: int = 0):
    """n distinct bright colours (evenly spaced hues, shuffled deterministically)."""
    hsv = [(i / max(n, 1), 0.9, 1.0) for i in range(n)]
    rgb = [tuple(int(255 * c) for c in colorsys.hsv_to_rgb(*h)) for h in hsv]
    rng = np.random.default_rng(seed)
    rng.shuffle(rgb)
    return rgb


def blend_mask(image: np.ndarray, mask: np.ndarray, color, alpha: float = 0.5) -> np.ndarray:
    """Blend ``mask`` ``[H, W]`` (non-zero = inside) into ``image`` ``[H, W, 3] float32``
    (in place) with ``color`` at ``alpha``, outlined in full colour (mask pixels with a
    non-mask 4-neighbour); returns ``image``."""
    m = mask.astype(bool)
    image[m] = image[m] * (1 - alpha) + np.array(color, dtype=np.float32) * alpha
    edge = m & ~(np.roll(m, 1, 0) & np.roll(m, -1, 0) & np.roll(m, 1, 1) & np.roll(m, -1, 1))
    image[edge] = color
    return image


def draw_detections(image: np.ndarray, result: Dict[str, np.ndarray], class_names: Sequence[str],
                    alpha: float = 0.5) -> Image.Image:
    """Masks blended at ``alpha`` with their outline, boxes and "label score" captions."""
    img = image.astype(np.float32).copy()
    n = len(result["class_ids"])
    cols = colors(n)
    masks = result["masks"]
    for i in range(n):
        if masks.shape[-1] > i:
            blend_mask(img, masks[:, :, i], cols[i], alpha)
    out = Image.fromarray(img.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(out)
    font = ImageFont.load_default()
    for i in range(n):
        y1, x1, y2, x2 = (int(v) for v in result["rois"][i])
        draw.rectangle([x1, y1, x2 - 1, y2 - 1], outline=cols[i], width=2)
        cid = int(result["class_ids"][i])
        name = class_names[cid] if 0 <= cid < len(class_names) else str(cid)
        label = f"{name} {float(result['scores'][i]):.2f}"
        tw = draw.textlength(label, font=font)
        ty = max(y1 - 12, 0)
        draw.rectangle([x1, ty, x1 + tw + 4, ty + 12], fill=(0, 0, 0))
        draw.text((x1 + 2, ty), label, fill=cols[i], font=font)
    return out
