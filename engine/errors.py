"""Errors of ``mrcnn-build-engine``, ``mrcnn-build-plugins`` and the TensorRT
runner, each with its own exit code (engine/README.md, section 4).

Every one is a :class:`~mrcnn_trt.errors.UserError`: the commands print its
message on one line and return :attr:`exit_code`; no traceback.
"""
from __future__ import annotations

from typing import Dict

from mrcnn_trt.errors import UserError

#: Exit codes, named once. 0 success, 2 any other user error, 3 a missing Python
#: module, 130 interrupted (mrcnn_trt.cli.run_main).
EXIT_TENSORRT_MISSING = 10
EXIT_ARCH_UNSUPPORTED = 11
EXIT_GPU_MISMATCH = 12
EXIT_PLUGIN_ARCH_MISSING = 13
EXIT_SIDECAR_MISMATCH = 14
EXIT_PRECISION_UNSUPPORTED = 15
EXIT_STALE_CALIBRATION_CACHE = 16
EXIT_PLUGIN_LIBRARY_MISSING = 17
EXIT_BUILD_FAILED = 18
EXIT_PLAN_MISMATCH = 19
EXIT_MODEL_UNSUPPORTED = 20
EXIT_PLUGIN_LIBRARY_MISMATCH = 21


class CheckError(UserError):
    """A failed pre-build / pre-run check."""

    exit_code = EXIT_TENSORRT_MISSING


class TensorRTMissing(CheckError):
    """No TensorRT family (or not the one asked for) imports."""

    exit_code = EXIT_TENSORRT_MISSING


class ArchUnsupported(CheckError):
    """The TensorRT family / release cannot build for a requested GPU architecture."""

    exit_code = EXIT_ARCH_UNSUPPORTED


class GpuMismatch(CheckError):
    """No GPU, or not the architecture asked for (TensorRT builds on the GPU it targets)."""

    exit_code = EXIT_GPU_MISMATCH


class PluginArchMissing(CheckError):
    """The plugin library has no device code for a target."""

    exit_code = EXIT_PLUGIN_ARCH_MISSING


class SidecarMismatch(CheckError):
    """The ONNX sidecar is missing or describes another file."""

    exit_code = EXIT_SIDECAR_MISMATCH


class PrecisionUnsupported(CheckError):
    """The precision request cannot be built with this family and model."""

    exit_code = EXIT_PRECISION_UNSUPPORTED


class PluginLibraryMissing(CheckError):
    exit_code = EXIT_PLUGIN_LIBRARY_MISSING


class BuildFailed(CheckError):
    """TensorRT could not parse the ONNX or build the plan."""

    exit_code = EXIT_BUILD_FAILED


class PlanMismatch(CheckError):
    """(runner) plan and sidecar disagree, or the plan was built by another TensorRT."""

    exit_code = EXIT_PLAN_MISMATCH


class ModelUnsupported(CheckError):
    """The model needs an operator the TensorRT family does not implement."""

    exit_code = EXIT_MODEL_UNSUPPORTED


class PluginLibraryMismatch(CheckError):
    """The plugin library was built for another TensorRT family or release."""

    exit_code = EXIT_PLUGIN_LIBRARY_MISMATCH


#: Exit codes by name (``StaleCalibrationCache`` of :mod:`mrcnn_trt.engine.calib_cache`
#: uses 16; ``PluginLibraryNotFound`` of :mod:`mrcnn_trt.plugins.loader` 17).
EXIT_CODES: Dict[str, int] = {
    "tensorrt-missing": EXIT_TENSORRT_MISSING,
    "arch-unsupported-by-tensorrt": EXIT_ARCH_UNSUPPORTED,
    "gpu-arch-mismatch": EXIT_GPU_MISMATCH,
    "plugin-lacks-arch-code": EXIT_PLUGIN_ARCH_MISSING,
    "onnx-sidecar-mismatch": EXIT_SIDECAR_MISMATCH,
    "precision-unsupported": EXIT_PRECISION_UNSUPPORTED,
    "stale-calibration-cache": EXIT_STALE_CALIBRATION_CACHE,
    "plugin-library-missing": EXIT_PLUGIN_LIBRARY_MISSING,
    "build-failed": EXIT_BUILD_FAILED,
    "plan-mismatch": EXIT_PLAN_MISMATCH,
    "model-unsupported-by-family": EXIT_MODEL_UNSUPPORTED,
    "plugin-library-mismatch": EXIT_PLUGIN_LIBRARY_MISMATCH,
}
