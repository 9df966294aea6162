"""Image molding and detection unmolding (docs/model.md §3.1 and §3.10).

One implementation used by every backend (PyTorch, ONNX Runtime, TensorRT),
by calibration and by evaluation:

* :func:`to_rgb_uint8`, :func:`load_image` - any image array / file -> HxWx3 uint8 RGB
  (``mrcnn_trt.imageio``; unreadable files raise UserError).
* :func:`mold_image` - resize (Pillow BILINEAR on uint8, Python ``round``),
  zero-pad to an S x S square; returns the padded uint8 image and its window.
  Mean subtraction happens inside the network (and inside the exported graph),
  so the padding becomes -MEAN_PIXEL exactly like the original.
* :func:`unmold_detections` - padded-pixel detections + 28x28 masks -> the
  original ``detect`` dict in original-image pixels, including the original's
  mask "byte-scaling": each 28x28 probability map is rescaled to 0..255 by
  its own min/max before the bilinear resize, then thresholded at >= 128, so
  the effective threshold is min + 0.5*(max-min) of each mask (a constant
  mask becomes empty). This is what the original's ``scipy.misc.imresize``
  did and what its published AP numbers include.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import numpy as np
from PIL import Image

# one image reader for the whole package (grayscale/RGBA/CMYK/16-bit handled there)
from ..imageio import load_rgb_image as load_image, to_rgb_uint8  # noqa: F401


#: Version of the molding rules below (resize + pad, docs/model.md §3.1). Exported models
#: and calibration caches record it; bump it whenever molding changes.
MOLDING_VERSION = 1


@dataclass(frozen=True)
class MoldInfo:
    """Where an original image sits in the padded network input."""

    original_size: Tuple[int, int]        # (h, w) of the original image
    window: Tuple[int, int, int, int]     # (y1, x1, y2, x2) in padded pixels, exclusive ends
    scale: float


def compute_scale(h: int, w: int, min_dim: int, max_dim: int) -> float:
    """docs/model.md §3.1: scale up so the short side is >= min_dim, but the long side <= max_dim."""
    scale = max(1, min_dim / min(h, w))
    if round(max(h, w) * scale) > max_dim:
        scale = max_dim / max(h, w)
    return scale


def mold_image(image: np.ndarray, min_dim: int, max_dim: int) -> Tuple[np.ndarray, MoldInfo]:
    """Resize and zero-pad an HxWx3 uint8 RGB image to ``max_dim`` x ``max_dim``.

    Returns the padded uint8 image [S, S, 3] and its :class:`MoldInfo`. A very
    thin image (e.g. 3 x 2000 into 256) keeps at least one pixel on its short
    side (its rounded size would be 0); raises ``ValueError`` only for an image
    without pixels.
    """
    image = to_rgb_uint8(image)
    h, w = image.shape[:2]
    if h < 1 or w < 1:
        raise ValueError(f"empty image ({w}x{h})")
    scale = compute_scale(h, w, min_dim, max_dim)
    if scale != 1:
        nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
        image = np.asarray(Image.fromarray(image).resize((nw, nh), Image.BILINEAR))
    nh, nw = image.shape[:2]
    top = (max_dim - nh) // 2
    left = (max_dim - nw) // 2
    padded = np.zeros((max_dim, max_dim, 3), dtype=np.uint8)
    padded[top:top + nh, left:left + nw] = image
    return padded, MoldInfo(original_size=(h, w), window=(top, left, top + nh, left + nw), scale=float(scale))


def mold_batch(images: Sequence[np.ndarray], config) -> Tuple[np.ndarray, np.ndarray, List[MoldInfo]]:
    """Mold a list of images for the network.

    Returns ``batch`` float32 [N, 3, S, S] RGB 0..255 (not mean-subtracted),
    ``windows`` float32 [N, 4] and the list of :class:`MoldInfo`.
    """
    padded, infos = [], []
    for im in images:
        p, info = mold_image(im, config.IMAGE_MIN_DIM, config.IMAGE_MAX_DIM)
        padded.append(p)
        infos.append(info)
    batch = np.stack(padded).astype(np.float32).transpose(0, 3, 1, 2).copy()
    windows = np.array([i.window for i in infos], dtype=np.float32).reshape(-1, 4)
    return batch, windows, infos


def bytescale(data: np.ndarray) -> np.ndarray:
    """``scipy.misc.bytescale`` of a float array by its own min/max (docs/model.md §3.10)."""
    data = np.asarray(data, dtype=np.float32)
    cmin = data.min()
    cmax = data.max()
    cscale = cmax - cmin
    if cscale == 0:
        cscale = 1
    scale = float(255 - 0) / cscale
    bytedata = (data - cmin) * scale + 0
    return (bytedata.clip(0, 255) + 0.5).astype(np.uint8)


def unmold_mask(mask: np.ndarray, box: Sequence[int], image_shape: Tuple[int, int]) -> np.ndarray:
    """Paste a 28x28 probability mask into a full-size uint8 {0,1} mask (docs/model.md §3.10 steps 4-6)."""
    y1, x1, y2, x2 = (int(v) for v in box)
    small = Image.fromarray(bytescale(mask), mode="L").resize((x2 - x1, y2 - y1), Image.BILINEAR)
    m = (np.asarray(small, dtype=np.float32) / 255.0 >= 0.5).astype(np.uint8)
    full = np.zeros(image_shape[:2], dtype=np.uint8)
    # boxes come from the clipped window, so they lie inside the image; clip defensively
    ys, xs = max(y1, 0), max(x1, 0)
    ye, xe = min(y2, image_shape[0]), min(x2, image_shape[1])
    if ye > ys and xe > xs:
        full[ys:ye, xs:xe] = m[ys - y1:ye - y1, xs - x1:xe - x1]
    return full


def unmold_detections(detections: np.ndarray, count: int, mask_probs: np.ndarray, info: MoldInfo,
                      with_masks: bool = True) -> Dict[str, np.ndarray]:
    """Turn one image's network outputs into the original ``detect`` result.

    Args:
        detections: [D, 6] (y1, x1, y2, x2, class_id, score) in padded pixels.
        count: number of valid rows.
        mask_probs: [D, 28, 28] probabilities of each detection's class.
        info: the image's :class:`MoldInfo`.
    Returns:
        ``rois`` int32 [M, 4] original pixels (y1, x1, y2, x2), ``class_ids`` int32 [M],
        ``scores`` float32 [M], ``masks`` uint8 [H, W, M] (zero-size arrays when M = 0).
    """
    h, w = info.original_size
    det = np.asarray(detections, dtype=np.float32)[: int(count)]
    # the original stops at the first class-0 row
    zero = np.where(det[:, 4] == 0)[0]
    n = int(zero[0]) if zero.size else det.shape[0]
    det = det[:n]
    wy1, wx1, wy2, wx2 = info.window
    scale = min(h / (wy2 - wy1), w / (wx2 - wx1))
    shifts = np.array([wy1, wx1, wy1, wx1])
    boxes = np.multiply(det[:, :4] - shifts, np.array([scale] * 4)).astype(np.int32)
    class_ids = det[:, 4].astype(np.int32)
    scores = det[:, 5].astype(np.float32)
    keep = np.where((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) > 0)[0]
    boxes, class_ids, scores = boxes[keep], class_ids[keep], scores[keep]
    if with_masks:
        probs = np.asarray(mask_probs)[:n][keep]
        masks = [unmold_mask(probs[i], boxes[i], (h, w)) for i in range(len(keep))]
        masks = np.stack(masks, axis=-1) if masks else np.zeros((h, w, 0), dtype=np.uint8)
    else:
        masks = np.zeros((h, w, 0), dtype=np.uint8)
    return {"rois": boxes.reshape(-1, 4), "class_ids": class_ids, "scores": scores, "masks": masks}
