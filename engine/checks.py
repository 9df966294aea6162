"""Pre-build and pre-run checks for TensorRT engines (pure functions).

Nothing here imports TensorRT: each check takes plain values (version
strings, compute capabilities, ``cuobjdump`` text, file paths) so that it can
be tested on a machine without a GPU. A failed check raises a subclass of
:class:`~mrcnn_trt.errors.UserError` with one clear line and its own exit code
(see :data:`EXIT_CODES`), which ``mrcnn-build-engine`` returns.

GPU architectures are written ``sm_XY`` (compute capability X.Y), TensorRT
versions ``"major.minor.patch[.build]"``.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Dict, FrozenSet, Iterable, Optional, Tuple

from mrcnn_trt.calib.precision import OnnxPrecision, onnx_precision  # noqa: F401 (part of the checks)
from mrcnn_trt.errors import UserError
from mrcnn_trt.fileio import read_json, sha256_file, sidecar_path

Version = Tuple[int, int, int]


# --------------------------------------------------------------------------- errors
class CheckError(UserError):
    """A failed pre-build / pre-run check."""

    exit_code = 10


class TensorRTMissing(CheckError):
    exit_code = 10


class ArchUnsupported(CheckError):
    exit_code = 11


class GpuMismatch(CheckError):
    exit_code = 12


class PluginArchMissing(CheckError):
    exit_code = 13


class SidecarMismatch(CheckError):
    exit_code = 14


class PrecisionUnsupported(CheckError):
    exit_code = 15


class PluginLibraryMissing(CheckError):
    exit_code = 17


class BuildFailed(CheckError):
    exit_code = 18


class PlanMismatch(CheckError):
    exit_code = 19


#: Exit codes of ``mrcnn-build-engine`` / the runner (``StaleCalibrationCache`` of
#: :mod:`mrcnn_trt.engine.calib_cache` uses 16; any other user error 2).
EXIT_CODES: Dict[str, int] = {
    "tensorrt-missing": TensorRTMissing.exit_code,
    "arch-unsupported-by-tensorrt": ArchUnsupported.exit_code,
    "gpu-arch-mismatch": GpuMismatch.exit_code,
    "plugin-lacks-arch-code": PluginArchMissing.exit_code,
    "onnx-sidecar-mismatch": SidecarMismatch.exit_code,
    "precision-unsupported": PrecisionUnsupported.exit_code,
    "stale-calibration-cache": 16,
    "plugin-library-missing": PluginLibraryMissing.exit_code,
    "build-failed": BuildFailed.exit_code,
    "plan-mismatch": PlanMismatch.exit_code,
}


# --------------------------------------------------------------------------- parsing
_ARCH_RE = re.compile(r"^sm_(\d{2,3})$")


def parse_arch(arch: str) -> int:
    """``"sm_61"`` -> 61, ``"sm_120"`` -> 120 (major = value // 10). Raises
    :class:`UserError` for anything else."""
    m = _ARCH_RE.match(str(arch).strip())
    if not m:
        raise UserError(f"--arch must look like sm_61, sm_86 or sm_120 (the GPU's compute capability), got {arch!r}")
    return int(m.group(1))


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


# --------------------------------------------------------------------------- arch / TensorRT matrix
@dataclass(frozen=True)
class ArchSupport:
    """TensorRT releases that run (and build engines) on one GPU architecture.

    ``first``/``last`` are inclusive (major, minor) bounds; ``last=None`` means
    "still supported by the newest release we know". ``install`` is what to
    tell a user of that GPU.
    """

    family: str
    first: Tuple[int, int]
    last: Optional[Tuple[int, int]]
    install: str
    pip: str = "tensorrt"   # pip requirement of the Python bindings to suggest


_MIN_TRT = (8, 5)   # our plugins need IPluginV2DynamicExt as declared since 8.5

ARCH_SUPPORT: Dict[int, ArchSupport] = {}
for _cc, _s in [
    ((50, 52), ArchSupport("Maxwell", (8, 5), (8, 5), "TensorRT 8.5.3 (the last release for Maxwell) with CUDA 11.8",
                           "tensorrt==8.5.3.1")),
    ((60, 61), ArchSupport("Pascal", (8, 5), (8, 6), "TensorRT 8.6.1 (the last release for Pascal) with CUDA 11.8 or 12.x",
                           "tensorrt==8.6.1")),
    ((70,), ArchSupport("Volta", (8, 5), (10, 4), "TensorRT 10.4 (the last release for Volta) with CUDA 11.8 or 12.x",
                        "tensorrt==10.4.0")),
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
    if v < _MIN_TRT:
        raise ArchUnsupported(f"TensorRT {trt_version} is too old for these plugins (need >= "
                              f"{version_str(_MIN_TRT)}); for {name} install {s.install}")
    if v < s.first or (s.last is not None and v > s.last):
        last = f"<= {version_str(s.last)}" if s.last else "any newer release"
        raise ArchUnsupported(f"TensorRT {trt_version} does not support {name} ({s.family}; supported: "
                              f">= {version_str(s.first)}, {last}); install {s.install}")
    return s


def arch_matrix_markdown() -> str:
    """The arch / TensorRT table of engine/README.md."""
    rows = ["| arch | family | TensorRT | install |", "|---|---|---|---|"]
    for cc, s in sorted(ARCH_SUPPORT.items()):
        last = version_str(s.last) if s.last else "latest"
        rows.append(f"| sm_{cc} | {s.family} | {version_str(s.first)} - {last} | {s.install} |")
    return "\n".join(rows)


# --------------------------------------------------------------------------- visible GPU
def check_gpu_arch(visible: Iterable[int], arch: str | int, device: int = 0) -> int:
    """Raise :class:`GpuMismatch` unless GPU ``device`` among the ``visible``
    compute capabilities (e.g. ``[86]``) is ``arch``. Returns the capability."""
    cc_wanted = parse_arch(arch) if isinstance(arch, str) else int(arch)
    visible = list(visible)
    if not visible:
        raise GpuMismatch(f"no CUDA GPU is visible (engines are built on the GPU they run on); "
                          f"run on an {arch_name(cc_wanted)} GPU with its driver installed")
    if device >= len(visible):
        raise GpuMismatch(f"GPU {device} is not visible ({len(visible)} GPU(s) found)")
    cc = visible[device]
    if cc != cc_wanted:
        raise GpuMismatch(f"--arch {arch_name(cc_wanted)} but GPU {device} is {arch_name(cc)}: an engine only "
                          f"runs on the architecture it is built on; pass --arch {arch_name(cc)} or use an "
                          f"{arch_name(cc_wanted)} GPU (CUDA_VISIBLE_DEVICES)")
    return cc


def visible_compute_capabilities() -> list[int]:
    """Compute capabilities of the visible GPUs (CUDA driver API through ctypes).

    Returns [] when there is no driver or no GPU (never raises).
    """
    import ctypes

    try:
        cuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return []
    try:
        if cuda.cuInit(0) != 0:
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
            # CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75, _MINOR = 76
            cuda.cuDeviceGetAttribute(ctypes.byref(major), 75, dev)
            cuda.cuDeviceGetAttribute(ctypes.byref(minor), 76, dev)
            out.append(major.value * 10 + minor.value)
        return out
    except Exception:  # pragma: no cover - driver oddities
        return []


# --------------------------------------------------------------------------- plugin library device code
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


def parse_arch_list(text: str) -> DeviceCode:
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
                                f"cmake -DMRCNN_CUDA_ARCHS=\"...;{cc}\"")
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


# --------------------------------------------------------------------------- ONNX sidecar
REQUIRED_SIDECAR_FIELDS = ("onnx_sha256", "flavor", "image_size", "batch", "num_classes")


def check_onnx_sidecar(onnx_path: str, sidecar: Optional[dict] = None, *, onnx_sha256: Optional[str] = None) -> dict:
    """Read ``model.onnx.json`` and check it describes ``onnx_path``.

    Returns the sidecar dict. Raises :class:`SidecarMismatch` when it is
    missing, incomplete, from another export (sha256) or of an unknown flavor.
    """
    if not os.path.isfile(onnx_path):
        raise UserError(f"ONNX model not found: {onnx_path}")
    if sidecar is None:
        sp = sidecar_path(onnx_path)
        if not os.path.isfile(sp):
            raise SidecarMismatch(f"{sp} not found: export the model with mrcnn-export, which writes the sidecar "
                                  f"(image size, classes, preprocessing) next to the .onnx")
        try:
            sidecar = read_json(sp)
        except UserError as e:
            raise SidecarMismatch(str(e)) from None
    if not isinstance(sidecar, dict):
        raise SidecarMismatch(f"sidecar of {onnx_path} is not a JSON object")
    missing = [k for k in REQUIRED_SIDECAR_FIELDS if k not in sidecar]
    if missing:
        raise SidecarMismatch(f"sidecar of {onnx_path} lacks field(s) {', '.join(missing)}; re-export the model")
    digest = onnx_sha256 or sha256_file(onnx_path)
    if sidecar["onnx_sha256"] != digest:
        raise SidecarMismatch(f"{onnx_path} does not match its sidecar (sha256 {digest[:12]}... vs "
                              f"{str(sidecar['onnx_sha256'])[:12]}...): the file was changed or the sidecar "
                              f"belongs to another export; re-export the model")
    if sidecar["flavor"] not in ("trt", "standard"):
        raise SidecarMismatch(f"sidecar of {onnx_path}: unknown flavor {sidecar['flavor']!r} (expected 'trt' or 'standard')")
    versions = sidecar.get("op_versions") or {}
    v = versions.get("mrcnn") if isinstance(versions, dict) else None
    if sidecar["flavor"] == "trt" and v not in (None, 1):
        raise SidecarMismatch(f"{onnx_path} uses mrcnn op set version {v}; these plugins implement version 1")
    return sidecar


def needs_plugins(sidecar: dict) -> bool:
    """Whether the model has ``mrcnn::`` custom-op nodes (flavor "trt")."""
    return sidecar.get("flavor") == "trt"


# --------------------------------------------------------------------------- TensorRT import
def tensorrt_install_hint(arch: Optional[str] = None) -> str:
    """What to install, in one phrase (for ``arch`` when known)."""
    which, pip = "TensorRT >= 8.5", "tensorrt"
    if arch:
        try:
            s = arch_support(arch)
            which, pip = s.install, s.pip
        except (UserError, ValueError):
            pass
    return (f"install {which}: pip install '{pip}' --extra-index-url https://pypi.nvidia.com "
            f"(or NVIDIA's tar/deb packages) plus pip install cuda-python")


def import_tensorrt(arch: Optional[str] = None):
    """``import tensorrt`` or raise :class:`TensorRTMissing` (one line, how to install)."""
    try:
        import tensorrt  # noqa: F401
    except Exception as e:  # ImportError, or OSError/RuntimeError from a broken install
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        if isinstance(e, ModuleNotFoundError) and getattr(e, "name", "") == "tensorrt":
            what = "TensorRT is not installed (no Python module 'tensorrt')"
        else:
            what = f"TensorRT does not import ({reason})"
        target = f" for {arch}" if arch else ""
        raise TensorRTMissing(f"{what}: engines{target} need it; {tensorrt_install_hint(arch)}") from None
    return tensorrt


# --------------------------------------------------------------------------- precision
@dataclass(frozen=True)
class PrecisionPlan:
    """Builder settings for the requested precision."""

    fp16_flag: bool          # set BuilderFlag.FP16 (TensorRT <= 10)
    int8_flag: bool          # set BuilderFlag.INT8 (TensorRT <= 10)
    calibrate: bool          # attach an INT8 calibrator (TensorRT <= 10, no Q/DQ)
    int8_mode: Optional[str]  # "calibrated" | "qdq" | None
    label: str               # "fp32", "fp16", "int8", "int8+fp16", "qdq-int8", ...


def plan_precision(trt_version: str, *, fp16: bool, int8: bool, model: OnnxPrecision,
                   calib_images: Optional[str] = None, calib_cache: Optional[str] = None) -> PrecisionPlan:
    """Decide builder flags; raise :class:`PrecisionUnsupported` for impossible requests.

    * TensorRT <= 10: ``--fp16`` sets the FP16 flag; ``--int8`` sets the INT8
      flag and needs a calibrator (``--calib-images`` or a valid
      ``--calib-cache``) unless the model already carries Q/DQ nodes.
    * TensorRT >= 11 builds strongly typed networks only: precision comes from
      the model, so ``--fp16`` needs a float16 ONNX and ``--int8`` a Q/DQ ONNX
      (``mrcnn-calibrate``); calibration options are refused.
    * A model with Q/DQ nodes always builds as INT8 (``--int8`` implied).
    """
    major = parse_trt_version(trt_version)[0]
    int8 = int8 or model.has_qdq  # a Q/DQ model is an INT8 model: --int8 is implied
    if (calib_images or calib_cache) and not int8:
        raise PrecisionUnsupported("--calib-images/--calib-cache only make sense with --int8")
    if major >= 11:
        if int8 and not model.has_qdq:
            raise PrecisionUnsupported(f"TensorRT {trt_version} has no INT8 calibrators (explicit quantization only): "
                                       f"make a Q/DQ model with mrcnn-calibrate and build that ONNX with --int8")
        if int8 and (calib_images or calib_cache):
            raise PrecisionUnsupported(f"TensorRT {trt_version} cannot use --calib-images/--calib-cache; the Q/DQ "
                                       f"model already holds its scales")
        if fp16 and not model.has_fp16:
            raise PrecisionUnsupported(f"TensorRT {trt_version} builds strongly typed networks: --fp16 needs an ONNX "
                                       f"model with float16 tensors (TensorRT 11 has no FP16 builder flag); use "
                                       f"TensorRT 10 for --fp16 on this float32 model")
        label = "+".join(x for x in ("qdq-int8" if int8 else "", "fp16" if fp16 else "") if x) or "fp32"
        return PrecisionPlan(False, False, False, "qdq" if int8 else None, label)
    if int8 and not model.has_qdq and not (calib_images or calib_cache):
        raise PrecisionUnsupported("--int8 needs --calib-images DIR (calibrate now) or --calib-cache FILE "
                                   "(a cache written by an earlier calibration of this model)")
    if int8 and model.has_qdq and (calib_images or calib_cache):
        raise PrecisionUnsupported("this ONNX model already has Q/DQ nodes (explicit quantization): drop "
                                   "--calib-images/--calib-cache")
    calibrate = int8 and not model.has_qdq
    mode = None if not int8 else ("qdq" if model.has_qdq else "calibrated")
    label = "+".join(x for x in (("qdq-int8" if mode == "qdq" else "int8") if int8 else "", "fp16" if fp16 else "")
                     if x) or "fp32"
    return PrecisionPlan(bool(fp16), bool(int8), calibrate, mode, label)


# --------------------------------------------------------------------------- plan sidecar
PLAN_FORMAT = "mrcnn-trt-plan/1"


def check_plan_sidecar(side: dict, *, plan_path: str, plan_sha256: Optional[str], trt_version: str,
                       visible: Iterable[int], device: int = 0) -> None:
    """Before deserializing a plan: same file, same TensorRT release, same GPU arch.

    Raises :class:`PlanMismatch` (or :class:`GpuMismatch` for the GPU).
    """
    if not isinstance(side, dict) or side.get("format") != PLAN_FORMAT:
        raise PlanMismatch(f"{plan_path}: sidecar is not a {PLAN_FORMAT} description; rebuild with mrcnn-build-engine")
    if plan_sha256 is not None and side.get("plan_sha256") != plan_sha256:
        raise PlanMismatch(f"{plan_path} does not match its sidecar (sha256 differs): the plan was replaced or "
                           f"damaged; rebuild it")
    built = str(side.get("tensorrt", ""))
    try:
        same = parse_trt_version(built) == parse_trt_version(trt_version)
    except ValueError:
        same = False
    if not same:
        raise PlanMismatch(f"{plan_path} was built with TensorRT {built or '?'} but TensorRT {trt_version} is "
                           f"installed: plans only load in the TensorRT release that built them; rebuild it "
                           f"(mrcnn-build-engine) or install TensorRT {built}")
    arch = side.get("arch")
    if not arch:
        raise PlanMismatch(f"{plan_path}: sidecar lacks the GPU arch; rebuild it")
    visible = list(visible)
    if not visible:
        raise GpuMismatch(f"no CUDA GPU is visible: {plan_path} needs an {arch} GPU")
    if device >= len(visible):
        raise GpuMismatch(f"GPU {device} is not visible ({len(visible)} GPU(s) found)")
    if visible[device] != parse_arch(arch):
        raise GpuMismatch(f"{plan_path} was built for {arch} but GPU {device} is {arch_name(visible[device])}: "
                          f"rebuild the engine on this GPU with --arch {arch_name(visible[device])}")


# --------------------------------------------------------------------------- driver facts
def cuda_driver_info(device: int = 0) -> dict:
    """Driver version and GPU name through the driver API (empty dict without a driver)."""
    import ctypes

    try:
        cuda = ctypes.CDLL("libcuda.so.1")
        if cuda.cuInit(0) != 0:
            return {}
        v = ctypes.c_int(0)
        cuda.cuDriverGetVersion(ctypes.byref(v))
        dev = ctypes.c_int(0)
        name = ctypes.create_string_buffer(256)
        out = {"cuda_driver": f"{v.value // 1000}.{(v.value % 1000) // 10}"}
        if cuda.cuDeviceGet(ctypes.byref(dev), device) == 0 and cuda.cuDeviceGetName(name, 256, dev) == 0:
            out["gpu"] = name.value.decode(errors="replace")
        return out
    except Exception:
        return {}
