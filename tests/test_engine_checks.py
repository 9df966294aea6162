"""Pre-build / pre-run checks of TensorRT engines (mrcnn_trt.engine.checks) and
mrcnn-build-engine without TensorRT.

TensorRT is not installed here. Where a check needs a ``tensorrt`` module
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

import pytest

from mrcnn_trt.engine import checks
from mrcnn_trt.engine.checks import (ArchUnsupported, GpuMismatch, PlanMismatch, PluginArchMissing,
                                     PrecisionUnsupported, SidecarMismatch, TensorRTMissing)
from mrcnn_trt.errors import UserError
from mrcnn_trt.fileio import sha256_file

HAVE_TENSORRT = importlib.util.find_spec("tensorrt") is not None


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


@pytest.mark.parametrize("text,cc", [("sm_61", 61), ("sm_86", 86), ("sm_120", 120), (" sm_75 ", 75)])
def test_parse_arch(text, cc):
    assert checks.parse_arch(text) == cc


@pytest.mark.parametrize("bad", ["61", "sm61", "sm_6", "compute_61", "sm_8.6", "SM_86x", ""])
def test_parse_arch_rejects(bad):
    with pytest.raises(UserError, match="--arch must look like"):
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


def test_visible_compute_capabilities_never_raises():
    assert isinstance(checks.visible_compute_capabilities(), list)


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


def test_parse_arch_list_embedded():
    code = checks.parse_arch_list("sass:50,52,61,70,75,80,86 ptx:86")
    assert checks.parse_arch_list("sass:50,52,61,70,75,80,86;ptx:86") == code
    assert code.sass == {50, 52, 61, 70, 75, 80, 86} and code.ptx == {86}
    assert checks.code_for_arch(code, "sm_89") == "sass-compatible"
    assert checks.parse_arch_list("") == checks.DeviceCode()


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
    onnx_path = tmp_path / "model.onnx"
    onnx_path.write_bytes(b"not really onnx, only hashed")
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


def test_precision_trt11_is_explicit():
    p = checks.plan_precision("11.1.0", fp16=False, int8=True, model=QDQ)
    assert (p.fp16_flag, p.int8_flag, p.calibrate, p.int8_mode) == (False, False, False, "qdq")
    assert checks.plan_precision("11.1.0", fp16=True, int8=False, model=F16).label == "fp16"
    with pytest.raises(PrecisionUnsupported, match="no INT8 calibrators"):
        checks.plan_precision("11.1.0", fp16=False, int8=True, model=F32, calib_images="imgs")
    with pytest.raises(PrecisionUnsupported, match="strongly typed"):
        checks.plan_precision("11.1.0", fp16=True, int8=False, model=F32)
    with pytest.raises(PrecisionUnsupported, match="cannot use --calib"):
        checks.plan_precision("11.1.0", fp16=False, int8=True, model=QDQ, calib_cache="c")


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
    side = {"format": checks.PLAN_FORMAT, "plan_sha256": "ab" * 32, "tensorrt": "10.4.0.26", "arch": "sm_86"}
    side.update(over)
    return side


def test_plan_sidecar_checks():
    kw = dict(plan_path="m.plan", plan_sha256="ab" * 32, trt_version="10.4.0.26", visible=[86])
    checks.check_plan_sidecar(_plan_side(), **kw)
    checks.check_plan_sidecar(_plan_side(tensorrt="10.4.0.11"), **kw)   # other build number: same release
    with pytest.raises(PlanMismatch, match="built with TensorRT 10.3.0 but TensorRT 10.4.0.26"):
        checks.check_plan_sidecar(_plan_side(tensorrt="10.3.0"), **kw)
    with pytest.raises(PlanMismatch, match="sha256 differs"):
        checks.check_plan_sidecar(_plan_side(plan_sha256="cd" * 32), **kw)
    with pytest.raises(PlanMismatch, match="not a mrcnn-trt-plan/1"):
        checks.check_plan_sidecar({"tensorrt": "10.4.0"}, **kw)
    with pytest.raises(GpuMismatch, match="built for sm_86 but GPU 0 is sm_75"):
        checks.check_plan_sidecar(_plan_side(), **{**kw, "visible": [75]})
    with pytest.raises(GpuMismatch, match="no CUDA GPU"):
        checks.check_plan_sidecar(_plan_side(), **{**kw, "visible": []})


# ----------------------------------------------------------------------- CLI
def _files(folder):
    return sorted(os.listdir(folder))


@pytest.mark.skipif(HAVE_TENSORRT, reason="TensorRT is installed")
def test_cli_without_tensorrt_one_line_no_file(tmp_path, capsys):
    from mrcnn_trt.engine.cli import main

    path, _ = _model(tmp_path)
    before = _files(tmp_path)
    rc = main([path, "--arch", "sm_61"])
    err = capsys.readouterr().err.strip()
    assert rc == TensorRTMissing.exit_code
    assert len(err.splitlines()) == 1
    assert "TensorRT" in err and "not installed" in err and "8.6.1" in err and "pip install" in err
    assert _files(tmp_path) == before       # no plan, no sidecar, no temporary file
    # the same when the ONNX file does not even exist (nothing is written either)
    rc = main([str(tmp_path / "missing.onnx"), "--arch", "sm_61", "-o", str(tmp_path / "x.plan")])
    assert rc != 0 and _files(tmp_path) == before


@pytest.mark.skipif(HAVE_TENSORRT, reason="TensorRT is installed")
def test_cli_process_without_tensorrt(tmp_path):
    path, _ = _model(tmp_path)
    r = subprocess.run([sys.executable, "-m", "mrcnn_trt.engine.cli", path, "--arch", "sm_86"],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == TensorRTMissing.exit_code
    assert len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith("error: ")
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "model.plan").exists()


def test_cli_help_and_argument_errors(capsys):
    from mrcnn_trt.engine.cli import main

    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    assert "--calib-images" in capsys.readouterr().out
    assert main(["m.onnx", "--arch", "61"]) == 2
    assert "--arch must look like" in capsys.readouterr().err
    assert main(["m.onnx", "--arch", "sm_61", "--calib-cache", "c"]) == PrecisionUnsupported.exit_code
    assert main(["m.onnx", "--arch", "sm_99"]) == ArchUnsupported.exit_code


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
