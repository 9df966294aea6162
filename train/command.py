"""What ``mrcnn-train`` does once its options are parsed (:mod:`mrcnn_trt.train.cli`):
open the datasets, build the model (fresh, ImageNet backbone, a checkpoint with
the same or other classes, or a resumed run) on rank 0 and share it with the
other ranks, then run :func:`mrcnn_trt.train.loop.train`.

The functions take the values the command's option groups parse into
(:class:`~mrcnn_trt.train.cli.TrainData`, :class:`~mrcnn_trt.train.cli.ModelInit`:
frozen dataclasses; any object with those attributes will do).
"""
from __future__ import annotations

import contextlib
import os
import sys
import time
from typing import Any, Dict, Optional

import numpy as np
import torch

from mrcnn_trt import distributed
from mrcnn_trt.config import Config, preset
from mrcnn_trt.data.cityscapes import CityscapesDataset
from mrcnn_trt.data.coco import CocoDataset
from mrcnn_trt.data.synthetic import SyntheticShapesDataset
from mrcnn_trt.errors import UserError
from mrcnn_trt.fileio import output_folder
from mrcnn_trt.model.checkpoint import read_checkpoint
from mrcnn_trt.model.loading import build_model, load_imagenet_weights, load_weights
from mrcnn_trt.options import resolve_config
from mrcnn_trt.threads import configure_torch
from mrcnn_trt.train.finetune import init_from_other_classes, needs_finetune_init, source_class_names
from mrcnn_trt.train.loop import LAYER_REGEX, Subset, TrainOptions, state_from_checkpoint, train

#: the config of each --dataset when neither --config nor the checkpoint gives one
DEFAULT_PRESET = {"coco": "coco", "cityscapes": "cityscapes", "shapes": "shapes"}


def _open(kind: str, root: str, split: str):
    if kind == "cityscapes":
        return CityscapesDataset(root, split)
    return CocoDataset.from_root(root, split)


def _split_exists(kind: str, root: str, split: str) -> bool:
    if kind == "cityscapes":
        return os.path.isdir(os.path.join(root, "leftImg8bit", split))
    return os.path.isfile(os.path.join(root, "annotations", f"instances_{split}.json"))


def open_datasets(data):
    """(train, val or None) datasets of Samples for a :class:`~mrcnn_trt.train.cli.TrainData`."""
    if data.kind == "shapes" and not data.root:
        n = data.synthetic_images
        train_ds = SyntheticShapesDataset(n, seed=data.seed, split="train")
        val = None if data.val == "none" else SyntheticShapesDataset(max(20, n // 10), seed=data.seed, split="val")
        return train_ds, val
    if not data.root:
        raise UserError(f"--dataset {data.kind} needs --data-root")
    if not os.path.isdir(data.root):
        raise UserError(f"--data-root not found: {data.root}")
    train_ds = _open(data.kind, data.root, data.train_split)
    if data.val_fraction is not None:
        return held_out(train_ds, data.val_fraction, data.seed)
    if data.val == "none":
        return train_ds, None
    if not _split_exists(data.kind, data.root, data.val):
        if not data.val_default:  # named explicitly
            raise UserError(f"validation split {data.val!r} not found under {data.root}")
        print(f"note: no '{data.val}' split under {data.root}; training without validation "
              f"(use --val-split 0.1 to hold out images)")
        return train_ds, None
    return train_ds, _open(data.kind, data.root, data.val)


def held_out(train_ds, fraction: float, seed: int):
    """(training, validation) subsets of ``train_ds``: a ``fraction`` of its images, drawn with ``seed``."""
    n = len(train_ds)
    perm = np.random.default_rng([seed, 12345]).permutation(n)
    n_val = max(1, int(round(n * fraction)))
    if n_val >= n:
        raise UserError(f"--val-split {fraction} leaves no training image ({n} images)")
    return Subset(train_ds, sorted(perm[n_val:])), Subset(train_ds, sorted(perm[:n_val]))


def _build(cfg: Config, seed: int):
    """A freshly initialised model of ``cfg`` (torch seeded with ``seed`` first)."""
    torch.manual_seed(seed)
    return build_model(cfg)


def build_and_load(init, dataset_class_names):
    """Model, config and resume state (None unless resuming) for a
    :class:`~mrcnn_trt.train.cli.ModelInit` (``--weights``, ``--config``, ``--seed``)."""
    explicit = resolve_config(init.config, inline_json=True)
    if init.weights == "last":
        return _resume(init, explicit)
    if init.weights in ("none", "imagenet"):
        cfg = explicit or preset(DEFAULT_PRESET[init.dataset])
        model = _build(cfg, init.seed)
        if init.weights == "imagenet":
            _load_imagenet(model, init.imagenet_weights)
        return model, cfg, None
    return _from_checkpoint(init, dataset_class_names, explicit)


def _resume(init, explicit: Optional[Config]):
    path = os.path.join(init.out, "last.pth")
    if not os.path.isfile(path):
        raise UserError(f"--weights last: no checkpoint to resume at {path}")
    _, extra = read_checkpoint(path)
    if "epoch" not in extra or "config" not in extra:
        raise UserError(f"{path} is not a training checkpoint of mrcnn-train (no epoch/config)")
    cfg = explicit or Config.from_dict(extra["config"])
    model = _build(cfg, init.seed)
    load_weights(model, path)
    state = state_from_checkpoint(extra)
    print(f"resuming {path}: epoch {state.epoch}, step {state.global_step}")
    return model, cfg, state


def _load_imagenet(model, path: str) -> None:
    rep = load_imagenet_weights(model, path)
    print(f"ImageNet weights {path}: loaded {rep['loaded']} tensors; "
          f"{len(rep['skipped_shape'])} skipped (shape), {len(rep['unknown'])} unknown names, "
          f"{rep['model_keys_not_loaded']} model tensors keep their initialisation")
    if rep["skipped_shape"]:
        print("  skipped (shape): " + ", ".join(rep["skipped_shape"][:8]))
    if rep["unknown"]:
        print("  unknown: " + ", ".join(rep["unknown"][:8]))


def _from_checkpoint(init, dataset_class_names, explicit: Optional[Config]):
    w = init.weights
    sd, extra = read_checkpoint(w)
    cfg = explicit
    if cfg is None:
        stored = extra.get("config")
        if stored and tuple(stored.get("CLASS_NAMES", ())) == tuple(dataset_class_names or ()):
            cfg = Config.from_dict(stored)
        else:
            cfg = preset(DEFAULT_PRESET[init.dataset])
    model = _build(cfg, init.seed)
    if needs_finetune_init(model, sd):
        rep = init_from_other_classes(model, sd, source_class_names(sd, extra), cfg.CLASS_NAMES)
        print(f"fine-tuning init from {w}: class heads reshaped to {cfg.NUM_CLASSES} classes; copied "
              f"{', '.join(rep['copied_classes']) or 'no class'} (+BG)"
              + (f"; fresh: {', '.join(rep['fresh_classes'])}" if rep["fresh_classes"] else ""))
    else:
        load_weights(model, w)
        print(f"initialised from {w}")
    return model, cfg, None


def load_on_rank0(init, ctx: distributed.DistContext, dataset_class_names):
    """:func:`build_and_load` on rank 0; the other ranks build the same model from
    rank 0's config and receive its resume state (their weights come from rank 0
    through DistributedDataParallel), so only rank 0 needs the weight files."""
    if not ctx.enabled:
        return build_and_load(init, dataset_class_names)
    if ctx.is_main:
        try:
            model, cfg, state = build_and_load(init, dataset_class_names)
        except UserError as e:
            distributed.broadcast_object(ctx, ("error", str(e)), "sending the model to the other ranks")
            raise
        distributed.broadcast_object(ctx, ("ok", (cfg.to_dict(), state)), "sending the model to the other ranks")
        return model, cfg, state
    status, payload = distributed.broadcast_object(ctx, None, "receiving the model from rank 0")
    if status == "error":
        raise UserError(f"rank 0 stopped: {payload}")
    cfg_dict, state = payload
    cfg = Config.from_dict(cfg_dict)
    return _build(cfg, init.seed), cfg, state


def check_classes(names, cfg: Config) -> None:
    """The dataset's classes (with BG) match the config's: their number must, their names should."""
    if names is None:
        return
    if len(names) != cfg.NUM_CLASSES:
        raise UserError(f"the dataset has {len(names)} classes (with BG) but the config {cfg.NAME!r} has "
                        f"{cfg.NUM_CLASSES}; pass a matching --config")
    if tuple(names) != tuple(cfg.CLASS_NAMES):
        print(f"note: dataset class names {list(names)[1:6]}... differ from the config's "
              f"{list(cfg.CLASS_NAMES)[1:6]}...; internal ids are used as they are")


def run_training(data, init, loop: Dict[str, Any], device: str, threads: Optional[int],
                 ctx: distributed.DistContext) -> int:
    """Train as one rank of ``ctx`` (the whole job when not launched): ``loop`` holds the
    fields of :class:`~mrcnn_trt.train.loop.TrainOptions` (``out_dir``, ``epochs``, ...);
    ``threads`` None: one per available core, shared by the ranks on this machine."""
    rank_device = distributed.rank_device(ctx, device)
    if init.weights == "none" and loop["layers"] != "all" and ctx.is_main:
        print(f"warning: --weights none starts from random weights, and --layers {loop['layers']} keeps the rest "
              f"of the network (the backbone included) frozen at them; use --layers all, or start from "
              f"--weights imagenet / a checkpoint", file=sys.stderr)
    configure_torch(threads or distributed.threads_per_rank(ctx))
    if loop["layers"] not in LAYER_REGEX:
        print(f"note: --layers {loop['layers']!r} is used as a regex")
    train_ds, val_ds = open_datasets(data)
    names = getattr(train_ds, "class_names", None)
    model, cfg, state = load_on_rank0(init, ctx, names)
    check_classes(names, cfg)
    if rank_device != "cpu":
        model = model.to(rank_device)
    quiet = loop["quiet"]
    opts = TrainOptions(**dict(loop, quiet=quiet or not ctx.is_main))
    t0 = time.time()
    with (output_folder(opts.out_dir) if ctx.is_main else contextlib.nullcontext()):
        st = train(model, train_ds, val_ds, opts, state, ctx=ctx)
    if not quiet:
        print(f"done: epoch {st.epoch}, {st.global_step} steps, {time.time() - t0:.0f} s; "
              f"checkpoints in {opts.out_dir}")
    return 0
