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

import os
import time
from typing import Dict, List, Optional, Sequence

import numpy as np

from mrcnn_trt.config import Config
from mrcnn_trt.errors import UserError
from mrcnn_trt.fileio import read_json_object, sidecar_path, verify_model_digest
from mrcnn_trt.model.molding import mold_batch, unmold_detections

from .batcher import pad_batch
from .modelfile import ModelFileError, check_model_file, error_detail, onnx_session


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


def read_sidecar(path: str) -> dict:
    sp = sidecar_path(path)
    if not os.path.isfile(sp):
        raise UserError(f"{path} has no sidecar {sp}; export it with mrcnn-export")
    try:
        return read_json_object(sp, "sidecar")
    except UserError as e:
        raise UserError(f"the sidecar of {path} is unusable ({e}); re-export the model") from None


def sidecar_problems(side: dict, inputs: Dict[str, Sequence], outputs: Dict[str, Sequence]) -> List[str]:
    """Where an ONNX sidecar disagrees with itself or with the graph's input/output
    shapes (``{name: [dims]}``, symbolic dims as strings or None). Empty when it fits."""
    problems = []
    try:
        cfg = Config.from_dict(side["config"])
        size, batch = int(side["image_size"]), int(side["batch"])
        num_classes = int(side["num_classes"])
    except (KeyError, TypeError, ValueError, UserError) as e:
        return [f"unreadable field {e}"]
    if size != cfg.IMAGE_MAX_DIM:
        problems.append(f"image_size {size} but config IMAGE_MAX_DIM {cfg.IMAGE_MAX_DIM}")
    if num_classes != cfg.NUM_CLASSES or len(side.get("class_names", cfg.CLASS_NAMES)) != num_classes:
        problems.append(f"num_classes {num_classes} but config NUM_CLASSES {cfg.NUM_CLASSES} and "
                        f"{len(side.get('class_names', []))} class_names")
    missing = sorted({"images", "windows"} - set(inputs)) + sorted({"detections", "count", "masks"} - set(outputs))
    if missing:
        problems.append(f"the graph lacks {', '.join(missing)} (inputs {sorted(inputs)}, outputs {sorted(outputs)}): "
                        f"not an mrcnn-export model")
    img = list(inputs.get("images") or [])
    if len(img) != 4 or img[1] != 3:
        problems.append(f"graph input 'images' has shape {img}, expected [N, 3, S, S]")
    else:
        if img[2] != size or img[3] != size:
            problems.append(f"image_size {size} but the graph takes {img[2]}x{img[3]} images")
        dynamic = bool(side.get("dynamic_batch"))
        if isinstance(img[0], int) and not dynamic and img[0] != batch:
            problems.append(f"batch {batch} but the graph's batch is {img[0]}")
        if not isinstance(img[0], int) and not dynamic:
            problems.append("the graph has a dynamic batch but the sidecar says a fixed one")
    det = list(outputs.get("detections") or [])
    if det and (len(det) != 3 or det[2] not in (6, None) and not isinstance(det[2], str)):
        problems.append(f"graph output 'detections' has shape {det}, expected [N, D, 6]")
    if len(det) == 3 and isinstance(det[1], int) and det[1] != cfg.DETECTION_MAX_INSTANCES:
        problems.append(f"config DETECTION_MAX_INSTANCES {cfg.DETECTION_MAX_INSTANCES} but the graph gives "
                        f"{det[1]} detections")
    return problems


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
