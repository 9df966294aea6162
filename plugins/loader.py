"""Find and load the TensorRT plugin library ``libmrcnn_trt_plugins.so``.

Search order (first hit wins):

1. the ``path`` argument (a file, or a folder holding the library);
2. the ``MRCNN_TRT_PLUGINS`` environment variable (file or folder);
3. the package folder (``mrcnn_trt/plugins/``, where an install may copy it);
4. CMake build folders of a source checkout: ``build*/``, ``build*/lib/``,
   ``build*/plugins/trt/`` next to the repository root.

Loading opens the library with ``RTLD_GLOBAL`` (its creators register
themselves in TensorRT's plugin registry when it is loaded) and, when the
``tensorrt`` module imports, calls ``tensorrt.init_libnvinfer_plugins`` so
TensorRT's own plugins are registered too (the ONNX parser needs them).
"""
from __future__ import annotations

import ctypes
import glob
import json
import os
from typing import Dict, List, Optional

from mrcnn_trt.errors import UserError

from . import libsearch

LIB_NAME = "libmrcnn_trt_plugins.so"
ENV_VAR = "MRCNN_TRT_PLUGINS"

_HERE = os.path.dirname(os.path.abspath(__file__))
_REPO = os.path.dirname(_HERE)
_loaded: Dict[str, ctypes.CDLL] = {}

BUILD_HINT = ("build it with CMake and TensorRT + CUDA (see engine/README.md): cmake -S . -B build "
              "-DTENSORRT_ROOT=/path/to/TensorRT -DCMAKE_CUDA_COMPILER=/path/to/nvcc -DMRCNN_CUDA_ARCHS=86 && "
              "cmake --build build -j; or point MRCNN_TRT_PLUGINS at the .so")


class PluginLibraryNotFound(UserError):
    """No plugin library where we looked (exit code 17, like mrcnn_trt.engine.errors.PluginLibraryMissing)."""

    exit_code = 17


def candidates(path: Optional[str] = None) -> List[str]:
    """Every place searched, in order (existing or not)."""
    out: List[str] = []
    if path:
        out.append(libsearch.in_folder(LIB_NAME, path))
    env = os.environ.get(ENV_VAR)
    if env:
        out.append(libsearch.in_folder(LIB_NAME, env))
    out.append(os.path.join(_HERE, LIB_NAME))
    for pattern in ("build*", "build*/lib", "build*/plugins/trt", ".cache/build*", ".cache/build*/plugins/trt"):
        for d in sorted(glob.glob(os.path.join(_REPO, pattern))):
            out.append(os.path.join(d, LIB_NAME))
    return out


def find_library(path: Optional[str] = None) -> str:
    """Absolute path of the plugin library; raises :class:`PluginLibraryNotFound`.

    An explicit ``path`` (or ``MRCNN_TRT_PLUGINS``) that does not exist is an
    error, never silently replaced by another copy.
    """
    if path:
        return libsearch.pinned(LIB_NAME, path, PluginLibraryNotFound, "TensorRT plugin library not found")
    return libsearch.find(LIB_NAME, ENV_VAR, candidates, PluginLibraryNotFound,
                          f"{LIB_NAME} not found (looked in {_HERE} and {_REPO}/build*); {BUILD_HINT}")


def _init_tensorrt_plugins() -> None:
    try:
        import tensorrt as trt
    except ImportError:
        return
    logger = trt.Logger(trt.Logger.WARNING)
    trt.init_libnvinfer_plugins(logger, "")


def load(path: Optional[str] = None) -> ctypes.CDLL:
    """Load the plugin library once (later calls return the same handle)."""
    lib_path = find_library(path)
    if lib_path in _loaded:
        return _loaded[lib_path]
    try:
        lib = ctypes.CDLL(lib_path, mode=ctypes.RTLD_GLOBAL)
    except OSError as e:
        msg = str(e)
        hint = ""
        if "libnvinfer" in msg:
            hint = ": TensorRT's libnvinfer is not on the library path (install TensorRT or add its lib folder to LD_LIBRARY_PATH)"
        elif "libcudart" in msg:
            hint = ": the CUDA runtime it was built with is not on the library path (LD_LIBRARY_PATH)"
        raise UserError(f"cannot load {lib_path}: {msg}{hint}") from None
    _loaded[lib_path] = lib
    _init_tensorrt_plugins()
    return lib


def library_info(lib: ctypes.CDLL) -> dict:
    """The library's build facts (TensorRT headers, plugin API, CUDA archs)."""
    try:
        fn = lib.mrcnn_trt_plugins_info
    except AttributeError:
        return {}
    fn.restype = ctypes.c_char_p
    try:
        return json.loads(fn().decode())
    except (ValueError, UnicodeDecodeError):
        return {}


def check_tensorrt_match(info: dict, trt_version: str, lib_path: str = LIB_NAME) -> None:
    """Raise :class:`UserError` when the library was built against TensorRT
    headers the running TensorRT cannot serve: another major version, another
    minor version before 10 (no plugin ABI promise then), or a newer minor
    version from 10 on (it may use interfaces the older library lacks)."""
    built = str(info.get("tensorrt_headers", ""))
    if not built or not trt_version:
        return
    try:
        b = [int(x) for x in built.split(".")[:2]]
        r = [int(x) for x in str(trt_version).split(".")[:2]]
    except ValueError:
        return
    ok = b[0] == r[0] and (b[1] == r[1] if b[0] < 10 else r[1] >= b[1])
    if not ok:
        raise UserError(f"{lib_path} was built against TensorRT {built} but TensorRT {trt_version} is running; "
                        f"rebuild the plugin library with this TensorRT (TENSORRT_ROOT)")
