"""Building the model and loading weights into it (strictly, or ImageNet backbones
non-strictly); the files themselves are read by :mod:`mrcnn_trt.model.checkpoint`."""
from __future__ import annotations

from typing import Dict, Optional

import torch

from ..config import Config, preset
from ..errors import UserError
from .checkpoint import OPTIONAL_SUFFIX, check_device, config_from_checkpoint, read_checkpoint, shipped_model_path
from .maskrcnn import MaskRCNN


def _describe_mismatch(model: torch.nn.Module, sd: Dict[str, torch.Tensor], path: str) -> Optional[str]:
    own = model.state_dict()
    missing = [k for k in own if k not in sd and not k.endswith(OPTIONAL_SUFFIX)]
    unexpected = [k for k in sd if k not in own]
    shapes = [(k, tuple(sd[k].shape), tuple(own[k].shape)) for k in sd
              if k in own and tuple(sd[k].shape) != tuple(own[k].shape)]
    if not (missing or unexpected or shapes):
        return None

    def lst(items, n=6):
        items = list(items)
        more = f", ... (+{len(items) - n} more)" if len(items) > n else ""
        return ", ".join(items[:n]) + more

    parts = [f"{path} does not fit the model ({len(sd)} tensors in the file, {len(own)} in the model)"]
    if missing:
        parts.append(f"missing keys: {lst(missing)}")
    if unexpected:
        parts.append(f"unexpected keys: {lst(unexpected)}")
    if shapes:
        parts.append("shape mismatches: " + lst(f"{k} file {a} vs model {b}" for k, a, b in shapes))
        if any(k.startswith("classifier.linear_class") for k, _, _ in shapes):
            k = [s for s in shapes if s[0] == "classifier.linear_class.weight"]
            if k:
                parts.append(f"the file has {k[0][1][0]} classes, the config {k[0][2][0]}: choose the matching --config")
    return "; ".join(parts)



def load_weights(model: torch.nn.Module, path: str) -> dict:
    """Strictly load a checkpoint (original or ours) into ``model``.

    ``num_batches_tracked`` entries are optional. Raises :class:`UserError`
    naming missing/unexpected keys and shape mismatches. Returns the
    checkpoint's extra fields (``{}`` for the original format).
    """
    sd, extra = read_checkpoint(path)
    msg = _describe_mismatch(model, sd, path)
    if msg:
        raise UserError(msg)
    own = model.state_dict()
    full = dict(sd)
    for k in own:
        if k not in full:  # optional num_batches_tracked
            full[k] = own[k]
    model.load_state_dict(full, strict=True)
    return extra



def load_imagenet_weights(model: torch.nn.Module, path: str) -> dict:
    """Non-strict load of backbone weights (``fpn.C*`` names, e.g. ResNet-50 into
    ResNet-101 like the original). Returns a report: loaded / skipped keys."""
    sd, _ = read_checkpoint(path)
    own = model.state_dict()
    loaded, shape_skip, unknown = [], [], []
    new = {}
    for k, v in sd.items():
        if k not in own:
            unknown.append(k)
        elif tuple(v.shape) != tuple(own[k].shape):
            shape_skip.append(k)
        else:
            new[k] = v
            loaded.append(k)
    if not loaded:
        raise UserError(f"{path}: no tensor matches the model's names (expected keys like 'fpn.C1.0.weight')")
    model.load_state_dict(new, strict=False)
    not_loaded = [k for k in own if k not in new and not k.endswith(OPTIONAL_SUFFIX)]
    return {"loaded": len(loaded), "skipped_shape": shape_skip, "unknown": unknown,
            "model_keys_not_loaded": len(not_loaded)}



def build_model(config: str | Config = "coco", ops_backend: str = "native"):
    cfg = preset(config) if isinstance(config, str) else config
    return MaskRCNN(cfg, ops_backend=ops_backend)



def load_model(weights: Optional[str], config: Optional[str | Config] = None, ops_backend: str = "native",
               device: str = "cpu"):
    """Build the model that fits ``weights`` (None -> the shipped shapes model) and load it.

    Returns (model in eval mode, config, extra).
    """
    check_device(device)
    path = weights or shipped_model_path()
    sd, extra = read_checkpoint(path)
    cfg = config_from_checkpoint(extra, sd, config)
    model = build_model(cfg, ops_backend=ops_backend)
    load_weights(model, path)
    return model.to(device).eval(), cfg, extra
