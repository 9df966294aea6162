"""Implementations of the three custom ops that the network can call.

:class:`MaskRCNN` calls ``self.ops.proposal_layer``, ``pyramid_roi_align`` and
``detection_layer``. Which implementation runs is a swappable object:

* :class:`TorchOps` - the pure-PyTorch references of :mod:`.ops` (default;
  any device).
* :class:`CpuKernelOps` - the compiled C++ CPU kernels (``mrcnn_trt.plugins.cpu``),
  the same code the ONNX Runtime custom ops run.

The exporter supplies its own (ONNX custom nodes or standard ONNX ops).
All take the attributes from the config through ``plugins.opdefs``.
"""
from __future__ import annotations

from typing import Sequence, Tuple

from torch import Tensor

from ..plugins.opdefs import attrs_from_config
from . import ops as ref


class TorchOps:
    name = "torch"

    def __init__(self, config):
        self.config = config
        self.box_attrs = attrs_from_config(config, "PyramidROIAlign", pooled_size=config.POOL_SIZE)
        self.mask_attrs = attrs_from_config(config, "PyramidROIAlign", pooled_size=config.MASK_POOL_SIZE)
        self.proposal_attrs = attrs_from_config(config, "ProposalLayer")
        self.proposal_train_attrs = attrs_from_config(config, "ProposalLayer", training=True)
        self.detection_attrs = attrs_from_config(config, "DetectionLayer")

    def pyramid_roi_align(self, boxes: Tensor, feature_maps: Sequence[Tensor], mask: bool = False) -> Tensor:
        a = self.mask_attrs if mask else self.box_attrs
        return ref.pyramid_roi_align(boxes, feature_maps, a["pooled_size"], a["image_size"],
                                     a["canonical_size"], a["canonical_level"])

    def proposal_layer(self, scores: Tensor, deltas: Tensor, anchors: Tensor, training: bool = False
                       ) -> Tuple[Tensor, Tensor, Tensor]:
        a = self.proposal_train_attrs if training else self.proposal_attrs
        return ref.proposal_layer(scores, deltas, anchors, a["pre_nms_topk"], a["post_nms_topk"],
                                  a["nms_threshold"], a["rpn_bbox_std_dev"], a["image_size"])

    def detection_layer(self, rois: Tensor, roi_count: Tensor, probs: Tensor, deltas: Tensor, windows: Tensor
                        ) -> Tuple[Tensor, Tensor]:
        a = self.detection_attrs
        return ref.detection_layer(rois, roi_count, probs, deltas, windows, a["num_classes"], a["min_confidence"],
                                   a["nms_threshold"], a["max_instances"], a["bbox_std_dev"], a["image_size"])


class CpuKernelOps(TorchOps):
    """Same interface, running the compiled C++ kernels (CPU tensors only)."""

    name = "cpu"

    def __init__(self, config):
        super().__init__(config)
        from ..plugins import cpu

        if not cpu.available():
            from ..errors import UserError

            raise UserError("the compiled CPU kernels (mrcnn_trt.plugins._cpu) are not built; "
                            "reinstall with `pip install -e .`")
        self._k = cpu

    def pyramid_roi_align(self, boxes, feature_maps, mask=False):
        a = self.mask_attrs if mask else self.box_attrs
        return self._k.pyramid_roi_align(boxes, feature_maps, a["pooled_size"], a["image_size"],
                                         a["canonical_size"], a["canonical_level"])

    def proposal_layer(self, scores, deltas, anchors, training=False):
        a = self.proposal_train_attrs if training else self.proposal_attrs
        return self._k.proposal_layer(scores, deltas, anchors, a["pre_nms_topk"], a["post_nms_topk"],
                                      a["nms_threshold"], a["rpn_bbox_std_dev"], a["image_size"])

    def detection_layer(self, rois, roi_count, probs, deltas, windows):
        a = self.detection_attrs
        return self._k.detection_layer(rois, roi_count, probs, deltas, windows, a["num_classes"],
                                       a["min_confidence"], a["nms_threshold"], a["max_instances"],
                                       a["bbox_std_dev"], a["image_size"])


def make_ops(config, backend: str = "torch"):
    if backend == "torch":
        return TorchOps(config)
    if backend == "cpu":
        return CpuKernelOps(config)
    raise ValueError(f"unknown ops backend {backend!r} (torch|cpu)")
