"""ONNX operator schemas for the ``mrcnn`` custom ops.

``register_schemas()`` registers ``mrcnn::PyramidROIAlign``,
``mrcnn::ProposalLayer`` and ``mrcnn::DetectionLayer`` (version 1) with the
``onnx`` package, built from the op contract in ``plugins/opdefs.py``
(attributes, tensors, roles and shape rules), so that

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

from .opdefs import DOMAIN, OP_DEFS, OP_VERSION, OPS, dims_str

_LOCK = threading.Lock()

# Data tensors: float or float16 (type constraint "T"); geometry float, counts int32.
_DATA = ["tensor(float)", "tensor(float16)"]
_ROLE_TYPES = {"f32": "tensor(float)", "i32": "tensor(int32)", "data": "T"}


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


def _inference(op: str):
    """Shape/type inference from the contract: each output dim is a constant, an
    attribute's value or the input dim its size symbol is bound to; data outputs
    take the element type of the first data input."""
    import onnx

    d = OP_DEFS[op]
    first = {}   # symbol -> (input index, axis) of its first appearance
    for i, t in enumerate(d.inputs):
        for k, dim in enumerate(t.dims):
            if isinstance(dim, str) and dim not in d.attr_names:
                first.setdefault(dim, (i, k))
    data_in = next(i for i, t in enumerate(d.inputs) if t.role == "data")
    elem = {"f32": onnx.TensorProto.FLOAT, "i32": onnx.TensorProto.INT32}

    def infer(ctx):
        data_elem = ctx.get_input_type(data_in).tensor_type.elem_type or onnx.TensorProto.FLOAT
        for j, t in enumerate(d.outputs):
            shape = []
            for dim in t.dims:
                if isinstance(dim, int):
                    shape.append(dim)
                elif dim in d.attr_names:
                    shape.append(int(_attr_value(ctx, op, dim)))
                else:
                    i, k = first[dim]
                    shape.append(_dim(ctx.get_input_type(i), k))
            ctx.set_output_type(j, onnx.helper.make_tensor_type_proto(elem.get(t.role, data_elem), shape))

    return infer


def _schemas():
    from onnx.defs import OpSchema

    FP = OpSchema.FormalParameter
    out = []
    for op, d in OP_DEFS.items():
        schema = OpSchema(
            op, DOMAIN, OP_VERSION, doc=f"{d.doc} See plugins/opdefs.py.",
            inputs=[FP(t.name, _ROLE_TYPES[t.role], f"{dims_str(t)} {t.doc}") for t in d.inputs],
            outputs=[FP(t.name, _ROLE_TYPES[t.role], f"{dims_str(t)} {t.doc}") for t in d.outputs],
            type_constraints=[("T", _DATA, "data type (float32 or float16)")],
            attributes=_attributes(op),
        )
        schema.set_type_and_shape_inference_function(_inference(op))
        out.append(schema)
    return out


def register_schemas() -> None:
    """Register the three schemas with ``onnx`` (no-op when already registered)."""
    import onnx.defs

    with _LOCK:
        for schema in _schemas():
            if onnx.defs.has(schema.name, schema.since_version, schema.domain):
                continue
            onnx.defs.register_schema(schema)
