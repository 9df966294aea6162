"""Custom ops (PyramidROIAlign, ProposalLayer, DetectionLayer).

* ``opdefs``   - names, ONNX domain/version and attributes (the one table).
* ``cpu``      - the compiled C++ CPU kernels (pybind11 module ``_cpu``).
* ``ort``      - ONNX Runtime sessions with the custom ops registered.
* ``load()``   - find and load the TensorRT plugin library (``loader``).

Nothing heavy is imported here.
"""
from .opdefs import DOMAIN, OP_VERSION, OPS  # noqa: F401


def load(path=None):
    """Load ``libmrcnn_trt_plugins.so`` into TensorRT's plugin registry (see ``loader``)."""
    from .loader import load as _load

    return _load(path)
