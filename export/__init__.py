"""PyTorch -> ONNX export (``mrcnn-export``): the exporter, the standard-op expansion of the
custom nodes (standardize) and TensorRT's supported-operator tables (trt_ops_table)."""
