"""ProposalLayer: the parts that are this op's own (contract: ``OP_DEFS["ProposalLayer"]``, ``plugins/opdefs.py``).

* ``reference.py`` - the pure-PyTorch reference (the semantics), ``proposal_layer(...)``;
* ``binding.py``   - how the network's call reaches each implementation (``OpBinding``);
* ``expand.py``    - its standard-ONNX expansion (``export/standardize.py``, standard flavor);
* ``proposal_layer.h``, ``proposal_layer_cpu.cpp``, ``proposal_layer_cuda.cu`` - its C++ params, CPU and CUDA
  kernels.

Importing this package loads nothing else (no torch, no onnx).
"""
