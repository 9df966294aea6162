"""What precision an ONNX model carries: Q/DQ nodes (explicit INT8) and float16
tensors. Read by ``mrcnn-calibrate`` (only float32 models are calibrated) and
by ``mrcnn-build-engine`` (strongly typed TensorRT builds take precision from
the graph).
"""
from __future__ import annotations

from dataclasses import dataclass

from mrcnn_trt.errors import UserError


@dataclass(frozen=True)
class OnnxPrecision:
    """What an ONNX model's tensors look like (for the TensorRT 11 rules)."""

    has_qdq: bool      # QuantizeLinear/DequantizeLinear nodes (explicit quantization)
    has_fp16: bool     # float16 initializers or values


def onnx_precision(path: str) -> OnnxPrecision:
    """Scan an ONNX file (without external data) for Q/DQ nodes and float16 tensors."""
    import onnx

    try:
        m = onnx.load(path, load_external_data=False)
    except Exception as e:
        raise UserError(f"cannot read ONNX model {path}: {e}") from None
    qdq = {"QuantizeLinear", "DequantizeLinear"}
    nodes = list(m.graph.node)
    for f in m.functions:
        nodes.extend(f.node)
    has_qdq = any(n.op_type in qdq for n in nodes)
    f16 = onnx.TensorProto.FLOAT16
    has_fp16 = (any(t.data_type == f16 for t in m.graph.initializer)
                or any(v.type.tensor_type.elem_type == f16
                       for v in list(m.graph.input) + list(m.graph.value_info) + list(m.graph.output)))
    return OnnxPrecision(has_qdq, has_fp16)
