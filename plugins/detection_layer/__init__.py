"""DetectionLayer: the parts that are this op's own (contract: ``OP_DEFS["DetectionLayer"]``, ``plugins/opdefs.py``).

* ``reference.py`` - the pure-PyTorch reference (the semantics), ``detection_layer(...)``;
* ``binding.py``   - how the network's call reaches each implementation (``OpBinding``);
* ``expand.py``    - its standard-ONNX expansion (``export/standardize.py``, standard flavor);
* ``detection_layer.h``, ``detection_layer_cpu.cpp``, ``detection_layer_cuda.cu`` - its C++ params, CPU and CUDA
  kernels.

Importing this package loads nothing else (no torch, no onnx).
"""
