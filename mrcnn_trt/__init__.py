"""mrcnn-trt: PyTorch Mask R-CNN (multimodallearning/pytorch-mask-rcnn layout)
to validated ONNX and TensorRT engines.

Importing this package is cheap: torch, onnxruntime and tensorrt are imported
lazily by the subpackages that need them.
"""
__version__ = "0.1.0"

from .config import Config, preset  # noqa: F401
