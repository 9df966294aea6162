"""Running a model: the one image batcher, the runner interface with its
ONNX Runtime and PyTorch runners, the runner registry that every tool opens a
model file through (:func:`registry.open_runner`), and the detection results format.

Above ``model``, ``data`` and ``plugins``; below ``export``, ``calib``,
``engine`` (whose TensorRT runner implements :class:`runners.Runner` and
registers itself with the registry through an entry point) and ``eval``.
"""
