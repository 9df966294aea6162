"""Custom ops (PyramidROIAlign, ProposalLayer, DetectionLayer).

* ``opdefs``      - the op contract: names, attributes, tensors (the one table).
* ``torch_ops``   - the PyTorch operators ``torch.ops.mrcnn.*`` (registered on
  import of this package when torch is installed).
* ``cpu``         - the compiled C++ CPU kernels (pybind11 module ``_cpu``).
* ``cuda``        - the CUDA kernels for PyTorch (``libmrcnn_cuda_ops.so``, ctypes).
* ``ort``         - ONNX Runtime sessions with the custom ops registered.
* ``load()``      - find and load the TensorRT plugin library (``loader``).
"""
from .loader import load as _load
from .opdefs import DOMAIN, OP_VERSION, OPS  # noqa: F401

try:
    from . import torch_ops  # noqa: F401  (registers torch.ops.mrcnn.*)
except ModuleNotFoundError as e:  # pragma: no cover - torch not installed
    if e.name != "torch":
        raise


def load(path=None):
    """Load ``libmrcnn_trt_plugins.so`` into TensorRT's plugin registry (see ``loader``)."""
    return _load(path)
