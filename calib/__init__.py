"""Reduced precision: INT8 calibration and FP16 conversion.

* :mod:`.cache`, :mod:`.trt_calibrator`: TensorRT <= 10 implicit INT8
  (calibrators fed by image batches, caches with a provenance header);
* :mod:`.qdq`: explicit INT8, a Q/DQ ONNX model calibrated with ONNX Runtime
  (TensorRT 11's only INT8 route, and real INT8 on the ONNX Runtime CPU);
* :mod:`.fp16`: a float16 ONNX model (float32 I/O and geometry);
* :mod:`.cli`: ``mrcnn-calibrate``.

Nothing heavy is imported here.
"""
