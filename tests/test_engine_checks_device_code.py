"""The plugin library: its CUDA device code (mrcnn_trt.engine.device_code, from real
cuobjdump output), finding and loading it (mrcnn_trt.plugins.loader,
mrcnn_trt.engine.plugin_library), its build tag and headers."""
from __future__ import annotations

import os
import sys

import pytest

from mrcnn_trt.engine import archs, device_code, families
from mrcnn_trt.engine.errors import EXIT_CODES, PluginArchMissing, PluginLibraryMismatch
from mrcnn_trt.errors import UserError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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
    code = device_code.parse_cuobjdump(CUOBJDUMP_ELF + CUOBJDUMP_PTX)
    assert code.sass == {61, 80}
    assert code.ptx == {86}
    assert device_code.parse_cuobjdump(CUOBJDUMP_NONE) == device_code.DeviceCode()
    assert device_code.parse_cuobjdump(CUOBJDUMP_ELF).ptx == frozenset()


def test_parse_cuobjdump_variants():
    text = ("ELF file    1: libmrcnn_trt_plugins.1.sm_50.cubin\n"
            "ELF file    2: libmrcnn_trt_plugins.2.sm_90a.cubin\n"     # arch-specific: not forward compatible
            "ELF file    3: libmrcnn_trt_plugins.3.sm_120.cubin\n"
            "PTX file    1: libmrcnn_trt_plugins.1.sm_120.ptx\n")
    code = device_code.parse_cuobjdump(text)
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
    code = device_code.parse_cuobjdump(CUOBJDUMP_ELF + CUOBJDUMP_PTX)
    assert device_code.code_for_arch(code, arch) == how


def test_check_plugin_arch_message():
    code = device_code.parse_cuobjdump(CUOBJDUMP_ELF + CUOBJDUMP_PTX)
    assert device_code.check_plugin_arch(code, "sm_61") == "sass"
    with pytest.raises(PluginArchMissing, match=r"no device code for sm_75 \(SASS sm_61,sm_80; PTX compute_86\)"):
        device_code.check_plugin_arch(code, "sm_75", library="libmrcnn_trt_plugins.so")


def test_parse_embedded_archs():
    code = device_code.parse_embedded_archs("sass:50,52,61,70,75,80,86 ptx:86")
    assert device_code.parse_embedded_archs("sass:50,52,61,70,75,80,86;ptx:86") == code
    assert code.sass == {50, 52, 61, 70, 75, 80, 86} and code.ptx == {86}
    assert device_code.code_for_arch(code, "sm_89") == "sass-compatible"
    assert device_code.parse_embedded_archs("") == device_code.DeviceCode()
    code = device_code.parse_embedded_archs("sass:75 ptx:75")                # mrcnn-build-plugins --cuda-archs 75
    assert [device_code.code_for_arch(code, a) for a in ("sm_75", "sm_89", "sm_120")] == ["sass", "ptx", "ptx"]


def test_library_device_code_with_cuobjdump(tmp_path):
    """With a cuobjdump on the machine, parse a real library's device code."""
    cached = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          ".cache", "cuda118", "cuda", "bin", "cuobjdump")   # tools/fetch_cuda118.sh
    exe = device_code.find_cuobjdump() or os.environ.get("MRCNN_CUDA118_CUOBJDUMP") or cached
    if not os.path.isfile(exe):
        pytest.skip("cuobjdump not installed")
    code = device_code.library_device_code(sys.executable, cuobjdump=exe)   # a host-only binary
    assert code == device_code.DeviceCode()


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
    assert loader.PluginLibraryNotFound.exit_code == EXIT_CODES["plugin-library-missing"]


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
    assert PluginLibraryMismatch.exit_code == EXIT_CODES["plugin-library-mismatch"] == 21


def test_plugin_library_default_dir_and_missing(tmp_path, monkeypatch):
    from mrcnn_trt.engine import plugin_library as pl
    from mrcnn_trt.engine.errors import PluginLibraryMissing

    monkeypatch.delenv("MRCNN_TRT_PLUGINS", raising=False)
    assert pl.default_dir("rtx").endswith(os.path.join("plugins", "lib", "rtx"))
    with pytest.raises(PluginLibraryMissing, match="not found") as e:
        pl.find("rtx", str(tmp_path / "nope.so"))
    assert e.value.exit_code == 17


def test_plugin_headers_sources_and_rtx_sdk_headers(tmp_path, monkeypatch):
    """Without headers the error says where they come from; the TensorRT for RTX SDK's own
    headers (TRT_*_RTX macros) are read as such: accepted for that family, refused for TensorRT."""
    from types import SimpleNamespace

    from mrcnn_trt.engine import plugin_builder
    from mrcnn_trt.engine.errors import PluginLibraryMismatch

    monkeypatch.delenv("TENSORRT_ROOT", raising=False)
    monkeypatch.setattr(plugin_builder.os.path, "isfile", lambda p: False)   # no system headers either
    with pytest.raises(UserError, match=r"NVIDIA/TensorRT.*11\.x release tag.*TensorRT for RTX SDK"):
        plugin_builder.find_tensorrt_include("rtx", None)
    monkeypatch.undo()
    (tmp_path / "NvInferVersion.h").write_text("#define TRT_MAJOR_RTX 1\n#define TRT_MINOR_RTX 7\n"
                                              "#define TRT_PATCH_RTX 1\n#define NV_TENSORRT_MAJOR TRT_MAJOR_RTX\n")
    assert plugin_builder.header_version(str(tmp_path)) == "rtx-1.7.1"
    plugin_builder.check_headers(SimpleNamespace(name="rtx", version="1.7.1.116"), "rtx-1.7.1", str(tmp_path))
    with pytest.raises(PluginLibraryMismatch, match="TensorRT for RTX headers"):
        plugin_builder.check_headers(SimpleNamespace(name="tensorrt", version="10.4.0"), "rtx-1.7.1", str(tmp_path))
    with pytest.raises(PluginLibraryMismatch, match="TensorRT 11 layout"):
        plugin_builder.check_headers(SimpleNamespace(name="rtx", version="1.7.1.116"), "10.13.3", str(tmp_path))
    public = os.path.join(REPO, "..", "shared", "third_party", "tensorrt-include", "11.1.0")
    if os.path.isdir(public):
        assert plugin_builder.header_version(public) == "11.1.0"
