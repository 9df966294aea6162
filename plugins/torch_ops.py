"""The three custom ops as PyTorch operators: ``torch.ops.mrcnn.*``.

Registered when ``mrcnn_trt.plugins.torch_ops`` is imported, with ``torch.library``:

* ``torch.ops.mrcnn.pyramid_roi_align(boxes, P2, P3, P4, P5, pooled_size, image_size, canonical_size,
  canonical_level) -> crops``
* ``torch.ops.mrcnn.proposal_layer(scores, deltas, anchors, pre_nms_topk, post_nms_topk, nms_threshold,
  rpn_bbox_std_dev, image_size) -> (rois, count, anchor_index)``
* ``torch.ops.mrcnn.detection_layer(rois, roi_count, probs, deltas, window, num_classes, min_confidence,
  nms_threshold, max_instances, bbox_std_dev, image_size) -> (detections, count)``

Everything comes from the op contract (``plugins/opdefs.py``): the schema
(tensors in contract order, then the attributes in table order; returns the
node outputs, then the kernel-only outputs), the type rules (geometry float32,
counts int32, data tensors all float32 or all float16; computed in float32)
and the fake kernel (output shapes and dtypes, for ``torch.compile``,
``torch.export`` and meta tensors). Kernels:

* CPU: the C++ kernels (``mrcnn_trt.plugins._cpu``, threads:
  ``torch.get_num_threads()``), the code ONNX Runtime runs;
* CUDA: the CUDA kernels through the C-ABI library ``libmrcnn_cuda_ops.so``
  (``plugins/cuda.py``) on the current stream, workspace from PyTorch's
  caching allocator; the code the TensorRT plugins run.

Semantics: exactly the references ``plugins/<op>/reference.py`` (see plugins/README.md);
CPU and CUDA agree bit for bit. The operators have no autograd formula: their
outputs are not differentiable (the model's ``native`` backend falls back to
the reference crop where gradients are needed).
"""
from __future__ import annotations

from typing import Any, Dict, List, Sequence, Tuple

import torch

from . import cpu, cuda
from .opdefs import DOMAIN, OP_DEFS, op_def, output_shapes, torch_schema, validate_attrs

_DTYPES = {"f32": torch.float32, "i32": torch.int32}


def check_args(op: str, args: Sequence[Any]) -> Tuple[List[torch.Tensor], Dict[str, Any], torch.dtype]:
    """Split an operator call into tensors and attributes and check them against the
    contract: returns (tensors, complete attributes, data dtype). Raises TypeError
    (dtypes) or ValueError (devices, attributes)."""
    d = op_def(op)
    n = len(d.inputs)
    tensors = list(args[:n])
    attrs = validate_attrs(op, dict(zip(d.attr_names, args[n:])))
    dev = tensors[0].device
    data, first = None, None
    for x, t in zip(tensors, d.inputs):
        if x.device != dev:
            raise ValueError(f"{op}: input {t.name} is on {x.device}, {d.inputs[0].name} on {dev}")
        if t.role == "data":
            if x.dtype not in (torch.float32, torch.float16):
                raise TypeError(f"{op}: input {t.name} must be float32 or float16, got {x.dtype}")
            if data is None:
                data, first = x.dtype, t.name
            elif x.dtype != data:
                raise TypeError(f"{op}: input {t.name} is {x.dtype} but {first} is {data} "
                                f"(the data tensors share one type)")
        elif x.dtype != _DTYPES[t.role]:
            raise TypeError(f"{op}: input {t.name} must be {_DTYPES[t.role]}, got {x.dtype}")
    return tensors, attrs, data


def _result(outs: List[torch.Tensor]):
    return outs[0] if len(outs) == 1 else tuple(outs)


def _cpu_kernel(op: str):
    def kernel(*args):
        tensors, attrs, _ = check_args(op, args)
        return _result(cpu.run(op, tensors, attrs))

    return kernel


def _cuda_kernel(op: str):
    def kernel(*args):
        tensors, attrs, _ = check_args(op, args)
        return _result(cuda.run(op, tensors, attrs, extra=True))

    return kernel


def _fake_kernel(op: str):
    d = op_def(op)

    def fake(*args):
        tensors, attrs, data = check_args(op, args)
        shapes = output_shapes(op, [tuple(x.shape) for x in tensors], attrs, extra=True)
        outs = [tensors[0].new_empty(s, dtype=_DTYPES.get(t.role, data))
                for s, t in zip(shapes, d.outputs + d.extra_outputs)]
        return _result(outs)

    return fake


def _register(op: str):
    d = op_def(op)
    custom = torch.library.custom_op(f"{DOMAIN}::{d.torch_name}", _cpu_kernel(op), mutates_args=(),
                                     device_types="cpu", schema=torch_schema(op))
    custom.register_kernel("cuda")(_cuda_kernel(op))
    custom.register_fake(_fake_kernel(op))
    return custom


OPERATORS = {op: _register(op) for op in OP_DEFS}
