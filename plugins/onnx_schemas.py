"""ONNX operator schemas for the ``mrcnn`` custom ops.

``register_schemas()`` registers ``mrcnn::PyramidROIAlign``,
``mrcnn::ProposalLayer`` and ``mrcnn::DetectionLayer`` (version 1) with the
``onnx`` package, built from the attribute table in ``plugins/opdefs.py``, so
that

* ``onnx.checker.check_model(model, full_check=True)`` accepts graphs with
  these nodes (attribute names/types, input/output counts and types), and
* shape inference gives their outputs the static shapes of the op contract:
  PyramidROIAlign ``[N, R, C, P, P]`` (dtype of P2), ProposalLayer
  ``[N, post_nms_topk, 4]`` float + ``[N]`` int32, DetectionLayer
  ``[N, max_instances, 6]`` float + ``[N]`` int32;
* ``torch.onnx.export(..., dynamo=True)`` can emit these nodes.

Idempotent (a second call does nothing). The schemas live in the process's
``onnx`` registry only; ONNX Runtime gets the ops from the custom-op library.
"""
from __future__ import annotations

import threading

from .opdefs import DOMAIN, OP_VERSION, OPS

_LOCK = threading.Lock()

# Data tensors: float or float16; geometry tensors are float (as the kernels).
_DATA = ["tensor(float)", "tensor(float16)"]


def _attributes(op: str):
    import onnx
    from onnx.defs import OpSchema

    out = []
    for a in OPS[op]:
        if a.type == "int":
            default = int(a.default)
        elif a.type == "float":
            default = float(a.default)
        else:
            default = [float(x) for x in a.default]
        out.append(OpSchema.Attribute(a.name, onnx.helper.make_attribute(a.name, default), a.doc))
    return out


def _attr_value(ctx, op: str, name: str):
    import onnx

    a = ctx.get_attribute(name)
    if a is None:
        return next(x.default for x in OPS[op] if x.name == name)
    return onnx.helper.get_attribute_value(a)


def _dim(type_proto, axis: int):
    """(value, param) of a dimension of an input type; (None, None) when unknown."""
    t = type_proto.tensor_type
    if not t.HasField("shape") or axis >= len(t.shape.dim):
        return None
    d = t.shape.dim[axis]
    if d.HasField("dim_value"):
        return d.dim_value
    if d.HasField("dim_param"):
        return d.dim_param
    return None


def _set(ctx, idx: int, elem_type: int, shape):
    import onnx

    ctx.set_output_type(idx, onnx.helper.make_tensor_type_proto(elem_type, shape))


def _infer_pyramid(ctx):
    import onnx

    boxes = ctx.get_input_type(0)
    p2 = ctx.get_input_type(1)
    p = int(_attr_value(ctx, "PyramidROIAlign", "pooled_size"))
    elem = p2.tensor_type.elem_type or onnx.TensorProto.FLOAT
    _set(ctx, 0, elem, [_dim(boxes, 0), _dim(boxes, 1), _dim(p2, 1), p, p])


def _infer_proposal(ctx):
    import onnx

    scores = ctx.get_input_type(0)
    post = int(_attr_value(ctx, "ProposalLayer", "post_nms_topk"))
    n = _dim(scores, 0)
    _set(ctx, 0, onnx.TensorProto.FLOAT, [n, post, 4])
    _set(ctx, 1, onnx.TensorProto.INT32, [n])


def _infer_detection(ctx):
    import onnx

    rois = ctx.get_input_type(0)
    m = int(_attr_value(ctx, "DetectionLayer", "max_instances"))
    n = _dim(rois, 0)
    _set(ctx, 0, onnx.TensorProto.FLOAT, [n, m, 6])
    _set(ctx, 1, onnx.TensorProto.INT32, [n])


def _schemas():
    from onnx.defs import OpSchema

    FP = OpSchema.FormalParameter
    pyramid = OpSchema(
        "PyramidROIAlign", DOMAIN, OP_VERSION,
        doc="Crop every normalized box from its FPN level (TF crop_and_resize, bilinear); see plugins/opdefs.py.",
        inputs=[FP("boxes", "tensor(float)", "[N, R, 4] normalized (y1, x1, y2, x2)"),
                FP("P2", "T", "[N, C, H/4, W/4]"), FP("P3", "T", "[N, C, H/8, W/8]"),
                FP("P4", "T", "[N, C, H/16, W/16]"), FP("P5", "T", "[N, C, H/32, W/32]")],
        outputs=[FP("crops", "T", "[N, R, C, P, P]")],
        type_constraints=[("T", _DATA, "feature map type")],
        attributes=_attributes("PyramidROIAlign"),
    )
    pyramid.set_type_and_shape_inference_function(_infer_pyramid)
    proposal = OpSchema(
        "ProposalLayer", DOMAIN, OP_VERSION,
        doc="RPN proposals: sort, decode, clip, NMS; zero-padded; see plugins/opdefs.py.",
        inputs=[FP("scores", "T", "[N, A] foreground probability"),
                FP("deltas", "T", "[N, A, 4] raw RPN deltas"),
                FP("anchors", "tensor(float)", "[A, 4] pixels")],
        outputs=[FP("rois", "tensor(float)", "[N, post_nms_topk, 4] normalized"),
                 FP("count", "tensor(int32)", "[N] valid rows")],
        type_constraints=[("T", _DATA, "score/delta type")],
        attributes=_attributes("ProposalLayer"),
    )
    proposal.set_type_and_shape_inference_function(_infer_proposal)
    detection = OpSchema(
        "DetectionLayer", DOMAIN, OP_VERSION,
        doc="Refine, filter and per-class NMS the classifier output; see plugins/opdefs.py.",
        inputs=[FP("rois", "tensor(float)", "[N, R, 4] normalized"),
                FP("roi_count", "tensor(int32)", "[N] valid rows of rois"),
                FP("probs", "T", "[N, R, K] class probabilities"),
                FP("deltas", "T", "[N, R, K, 4] class-specific deltas"),
                FP("window", "tensor(float)", "[N, 4] image window in padded pixels")],
        outputs=[FP("detections", "tensor(float)", "[N, max_instances, 6] (y1, x1, y2, x2, class, score)"),
                 FP("count", "tensor(int32)", "[N] valid rows")],
        type_constraints=[("T", _DATA, "probability/delta type")],
        attributes=_attributes("DetectionLayer"),
    )
    detection.set_type_and_shape_inference_function(_infer_detection)
    return [pyramid, proposal, detection]


def register_schemas() -> None:
    """Register the three schemas with ``onnx`` (no-op when already registered)."""
    import onnx.defs

    with _LOCK:
        for schema in _schemas():
            if onnx.defs.has(schema.name, schema.since_version, schema.domain):
                continue
            onnx.defs.register_schema(schema)
