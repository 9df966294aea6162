"""Former catch-all of the engine checks, kept so that existing imports work.

The checks now live in modules named for what they hold; new code imports
those: :mod:`.errors` (errors, exit codes), :mod:`.archs` (GPU architectures
per TensorRT family / release), :mod:`.families` (importing TensorRT or
TensorRT for RTX), :mod:`.gpu` (visible GPUs), :mod:`.device_code` (CUDA
code in the plugin library), :mod:`.sidecars` (ONNX and plan sidecars) and
:mod:`.precision` (FP16 / INT8 planning).
"""
from mrcnn_trt.calib.precision import OnnxPrecision, onnx_precision  # noqa: F401

from .archs import (ARCH_SUPPORT, ArchSupport, arch_matrix_markdown, arch_name, arch_support,  # noqa: F401
                    check_trt_supports_arch, parse_arch, parse_trt_version, recommended_tensorrt, version_str)
from .device_code import (DeviceCode, check_plugin_arch, code_for_arch, find_cuobjdump,  # noqa: F401
                          library_device_code, parse_cuobjdump)
from .device_code import parse_embedded_archs as parse_arch_list  # noqa: F401  (its former name)
from .errors import (EXIT_CODES, ArchUnsupported, BuildFailed, CheckError, GpuMismatch, PlanMismatch,  # noqa: F401
                     PluginArchMissing, PluginLibraryMissing, PrecisionUnsupported, SidecarMismatch,
                     TensorRTMissing)
from .families import import_tensorrt  # noqa: F401
from .gpu import check_gpu_arch, cuda_driver_info, visible_compute_capabilities  # noqa: F401
from .precision import PrecisionPlan, plan_precision  # noqa: F401
from .sidecars import PLAN_FORMAT, REQUIRED_SIDECAR_FIELDS, check_onnx_sidecar, needs_plugins  # noqa: F401
