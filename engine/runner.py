"""Run a TensorRT plan built by ``mrcnn-build-engine``.

    runner = TensorRTRunner("model.plan")
    out = runner(images, windows)   # images float32 [N,3,S,S] molded, windows float32 [N,4]
    out["detections"], out["count"], out["masks"]

Before deserializing, the plan's sidecar (``model.plan.json``) is checked:
the file is the one that was built (sha256), the installed TensorRT is the
release that built it, and the visible GPU has the arch it was built for
(:func:`mrcnn_trt.engine.checks.check_plan_sidecar`). The plugin library is
loaded when the model has ``mrcnn`` nodes.

I/O buffers are allocated from the engine's bindings: the tensor API of
TensorRT >= 8.5 (``num_io_tensors``, ``set_tensor_address``,
``execute_async_v3``), or the bindings API of older releases
(``num_bindings``, ``execute_async_v2``). Device memory comes from
cuda-python, or pycuda when only that is installed (:mod:`.cuda_mem`).
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from mrcnn_trt.errors import UserError
from mrcnn_trt.runtime.runners import Runner

from . import checks


@dataclass
class IOTensor:
    name: str
    is_input: bool
    shape: Tuple[int, ...]
    dtype: np.dtype
    index: int            # binding index (bindings API) or I/O position (tensor API)


def engine_io(engine, trt) -> List[IOTensor]:
    """The engine's inputs and outputs, whichever API this TensorRT has."""
    out = []
    if hasattr(engine, "num_io_tensors"):
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            is_in = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            out.append(IOTensor(name, is_in, tuple(engine.get_tensor_shape(name)),
                                np.dtype(trt.nptype(engine.get_tensor_dtype(name))), i))
    else:  # TensorRT < 8.5: bindings
        for i in range(engine.num_bindings):
            name = engine.get_binding_name(i)
            out.append(IOTensor(name, bool(engine.binding_is_input(i)), tuple(engine.get_binding_shape(i)),
                                np.dtype(trt.nptype(engine.get_binding_dtype(i))), i))
    return out


def input_roles(inputs: Sequence[IOTensor]) -> Dict[str, str]:
    """Which engine input gets the images and which the windows: by name
    ("images"/"windows"), else by rank (4-D images, 2-D windows)."""
    roles: Dict[str, str] = {}
    for t in inputs:
        low = t.name.lower()
        if low.startswith("image"):
            roles[t.name] = "images"
        elif low.startswith("window"):
            roles[t.name] = "windows"
        elif len(t.shape) == 4:
            roles[t.name] = "images"
        elif len(t.shape) == 2:
            roles[t.name] = "windows"
    if sorted(roles.values()) != ["images", "windows"] or len(inputs) != 2:
        raise UserError(f"engine inputs {[t.name for t in inputs]} are not (images [N,3,S,S], windows [N,4])")
    return roles


def read_plan_sidecar(plan_path: str) -> dict:
    from mrcnn_trt.fileio import read_json, sidecar_path

    sp = sidecar_path(plan_path)
    if not os.path.isfile(sp):
        raise checks.PlanMismatch(f"{plan_path} has no sidecar {sp}: build plans with mrcnn-build-engine, which "
                                  f"records the TensorRT release and GPU arch they need")
    return read_json(sp)


class TensorRTRunner(Runner):
    """The :class:`mrcnn_trt.runtime.runners.Runner` interface over a TensorRT plan."""

    backend = "tensorrt"

    def __init__(self, plan_path: str, plugins: Optional[str] = None, device: int = 0, check: bool = True):
        from mrcnn_trt.config import Config
        from mrcnn_trt.fileio import sha256_file

        if not plan_path or not os.path.isfile(plan_path):
            raise UserError(f"TensorRT plan not found: {plan_path}")
        self.name = plan_path
        side = read_plan_sidecar(plan_path)
        trt = checks.import_tensorrt(side.get("arch"))
        self.trt = trt
        with open(plan_path, "rb") as f:
            data = f.read()
        if check:
            import hashlib

            checks.check_plan_sidecar(side, plan_path=plan_path, plan_sha256=hashlib.sha256(data).hexdigest(),
                                      trt_version=str(trt.__version__),
                                      visible=checks.visible_compute_capabilities(), device=device)
        self.sidecar = side
        self.config = Config.from_dict(side["config"]) if "config" in side else None
        if side.get("flavor") == "trt":
            from mrcnn_trt.plugins import loader

            lib_path = loader.find_library(plugins)
            want = side.get("plugin_sha256")
            if want and sha256_file(lib_path) != want:
                print(f"warning: {lib_path} differs from the plugin library the plan was built with "
                      f"({side.get('plugin_library')})", file=sys.stderr)
            loader.load(lib_path)
        else:
            trt.init_libnvinfer_plugins(trt.Logger(trt.Logger.WARNING), "")
        from .cuda_mem import DeviceBuffer, open_cuda

        self.cuda = open_cuda(device)
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(data)
        if self.engine is None:
            raise checks.PlanMismatch(f"TensorRT could not deserialize {plan_path} (see the messages above); "
                                      f"rebuild it with this TensorRT and plugin library")
        self.context = self.engine.create_execution_context()
        self.io = engine_io(self.engine, trt)
        self.inputs = [t for t in self.io if t.is_input]
        self.outputs = [t for t in self.io if not t.is_input]
        self.roles = input_roles(self.inputs)
        shapes = [t.shape for t in self.inputs]
        self.fixed_batch = None if any(s[0] < 0 for s in shapes if s) else int(self.inputs[0].shape[0])
        self.stream = self.cuda.stream()
        self._DeviceBuffer = DeviceBuffer
        self.buffers: Dict[str, DeviceBuffer] = {}

    def _buffer(self, name: str, shape, dtype):
        b = self.buffers.get(name)
        nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        if b is None or b.nbytes < nbytes:
            if b is not None:
                b.free()
            b = self._DeviceBuffer(self.cuda, shape, dtype)
            self.buffers[name] = b
        return b

    def run(self, images: np.ndarray, windows: np.ndarray) -> Dict[str, np.ndarray]:
        arrays = {"images": np.ascontiguousarray(images, np.float32),
                  "windows": np.ascontiguousarray(windows, np.float32)}
        n = arrays["images"].shape[0]
        tensor_api = hasattr(self.engine, "num_io_tensors")
        bindings = [0] * len(self.io)
        for t in self.inputs:
            host = arrays[self.roles[t.name]].astype(t.dtype, copy=False)
            shape = (n,) + tuple(t.shape[1:])
            if tensor_api:
                if any(d < 0 for d in t.shape):
                    self.context.set_input_shape(t.name, shape)
            elif any(d < 0 for d in t.shape):
                self.context.set_binding_shape(t.index, shape)
            if host.shape[1:] != tuple(shape[1:]):
                raise UserError(f"input {t.name}: got shape {host.shape}, engine expects {t.shape}")
            buf = self._buffer(t.name, host.shape, host.dtype)
            self.cuda.htod(buf.ptr, host, self.stream)
            bindings[t.index] = buf.ptr
            if tensor_api:
                self.context.set_tensor_address(t.name, buf.ptr)
        results = {}
        for t in self.outputs:
            shape = tuple(self.context.get_tensor_shape(t.name)) if tensor_api else \
                tuple(self.context.get_binding_shape(t.index))
            host = np.empty(shape, dtype=t.dtype)
            buf = self._buffer(t.name, shape, t.dtype)
            bindings[t.index] = buf.ptr
            if tensor_api:
                self.context.set_tensor_address(t.name, buf.ptr)
            results[t.name] = (host, buf)
        handle = self.cuda.stream_handle(self.stream)
        ok = self.context.execute_async_v3(handle) if tensor_api else \
            self.context.execute_async_v2(bindings, handle)
        if not ok:
            raise UserError("TensorRT execution failed (see the messages above)")
        for name, (host, buf) in results.items():
            self.cuda.dtoh(host, buf.ptr, self.stream)
        self.cuda.sync(self.stream)
        out = {name: host for name, (host, _) in results.items()}
        if "count" in out:
            out["count"] = out["count"].astype(np.int32)
        if "masks" in out and out["masks"].dtype != np.float32:
            out["masks"] = out["masks"].astype(np.float32)
        return out

    def close(self):
        for b in self.buffers.values():
            b.free()
        self.buffers = {}
