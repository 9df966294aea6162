"""How the network calls PyramidROIAlign (:class:`~mrcnn_trt.plugins.opbinding.OpBinding`).

``ops.pyramid_roi_align(boxes [N,R,4], feature_maps [P2, P3, P4, P5], mask=False)``:
``mask`` picks the mask head's crop size (``MASK_POOL_SIZE``, 14) instead of the box
head's (``POOL_SIZE``, 7). The crops need a gradient in training: the operators have
no backward, so there the reference crops.
"""
from __future__ import annotations

from ..opbinding import OpBinding
from ..opdefs import attrs_from_config
from .reference import pyramid_roi_align

OP = "PyramidROIAlign"


def _config(cfg, mask: bool = False) -> dict:
    return attrs_from_config(cfg, OP, pooled_size=cfg.MASK_POOL_SIZE if mask else cfg.POOL_SIZE)


def _inputs(boxes, feature_maps) -> list:
    return [boxes, *feature_maps[:4]]


BINDING = OpBinding(OP, pyramid_roi_align, options=("mask",), config=_config, inputs=_inputs, grad_fallback=True)
