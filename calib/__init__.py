"""Reduced-precision ONNX models, made and checked with ONNX Runtime.

* :mod:`.qdq`: explicit INT8, a Q/DQ ONNX model calibrated with ONNX Runtime
  (TensorRT 11's only INT8 route, and real INT8 on the ONNX Runtime CPU);
* :mod:`.groups`: the layer groups, targets, methods and defaults (light: ``--help`` reads them);
* :mod:`.stats`: the calibration statistics (C++ kernels);
* :mod:`.fp16`: a float16 ONNX model (float32 I/O and geometry);
* :mod:`.cli`: ``mrcnn-calibrate``.

TensorRT's own implicit INT8 calibrators (TensorRT <= 10) and their caches
are TensorRT code and live in ``mrcnn_trt.engine`` (calibrator, calib_cache).
Nothing heavy is imported here.
"""
