"""PyTorch -> ONNX export (``mrcnn-export``) and ONNX runners."""
