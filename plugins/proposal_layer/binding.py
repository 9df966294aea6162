"""How the network calls ProposalLayer (:class:`~mrcnn_trt.plugins.opbinding.OpBinding`).

``ops.proposal_layer(scores [N,A], deltas [N,A,4], anchors [A,4], training=False)``
-> ``(rois, count, anchor_index)``: ``training`` keeps ``POST_NMS_ROIS_TRAINING``
proposals instead of ``POST_NMS_ROIS_INFERENCE``; the anchor index is int64, as the
reference returns it (an exported node has no anchor index: None).
"""
from __future__ import annotations

from ..opbinding import OpBinding
from ..opdefs import attrs_from_config
from .reference import proposal_layer

OP = "ProposalLayer"


def _config(cfg, training: bool = False) -> dict:
    return attrs_from_config(cfg, OP, training=training)


BINDING = OpBinding(OP, proposal_layer, options=("training",), config=_config, int64_outputs=("anchor_index",))
