"""GPU architectures and which TensorRT family / release builds for them.

Two families build plans (:mod:`.families`):

* **TensorRT** (8.5 ... 11.x): builds on the GPU it targets, one
  architecture per plan; each architecture has a range of releases
  (:data:`ARCH_SUPPORT`).
* **TensorRT for RTX** (1.x): builds ahead of time, without a GPU, for one
  or several targets from its own list (:data:`RTX_TARGETS` for 1.7; the
  installed bindings' ``ComputeCapability`` enum is what counts at run time).

Versions are only compared within a family (RTX 1.7 is not "older" than
TensorRT 8.5). Nothing here imports TensorRT.

GPU architectures are written ``sm_XY`` (compute capability X.Y), TensorRT
versions ``"major.minor.patch[.build]"``.
"""
from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from mrcnn_trt.errors import UserError

from .errors import ArchUnsupported

Version = Tuple[int, int, int]

TENSORRT = "tensorrt"
RTX = "rtx"
FAMILY_NAMES = {TENSORRT: "TensorRT", RTX: "TensorRT for RTX"}

# --------------------------------------------------------------------------- parsing
#: One GPU architecture, in any of the spellings people copy from NVIDIA's tools: ``sm_86`` (nvcc,
#: TensorRT), ``86`` (CMake's CUDA_ARCHITECTURES), ``8.6`` (nvidia-smi's compute_cap), ``compute_86``.
_ARCH_RE = re.compile(r"^(?:sm_?|compute_)?(\d{2,3})$|^(\d{1,2})\.(\d)$", re.I)
ARCH_GRAMMAR = "sm_86, 86 or 8.6 (the GPU's compute capability); several separated by commas: sm_86,sm_89"


def parse_arch(arch: str, option: str = "--arch") -> int:
    """One GPU architecture -> its compute capability as an integer: ``"sm_61"``, ``"61"``,
    ``"6.1"`` and ``"compute_61"`` -> 61, ``"sm_120"`` / ``"12.0"`` -> 120 (major = value // 10).
    Raises :class:`UserError` (naming ``option``) for anything else."""
    m = _ARCH_RE.match(str(arch).strip())
    if not m:
        raise UserError(f"{option}: {str(arch).strip()!r} is not a GPU architecture; write {ARCH_GRAMMAR}")
    return int(m.group(1)) if m.group(1) else int(m.group(2)) * 10 + int(m.group(3))


def parse_arch_list(text: str, option: str = "--arch") -> List[int]:
    """``"sm_86,89 8.6;sm_120"`` -> [86, 89, 120]: the one grammar of ``--arch``
    (``mrcnn-build-engine``, ``mrcnn-build-plugins``, ``mrcnn-triton``): architectures in
    any spelling of :func:`parse_arch`, separated by commas, semicolons or spaces; order
    kept, duplicates dropped."""
    out: List[int] = []
    parts = [p for p in re.split(r"[,;\s]+", str(text)) if p]
    if not parts:
        raise UserError(f"{option} needs at least one GPU architecture; write {ARCH_GRAMMAR}")
    for part in parts:
        cc = parse_arch(part, option)
        if cc not in out:
            out.append(cc)
    return out


def arch_list_type(text: str) -> str:
    """argparse ``type=`` of ``--arch``: checks the grammar when the command line is read
    (one ``error:`` line, exit 2) and returns the canonical spelling, ``"sm_86,sm_89"``."""
    try:
        return ",".join(arch_name(cc) for cc in parse_arch_list(text))
    except UserError as e:
        raise argparse.ArgumentTypeError(str(e).replace("--arch: ", "").replace("--arch ", "")) from None


arch_list_type.__name__ = "GPU architecture list"


def arch_name(cc: int) -> str:
    """61 -> ``"sm_61"``."""
    return f"sm_{cc}"


def parse_trt_version(version: str) -> Version:
    """``"10.4.0.26"`` -> (10, 4, 0). Missing parts are 0."""
    parts = re.findall(r"\d+", str(version))
    if not parts:
        raise ValueError(f"not a TensorRT version: {version!r}")
    nums = [int(p) for p in parts[:3]] + [0] * (3 - min(3, len(parts)))
    return (nums[0], nums[1], nums[2])


def version_str(v: Tuple[int, ...]) -> str:
    return ".".join(str(x) for x in v)


# --------------------------------------------------------------------------- TensorRT (one GPU per plan)
@dataclass(frozen=True)
class ArchSupport:
    """TensorRT releases that run (and build engines) on one GPU architecture.

    ``first``/``last`` are inclusive (major, minor) bounds; ``last=None`` means
    "still supported by the newest release we know". ``install`` is what to
    tell a user of that GPU.
    """

    family: str              # GPU generation ("Pascal", ...)
    first: Tuple[int, int]
    last: Optional[Tuple[int, int]]
    install: str
    pip: Optional[str] = "tensorrt"   # pip requirement of the Python bindings to suggest (None: not from pip)


MIN_TENSORRT = (8, 5)   # our plugins need IPluginV2DynamicExt as declared since 8.5

ARCH_SUPPORT: Dict[int, ArchSupport] = {}
for _cc, _s in [
    ((50, 52), ArchSupport("Maxwell", (8, 5), (8, 5), "TensorRT 8.5.3 (the last release for Maxwell) with CUDA 11.8",
                           "tensorrt==8.5.3.1")),
    ((60, 61), ArchSupport("Pascal", (8, 5), (8, 6), "TensorRT 8.6.1 (the last release for Pascal) with CUDA 11.8 or 12.x",
                           "tensorrt==8.6.1")),
    ((70,), ArchSupport("Volta", (8, 5), (10, 4), "TensorRT 10.4 (the last release for Volta) with CUDA 11.8 or 12.x",
                        "tensorrt==10.4.0")),
    ((72,), ArchSupport("Volta (Jetson Xavier)", (8, 5), (8, 5), "TensorRT 8.5 of JetPack 5.1, on the Jetson itself",
                        None)),
    ((75,), ArchSupport("Turing", (8, 5), None, "TensorRT 10.x (CUDA 12.x) or 11.x (CUDA 13.x)")),
    ((80, 86, 87), ArchSupport("Ampere", (8, 5), None, "TensorRT 10.x (CUDA 12.x) or 11.x (CUDA 13.x)")),
    ((89,), ArchSupport("Ada", (8, 5), None, "TensorRT 10.x (CUDA 12.x) or 11.x (CUDA 13.x)")),
    ((90,), ArchSupport("Hopper", (8, 5), None, "TensorRT 10.x (CUDA 12.x) or 11.x (CUDA 13.x)")),
    ((100, 103, 110, 120, 121), ArchSupport("Blackwell", (10, 8), None, "TensorRT 10.8 or newer (CUDA 12.8+) or 11.x",
                                             "tensorrt>=10.8")),
]:
    for _c in _cc:
        ARCH_SUPPORT[_c] = _s


def arch_support(arch: str | int) -> ArchSupport:
    cc = parse_arch(arch) if isinstance(arch, str) else int(arch)
    if cc not in ARCH_SUPPORT:
        known = ", ".join(arch_name(c) for c in sorted(ARCH_SUPPORT))
        raise ArchUnsupported(f"{arch_name(cc)} is not a GPU architecture this project supports (known: {known})")
    return ARCH_SUPPORT[cc]


def recommended_tensorrt(arch: str | int) -> str:
    """Which TensorRT to install for ``arch`` (one phrase)."""
    return arch_support(arch).install


def check_trt_supports_arch(trt_version: str, arch: str | int) -> ArchSupport:
    """Raise :class:`ArchUnsupported` unless TensorRT ``trt_version`` runs on ``arch``."""
    s = arch_support(arch)
    name = arch if isinstance(arch, str) else arch_name(arch)
    v = parse_trt_version(trt_version)[:2]
    if v < MIN_TENSORRT:
        raise ArchUnsupported(f"TensorRT {trt_version} is too old for these plugins (need >= "
                              f"{version_str(MIN_TENSORRT)}); for {name} install {s.install}")
    if v < s.first or (s.last is not None and v > s.last):
        last = f"<= {version_str(s.last)}" if s.last else "any newer release"
        raise ArchUnsupported(f"TensorRT {trt_version} does not support {name} ({s.family}; supported: "
                              f">= {version_str(s.first)}, {last}); install {s.install}")
    return s


# --------------------------------------------------------------------------- TensorRT for RTX (AOT, several targets)
#: Build targets of TensorRT for RTX 1.7 (its ``ComputeCapability`` enum: SM75,
#: SM80, SM86, SM89, SM120, SM121). Turing, Ampere, Ada and Blackwell GeForce /
#: RTX GPUs; no Hopper (sm_90), no data-center Blackwell (sm_100), nothing older.
RTX_TARGETS: Tuple[int, ...] = (75, 80, 86, 89, 120, 121)


def check_rtx_targets(version: str, targets: Sequence[int], supported: Iterable[int] = RTX_TARGETS) -> List[int]:
    """Raise :class:`ArchUnsupported` unless TensorRT for RTX ``version`` can
    build every one of ``targets`` (compute capabilities); the message names
    the family that can (TensorRT, on that GPU)."""
    supported = sorted(set(supported))
    for cc in targets:
        if cc in supported:
            continue
        listed = ", ".join(arch_name(c) for c in supported)
        if cc in ARCH_SUPPORT:
            s = ARCH_SUPPORT[cc]
            raise ArchUnsupported(f"TensorRT for RTX {version} cannot build for {arch_name(cc)} ({s.family}; it targets "
                                  f"{listed}): build that plan with TensorRT on an {arch_name(cc)} GPU "
                                  f"(--family tensorrt; install {s.install})")
        raise ArchUnsupported(f"{arch_name(cc)} is not a GPU architecture TensorRT for RTX {version} builds for "
                              f"(it targets {listed})")
    return list(targets)


def check_tensorrt_targets(version: str, targets: Sequence[int]) -> ArchSupport:
    """TensorRT builds one plan per GPU architecture: exactly one target, supported by ``version``."""
    if len(targets) != 1:
        names = ",".join(arch_name(c) for c in targets)
        raise ArchUnsupported(f"TensorRT {version} builds a plan for the one GPU it runs on, not for {names}: give "
                              f"one --arch (plans for several targets are built by TensorRT for RTX, --family rtx, "
                              f"for {', '.join(arch_name(c) for c in RTX_TARGETS)})")
    return check_trt_supports_arch(version, targets[0])


# --------------------------------------------------------------------------- the matrix
def arch_matrix_markdown() -> str:
    """The arch / TensorRT table of engine/README.md (both families)."""
    rows = ["| arch | GPUs | TensorRT (builds on that GPU) | TensorRT for RTX 1.7 (builds anywhere) | install |",
            "|---|---|---|---|---|"]
    for cc, s in sorted(ARCH_SUPPORT.items()):
        last = version_str(s.last) if s.last else "latest"
        rtx = "yes" if cc in RTX_TARGETS else "no"
        rows.append(f"| sm_{cc} | {s.family} | {version_str(s.first)} - {last} | {rtx} | {s.install} |")
    return "\n".join(rows)
