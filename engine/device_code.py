"""Device code in the plugin library: which GPU architectures its CUDA
kernels can run on (SASS cubins and PTX), from ``cuobjdump`` or the list the
library embeds (``mrcnn_trt_plugins_cuda_archs``).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import FrozenSet, Optional

from .archs import arch_name, parse_arch
from .errors import PluginArchMissing


@dataclass(frozen=True)
class DeviceCode:
    """Device code found in a library: SASS (cubin) and PTX architectures."""

    sass: FrozenSet[int] = field(default_factory=frozenset)
    ptx: FrozenSet[int] = field(default_factory=frozenset)

    def describe(self) -> str:
        s = ",".join(arch_name(c) for c in sorted(self.sass)) or "none"
        p = ",".join(f"compute_{c}" for c in sorted(self.ptx)) or "none"
        return f"SASS {s}; PTX {p}"


_CUOBJ_RE = re.compile(r"\bsm_(\d+)([a-z]?)\.(cubin|ptx)\b")


def parse_cuobjdump(text: str) -> DeviceCode:
    """Parse ``cuobjdump --list-elf`` and/or ``--list-ptx`` output.

    Lines look like ``ELF file    1: libmrcnn_trt_plugins.1.sm_61.cubin`` and
    ``PTX file    1: libmrcnn_trt_plugins.1.sm_86.ptx``. Architecture-specific
    variants (``sm_90a``) only run on exactly that arch and are kept out of the
    forward-compatible sets. Text without such lines (e.g. "does not contain
    device code") yields empty sets.
    """
    sass, ptx = set(), set()
    for m in _CUOBJ_RE.finditer(text):
        cc, suffix, ext = int(m.group(1)), m.group(2), m.group(3)
        if suffix:
            continue
        (sass if ext == "cubin" else ptx).add(cc)
    return DeviceCode(frozenset(sass), frozenset(ptx))


def parse_embedded_archs(text: str) -> DeviceCode:
    """Parse the library's embedded ``"sass:50,61 ptx:86"`` string (see
    ``mrcnn_trt_plugins_cuda_archs`` in plugins/trt; ";" also separates)."""
    sass, ptx = set(), set()
    for part in re.split(r"[;\s]+", text):
        if ":" not in part:
            continue
        kind, vals = part.split(":", 1)
        nums = {int(v) for v in re.findall(r"\d+", vals)}
        if kind.strip() == "sass":
            sass |= nums
        elif kind.strip() == "ptx":
            ptx |= nums
    return DeviceCode(frozenset(sass), frozenset(ptx))


def code_for_arch(code: DeviceCode, arch: str | int) -> Optional[str]:
    """How ``arch`` would run the library's kernels.

    ``"sass"`` exact cubin; ``"sass-compatible"`` a cubin of the same major and
    lower minor (binary compatible); ``"ptx"`` JIT from PTX of an equal or lower
    arch (works, slow first load); ``None`` no usable code.
    """
    cc = parse_arch(arch) if isinstance(arch, str) else int(arch)
    if cc in code.sass:
        return "sass"
    if any(s // 10 == cc // 10 and s < cc for s in code.sass):
        return "sass-compatible"
    if any(p <= cc for p in code.ptx):
        return "ptx"
    return None


def check_plugin_arch(code: DeviceCode, arch: str | int, library: str = "plugin library") -> str:
    """Raise :class:`PluginArchMissing` unless ``code`` can run on ``arch``."""
    how = code_for_arch(code, arch)
    name = arch if isinstance(arch, str) else arch_name(arch)
    if how is None:
        cc = parse_arch(name)
        raise PluginArchMissing(f"{library} has no device code for {name} ({code.describe()}); rebuild it with "
                                f"mrcnn-build-plugins --cuda-archs ...,{cc} (or cmake -DMRCNN_CUDA_ARCHS=\"...;{cc}\")")
    return how


def find_cuobjdump() -> Optional[str]:
    exe = shutil.which("cuobjdump")
    if exe:
        return exe
    for root in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if root and os.path.isfile(os.path.join(root, "bin", "cuobjdump")):
            return os.path.join(root, "bin", "cuobjdump")
    return None


def library_device_code(path: str, cuobjdump: Optional[str] = None) -> Optional[DeviceCode]:
    """Device code of a shared library via ``cuobjdump`` (None when it is not installed)."""
    exe = cuobjdump or find_cuobjdump()
    if not exe:
        return None
    text = ""
    for flag in ("--list-elf", "--list-ptx"):
        r = subprocess.run([exe, flag, path], capture_output=True, text=True)
        text += r.stdout + "\n"
    return parse_cuobjdump(text)
