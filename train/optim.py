"""Which parameters train, and how (docs/model.md §4.6): trainable layers, SGD with
weight decay, the learning-rate schedule, and the optimizer state kept in checkpoints.

* Trainable layers: ``set_trainable`` sets ``requires_grad`` True for the
  parameters whose names ``re.fullmatch`` the regex of the chosen option (spec
  §4.6 table) and False for the others, so a later stage *can* re-enable
  layers (the original only ever cleared the flag). BN stays frozen.
* SGD, momentum LEARNING_MOMENTUM (0.9). Weight decay WEIGHT_DECAY (1e-4) on
  every trainable parameter that does not belong to a BatchNorm module. BN
  membership is decided by module type, which covers ``bnN`` *and* the
  parameters whose names lack "bn" (``downsample.1``, ``fpn.C1.1``); the
  original's name test missed those. BN parameters are always frozen, so in
  practice every optimized parameter is decayed (biases too, like the original).
* Learning-rate schedule (a function of the global step, so resuming is exact):
  linear warm-up from 0.1 x lr over ``warmup_steps``, then ``cosine`` decay to
  0.01 x lr at the last step (default), ``step`` (x0.1 after 75% of the
  steps), or ``constant``.
* Optimizer state: the momentum buffers keyed by parameter name, so a resumed
  run with other trainable layers keeps the buffers of the parameters it still trains.
"""
from __future__ import annotations

import math
import re
from typing import Dict, List, Optional

import torch
from torch import nn

from ..errors import UserError

_HEADS = r"(fpn\.P.*)|(rpn\..*)|(classifier\..*)|(mask\..*)"
#: ``--layers`` choices -> regex (``re.fullmatch`` on parameter names), docs/model.md §4.6
LAYER_REGEX: Dict[str, str] = {
    "heads": _HEADS,
    "3+": r"(fpn\.C3.*)|(fpn\.C4.*)|(fpn\.C5.*)|" + _HEADS,
    "4+": r"(fpn\.C4.*)|(fpn\.C5.*)|" + _HEADS,
    "5+": r"(fpn\.C5.*)|" + _HEADS,
    "all": r".*",
}


def batchnorm_param_names(model: nn.Module) -> set:
    """Names of all parameters owned by BatchNorm modules."""
    names = set()
    for mname, m in model.named_modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            for pname, _ in m.named_parameters(recurse=False):
                names.add(f"{mname}.{pname}" if mname else pname)
    return names


def set_trainable(model: nn.Module, layers: str) -> List[str]:
    """Make exactly the parameters matching ``layers`` trainable (BN always frozen).

    ``layers`` is one of :data:`LAYER_REGEX` or a regex (``re.fullmatch``).
    Returns the names of the trainable parameters.
    """
    pattern = LAYER_REGEX.get(layers, layers)
    try:
        rx = re.compile(pattern)
    except re.error as e:
        raise UserError(f"--layers: not one of {', '.join(LAYER_REGEX)} and not a valid regex: {e}") from None
    bn = batchnorm_param_names(model)
    names = []
    for name, p in model.named_parameters():
        p.requires_grad = bool(rx.fullmatch(name)) and name not in bn
        if p.requires_grad:
            names.append(name)
    if not names:
        raise UserError(f"--layers {layers!r} selects no trainable parameter")
    return names


def make_optimizer(model: nn.Module, lr: float, momentum: float, weight_decay: float) -> torch.optim.SGD:
    """SGD over the trainable parameters; weight decay on the non-BatchNorm ones."""
    bn = batchnorm_param_names(model)
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if name in bn else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return torch.optim.SGD(groups, lr=lr, momentum=momentum)


def optimizer_state(model: nn.Module, opt: torch.optim.Optimizer) -> dict:
    """Momentum buffers keyed by parameter name (portable across trainable sets)."""
    bufs = {}
    for name, p in model.named_parameters():
        st = opt.state.get(p)
        if st and st.get("momentum_buffer") is not None:
            bufs[name] = st["momentum_buffer"].detach().cpu().clone()
    return {"type": "sgd", "momentum_buffers": bufs}


def load_optimizer_state(model: nn.Module, opt: torch.optim.Optimizer, state: Optional[dict]) -> int:
    """Restore the momentum buffers saved by :func:`optimizer_state`; returns how many."""
    if not state:
        return 0
    bufs = state.get("momentum_buffers", {})
    n = 0
    trainable = {id(p) for g in opt.param_groups for p in g["params"]}
    for name, p in model.named_parameters():
        if id(p) in trainable and name in bufs and bufs[name].shape == p.shape:
            opt.state[p]["momentum_buffer"] = bufs[name].to(p.device, p.dtype).clone()
            n += 1
    return n


def lr_at(step: int, total_steps: int, base_lr: float, schedule: str = "cosine", warmup_steps: int = 100) -> float:
    """Learning rate for optimizer step ``step`` (0-based) of ``total_steps``."""
    total_steps = max(int(total_steps), 1)
    warmup_steps = min(int(warmup_steps), total_steps // 10)
    if warmup_steps > 0 and step < warmup_steps:
        return base_lr * (0.1 + 0.9 * step / warmup_steps)
    if schedule == "constant":
        return base_lr
    if schedule == "step":
        return base_lr * (0.1 if step >= 0.75 * total_steps else 1.0)
    if schedule == "cosine":
        t = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
        t = min(max(t, 0.0), 1.0)
        return base_lr * (0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * t)))
    raise UserError(f"unknown LR schedule {schedule!r} (cosine|step|constant)")
