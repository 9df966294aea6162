"""The PyTorch runner: a Mask R-CNN checkpoint (``.pth``) or the shipped model, any batch.

    runner = TorchRunner("weights.pth", ops="cpu", threads=2)   # or open_runner("weights.pth")
    runner = TorchRunner.from_model(model)                      # an in-memory MaskRCNN

Same :class:`~mrcnn_trt.runtime.runners.Runner` interface as the exported models'
runners; apart from them because it imports PyTorch (``mrcnn_trt.model``) when
imported, which the ONNX Runtime and TensorRT paths never need.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from mrcnn_trt.lazy import lazy_import
from mrcnn_trt.model.loading import load_model
from mrcnn_trt.threads import configure_torch

from .runners import Runner

torch = lazy_import("torch")


class TorchRunner(Runner):
    backend = "torch"

    def __init__(self, weights: Optional[str], config=None, ops: str = "native", device: str = "cpu",
                 threads: Optional[int] = None):
        configure_torch(threads)   # threads, else one per available core; see mrcnn_trt.threads
        self.model, self.config, _ = load_model(weights, config, ops_backend=ops, device=device)
        self.device = device
        self.name = weights or "shipped shapes model"

    @classmethod
    def from_model(cls, model, device: str = "cpu") -> "TorchRunner":
        """Wrap an in-memory MaskRCNN (e.g. one just built or trained)."""
        r = cls.__new__(cls)
        r.model, r.config, r.device, r.name = model.eval(), model.config, device, "in-memory model"
        return r

    def set_min_confidence(self, value: float) -> None:
        """Another DETECTION_MIN_CONFIDENCE (PyTorch models only: exported ones bake it in)."""
        self.config = self.config.replace(DETECTION_MIN_CONFIDENCE=float(value))
        self.model.set_config(self.config)

    def run(self, images, windows):
        with torch.no_grad():
            d, c, m = self.model(torch.from_numpy(images).to(self.device), torch.from_numpy(windows).to(self.device))
        return {"detections": d.cpu().numpy(), "count": c.cpu().numpy().astype(np.int32),
                "masks": m.float().cpu().numpy()}


def open_checkpoint(path: Optional[str], threads: Optional[int] = 2, config=None, ops: str = "native",
                    device: str = "cpu", **_options) -> TorchRunner:
    """The registry's factory for PyTorch checkpoints and the shipped model (``path`` None)."""
    return TorchRunner(path, config=config, ops=ops, device=device, threads=threads)
