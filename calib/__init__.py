"""INT8 calibration: calibration caches with provenance headers (cache) and
TensorRT calibrators fed by image batches (trt_calibrator).

Nothing heavy is imported here.
"""
