"""TensorRT INT8 calibrators (entropy-2, the default, and min-max) fed by
molded image batches, with provenance-checked caches (:mod:`.cache`).

For TensorRT <= 10 (implicit quantization). TensorRT 11 has no calibrators:
there INT8 needs a Q/DQ model (``mrcnn-calibrate``).

Batches: any iterable of

* float32 arrays [n, 3, S, S] (RGB 0..255, molded; windows default to the
  whole square), or
* ``(images, windows)`` pairs, or
* objects with ``.images`` and ``.windows`` (``mrcnn_trt.batcher.Batch``).

Batches smaller than the network batch N are zero padded (their windows are
the whole square), as the runners do; larger ones are an error.

The calibrator classes derive from ``tensorrt.IInt8EntropyCalibrator2`` /
``IInt8MinMaxCalibrator`` and are therefore created lazily by
:func:`make_calibrator`, when ``tensorrt`` is importable. Errors raised while
TensorRT calls back into Python cannot cross TensorRT's C++ frames cleanly, so
they are stored in ``calibrator.error`` and re-raised by the caller after the
build (:func:`raise_if_failed`). A cache is validated before the build starts:
a stale one raises :class:`~.cache.StaleCalibrationCache` there.
"""
from __future__ import annotations

import os
from typing import Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from mrcnn_trt.errors import UserError

from .cache import CALIBRATORS, CacheHeader, load_checked, write_cache


def as_pairs(batches: Iterable, image_size: int) -> Iterator[Tuple[np.ndarray, np.ndarray]]:
    """Normalize the accepted batch forms to (images [n,3,S,S], windows [n,4]) float32."""
    for b in batches:
        if hasattr(b, "images"):
            images, windows = b.images, getattr(b, "windows", None)
        elif isinstance(b, (tuple, list)) and len(b) == 2:
            images, windows = b
        else:
            images, windows = b, None
        images = np.ascontiguousarray(images, dtype=np.float32)
        if images.ndim != 4 or images.shape[1] != 3 or images.shape[2:] != (image_size, image_size):
            raise UserError(f"calibration batch has shape {tuple(images.shape)}, expected [n,3,{image_size},{image_size}]")
        n = images.shape[0]
        if windows is None:
            windows = np.tile(np.array([[0, 0, image_size, image_size]], np.float32), (n, 1))
        windows = np.ascontiguousarray(windows, dtype=np.float32).reshape(-1, 4)
        if windows.shape[0] != n:
            raise UserError(f"calibration batch has {n} images but {windows.shape[0]} windows")
        yield images, windows


def pad_batch(images: np.ndarray, windows: np.ndarray, batch: int) -> Tuple[np.ndarray, np.ndarray]:
    """Zero-pad a partial batch to ``batch`` images (whole-square windows)."""
    n = images.shape[0]
    if n > batch:
        raise UserError(f"calibration batch of {n} images for a network with batch {batch}")
    if n == batch:
        return images, windows
    s = images.shape[-1]
    pad = batch - n
    images = np.concatenate([images, np.zeros((pad, 3, s, s), np.float32)])
    windows = np.concatenate([windows, np.tile(np.array([[0, 0, s, s]], np.float32), (pad, 1))])
    return images, windows


def assign_inputs(names: Sequence[str], images: np.ndarray, windows: np.ndarray) -> List[np.ndarray]:
    """Arrays in the order TensorRT asks for: by name ("images"/"windows"),
    else by rank (4-D images, 2-D windows)."""
    out = []
    for name in names:
        low = name.lower()
        if low.startswith("image"):
            out.append(images)
        elif low.startswith("window"):
            out.append(windows)
        else:
            raise UserError(f"calibration: unknown network input {name!r} (expected 'images' and 'windows')")
    return out


class _Base:
    """Shared body of both calibrator kinds (mixed into the TensorRT base class)."""

    def _setup(self, trt, batches, *, batch: int, image_size: int, cache_path: Optional[str],
               expected: CacheHeader, cuda, max_images: Optional[int]):
        self.trt = trt
        self.batch = int(batch)
        self.image_size = int(image_size)
        self.cache_path = cache_path
        self.expected = expected
        self.cuda = cuda
        self.max_images = max_images
        self.count = 0
        self.error: Optional[BaseException] = None
        self._iter = as_pairs(batches, self.image_size) if batches is not None else iter(())
        self._buffers = {}
        self._stream = None
        self._cache_payload: Optional[bytes] = None
        if cache_path and os.path.isfile(cache_path):
            self._cache_payload = load_checked(cache_path, expected)   # raises if stale

    # ---- TensorRT callbacks
    def get_batch_size(self):
        return self.batch

    def get_batch(self, names, *args):
        try:
            if self.max_images is not None and self.count >= self.max_images:
                return None
            try:
                images, windows = next(self._iter)
            except StopIteration:
                return None
            n = images.shape[0]
            images, windows = pad_batch(images, windows, self.batch)
            arrays = assign_inputs(list(names), images, windows)
            if self._stream is None:
                self._stream = self.cuda.stream()
            ptrs = []
            for name, a in zip(names, arrays):
                buf = self._buffers.get(name)
                if buf is None or buf.nbytes < a.nbytes:
                    from mrcnn_trt.engine.cuda_mem import DeviceBuffer

                    buf = DeviceBuffer(self.cuda, a.shape, a.dtype)
                    self._buffers[name] = buf
                self.cuda.htod(buf.ptr, a, self._stream)
                ptrs.append(int(buf.ptr))
            self.cuda.sync(self._stream)
            self.count += n
            return ptrs
        except BaseException as e:  # noqa: BLE001 - re-raised by raise_if_failed
            self.error = e
            return None

    def read_calibration_cache(self, *args):
        return self._cache_payload

    def write_calibration_cache(self, cache, *args):
        try:
            payload = bytes(cache)
            if not self.cache_path:
                return None
            h = self.expected
            header = CacheHeader(onnx_sha256=h.onnx_sha256, preprocessing=h.preprocessing, batch=self.batch,
                                 count=self.count, tensorrt=h.tensorrt, calibrator=h.calibrator, extra=dict(h.extra))
            write_cache(self.cache_path, header, payload)
        except BaseException as e:  # noqa: BLE001
            self.error = e
        return None

    def free(self):
        for b in self._buffers.values():
            b.free()
        self._buffers = {}


def make_calibrator(batches: Optional[Iterable], *, batch: int, image_size: int, expected: CacheHeader,
                    cache_path: Optional[str] = None, kind: str = "entropy2", trt=None, cuda=None,
                    max_images: Optional[int] = None):
    """Create an INT8 calibrator for TensorRT <= 10.

    ``expected`` describes the model/preprocessing/TensorRT this calibration is
    for; an existing ``cache_path`` must match it (else
    :class:`~.cache.StaleCalibrationCache` is raised here) and is then used
    without running any batch; otherwise the batches are fed and the cache is
    written there. ``batches`` may be None when a valid cache exists.
    """
    if kind not in CALIBRATORS:
        raise UserError(f"calibrator must be one of {', '.join(CALIBRATORS)}, got {kind!r}")
    if trt is None:
        from mrcnn_trt.engine.checks import import_tensorrt

        trt = import_tensorrt()
    base_name = {"entropy2": "IInt8EntropyCalibrator2", "minmax": "IInt8MinMaxCalibrator"}[kind]
    base = getattr(trt, base_name, None)
    if base is None:
        raise UserError(f"TensorRT {getattr(trt, '__version__', '?')} has no {base_name} (INT8 calibration was "
                        f"removed in TensorRT 11: use a Q/DQ model from mrcnn-calibrate)")
    if expected.calibrator != kind:
        raise ValueError("expected.calibrator must equal kind")
    if batches is None and not (cache_path and os.path.isfile(cache_path)):
        raise UserError("INT8 calibration needs calibration images or an existing calibration cache")
    if cuda is None and batches is not None and not (cache_path and os.path.isfile(cache_path)):
        from mrcnn_trt.engine.cuda_mem import open_cuda

        cuda = open_cuda()

    class Calibrator(_Base, base):
        def __init__(self):
            base.__init__(self)
            self._setup(trt, batches, batch=batch, image_size=image_size, cache_path=cache_path,
                        expected=expected, cuda=cuda, max_images=max_images)

    Calibrator.__name__ = f"Mrcnn{base_name[1:]}"
    return Calibrator()


def raise_if_failed(calibrator) -> None:
    """Re-raise an error stored during TensorRT's callbacks."""
    err = getattr(calibrator, "error", None)
    if err is not None:
        if isinstance(err, UserError):
            raise err
        raise UserError(f"INT8 calibration failed: {type(err).__name__}: {err}") from err
