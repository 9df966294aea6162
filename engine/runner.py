"""Run a plan built by ``mrcnn-build-engine`` (TensorRT or TensorRT for RTX).

    runner = TensorRTRunner("model.plan")
    out = runner(images, windows)   # images float32 [N,3,S,S] molded, windows float32 [N,4]
    out["detections"], out["count"], out["masks"]

Before deserializing, the plan's sidecar (``model.plan.json``) is checked
(:func:`mrcnn_trt.engine.sidecars.check_plan_sidecar`): the file is the one
that was built (sha256), the installed family and release are the ones that
built it, and the visible GPU is one of its targets. The plugin library of
that family is loaded when the model has ``mrcnn`` nodes.

I/O uses TensorRT's tensor API (``num_io_tensors``, ``set_tensor_address``,
``execute_async_v3``; TensorRT >= 8.5 and TensorRT for RTX). A fixed-batch
plan gets partial batches zero-padded; a dynamic-batch plan (sidecar
``batch_range`` [1, opt, N]) gets its input shape set per call and is never
padded. Device memory comes from cuda-python, or pycuda when only that is
installed (:mod:`.cuda_mem`).

Importing this module registers the backend ``tensorrt`` (``.plan``, ``.engine``)
with :func:`mrcnn_trt.runtime.registry.open_runner`; the entry point
``mrcnn_trt.runners: tensorrt`` (setup.py) names this module so that the
registry finds it without importing ``engine``.
"""
from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from mrcnn_trt.config import Config
from mrcnn_trt.errors import UserError
from mrcnn_trt.fileio import check_regular_file, sha256_file
from mrcnn_trt.runtime.registry import register_runner
from mrcnn_trt.runtime.runners import Runner

from . import gpu, sidecars
from .cuda_mem import DeviceBuffer, open_cuda
from .errors import PlanMismatch
from .families import import_family
from .plugin_library import open_library


@dataclass
class IOTensor:
    name: str
    is_input: bool
    shape: Tuple[int, ...]
    dtype: np.dtype
    index: int            # I/O position


def engine_io(engine, trt) -> List[IOTensor]:
    """The engine's inputs and outputs (tensor API)."""
    out = []
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        is_in = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
        out.append(IOTensor(name, is_in, tuple(engine.get_tensor_shape(name)),
                            np.dtype(trt.nptype(engine.get_tensor_dtype(name))), i))
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


class TensorRTRunner(Runner):
    """The :class:`mrcnn_trt.runtime.runners.Runner` interface over a TensorRT plan."""

    backend = "tensorrt"

    def __init__(self, plan_path: str, plugins: Optional[str] = None, device: int = 0, check: bool = True):
        if not plan_path:
            raise UserError("no TensorRT plan given")
        check_regular_file(plan_path, what="TensorRT plan")
        self.name = plan_path
        side = sidecars.read_plan_sidecar(plan_path)
        family_name, _ = sidecars.plan_family(side)
        fam = import_family(family_name, ",".join(sidecars.plan_targets(side)) or None)
        trt = self.trt = fam.module
        self.family = fam
        with open(plan_path, "rb") as f:
            data = f.read()
        if check:
            sidecars.check_plan_sidecar(side, plan_path=plan_path, plan_sha256=hashlib.sha256(data).hexdigest(),
                                        family=fam.name, family_version=fam.version,
                                        visible=gpu.visible_compute_capabilities(), device=device)
        self.sidecar = side
        self.config = Config.from_dict(side["config"]) if "config" in side else None
        if side.get("flavor") == "trt":
            lib = open_library(fam, plugins)
            want = side.get("plugin_sha256")
            if want and sha256_file(lib.path) != want:
                print(f"warning: {lib.path} differs from the plugin library the plan was built with "
                      f"({side.get('plugin_library')})", file=sys.stderr)
        elif hasattr(trt, "init_libnvinfer_plugins"):
            trt.init_libnvinfer_plugins(trt.Logger(trt.Logger.WARNING), "")
        self.cuda = open_cuda(device)
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(data)
        if self.engine is None:
            raise PlanMismatch(f"{fam.label} could not deserialize {plan_path} (see the messages above); rebuild it "
                               f"with this release and plugin library")
        self.context = self.engine.create_execution_context()
        self.io = engine_io(self.engine, trt)
        self.inputs = [t for t in self.io if t.is_input]
        self.outputs = [t for t in self.io if not t.is_input]
        self.roles = input_roles(self.inputs)
        dynamic = any(t.shape and t.shape[0] < 0 for t in self.inputs)
        if dynamic:
            rng = side.get("batch_range") or [1, side.get("batch", 1), side.get("batch", 1)]
            self.fixed_batch = None                 # never padded: the input shape follows each call
            self.max_batch = int(rng[-1])
        else:
            self.fixed_batch = int(self.inputs[0].shape[0])
            self.max_batch = self.fixed_batch
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
        arrays = {"images": images, "windows": windows}   # float32, contiguous, 1..max_batch: Runner.__call__
        n = images.shape[0]
        for t in self.inputs:
            host = arrays[self.roles[t.name]].astype(t.dtype, copy=False)
            shape = (n,) + tuple(t.shape[1:])
            if any(d < 0 for d in t.shape):
                self.context.set_input_shape(t.name, shape)
            if host.shape[1:] != tuple(shape[1:]):
                raise UserError(f"input {t.name}: got shape {host.shape}, engine expects {t.shape}")
            buf = self._buffer(t.name, host.shape, host.dtype)
            self.cuda.htod(buf.ptr, host, self.stream)
            self.context.set_tensor_address(t.name, buf.ptr)
        results = {}
        for t in self.outputs:
            shape = tuple(self.context.get_tensor_shape(t.name))
            host = np.empty(shape, dtype=t.dtype)
            buf = self._buffer(t.name, shape, t.dtype)
            self.context.set_tensor_address(t.name, buf.ptr)
            results[t.name] = (host, buf)
        if not self.context.execute_async_v3(self.cuda.stream_handle(self.stream)):
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


def open_plan(path: str, **_options) -> TensorRTRunner:
    """The registry's factory for ``.plan`` / ``.engine`` files (CPU options do not apply)."""
    return TensorRTRunner(path)


register_runner("tensorrt", (".plan", ".engine"), open_plan, what="a .plan or .engine file")
