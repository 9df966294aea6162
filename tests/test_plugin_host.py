"""The TensorRT-free host logic of the plugins (plugins/host): configure and
build it with CMake (CPU only), run its unit tests with ctest, and check its
attribute tables against plugins/opdefs.py.

The build folder is cached in .cache/build-plugin-host (incremental).

The TensorRT adapters (plugins/trt) are compile-checked against every
TensorRT header set in ``../shared/third_party/tensorrt-include/`` (8.6.1,
10.4.0, 10.13.3, 11.1.0; or the ":"-separated ``include`` folders of
MRCNN_TRT_INCLUDE_DIRS), in both plugin interfaces, and
plugins/trt/adapter_test.cpp (the adapters with stub launchers: no
libnvinfer, no GPU) is built and run against each (CUDA headers from
MRCNN_CUDA_INCLUDE, CUDA_HOME, /usr/local/cuda or the pip
nvidia-cuda-runtime wheel). Skipped with a reason only when no header set or
no CUDA headers exist. Nothing is downloaded here.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from mrcnn_trt.plugins.opdefs import OPS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(REPO, ".cache", "build-plugin-host")
EXE = os.path.join(BUILD, "mrcnn_plugin_host_test")


def _cxx():
    return os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")


@pytest.fixture(scope="module")
def built():
    if not shutil.which("cmake") or not _cxx():
        pytest.skip("cmake or a C++ compiler is not installed")
    src = os.path.join(REPO, "plugins", "host")
    cache = os.path.join(BUILD, "CMakeCache.txt")
    if os.path.isfile(cache):   # a build folder configured for another checkout: start over
        with open(cache) as f:
            home = [ln.split("=", 1)[1].strip() for ln in f if ln.startswith("CMAKE_HOME_DIRECTORY:")]
        if home and os.path.realpath(home[0]) != os.path.realpath(src):
            shutil.rmtree(BUILD)
    gen = ["-G", "Ninja"] if shutil.which("ninja") and not os.path.isfile(os.path.join(BUILD, "Makefile")) else []
    r = subprocess.run(["cmake", "-S", src, "-B", BUILD,
                        "-DCMAKE_BUILD_TYPE=Release", *gen], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run(["cmake", "--build", BUILD, "-j2"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    return BUILD


def test_ctest(built):
    r = subprocess.run(["ctest", "--test-dir", built, "--output-on-failure"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "100% tests passed" in r.stdout
    r = subprocess.run([EXE], capture_output=True, text=True)
    assert r.returncode == 0 and " 0 failures" in r.stdout, r.stdout + r.stderr
    assert int(r.stdout.split(":")[1].split()[0]) >= 100       # the suite really ran


def _f32(x):
    import numpy as np

    return float(np.float32(x))


def test_fields_agree_with_opdefs(built):
    out = subprocess.run([EXE, "--fields-json"], capture_output=True, text=True, check=True).stdout
    table = json.loads(out)
    assert table["plugin_version"] == "1" and table["plugin_namespace"] == ""
    assert table["serial_format_version"] == 1
    assert list(table["ops"]) == list(OPS)
    for op, attrs in OPS.items():
        cpp = table["ops"][op]
        assert [a["name"] for a in cpp] == [a.name for a in attrs], op
        for a, c in zip(attrs, cpp):
            where = f"{op}.{a.name}"
            assert c["type"] == a.type, where
            default = list(a.default) if a.type == "floats" else [a.default]
            assert c["length"] == len(default), where
            for key in ("table_default", "struct_default", "parsed_default"):
                vals = c[key]
                if a.type == "int":
                    assert vals == default, (where, key)
                else:   # stored as float32 in the C++ params
                    assert [_f32(v) for v in vals] == [_f32(v) for v in default], (where, key)
            if a.type == "floats":
                assert c["min"] is None and c["max"] is None, where
            else:
                assert c["min"] == a.min and c["max"] == a.max, where


SHARED_HEADERS = os.path.normpath(os.path.join(REPO, "..", "shared", "third_party", "tensorrt-include"))


def _header_sets():
    env = [p for p in os.environ.get("MRCNN_TRT_INCLUDE_DIRS", "").split(":") if p]
    if env:
        return env
    if not os.path.isdir(SHARED_HEADERS):
        return []
    return sorted((os.path.join(SHARED_HEADERS, d) for d in os.listdir(SHARED_HEADERS)
                   if os.path.isfile(os.path.join(SHARED_HEADERS, d, "NvInfer.h"))),
                  key=lambda p: [int(x) for x in os.path.basename(p).split(".") if x.isdigit()])


TRT_INCLUDES = _header_sets()
NO_HEADERS = f"no TensorRT headers ({SHARED_HEADERS} absent, MRCNN_TRT_INCLUDE_DIRS unset)"


def _cuda_include():
    import glob
    import sysconfig

    pip = glob.glob(os.path.join(sysconfig.get_paths()["purelib"], "nvidia", "cuda_runtime", "include"))
    for root in (os.environ.get("MRCNN_CUDA_INCLUDE"),
                 os.path.join(os.environ.get("CUDA_HOME", "/nonexistent"), "include"),
                 "/usr/local/cuda/include",
                 os.path.join(REPO, ".cache", "cuda118", "cuda", "include"), *pip):
        if root and os.path.isfile(os.path.join(root, "cuda_runtime_api.h")):
            return root
    return None


def test_header_sets_found():
    """With ../shared present, every public header set is exercised (none silently missing)."""
    if not os.path.isdir(SHARED_HEADERS) or os.environ.get("MRCNN_TRT_INCLUDE_DIRS"):
        pytest.skip(NO_HEADERS)
    assert [os.path.basename(p) for p in TRT_INCLUDES] == ["8.6.1", "10.4.0", "10.13.3", "11.1.0"]


@pytest.mark.skipif(not TRT_INCLUDES, reason=NO_HEADERS)
@pytest.mark.parametrize("inc", TRT_INCLUDES, ids=os.path.basename)
@pytest.mark.parametrize("api", ["auto", "v2"])
def test_trt_adapters_compile(inc, api):
    cuda = _cuda_include()
    if not cuda or not _cxx():
        pytest.skip("CUDA headers or a C++ compiler not found")
    cmd = [_cxx(), "-std=c++17", "-fsyntax-only", "-Wall", "-Wextra", "-Werror", "-DMRCNN_WITH_CUDA",
           "-isystem", inc, "-isystem", cuda, os.path.join(REPO, "plugins", "trt", "mrcnn_trt_plugins.cpp")]
    if api == "v2":
        cmd.insert(1, "-DMRCNN_TRT_PLUGIN_V2")
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-4000:]


@pytest.mark.skipif(not TRT_INCLUDES, reason=NO_HEADERS)
@pytest.mark.parametrize("inc", TRT_INCLUDES, ids=os.path.basename)
def test_trt_adapters_run(inc, tmp_path):
    """plugins/trt/adapter_test.cpp: the adapters' entry points against these
    headers with stub CUDA launchers (no libnvinfer, no GPU)."""
    cuda = _cuda_include()
    if not cuda or not _cxx():
        pytest.skip("CUDA headers or a C++ compiler not found")
    exe = str(tmp_path / "adapter_test")
    r = subprocess.run([_cxx(), "-std=c++17", "-O1", "-Wall", "-Wextra", "-Werror", "-DMRCNN_WITH_CUDA",
                        "-isystem", inc, "-isystem", cuda, "-I", os.path.join(REPO, "plugins"),
                        os.path.join(REPO, "plugins", "trt", "adapter_test.cpp"),
                        os.path.join(REPO, "plugins", "host", "plugin_host.cpp"), "-o", exe],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-4000:]
    r = subprocess.run([exe], capture_output=True, text=True)
    assert r.returncode == 0 and " 0 failures" in r.stdout, r.stdout + r.stderr[-4000:]
    major = int(os.path.basename(inc).split(".")[0]) if os.path.basename(inc)[:1].isdigit() else None
    if major is not None:   # the IPluginV3 adapters ran wherever the headers have them (TensorRT >= 10)
        assert ("V2 + V3" in r.stdout) == (major >= 10), r.stdout
