"""What a training run does around its steps, as hooks (detectron2's ``HookBase``).

:class:`~mrcnn_trt.train.loop.Trainer` runs the epochs and the optimizer steps;
everything else is a hook called at fixed points of the run, in the order of
the trainer's hook list::

    before_train
    for each epoch:  before_epoch, (before_step, step, after_step) x steps, after_epoch
    after_train

A hook reads and writes the run through ``self.trainer`` (``state``, ``opts``,
``epoch``, the step's ``outputs``...). The hooks of :func:`default_hooks`, in order:

* :class:`DistributedSetup` (jobs only): seeds the rank, wraps the step in DDP,
  checks that the ranks agree, records the run in the history;
* :class:`RunLog`: what the run trains, at its start (printed unless ``quiet``);
* :class:`LearningRate`: the schedule's rate before every step;
* :class:`FiniteLosses`: a non-finite training loss stops the run (:class:`UserError`);
* :class:`LossHistory`: the epoch's running means, and the history's step windows
  (every ``log_every`` steps, and the epoch's last partial window);
* :class:`Progress`: the progress bar (:func:`mrcnn_trt.cli.progress`);
* :class:`Validation`: the validation losses after each epoch;
* :class:`DivergenceCheck`: finite validation losses and weights below
  :data:`WEIGHT_LIMIT` before the epoch is saved;
* :class:`EpochRecord`: the epoch's entry in the history, the optimizer state;
* :class:`Checkpointer`: ``epoch_NNNN.pth`` and ``last.pth`` (rank 0), and the final
  ``--export`` weights;
* :class:`LossFiles`: ``losses.json`` and ``losses.png`` (rank 0);
* :class:`EpochLog`: one line per saved epoch.
"""
from __future__ import annotations

import math
import os
import sys
import time
from typing import Dict, List

import torch

from ..cli import progress
from ..errors import UserError
from ..fileio import write_json_atomic
from ..model.checkpoint import save_checkpoint
from .batches import PreparedData, make_loader, val_item
from .distributed import DistributedStep, check_in_sync, rank_seeds, seed_rank, validation_losses_sharded
from .losses import LOSS_NAMES
from .optim import lr_at
from .plots import plot_losses
from .step import validation_losses

#: largest magnitude a trained weight may reach before the run counts as diverged (a network of this
#: kind keeps its weights within a few units; a too-high --lr pushes them to 1e10 and beyond)
WEIGHT_LIMIT = 1e4


class HookBase:
    """A hook of a :class:`~mrcnn_trt.train.loop.Trainer`; every method does nothing by default.
    ``self.trainer`` is set when the trainer takes the hook."""

    trainer = None

    def before_train(self) -> None:
        pass

    def before_epoch(self) -> None:
        pass

    def before_step(self) -> None:
        pass

    def after_step(self) -> None:
        pass

    def after_epoch(self) -> None:
        pass

    def after_train(self) -> None:
        pass


class DistributedSetup(HookBase):
    """One rank of a job: its seeds, the DDP step (after :func:`~.optim.set_trainable`: DDP registers
    the parameters that need gradients when it starts), the ranks' agreement, the run's record."""

    def before_train(self) -> None:
        t, ctx, opts = self.trainer, self.trainer.ctx, self.trainer.opts
        seed_rank(ctx, opts.seed)
        t.step_fn = DistributedStep(t.model, ctx)
        check_in_sync(ctx, t.model, t.optimizer, t.state.epoch, t.state.global_step)
        t.state.history.setdefault("runs", []).append({
            "from_epoch": t.state.epoch + 1, **ctx.describe(), "batch_per_rank": t.batch,
            "global_batch": t.global_batch, "lr": t.lr, "seed": opts.seed,
            "rank_seeds": rank_seeds(opts.seed, ctx.world_size)})


class RunLog(HookBase):
    """What the run trains, at its start."""

    def before_train(self) -> None:
        t, opts, ctx = self.trainer, self.trainer.opts, self.trainer.ctx
        n_params = sum(p.numel() for n, p in t.model.named_parameters() if p.requires_grad)
        t.log(f"training {len(t.trainable)} tensors ({n_params:,} parameters, layers={opts.layers}); "
              f"{len(t.train_data)} training images, batch {t.batch}, {t.steps} steps/epoch, "
              f"epochs {t.state.epoch + 1}..{opts.epochs}, lr {t.lr} ({opts.schedule})"
              + (f"; restored {t.restored} momentum buffers" if t.state.optimizer else ""))
        if ctx.enabled:
            t.log(f"{ctx.world_size} ranks ({ctx.backend}), identical weights and optimizer state on every rank; "
                  f"global batch {t.global_batch} = {t.batch} per rank x {ctx.world_size}. The learning rate "
                  f"{t.lr} is used as given (linear scaling rule: k times the global batch of a recipe -> k "
                  f"times its learning rate; not applied automatically)")
        if t.state.epoch >= opts.epochs:
            t.log(f"already trained to epoch {t.state.epoch} (>= --epochs {opts.epochs}); nothing to do")


class LearningRate(HookBase):
    """The schedule's learning rate (:func:`~.optim.lr_at` of the global step) before each step."""

    def before_step(self) -> None:
        t = self.trainer
        t.step_lr = lr_at(t.state.global_step, t.total_steps, t.lr, t.opts.schedule, t.opts.warmup_steps)
        for g in t.optimizer.param_groups:
            g["lr"] = t.step_lr


class FiniteLosses(HookBase):
    """A step whose training losses are not all finite stops the run."""

    def after_step(self) -> None:
        out = self.trainer.outputs
        if out is not None and not all(math.isfinite(out[k]) for k in LOSS_NAMES):
            raise UserError(f"training diverged at step {self.trainer.state.global_step} (losses {out}); "
                            f"lower --lr")


class LossHistory(HookBase):
    """The epoch's loss sums (``trainer.loss_sums`` over ``trainer.steps_done`` steps, then the
    means ``trainer.train_losses``) and the history's running means over step windows."""

    def before_epoch(self) -> None:
        t = self.trainer
        t.loss_sums, t.steps_done = {}, 0
        self.window: Dict[str, float] = {}
        self.n_win = 0

    def after_step(self) -> None:
        t = self.trainer
        if t.outputs is not None:
            for k, v in t.outputs.items():
                t.loss_sums[k] = t.loss_sums.get(k, 0.0) + v
                self.window[k] = self.window.get(k, 0.0) + v
            t.steps_done += 1
            self.n_win += 1
        if self.n_win and ((t.state.global_step + 1) % t.opts.log_every == 0):
            self._flush(t.state.global_step + 1)

    def after_epoch(self) -> None:
        t = self.trainer
        if self.n_win:   # the epoch's last partial window: short runs get a curve too
            self._flush(t.state.global_step)
        t.train_losses = {k: v / max(t.steps_done, 1) for k, v in t.loss_sums.items()}

    def _flush(self, step: int) -> None:
        t = self.trainer
        t.state.history["steps"].append({"step": step, "epoch": t.epoch, "lr": t.step_lr,
                                         **{k: self.window[k] / self.n_win for k in self.window}})
        self.window, self.n_win = {}, 0


class Progress(HookBase):
    """A progress bar over the epoch's steps with the running mean losses and the learning rate."""

    def before_epoch(self) -> None:
        t = self.trainer
        self.bar = progress(None, total=t.steps, desc=f"epoch {t.epoch}/{t.opts.epochs}", unit="step",
                            mininterval=0.2 if sys.stderr.isatty() else 30.0)

    def after_step(self) -> None:
        t = self.trainer
        if t.outputs is not None:
            n, sums = t.steps_done, t.loss_sums
            self.bar.set_postfix({"loss": f"{sums['loss'] / n:.3f}",
                                  **{k.replace("mrcnn_", "m_"): f"{sums[k] / n:.3f}" for k in LOSS_NAMES},
                                  "lr": f"{t.step_lr:.2g}"}, refresh=False)
        self.bar.update(1)

    def after_epoch(self) -> None:
        self.bar.close()


class Validation(HookBase):
    """Mean losses over the first ``val_steps`` global batches of the validation set after each
    epoch (``trainer.val_losses``; {} without validation); in a job each rank takes its share."""

    def __init__(self, val_data):
        self.val_data = val_data
        self.loader = None

    def before_train(self) -> None:
        t, opts = self.trainer, self.trainer.opts
        if self.val_data is not None and len(self.val_data) > 0 and opts.val_steps > 0:
            self.prep = PreparedData(self.val_data, t.model.config, opts.seed, augment=False)
            self.n_val = min(len(self.val_data), opts.val_steps * t.global_batch)
            self.loader = make_loader(self.prep, [val_item(i) for i in range(self.n_val)], t.global_batch, 0)

    def after_epoch(self) -> None:
        t = self.trainer
        if self.loader is None:
            t.val_losses = {}
        elif t.ctx.enabled:
            t.val_losses = validation_losses_sharded(t.ctx, t.model, self.prep, self.n_val, t.batch, t.opts.seed)
        else:
            t.val_losses = validation_losses(t.model, self.loader, t.opts.seed)


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


class DivergenceCheck(HookBase):
    """:func:`check_divergence` after validation, before anything of the epoch is saved."""

    def after_epoch(self) -> None:
        t = self.trainer
        check_divergence(t.model, t.epoch, t.val_losses, t.saved_epoch, t.opts.out_dir)


class EpochRecord(HookBase):
    """The epoch's entry in the history (steps, global step, last learning rate, seconds, train
    and validation losses); the state moves to this epoch with the optimizer's state."""

    def before_epoch(self) -> None:
        self.t0 = time.time()

    def after_epoch(self) -> None:
        t, opts = self.trainer, self.trainer.opts
        t.epoch_seconds = time.time() - self.t0
        t.state.epoch = t.epoch
        t.state.history["epochs"].append({
            "epoch": t.epoch, "steps": t.steps_done, "global_step": t.state.global_step,
            "lr": lr_at(t.state.global_step - 1, t.total_steps, t.lr, opts.schedule, opts.warmup_steps),
            "time_s": round(t.epoch_seconds, 1), "train": t.train_losses, "val": t.val_losses})
        t.state.optimizer = t.optimizer_state()


class Checkpointer(HookBase):
    """``epoch_NNNN.pth`` and ``last.pth`` after every epoch (atomic; rank 0 alone writes: every
    rank holds the same weights), then ``--export``: the final weights without optimizer state."""

    def after_epoch(self) -> None:
        t, st = self.trainer, self.trainer.state
        if t.is_main:
            for path in (t.checkpoint_path(t.epoch), os.path.join(t.opts.out_dir, "last.pth")):
                save_checkpoint(path, t.model, t.model.config, epoch=t.epoch, global_step=st.global_step,
                                layers=t.opts.layers, history=st.history, optimizer=st.optimizer)
        t.saved_epoch = t.epoch

    def after_train(self) -> None:
        t = self.trainer
        if t.opts.export and t.is_main:
            save_checkpoint(t.opts.export, t.model, t.model.config, epoch=t.state.epoch,
                            global_step=t.state.global_step, layers=t.opts.layers)
            t.log(f"final weights (no optimizer state) -> {t.opts.export}")


class LossFiles(HookBase):
    """``losses.json`` (the history) and ``losses.png`` (:func:`~.plots.plot_losses`) after every
    epoch, rank 0."""

    def after_epoch(self) -> None:
        t = self.trainer
        if t.is_main:
            write_json_atomic(os.path.join(t.opts.out_dir, "losses.json"), t.state.history)
            plot_losses(t.state.history, os.path.join(t.opts.out_dir, "losses.png"))


class EpochLog(HookBase):
    """One line per epoch once it is saved: its time, steps, mean losses and checkpoint."""

    def after_epoch(self) -> None:
        t = self.trainer

        def fmt(d):
            return " ".join(f"{k}={d[k]:.4f}" for k in ("loss",) + LOSS_NAMES if k in d)

        t.log(f"epoch {t.epoch}/{t.opts.epochs} ({t.epoch_seconds:.0f}s, {t.steps_done} steps): train "
              f"{fmt(t.train_losses)}" + (f" | val {fmt(t.val_losses)}" if t.val_losses else "")
              + f" -> {t.checkpoint_path(t.epoch)}")


def default_hooks(trainer, val_data) -> List[HookBase]:
    """The hooks of a training run, in calling order (see the module docstring)."""
    hooks = [DistributedSetup()] if trainer.ctx.enabled else []
    hooks += [RunLog(), LearningRate(), FiniteLosses(), LossHistory(), Progress(), Validation(val_data),
              DivergenceCheck(), EpochRecord(), Checkpointer(), LossFiles(), EpochLog()]
    return hooks
