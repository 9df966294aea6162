"""The training loop (docs/model.md §4.3-§4.6, with the original's bugs fixed).

* Real mini-batches: N >= 1 prepared images go through the batched model in
  one forward pass; each loss is pooled over the batch (:mod:`.losses`); one
  optimizer step per batch, after clipping the global gradient norm to
  GRADIENT_CLIP_NORM (5.0). (The original ran batch size 1 and summed
  gradients over 16 images, clipping after each image.)
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
* Trainable layers: ``set_trainable`` sets ``requires_grad`` True for the
  parameters whose names ``re.fullmatch`` the regex of the chosen option (spec
  §4.6 table) and False for the others, so a later stage *can* re-enable
  layers (the original only ever cleared the flag). BN stays frozen.
* Training images get the horizontal flip, validation images do not. Every
  random draw of an image (flip, RPN anchor subsampling, ROI sampling) is
  seeded by ``--seed`` and the image's key (its place in the run), so it is
  the same whichever batch or process the image lands in.
* Several processes (``ctx``, :mod:`mrcnn_trt.train.distributed`): DDP over a
  global batch of ``batch x world_size``, losses pooled over the global batch,
  rank 0 writes.
* Checkpoints: ``OUT/epoch_0001.pth`` ... and ``OUT/last.pth`` after every
  epoch (atomic), our format with the config, epoch, global step, loss
  history and the optimizer state (momentum buffers keyed by parameter name,
  so a resumed run with other trainable layers keeps the buffers of the
  parameters it still trains). ``OUT/losses.json`` and ``OUT/losses.png``
  (matplotlib Agg) are rewritten after every epoch.
"""
from __future__ import annotations

import json
import math
import os
import re
import sys
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import UserError
from ..fileio import atomic_path, write_json_atomic
from ..model.anchors import generate_pyramid_anchors
from ..model.checkpoint import save_checkpoint
from .losses import (LOSS_NAMES, mrcnn_bbox_loss, mrcnn_class_loss, mrcnn_mask_loss, rpn_bbox_loss,
                     rpn_class_loss)
from .targets import TrainSample, batch_detection_targets, prepare_sample

_HEADS = r"(fpn\.P.*)|(rpn\..*)|(classifier\..*)|(mask\..*)"
#: ``--layers`` choices -> regex (``re.fullmatch`` on parameter names), docs/model.md §4.6
LAYER_REGEX: Dict[str, str] = {
    "heads": _HEADS,
    "3+": r"(fpn\.C3.*)|(fpn\.C4.*)|(fpn\.C5.*)|" + _HEADS,
    "4+": r"(fpn\.C4.*)|(fpn\.C5.*)|" + _HEADS,
    "5+": r"(fpn\.C5.*)|" + _HEADS,
    "all": r".*",
}


# --------------------------------------------------------------------------- parameters
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


# --------------------------------------------------------------------------- data
class PreparedData(torch.utils.data.Dataset):
    """Dataset of prepared :class:`TrainSample` (or ``None`` for unusable images).

    Items are addressed by ``(index, key)`` pairs; ``key`` seeds the image's
    random generator (flip + RPN subsampling), so a run is reproducible
    whatever the number of loader workers.
    """

    def __init__(self, dataset, config, seed: int, augment: bool):
        self.dataset = dataset
        self.config = config
        self.seed = int(seed)
        self.augment = augment
        self.anchors = generate_pyramid_anchors(config)

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, item):
        index, key = item
        rng = np.random.default_rng([self.seed, int(key), int(index), int(self.augment)])
        sample = prepare_sample(self.dataset[int(index)], self.config, self.anchors, rng, augment=self.augment)
        if sample is not None:
            sample.key = int(key)
        return sample


class _KeySampler(torch.utils.data.Sampler):
    def __init__(self, items):
        self.items = list(items)

    def __iter__(self):
        return iter(self.items)

    def __len__(self):
        return len(self.items)


def _collate(batch):
    return [b for b in batch if b is not None]


def make_loader(data: PreparedData, items: Sequence, batch_size: int, workers: int):
    """Batches of ``items``; ``workers`` loader processes compute with one thread each
    (:func:`mrcnn_trt.threads.worker_init`), so they do not oversubscribe the cores."""
    from mrcnn_trt.threads import worker_init

    return torch.utils.data.DataLoader(data, batch_size=batch_size, sampler=_KeySampler(items),
                                       num_workers=workers, collate_fn=_collate,
                                       worker_init_fn=worker_init if workers else None,
                                       persistent_workers=False, prefetch_factor=4 if workers else None)


def epoch_items(n: int, steps: int, batch: int, seed: int, epoch: int) -> List[tuple]:
    """``steps * batch`` (index, key) pairs: seeded permutations of 0..n-1, repeated as needed."""
    rng = np.random.default_rng([seed, epoch, 7])
    need = steps * batch
    idx = []
    while len(idx) < need:
        idx.extend(rng.permutation(n).tolist())
    return [(i, epoch * 1_000_003 + k) for k, i in enumerate(idx[:need])]


class Subset:
    """A view of some indices of a dataset (for a held-out validation fraction)."""

    def __init__(self, dataset, indices):
        self.dataset = dataset
        self.indices = [int(i) for i in indices]
        self.class_names = getattr(dataset, "class_names", None)

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, i):
        return self.dataset[self.indices[i]]


# --------------------------------------------------------------------------- one step
def proposal_ops(model):
    """The ops object that makes training proposals: the compiled CPU kernels when the
    model runs the PyTorch reference ops on the CPU and the kernels are built (same
    semantics, ~50x faster than the Python NMS loop), else the model's own ops.
    Proposals need no gradient, so this changes nothing but speed."""
    key = (id(model.ops), model.anchors.device.type)
    cached = getattr(model, "_train_proposal_ops", None)
    if cached is not None and cached[0] == key:
        return cached[1]
    ops = model.ops
    if getattr(ops, "name", "") == "torch" and model.anchors.device.type == "cpu":
        try:
            from ..model.backends import CpuKernelOps
            from ..plugins import cpu

            if cpu.available():
                ops = CpuKernelOps(model.config)
        except (ImportError, OSError):  # pragma: no cover - kernels not built
            pass
    object.__setattr__(model, "_train_proposal_ops", (key, ops))
    return ops


def loss_counts(samples: List[TrainSample], targets) -> Dict[str, int]:
    """How many rows each of the five losses averages over, for these images:
    RPN anchors with a label, positive anchors with a target row, sampled ROIs,
    positive ROIs (box and mask). A mean over several processes weights each
    process's mean by its count (:mod:`mrcnn_trt.train.distributed`)."""
    return {
        "rpn_class": int(sum(int((s.rpn_match != 0).sum()) for s in samples)),
        "rpn_bbox": int(sum(min(int((s.rpn_match == 1).sum()), int(s.rpn_bbox.shape[0])) for s in samples)),
        "mrcnn_class": int(sum(int(torch.as_tensor(t.class_ids).numel()) for t in targets)),
        "mrcnn_bbox": int(sum(int((torch.as_tensor(t.class_ids) > 0).sum()) for t in targets)),
        "mrcnn_mask": int(sum(int(t.num_positive) for t in targets)),
    }


def forward_losses(model, samples: List[TrainSample], rng, return_counts: bool = False):
    """Training forward pass on prepared samples -> the five losses (docs/model.md §4.3-§4.5).

    The model must be in training mode (BatchNorm stays frozen). Proposals are
    made without gradient (POST_NMS_ROIS_TRAINING per image), detection targets
    are sampled per image (``rng``: one generator, or one per image; see
    :func:`~mrcnn_trt.train.targets.batch_detection_targets`), and the heads run
    on the sampled ROIs of all images together. ``return_counts``: also return
    :func:`loss_counts`, as ``(losses, counts)``.
    """
    cfg = model.config
    dev = model.anchors.device
    images = torch.from_numpy(np.stack([s.image for s in samples])).to(dev).permute(0, 3, 1, 2).float()
    maps = model.features(model.normalize(images))
    rpn_logits, rpn_probs, rpn_deltas = model.rpn_outputs(maps)
    rpn_match = torch.from_numpy(np.stack([s.rpn_match for s in samples])).to(dev)
    rpn_bbox = torch.from_numpy(np.stack([s.rpn_bbox for s in samples])).to(dev)
    with torch.no_grad():
        rois, count, _ = proposal_ops(model).proposal_layer(rpn_probs[:, :, 1].detach(), rpn_deltas.detach(),
                                                            model.anchors, training=True)
    targets = batch_detection_targets(rois, count, samples, cfg, rng)
    mrcnn_maps = maps[:4]
    n = len(samples)

    def padded(rows: List[torch.Tensor]):
        k = max([r.shape[0] for r in rows] + [0])
        out = torch.zeros((n, k, 4), dtype=torch.float32, device=dev)
        valid = torch.zeros((n, k), dtype=torch.bool, device=dev)
        for i, r in enumerate(rows):
            out[i, : r.shape[0]] = r
            valid[i, : r.shape[0]] = True
        return out, valid

    # box head on all sampled ROIs
    roi_pad, roi_valid = padded([t.rois for t in targets])
    crops = model.ops.pyramid_roi_align(roi_pad, mrcnn_maps, mask=False)[roi_valid]
    class_logits, _, class_deltas = model.classifier(crops)
    class_ids = torch.cat([t.class_ids for t in targets]).to(dev)
    deltas = torch.cat([t.deltas for t in targets]).to(dev)
    # mask head on the positives
    pos_pad, pos_valid = padded([t.rois[: t.num_positive] for t in targets])
    mcrops = model.ops.pyramid_roi_align(pos_pad, mrcnn_maps, mask=True)[pos_valid]
    mask_logits = model.mask.logits(mcrops)
    pos_ids = torch.cat([t.class_ids[: t.num_positive] for t in targets]).to(dev)
    pos_masks = torch.cat([t.masks for t in targets]).to(dev)

    losses = {
        "rpn_class": rpn_class_loss(rpn_match, rpn_logits),
        "rpn_bbox": rpn_bbox_loss(rpn_bbox, rpn_match, rpn_deltas),
        "mrcnn_class": mrcnn_class_loss(class_ids, class_logits),
        "mrcnn_bbox": mrcnn_bbox_loss(deltas, class_ids, class_deltas),
        "mrcnn_mask": mrcnn_mask_loss(pos_masks, pos_ids, mask_logits),
    }
    return (losses, loss_counts(samples, targets)) if return_counts else losses


#: largest magnitude a trained weight may reach before the run counts as diverged (a network of this
#: kind keeps its weights within a few units; a too-high --lr pushes them to 1e10 and beyond)
WEIGHT_LIMIT = 1e4


def check_divergence(model, epoch: int, val_losses: Dict[str, float], saved_epoch: int, out_dir: str) -> None:
    """Before an epoch is saved: its validation losses must be finite and every
    trainable weight finite and below :data:`WEIGHT_LIMIT`; otherwise
    :class:`UserError` (nothing of this epoch is written, ``last.pth`` stays
    the last good epoch). The per-step check covers the training losses."""
    bad = [f"validation {k} is {v}" for k, v in val_losses.items() if not math.isfinite(v)]
    if not bad:
        with torch.no_grad():
            for name, p in model.named_parameters():
                if not p.requires_grad:
                    continue
                if not torch.isfinite(p).all():
                    bad.append(f"weight {name} is not finite")
                    break
                top = float(p.abs().max()) if p.numel() else 0.0
                if top > WEIGHT_LIMIT:
                    bad.append(f"weight {name} reaches {top:.3g} (limit {WEIGHT_LIMIT:g})")
                    break
    if bad:
        kept = (f"the last complete epoch is {saved_epoch} ({os.path.join(out_dir, 'last.pth')})" if saved_epoch
                else "nothing was saved")
        raise UserError(f"training diverged in epoch {epoch}: {bad[0]}; epoch {epoch} is not saved, {kept}; "
                        f"lower --lr")


def train_step(model, optimizer, samples: List[TrainSample], rng,
               clip_norm: float) -> Dict[str, float]:
    """One optimizer step on a batch; returns the float losses (plus ``loss``, ``grad_norm``)."""
    model.train()
    losses = forward_losses(model, samples, rng)
    loss = sum(losses[k] for k in LOSS_NAMES)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    params = [p for g in optimizer.param_groups for p in g["params"]]
    gnorm = torch.nn.utils.clip_grad_norm_(params, clip_norm)
    optimizer.step()
    out = {k: float(v.detach()) for k, v in losses.items()}
    out["loss"] = float(loss.detach())
    out["grad_norm"] = float(gnorm)
    return out


def val_item(i: int) -> tuple:
    """The ``(index, key)`` item of validation image ``i`` (its key is its place: no epoch)."""
    return (int(i), int(i))


def val_rng(seed: int, sample: TrainSample) -> np.random.Generator:
    """The generator of a validation image's ROI sampling (by its key: the same in any batch or process)."""
    return np.random.default_rng([seed, 99, int(sample.key)])


@torch.no_grad()
def validation_losses(model, loader, seed: int) -> Dict[str, float]:
    """Mean losses over a validation loader (training-mode forward, no augmentation):
    each batch's pooled losses, weighted by its number of images."""
    model.train()
    sums: Dict[str, float] = {}
    n = 0
    for samples in loader:
        if not samples:
            continue
        losses = forward_losses(model, samples, [val_rng(seed, s) for s in samples])
        losses = {k: float(v) for k, v in losses.items()}
        losses["loss"] = sum(losses[k] for k in LOSS_NAMES)
        for k, v in losses.items():
            sums[k] = sums.get(k, 0.0) + v * len(samples)
        n += len(samples)
    return {k: v / n for k, v in sums.items()} if n else {}


# --------------------------------------------------------------------------- the loop
@dataclass
class TrainOptions:
    out_dir: str
    epochs: int
    layers: str = "heads"
    lr: Optional[float] = None
    batch: Optional[int] = None
    steps_per_epoch: Optional[int] = None
    val_steps: int = 50
    seed: int = 0
    workers: int = 1
    schedule: str = "cosine"
    warmup_steps: int = 100
    log_every: int = 20
    export: Optional[str] = None       # final weights without optimizer state
    quiet: bool = False


@dataclass
class TrainState:
    """Where a run stands (restored from ``last.pth`` on resume)."""

    epoch: int = 0
    global_step: int = 0
    history: dict = field(default_factory=lambda: {"epochs": [], "steps": []})
    optimizer: Optional[dict] = None


def _log(opts: TrainOptions, msg: str) -> None:
    if not opts.quiet:
        print(msg, flush=True)


def plot_losses(history: dict, path: str) -> None:
    """Write :func:`losses_figure` of ``history`` to ``path`` (PNG)."""
    fig = losses_figure(history)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)


def losses_figure(history: dict):
    """Loss curves: running training losses per step window, and per-epoch train/val totals
    (a matplotlib Figure, no pyplot state). The legends sit outside the plotting areas
    (right of each), so they hide no curve; epochs are whole numbers on their axis."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(13, 4.5), layout="constrained")
    axes = fig.subplots(1, 2)
    steps = history.get("steps", [])
    if steps:
        x = [s["step"] for s in steps]
        for k in ("loss",) + LOSS_NAMES:
            axes[0].plot(x, [s[k] for s in steps], label=k, lw=2 if k == "loss" else 1,
                         marker="o" if len(steps) < 20 else None, ms=3)
        axes[0].set_yscale("log")
    axes[0].set_xlabel("optimizer step")
    axes[0].set_title("training losses (running mean)")
    if steps:
        axes[0].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    ep = history.get("epochs", [])
    if ep:
        x = [e["epoch"] for e in ep]
        axes[1].plot(x, [e["train"]["loss"] for e in ep], "o-", label="train")
        if any(e.get("val") for e in ep):
            xv = [e["epoch"] for e in ep if e.get("val")]
            axes[1].plot(xv, [e["val"]["loss"] for e in ep if e.get("val")], "s-", label="val")
    axes[1].set_xlabel("epoch")
    axes[1].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[1].set_title("total loss per epoch")
    if ep:
        axes[1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    return fig


def train(model, train_data, val_data, opts: TrainOptions, state: Optional[TrainState] = None,
          ctx=None) -> TrainState:
    """Train ``model`` on ``train_data`` (a dataset of Samples) up to ``opts.epochs``.

    ``state`` resumes a previous run (epoch, global step, history, optimizer
    state). Writes checkpoints, ``losses.json`` and ``losses.png`` to
    ``opts.out_dir`` after every epoch. Returns the final state.

    ``ctx``: a :class:`~mrcnn_trt.distributed.DistContext` to train as one rank
    of a job (DistributedDataParallel, :mod:`mrcnn_trt.train.distributed`):
    ``opts.batch`` images per rank, a global batch of ``batch x world_size``;
    only rank 0 writes files. Every rank must call this with the same
    arguments (rank 0's state: the command broadcasts it).
    """
    from ..cli import progress
    from ..distributed import DistContext

    cfg = model.config
    state = state or TrainState()
    ctx = ctx or DistContext()
    main = ctx.is_main
    batch = int(opts.batch or cfg.IMAGES_PER_GPU)
    global_batch = batch * ctx.world_size
    lr = float(opts.lr if opts.lr is not None else cfg.LEARNING_RATE)
    if len(train_data) == 0:
        raise UserError("the training set is empty")
    steps = int(opts.steps_per_epoch or math.ceil(len(train_data) / global_batch))
    total = steps * int(opts.epochs)
    if main:
        os.makedirs(opts.out_dir, exist_ok=True)

    trainable = set_trainable(model, opts.layers)
    optimizer = make_optimizer(model, lr, cfg.LEARNING_MOMENTUM, cfg.WEIGHT_DECAY)
    restored = load_optimizer_state(model, optimizer, state.optimizer)
    step_fn = train_step
    if ctx.enabled:
        from .distributed import DistributedStep, check_in_sync, rank_seeds, seed_rank

        seed_rank(ctx, opts.seed)
        step_fn = DistributedStep(model, ctx)
        check_in_sync(ctx, model, optimizer, state.epoch, state.global_step)
        state.history.setdefault("runs", []).append({
            "from_epoch": state.epoch + 1, **ctx.describe(), "batch_per_rank": batch, "global_batch": global_batch,
            "lr": lr, "seed": opts.seed, "rank_seeds": rank_seeds(opts.seed, ctx.world_size)})
    n_params = sum(p.numel() for n, p in model.named_parameters() if p.requires_grad)
    _log(opts, f"training {len(trainable)} tensors ({n_params:,} parameters, layers={opts.layers}); "
               f"{len(train_data)} training images, batch {batch}, {steps} steps/epoch, "
               f"epochs {state.epoch + 1}..{opts.epochs}, lr {lr} ({opts.schedule})"
               + (f"; restored {restored} momentum buffers" if state.optimizer else ""))
    if ctx.enabled:
        _log(opts, f"{ctx.world_size} ranks ({ctx.backend}), identical weights and optimizer state on every rank; "
                   f"global batch {global_batch} = {batch} per rank x {ctx.world_size}. The learning rate {lr} is "
                   f"used as given (linear scaling rule: k times the global batch of a recipe -> k times its "
                   f"learning rate; not applied automatically)")
    if state.epoch >= opts.epochs:
        _log(opts, f"already trained to epoch {state.epoch} (>= --epochs {opts.epochs}); nothing to do")
    train_prep = PreparedData(train_data, cfg, opts.seed, augment=True)
    val_loader = None
    n_val = 0
    if val_data is not None and len(val_data) > 0 and opts.val_steps > 0:
        val_prep = PreparedData(val_data, cfg, opts.seed, augment=False)
        n_val = min(len(val_data), opts.val_steps * global_batch)
        val_loader = make_loader(val_prep, [val_item(i) for i in range(n_val)], global_batch, 0)

    saved_epoch = state.epoch
    try:
        for epoch in range(state.epoch + 1, opts.epochs + 1):
            t0 = time.time()
            items = epoch_items(len(train_data), steps, global_batch, opts.seed, epoch)
            if ctx.enabled:   # this rank's share: items r, r+W, ... (step s of all ranks = one global batch)
                from torch.utils.data.distributed import DistributedSampler

                items = [items[i] for i in DistributedSampler(items, num_replicas=ctx.world_size, rank=ctx.rank,
                                                              shuffle=False, drop_last=False)]
            loader = make_loader(train_prep, items, batch, opts.workers)
            sums: Dict[str, float] = {}
            window: Dict[str, float] = {}
            n_win = n_done = 0
            bar = progress(loader, total=steps, desc=f"epoch {epoch}/{opts.epochs}", unit="step",
                           mininterval=0.2 if sys.stderr.isatty() else 30.0)
            for samples in bar:
                step_lr = lr_at(state.global_step, total, lr, opts.schedule, opts.warmup_steps)
                for g in optimizer.param_groups:
                    g["lr"] = step_lr
                out = None
                if samples or ctx.enabled:   # every rank takes part in every step of a job
                    rngs = [np.random.default_rng([opts.seed, s.key, 1]) for s in samples]
                    out = step_fn(model, optimizer, samples, rngs, cfg.GRADIENT_CLIP_NORM)
                if out is not None:
                    if not all(math.isfinite(out[k]) for k in LOSS_NAMES):
                        raise UserError(f"training diverged at step {state.global_step} (losses {out}); "
                                        f"lower --lr")
                    for k, v in out.items():
                        sums[k] = sums.get(k, 0.0) + v
                        window[k] = window.get(k, 0.0) + v
                    n_done += 1
                    n_win += 1
                    bar.set_postfix({"loss": f"{sums['loss'] / n_done:.3f}",
                                     **{k.replace("mrcnn_", "m_"): f"{sums[k] / n_done:.3f}" for k in LOSS_NAMES},
                                     "lr": f"{step_lr:.2g}"}, refresh=False)
                state.global_step += 1
                if n_win and (state.global_step % opts.log_every == 0):
                    state.history["steps"].append({"step": state.global_step, "epoch": epoch, "lr": step_lr,
                                                   **{k: window[k] / n_win for k in window}})
                    window, n_win = {}, 0
            if n_win:   # the epoch's last partial window: short runs get a curve too
                state.history["steps"].append({"step": state.global_step, "epoch": epoch, "lr": step_lr,
                                               **{k: window[k] / n_win for k in window}})
            bar.close()
            train_mean = {k: v / max(n_done, 1) for k, v in sums.items()}
            if ctx.enabled and val_loader is not None:
                from .distributed import validation_losses_sharded

                val_mean = validation_losses_sharded(ctx, model, val_prep, n_val, batch, opts.seed)
            else:
                val_mean = validation_losses(model, val_loader, opts.seed) if val_loader is not None else {}
            check_divergence(model, epoch, val_mean, saved_epoch, opts.out_dir)
            elapsed = time.time() - t0
            state.epoch = epoch
            state.history["epochs"].append({"epoch": epoch, "steps": n_done, "global_step": state.global_step,
                                            "lr": lr_at(state.global_step - 1, total, lr, opts.schedule,
                                                        opts.warmup_steps),
                                            "time_s": round(elapsed, 1), "train": train_mean, "val": val_mean})
            state.optimizer = optimizer_state(model, optimizer)
            ckpt = os.path.join(opts.out_dir, f"epoch_{epoch:04d}.pth")
            if main:   # rank 0 alone writes (every rank holds the same weights)
                save_checkpoint(ckpt, model, cfg, epoch=epoch, global_step=state.global_step, layers=opts.layers,
                                history=state.history, optimizer=state.optimizer)
                save_checkpoint(os.path.join(opts.out_dir, "last.pth"), model, cfg, epoch=epoch,
                                global_step=state.global_step, layers=opts.layers, history=state.history,
                                optimizer=state.optimizer)
            saved_epoch = epoch
            if main:
                write_json_atomic(os.path.join(opts.out_dir, "losses.json"), state.history)
                plot_losses(state.history, os.path.join(opts.out_dir, "losses.png"))
            fmt = lambda d: " ".join(f"{k}={d[k]:.4f}" for k in ("loss",) + LOSS_NAMES if k in d)  # noqa: E731
            _log(opts, f"epoch {epoch}/{opts.epochs} ({elapsed:.0f}s, {n_done} steps): train {fmt(train_mean)}"
                       + (f" | val {fmt(val_mean)}" if val_mean else "") + f" -> {ckpt}")
    except KeyboardInterrupt:   # Ctrl-C or SIGTERM: say what is kept, then stop
        print("\n" + _stopped_line(opts, ctx, saved_epoch), file=sys.stderr)
        raise
    except UserError as e:      # e.g. another rank was lost (mrcnn_trt.distributed.PeerLost)
        if ctx.enabled and state.epoch < opts.epochs:
            e.args = (f"{e}; {_stopped_line(opts, ctx, saved_epoch)}",)
        raise

    if opts.export and main:
        save_checkpoint(opts.export, model, cfg, epoch=state.epoch, global_step=state.global_step,
                        layers=opts.layers)
        _log(opts, f"final weights (no optimizer state) -> {opts.export}")
    return state


def _stopped_line(opts: TrainOptions, ctx, saved_epoch: int) -> str:
    last = os.path.join(opts.out_dir, "last.pth")
    who = f"rank {ctx.rank}: " if ctx.enabled else ""
    return who + f"stopped during epoch {saved_epoch + 1}: " + (
        f"the last complete epoch is {saved_epoch} ({last}); resume with --weights last" if saved_epoch
        else "no epoch was completed, nothing was saved")


def state_from_checkpoint(extra: dict) -> TrainState:
    """The :class:`TrainState` stored in one of our training checkpoints."""
    hist = extra.get("history") or {"epochs": [], "steps": []}
    return TrainState(epoch=int(extra.get("epoch", 0)), global_step=int(extra.get("global_step", 0)),
                      history=json.loads(json.dumps(hist)), optimizer=extra.get("optimizer"))
