"""PyramidROIAlign: the parts that are this op's own (contract: ``OP_DEFS["PyramidROIAlign"]``, ``plugins/opdefs.py``).

* ``reference.py`` - the pure-PyTorch reference (the semantics), ``pyramid_roi_align(...)``;
* ``binding.py``   - how the network's call reaches each implementation (``OpBinding``);
* ``expand.py``    - its standard-ONNX expansion (``export/standardize.py``, standard flavor);
* ``pyramid_roi_align.h``, ``pyramid_roi_align_cpu.cpp``, ``pyramid_roi_align_cuda.cu`` - its C++ params, CPU and CUDA
  kernels.

Importing this package loads nothing else (no torch, no onnx).
"""
