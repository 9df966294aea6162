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


def build_engine(onnx_path, **kwargs):
    """Build a plan; see :func:`mrcnn_trt.engine.build.build_engine`."""
    from .build import build_engine as _build_engine

    return _build_engine(onnx_path, **kwargs)


def build_plugins(**kwargs):
    """Build the plugin library; see :func:`mrcnn_trt.engine.plugin_builder.build_plugins`."""
    from .plugin_builder import build_plugins as _build_plugins

    return _build_plugins(**kwargs)
