"""``mrcnn-train``: train or fine-tune Mask R-CNN on COCO, Cityscapes or synthetic shapes.

Examples::

    # the shipped shapes model (see train/SHAPES_MODEL.md for the exact recipe)
    mrcnn-make-dataset --kind shapes --format coco --out runs/shapes-data --num-images 2000 --split train --seed 1
    mrcnn-make-dataset --kind shapes --format coco --out runs/shapes-data --num-images 200 --split val --seed 1
    mrcnn-train --dataset shapes --data-root runs/shapes-data --weights none --layers all --epochs 10 \
        --steps-per-epoch 500 --threads 1 --out runs/shapes

    # resume that run (same OUT); --epochs counts the epochs already done
    mrcnn-train --dataset shapes --data-root runs/shapes-data --weights last --layers all --epochs 10 \
        --steps-per-epoch 500 --threads 1 --out runs/shapes

    # fine-tune the COCO weights on Cityscapes (9 classes; class heads initialised from the COCO rows)
    mrcnn-train --dataset cityscapes --data-root cityscapes --weights mask_rcnn_coco.pth --layers heads \\
        --epochs 10 --out runs/cs

Several processes (DistributedDataParallel; see :mod:`mrcnn_trt.train.distributed`)::

    # 8 GPUs, global batch 16 (torchrun --standalone --nproc_per_node 8 -m mrcnn_trt.train ... is the same)
    mrcnn-train --nproc 8 --device cuda --batch 2 --dataset cityscapes --data-root cityscapes \\
        --weights mask_rcnn_coco.pth --layers heads --epochs 10 --out runs/cs

``--batch`` is per process; rank 0 reads the weights, writes every file and
prints; the others follow.

Weights (``--weights``): ``none`` (fresh initialisation), ``imagenet`` (ResNet
backbone weights from ``--imagenet-weights``, non-strict, with a report),
``last`` (resume ``OUT/last.pth``: epoch, step, loss history and optimizer
state), or a checkpoint file (original or ours). A checkpoint with other
classes (e.g. COCO's 81 for a 9-class Cityscapes config) initialises every
tensor but the class heads, whose rows are copied for the classes present in
both (see :mod:`mrcnn_trt.train.finetune`).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import time
from typing import Optional

from mrcnn_trt import options
from mrcnn_trt.cli import run_main
from mrcnn_trt.errors import UserError

DEFAULT_PRESET = {"coco": "coco", "cityscapes": "cityscapes", "shapes": "shapes"}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mrcnn-train",
        description="Train Mask R-CNN (SGD, frozen BatchNorm, per-epoch checkpoints, loss curves).",
        epilog="Ctrl-C or SIGTERM stops after saying which epoch is the last complete one (OUT/last.pth); "
               "resume with --weights last.")
    p.add_argument("--dataset", required=True, choices=["coco", "cityscapes", "shapes"],
                   help="dataset kind (shapes = synthetic shapes in COCO layout, or generated in memory "
                        "when --data-root is omitted)")
    p.add_argument("--data-root", metavar="DIR", help="dataset folder (COCO: annotations/instances_<split>.json + "
                                                      "images; Cityscapes: leftImg8bit/ + gtFine/)")
    p.add_argument("--weights", required=True,
                   help="none | imagenet | last (resume OUT/last.pth) | path to a .pth checkpoint")
    p.add_argument("--imagenet-weights", metavar="PTH",
                   help="ResNet weights file (fpn.C* names) for --weights imagenet (required there)")
    p.add_argument("--config", help="preset name (coco, cityscapes, shapes, tiny), a .json file, or inline JSON "
                                    "like '{\"preset\": \"shapes\", \"LEARNING_RATE\": 0.02}' (default: the "
                                    "dataset's preset, or the config stored in the checkpoint)")
    p.add_argument("--layers", default="heads",
                   help="trainable layers: heads (default) | 3+ | 4+ | 5+ | all, or a regex (re.fullmatch on "
                        "parameter names)")
    p.add_argument("--epochs", type=options.positive_int, required=True,
                   help="train until this epoch (total, counting resumed ones)")
    p.add_argument("--lr", type=options.positive_float, help="base learning rate (default: the config's LEARNING_RATE)")
    p.add_argument("--schedule", default="cosine", choices=["cosine", "step", "constant"],
                   help="LR schedule over all steps up to --epochs, after a linear warm-up (default cosine)")
    p.add_argument("--warmup-steps", type=options.nonnegative_int, default=100,
                   help="linear warm-up steps, at most 10%% of all steps (default 100)")
    options.add_batch(p, default=None, help="images per optimizer step (default: the config's IMAGES_PER_GPU)")
    p.add_argument("--steps-per-epoch", type=options.positive_int,
                   help="optimizer steps per epoch (default: one pass over the data)")
    p.add_argument("--train-split", default="train", help="training split name (default train; COCO: "
                                                          "instances_<split>.json)")
    p.add_argument("--val-split", default="val",
                   help="validation split name, a fraction like 0.1 of the training images held out, or 'none' "
                        "(default val)")
    p.add_argument("--val-steps", type=options.nonnegative_int, default=50,
                   help="validation batches per epoch (default 50; 0 = no validation)")
    p.add_argument("--synthetic-images", type=options.positive_int, default=1000,
                   help="--dataset shapes without --data-root: number of generated training images "
                        "(validation: a tenth, at least 20; default 1000)")
    options.add_output(p, required=True, help="output folder: epoch_NNNN.pth, last.pth, losses.json, losses.png")
    p.add_argument("--export", metavar="PTH",
                   help="also write the final weights (config, no optimizer state) to this file")
    p.add_argument("--seed", type=options.nonnegative_int, default=0,
                   help="random seed: initialisation, sampling, augmentation (default 0)")
    p.add_argument("--workers", type=options.worker_count, default=1,
                   help="data loader processes (0 = in the main process; default 1)")
    options.add_threads(p, default=None)
    options.add_device(p)
    options.add_distributed(p, "training")
    p.add_argument("--quiet", action="store_true", help="no per-epoch messages")
    return p


def _resolve_config(arg):
    from mrcnn_trt.config import Config, preset

    if arg is None:
        return None
    text = arg.strip()
    if text.startswith("{"):
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise UserError(f"--config: invalid JSON: {e}") from None
        return Config.from_overrides(d)
    return preset(text)


def _open(kind: str, root: str, split: str):
    from mrcnn_trt.data.coco import CocoDataset

    if kind == "cityscapes":
        from mrcnn_trt.data.cityscapes import CityscapesDataset

        return CityscapesDataset(root, split)
    return CocoDataset.from_root(root, split)


def _split_exists(kind: str, root: str, split: str) -> bool:
    if kind == "cityscapes":
        return os.path.isdir(os.path.join(root, "leftImg8bit", split))
    return os.path.isfile(os.path.join(root, "annotations", f"instances_{split}.json"))


def open_datasets(args):
    """(train, val or None) datasets of Samples for the command-line arguments."""
    from mrcnn_trt.train.loop import Subset

    val_arg = (args.val_split or "none").strip()
    fraction = None
    try:
        fraction = float(val_arg)
    except ValueError:
        pass
    if fraction is not None and not 0.0 < fraction < 1.0:
        raise UserError(f"--val-split {val_arg}: a fraction must be in (0, 1)")

    if args.dataset == "shapes" and not args.data_root:
        from mrcnn_trt.data.synthetic import SyntheticShapesDataset

        n = int(args.synthetic_images)
        if n < 1:
            raise UserError("--synthetic-images must be >= 1")
        train = SyntheticShapesDataset(n, seed=args.seed, split="train")
        val = None if val_arg == "none" else SyntheticShapesDataset(max(20, n // 10), seed=args.seed, split="val")
        return train, val
    if not args.data_root:
        raise UserError(f"--dataset {args.dataset} needs --data-root")
    if not os.path.isdir(args.data_root):
        raise UserError(f"--data-root not found: {args.data_root}")
    train = _open(args.dataset, args.data_root, args.train_split)
    if fraction is not None:
        import numpy as np

        n = len(train)
        perm = np.random.default_rng([args.seed, 12345]).permutation(n)
        n_val = max(1, int(round(n * fraction)))
        if n_val >= n:
            raise UserError(f"--val-split {fraction} leaves no training image ({n} images)")
        return Subset(train, sorted(perm[n_val:])), Subset(train, sorted(perm[:n_val]))
    if val_arg == "none":
        return train, None
    if not _split_exists(args.dataset, args.data_root, val_arg):
        if args.val_split != "val":  # named explicitly
            raise UserError(f"validation split {val_arg!r} not found under {args.data_root}")
        print(f"note: no '{val_arg}' split under {args.data_root}; training without validation "
              f"(use --val-split 0.1 to hold out images)")
        return train, None
    return train, _open(args.dataset, args.data_root, val_arg)


def build_and_load(args, dataset_class_names):
    """Model, config and resume state for ``--weights``/``--config``."""
    import torch

    from mrcnn_trt.config import Config, preset
    from mrcnn_trt.model.checkpoint import (build_model, load_imagenet_weights, load_weights,
                                            read_checkpoint)
    from mrcnn_trt.train.finetune import init_from_other_classes, needs_finetune_init, source_class_names
    from mrcnn_trt.train.loop import state_from_checkpoint

    explicit = _resolve_config(args.config)
    w = args.weights
    state = None
    if w == "last":
        path = os.path.join(args.out, "last.pth")
        if not os.path.isfile(path):
            raise UserError(f"--weights last: no checkpoint to resume at {path}")
        sd, extra = read_checkpoint(path)
        if "epoch" not in extra or "config" not in extra:
            raise UserError(f"{path} is not a training checkpoint of mrcnn-train (no epoch/config)")
        cfg = explicit or Config.from_dict(extra["config"])
        torch.manual_seed(args.seed)
        model = build_model(cfg)
        load_weights(model, path)
        state = state_from_checkpoint(extra)
        print(f"resuming {path}: epoch {state.epoch}, step {state.global_step}")
        return model, cfg, state

    if w in ("none", "imagenet"):
        cfg = explicit or preset(DEFAULT_PRESET[args.dataset])
        torch.manual_seed(args.seed)
        model = build_model(cfg)
        if w == "imagenet":
            rep = load_imagenet_weights(model, args.imagenet_weights)
            print(f"ImageNet weights {args.imagenet_weights}: loaded {rep['loaded']} tensors; "
                  f"{len(rep['skipped_shape'])} skipped (shape), {len(rep['unknown'])} unknown names, "
                  f"{rep['model_keys_not_loaded']} model tensors keep their initialisation")
            if rep["skipped_shape"]:
                print("  skipped (shape): " + ", ".join(rep["skipped_shape"][:8]))
            if rep["unknown"]:
                print("  unknown: " + ", ".join(rep["unknown"][:8]))
        return model, cfg, state

    sd, extra = read_checkpoint(w)
    cfg = explicit
    if cfg is None:
        stored = extra.get("config")
        if stored and tuple(stored.get("CLASS_NAMES", ())) == tuple(dataset_class_names or ()):
            cfg = Config.from_dict(stored)
        else:
            cfg = preset(DEFAULT_PRESET[args.dataset])
    torch.manual_seed(args.seed)
    model = build_model(cfg)
    if needs_finetune_init(model, sd):
        rep = init_from_other_classes(model, sd, source_class_names(sd, extra), cfg.CLASS_NAMES)
        print(f"fine-tuning init from {w}: class heads reshaped to {cfg.NUM_CLASSES} classes; copied "
              f"{', '.join(rep['copied_classes']) or 'no class'} (+BG)"
              + (f"; fresh: {', '.join(rep['fresh_classes'])}" if rep["fresh_classes"] else ""))
    else:
        load_weights(model, w)
        print(f"initialised from {w}")
    return model, cfg, state


def load_on_rank0(args, ctx, dataset_class_names):
    """:func:`build_and_load` on rank 0; the other ranks build the same model from
    rank 0's config and receive its resume state (their weights come from rank 0
    through DistributedDataParallel), so only rank 0 needs the weight files."""
    import torch

    from mrcnn_trt.config import Config
    from mrcnn_trt.distributed import broadcast_object
    from mrcnn_trt.model.checkpoint import build_model

    if not ctx.enabled:
        return build_and_load(args, dataset_class_names)
    if ctx.is_main:
        try:
            model, cfg, state = build_and_load(args, dataset_class_names)
        except UserError as e:
            broadcast_object(ctx, ("error", str(e)), "sending the model to the other ranks")
            raise
        broadcast_object(ctx, ("ok", (cfg.to_dict(), state)), "sending the model to the other ranks")
        return model, cfg, state
    status, payload = broadcast_object(ctx, None, "receiving the model from rank 0")
    if status == "error":
        raise UserError(f"rank 0 stopped: {payload}")
    cfg_dict, state = payload
    cfg = Config.from_dict(cfg_dict)
    torch.manual_seed(args.seed)
    return build_model(cfg), cfg, state


#: files mrcnn-train writes into OUT (``--export`` must not be one of them)
TRAINING_FILES = re.compile(r"^(last\.pth|epoch_\d+\.pth|losses\.json|losses\.png)$")


def check_export(export: Optional[str], out: str, weights: Optional[str]) -> None:
    """``--export`` before any training: a file (not a folder) in a folder that
    can be written, neither one of the files training keeps in OUT (``last.pth``
    holds the optimizer state and loss history needed to resume) nor the input
    checkpoint."""
    from mrcnn_trt.fileio import refuse_overwriting_inputs

    if not export:
        return
    if os.path.isdir(export) or export.endswith(os.sep):
        raise UserError(f"--export {export} is a folder; give a file, e.g. {os.path.join(export, 'final.pth')}")
    folder = os.path.dirname(os.path.abspath(export))
    if os.path.realpath(folder) == os.path.realpath(out) and TRAINING_FILES.match(os.path.basename(export)):
        raise UserError(f"--export {export} would replace a file training keeps in {out} (last.pth, epoch_NNNN.pth, "
                        f"losses.*); choose another name, e.g. {os.path.join(out, 'final.pth')}")
    p = folder
    while not os.path.exists(p) and os.path.dirname(p) != p:
        p = os.path.dirname(p)
    if not os.path.isdir(p):
        raise UserError(f"--export {export}: {p} is a file, not a folder")
    if not os.access(p, os.W_OK):
        raise UserError(f"--export {export}: folder {p} is not writable")
    if weights not in (None, "none", "imagenet", "last"):
        refuse_overwriting_inputs([export], [weights], hint="--export must not replace the --weights checkpoint")


@run_main
def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    from mrcnn_trt import distributed

    if args.nproc > 1 and not distributed.launched():
        return distributed.relaunch("mrcnn_trt.train", argv, args.nproc)
    if args.weights == "imagenet" and not args.imagenet_weights:
        raise UserError("--weights imagenet needs --imagenet-weights FILE (ResNet weights with fpn.C* names)")
    if args.imagenet_weights and not os.path.isfile(args.imagenet_weights):
        raise UserError(f"ImageNet weights file not found: {args.imagenet_weights}")
    check_export(args.export, args.out, args.weights)
    from mrcnn_trt.model.checkpoint import check_device

    check_device(args.device)
    ctx = distributed.init(args.device, args.dist_timeout)
    try:
        return _train(args, ctx)
    finally:
        distributed.shutdown()


def _train(args, ctx) -> int:
    from mrcnn_trt import distributed
    from mrcnn_trt.fileio import output_folder
    from mrcnn_trt.threads import configure_torch
    from mrcnn_trt.train.loop import LAYER_REGEX, TrainOptions, train

    device = distributed.rank_device(ctx, args.device)
    if args.weights == "none" and args.layers != "all" and ctx.is_main:
        print(f"warning: --weights none starts from random weights, and --layers {args.layers} keeps the rest of "
              f"the network (the backbone included) frozen at them; use --layers all, or start from "
              f"--weights imagenet / a checkpoint", file=sys.stderr)
    # --threads, else one per available core (mrcnn_trt.threads), shared by the ranks on this machine
    configure_torch(args.threads or distributed.threads_per_rank(ctx))
    if args.layers not in LAYER_REGEX:
        print(f"note: --layers {args.layers!r} is used as a regex")
    train_ds, val_ds = open_datasets(args)
    names = getattr(train_ds, "class_names", None)
    model, cfg, state = load_on_rank0(args, ctx, names)
    if names is not None and len(names) != cfg.NUM_CLASSES:
        raise UserError(f"the dataset has {len(names)} classes (with BG) but the config {cfg.NAME!r} has "
                        f"{cfg.NUM_CLASSES}; pass a matching --config")
    if names is not None and tuple(names) != tuple(cfg.CLASS_NAMES):
        print(f"note: dataset class names {list(names)[1:6]}... differ from the config's "
              f"{list(cfg.CLASS_NAMES)[1:6]}...; internal ids are used as they are")
    if device != "cpu":
        model = model.to(device)
    opts = TrainOptions(out_dir=args.out, epochs=args.epochs, layers=args.layers, lr=args.lr, batch=args.batch,
                        steps_per_epoch=args.steps_per_epoch, val_steps=args.val_steps, seed=args.seed,
                        workers=args.workers, schedule=args.schedule, warmup_steps=args.warmup_steps,
                        export=args.export, quiet=args.quiet or not ctx.is_main)
    t0 = time.time()
    with (output_folder(args.out) if ctx.is_main else contextlib.nullcontext()):
        st = train(model, train_ds, val_ds, opts, state, ctx=ctx)
    if not args.quiet:
        print(f"done: epoch {st.epoch}, {st.global_step} steps, {time.time() - t0:.0f} s; "
              f"checkpoints in {args.out}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
