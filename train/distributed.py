"""Training on several processes: DistributedDataParallel, one process per device.

The job (``torchrun ... -m mrcnn_trt.train``; see :mod:`mrcnn_trt.distributed`)
trains exactly what one process trains with the same *global* batch:

* the global batch of a step is ``--batch`` (images per rank) x ``world_size``;
  the epoch's reshuffled item list (:func:`~mrcnn_trt.train.batches.epoch_items`,
  seeded by the seed and the epoch) is split by ``DistributedSampler``
  (strided, so step ``s`` of every rank together covers items
  ``s*G .. s*G+G-1``, the batch one process with ``--batch G`` takes);
* every image's random draws (flip, RPN anchor subsampling, ROI sampling) are
  keyed by the seed and the image's place in the run, not by its process;
* losses: each loss of Mask R-CNN is a mean over rows pooled over the batch
  (anchors, ROIs, positives), and images contribute different numbers of rows.
  DDP averages gradients over ranks, which would weight every rank's *mean*
  equally. So every step all-reduces the row counts first, and rank ``r``
  back-propagates ``sum_k mean_rk * count_rk * W / count_k``; DDP's average
  then gives the gradient of the pooled mean of the global batch, exactly the
  one-process loss. The reported losses are the pooled means too;
* gradient clipping, the LR schedule and SGD run on identical gradients on
  every rank, so the weights stay identical (checked once at the start:
  :func:`check_in_sync`);
* a step where no image of the global batch is usable is skipped on every rank
  (one process skips it too).

Parameters and buffers start equal on every rank: DDP broadcasts rank 0's at
construction (so weights read by rank 0 alone - a resumed ``last.pth``, a
checkpoint - reach every rank), and the resume state (epoch, step, momentum
buffers, history) is broadcast by the command (:mod:`mrcnn_trt.train.cli`).
"""
from __future__ import annotations

import hashlib
import inspect
from typing import Dict, List, Optional

import numpy as np
import torch
from torch import nn

from ..distributed import DistContext, broadcast_object, collective
from ..errors import UserError
from .batches import val_item, val_rng
from .losses import LOSS_NAMES
from .step import forward_losses


class _LossModule(nn.Module):
    """The model's training forward as a module, for DDP: ``(samples, rngs) -> (losses, counts)``."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, samples, rngs):
        if samples:
            return forward_losses(self.model, samples, rngs, return_counts=True)
        # no usable image on this rank: zero losses that touch every trainable parameter, so this
        # rank still takes part in DDP's gradient all-reduce (with zero gradient and zero weight)
        zero = sum(p.sum() for p in self.model.parameters() if p.requires_grad) * 0.0
        return {k: zero for k in LOSS_NAMES}, {k: 0 for k in LOSS_NAMES}


class DistributedStep:
    """Drop-in for :func:`~mrcnn_trt.train.step.train_step` in a job: same call,
    same returned floats (global pooled losses), or None when the global batch
    had no usable image (the step is skipped on every rank).

    Build it after :func:`~mrcnn_trt.train.optim.set_trainable` (DDP registers
    the parameters that need gradients when it is constructed)."""

    def __init__(self, model, ctx: DistContext):
        import torch.distributed as dist
        from torch.nn.parallel import DistributedDataParallel as DDP

        self.ctx = ctx
        self.model = model
        # parameters and buffers are broadcast from rank 0 when DDP starts; the buffers (frozen
        # BatchNorm statistics, anchors) never change in training, so not at every step after that
        sync = ({"forward_sync_buffers": False} if "forward_sync_buffers" in inspect.signature(DDP).parameters
                else None)
        with collective(ctx, "starting DistributedDataParallel"):
            if sync is None:   # older PyTorch: broadcast_buffers=False skips the first broadcast too
                for b in model.buffers():
                    dist.broadcast(b.data, src=0)
                sync = {"broadcast_buffers": False}
            # device_ids None: the module lives on one device (the rank's GPU, or the CPU) and moves
            # its own inputs there (forward_losses), so DDP need not walk the samples
            self.ddp = DDP(_LossModule(model), device_ids=None, **sync)

    def __call__(self, model, optimizer, samples, rngs, clip_norm: float) -> Optional[Dict[str, float]]:
        ctx = self.ctx
        model.train()
        with collective(ctx, "training step"):
            losses, counts = self.ddp(samples, rngs)
            values, g_count, g_images = pooled_losses(ctx, losses, counts, len(samples), "training step")
            w = ctx.world_size
            loss = sum(losses[k] * (counts[k] * w / g_count[k] if g_count[k] > 0 else 0.0) for k in LOSS_NAMES)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()           # DDP all-reduces (averages) the gradients here
        if g_images == 0:
            optimizer.zero_grad(set_to_none=True)
            return None
        params = [p for grp in optimizer.param_groups for p in grp["params"]]
        gnorm = torch.nn.utils.clip_grad_norm_(params, clip_norm)
        optimizer.step()
        values["grad_norm"] = float(gnorm)
        return values


def pooled_losses(ctx: DistContext, losses: Dict[str, torch.Tensor], counts: Dict[str, int], n_images: int,
                  what: str):
    """The losses of the global batch: ``(values, global counts, global images)``.

    ``values[k]`` = sum over ranks of ``mean_rk * count_rk`` / sum of ``count_rk``
    (0 when no rank has a row), ``values["loss"]`` their sum: what one process
    computes on the whole batch. One all-reduce of 11 numbers."""
    local = [float(counts[k]) for k in LOSS_NAMES]
    local += [float(losses[k].detach()) * counts[k] if counts[k] else 0.0 for k in LOSS_NAMES]
    local.append(float(n_images))
    g = all_reduce_tensor(ctx, torch.tensor(local, dtype=torch.float64), what).tolist()
    g_count = dict(zip(LOSS_NAMES, g[:5]))
    values = {k: (g[5 + i] / g_count[k] if g_count[k] > 0 else 0.0) for i, k in enumerate(LOSS_NAMES)}
    values["loss"] = sum(values[k] for k in LOSS_NAMES)
    return values, g_count, g[10]


@torch.no_grad()
def validation_losses_sharded(ctx: DistContext, model, prep, n_val: int, batch: int, seed: int) -> Dict[str, float]:
    """Mean validation losses of the first ``n_val`` images of ``prep`` (a
    ``PreparedData``) in global batches of ``batch x world_size``, each rank
    taking its strided share of every batch; equal to
    :func:`~mrcnn_trt.train.step.validation_losses` of one process with that
    batch (each batch's pooled losses, weighted by its images)."""
    w = ctx.world_size
    g = batch * w
    model.train()
    sums: Dict[str, float] = {}
    n = 0.0
    for j in range(-(-n_val // g)):
        positions = [p for p in (j * g + ctx.rank + w * i for i in range(batch)) if p < n_val]
        samples = [s for s in (prep[val_item(p)] for p in positions) if s is not None]
        if samples:
            losses, counts = forward_losses(model, samples, [val_rng(seed, s) for s in samples], return_counts=True)
        else:
            losses, counts = {k: torch.zeros(()) for k in LOSS_NAMES}, {k: 0 for k in LOSS_NAMES}
        values, _, n_j = pooled_losses(ctx, losses, counts, len(samples), "validation")
        if n_j:
            for k, v in values.items():
                sums[k] = sums.get(k, 0.0) + v * n_j
            n += n_j
    return {k: v / n for k, v in sums.items()} if n else {}


def all_reduce_tensor(ctx: DistContext, t: torch.Tensor, what: str) -> torch.Tensor:
    """Sum ``t`` over ranks (on the backend's device) and return it on the CPU."""
    import torch.distributed as dist

    if not ctx.enabled:
        return t
    dev = torch.device("cuda", torch.cuda.current_device()) if ctx.backend == "nccl" else torch.device("cpu")
    t = t.to(dev)
    with collective(ctx, what):
        dist.all_reduce(t)
    return t.cpu()


def fingerprint(model, optimizer, epoch: int, global_step: int) -> str:
    """SHA-256 of every parameter, buffer and momentum buffer (their bytes, in name order),
    the epoch and the step: equal on two ranks exactly when their states are bit-identical."""
    h = hashlib.sha256(f"{int(epoch)}:{int(global_step)}".encode())

    def add(name, t):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")

    for name, p in model.named_parameters():
        add(name, p)
        st = optimizer.state.get(p)
        if st and st.get("momentum_buffer") is not None:
            add(name + "#momentum", st["momentum_buffer"])
    for name, b in model.named_buffers():
        add(name, b)
    return h.hexdigest()


def check_in_sync(ctx: DistContext, model, optimizer, epoch: int, global_step: int) -> None:
    """Fail on every rank unless all ranks hold bit-identical weights, buffers,
    momentum buffers, epoch and step (their :func:`fingerprint` against rank 0's)."""
    if not ctx.enabled:
        return
    mine = fingerprint(model, optimizer, epoch, global_step)
    ref = broadcast_object(ctx, mine, "checking that the ranks agree")
    bad = all_reduce_tensor(ctx, torch.tensor([float(mine != ref)], dtype=torch.float64),
                            "checking that the ranks agree")
    if float(bad[0]):
        raise UserError(f"rank {ctx.rank}: the ranks do not hold the same weights / optimizer state / step "
                        f"({int(bad[0])} of {ctx.world_size} differ from rank 0)")


def rank_seeds(seed: int, world_size: int) -> List[int]:
    """The seed of torch's generator on each rank (seed + rank)."""
    return [int(seed) + r for r in range(int(world_size))]


def seed_rank(ctx: DistContext, seed: int) -> int:
    """Seed torch's and NumPy's global generators of this rank; returns the seed."""
    s = rank_seeds(seed, ctx.world_size)[ctx.rank]
    torch.manual_seed(s)
    np.random.seed(s % (2 ** 32))
    return s


def rank_share(ctx: DistContext, items: List[tuple]) -> List[tuple]:
    """This rank's share of an epoch's items: items r, r+W, ... (step s of all ranks = one global batch)."""
    from torch.utils.data.distributed import DistributedSampler

    return [items[i] for i in DistributedSampler(items, num_replicas=ctx.world_size, rank=ctx.rank,
                                                  shuffle=False, drop_last=False)]
