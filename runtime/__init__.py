"""Running a model: the one image batcher, the runner interface with its
PyTorch and ONNX Runtime runners, and the detection results format.

Above ``model``, ``data`` and ``plugins``; below ``export``, ``calib``,
``engine`` (whose TensorRT runner implements :class:`runners.Runner`) and
``eval`` (which picks a runner for a file: ``mrcnn_trt.eval.runners.open_runner``).
"""
