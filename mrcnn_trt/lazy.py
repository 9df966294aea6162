"""One way to import heavy third-party modules late.

``torch``, ``onnxruntime``, TensorRT, Triton's client and friends take seconds to
import (or are optional). A module that needs one writes, at module level::

    from mrcnn_trt.lazy import lazy_import
    ort = lazy_import("onnxruntime")

and uses ``ort.InferenceSession`` as usual: the real import happens at the first
attribute access, so ``mrcnn-eval --help`` never loads torch (tests/test_cli_help.py)
and the thread settings of :mod:`mrcnn_trt.threads` are in place before the OpenMP
runtime starts. Project modules are always imported at module level; the only
other late imports are a command's ``main`` importing the module that does its
work (tests/test_imports.py counts both).

A missing optional module raises :class:`ModuleNotFoundError` at first use, with
``hint`` (what to install) added to its message.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import Optional

#: third-party modules that are imported late (through :func:`lazy_import` or
#: inside a function); every other import sits at the top of its module.
HEAVY = frozenset({
    "torch", "torchvision", "onnx", "onnxruntime", "onnxscript", "tensorrt", "tensorrt_rtx",
    "tensorrt_rtx_bindings", "tritonclient", "pytriton", "pycocotools", "cityscapesscripts", "tidecv",
    "matplotlib", "cuda", "pycuda", "pybind11", "hypothesis",
})


class LazyModule(types.ModuleType):
    """A stand-in for module ``name`` that imports it on first attribute access."""

    def __init__(self, name: str, hint: Optional[str] = None):
        super().__init__(name)
        self.__dict__["_lazy_hint"] = hint
        self.__dict__["_lazy_module"] = None

    def _load(self) -> types.ModuleType:
        mod = self.__dict__["_lazy_module"]
        if mod is None:
            try:
                mod = importlib.import_module(self.__name__)
            except ModuleNotFoundError as e:
                hint = self.__dict__["_lazy_hint"]
                if hint:
                    raise ModuleNotFoundError(f"{e} ({hint})", name=e.name) from e
                raise
            self.__dict__["_lazy_module"] = mod
        return mod

    def __getattr__(self, attr: str):
        return getattr(self._load(), attr)

    def __dir__(self):
        return dir(self._load())

    def __repr__(self) -> str:
        state = "loaded" if self.__dict__["_lazy_module"] is not None else "not loaded yet"
        return f"<lazy module {self.__name__!r} ({state})>"


def lazy_import(name: str, hint: Optional[str] = None) -> types.ModuleType:
    """Module ``name`` (dotted names too), imported at first use.

    ``name``'s top-level package must be one of :data:`HEAVY`: everything else is
    cheap and imported normally. Already imported: the module itself.
    """
    if name.split(".")[0] not in HEAVY:
        raise ValueError(f"{name} is not a heavy module; import it at the top of the module")
    return sys.modules.get(name) or LazyModule(name, hint)


def available(name: str) -> bool:
    """True when module ``name`` can be imported (without importing it)."""
    if name in sys.modules:
        return True
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False
