"""Precision planning: what the builder does for ``--fp16`` / ``--int8``.

Two kinds of builders (:class:`~.families.Family`, by feature detection):

* **flag builders** (TensorRT <= 10): ``--fp16`` sets ``BuilderFlag.FP16``
  (TensorRT picks FP16 per layer); ``--int8`` sets ``BuilderFlag.INT8`` and
  calibrates inside the builder (``--calib-images`` or a valid
  ``--calib-cache``) unless the model carries Q/DQ nodes.
* **strongly typed builders** (TensorRT 11, TensorRT for RTX): no precision
  flags, no calibrators; precision comes from the graph. ``--fp16`` on a
  float32 model builds an FP16 graph made on the fly with
  :func:`mrcnn_trt.calib.fp16.convert_model`; ``--int8`` needs a Q/DQ model,
  or ``--calib-images`` to make one with :func:`mrcnn_trt.calib.qdq.quantize_model`
  (what ``mrcnn-calibrate`` does).

A model with Q/DQ nodes always builds as INT8 (``--int8`` implied).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

from mrcnn_trt.calib.precision import OnnxPrecision, onnx_precision  # noqa: F401  (the model side of the plan)

from .errors import PrecisionUnsupported
from .families import Family, family_of_version

PRECISIONS = ("fp32", "fp16", "int8", "int8+fp16")


@dataclass(frozen=True)
class PrecisionPlan:
    """Builder settings for the requested precision."""

    fp16_flag: bool            # set BuilderFlag.FP16 (flag builders)
    int8_flag: bool            # set BuilderFlag.INT8 (flag builders)
    calibrate: bool            # attach an INT8 calibrator (flag builders, model without Q/DQ)
    int8_mode: Optional[str]   # "calibrated" | "qdq" | None
    label: str                 # "fp32", "fp16", "int8", "int8+fp16", "qdq-int8", ...
    convert_fp16: bool = False  # strongly typed: build an FP16 graph made from the float32 one
    make_qdq: bool = False      # strongly typed: calibrate and build a Q/DQ graph (--calib-images)

    @property
    def source(self) -> str:
        """Where the precision comes from (recorded in the plan sidecar)."""
        if self.convert_fp16:
            return "fp16-graph-converted"
        if self.make_qdq:
            return "qdq-graph-calibrated"
        if self.fp16_flag or self.int8_flag:
            return "builder-flags"
        return "graph"


def parse_precision(precision: str) -> tuple[bool, bool]:
    """``"fp32" | "fp16" | "int8" | "int8+fp16"`` -> (fp16, int8)."""
    p = str(precision).lower().replace(" ", "")
    if p == "fp16+int8":
        p = "int8+fp16"
    if p not in PRECISIONS:
        raise PrecisionUnsupported(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return "fp16" in p, "int8" in p


def plan_precision(builder: Union[Family, str], *, fp16: bool, int8: bool, model: OnnxPrecision,
                   calib_images: Optional[str] = None, calib_cache: Optional[str] = None) -> PrecisionPlan:
    """Decide builder settings; raise :class:`PrecisionUnsupported` for impossible requests.

    ``builder``: the :class:`Family` that builds, or a TensorRT release string
    (TensorRT >= 11 counts as strongly typed).
    """
    fam = family_of_version(builder) if isinstance(builder, str) else builder
    int8 = int8 or model.has_qdq  # a Q/DQ model is an INT8 model: --int8 is implied
    if (calib_images or calib_cache) and not int8:
        raise PrecisionUnsupported("--calib-images/--calib-cache only make sense with --int8")
    if int8 and model.has_qdq and (calib_images or calib_cache):
        raise PrecisionUnsupported("this ONNX model already has Q/DQ nodes (explicit quantization): drop "
                                   "--calib-images/--calib-cache")
    plan = _plan_strongly_typed if fam.strongly_typed else _plan_with_flags
    return plan(fam, fp16=bool(fp16), int8=bool(int8), model=model, calib_images=calib_images,
                calib_cache=calib_cache)


def _plan_strongly_typed(fam: Family, *, fp16: bool, int8: bool, model: OnnxPrecision,
                         calib_images: Optional[str], calib_cache: Optional[str]) -> PrecisionPlan:
    """No flags, no calibrators: the graph carries the precision (converted to FP16, or
    calibrated into a Q/DQ graph, when the request asks for it)."""
    who = fam.label
    if calib_cache:
        raise PrecisionUnsupported(f"{who} has no INT8 calibrators, so no calibration cache: drop --calib-cache "
                                   f"(give --calib-images to calibrate a Q/DQ model, or build one from "
                                   f"mrcnn-calibrate)")
    if int8 and not model.has_qdq and not calib_images:
        raise PrecisionUnsupported(f"{who} has no INT8 calibrators (explicit quantization only): give "
                                   f"--calib-images DIR to calibrate a Q/DQ model now, or build the Q/DQ model "
                                   f"from mrcnn-calibrate with --int8")
    if int8 and fp16:
        raise PrecisionUnsupported(f"{who} builds strongly typed networks: --int8 with --fp16 is not available "
                                   f"(the Q/DQ model keeps its float layers in FP32); drop --fp16")
    if int8:
        label = "qdq-int8"
    elif fp16 or model.has_fp16:
        label = "fp16"
    else:
        label = "fp32"
    return PrecisionPlan(False, False, False, "qdq" if int8 else None, label,
                         convert_fp16=bool(fp16 and not model.has_fp16),
                         make_qdq=bool(int8 and not model.has_qdq))


def _plan_with_flags(fam: Family, *, fp16: bool, int8: bool, model: OnnxPrecision,
                     calib_images: Optional[str], calib_cache: Optional[str]) -> PrecisionPlan:
    """Builder flags for FP16 / INT8; INT8 without Q/DQ nodes is calibrated in the builder."""
    calibrate = int8 and not model.has_qdq
    if calibrate and not (calib_images or calib_cache):
        raise PrecisionUnsupported("--int8 needs --calib-images DIR (calibrate now) or --calib-cache FILE "
                                   "(a cache written by an earlier calibration of this model)")
    if calibrate and not fam.calibrators:
        raise PrecisionUnsupported(f"{fam.label} has no INT8 calibrators: build a Q/DQ model with mrcnn-calibrate")
    mode = None if not int8 else ("qdq" if model.has_qdq else "calibrated")
    label = "+".join(x for x in (("qdq-int8" if mode == "qdq" else "int8") if int8 else "", "fp16" if fp16 else "")
                     if x) or "fp32"
    return PrecisionPlan(fp16, int8, calibrate, mode, label)
