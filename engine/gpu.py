"""The visible GPUs (CUDA driver API through ctypes; never raises without a driver).

TensorRT builds a plan on the GPU it targets (:func:`check_gpu_arch`);
TensorRT for RTX builds without one, but running any plan needs one.
"""
from __future__ import annotations

import ctypes
from typing import Iterable

from .archs import arch_name, parse_arch
from .errors import GpuMismatch

# cuDeviceGetAttribute: CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR / _MINOR
_CC_MAJOR, _CC_MINOR = 75, 76


def _driver():
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return None
    return cuda if cuda.cuInit(0) == 0 else None


def visible_compute_capabilities() -> list[int]:
    """Compute capabilities of the visible GPUs, e.g. [86]; [] without driver or GPU."""
    try:
        cuda = _driver()
        if cuda is None:
            return []
        n = ctypes.c_int(0)
        if cuda.cuDeviceGetCount(ctypes.byref(n)) != 0:
            return []
        out = []
        for i in range(n.value):
            dev = ctypes.c_int(0)
            major, minor = ctypes.c_int(0), ctypes.c_int(0)
            if cuda.cuDeviceGet(ctypes.byref(dev), i) != 0:
                return out
            cuda.cuDeviceGetAttribute(ctypes.byref(major), _CC_MAJOR, dev)
            cuda.cuDeviceGetAttribute(ctypes.byref(minor), _CC_MINOR, dev)
            out.append(major.value * 10 + minor.value)
        return out
    except Exception:  # pragma: no cover - driver oddities
        return []


def check_gpu_arch(visible: Iterable[int], arch: str | int, device: int = 0) -> int:
    """Raise :class:`GpuMismatch` unless GPU ``device`` among the ``visible``
    compute capabilities (e.g. ``[86]``) is ``arch``. Returns the capability."""
    cc_wanted = parse_arch(arch) if isinstance(arch, str) else int(arch)
    visible = list(visible)
    if not visible:
        raise GpuMismatch(f"no CUDA GPU is visible (TensorRT builds a plan on the GPU it runs on); run on an "
                          f"{arch_name(cc_wanted)} GPU with its driver installed, or build without a GPU with "
                          f"TensorRT for RTX (--family rtx) if it supports {arch_name(cc_wanted)}")
    if device >= len(visible):
        raise GpuMismatch(f"GPU {device} is not visible ({len(visible)} GPU(s) found)")
    cc = visible[device]
    if cc != cc_wanted:
        raise GpuMismatch(f"--arch {arch_name(cc_wanted)} but GPU {device} is {arch_name(cc)}: an engine only "
                          f"runs on the architecture it is built on; pass --arch {arch_name(cc)} or use an "
                          f"{arch_name(cc_wanted)} GPU (CUDA_VISIBLE_DEVICES)")
    return cc


def cuda_driver_info(device: int = 0) -> dict:
    """Driver version and GPU name (empty dict without a driver)."""
    try:
        cuda = _driver()
        if cuda is None:
            return {}
        v = ctypes.c_int(0)
        cuda.cuDriverGetVersion(ctypes.byref(v))
        dev = ctypes.c_int(0)
        name = ctypes.create_string_buffer(256)
        out = {"cuda_driver": f"{v.value // 1000}.{(v.value % 1000) // 10}"}
        if cuda.cuDeviceGet(ctypes.byref(dev), device) == 0 and cuda.cuDeviceGetName(name, 256, dev) == 0:
            out["gpu"] = name.value.decode(errors="replace")
        return out
    except Exception:  # pragma: no cover
        return {}
