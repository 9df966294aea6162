"""Which runner for which model file (the one dispatch of every tool).

    runner = open_runner("model.plan")      # TensorRT (mrcnn_trt.engine.runner)
    runner = open_runner("model.onnx")      # ONNX Runtime (mrcnn_trt.runtime.runners)
    runner = open_runner("weights.pth")     # PyTorch
    runner = open_runner(None)              # the shipped shapes model, PyTorch

The runners themselves live below this package (``mrcnn_trt.runtime`` and
``mrcnn_trt.engine``); this module only chooses one.
"""
from __future__ import annotations

import os
from typing import Optional

from mrcnn_trt.errors import UserError
from mrcnn_trt.runtime.runners import OnnxRunner, Runner, TorchRunner

BACKENDS = ("auto", "tensorrt", "onnxruntime", "torch")


def open_runner(path: Optional[str], backend: str = "auto", threads: int = 2, config=None, ops: str = "native",
                pipelined: bool = False) -> Runner:
    """Pick the runner from the file: .plan/.engine -> TensorRT, .onnx -> ONNX Runtime, else PyTorch.

    ``pipelined``: the runner will share the CPU with reading/scoring threads. ONNX
    Runtime's threads never busy-wait between ops now, pipelined or not (they would
    take the cores from those threads and from other processes: mrcnn_trt.threads)."""
    ext = os.path.splitext(path or "")[1].lower()
    if backend == "auto":
        backend = {".plan": "tensorrt", ".engine": "tensorrt", ".onnx": "onnxruntime"}.get(ext, "torch")
    if backend == "tensorrt":
        from mrcnn_trt.engine.runner import TensorRTRunner

        return TensorRTRunner(path)
    if backend == "onnxruntime":
        if ext != ".onnx":
            raise UserError(f"backend onnxruntime needs a .onnx file, got {path}")
        return OnnxRunner(path, threads=threads, spinning=False)
    if backend == "torch":
        if ext in (".onnx", ".plan", ".engine"):
            raise UserError(f"backend torch needs a .pth checkpoint, got {path}")
        return TorchRunner(path, config=config, ops=ops, threads=threads)
    raise UserError(f"unknown backend {backend!r} (auto|tensorrt|onnxruntime|torch)")
