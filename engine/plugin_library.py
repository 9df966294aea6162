"""The plugin library ``libmrcnn_trt_plugins.so`` of one TensorRT family:
where it is, whether it fits the running family, loading it, and the error
messages of its creators.

Search order (first hit wins): ``--plugins`` (file or folder), the
``MRCNN_TRT_PLUGINS`` environment variable, the family's folder
``plugins/lib/<family>/`` of the package (where ``mrcnn-build-plugins`` puts it),
then the generic places of :func:`mrcnn_trt.plugins.loader.find_library`
(the package folder, ``build*/`` of a checkout).

A library records the family and release it was built for twice: as a plain
string in the file (:func:`read_build_tag`, checked *before* loading, since
loading registers its creators) and in ``mrcnn_trt_plugins_info()``. A
library for another family or an incompatible release is refused in one line
(:class:`~.errors.PluginLibraryMismatch`, exit 21).

TensorRT for RTX: its ONNX parser ``dlopen``\\ s ``libtensorrt_rtx.so`` (no
``.1``), which the pip wheel does not ship; without it parsing a plugin model
aborts the process. Libraries from ``mrcnn-build-plugins`` depend on a small
``libtensorrt_rtx.so`` built beside them (soname ``libtensorrt_rtx.so``, itself
depending on ``libtensorrt_rtx.so.1``), so loading the plugin library makes
that name resolvable; :func:`open_library` checks it.
"""
from __future__ import annotations

import ctypes
import os
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import mrcnn_trt.plugins as pkg
from mrcnn_trt.errors import UserError
from mrcnn_trt.plugins import loader

from .archs import FAMILY_NAMES, RTX, TENSORRT, parse_trt_version
from .errors import PluginLibraryMismatch, PluginLibraryMissing
from .families import Family

LIB_NAME = loader.LIB_NAME
RTX_PARSER_NAME = "libtensorrt_rtx.so"   # what TensorRT for RTX's parser dlopens
_TAG_RE = re.compile(rb"mrcnn_trt_plugins_build: ([^;\x00]*);")


def default_dir(family: str) -> str:
    """``<mrcnn_trt.plugins>/lib/<family>``: where mrcnn-build-plugins writes and the builder looks."""
    return os.path.join(os.path.dirname(os.path.abspath(pkg.__file__)), "lib", family)


def find(family: str, path: Optional[str] = None) -> str:
    """Absolute path of the plugin library for ``family``; raises
    :class:`PluginLibraryMissing` (exit 17) naming the build command."""
    try:
        if path or os.environ.get(loader.ENV_VAR):
            return loader.find_library(path)
        own = os.path.join(default_dir(family), LIB_NAME)
        if os.path.isfile(own):
            return own
        return loader.find_library()
    except loader.PluginLibraryNotFound as e:
        if path or os.environ.get(loader.ENV_VAR):
            raise PluginLibraryMissing(str(e)) from None
        raise PluginLibraryMissing(f"{LIB_NAME} for {FAMILY_NAMES[family]} not found (looked in {default_dir(family)}, "
                                   f"the package folder and build*/): build it with mrcnn-build-plugins"
                                   f"{' --tensorrt-include DIR' if family == RTX else ''} (or pass --plugins LIB)") \
            from None


def read_build_tag(path: str) -> Dict[str, str]:
    """The build facts written as plain text in the library file (without
    loading it): {"family", "family_version", "tensorrt_headers", "cuda_archs"};
    {} for libraries built before the tag existed."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return {}
    m = _TAG_RE.search(data)
    if not m:
        return {}
    out: Dict[str, str] = {}
    for part in re.split(r" (?=\w+=)", m.group(1).decode(errors="replace")):
        if "=" in part:
            k, v = part.split("=", 1)
            out[k.strip()] = v.strip()
    return out


def _compatible(built: str, running: str, family: str) -> bool:
    """TensorRT < 10: same major.minor (no plugin ABI promise); TensorRT >= 10
    and TensorRT for RTX: same major, running minor >= the one built against."""
    try:
        b, r = parse_trt_version(built)[:2], parse_trt_version(running)[:2]
    except ValueError:
        return False
    if b[0] != r[0]:
        return False
    if family == TENSORRT and b[0] < 10:
        return b[1] == r[1]
    return r[1] >= b[1]


def check_build_facts(facts: Dict[str, str], family: Family, path: str) -> None:
    """Raise :class:`PluginLibraryMismatch` unless a library with these build
    facts (:func:`read_build_tag` or the info JSON) serves ``family``."""
    built_family = facts.get("family") or ""
    if not built_family:
        if family.name == RTX:
            raise PluginLibraryMismatch(f"{path} was not built for TensorRT for RTX (no family recorded): build one "
                                        f"with mrcnn-build-plugins")
        built_family = TENSORRT   # libraries from before families were recorded
    if built_family != family.name:
        version = facts.get("family_version", "?")
        raise PluginLibraryMismatch(f"{path} was built for {FAMILY_NAMES.get(built_family, built_family)} {version} but "
                                    f"{family.label} is running: build a library for it with mrcnn-build-plugins")
    built = facts.get("family_version") or facts.get("tensorrt_headers") or ""
    if built and not _compatible(built, family.version, family.name):
        raise PluginLibraryMismatch(f"{path} was built against {FAMILY_NAMES[family.name]} {built} but {family.label} "
                                    f"is running; rebuild it with mrcnn-build-plugins")
    headers = facts.get("tensorrt_headers") or ""
    if family.name == RTX and headers:
        try:
            major = parse_trt_version(headers)[0]
        except ValueError:
            major = 0
        if major < 11:
            raise PluginLibraryMismatch(f"{path} was compiled with TensorRT {headers} headers, whose plugin registry "
                                        f"layout TensorRT for RTX does not have (loading it would crash): rebuild it "
                                        f"with mrcnn-build-plugins --tensorrt-include <TensorRT 11 include>")


@dataclass
class PluginLibrary:
    """A loaded plugin library and its build facts."""

    path: str
    info: dict
    handle: ctypes.CDLL = field(repr=False)

    def capture_errors(self, on: bool = True) -> None:
        """Keep the creators' error messages (instead of printing them) until :meth:`take_errors`."""
        fn = getattr(self.handle, "mrcnn_trt_plugins_capture_errors", None)
        if fn is not None:
            fn.argtypes = [ctypes.c_int]
            fn(1 if on else 0)

    def take_errors(self) -> List[str]:
        """The kept messages, oldest first (and forget them)."""
        get = getattr(self.handle, "mrcnn_trt_plugins_errors", None)
        clear = getattr(self.handle, "mrcnn_trt_plugins_clear_errors", None)
        if get is None:
            return []
        get.restype = ctypes.c_char_p
        text = (get() or b"").decode(errors="replace")
        if clear is not None:
            clear()
        return [line for line in text.splitlines() if line.strip()]


def _name_resolvable(name: str) -> bool:
    """Whether ``dlopen(name)`` succeeds in this process (already loaded under
    that soname, or found on the search path)."""
    try:
        ctypes.CDLL(name, mode=os.RTLD_NOLOAD | ctypes.RTLD_GLOBAL)
        return True
    except OSError:
        pass
    try:
        ctypes.CDLL(name, mode=ctypes.RTLD_GLOBAL)
        return True
    except OSError:
        return False


def open_library(family: Family, path: Optional[str] = None) -> PluginLibrary:
    """Find, check and load the plugin library for ``family`` (its creators
    register in that family's plugin registry)."""
    lib_path = find(family.name, path)
    tag = read_build_tag(lib_path)
    if tag or family.name == RTX:
        check_build_facts(tag, family, lib_path)
    try:
        handle = loader.load(lib_path)
    except UserError as e:
        if family.name == RTX and "libnvinfer" in str(e):
            raise PluginLibraryMismatch(f"{lib_path} was built for TensorRT (it needs libnvinfer), not for TensorRT "
                                        f"for RTX: build one with mrcnn-build-plugins") from None
        raise
    info = loader.library_info(handle)
    check_build_facts(info, family, lib_path)
    if family.name == RTX and not _name_resolvable(RTX_PARSER_NAME):
        raise PluginLibraryMismatch(f"TensorRT for RTX's ONNX parser loads {RTX_PARSER_NAME}, which is not resolvable "
                                    f"and {lib_path} does not provide it (it would abort the parse): rebuild the "
                                    f"library with mrcnn-build-plugins")
    return PluginLibrary(lib_path, info, handle)
