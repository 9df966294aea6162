"""TensorRT INT8 calibrators (entropy-2, the default, and min-max) fed by
molded image batches, with provenance-checked caches (:mod:`.cache`).

For TensorRT <= 10 (implicit quantization). TensorRT 11 has no calibrators:
there INT8 needs a Q/DQ model (``mrcnn-calibrate``).

Batches: any iterable of

* float32 arrays [n, 3, S, S] (RGB 0..255, molded; windows default to the
  whole square), or
* ``(images, windows)`` pairs, or
* objects with ``.images`` and ``.windows`` (``mrcnn_trt.runtime.batcher.Batch``).

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
from typing import Iterable, List, Optional, Sequence

import numpy as np

from mrcnn_trt.engine.cuda_mem import DeviceBuffer, open_cuda
from mrcnn_trt.engine.families import import_tensorrt
from mrcnn_trt.errors import UserError
from mrcnn_trt.runtime.batcher import as_pairs, pad_batch

from .calib_cache import CALIBRATORS, CacheHeader, load_checked, write_cache


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
