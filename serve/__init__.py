"""Serving on NVIDIA Triton Inference Server (``mrcnn-triton``).

* :mod:`.repository` - writes a Triton model repository from an exported model
  (``mrcnn-triton repo``): an ensemble ``mrcnn`` (encoded image bytes in, one
  ``mrcnn-demo`` JSON document per image out) over a preprocess, a network and
  a postprocess model.
  :mod:`.model_facts` reads and checks the model's sidecar and the options,
  :mod:`.model_check` load-checks an ONNX model, :mod:`.pbtxt` writes each
  ``config.pbtxt`` and :mod:`.model_py` the ``model.py`` of each Python model.
* :mod:`.python_models` - the Python-backend models of that repository (they
  run inside Triton's Python-backend stub and import this package).
* :mod:`.server` - finds a ``tritonserver`` (a full Triton install, or the
  standalone one in the ``nvidia-pytriton`` wheel), runs it on 127.0.0.1 and
  supervises it (``mrcnn-triton serve``); :mod:`.access` decides which
  endpoints are open, :mod:`.shm` keeps its ``/dev/shm`` regions private and
  removes them.
* :mod:`.client` - an HTTP / gRPC client (``mrcnn-triton infer``).

Nothing here imports torch except the load check (through the custom-op
library's package); tritonclient is imported only by the client.
"""
