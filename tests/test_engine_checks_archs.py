"""GPU architectures per TensorRT family and release (mrcnn_trt.engine.archs), the
visible GPUs (mrcnn_trt.engine.gpu) and what each family can target
(mrcnn_trt.engine.families): the version matrix, the one arch grammar, the
messages that say what to install."""
from __future__ import annotations

import os
import sys
import types

import pytest

from mrcnn_trt.calib.precision import OnnxPrecision
from mrcnn_trt.engine import archs, families, gpu, precision
from mrcnn_trt.engine.errors import EXIT_CODES, ArchUnsupported, GpuMismatch, TensorRTMissing
from mrcnn_trt.errors import UserError

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
        assert archs.check_trt_supports_arch(trt, arch).first <= archs.parse_trt_version(trt)[:2]
    else:
        with pytest.raises(ArchUnsupported):
            archs.check_trt_supports_arch(trt, arch)


def test_arch_errors_say_what_to_install():
    with pytest.raises(ArchUnsupported, match=r"TensorRT 8\.5\.3"):
        archs.check_trt_supports_arch("8.6.1", "sm_52")
    with pytest.raises(ArchUnsupported, match=r"TensorRT 8\.6\.1"):
        archs.check_trt_supports_arch("10.4.0", "sm_61")
    with pytest.raises(ArchUnsupported, match=r"TensorRT 10\.4"):
        archs.check_trt_supports_arch("10.13.3", "sm_70")
    with pytest.raises(ArchUnsupported, match=r"too old"):
        archs.check_trt_supports_arch("8.0.1", "sm_75")
    with pytest.raises(ArchUnsupported, match="not a GPU architecture this project supports"):
        archs.arch_support("sm_99")
    assert "8.6.1" in archs.recommended_tensorrt("sm_61")
    assert "10.x" in archs.recommended_tensorrt("sm_86")


@pytest.mark.parametrize("text,cc", [("sm_61", 61), ("sm_86", 86), ("sm_120", 120), (" sm_75 ", 75), ("86", 86),
                                     ("8.6", 86), ("12.0", 120), ("compute_89", 89), ("SM_89", 89), ("sm89", 89)])
def test_parse_arch(text, cc):
    assert archs.parse_arch(text) == cc


@pytest.mark.parametrize("bad", ["6", "sm_6", "sm_8.6", "SM_86x", "8.6.1", "1234", "", "ampere"])
def test_parse_arch_rejects(bad):
    with pytest.raises(UserError, match="is not a GPU architecture; write sm_86, 86 or 8.6"):
        archs.parse_arch(bad)


def test_parse_trt_version():
    assert archs.parse_trt_version("10.4.0.26") == (10, 4, 0)
    assert archs.parse_trt_version("8.6.1") == (8, 6, 1)
    assert archs.parse_trt_version("11.1") == (11, 1, 0)
    with pytest.raises(ValueError):
        archs.parse_trt_version("unknown")


def test_exit_codes_are_distinct():
    codes = list(EXIT_CODES.values())
    assert len(codes) == len(set(codes))
    assert all(c not in (0, 1, 2, 3, 130) for c in codes)   # 2: generic user error, 3: missing module
    from mrcnn_trt.engine.calib_cache import StaleCalibrationCache
    assert StaleCalibrationCache.exit_code == EXIT_CODES["stale-calibration-cache"]


def test_matrix_markdown_lists_every_arch():
    md = archs.arch_matrix_markdown()
    for cc in archs.ARCH_SUPPORT:
        assert f"| sm_{cc} |" in md


# ----------------------------------------------------------------------- GPU
def test_check_gpu_arch():
    assert gpu.check_gpu_arch([86], "sm_86") == 86
    assert gpu.check_gpu_arch([61, 86], "sm_86", device=1) == 86
    with pytest.raises(GpuMismatch, match="no CUDA GPU is visible"):
        gpu.check_gpu_arch([], "sm_61")
    with pytest.raises(GpuMismatch, match=r"GPU 0 is sm_75.*--arch sm_75"):
        gpu.check_gpu_arch([75], "sm_86")
    with pytest.raises(GpuMismatch, match="GPU 2 is not visible"):
        gpu.check_gpu_arch([86], "sm_86", device=2)


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
    p = precision.plan_precision(rtx, fp16=True, int8=False, model=OnnxPrecision(has_qdq=False, has_fp16=False))
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
