"""Fine-tuning initialisation: load a checkpoint trained on other classes.

Every tensor except the class-specific head layers is copied (its shape must
match). The class-specific layers are reshaped to the target classes:

==============================  =============  ==========================
tensor                          rows           one row block per class k
==============================  =============  ==========================
``classifier.linear_class``     ``[K, fc]``    row ``k`` (+ bias ``[K]``)
``classifier.linear_bbox``      ``[4K, fc]``   rows ``4k .. 4k+3`` (+ bias)
``mask.conv5``                  ``[K, C,1,1]`` row ``k`` (+ bias ``[K]``)
==============================  =============  ==========================

The block of target class ``k`` is copied from the source class with the same
name (BG from BG); target classes without a source class (Cityscapes *rider*
from COCO) keep the model's fresh initialisation. For COCO -> Cityscapes this
is the mapping of :mod:`mrcnn_trt.data.classmap`: person, bicycle, car,
motorcycle, bus, train and truck.
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence

import torch

from ..config import COCO_CLASS_NAMES
from ..errors import UserError

#: class-specific tensors -> rows per class
CLASS_TENSORS = {
    "classifier.linear_class.weight": 1,
    "classifier.linear_class.bias": 1,
    "classifier.linear_bbox.weight": 4,
    "classifier.linear_bbox.bias": 4,
    "mask.conv5.weight": 1,
    "mask.conv5.bias": 1,
}


def class_mapping(source_names: Sequence[str], target_names: Sequence[str],
                  name_map: Optional[Dict[str, str]] = None) -> Dict[int, int]:
    """Target class index -> source class index, by (optionally renamed) class name.

    ``name_map`` renames target names before the look-up (target -> source name).
    Index 0 (BG) always maps to 0.
    """
    src = {n: i for i, n in enumerate(source_names)}
    out = {0: 0}
    for t, n in enumerate(target_names):
        if t == 0:
            continue
        n = (name_map or {}).get(n, n)
        if n in src and src[n] != 0:
            out[t] = src[n]
    return out


def source_class_names(sd: Dict[str, torch.Tensor], extra: dict) -> Sequence[str]:
    """Class names of a checkpoint: stored in our format, else COCO for 81 classes."""
    if extra.get("config", {}).get("CLASS_NAMES"):
        return tuple(extra["config"]["CLASS_NAMES"])
    k = int(sd["classifier.linear_class.weight"].shape[0])
    if k == len(COCO_CLASS_NAMES):
        return COCO_CLASS_NAMES
    raise UserError(f"cannot tell the class names of a {k}-class checkpoint (only our checkpoints "
                    f"store them; the original format is assumed to be COCO's 81 classes)")


def needs_finetune_init(model: torch.nn.Module, sd: Dict[str, torch.Tensor]) -> bool:
    """True when only the class-specific tensors differ in shape."""
    own = model.state_dict()
    diff = [k for k in sd if k in own and tuple(sd[k].shape) != tuple(own[k].shape)]
    return bool(diff) and all(k in CLASS_TENSORS for k in diff)


def init_from_other_classes(model: torch.nn.Module, sd: Dict[str, torch.Tensor], source_names: Sequence[str],
                            target_names: Optional[Sequence[str]] = None,
                            name_map: Optional[Dict[str, str]] = None) -> dict:
    """Load ``sd`` into ``model`` with reshaped class-specific heads (see module doc).

    Returns a report: ``mapping`` (target index -> source index),
    ``copied_classes`` / ``fresh_classes`` (target names).
    """
    own = model.state_dict()
    target_names = tuple(target_names or model.config.CLASS_NAMES)
    k_src = int(sd["classifier.linear_class.weight"].shape[0])
    if len(source_names) != k_src:
        raise UserError(f"the checkpoint has {k_src} classes but {len(source_names)} class names")
    k_dst = int(own["classifier.linear_class.weight"].shape[0])
    if len(target_names) != k_dst:
        raise UserError(f"the model has {k_dst} classes but {len(target_names)} class names")
    missing = [k for k in own if k not in sd and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in sd if k not in own]
    bad = [k for k in sd if k in own and k not in CLASS_TENSORS and tuple(sd[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or bad:
        raise UserError("the checkpoint's network differs from the model's beyond the class heads "
                        f"(missing {missing[:4]}, unexpected {unexpected[:4]}, shape mismatches {bad[:4]}); "
                        "choose a --config with the same backbone and widths")
    mapping = class_mapping(source_names, target_names, name_map)
    new = {}
    for k, v in own.items():
        if k not in sd:
            new[k] = v
        elif k in CLASS_TENSORS:
            rows = CLASS_TENSORS[k]
            t = v.clone()
            for dst, src in mapping.items():
                t[dst * rows:(dst + 1) * rows] = sd[k][src * rows:(src + 1) * rows].to(t.dtype)
            new[k] = t
        else:
            new[k] = sd[k].to(v.dtype)
    model.load_state_dict(new, strict=True)
    return {"mapping": mapping,
            "copied_classes": [target_names[t] for t in sorted(mapping) if t > 0],
            "fresh_classes": [n for i, n in enumerate(target_names) if i > 0 and i not in mapping]}
