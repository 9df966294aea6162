"""One inference interface for every backend, and one ``detect`` on top of it.

A runner maps molded batches to raw network outputs:

    runner.run(images float32 [N,3,S,S] RGB 0..255, windows float32 [N,4])
        -> {"detections": [N,D,6], "count": [N] int32, "masks": [N,D,28,28]}

``OnnxRunner`` (here: either ONNX flavor in ONNX Runtime, custom ops registered
when needed; a fixed-batch model pads smaller batches, a dynamic-batch one runs
any batch up to its maximum), ``TorchRunner`` (:mod:`.torch_runner`: a .pth, any
batch) and the TensorRT runner (``mrcnn_trt.engine.runner``) all implement it;
:func:`detect` does the molding and unmolding (``mrcnn_trt.model.molding``) for
all of them, so the backends differ only in the network itself.
:func:`mrcnn_trt.runtime.registry.open_runner` picks the runner for a file.
"""
from __future__ import annotations

import time
from typing import Dict, List, Optional, Sequence

import numpy as np

from mrcnn_trt.config import Config
from mrcnn_trt.errors import UserError
from mrcnn_trt.fileio import verify_model_digest
from mrcnn_trt.model.molding import mold_batch, unmold_detections

from .batcher import pad_batch
from .modelfile import ModelFileError, check_model_file, error_detail, onnx_session
from .onnx_sidecar import read_sidecar, sidecar_problems


class Runner:
    """``fixed_batch``: the static batch of the network (smaller batches are zero
    padded to it, the padding's outputs dropped), None when any batch runs;
    ``max_batch``: the largest batch a call takes (None: no limit)."""

    backend = "?"
    config: Config
    fixed_batch: Optional[int] = None   # engines with a static batch
    max_batch: Optional[int] = None      # dynamic-batch models: the top of their range
    last_latency_ms: float = 0.0         # time of the last network call only

    def run(self, images: np.ndarray, windows: np.ndarray) -> Dict[str, np.ndarray]:
        raise NotImplementedError

    def batch_limit(self) -> Optional[int]:
        """The largest batch one call takes (fixed or dynamic), None if unlimited."""
        return self.fixed_batch if self.fixed_batch is not None else self.max_batch

    def __call__(self, images, windows):
        n = images.shape[0]
        limit = self.batch_limit()
        if limit is not None and not 1 <= n <= limit:
            raise UserError(f"{getattr(self, 'name', None) or 'the model'} takes 1..{limit} images per call, got {n}")
        if self.fixed_batch is not None:
            images, windows = pad_batch(images, windows, self.fixed_batch)
        t0 = time.perf_counter()
        out = self.run(np.ascontiguousarray(images, np.float32), np.ascontiguousarray(windows, np.float32))
        self.last_latency_ms = (time.perf_counter() - t0) * 1000.0
        return {k: v[:n] for k, v in out.items()}


class OnnxRunner(Runner):
    backend = "onnxruntime"

    def __init__(self, path: str, threads: int = 2, providers=None, check_sidecar: bool = True,
                 spinning: bool = False):
        check_model_file(path)
        side = read_sidecar(path)
        if check_sidecar:
            verify_model_digest(path, side)
        self.session = onnx_session(path, threads=threads, providers=providers, spinning=spinning)
        if check_sidecar:
            shapes = lambda args: {a.name: list(a.shape) for a in args}  # noqa: E731
            problems = sidecar_problems(side, shapes(self.session.get_inputs()), shapes(self.session.get_outputs()))
            if problems:
                raise UserError(f"{path}.json does not match the model ({'; '.join(problems)}): re-export the "
                                f"model or restore its sidecar")
        self.sidecar = side
        self.config = Config.from_dict(side["config"])
        if side.get("dynamic_batch"):   # any batch 1..N, no padding
            self.fixed_batch, self.max_batch = None, int(side["batch"])
        else:
            self.fixed_batch = int(side["batch"])
        self.name = path

    def run(self, images, windows):
        try:
            d, c, m = self.session.run(["detections", "count", "masks"], {"images": images, "windows": windows})
        except Exception as e:  # noqa: BLE001 - a graph that loads but cannot run (ONNX Runtime's Fail, ...)
            raise ModelFileError(f"ONNX Runtime cannot run {self.name}: {error_detail(e)}") from None
        return {"detections": d, "count": c.astype(np.int32), "masks": m}


def unmold_outputs(out: Dict[str, np.ndarray], infos, with_masks: bool = True) -> List[Dict[str, np.ndarray]]:
    """Raw runner outputs of a batch -> one original ``detect`` dict per image."""
    return [unmold_detections(out["detections"][i], int(out["count"][i]), out["masks"][i], info, with_masks)
            for i, info in enumerate(infos)]


def detect(runner: Runner, images: Sequence[np.ndarray], with_masks: bool = True) -> List[Dict[str, np.ndarray]]:
    """The original ``detect`` contract on any backend (see MaskRCNN.detect)."""
    if not images:
        return []
    batch, windows, infos = mold_batch(images, runner.config)
    return unmold_outputs(runner(batch, windows), infos, with_masks)


def open_onnx(path: str, threads: int = 2, spinning: bool = False, **_options) -> OnnxRunner:
    """The registry's factory for ``.onnx`` files (mrcnn_trt.runtime.registry)."""
    return OnnxRunner(path, threads=threads, spinning=spinning)
