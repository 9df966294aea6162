"""The PyTorch Mask R-CNN of multimodallearning/pytorch-mask-rcnn, modernised
(batches of N >= 1, no crash on zero detections) and exact to the original's
inference semantics (``docs/model.md``).

    from mrcnn_trt.model import build_model, load_weights
    model = build_model("coco")                 # or a Config
    load_weights(model, "mask_rcnn_coco.pth")   # strict, weights_only
    results = model.detect([image])             # original contract

The names below are imported on first use, so that ``mrcnn_trt.model.molding``
(NumPy + Pillow only) can be used without importing torch (the Triton
pre/postprocessing models do).
"""
import importlib

_LAZY = {
    "MaskRCNN": ".maskrcnn",
    "build_model": ".loading",
    "load_weights": ".loading",
    "save_checkpoint": ".checkpoint",
    "load_model": ".loading",
}

__all__ = sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
