"""The training loop (docs/model.md §4.3-§4.6, with the original's bugs fixed).

    from mrcnn_trt.train.loop import TrainOptions, train
    state = train(model, train_data, val_data, TrainOptions(out_dir="runs/x", epochs=2))

:class:`Trainer` runs the epochs and the optimizer steps; everything around a
step is a hook (:mod:`.hooks`, detectron2's ``HookBase``): the learning rate,
the loss checks, the loss history, the progress bar, validation, checkpoints,
``losses.json`` / ``losses.png``, the log lines and a job's distributed setup.
The pieces, one module each:

* :mod:`.optim`: trainable layers (``--layers``), SGD with weight decay off
  BatchNorm, the learning-rate schedule (warm-up, then cosine / step /
  constant), the optimizer state kept in checkpoints;
* :mod:`.batches`: prepared images in seeded batches (every random draw of an
  image is seeded by ``--seed`` and the image's key, so it is the same
  whichever batch or process the image lands in; training images get the
  horizontal flip, validation images do not);
* :mod:`.step`: the training forward pass (real mini-batches, losses pooled
  over the batch), one optimizer step (gradient norm clipped to
  GRADIENT_CLIP_NORM), the validation losses;
* :mod:`.hooks`: the hooks; :mod:`.plots`: the loss curves.

Several processes (``ctx``, :mod:`mrcnn_trt.train.distributed`): DDP over a
global batch of ``batch x world_size``, losses pooled over the global batch,
rank 0 writes.

Checkpoints: ``OUT/epoch_0001.pth`` ... and ``OUT/last.pth`` after every
epoch (atomic), our format with the config, epoch, global step, loss history
and the optimizer state (momentum buffers keyed by parameter name, so a
resumed run with other trainable layers keeps the buffers of the parameters it
still trains). ``OUT/losses.json`` and ``OUT/losses.png`` (matplotlib Agg) are
rewritten after every epoch.
"""
from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

from ..distributed import DistContext
from ..errors import UserError
from .batches import PreparedData, Subset, epoch_items, make_loader, train_rng
from .distributed import rank_share
from .hooks import WEIGHT_LIMIT, HookBase, check_divergence, default_hooks
from .optim import LAYER_REGEX, load_optimizer_state, lr_at, make_optimizer, optimizer_state, set_trainable
from .plots import losses_figure, plot_losses
from .step import forward_losses, train_step

#: the names of the training API (the rest lives in the modules named above)
__all__ = ["LAYER_REGEX", "WEIGHT_LIMIT", "HookBase", "Subset", "TrainOptions", "TrainState", "Trainer",
           "check_divergence", "forward_losses", "losses_figure", "lr_at", "make_loader", "make_optimizer",
           "plot_losses", "set_trainable", "state_from_checkpoint", "train", "train_step"]


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


class Trainer:
    """One training run: the loop over epochs and optimizer steps; the rest is ``hooks``
    (:func:`~.hooks.default_hooks` unless given), called in order at each point of the run.

    Made before the run (so hooks may read them): the trainable parameters
    (``trainable``), the optimizer with the restored momentum buffers
    (``restored``), ``batch`` per rank, ``global_batch``, ``lr``, ``steps`` per
    epoch, ``total_steps``. During the run: ``epoch``; for each step ``samples``
    and ``outputs`` (the losses of :func:`~.step.train_step`, or None for a
    skipped step); ``state.global_step`` counts the steps before this one.
    """

    def __init__(self, model, train_data, val_data, opts: TrainOptions, state: Optional[TrainState] = None,
                 ctx=None, hooks: Optional[Sequence[HookBase]] = None):
        cfg = model.config
        self.model, self.train_data, self.opts = model, train_data, opts
        self.state = state or TrainState()
        self.ctx = ctx or DistContext()
        self.is_main = self.ctx.is_main
        self.batch = int(opts.batch or cfg.IMAGES_PER_GPU)
        self.global_batch = self.batch * self.ctx.world_size
        self.lr = float(opts.lr if opts.lr is not None else cfg.LEARNING_RATE)
        if len(train_data) == 0:
            raise UserError("the training set is empty")
        self.steps = int(opts.steps_per_epoch or math.ceil(len(train_data) / self.global_batch))
        self.total_steps = self.steps * int(opts.epochs)
        if self.is_main:
            os.makedirs(opts.out_dir, exist_ok=True)
        self.trainable = set_trainable(model, opts.layers)
        self.optimizer = make_optimizer(model, self.lr, cfg.LEARNING_MOMENTUM, cfg.WEIGHT_DECAY)
        self.restored = load_optimizer_state(model, self.optimizer, self.state.optimizer)
        self.step_fn = train_step
        self.train_prep = PreparedData(train_data, cfg, opts.seed, augment=True)
        self.saved_epoch = self.state.epoch
        self.epoch = self.state.epoch
        self.hooks: List[HookBase] = []
        self.register_hooks(hooks if hooks is not None else default_hooks(self, val_data))

    def register_hooks(self, hooks: Sequence[HookBase]) -> None:
        """Add ``hooks`` after the ones already there (each is called after them)."""
        for h in hooks:
            h.trainer = self
            self.hooks.append(h)

    def train(self) -> TrainState:
        """Train up to ``opts.epochs``; returns the final state."""
        self._call("before_train")
        try:
            for epoch in range(self.state.epoch + 1, self.opts.epochs + 1):
                self.run_epoch(epoch)
        except KeyboardInterrupt:   # Ctrl-C or SIGTERM: say what is kept, then stop
            print("\n" + self._stopped_line(), file=sys.stderr)
            raise
        except UserError as e:      # e.g. another rank was lost (mrcnn_trt.distributed.PeerLost)
            if self.ctx.enabled and self.state.epoch < self.opts.epochs:
                e.args = (f"{e}; {self._stopped_line()}",)
            raise
        self._call("after_train")
        return self.state

    def run_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self._call("before_epoch")
        for samples in make_loader(self.train_prep, self.epoch_items(epoch), self.batch, self.opts.workers):
            self.samples = samples
            self._call("before_step")
            self.outputs = self.run_step(samples)
            self._call("after_step")
            self.state.global_step += 1
        self._call("after_epoch")

    def epoch_items(self, epoch: int) -> List[tuple]:
        """This rank's ``(index, key)`` items of ``epoch``, in step order."""
        items = epoch_items(len(self.train_data), self.steps, self.global_batch, self.opts.seed, epoch)
        return rank_share(self.ctx, items) if self.ctx.enabled else items

    def run_step(self, samples) -> Optional[Dict[str, float]]:
        """One optimizer step (None: no usable image; in a job every rank takes part in every step)."""
        if not samples and not self.ctx.enabled:
            return None
        rngs = [train_rng(self.opts.seed, s) for s in samples]
        return self.step_fn(self.model, self.optimizer, samples, rngs, self.model.config.GRADIENT_CLIP_NORM)

    def optimizer_state(self) -> dict:
        return optimizer_state(self.model, self.optimizer)

    def checkpoint_path(self, epoch: int) -> str:
        return os.path.join(self.opts.out_dir, f"epoch_{epoch:04d}.pth")

    def log(self, msg: str) -> None:
        if not self.opts.quiet:
            print(msg, flush=True)

    def _call(self, event: str) -> None:
        for h in self.hooks:
            getattr(h, event)()

    def _stopped_line(self) -> str:
        last = os.path.join(self.opts.out_dir, "last.pth")
        who = f"rank {self.ctx.rank}: " if self.ctx.enabled else ""
        return who + f"stopped during epoch {self.saved_epoch + 1}: " + (
            f"the last complete epoch is {self.saved_epoch} ({last}); resume with --weights last"
            if self.saved_epoch else "no epoch was completed, nothing was saved")


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
    return Trainer(model, train_data, val_data, opts, state, ctx).train()


def state_from_checkpoint(extra: dict) -> TrainState:
    """The :class:`TrainState` stored in one of our training checkpoints."""
    hist = extra.get("history") or {"epochs": [], "steps": []}
    return TrainState(epoch=int(extra.get("epoch", 0)), global_step=int(extra.get("global_step", 0)),
                      history=json.loads(json.dumps(hist)), optimizer=extra.get("optimizer"))
