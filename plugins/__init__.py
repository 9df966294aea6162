"""Custom ops (PyramidROIAlign, ProposalLayer, DetectionLayer).

* ``opdefs``      - the op contract: names, attributes, tensors (the one table).
* ``torch_ops``   - the PyTorch operators ``torch.ops.mrcnn.*`` (registered on
  import of ``mrcnn_trt.plugins.torch_ops``, which the ``native`` ops backend does;
  this package itself does not load torch, so the contract is light to import).
* ``cpu``         - the compiled C++ CPU kernels (pybind11 module ``_cpu``).
* ``cuda``        - the CUDA kernels for PyTorch (``libmrcnn_cuda_ops.so``, ctypes).
* ``ort``         - ONNX Runtime sessions with the custom ops registered.
* ``load()``      - find and load the TensorRT plugin library (``loader``).
* ``<op>``        - each op's own Python parts, one subpackage per op folder
  (``pyramid_roi_align``, ``proposal_layer``, ``detection_layer``): its PyTorch
  reference (``reference``), its ``OpBinding`` (``binding``: how the network's call
  reaches each implementation) and its standard-ONNX expansion (``expand``).
* ``reference``   - the references' shared building blocks (box decode, NMS, crops).
* ``opbinding``   - :class:`OpBinding` and the loader of every op's binding.
* ``onnx_builder`` - the graph builder of the standard-ONNX expansions.
"""
from .loader import load as _load
from .opdefs import DOMAIN, OP_VERSION, OPS  # noqa: F401


def load(path=None):
    """Load ``libmrcnn_trt_plugins.so`` into TensorRT's plugin registry (see ``loader``)."""
    return _load(path)
