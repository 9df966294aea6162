"""The JSON sidecars the engine steps read and write.

* ``model.onnx.json`` (written by ``mrcnn-export`` / ``mrcnn-calibrate``):
  checked before a build (:func:`check_onnx_sidecar`); ``"dynamic_batch":
  true`` with ``"batch": N`` means the ONNX batch dimension is symbolic and
  N is the largest batch (:func:`batch_limits`).
* ``model.plan.json`` (written by :func:`mrcnn_trt.engine.build.build_engine`,
  format :data:`PLAN_FORMAT`): checked before a plan is deserialized
  (:func:`check_plan_sidecar`): same file, same TensorRT family and release,
  a GPU among its targets. Fields: ``family`` ("tensorrt" | "rtx"),
  ``family_version``, ``targets`` (["sm_86", ...]), ``arch`` (the first
  target, for older readers), ``tensorrt`` (the release, TensorRT family
  only), ``precision`` {label, source, fp16, int8, calibrator}, ``batch``
  (the largest), ``batch_range`` [min, opt, max] for dynamic-batch plans, the
  plugin library, the ONNX model and the build facts.
"""
from __future__ import annotations

import os
from typing import Iterable, List, Optional, Tuple

from mrcnn_trt.errors import UserError
from mrcnn_trt.fileio import read_sidecar_of, verify_model_digest

from .archs import FAMILY_NAMES, TENSORRT, arch_name, parse_arch, parse_trt_version
from .errors import GpuMismatch, PlanMismatch, SidecarMismatch

REQUIRED_SIDECAR_FIELDS = ("onnx_sha256", "flavor", "image_size", "batch", "num_classes")
PLAN_FORMAT = "mrcnn-trt-plan/1"


# --------------------------------------------------------------------------- ONNX sidecar
def check_onnx_sidecar(onnx_path: str, sidecar: Optional[dict] = None, *, onnx_sha256: Optional[str] = None) -> dict:
    """Read ``model.onnx.json`` and check it describes ``onnx_path``.

    Returns the sidecar dict. Raises :class:`SidecarMismatch` when it is
    missing, incomplete, from another export (sha256) or of an unknown flavor.
    """
    if not os.path.isfile(onnx_path):
        raise UserError(f"ONNX model not found: {onnx_path}")
    if sidecar is None:
        sidecar = read_sidecar_of(onnx_path, error=SidecarMismatch, unusable="re-export the model",
                                  missing="{sidecar} not found: export the model with mrcnn-export, which writes the "
                                          "sidecar (image size, classes, preprocessing) next to the .onnx")
    if not isinstance(sidecar, dict):
        raise SidecarMismatch(f"sidecar of {onnx_path} is not a JSON object")
    try:
        verify_model_digest(onnx_path, sidecar, onnx_sha256)   # the rule every command applies
    except UserError as e:
        raise SidecarMismatch(str(e)) from None
    missing = [k for k in REQUIRED_SIDECAR_FIELDS if k not in sidecar]
    if missing:
        raise SidecarMismatch(f"sidecar of {onnx_path} lacks field(s) {', '.join(missing)}; re-export the model")
    if sidecar["flavor"] not in ("trt", "standard"):
        raise SidecarMismatch(f"sidecar of {onnx_path}: unknown flavor {sidecar['flavor']!r} (expected 'trt' or 'standard')")
    versions = sidecar.get("op_versions") or {}
    v = versions.get("mrcnn") if isinstance(versions, dict) else None
    if sidecar["flavor"] == "trt" and v not in (None, 1):
        raise SidecarMismatch(f"{onnx_path} uses mrcnn op set version {v}; these plugins implement version 1")
    batch_limits(sidecar, onnx_path)
    return sidecar


def needs_plugins(sidecar: dict) -> bool:
    """Whether the model has ``mrcnn::`` custom-op nodes (flavor "trt")."""
    return sidecar.get("flavor") == "trt"


def batch_limits(sidecar: dict, onnx_path: str = "model.onnx") -> Tuple[bool, int]:
    """(dynamic, N) of an ONNX sidecar: a dynamic-batch export takes 1..N images
    per call, a fixed one exactly N."""
    try:
        n = int(sidecar.get("batch", 1))
    except (TypeError, ValueError):
        n = 0
    if n < 1:
        raise SidecarMismatch(f"sidecar of {onnx_path}: batch must be an integer >= 1, got {sidecar.get('batch')!r}")
    return bool(sidecar.get("dynamic_batch", False)), n


# --------------------------------------------------------------------------- plan sidecar
def plan_targets(side: dict) -> List[str]:
    """The plan's targets (["sm_86", ...]); older sidecars have only ``arch``."""
    targets = side.get("targets") or ([side["arch"]] if side.get("arch") else [])
    return [str(t) for t in targets]


def plan_family(side: dict) -> Tuple[str, str]:
    """(family, version) that built a plan; older sidecars are TensorRT's."""
    family = str(side.get("family") or TENSORRT)
    return family, str(side.get("family_version") or side.get("tensorrt") or "")


def read_plan_sidecar(plan_path: str) -> dict:
    side = read_sidecar_of(plan_path, error=PlanMismatch, unusable="rebuild it with mrcnn-build-engine",
                           missing="{path} has no sidecar {sidecar}: build plans with mrcnn-build-engine, which "
                                   "records the TensorRT release and GPU architectures they need")
    if not isinstance(side, dict) or side.get("format") != PLAN_FORMAT:
        raise PlanMismatch(f"{plan_path}: sidecar is not a {PLAN_FORMAT} description; rebuild with mrcnn-build-engine")
    return side


def check_plan_sidecar(side: dict, *, plan_path: str, plan_sha256: Optional[str], family: str, family_version: str,
                       visible: Iterable[int], device: int = 0) -> None:
    """Before deserializing a plan: same file, same TensorRT family and
    release, a visible GPU among its targets.

    Raises :class:`PlanMismatch` (or :class:`GpuMismatch` for the GPU).
    """
    if not isinstance(side, dict) or side.get("format") != PLAN_FORMAT:
        raise PlanMismatch(f"{plan_path}: sidecar is not a {PLAN_FORMAT} description; rebuild with mrcnn-build-engine")
    if plan_sha256 is not None and side.get("plan_sha256") != plan_sha256:
        raise PlanMismatch(f"{plan_path} does not match its sidecar (sha256 differs): the plan was replaced or "
                           f"damaged; rebuild it")
    built_family, built = plan_family(side)
    if built_family not in FAMILY_NAMES:
        raise PlanMismatch(f"{plan_path}: unknown TensorRT family {built_family!r} in its sidecar; rebuild it")
    try:
        same = built_family == family and parse_trt_version(built) == parse_trt_version(family_version)
    except ValueError:
        same = False
    if not same:
        raise PlanMismatch(f"{plan_path} was built with {FAMILY_NAMES[built_family]} {built or '?'} but "
                           f"{FAMILY_NAMES.get(family, family)} {family_version} is running: plans only load in the "
                           f"release that built them; rebuild it (mrcnn-build-engine) or install "
                           f"{FAMILY_NAMES[built_family]} {built}")
    targets = plan_targets(side)
    if not targets:
        raise PlanMismatch(f"{plan_path}: sidecar lacks the GPU architecture(s); rebuild it")
    ccs = [parse_arch(t) for t in targets]
    visible = list(visible)
    names = ",".join(targets)
    if not visible:
        raise GpuMismatch(f"no CUDA GPU is visible: {plan_path} runs on {names}")
    if device >= len(visible):
        raise GpuMismatch(f"GPU {device} is not visible ({len(visible)} GPU(s) found)")
    if visible[device] not in ccs:
        raise GpuMismatch(f"{plan_path} was built for {names} but GPU {device} is {arch_name(visible[device])}: "
                          f"rebuild the engine with --arch {arch_name(visible[device])}")
