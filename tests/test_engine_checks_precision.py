"""FP16 / INT8 planning per TensorRT release and family (mrcnn_trt.engine.precision)
and what an ONNX file's nodes say about its precision (mrcnn_trt.calib.precision)."""
from __future__ import annotations

import pytest

from mrcnn_trt.calib.precision import OnnxPrecision, onnx_precision
from mrcnn_trt.engine import archs, families, precision
from mrcnn_trt.engine.errors import PrecisionUnsupported
from mrcnn_trt.errors import UserError


# ----------------------------------------------------------------------- precision
F32 = OnnxPrecision(has_qdq=False, has_fp16=False)
QDQ = OnnxPrecision(has_qdq=True, has_fp16=False)
F16 = OnnxPrecision(has_qdq=False, has_fp16=True)


def test_precision_trt10():
    p = precision.plan_precision("10.4.0", fp16=True, int8=False, model=F32)
    assert (p.fp16_flag, p.int8_flag, p.calibrate, p.label) == (True, False, False, "fp16")
    p = precision.plan_precision("8.6.1", fp16=True, int8=True, model=F32, calib_images="imgs")
    assert (p.fp16_flag, p.int8_flag, p.calibrate, p.int8_mode, p.label) == (True, True, True, "calibrated", "int8+fp16")
    p = precision.plan_precision("10.13.3", fp16=False, int8=True, model=QDQ)
    assert (p.int8_flag, p.calibrate, p.int8_mode) == (True, False, "qdq")
    assert precision.plan_precision("10.4.0", fp16=False, int8=False, model=F32).label == "fp32"
    with pytest.raises(PrecisionUnsupported, match="--int8 needs --calib-images"):
        precision.plan_precision("10.4.0", fp16=False, int8=True, model=F32)
    with pytest.raises(PrecisionUnsupported, match="already has Q/DQ"):
        precision.plan_precision("10.4.0", fp16=False, int8=True, model=QDQ, calib_cache="c")
    with pytest.raises(PrecisionUnsupported, match="only make sense with --int8"):
        precision.plan_precision("10.4.0", fp16=False, int8=False, model=F32, calib_cache="c")


RTX = families.Family("rtx", "1.7.1.116", precision_flags=False, calibrators=False, targets=archs.RTX_TARGETS,
                      has_nms=False)


@pytest.mark.parametrize("builder", ["11.1.0", RTX])
def test_precision_strongly_typed(builder):
    """TensorRT 11 and TensorRT for RTX: precision comes from the graph; the
    builder makes the FP16 / Q/DQ graph itself when asked."""
    p = precision.plan_precision(builder, fp16=False, int8=True, model=QDQ)
    assert (p.fp16_flag, p.int8_flag, p.calibrate, p.int8_mode, p.make_qdq) == (False, False, False, "qdq", False)
    assert (p.label, p.source) == ("qdq-int8", "graph")
    p = precision.plan_precision(builder, fp16=True, int8=False, model=F16)
    assert (p.label, p.convert_fp16, p.source) == ("fp16", False, "graph")
    p = precision.plan_precision(builder, fp16=False, int8=False, model=F16)     # an FP16 graph is FP16
    assert p.label == "fp16"
    p = precision.plan_precision(builder, fp16=True, int8=False, model=F32)      # --fp16 on a float32 model
    assert (p.fp16_flag, p.convert_fp16, p.label, p.source) == (False, True, "fp16", "fp16-graph-converted")
    p = precision.plan_precision(builder, fp16=False, int8=True, model=F32, calib_images="imgs")
    assert (p.make_qdq, p.int8_mode, p.label, p.source) == (True, "qdq", "qdq-int8", "qdq-graph-calibrated")
    assert precision.plan_precision(builder, fp16=False, int8=False, model=F32).label == "fp32"
    with pytest.raises(PrecisionUnsupported, match="no INT8 calibrators.*--calib-images"):
        precision.plan_precision(builder, fp16=False, int8=True, model=F32)
    with pytest.raises(PrecisionUnsupported, match="drop --calib-cache"):
        precision.plan_precision(builder, fp16=False, int8=True, model=F32, calib_cache="c")
    with pytest.raises(PrecisionUnsupported, match="already has Q/DQ"):
        precision.plan_precision(builder, fp16=False, int8=True, model=QDQ, calib_images="imgs")
    with pytest.raises(PrecisionUnsupported, match="--int8 with --fp16"):
        precision.plan_precision(builder, fp16=True, int8=True, model=F32, calib_images="imgs")


def test_parse_precision():
    from mrcnn_trt.engine.precision import parse_precision

    assert parse_precision("fp32") == (False, False)
    assert parse_precision("FP16") == (True, False)
    assert parse_precision("int8") == (False, True)
    assert parse_precision("fp16+int8") == parse_precision("int8+fp16") == (True, True)
    with pytest.raises(PrecisionUnsupported, match="precision must be one of"):
        parse_precision("bf16")


def test_onnx_precision_scan(tmp_path):
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    scale = numpy_helper.from_array(np.array(0.1, np.float32), "scale")
    q = helper.make_node("QuantizeLinear", ["x", "scale"], ["xq"])
    dq = helper.make_node("DequantizeLinear", ["xq", "scale"], ["y"])
    m = helper.make_model(helper.make_graph([q, dq], "g", [x], [y], [scale]),
                          opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(m, tmp_path / "qdq.onnx")
    assert onnx_precision(str(tmp_path / "qdq.onnx")) == QDQ
    h = helper.make_tensor_value_info("h", TensorProto.FLOAT16, [1, 4])
    c = helper.make_node("Cast", ["x"], ["h"], to=TensorProto.FLOAT16)
    m = helper.make_model(helper.make_graph([c], "g", [x], [h]), opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(m, tmp_path / "f16.onnx")
    assert onnx_precision(str(tmp_path / "f16.onnx")) == F16
    (tmp_path / "bad.onnx").write_bytes(b"\x00garbage")
    with pytest.raises(UserError, match="cannot read ONNX model"):
        onnx_precision(str(tmp_path / "bad.onnx"))


def test_qdq_model_implies_int8():
    for v in ("8.6.1", "10.4.0", "11.1.0"):
        p = precision.plan_precision(v, fp16=False, int8=False, model=QDQ)
        assert p.int8_mode == "qdq" and not p.calibrate and p.label == "qdq-int8"
    assert precision.plan_precision("10.4.0", fp16=False, int8=False, model=QDQ).int8_flag
