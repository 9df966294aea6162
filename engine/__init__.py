"""TensorRT engines: ``mrcnn-build-engine`` (cli), pre-build/pre-run checks
(checks), the TensorRT runner (runner), device memory helpers (cuda_mem) and
the implicit INT8 calibrators of TensorRT <= 10 (calibrator) with their
provenance-checked caches (calib_cache).

Nothing heavy is imported here; ``tensorrt`` and the CUDA bindings are
imported only by the functions that need them.
"""
