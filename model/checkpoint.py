"""Checkpoint files: the original format, our training checkpoints, ImageNet weights.

* Original (``mask_rcnn_coco.pth``): a plain state_dict, 690 tensors for R-101
  (``num_batches_tracked`` optional). Loaded strictly.
* Ours (``save_checkpoint``): ``{"format": "mrcnn-trt/1", "model": state_dict,
  "config": {...}, "epoch": int, "optimizer": ..., ...}``, written atomically.
* ImageNet ResNet weights in the converter's ``fpn.C*`` naming: loaded
  non-strictly with a report.

Every file is read with ``torch.load(weights_only=True)``: a pickle that
would run code is refused, never executed. Reading a checkpoint needs no model
(torch is imported at first use); building the model and loading weights into
it is :mod:`mrcnn_trt.model.loading`.
"""
from __future__ import annotations

import importlib.resources as ir
import os
import pickle
import warnings
from typing import Dict, Optional, Tuple

from mrcnn_trt.lazy import lazy_import

from ..config import Config, preset
from ..errors import UserError
from ..fileio import atomic_path

torch = lazy_import("torch")

FORMAT = "mrcnn-trt/1"
OPTIONAL_SUFFIX = "num_batches_tracked"


def read_checkpoint(path: str) -> Tuple[Dict[str, torch.Tensor], dict]:
    """Read a checkpoint file safely; return (state_dict, extra) where ``extra``
    holds our checkpoint's other fields (config, epoch, ...) or is empty."""
    if os.path.isdir(path):
        raise UserError(f"{path} is a folder, not a weights file: give the .pth file")
    if not os.path.isfile(path):
        raise UserError(f"weights file not found: {path}")
    with open(path, "rb") as f:
        head = f.read(4)
    if not head:
        raise UserError(f"{path} is empty, not a PyTorch checkpoint")
    if not (head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"):   # zip (torch.save) or pickle
        raise UserError(f"{path} is not a PyTorch checkpoint (a .pth file written by torch.save)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)   # "Detected pickle protocol 4 ..."
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        culprit = next((ln.strip() for ln in str(e).splitlines() if "GLOBAL" in ln or "Unsupported" in ln), "")
        if "Weights only load failed" in str(e) and culprit:
            raise UserError(f"refusing to load {path}: it is not a plain weights file and loading it would "
                            f"execute Python code ({culprit.rstrip('.')})") from None
        raise UserError(f"{path} is not a PyTorch checkpoint (unreadable pickle data)") from None
    except (RuntimeError, EOFError, KeyError, ValueError) as e:
        first = str(e).strip().split(". ")[0].rstrip(".") or type(e).__name__
        raise UserError(f"{path} is damaged, truncated or not a PyTorch checkpoint ({first})") from None
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        sd = obj.get("model")
        extra = {k: v for k, v in obj.items() if k != "model"}
    elif isinstance(obj, dict):
        sd, extra = obj, {}
    else:
        raise UserError(f"{path} does not contain a state_dict (found {type(obj).__name__})")
    if not all(isinstance(k, str) and torch.is_tensor(v) for k, v in sd.items()):
        raise UserError(f"{path} is not a state_dict of tensors")
    return sd, extra


def save_checkpoint(path: str, model: torch.nn.Module, config: Optional[Config] = None,
                    original_format: bool = False, **extra) -> None:
    """Save atomically. ``original_format`` writes a plain state_dict (the
    original's layout, no ``num_batches_tracked``); otherwise our format with
    the config and ``extra`` fields (epoch, optimizer state, ...)."""
    sd = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    if original_format:
        obj = {k: v for k, v in sd.items() if not k.endswith(OPTIONAL_SUFFIX)}
    else:
        obj = {"format": FORMAT, "model": sd}
        if config is not None:
            obj["config"] = config.to_dict()
        obj.update(extra)
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def config_from_checkpoint(extra: dict, sd: Dict[str, torch.Tensor], config: Optional[str | Config]) -> Config:
    """Pick the config: explicit > stored in our checkpoint > inferred (coco for 81 classes)."""
    if isinstance(config, Config):
        return config
    if config:
        return preset(config)
    if "config" in extra:
        return Config.from_dict(extra["config"])
    w = sd.get("classifier.linear_class.weight")
    n = int(w.shape[0]) if w is not None else 81
    nblocks = len({k.split(".")[2] for k in sd if k.startswith("fpn.C4.")})
    backbone = {23: "resnet101", 6: "resnet50"}.get(nblocks, "resnet101")
    if n == 81:
        return preset("coco").replace(BACKBONE=backbone)
    if n == 9:
        return preset("cityscapes").replace(BACKBONE=backbone)
    raise UserError(f"cannot tell the config of a {n}-class checkpoint; pass --config")


def shipped_model_path() -> str:
    """Path of the small model trained on synthetic shapes (shipped with the package)."""
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "assets", "shapes_r14.pth")

    try:
        p = ir.files("mrcnn_trt") / "assets" / "shapes_r14.pth"
        if p.is_file():
            return str(p)
    except (ModuleNotFoundError, FileNotFoundError):  # pragma: no cover
        pass
    return os.path.normpath(here)


def check_device(device: str) -> str:
    """``device`` if this PyTorch can use it, else one :class:`UserError` line
    (e.g. ``cuda`` with a CPU-only PyTorch or without a visible GPU)."""
    d = str(device)
    if d.startswith("cuda"):
        index = int(d.split(":", 1)[1]) if ":" in d else 0
        if not torch.cuda.is_available():
            why = "this PyTorch is a CPU-only build" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise UserError(f"device {d}: {why}; use --device cpu")
        if index >= torch.cuda.device_count():
            raise UserError(f"device {d}: only {torch.cuda.device_count()} CUDA GPU(s) visible")
    elif d != "cpu":
        raise UserError(f"unknown device {d!r} (cpu, cuda or cuda:N)")
    return d
