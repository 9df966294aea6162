"""The C++ CPU kernels of the custom ops, on torch tensors.

Same signatures and return values as the PyTorch references in
``plugins/reference.py`` (``crop_and_resize``, ``nms``) and
``plugins/<op>/reference.py`` (``pyramid_roi_align``, ``proposal_layer``, ``detection_layer``); the results
are equal to the references (bit for bit except where the platform's
``expf``/``log2f`` differ from PyTorch's by an ulp). Inputs may live on any
device and have any float dtype: float32 and float16 run natively (computed in
float32), other dtypes are converted to float32 first; results are CPU
tensors (boxes float32, counts int32, indices int64; crops in the dtype of the
feature maps). Coordinates are (y1, x1, y2, x2) as in the references.

``threads``: worker threads of one call (default: ``torch.get_num_threads()``).
The compiled module is ``mrcnn_trt.plugins._cpu``; :func:`available` says
whether it was built.
"""
from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from .opdefs import op_def

try:  # built by setup.py (tools/native_ext.py)
    from . import _cpu
    _IMPORT_ERROR = None
except ImportError as e:  # pragma: no cover - depends on the build
    _cpu = None
    _IMPORT_ERROR = e


def available() -> bool:
    """True when the compiled kernels (``mrcnn_trt.plugins._cpu``) can be used."""
    return _cpu is not None


def _lib():
    if _cpu is None:
        raise RuntimeError(
            "mrcnn_trt.plugins._cpu is not built (reinstall with `pip install -e .` and a C++17 compiler): "
            f"{_IMPORT_ERROR}")
    return _cpu


def _threads(threads: int | None) -> int:
    return max(1, int(threads if threads is not None else torch.get_num_threads()))


def _data(t: Tensor) -> np.ndarray:
    """A float32/float16 C-contiguous CPU array of a data tensor (features, scores, ...)."""
    t = t.detach().cpu()
    if t.dtype not in (torch.float32, torch.float16):
        t = t.float()
    return t.contiguous().numpy()


def _f32(t: Tensor) -> np.ndarray:
    return t.detach().cpu().float().contiguous().numpy()


def _i32(t: Tensor) -> np.ndarray:
    return t.detach().cpu().to(torch.int32).contiguous().numpy()


def _same_data_dtype(*ts: Tensor) -> Tuple[np.ndarray, ...]:
    """Data tensors that must share one dtype: float16 only if all are float16."""
    if all(t.dtype == torch.float16 for t in ts):
        return tuple(_data(t) for t in ts)
    return tuple(_f32(t) for t in ts)


def crop_and_resize(image: Tensor, boxes: Tensor, box_ind: Tensor, crop_size: int,
                    extrapolation_value: float = 0.0, threads: int | None = None) -> Tensor:
    """TF ``crop_and_resize``: ``[N,C,H,W]`` x ``[K,4]`` normalized boxes -> ``[K,C,P,P]`` (dtype of image)."""
    out = _lib().crop_and_resize(_data(image), _f32(boxes), _i32(box_ind), int(crop_size),
                                 float(extrapolation_value), _threads(threads))
    return torch.from_numpy(out).to(image.dtype)


def nms(boxes: Tensor, scores: Tensor, threshold: float, max_keep: int | None = None) -> Tensor:
    """Greedy +1-area NMS; kept indices (int64) in descending score order (see plugins/reference.py nms)."""
    keep = _lib().nms(_f32(boxes), _f32(scores), float(threshold), -1 if max_keep is None else int(max_keep))
    return torch.from_numpy(keep)


def pyramid_roi_align(boxes: Tensor, feature_maps: Sequence[Tensor], pool_size: int, image_size: int,
                      canonical_size: float = 224.0, canonical_level: int = 4,
                      threads: int | None = None) -> Tensor:
    """Crop each normalized box ``[N,R,4]`` from its FPN level -> ``[N,R,C,P,P]`` (dtype of P2)."""
    if len(feature_maps) != 4:
        raise ValueError("pyramid_roi_align needs 4 feature maps (P2..P5)")
    maps = list(_same_data_dtype(*feature_maps))
    attrs = dict(pooled_size=int(pool_size), image_size=int(image_size), canonical_size=float(canonical_size),
                 canonical_level=int(canonical_level))
    out = _lib().pyramid_roi_align(_f32(boxes), maps, attrs, _threads(threads))
    return torch.from_numpy(out).to(feature_maps[0].dtype)


def proposal_layer(scores: Tensor, deltas: Tensor, anchors: Tensor, pre_nms_topk: int, post_nms_topk: int,
                   nms_threshold: float, rpn_bbox_std_dev: Sequence[float], image_size: int,
                   threads: int | None = None) -> Tuple[Tensor, Tensor, Tensor]:
    """RPN proposals: rois ``[N,post,4]`` normalized float32, count ``[N]`` int32, anchor_index ``[N,post]`` int64."""
    s, d = _same_data_dtype(scores, deltas)
    attrs = dict(pre_nms_topk=int(pre_nms_topk), post_nms_topk=int(post_nms_topk),
                 nms_threshold=float(nms_threshold), rpn_bbox_std_dev=[float(x) for x in rpn_bbox_std_dev],
                 image_size=int(image_size))
    rois, count, anchor_index = _lib().proposal_layer(s, d, _f32(anchors), attrs, _threads(threads))
    return torch.from_numpy(rois), torch.from_numpy(count), torch.from_numpy(anchor_index).long()


def detection_layer(rois: Tensor, roi_count: Tensor, probs: Tensor, deltas: Tensor, window: Tensor,
                    num_classes: int, min_confidence: float, nms_threshold: float, max_instances: int,
                    bbox_std_dev: Sequence[float], image_size: int,
                    threads: int | None = None) -> Tuple[Tensor, Tensor]:
    """Final detections ``[N,max_instances,6]`` (y1,x1,y2,x2 pixels, class, score) float32 and count ``[N]`` int32."""
    p, d = _same_data_dtype(probs, deltas)
    attrs = dict(num_classes=int(num_classes), min_confidence=float(min_confidence),
                 nms_threshold=float(nms_threshold), max_instances=int(max_instances),
                 bbox_std_dev=[float(x) for x in bbox_std_dev], image_size=int(image_size))
    dets, count = _lib().detection_layer(_f32(rois), _i32(roi_count), p, d, _f32(window), attrs, _threads(threads))
    return torch.from_numpy(dets), torch.from_numpy(count)


#: the compiled module takes each input converted by its contract role
_CONVERT = {"f32": _f32, "i32": _i32, "data": _data}


def run(op: str, inputs: Sequence[Tensor], attrs: dict, threads: int | None = None) -> list:
    """One op of the contract on CPU tensors in contract order (``plugins/opdefs.py``):
    data tensors float32 or float16, geometry float32, counts int32, complete
    attributes. Returns the node outputs, then the kernel-only outputs, as CPU
    tensors of the contract's dtypes (what ``torch.ops.mrcnn.*`` returns).

    Calls the module's generic ``run(op, inputs, attrs, threads)`` with the inputs
    converted by their contract role; nothing here is specific to an op."""
    d = op_def(op)
    if len(inputs) != len(d.inputs):
        raise ValueError(f"{op}: expected {len(d.inputs)} inputs, got {len(inputs)}")
    args = [_CONVERT[t.role](x) for x, t in zip(inputs, d.inputs)]
    a = {k: (list(v) if isinstance(v, tuple) else v) for k, v in attrs.items()}
    return [torch.from_numpy(o) for o in _lib().run(d.name, args, a, _threads(threads))]


def contract_json() -> str:
    """The op contract as compiled into the module (host layer, ``plugins/host``)."""
    return _lib().contract_json()


def attr_tables():
    """The C++ attribute tables (``plugins/common/op_params.h``): op -> list of dicts."""
    return _lib().attr_tables()


def param_defaults():
    """Attribute values of default-constructed C++ params structs: op -> {name: value}."""
    return _lib().param_defaults()


def validate(op: str, attrs: dict) -> dict:
    """Check ``attrs`` of ``op`` with the C++ validation; returns the complete dict (ValueError if invalid)."""
    return _lib().validate(op, dict(attrs))
