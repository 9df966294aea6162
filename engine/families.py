"""The two TensorRT families and what the installed one offers.

* ``tensorrt`` - NVIDIA TensorRT 8.5 ... 11.x (Python module ``tensorrt``):
  builds a plan on the GPU it targets.
* ``rtx`` - TensorRT for RTX 1.x (Python module ``tensorrt_rtx_bindings``,
  libraries from ``tensorrt_rtx_libs``; ``pip install -e ".[rtx]"``): builds
  ahead of time, on the CPU, for targets chosen in the builder config.

:func:`import_family` imports one (``"auto"``: TensorRT when it imports, else
TensorRT for RTX) and returns a :class:`Family` whose capabilities are read
from the bindings (feature detection), never derived by comparing versions
across families.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Optional, Tuple

from .archs import FAMILY_NAMES, RTX, RTX_TARGETS, TENSORRT, arch_support, parse_arch_list, parse_trt_version
from .errors import TensorRTMissing

#: pip requirements of TensorRT for RTX (also the ``[rtx]`` extra of setup.py).
RTX_PIP = ("tensorrt-rtx-cu12-libs==1.7.1.116", "tensorrt-rtx-cu12-bindings==1.7.1.116")
RTX_MODULE = "tensorrt_rtx_bindings"


@dataclass(frozen=True)
class Family:
    """An imported TensorRT family and the capabilities of its bindings.

    ``targets`` lists the compute capabilities the builder config can be set
    to (TensorRT for RTX: ahead-of-time builds without a GPU); empty when the
    builder targets the GPU it runs on.
    """

    name: str                       # "tensorrt" | "rtx"
    version: str                    # the bindings' __version__
    precision_flags: bool           # BuilderFlag.FP16 / INT8 exist (weakly typed networks, TensorRT <= 10)
    calibrators: bool               # IInt8EntropyCalibrator2 exists (implicit INT8 calibration)
    targets: Tuple[int, ...] = ()   # ComputeCapability.SMxx values the builder config accepts
    has_nms: bool = True            # an ONNX NonMaxSuppression implementation
    timing_cache: bool = True       # builder timing caches (no-ops, deprecated, in TensorRT for RTX)
    module: Any = field(default=None, compare=False, repr=False)

    @property
    def label(self) -> str:
        return f"{FAMILY_NAMES[self.name]} {self.version}"

    @property
    def strongly_typed(self) -> bool:
        """Precision comes from the graph (no FP16/INT8 builder flags)."""
        return not self.precision_flags

    @property
    def ahead_of_time(self) -> bool:
        """Builds for chosen targets without needing that GPU."""
        return bool(self.targets)


def describe(module, name: str) -> Family:
    """The :class:`Family` of an imported bindings module (feature detection)."""
    flags = getattr(module, "BuilderFlag", None)
    precision_flags = flags is not None and hasattr(flags, "FP16") and hasattr(flags, "INT8")
    calibrators = hasattr(module, "IInt8EntropyCalibrator2")
    targets: Tuple[int, ...] = ()
    cc_enum = getattr(module, "ComputeCapability", None)
    config_cls = getattr(module, "IBuilderConfig", None)
    if cc_enum is not None and config_cls is not None and hasattr(config_cls, "set_compute_capability"):
        targets = tuple(sorted(int(n[2:]) for n in dir(cc_enum) if re.fullmatch(r"SM\d+", n)))
    # TensorRT for RTX has no NonMaxSuppression runner (NVIDIA/TensorRT-RTX#5): a family fact,
    # not visible in the API (INMSLayer exists, building it fails).
    has_nms = name != RTX
    # Timing-cache calls are deprecated no-ops in TensorRT for RTX (it says so when called).
    timing_cache = name != RTX
    return Family(name, str(getattr(module, "__version__", "?")), precision_flags, calibrators, targets, has_nms,
                  timing_cache, module)


def install_hint(family: str, arch: Optional[str] = None) -> str:
    """What to install, in one phrase (for ``arch`` when known)."""
    if family == RTX:
        return "pip install -e \".[rtx]\" (or pip install " + " ".join(RTX_PIP) + ")"
    which, pip = "TensorRT >= 8.5", "tensorrt"
    if arch:
        try:
            s = arch_support(arch)
            which, pip = s.install, s.pip
        except Exception:  # noqa: BLE001 - an unknown arch only loses the precise hint
            pass
    if pip is None:
        return f"install {which}"
    return (f"install {which}: pip install '{pip}' --extra-index-url https://pypi.nvidia.com "
            f"(or NVIDIA's tar/deb packages) plus pip install cuda-python")


def _reason(e: BaseException) -> str:
    text = str(e).splitlines()[0] if str(e) else type(e).__name__
    return text


def _import(name: str):
    """Import one family's bindings; returns (module, None) or (None, reason)."""
    modname = TENSORRT if name == TENSORRT else RTX_MODULE
    try:
        if name == RTX:
            import tensorrt_rtx_bindings as module  # imports tensorrt_rtx_libs (dlopens the libraries)
        else:
            import tensorrt as module
    except ModuleNotFoundError as e:
        if getattr(e, "name", "") in (modname, "tensorrt_rtx_libs"):
            return None, f"no Python module '{modname}'"
        return None, f"'{modname}' does not import ({_reason(e)})"
    except Exception as e:  # noqa: BLE001 - OSError/RuntimeError from a broken install
        return None, f"'{modname}' does not import ({_reason(e)})"
    return module, None


def import_family(family: str = "auto", arch: Optional[str] = None) -> Family:
    """Import ``family`` ("auto" | "tensorrt" | "rtx") or raise :class:`TensorRTMissing`
    (one line: what is missing and how to install it; ``arch`` refines the hint)."""
    if family not in ("auto", TENSORRT, RTX):
        raise TensorRTMissing(f"--family must be auto, tensorrt or rtx, got {family!r}")
    order = [TENSORRT, RTX] if family == "auto" else [family]
    reasons = []
    for name in order:
        module, why = _import(name)
        if module is not None:
            return describe(module, name)
        reasons.append((name, why))
    target = f" for {arch}" if arch else ""
    if family == "auto":
        rtx_ok = True
        if arch:
            try:
                rtx_ok = all(cc in RTX_TARGETS for cc in parse_arch_list(arch))
            except Exception:  # noqa: BLE001
                rtx_ok = False
        hint = install_hint(TENSORRT, arch.split(",")[0] if arch else None)
        if rtx_ok:
            hint += f"; or, to build without a GPU, TensorRT for RTX: {install_hint(RTX)}"
        raise TensorRTMissing(f"neither TensorRT ({reasons[0][1]}) nor TensorRT for RTX ({reasons[1][1]}) is "
                              f"installed: engines{target} need one; {hint}")
    name, why = reasons[0]
    what = "is not installed" if why.startswith("no Python module") else "does not import"
    raise TensorRTMissing(f"{FAMILY_NAMES[name]} {what} ({why}): engines{target} need it; "
                          f"{install_hint(name, arch.split(',')[0] if arch else None)}")


def import_tensorrt(arch: Optional[str] = None):
    """``import tensorrt`` (the TensorRT family's module) or raise :class:`TensorRTMissing`."""
    return import_family(TENSORRT, arch).module


def family_of_version(version: str) -> Family:
    """A TensorRT-family :class:`Family` described by its release alone (no
    bindings): TensorRT >= 11 builds strongly typed networks without
    calibrators. For callers that only know a version string."""
    major = parse_trt_version(version)[0]
    return Family(TENSORRT, str(version), precision_flags=major < 11, calibrators=major < 11)

