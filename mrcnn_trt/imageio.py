"""Reading images: any file or array -> ``[H, W, 3] uint8`` RGB.

The one image reader of the project (datasets, molding, the demo, serving).
Grayscale, palette, RGBA/LA (alpha dropped), CMYK and 16-bit images are
converted; EXIF orientation is *not* applied (COCO and Cityscapes annotations
refer to the stored pixel grid).

:func:`load_rgb_image` is the one safe way to open an image: only regular files
are opened (a FIFO named ``x.png`` would block), the pixel count is checked from
the header before anything is decoded (:data:`MAX_PIXELS`; a 69-byte PNG can
declare 30000 x 30000), and *every* decoder failure becomes a
:class:`~mrcnn_trt.errors.UserError` naming the file, so callers skip and list
the image instead of stopping.
"""
from __future__ import annotations

import os
import re
import warnings

import numpy as np
from PIL import Image

from mrcnn_trt.errors import UserError
from mrcnn_trt.fileio import check_regular_file

#: Largest image read, in pixels: Pillow's decompression-bomb threshold (89.5 million, e.g.
#: 9459 x 9459); a larger image is refused from its header, before it is decoded.
MAX_PIXELS = 89_478_485

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def to_rgb_uint8(arr: np.ndarray) -> np.ndarray:
    """Convert a decoded image array to ``[H, W, 3] uint8`` RGB.

    Accepts ``[H, W]`` (grayscale), ``[H, W, 1|2|3|4]`` (gray, gray+alpha, RGB,
    RGBA; alpha is dropped) in uint8, uint16 (scaled by 1/257, rounded), bool,
    or float (assumed in [0, 1] if its maximum is <= 1, else in [0, 255]).
    """
    a = np.asarray(arr)
    if a.dtype == bool:
        a = a.astype(np.uint8) * 255
    elif a.dtype == np.uint16 or (a.dtype.kind in "iu" and a.dtype.itemsize > 1):
        a = np.clip(np.rint(a.astype(np.float64) / 257.0), 0, 255).astype(np.uint8)
    elif a.dtype.kind == "f":
        scale = 255.0 if (a.size and np.nanmax(a) <= 1.0) else 1.0
        a = np.clip(np.rint(np.nan_to_num(a) * scale), 0, 255).astype(np.uint8)
    elif a.dtype != np.uint8:
        a = a.astype(np.uint8)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3:
        raise ValueError(f"not an image array: shape {a.shape}")
    c = a.shape[2]
    if c in (1, 2):
        a = np.repeat(a[:, :, :1], 3, axis=2)
    elif c == 4:
        a = a[:, :, :3]
    elif c != 3:
        raise ValueError(f"unsupported number of channels: {c}")
    return np.ascontiguousarray(a)


def load_rgb_image(path, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read an image file (a path or a binary file object) as ``[H, W, 3] uint8``
    RGB (see :func:`to_rgb_uint8`).

    Raises :class:`UserError` naming the file if it is missing, not a regular
    file, larger than ``max_pixels``, or not decodable (whatever the decoder
    raised); nothing else.
    """
    name = path
    if isinstance(path, (str, os.PathLike)):
        name = check_regular_file(path, what="image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)   # bounded below
            with Image.open(path) as im:
                w, h = im.size
                if w * h > max_pixels:
                    raise UserError(f"image {name} is too large: {w}x{h} = {w * h} pixels (at most {max_pixels} "
                                    f"are read)")
                if w < 1 or h < 1:
                    raise UserError(f"image {name} is empty ({w}x{h})")
                return _decode(im)
    except UserError:
        raise
    except FileNotFoundError:
        raise UserError(f"image not found: {name}") from None
    except Image.DecompressionBombError as e:   # Pillow refuses it from the header, in Image.open
        n = re.search(r"\((\d+) pixels\)", str(e))
        raise UserError(f"image {name} is too large: {n.group(1) if n else 'over 2x' + str(max_pixels)} pixels "
                        f"(at most {max_pixels} are read)") from None
    except MemoryError:
        raise UserError(f"image {name} does not fit in memory") from None
    except Exception as e:  # noqa: BLE001 - decoders raise OSError, ValueError, SyntaxError, struct.error, ...
        detail = " ".join(str(e).split())[:200] or type(e).__name__
        raise UserError(f"cannot read image {name}: {detail}") from None


def _decode(im) -> np.ndarray:
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.array(im)
        if mode == "I":  # 32-bit ints: assume 16-bit data (PNG gray16 decodes to "I")
            arr = np.clip(arr, 0, 65535).astype(np.uint16)
        return to_rgb_uint8(arr.astype(np.uint16))
    if mode == "F":
        return to_rgb_uint8(np.array(im))
    if mode in ("RGB", "L", "RGBA", "LA"):
        return to_rgb_uint8(np.array(im))
    if mode == "PA" or (mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
    return to_rgb_uint8(np.array(im.convert("RGB") if im.mode != "RGBA" else im))
