"""TensorRT engines for both TensorRT families (TensorRT, TensorRT for RTX).

* :func:`build_engine` (module ``build``) - ONNX -> plan + sidecar, the API
  behind ``mrcnn-build-engine`` (``cli``);
* ``plugin_builder`` / ``plugins_cli`` - ``mrcnn-build-plugins``, the plugin library for the
  installed family; ``plugin_library`` - finding, checking and loading it;
* ``families`` (what the installed TensorRT offers), ``archs`` (GPU
  architectures per family and release), ``gpu`` (visible GPUs),
  ``device_code`` (the plugin library's CUDA architectures), ``sidecars``
  (ONNX and plan sidecars), ``precision`` (FP16 / INT8 planning), ``errors``
  (exit codes);
* ``runner`` - TensorRTRunner; ``cuda_mem`` - device memory; ``calibrator``
  and ``calib_cache`` - the implicit INT8 calibrators of TensorRT <= 10.

Nothing heavy is imported here; ``tensorrt`` / ``tensorrt_rtx_bindings`` and
the CUDA bindings are imported only by the functions that need them.
"""


from .build import build_engine  # noqa: F401  (ONNX -> plan + sidecar)
from .plugin_builder import build_plugins  # noqa: F401  (the plugin library for the installed family)
