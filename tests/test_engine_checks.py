"""Pre-build / pre-run checks of engines (mrcnn_trt.engine: archs, families,
gpu, device_code, sidecars, precision, plugin_library, errors) and
mrcnn-build-engine without TensorRT.

TensorRT itself is not installed here (TensorRT for RTX may be: the builds
with it are in tests/test_rtx.py). Where a check needs a ``tensorrt`` module
(the CLI's TensorRT-version and GPU checks), a tiny stand-in named
``FakeTensorRT`` provides only ``__version__``; it is used for nothing else.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import types

import numpy as np
import pytest

from mrcnn_trt.engine import archs, checks, device_code, families, sidecars
from mrcnn_trt.engine.errors import (ArchUnsupported, GpuMismatch, PlanMismatch, PluginArchMissing,
                                     PluginLibraryMismatch, PrecisionUnsupported, SidecarMismatch, TensorRTMissing)
from mrcnn_trt.errors import UserError
from mrcnn_trt.fileio import sha256_file

HAVE_TENSORRT = importlib.util.find_spec("tensorrt") is not None
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ----------------------------------------------------------------------- arch / version matrix
@pytest.mark.parametrize("trt,arch,ok", [
    ("8.5.3.1", "sm_50", True), ("8.5.3", "sm_52", True), ("8.6.1", "sm_50", False), ("10.0.1", "sm_52", False),
    ("8.5.3", "sm_61", True), ("8.6.1.6", "sm_61", True), ("8.6.1", "sm_60", True), ("10.0.1", "sm_61", False),
    ("8.6.1", "sm_70", True), ("10.4.0", "sm_70", True), ("10.5.0", "sm_70", False), ("11.1.0", "sm_70", False),
    ("8.6.1", "sm_75", True), ("10.13.3", "sm_75", True), ("11.1.0", "sm_75", True),
    ("10.4.0", "sm_86", True), ("11.1.0", "sm_86", True), ("11.1.0", "sm_89", True), ("10.13.3", "sm_90", True),
    ("10.7.0", "sm_120", False), ("10.8.0", "sm_120", True), ("11.1.0", "sm_120", True),
    ("8.4.3", "sm_86", False), ("8.2.1", "sm_61", False),
])
def test_trt_arch_matrix(trt, arch, ok):
    if ok:
        assert checks.check_trt_supports_arch(trt, arch).first <= checks.parse_trt_version(trt)[:2]
    else:
        with pytest.raises(ArchUnsupported):
            checks.check_trt_supports_arch(trt, arch)


def test_arch_errors_say_what_to_install():
    with pytest.raises(ArchUnsupported, match=r"TensorRT 8\.5\.3"):
        checks.check_trt_supports_arch("8.6.1", "sm_52")
    with pytest.raises(ArchUnsupported, match=r"TensorRT 8\.6\.1"):
        checks.check_trt_supports_arch("10.4.0", "sm_61")
    with pytest.raises(ArchUnsupported, match=r"TensorRT 10\.4"):
        checks.check_trt_supports_arch("10.13.3", "sm_70")
    with pytest.raises(ArchUnsupported, match=r"too old"):
        checks.check_trt_supports_arch("8.0.1", "sm_75")
    with pytest.raises(ArchUnsupported, match="not a GPU architecture this project supports"):
        checks.arch_support("sm_99")
    assert "8.6.1" in checks.recommended_tensorrt("sm_61")
    assert "10.x" in checks.recommended_tensorrt("sm_86")


@pytest.mark.parametrize("text,cc", [("sm_61", 61), ("sm_86", 86), ("sm_120", 120), (" sm_75 ", 75), ("86", 86),
                                     ("8.6", 86), ("12.0", 120), ("compute_89", 89), ("SM_89", 89), ("sm89", 89)])
def test_parse_arch(text, cc):
    assert checks.parse_arch(text) == cc


@pytest.mark.parametrize("bad", ["6", "sm_6", "sm_8.6", "SM_86x", "8.6.1", "1234", "", "ampere"])
def test_parse_arch_rejects(bad):
    with pytest.raises(UserError, match="is not a GPU architecture; write sm_86, 86 or 8.6"):
        checks.parse_arch(bad)


def test_parse_trt_version():
    assert checks.parse_trt_version("10.4.0.26") == (10, 4, 0)
    assert checks.parse_trt_version("8.6.1") == (8, 6, 1)
    assert checks.parse_trt_version("11.1") == (11, 1, 0)
    with pytest.raises(ValueError):
        checks.parse_trt_version("unknown")


def test_exit_codes_are_distinct():
    codes = list(checks.EXIT_CODES.values())
    assert len(codes) == len(set(codes))
    assert all(c not in (0, 1, 2, 3, 130) for c in codes)   # 2: generic user error, 3: missing module
    from mrcnn_trt.engine.calib_cache import StaleCalibrationCache
    assert StaleCalibrationCache.exit_code == checks.EXIT_CODES["stale-calibration-cache"]


def test_matrix_markdown_lists_every_arch():
    md = checks.arch_matrix_markdown()
    for cc in checks.ARCH_SUPPORT:
        assert f"| sm_{cc} |" in md


# ----------------------------------------------------------------------- GPU
def test_check_gpu_arch():
    assert checks.check_gpu_arch([86], "sm_86") == 86
    assert checks.check_gpu_arch([61, 86], "sm_86", device=1) == 86
    with pytest.raises(GpuMismatch, match="no CUDA GPU is visible"):
        checks.check_gpu_arch([], "sm_61")
    with pytest.raises(GpuMismatch, match=r"GPU 0 is sm_75.*--arch sm_75"):
        checks.check_gpu_arch([75], "sm_86")
    with pytest.raises(GpuMismatch, match="GPU 2 is not visible"):
        checks.check_gpu_arch([86], "sm_86", device=2)


class FakeDriver:
    """The four CUDA driver calls visible_compute_capabilities makes, over a list of (major, minor)."""

    def __init__(self, ccs, count_status=0, fail_at=None):
        self.ccs, self.count_status, self.fail_at = ccs, count_status, fail_at

    def cuDeviceGetCount(self, n):
        n._obj.value = len(self.ccs)
        return self.count_status

    def cuDeviceGet(self, dev, i):
        dev._obj.value = i
        return 100 if i == self.fail_at else 0

    def cuDeviceGetAttribute(self, out, attr, dev):
        out._obj.value = self.ccs[dev.value][{75: 0, 76: 1}[attr]]
        return 0


def test_visible_compute_capabilities(monkeypatch):
    from mrcnn_trt.engine import gpu

    monkeypatch.setattr(gpu, "_driver", lambda: FakeDriver([(8, 6), (7, 5), (12, 0)]))
    assert gpu.visible_compute_capabilities() == [86, 75, 120]
    monkeypatch.setattr(gpu, "_driver", lambda: FakeDriver([(8, 6), (7, 5)], fail_at=1))
    assert gpu.visible_compute_capabilities() == [86]            # the devices before the failing one
    monkeypatch.setattr(gpu, "_driver", lambda: FakeDriver([(8, 6)], count_status=100))
    assert gpu.visible_compute_capabilities() == []              # the count call failed
    monkeypatch.setattr(gpu, "_driver", lambda: None)             # no libcuda, or cuInit failed
    assert gpu.visible_compute_capabilities() == []

    def broken():
        raise RuntimeError("driver oddity")

    monkeypatch.setattr(gpu, "_driver", broken)
    assert gpu.visible_compute_capabilities() == []              # never raises


# ----------------------------------------------------------------------- cuobjdump
# Real output of CUDA 11.8 cuobjdump on a library built with
# -gencode arch=compute_61,code=sm_61 -gencode arch=compute_80,code=sm_80 -gencode arch=compute_86,code=compute_86
CUOBJDUMP_ELF = """ELF file    1: libk.1.sm_61.cubin
ELF file    2: libk.2.sm_80.cubin
ELF file    3: libk.3.sm_61.cubin
ELF file    4: libk.4.sm_80.cubin
"""
CUOBJDUMP_PTX = "PTX file    1: libk.1.sm_86.ptx\n"
CUOBJDUMP_NONE = "cuobjdump info    : File 'e' does not contain device code\n"


def test_parse_cuobjdump_real_output():
    code = checks.parse_cuobjdump(CUOBJDUMP_ELF + CUOBJDUMP_PTX)
    assert code.sass == {61, 80}
    assert code.ptx == {86}
    assert checks.parse_cuobjdump(CUOBJDUMP_NONE) == checks.DeviceCode()
    assert checks.parse_cuobjdump(CUOBJDUMP_ELF).ptx == frozenset()


def test_parse_cuobjdump_variants():
    text = ("ELF file    1: libmrcnn_trt_plugins.1.sm_50.cubin\n"
            "ELF file    2: libmrcnn_trt_plugins.2.sm_90a.cubin\n"     # arch-specific: not forward compatible
            "ELF file    3: libmrcnn_trt_plugins.3.sm_120.cubin\n"
            "PTX file    1: libmrcnn_trt_plugins.1.sm_120.ptx\n")
    code = checks.parse_cuobjdump(text)
    assert code.sass == {50, 120}
    assert code.ptx == {120}


@pytest.mark.parametrize("arch,how", [
    ("sm_61", "sass"), ("sm_80", "sass"),
    ("sm_86", "sass-compatible"),   # sm_80 cubin runs on 8.6
    ("sm_62", "sass-compatible"),
    ("sm_89", "sass-compatible"),
    ("sm_90", "ptx"),               # JIT from compute_86
    ("sm_75", None),                # no 7.x cubin, PTX 86 too new
    ("sm_60", None),                # 6.1 cubin does not run on 6.0
    ("sm_52", None),
])
def test_code_for_arch(arch, how):
    code = checks.parse_cuobjdump(CUOBJDUMP_ELF + CUOBJDUMP_PTX)
    assert checks.code_for_arch(code, arch) == how


def test_check_plugin_arch_message():
    code = checks.parse_cuobjdump(CUOBJDUMP_ELF + CUOBJDUMP_PTX)
    assert checks.check_plugin_arch(code, "sm_61") == "sass"
    with pytest.raises(PluginArchMissing, match=r"no device code for sm_75 \(SASS sm_61,sm_80; PTX compute_86\)"):
        checks.check_plugin_arch(code, "sm_75", library="libmrcnn_trt_plugins.so")


def test_parse_embedded_archs():
    code = device_code.parse_embedded_archs("sass:50,52,61,70,75,80,86 ptx:86")
    assert device_code.parse_embedded_archs("sass:50,52,61,70,75,80,86;ptx:86") == code
    assert code.sass == {50, 52, 61, 70, 75, 80, 86} and code.ptx == {86}
    assert checks.code_for_arch(code, "sm_89") == "sass-compatible"
    assert device_code.parse_embedded_archs("") == checks.DeviceCode()
    code = device_code.parse_embedded_archs("sass:75 ptx:75")                # mrcnn-build-plugins --cuda-archs 75
    assert [checks.code_for_arch(code, a) for a in ("sm_75", "sm_89", "sm_120")] == ["sass", "ptx", "ptx"]


def test_library_device_code_with_cuobjdump(tmp_path):
    """With a cuobjdump on the machine, parse a real library's device code."""
    cached = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          ".cache", "cuda118", "cuda", "bin", "cuobjdump")   # tools/fetch_cuda118.sh
    exe = checks.find_cuobjdump() or os.environ.get("MRCNN_CUDA118_CUOBJDUMP") or cached
    if not os.path.isfile(exe):
        pytest.skip("cuobjdump not installed")
    code = checks.library_device_code(sys.executable, cuobjdump=exe)   # a host-only binary
    assert code == checks.DeviceCode()


# ----------------------------------------------------------------------- ONNX sidecar
def _model(tmp_path, **over):
    import onnx
    from onnx import TensorProto, helper

    onnx_path = tmp_path / "model.onnx"
    # a real (tiny) ONNX graph: mrcnn-build-engine loads the file before it looks for TensorRT
    g = helper.make_graph([helper.make_node("Relu", ["images"], ["detections"])], "stand-in",
                          [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 256, 256])],
                          [helper.make_tensor_value_info("detections", TensorProto.FLOAT, [1, 3, 256, 256])])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(onnx_path))
    side = {"onnx_sha256": sha256_file(onnx_path), "flavor": "trt", "image_size": 256, "batch": 1,
            "num_classes": 4, "class_names": ["BG", "a", "b", "c"], "mean_pixel": [123.7, 116.8, 103.9],
            "opset": 17, "op_versions": {"mrcnn": 1}, "config": {"IMAGE_MIN_DIM": 256}}
    side.update(over)
    (tmp_path / "model.onnx.json").write_text(json.dumps(side))
    return str(onnx_path), side


def test_sidecar_ok(tmp_path):
    path, side = _model(tmp_path)
    assert checks.check_onnx_sidecar(path)["num_classes"] == 4
    assert checks.needs_plugins(side)
    assert not checks.needs_plugins({**side, "flavor": "standard"})


def test_sidecar_missing(tmp_path):
    path, _ = _model(tmp_path)
    os.unlink(path + ".json")
    with pytest.raises(SidecarMismatch, match="model.onnx.json not found"):
        checks.check_onnx_sidecar(path)


def test_sidecar_of_another_file(tmp_path):
    path, _ = _model(tmp_path)
    with open(path, "ab") as f:
        f.write(b"changed")
    with pytest.raises(SidecarMismatch, match="does not match its sidecar"):
        checks.check_onnx_sidecar(path)


@pytest.mark.parametrize("over,msg", [
    ({"flavor": "tflite"}, "unknown flavor"),
    ({"op_versions": {"mrcnn": 2}}, "op set version 2"),
])
def test_sidecar_bad_fields(tmp_path, over, msg):
    path, _ = _model(tmp_path, **over)
    with pytest.raises(SidecarMismatch, match=msg):
        checks.check_onnx_sidecar(path)


def test_sidecar_incomplete_and_garbage(tmp_path):
    path, side = _model(tmp_path)
    del side["image_size"]
    (tmp_path / "model.onnx.json").write_text(json.dumps(side))
    with pytest.raises(SidecarMismatch, match="lacks field"):
        checks.check_onnx_sidecar(path)
    (tmp_path / "model.onnx.json").write_text("{not json")
    with pytest.raises(SidecarMismatch, match="not valid JSON"):
        checks.check_onnx_sidecar(path)
    with pytest.raises(UserError, match="ONNX model not found"):
        checks.check_onnx_sidecar(str(tmp_path / "nope.onnx"))


# ----------------------------------------------------------------------- precision
F32 = checks.OnnxPrecision(has_qdq=False, has_fp16=False)
QDQ = checks.OnnxPrecision(has_qdq=True, has_fp16=False)
F16 = checks.OnnxPrecision(has_qdq=False, has_fp16=True)


def test_precision_trt10():
    p = checks.plan_precision("10.4.0", fp16=True, int8=False, model=F32)
    assert (p.fp16_flag, p.int8_flag, p.calibrate, p.label) == (True, False, False, "fp16")
    p = checks.plan_precision("8.6.1", fp16=True, int8=True, model=F32, calib_images="imgs")
    assert (p.fp16_flag, p.int8_flag, p.calibrate, p.int8_mode, p.label) == (True, True, True, "calibrated", "int8+fp16")
    p = checks.plan_precision("10.13.3", fp16=False, int8=True, model=QDQ)
    assert (p.int8_flag, p.calibrate, p.int8_mode) == (True, False, "qdq")
    assert checks.plan_precision("10.4.0", fp16=False, int8=False, model=F32).label == "fp32"
    with pytest.raises(PrecisionUnsupported, match="--int8 needs --calib-images"):
        checks.plan_precision("10.4.0", fp16=False, int8=True, model=F32)
    with pytest.raises(PrecisionUnsupported, match="already has Q/DQ"):
        checks.plan_precision("10.4.0", fp16=False, int8=True, model=QDQ, calib_cache="c")
    with pytest.raises(PrecisionUnsupported, match="only make sense with --int8"):
        checks.plan_precision("10.4.0", fp16=False, int8=False, model=F32, calib_cache="c")


RTX = families.Family("rtx", "1.7.1.116", precision_flags=False, calibrators=False, targets=archs.RTX_TARGETS,
                      has_nms=False)


@pytest.mark.parametrize("builder", ["11.1.0", RTX])
def test_precision_strongly_typed(builder):
    """TensorRT 11 and TensorRT for RTX: precision comes from the graph; the
    builder makes the FP16 / Q/DQ graph itself when asked."""
    p = checks.plan_precision(builder, fp16=False, int8=True, model=QDQ)
    assert (p.fp16_flag, p.int8_flag, p.calibrate, p.int8_mode, p.make_qdq) == (False, False, False, "qdq", False)
    assert (p.label, p.source) == ("qdq-int8", "graph")
    p = checks.plan_precision(builder, fp16=True, int8=False, model=F16)
    assert (p.label, p.convert_fp16, p.source) == ("fp16", False, "graph")
    p = checks.plan_precision(builder, fp16=False, int8=False, model=F16)     # an FP16 graph is FP16
    assert p.label == "fp16"
    p = checks.plan_precision(builder, fp16=True, int8=False, model=F32)      # --fp16 on a float32 model
    assert (p.fp16_flag, p.convert_fp16, p.label, p.source) == (False, True, "fp16", "fp16-graph-converted")
    p = checks.plan_precision(builder, fp16=False, int8=True, model=F32, calib_images="imgs")
    assert (p.make_qdq, p.int8_mode, p.label, p.source) == (True, "qdq", "qdq-int8", "qdq-graph-calibrated")
    assert checks.plan_precision(builder, fp16=False, int8=False, model=F32).label == "fp32"
    with pytest.raises(PrecisionUnsupported, match="no INT8 calibrators.*--calib-images"):
        checks.plan_precision(builder, fp16=False, int8=True, model=F32)
    with pytest.raises(PrecisionUnsupported, match="drop --calib-cache"):
        checks.plan_precision(builder, fp16=False, int8=True, model=F32, calib_cache="c")
    with pytest.raises(PrecisionUnsupported, match="already has Q/DQ"):
        checks.plan_precision(builder, fp16=False, int8=True, model=QDQ, calib_images="imgs")
    with pytest.raises(PrecisionUnsupported, match="--int8 with --fp16"):
        checks.plan_precision(builder, fp16=True, int8=True, model=F32, calib_images="imgs")


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
    assert checks.onnx_precision(str(tmp_path / "qdq.onnx")) == QDQ
    h = helper.make_tensor_value_info("h", TensorProto.FLOAT16, [1, 4])
    c = helper.make_node("Cast", ["x"], ["h"], to=TensorProto.FLOAT16)
    m = helper.make_model(helper.make_graph([c], "g", [x], [h]), opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(m, tmp_path / "f16.onnx")
    assert checks.onnx_precision(str(tmp_path / "f16.onnx")) == F16
    (tmp_path / "bad.onnx").write_bytes(b"\x00garbage")
    with pytest.raises(UserError, match="cannot read ONNX model"):
        checks.onnx_precision(str(tmp_path / "bad.onnx"))


# ----------------------------------------------------------------------- plan sidecar
def _plan_side(**over):
    side = {"format": sidecars.PLAN_FORMAT, "plan_sha256": "ab" * 32, "tensorrt": "10.4.0.26", "arch": "sm_86"}
    side.update(over)
    return side


def test_plan_sidecar_checks():
    """Older sidecars (tensorrt + arch only) are TensorRT plans for one arch."""
    kw = dict(plan_path="m.plan", plan_sha256="ab" * 32, family="tensorrt", family_version="10.4.0.26", visible=[86])
    sidecars.check_plan_sidecar(_plan_side(), **kw)
    sidecars.check_plan_sidecar(_plan_side(tensorrt="10.4.0.11"), **kw)   # other build number: same release
    with pytest.raises(PlanMismatch, match="built with TensorRT 10.3.0 but TensorRT 10.4.0.26"):
        sidecars.check_plan_sidecar(_plan_side(tensorrt="10.3.0"), **kw)
    with pytest.raises(PlanMismatch, match="sha256 differs"):
        sidecars.check_plan_sidecar(_plan_side(plan_sha256="cd" * 32), **kw)
    with pytest.raises(PlanMismatch, match="not a mrcnn-trt-plan/1"):
        sidecars.check_plan_sidecar({"tensorrt": "10.4.0"}, **kw)
    with pytest.raises(GpuMismatch, match="built for sm_86 but GPU 0 is sm_75"):
        sidecars.check_plan_sidecar(_plan_side(), **{**kw, "visible": [75]})
    with pytest.raises(GpuMismatch, match="no CUDA GPU"):
        sidecars.check_plan_sidecar(_plan_side(), **{**kw, "visible": []})


def test_plan_sidecar_families_and_targets():
    rtx = _plan_side(family="rtx", family_version="1.7.1.116", tensorrt=None, targets=["sm_86", "sm_89", "sm_120"],
                     arch="sm_86")
    kw = dict(plan_path="m.plan", plan_sha256="ab" * 32, family="rtx", family_version="1.7.1.116")
    for cc in (86, 89, 120):                       # any of the plan's targets runs it
        sidecars.check_plan_sidecar(rtx, **kw, visible=[cc])
    with pytest.raises(GpuMismatch, match=r"built for sm_86,sm_89,sm_120 but GPU 0 is sm_75"):
        sidecars.check_plan_sidecar(rtx, **kw, visible=[75])
    with pytest.raises(PlanMismatch, match="built with TensorRT for RTX 1.7.1.116 but TensorRT 10.4.0 is running"):
        sidecars.check_plan_sidecar(rtx, **{**kw, "family": "tensorrt", "family_version": "10.4.0"}, visible=[86])
    with pytest.raises(PlanMismatch, match="built with TensorRT 10.4.0.26 but TensorRT for RTX 1.7.1.116"):
        sidecars.check_plan_sidecar(_plan_side(), **kw, visible=[86])
    with pytest.raises(PlanMismatch, match="built with TensorRT for RTX 1.6.0 but TensorRT for RTX 1.7.1.116"):
        sidecars.check_plan_sidecar({**rtx, "family_version": "1.6.0"}, **kw, visible=[86])
    assert sidecars.plan_targets(rtx) == ["sm_86", "sm_89", "sm_120"]
    assert sidecars.plan_family(_plan_side()) == ("tensorrt", "10.4.0.26")


# ----------------------------------------------------------------------- CLI
def _files(folder):
    return sorted(os.listdir(folder))


@pytest.mark.skipif(HAVE_TENSORRT, reason="TensorRT is installed")
def test_cli_without_tensorrt_one_line_no_file(tmp_path, capsys):
    from mrcnn_trt.engine.cli import main

    path, _ = _model(tmp_path)
    before = _files(tmp_path)
    rc = main([path, "--arch", "sm_61", "--family", "tensorrt"])
    err = capsys.readouterr().err.strip()
    assert rc == TensorRTMissing.exit_code
    assert len(err.splitlines()) == 1
    assert "TensorRT" in err and "not installed" in err and "8.6.1" in err and "pip install" in err
    assert _files(tmp_path) == before       # no plan, no sidecar, no temporary file
    # the same when the ONNX file does not even exist (nothing is written either)
    rc = main([str(tmp_path / "missing.onnx"), "--arch", "sm_61", "-o", str(tmp_path / "x.plan")])
    assert rc == 2 and _files(tmp_path) == before
    assert capsys.readouterr().err.strip() == f"error: ONNX model not found: {tmp_path / 'missing.onnx'}"


@pytest.mark.skipif(HAVE_TENSORRT, reason="TensorRT is installed")
def test_cli_process_without_tensorrt(tmp_path):
    path, _ = _model(tmp_path)
    r = subprocess.run([sys.executable, "-m", "mrcnn_trt.engine.cli", path, "--arch", "sm_86", "--family", "tensorrt"],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == TensorRTMissing.exit_code
    assert len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith("error: ")
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "model.plan").exists()


def test_cli_help_and_argument_errors(tmp_path, capsys):
    from mrcnn_trt.engine.cli import main

    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "--calib-images" in out and "--family" in out and "sm_86,sm_89,sm_120" in out
    assert main(["m.onnx", "--arch", "sm_61"]) == 2                 # the missing file first, before anything else
    assert "ONNX model not found: m.onnx" in capsys.readouterr().err
    path, _ = _model(tmp_path)
    before = _files(tmp_path)
    with pytest.raises(SystemExit) as e:          # the grammar is checked by the parser: one error line
        main([path, "--arch", "sm61x"])
    assert e.value.code == 2
    assert "'sm61x' is not a GPU architecture; write sm_86, 86 or 8.6" in capsys.readouterr().err
    assert main([path, "--arch", "sm_61", "--calib-cache", "c"]) == PrecisionUnsupported.exit_code
    assert main([path, "--arch", "sm_99"]) == ArchUnsupported.exit_code
    assert "sm_99 is not a GPU architecture" in capsys.readouterr().err
    for bad in (["--workspace", "0"], ["--batch", "0"], ["--calib-count", "0"], ["--family", "tensorrt-rtx"]):
        with pytest.raises(SystemExit) as e:
            main([path, "--arch", "sm_86", *bad])
        assert e.value.code == 2
    assert _files(tmp_path) == before


class FakeTensorRT(types.ModuleType):
    """Stand-in for the ``tensorrt`` module with only a version (used solely to
    reach the CLI's TensorRT-version / GPU / sidecar checks without TensorRT)."""

    def __init__(self, version):
        super().__init__("tensorrt")
        self.__version__ = version


@pytest.fixture
def fake_tensorrt(monkeypatch):
    def install(version):
        monkeypatch.setitem(sys.modules, "tensorrt", FakeTensorRT(version))
    return install


def test_cli_checks_with_fake_tensorrt(tmp_path, capsys, fake_tensorrt):
    from mrcnn_trt.engine.cli import main

    path, _ = _model(tmp_path)
    before = _files(tmp_path)
    fake_tensorrt("8.6.1.6")
    assert main([path, "--arch", "sm_52"]) == ArchUnsupported.exit_code
    assert "TensorRT 8.5.3" in capsys.readouterr().err
    fake_tensorrt("10.4.0.26")
    assert main([path, "--arch", "sm_61"]) == ArchUnsupported.exit_code
    assert "TensorRT 8.6.1" in capsys.readouterr().err
    if not checks.visible_compute_capabilities():
        assert main([path, "--arch", "sm_86"]) == GpuMismatch.exit_code
        assert "no CUDA GPU is visible" in capsys.readouterr().err
    with open(path, "ab") as f:
        f.write(b"edited")
    assert main([path, "--arch", "sm_86"]) == SidecarMismatch.exit_code
    assert "does not match its sidecar" in capsys.readouterr().err
    assert _files(tmp_path) == before


@pytest.mark.skipif(HAVE_TENSORRT, reason="TensorRT is installed")
def test_import_tensorrt_missing():
    with pytest.raises(TensorRTMissing, match=r"for sm_70.*TensorRT 10\.4"):
        checks.import_tensorrt("sm_70")


def test_runner_without_plan_sidecar(tmp_path):
    from mrcnn_trt.engine.runner import TensorRTRunner

    plan = tmp_path / "m.plan"
    plan.write_bytes(b"plan")
    with pytest.raises(PlanMismatch, match="has no sidecar"):
        TensorRTRunner(str(plan))
    with pytest.raises(UserError, match="plan not found"):
        TensorRTRunner(str(tmp_path / "none.plan"))


def test_runner_input_roles():
    import numpy as np

    from mrcnn_trt.engine.runner import IOTensor, input_roles

    f = np.dtype(np.float32)
    ins = [IOTensor("windows", True, (2, 4), f, 1), IOTensor("images", True, (2, 3, 64, 64), f, 0)]
    assert input_roles(ins) == {"windows": "windows", "images": "images"}
    ins = [IOTensor("input.1", True, (2, 3, 64, 64), f, 0), IOTensor("input.2", True, (2, 4), f, 1)]
    assert input_roles(ins) == {"input.1": "images", "input.2": "windows"}
    with pytest.raises(UserError, match="are not"):
        input_roles([IOTensor("images", True, (2, 3, 64, 64), f, 0)])


# ----------------------------------------------------------------------- plugin library loader
def test_loader_search_order(tmp_path, monkeypatch):
    from mrcnn_trt.plugins import loader

    monkeypatch.delenv(loader.ENV_VAR, raising=False)
    lib = tmp_path / "libmrcnn_trt_plugins.so"
    lib.write_bytes(b"not an ELF file")
    assert loader.find_library(str(lib)) == str(lib)
    assert loader.find_library(str(tmp_path)) == str(lib)           # a folder holding it
    monkeypatch.setenv(loader.ENV_VAR, str(tmp_path))
    assert loader.find_library() == str(lib)
    assert loader.candidates("x.so")[:2] == ["x.so", str(lib)]      # explicit path first, then the env
    with pytest.raises(loader.PluginLibraryNotFound, match="does not exist"):
        monkeypatch.setenv(loader.ENV_VAR, str(tmp_path / "nope.so"))
        loader.find_library()
    with pytest.raises(loader.PluginLibraryNotFound, match="not found"):
        loader.find_library(str(tmp_path / "other.so"))
    assert loader.PluginLibraryNotFound.exit_code == checks.EXIT_CODES["plugin-library-missing"]


def test_loader_load_errors_are_one_line(tmp_path, monkeypatch):
    from mrcnn_trt.plugins import loader

    lib = tmp_path / "libmrcnn_trt_plugins.so"
    lib.write_bytes(b"not an ELF file")
    with pytest.raises(UserError, match="cannot load") as e:
        loader.load(str(lib))
    assert "\n" not in str(e.value)


def test_loader_tensorrt_match():
    from mrcnn_trt.plugins import loader

    info = {"tensorrt_headers": "8.6.1", "plugin_api": "IPluginV2DynamicExt"}
    loader.check_tensorrt_match(info, "8.6.1.6")
    with pytest.raises(UserError, match="built against TensorRT 8.6.1 but TensorRT 10.4.0"):
        loader.check_tensorrt_match(info, "10.4.0")
    with pytest.raises(UserError, match="built against TensorRT 8.6.1 but TensorRT 8.5.3"):
        loader.check_tensorrt_match(info, "8.5.3.1")   # no ABI promise across 8.x minors
    v10 = {"tensorrt_headers": "10.4.0"}
    loader.check_tensorrt_match(v10, "10.13.3")      # TensorRT 10 keeps older plugins working
    with pytest.raises(UserError, match="10.4.0 but TensorRT 10.3.0"):
        loader.check_tensorrt_match(v10, "10.3.0")
    loader.check_tensorrt_match({}, "10.4.0")        # older library without info: nothing to compare


def test_qdq_model_implies_int8():
    for v in ("8.6.1", "10.4.0", "11.1.0"):
        p = checks.plan_precision(v, fp16=False, int8=False, model=QDQ)
        assert p.int8_mode == "qdq" and not p.calibrate and p.label == "qdq-int8"
    assert checks.plan_precision("10.4.0", fp16=False, int8=False, model=QDQ).int8_flag


# ----------------------------------------------------------------------- families and their targets
def test_parse_arch_list():
    assert archs.parse_arch_list("sm_86") == [86]
    assert archs.parse_arch_list("sm_86, sm_89,sm_120,sm_86,") == [86, 89, 120]
    assert archs.parse_arch_list("89,sm_86;8.6 12.0") == [89, 86, 120]   # order kept, one grammar for every spelling
    with pytest.raises(UserError, match="--arch: 'sm_8' is not a GPU architecture"):
        archs.parse_arch_list("sm_86,sm_8")
    with pytest.raises(UserError, match="at least one"):
        archs.parse_arch_list(" , ")


def test_one_arch_grammar_in_both_commands():
    """mrcnn-build-engine --arch and mrcnn-build-plugins --cuda-archs (alias --arch) read the same
    spellings into the same canonical list; a bad one is one argparse error line (exit 2)."""
    from mrcnn_trt.engine import cli, plugin_builder, plugins_cli

    for text, canon in (("89", "sm_89"), ("86,89", "sm_86,sm_89"), ("sm_86,8.9,sm_120", "sm_86,sm_89,sm_120")):
        assert cli.build_parser().parse_args(["m.onnx", "--arch", text]).arch == canon
        assert plugins_cli.build_parser().parse_args(["--cuda-archs", text]).cuda_archs == canon
        assert plugins_cli.build_parser().parse_args(["--arch", text]).cuda_archs == canon
    assert plugin_builder.parse_cuda_archs("89,86,sm_75") == [75, 86, 89]
    for parser, argv in ((cli.build_parser(), ["m.onnx", "--arch", "sm_8x"]),
                         (plugins_cli.build_parser(), ["--cuda-archs", "sm_8x"])):
        with pytest.raises(SystemExit) as e:
            parser.parse_args(argv)
        assert e.value.code == 2


@pytest.mark.parametrize("cc,family", [
    (90, "Hopper"), (100, "Blackwell"), (87, "Ampere"), (72, "Volta (Jetson Xavier)"), (70, "Volta"), (61, "Pascal"),
    (52, "Maxwell"), (53, None),
])
def test_rtx_refuses_targets_it_cannot_build(cc, family):
    """A target TensorRT for RTX does not build gets one line naming the family that can."""
    with pytest.raises(ArchUnsupported) as e:
        archs.check_rtx_targets("1.7.1.116", [86, cc])
    msg = str(e.value)
    assert "\n" not in msg and f"sm_{cc}" in msg and "TensorRT for RTX 1.7.1.116" in msg
    if family:
        assert f"({family};" in msg and "--family tensorrt" in msg
        assert archs.ARCH_SUPPORT[cc].install in msg
    else:
        assert "not a GPU architecture" in msg


def test_rtx_targets_and_tensorrt_single_target():
    assert archs.check_rtx_targets("1.7.1.116", [75, 86, 89, 120, 121]) == [75, 86, 89, 120, 121]
    with pytest.raises(ArchUnsupported, match="one --arch.*--family rtx"):
        archs.check_tensorrt_targets("10.13.3", [86, 89])
    assert archs.check_tensorrt_targets("10.13.3", [90]).family == "Hopper"
    with pytest.raises(ArchUnsupported, match=r"TensorRT 10\.4"):
        archs.check_tensorrt_targets("10.13.3", [70])


def test_arch_matrix_has_both_families():
    md = archs.arch_matrix_markdown()
    assert "TensorRT for RTX" in md
    for cc in archs.ARCH_SUPPORT:
        row = next(r for r in md.splitlines() if r.startswith(f"| sm_{cc} |"))
        assert row.split("|")[4].strip() == ("yes" if cc in archs.RTX_TARGETS else "no")


class _Enum:
    def __init__(self, *names):
        for n in names:
            setattr(self, n, n)


def _bindings(version, *, flags=True, calibrators=True, targets=()):
    """A stand-in bindings module with exactly the attributes feature detection reads."""
    m = types.ModuleType("bindings")
    m.__version__ = version
    m.BuilderFlag = _Enum("FP16", "INT8", "TF32") if flags else _Enum("TF32")
    if calibrators:
        m.IInt8EntropyCalibrator2 = object
    config = type("IBuilderConfig", (), {})
    if targets:
        m.ComputeCapability = _Enum("NONE", "CURRENT", *(f"SM{c}" for c in targets))
        config.set_compute_capability = lambda self, cc, i: True
    m.IBuilderConfig = config
    return m


def test_family_feature_detection():
    """Capabilities come from the bindings' API, never from comparing versions across families."""
    t10 = families.describe(_bindings("10.13.3"), "tensorrt")
    assert (t10.precision_flags, t10.calibrators, t10.targets, t10.strongly_typed, t10.ahead_of_time, t10.has_nms) \
        == (True, True, (), False, False, True)
    t11 = families.describe(_bindings("11.1.0", flags=False, calibrators=False), "tensorrt")
    assert t11.strongly_typed and not t11.calibrators and not t11.ahead_of_time
    rtx = families.describe(_bindings("1.7.1.116", flags=False, calibrators=False, targets=(75, 80, 86, 89, 120, 121)),
                            "rtx")
    assert rtx.strongly_typed and rtx.ahead_of_time and rtx.targets == (75, 80, 86, 89, 120, 121)
    assert not rtx.has_nms and not rtx.timing_cache and rtx.label == "TensorRT for RTX 1.7.1.116"
    # an RTX release is not "older than TensorRT 8.5": it gets no TensorRT version rules
    p = checks.plan_precision(rtx, fp16=True, int8=False, model=F32)
    assert p.convert_fp16 and not p.fp16_flag
    assert families.family_of_version("10.4.0").precision_flags
    assert families.family_of_version("11.1.0").strongly_typed


def test_import_family_messages(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)                  # import fails
    monkeypatch.setitem(sys.modules, "tensorrt_rtx_bindings", None)
    with pytest.raises(TensorRTMissing) as e:
        families.import_family("auto", "sm_86")
    msg = str(e.value)
    assert "neither TensorRT" in msg and "nor TensorRT for RTX" in msg and "\n" not in msg
    assert ".[rtx]" in msg and "tensorrt-rtx-cu12-libs==1.7.1.116" in msg
    with pytest.raises(TensorRTMissing) as e:
        families.import_family("auto", "sm_61")                         # RTX cannot build sm_61: not suggested
    assert "[rtx]" not in str(e.value) and "8.6.1" in str(e.value)
    with pytest.raises(TensorRTMissing, match=r"TensorRT for RTX .*\.\[rtx\]"):
        families.import_family("rtx")
    with pytest.raises(TensorRTMissing, match="must be auto, tensorrt or rtx"):
        families.import_family("trt")


def test_rtx_pins_agree_with_setup_py():
    import ast

    tree = ast.parse(open(os.path.join(REPO, "setup.py")).read())
    pins = next(ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
                and any(getattr(t, "id", "") == "RTX_REQUIREMENTS" for t in n.targets))
    assert tuple(pins) == families.RTX_PIP


# ----------------------------------------------------------------------- ONNX sidecar: dynamic batch
def test_sidecar_batch_limits(tmp_path):
    path, side = _model(tmp_path, batch=4, dynamic_batch=True)
    assert sidecars.batch_limits(checks.check_onnx_sidecar(path)) == (True, 4)
    assert sidecars.batch_limits({"batch": 2}) == (False, 2)
    path, _ = _model(tmp_path, batch=0)
    with pytest.raises(SidecarMismatch, match="batch must be an integer >= 1"):
        checks.check_onnx_sidecar(path)


# ----------------------------------------------------------------------- plugin library facts
def _tagged_lib(tmp_path, tag: str, name="libmrcnn_trt_plugins.so"):
    p = tmp_path / name
    p.write_bytes(b"\x7fELF not really\x00" + tag.encode() + b"\x00rest")
    return str(p)


def test_plugin_build_tag_and_family_checks(tmp_path):
    from mrcnn_trt.engine import plugin_library as pl

    rtx = families.Family("rtx", "1.7.1.116", False, False, archs.RTX_TARGETS, False)
    t10 = families.Family("tensorrt", "10.13.3", True, True)
    lib = _tagged_lib(tmp_path, "mrcnn_trt_plugins_build: family=rtx family_version=1.7.1.116 "
                                "tensorrt_headers=11.1.0 cuda_archs=sass:75,89 ptx:89;")
    facts = pl.read_build_tag(lib)
    assert facts == {"family": "rtx", "family_version": "1.7.1.116", "tensorrt_headers": "11.1.0",
                     "cuda_archs": "sass:75,89 ptx:89"}
    pl.check_build_facts(facts, rtx, lib)
    pl.check_build_facts(facts, families.Family("rtx", "1.8.0", False, False, (86,), False), lib)  # newer minor
    with pytest.raises(PluginLibraryMismatch, match="built for TensorRT for RTX 1.7.1.116 but TensorRT 10.13.3"):
        pl.check_build_facts(facts, t10, lib)
    with pytest.raises(PluginLibraryMismatch, match="built against TensorRT for RTX 1.7.1.116 but TensorRT for RTX 1.6"):
        pl.check_build_facts(facts, families.Family("rtx", "1.6.0", False, False, (86,), False), lib)
    with pytest.raises(PluginLibraryMismatch, match="TensorRT 10.13.3 headers.*would crash"):
        pl.check_build_facts({**facts, "tensorrt_headers": "10.13.3"}, rtx, lib)
    with pytest.raises(PluginLibraryMismatch, match="not built for TensorRT for RTX"):
        pl.check_build_facts({}, rtx, lib)                            # an old library without a tag
    pl.check_build_facts({}, t10, lib)                                # TensorRT: checked after loading instead
    t_lib = {"family": "tensorrt", "family_version": "8.6.1", "tensorrt_headers": "8.6.1"}
    with pytest.raises(PluginLibraryMismatch, match="built against TensorRT 8.6.1 but TensorRT 8.5.3"):
        pl.check_build_facts(t_lib, families.Family("tensorrt", "8.5.3", True, True), lib)
    assert pl.read_build_tag(str(tmp_path / "none.so")) == {}
    assert PluginLibraryMismatch.exit_code == checks.EXIT_CODES["plugin-library-mismatch"] == 21


def test_plugin_library_default_dir_and_missing(tmp_path, monkeypatch):
    from mrcnn_trt.engine import plugin_library as pl
    from mrcnn_trt.engine.errors import PluginLibraryMissing

    monkeypatch.delenv("MRCNN_TRT_PLUGINS", raising=False)
    assert pl.default_dir("rtx").endswith(os.path.join("plugins", "lib", "rtx"))
    with pytest.raises(PluginLibraryMissing, match="not found") as e:
        pl.find("rtx", str(tmp_path / "nope.so"))
    assert e.value.exit_code == 17


def test_engine_package_imports_nothing_heavy():
    code = ("import sys, mrcnn_trt.engine, mrcnn_trt.engine.build, mrcnn_trt.engine.cli, "
            "mrcnn_trt.engine.plugins_cli; "
            "print(sorted(m for m in ('tensorrt', 'tensorrt_rtx_bindings', 'torch', 'onnx', 'onnxruntime') "
            "if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


# ----------------------------------------------------------------------- runner: batch handling (no GPU)
class _HostCuda:
    """Host memory standing in for device memory (pointers are ids of numpy buffers)."""

    def __init__(self):
        self.mem, self.next = {}, 1

    def alloc(self, nbytes):
        ptr, self.next = self.next, self.next + 1
        self.mem[ptr] = bytearray(max(nbytes, 1))
        return ptr

    def free(self, ptr):
        self.mem.pop(ptr, None)

    def htod(self, ptr, host, stream):
        b = host.tobytes()
        self.mem[ptr][:len(b)] = b

    def dtoh(self, host, ptr, stream):
        host[...] = np.frombuffer(bytes(self.mem[ptr][:host.nbytes]), host.dtype).reshape(host.shape)

    def stream(self):
        return None

    def stream_handle(self, stream):
        return 0

    def sync(self, stream):
        pass


class _Context:
    """Records set_input_shape; 'runs' by writing the batch size into count."""

    def __init__(self, runner, max_rows):
        self.runner, self.max_rows, self.shapes, self.addr, self.calls = runner, max_rows, {}, {}, []

    def set_input_shape(self, name, shape):
        self.calls.append((name, tuple(shape)))
        self.shapes[name] = tuple(shape)

    def get_tensor_shape(self, name):
        n = self.shapes.get("images", (self.runner.fixed_batch or 0,))[0]
        return {"count": (n,), "detections": (n, self.max_rows, 6)}[name]

    def set_tensor_address(self, name, ptr):
        self.addr[name] = ptr

    def execute_async_v3(self, stream):
        cuda = self.runner.cuda
        n = self.get_tensor_shape("count")[0]
        images = np.frombuffer(bytes(cuda.mem[self.addr["images"]][:n * 3 * 4 * 4 * 4]), np.float32)
        cuda.mem[self.addr["count"]][:4 * n] = np.full(n, images.size // 48, np.int32).tobytes()
        return True


def _runner(batch_dim, max_batch):
    from mrcnn_trt.engine.cuda_mem import DeviceBuffer
    from mrcnn_trt.engine.runner import IOTensor, TensorRTRunner

    r = TensorRTRunner.__new__(TensorRTRunner)
    f, i = np.dtype(np.float32), np.dtype(np.int32)
    r.name, r.cuda, r.stream, r._DeviceBuffer, r.buffers = "m.plan", _HostCuda(), None, DeviceBuffer, {}
    r.inputs = [IOTensor("images", True, (batch_dim, 3, 4, 4), f, 0), IOTensor("windows", True, (batch_dim, 4), f, 1)]
    r.outputs = [IOTensor("count", False, (batch_dim,), i, 2), IOTensor("detections", False, (batch_dim, 2, 6), f, 3)]
    r.roles = {"images": "images", "windows": "windows"}
    r.fixed_batch = None if batch_dim < 0 else batch_dim
    r.max_batch = max_batch
    r.context = _Context(r, 2)
    return r


def test_runner_dynamic_batch_sets_shapes_and_never_pads():
    r = _runner(-1, 4)
    for n in (1, 3, 4):
        out = r(np.ones((n, 3, 4, 4), np.float32), np.zeros((n, 4), np.float32))
        assert out["count"].tolist() == [n] * n and out["detections"].shape == (n, 2, 6)
        assert r.context.calls[-2:] == [("images", (n, 3, 4, 4)), ("windows", (n, 4))]   # no padding to 4
    with pytest.raises(UserError, match="takes 1..4 images per call, got 5"):
        r(np.ones((5, 3, 4, 4), np.float32), np.zeros((5, 4), np.float32))


def test_runner_fixed_batch_pads():
    r = _runner(2, 2)
    out = r(np.ones((1, 3, 4, 4), np.float32), np.zeros((1, 4), np.float32))
    assert r.context.calls == []                       # static shapes: nothing to set
    assert out["count"].tolist() == [2]                 # the engine saw 2 images; the padded row is cut off


def test_plugin_headers_sources_and_rtx_sdk_headers(tmp_path, monkeypatch):
    """Without headers the error says where they come from; the TensorRT for RTX SDK's own
    headers (TRT_*_RTX macros) are read as such: accepted for that family, refused for TensorRT."""
    from types import SimpleNamespace

    from mrcnn_trt.engine import plugin_builder as plugins_build
    from mrcnn_trt.engine.errors import PluginLibraryMismatch

    monkeypatch.delenv("TENSORRT_ROOT", raising=False)
    monkeypatch.setattr(plugins_build.os.path, "isfile", lambda p: False)   # no system headers either
    with pytest.raises(UserError, match=r"NVIDIA/TensorRT.*11\.x release tag.*TensorRT for RTX SDK"):
        plugins_build.find_tensorrt_include("rtx", None)
    monkeypatch.undo()
    (tmp_path / "NvInferVersion.h").write_text("#define TRT_MAJOR_RTX 1\n#define TRT_MINOR_RTX 7\n"
                                              "#define TRT_PATCH_RTX 1\n#define NV_TENSORRT_MAJOR TRT_MAJOR_RTX\n")
    assert plugins_build.header_version(str(tmp_path)) == "rtx-1.7.1"
    plugins_build.check_headers(SimpleNamespace(name="rtx", version="1.7.1.116"), "rtx-1.7.1", str(tmp_path))
    with pytest.raises(PluginLibraryMismatch, match="TensorRT for RTX headers"):
        plugins_build.check_headers(SimpleNamespace(name="tensorrt", version="10.4.0"), "rtx-1.7.1", str(tmp_path))
    with pytest.raises(PluginLibraryMismatch, match="TensorRT 11 layout"):
        plugins_build.check_headers(SimpleNamespace(name="rtx", version="1.7.1.116"), "10.13.3", str(tmp_path))
    public = os.path.join(REPO, "..", "shared", "third_party", "tensorrt-include", "11.1.0")
    if os.path.isdir(public):
        assert plugins_build.header_version(public) == "11.1.0"
