"""Implementations of the three custom ops that the network can call.

:class:`MaskRCNN` calls ``self.ops.proposal_layer``, ``pyramid_roi_align`` and
``detection_layer``. Which implementation runs is a swappable object:

* :class:`NativeOps` (``"native"``, the default) - the PyTorch operators
  ``torch.ops.mrcnn.*`` on whatever device the tensors are on: the C++ kernels
  on the CPU, the CUDA kernels on a GPU (``plugins/torch_ops.py``). Visible to
  ``torch.compile`` / ``torch.export`` as single operators. Fastest everywhere.
* :class:`TorchOps` (``"torch"``) - the pure-PyTorch references (``plugins/<op>/reference.py``)
  (any device; the definition of the semantics; differentiable crops).
* :class:`CpuKernelOps` (``"cpu"``) - the compiled C++ CPU kernels called
  directly (``mrcnn_trt.plugins.cpu``; CPU results for any input device).

The exporter supplies its own (ONNX custom nodes or standard ONNX ops).
All take the attributes from the config through ``plugins.opdefs``
(``attrs_from_config``) and pass them in the contract's order (``attr_args``).
"""
from __future__ import annotations

from typing import Sequence, Tuple

import torch
from torch import Tensor

from ..errors import UserError
from ..plugins import cpu, torch_ops  # noqa: F401  (torch_ops registers torch.ops.mrcnn.*)
from ..plugins.opdefs import attr_args, attrs_from_config
from ..plugins.detection_layer.reference import detection_layer
from ..plugins.proposal_layer.reference import proposal_layer
from ..plugins.pyramid_roi_align.reference import pyramid_roi_align

ROI_ALIGN, PROPOSAL, DETECTION = "PyramidROIAlign", "ProposalLayer", "DetectionLayer"


class TorchOps:
    name = "torch"

    def __init__(self, config):
        self.config = config
        self.box_attrs = attrs_from_config(config, ROI_ALIGN, pooled_size=config.POOL_SIZE)
        self.mask_attrs = attrs_from_config(config, ROI_ALIGN, pooled_size=config.MASK_POOL_SIZE)
        self.proposal_attrs = attrs_from_config(config, PROPOSAL)
        self.proposal_train_attrs = attrs_from_config(config, PROPOSAL, training=True)
        self.detection_attrs = attrs_from_config(config, DETECTION)

    def roi_align_args(self, mask: bool = False) -> list:
        """The PyramidROIAlign attributes (box or mask head) in the contract's order."""
        return attr_args(ROI_ALIGN, self.mask_attrs if mask else self.box_attrs)

    def proposal_args(self, training: bool = False) -> list:
        """The ProposalLayer attributes (inference or training) in the contract's order."""
        return attr_args(PROPOSAL, self.proposal_train_attrs if training else self.proposal_attrs)

    def pyramid_roi_align(self, boxes: Tensor, feature_maps: Sequence[Tensor], mask: bool = False) -> Tensor:
        return pyramid_roi_align(boxes, feature_maps, *self.roi_align_args(mask))

    def proposal_layer(self, scores: Tensor, deltas: Tensor, anchors: Tensor, training: bool = False
                       ) -> Tuple[Tensor, Tensor, Tensor]:
        return proposal_layer(scores, deltas, anchors, *self.proposal_args(training))

    def detection_layer(self, rois: Tensor, roi_count: Tensor, probs: Tensor, deltas: Tensor, windows: Tensor
                        ) -> Tuple[Tensor, Tensor]:
        return detection_layer(rois, roi_count, probs, deltas, windows, *attr_args(DETECTION, self.detection_attrs))


def _cpu_kernels():
    """The compiled C++ kernels (``mrcnn_trt.plugins.cpu``); a one-line error when not built."""
    if not cpu.available():
        raise UserError("the compiled CPU kernels (mrcnn_trt.plugins._cpu) are not built; reinstall with "
                        "`pip install -e .` or use the reference ops (ops backend 'torch')")
    return cpu


class CpuKernelOps(TorchOps):
    """Same interface, running the compiled C++ kernels (CPU tensors only)."""

    name = "cpu"

    def __init__(self, config):
        super().__init__(config)
        self._k = _cpu_kernels()

    def pyramid_roi_align(self, boxes, feature_maps, mask=False):
        return self._k.pyramid_roi_align(boxes, feature_maps, *self.roi_align_args(mask))

    def proposal_layer(self, scores, deltas, anchors, training=False):
        return self._k.proposal_layer(scores, deltas, anchors, *self.proposal_args(training))

    def detection_layer(self, rois, roi_count, probs, deltas, windows):
        return self._k.detection_layer(rois, roi_count, probs, deltas, windows,
                                       *attr_args(DETECTION, self.detection_attrs))


def _same_data_dtype(tensors: Sequence[Tensor]) -> list:
    """The op contract's data tensors share one type: float16 when all are, else float32
    (e.g. float32 softmax probabilities beside float16 deltas under autocast)."""
    if all(t.dtype == torch.float16 for t in tensors):
        return list(tensors)
    return [t.float() for t in tensors]


class NativeOps(TorchOps):
    """``torch.ops.mrcnn.*`` on the tensors' device (C++ kernels on CPU, CUDA kernels on GPU).

    Same results as :class:`TorchOps` (bit for bit on CPU and CUDA except where
    PyTorch's float32 exp/log2 is off by an ulp). The operators have no
    backward: where autograd needs the gradient of the crops (training),
    ``pyramid_roi_align`` runs the reference instead.
    """

    name = "native"

    def __init__(self, config):
        super().__init__(config)
        _cpu_kernels()

    def pyramid_roi_align(self, boxes, feature_maps, mask=False):
        maps = list(feature_maps[:4])
        if torch.is_grad_enabled() and any(m.requires_grad for m in maps):
            return super().pyramid_roi_align(boxes, feature_maps, mask)
        return torch.ops.mrcnn.pyramid_roi_align(boxes.float(), *_same_data_dtype(maps), *self.roi_align_args(mask))

    def proposal_layer(self, scores, deltas, anchors, training=False):
        s, d = _same_data_dtype([scores.detach(), deltas.detach()])
        rois, count, anchor_index = torch.ops.mrcnn.proposal_layer(s, d, anchors.float(), *self.proposal_args(training))
        return rois, count, anchor_index.long()

    def detection_layer(self, rois, roi_count, probs, deltas, windows):
        p, d = _same_data_dtype([probs.detach(), deltas.detach()])
        return torch.ops.mrcnn.detection_layer(rois.detach().float(), roi_count.int(), p, d, windows.float(),
                                               *attr_args(DETECTION, self.detection_attrs))


#: ops backend name -> its class (the order of ``--ops`` choices)
OPS_BACKENDS = {"native": NativeOps, "torch": TorchOps, "cpu": CpuKernelOps}
BACKENDS = tuple(OPS_BACKENDS)
DEFAULT_BACKEND = "native"


def make_ops(config, backend: str = DEFAULT_BACKEND):
    """The ops object of ``backend`` (native | torch | cpu)."""
    if backend not in OPS_BACKENDS:
        raise ValueError(f"unknown ops backend {backend!r} ({'|'.join(BACKENDS)})")
    return OPS_BACKENDS[backend](config)
