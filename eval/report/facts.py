"""The run facts of the report: model, backbone, backend, precision, image size,
confidence cut-off, data, speed (from metrics.json and the model's sidecar or checkpoint).
"""
from __future__ import annotations

import os
from typing import List, Optional, Tuple

from mrcnn_trt.errors import UserError
from mrcnn_trt.fileio import read_json, sidecar_path
from mrcnn_trt.model.checkpoint import config_from_checkpoint, read_checkpoint, shipped_model_path

from .references import confidence_effect, fmt


# ----------------------------------------------------------------------------- run facts
def _model_sidecar(model: Optional[str]) -> dict:
    if model and os.path.isfile(model) and os.path.isfile(sidecar_path(model)):
        try:
            return read_json(sidecar_path(model))
        except UserError:
            return {}
    return {}


def model_config(metrics: dict, config=None) -> dict:
    """The model's config as a dict: ``config`` when given, else the model's sidecar
    (.onnx/.plan), else the checkpoint's (.pth, the shipped model)."""
    if config is not None:
        return config.to_dict() if hasattr(config, "to_dict") else dict(config)
    model = metrics.get("model")
    side = _model_sidecar(model)
    if side.get("config"):
        return dict(side["config"])

    path = shipped_model_path() if model in (None, "shipped:shapes") else model
    if path and os.path.isfile(path) and not path.endswith((".onnx", ".plan", ".engine")):
        sd, extra = read_checkpoint(path)
        return config_from_checkpoint(extra, sd, None).to_dict()
    return {}


def model_precision(metrics: dict) -> str:
    model = metrics.get("model") or ""
    side = _model_sidecar(model)
    p = side.get("precision")
    if isinstance(p, dict):
        return str(p.get("label") or "?")
    if p:
        return str(p)
    if model.endswith(".onnx"):
        return "fp32"
    if model.endswith((".plan", ".engine")):
        return "? (no sidecar)"
    return "fp32 (PyTorch)"


def run_facts(metrics: dict, cfg: dict) -> List[Tuple[str, str]]:
    """``(name, value)`` rows: model, backend, precision, image size, min confidence, images, speed."""
    lat = metrics.get("latency_ms") or {}
    lat_img = metrics.get("latency_per_image_ms") or {}
    min_conf = metrics.get("min_confidence", cfg.get("DETECTION_MIN_CONFIDENCE"))
    size = "?"
    if cfg.get("IMAGE_MAX_DIM"):
        size = (f"{cfg.get('IMAGE_MIN_DIM')}–{cfg['IMAGE_MAX_DIM']} px (IMAGE_MIN_DIM–IMAGE_MAX_DIM; "
                f"network input {cfg['IMAGE_MAX_DIM']}×{cfg['IMAGE_MAX_DIM']})")
    classes = cfg.get("CLASS_NAMES") or []
    facts = [
        ("model", str(metrics.get("model", "?"))),
        ("backbone", f"{cfg.get('BACKBONE', '?')}, {max(len(classes) - 1, 0)} classes "
                     f"({', '.join(list(classes)[1:6])}{', ...' if len(classes) > 6 else ''})"),
        ("backend", str(metrics.get("backend", "?"))),
        ("precision", model_precision(metrics)),
        ("image size", size),
        ("DETECTION_MIN_CONFIDENCE", (fmt(min_conf, 2) if min_conf is not None else "?")
         + (f" ({confidence_effect(min_conf)})" if confidence_effect(min_conf) else "")),
        ("dataset", f"{metrics.get('dataset', '?')} ({metrics.get('split', '?')} split): "
                    f"{metrics.get('data_root', '?')}"),
        ("images evaluated", str(metrics.get("num_images", "?"))),
        ("batch", str(metrics.get("batch", "?"))),
        ("latency (network call)", f"p50 {fmt(lat.get('p50'))} ms, p90 {fmt(lat.get('p90'))} ms; "
                                   f"per image p50 {fmt(lat_img.get('p50'))} ms"),
        ("throughput (end to end)", f"{fmt(metrics.get('throughput_ips'), 2)} images/s"),
    ]
    if metrics.get("interrupted"):
        facts.append(("note", "the evaluation was interrupted: only the images processed are counted"))
    return facts
