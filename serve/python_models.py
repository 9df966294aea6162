"""The Python-backend models of a repository written by :mod:`.repository`.

They run inside Triton's Python-backend stub (``model.py`` of each model
imports one of these classes) and use the project's own code for every step:

* :class:`PreprocessModel` - decode (``mrcnn_trt.data.base.load_rgb_image``) and
  mold (``mrcnn_trt.model.molding.mold_batch``) each image;
* :class:`NetworkModel` - the exported ONNX model in ONNX Runtime with the
  custom-op library (``mrcnn_trt.runtime.registry.open_runner``: ``OnnxRunner``), one run per
  dynamic batch of requests;
* :class:`PostprocessModel` - unmolding, mask paste (``unmold_outputs``) and
  the per-image JSON of ``mrcnn-demo`` (``result_to_json``).

Tensors cross the stub boundary through DLPack (``np.from_dlpack`` /
``pb_utils.Tensor.from_dlpack``), never through ``as_numpy()`` /
``pb_utils.Tensor(name, array)``: the stub of Triton 2.51 (nvidia-pytriton 0.7.0)
was built with a pybind11 that reads NumPy 1's dtype layout, so with NumPy 2
its arrays get zero strides and zero byte sizes ("output tensor shape does not
match size of output"), and BYTES tensors, which it converts with NumPy,
cannot be used at all - hence UINT8 tensors for the encoded images and the
JSON text. DLPack has no such dependency and works with either NumPy.

A request that cannot be served (not an image, truncated, too large) gets an
error response with one line; the other requests of the batch are unaffected.
"""
from __future__ import annotations

import ctypes
import io
import json
import os
from typing import Dict, List

import numpy as np
from PIL import Image

import triton_python_backend_utils as pb_utils  # only importable inside Triton's Python backend

from mrcnn_trt.config import Config
from mrcnn_trt.errors import UserError
from mrcnn_trt.fileio import json_safe
from mrcnn_trt.imageio import load_rgb_image
from mrcnn_trt.model.molding import MoldInfo, mold_batch
from mrcnn_trt.runtime.registry import open_runner
from mrcnn_trt.runtime.results import result_to_json
from mrcnn_trt.runtime.runners import unmold_outputs
from mrcnn_trt.serve.repository import read_model_info


# --------------------------------------------------------------------------- helpers
def _parameters(args: dict) -> Dict[str, str]:
    cfg = json.loads(args["model_config"])
    return {k: v.get("string_value", "") for k, v in (cfg.get("parameters") or {}).items()}


def _version_dir(args: dict) -> str:
    return os.path.join(args["model_repository"], str(args["model_version"]))


def _model_info(args: dict) -> dict:
    return read_model_info(_version_dir(args))


def _input(request, name: str) -> np.ndarray:
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    if tensor is None:
        raise UserError(f"input {name} is missing")
    return np.from_dlpack(tensor)


_USED_CAPSULE = b"used_dltensor"   # module-level: PyCapsule_SetName keeps the pointer
_set_capsule_name = ctypes.pythonapi.PyCapsule_SetName
_set_capsule_name.argtypes, _set_capsule_name.restype = [ctypes.py_object, ctypes.c_char_p], ctypes.c_int


def _output(name: str, array: np.ndarray):
    """An output tensor through DLPack. The stub takes ownership of the DLPack tensor but renames
    the capsule "used_dlpack" instead of DLPack's "used_dltensor", so NumPy's capsule destructor
    would report an error for every output; the capsule gets the standard name afterwards."""
    a = np.ascontiguousarray(array)
    if not a.flags.writeable:   # DLPack cannot export read-only arrays
        a = a.copy()
    capsule = a.__dlpack__()
    tensor = pb_utils.Tensor.from_dlpack(name, capsule)
    _set_capsule_name(capsule, _USED_CAPSULE)
    return tensor


def _error(e: Exception):
    """An error response: a bad request (UserError) is INVALID_ARG (HTTP 400), anything else INTERNAL."""
    if isinstance(e, UserError):
        err = pb_utils.TritonError(str(e), pb_utils.TritonError.INVALID_ARG)
    else:
        err = pb_utils.TritonError(f"{type(e).__name__}: {e}")
    return pb_utils.InferenceResponse(output_tensors=[], error=err)


class _RequestImage(io.BytesIO):
    """Encoded image bytes of a request; named in the image reader's messages."""

    def __str__(self) -> str:
        return "(request data)"

    __repr__ = __str__


def decode_image(data: bytes, max_pixels: int) -> np.ndarray:
    """Encoded file bytes -> ``[H, W, 3] uint8`` RGB with the project's image reader.

    The header is read first, so an image larger than ``max_pixels`` is refused
    before it is decoded (a 20000 x 20000 PNG header costs nothing).
    """
    if not data:
        raise UserError("empty image (0 bytes)")
    try:
        with Image.open(_RequestImage(data)) as im:
            w, h = im.size
    except Image.DecompressionBombError as e:
        raise UserError(f"image too large: {e}") from None
    except OSError as e:
        raise UserError(f"not a readable image: {e}") from None
    if w * h > max_pixels:
        raise UserError(f"image too large: {w}x{h} = {w * h} pixels, this server accepts at most {max_pixels}")
    return load_rgb_image(_RequestImage(data))


# --------------------------------------------------------------------------- models
class PreprocessModel:
    """IMAGE uint8 [n, L] (encoded files, zero padded) -> images, windows, mold_info."""

    def initialize(self, args):
        self.config = Config.from_dict(_model_info(args)["config"])
        self.max_pixels = int(_parameters(args).get("max_pixels", "40000000"))

    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                data = _input(request, "IMAGE")
                if data.ndim != 2:
                    raise UserError(f"IMAGE must be [batch, bytes], got shape {list(data.shape)}")
                images = []
                for i, row in enumerate(data):
                    try:
                        images.append(decode_image(row.tobytes(), self.max_pixels))
                    except UserError as e:
                        raise UserError(f"image {i} of the request: {e}" if len(data) > 1 else str(e)) from None
                batch, windows, infos = mold_batch(images, self.config)
                mold_info = np.array([[*m.original_size, *m.window, m.scale] for m in infos], np.float64)
                responses.append(pb_utils.InferenceResponse([
                    _output("images", batch), _output("windows", windows), _output("mold_info", mold_info)]))
            except Exception as e:  # noqa: BLE001 - one bad request must not stop the server
                responses.append(_error(e))
        return responses


class NetworkModel:
    """images f32 [n,3,S,S], windows f32 [n,4] -> detections, count [n,1], masks.

    The requests of one dynamic batch are concatenated and run together, in
    chunks of the model's fixed batch (padded by the runner) or, for a
    dynamic-batch model, up to max_batch_size.
    """

    def initialize(self, args):
        threads = int(_parameters(args).get("threads", "2"))
        self.max_batch = int(json.loads(args["model_config"]).get("max_batch_size", 1)) or 1
        self.runner = open_runner(os.path.join(_version_dir(args), "model.onnx"), "onnxruntime", threads=threads)
        dynamic = bool(self.runner.sidecar.get("dynamic_batch"))
        self.chunk = self.max_batch if dynamic else int(self.runner.sidecar["batch"])
        if dynamic:
            self.runner.fixed_batch = None

    def execute(self, requests):
        sizes, images, windows, responses = [], [], [], [None] * len(requests)
        for k, request in enumerate(requests):
            try:
                im, win = _input(request, "images"), _input(request, "windows")
                if im.ndim != 4 or win.ndim != 2 or im.shape[0] != win.shape[0]:
                    raise UserError(f"images {list(im.shape)} and windows {list(win.shape)} do not fit")
                images.append(im)      # views of the request's memory; concatenate copies
                windows.append(win)
                sizes.append((k, im.shape[0]))
            except Exception as e:  # noqa: BLE001
                responses[k] = _error(e)
        if sizes:
            try:
                out = self._run(np.concatenate(images), np.concatenate(windows))
                start = 0
                for k, n in sizes:
                    part = {key: v[start:start + n] for key, v in out.items()}
                    start += n
                    responses[k] = pb_utils.InferenceResponse([
                        _output("detections", part["detections"].astype(np.float32)),
                        _output("count", part["count"].astype(np.int32).reshape(n, 1)),
                        _output("masks", part["masks"].astype(np.float32))])
            except Exception as e:  # noqa: BLE001
                for k, _ in sizes:
                    responses[k] = _error(e)
        return responses

    def _run(self, images: np.ndarray, windows: np.ndarray) -> Dict[str, np.ndarray]:
        parts: List[Dict[str, np.ndarray]] = []
        for s in range(0, images.shape[0], self.chunk):
            parts.append(self.runner(images[s:s + self.chunk], windows[s:s + self.chunk]))
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


class PostprocessModel:
    """detections, count, masks, mold_info -> JSON uint8 [n, L]: the UTF-8 text of
    ``mrcnn-demo``'s per-image JSON (``"image": null``: the server has no file
    name), each row padded with spaces to the longest (JSON whitespace)."""

    def initialize(self, args):
        self.class_names = list(_model_info(args)["class_names"])

    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                out = {"detections": _input(request, "detections"), "count": _input(request, "count").reshape(-1),
                       "masks": _input(request, "masks")}
                infos = [MoldInfo(original_size=(int(m[0]), int(m[1])), window=tuple(int(v) for v in m[2:6]),
                                  scale=float(m[6])) for m in _input(request, "mold_info")]
                docs = [json.dumps(json_safe(result_to_json(r, self.class_names, None)), allow_nan=False,
                                   separators=(",", ":")).encode()
                        for r in unmold_outputs(out, infos)]
                width = max(len(d) for d in docs)
                text = np.frombuffer(b"".join(d.ljust(width) for d in docs), np.uint8).reshape(len(docs), width)
                responses.append(pb_utils.InferenceResponse([_output("JSON", text)]))
            except Exception as e:  # noqa: BLE001
                responses.append(_error(e))
        return responses
