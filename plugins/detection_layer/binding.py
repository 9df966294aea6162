"""How the network calls DetectionLayer (:class:`~mrcnn_trt.plugins.opbinding.OpBinding`).

``ops.detection_layer(rois [N,R,4], roi_count [N], probs [N,R,K], deltas [N,R,K,4],
windows [N,4])`` -> ``(detections, count)``: the contract's inputs as they are, the
attributes of the config (``attrs_from_config``).
"""
from __future__ import annotations

from ..opbinding import OpBinding
from .reference import detection_layer

BINDING = OpBinding("DetectionLayer", detection_layer)
