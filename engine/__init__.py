"""TensorRT engines: ``mrcnn-build-engine`` (cli), pre-build/pre-run checks
(checks), the TensorRT runner (runner) and device memory helpers (cuda_mem).

Nothing heavy is imported here; ``tensorrt`` and the CUDA bindings are
imported only by the functions that need them.
"""
