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
import os
import re
import sys
from dataclasses import dataclass
from typing import Any, Dict, Optional

from mrcnn_trt import options
from mrcnn_trt.cli import run_main
from mrcnn_trt.errors import UserError
from mrcnn_trt.fileio import refuse_overwriting_inputs


@dataclass(frozen=True)
class TrainData:
    """The training and validation data of a run (``mrcnn_trt.train.command.open_datasets``):
    ``kind`` coco | cityscapes | shapes, ``root`` (None: shapes generated in memory,
    ``synthetic_images`` of them), ``val``: a split name or ``none``, ``val_fraction``: the
    share of the training images held out instead (``val`` a number), ``val_default``:
    ``val`` was not named on the command line (a missing one is then only noted)."""

    kind: str
    root: Optional[str]
    train_split: str
    val: str
    val_fraction: Optional[float]
    val_default: bool
    synthetic_images: int
    seed: int


@dataclass(frozen=True)
class ModelInit:
    """Where the model starts (``mrcnn_trt.train.command.build_and_load``): ``weights``
    none | imagenet | last | a .pth, ``config``: the ``--config`` text (read where the
    weights are read, by :func:`mrcnn_trt.options.resolve_config`; None: the checkpoint's
    or the dataset's preset), ``dataset`` (its kind, for the default preset), ``out``
    (where ``last`` is)."""

    weights: str
    imagenet_weights: Optional[str]
    config: Optional[str]
    dataset: str
    seed: int
    out: str


def _val_fraction(val: str) -> Optional[float]:
    """``--val-split 0.1`` -> 0.1 (a fraction in (0, 1)); a split name -> None."""
    try:
        fraction = float(val)
    except ValueError:
        return None
    if not 0.0 < fraction < 1.0:
        raise UserError(f"--val-split {val}: a fraction must be in (0, 1)")
    return fraction


@dataclass(frozen=True)
class TrainDataOptions(options.OptionGroup):
    """``--dataset``, ``--data-root`` (read with :class:`SplitOptions` and ``--seed``) -> :class:`TrainData`."""

    def add(self, parser):
        parser.add_argument("--dataset", required=True, choices=["coco", "cityscapes", "shapes"],
                            help="dataset kind (shapes = synthetic shapes in COCO layout, or generated in memory "
                                 "when --data-root is omitted)")
        parser.add_argument("--data-root", metavar="DIR",
                            help="dataset folder (COCO: annotations/instances_<split>.json + images; Cityscapes: "
                                 "leftImg8bit/ + gtFine/)")

    def parse(self, args) -> TrainData:
        val = (args.val_split or "none").strip()
        return TrainData(args.dataset, args.data_root, args.train_split, val, _val_fraction(val),
                         args.val_split == "val", args.synthetic_images, args.seed)


@dataclass(frozen=True)
class SplitOptions(options.OptionGroup):
    """``--train-split``, ``--val-split``, ``--val-steps``, ``--synthetic-images``
    (read by :class:`TrainDataOptions`; ``--val-steps`` by :class:`LoopOptions`)."""

    def add(self, parser):
        parser.add_argument("--train-split", default="train", help="training split name (default train; COCO: "
                                                                   "instances_<split>.json)")
        parser.add_argument("--val-split", default="val",
                            help="validation split name, a fraction like 0.1 of the training images held out, or "
                                 "'none' (default val)")
        parser.add_argument("--val-steps", type=options.nonnegative_int, default=50,
                            help="validation batches per epoch (default 50; 0 = no validation)")
        parser.add_argument("--synthetic-images", type=options.positive_int, default=1000,
                            help="--dataset shapes without --data-root: number of generated training images "
                                 "(validation: a tenth, at least 20; default 1000)")


@dataclass(frozen=True)
class InitOptions(options.OptionGroup):
    """``--weights``, ``--imagenet-weights`` (read with ``--config``, ``--dataset``,
    ``--seed`` and ``-o``) -> :class:`ModelInit`; :meth:`check`: the weight files."""

    def add(self, parser):
        parser.add_argument("--weights", required=True,
                            help="none | imagenet | last (resume OUT/last.pth) | path to a .pth checkpoint")
        parser.add_argument("--imagenet-weights", metavar="PTH",
                            help="ResNet weights file (fpn.C* names) for --weights imagenet (required there)")

    def check(self, args) -> None:
        """The ImageNet weight file is given and exists (before the run starts)."""
        if args.weights == "imagenet" and not args.imagenet_weights:
            raise UserError("--weights imagenet needs --imagenet-weights FILE (ResNet weights with fpn.C* names)")
        if args.imagenet_weights and not os.path.isfile(args.imagenet_weights):
            raise UserError(f"ImageNet weights file not found: {args.imagenet_weights}")

    def parse(self, args) -> ModelInit:
        return ModelInit(args.weights, args.imagenet_weights, args.config, args.dataset, args.seed, args.out)


@dataclass(frozen=True)
class LoopOptions(options.OptionGroup):
    """``--layers``, ``--epochs``, ``--lr``, ``--schedule``, ``--warmup-steps``, ``--batch``,
    ``--steps-per-epoch`` (read with ``-o``, ``--val-steps``, ``--export``, ``--seed``,
    ``--workers``, ``--quiet``) -> the fields of :class:`~mrcnn_trt.train.loop.TrainOptions`."""

    def add(self, parser):
        parser.add_argument("--layers", default="heads",
                            help="trainable layers: heads (default) | 3+ | 4+ | 5+ | all, or a regex (re.fullmatch "
                                 "on parameter names)")
        parser.add_argument("--epochs", type=options.positive_int, required=True,
                            help="train until this epoch (total, counting resumed ones)")
        parser.add_argument("--lr", type=options.positive_float,
                            help="base learning rate (default: the config's LEARNING_RATE)")
        parser.add_argument("--schedule", default="cosine", choices=["cosine", "step", "constant"],
                            help="LR schedule over all steps up to --epochs, after a linear warm-up (default cosine)")
        parser.add_argument("--warmup-steps", type=options.nonnegative_int, default=100,
                            help="linear warm-up steps, at most 10%% of all steps (default 100)")
        options.add_batch(parser, default=None, help="images per optimizer step (default: the config's "
                                                     "IMAGES_PER_GPU)")
        parser.add_argument("--steps-per-epoch", type=options.positive_int,
                            help="optimizer steps per epoch (default: one pass over the data)")

    def parse(self, args) -> Dict[str, Any]:
        return dict(out_dir=args.out, epochs=args.epochs, layers=args.layers, lr=args.lr, batch=args.batch,
                    steps_per_epoch=args.steps_per_epoch, val_steps=args.val_steps, seed=args.seed,
                    workers=args.workers, schedule=args.schedule, warmup_steps=args.warmup_steps,
                    export=args.export, quiet=args.quiet)


#: files mrcnn-train writes into OUT (``--export`` must not be one of them)
TRAINING_FILES = re.compile(r"^(last\.pth|epoch_\d+\.pth|losses\.json|losses\.png)$")


def check_export(export: Optional[str], out: str, weights: Optional[str]) -> None:
    """``--export`` before any training: a file (not a folder) in a folder that
    can be written, neither one of the files training keeps in OUT (``last.pth``
    holds the optimizer state and loss history needed to resume) nor the input
    checkpoint."""
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


@dataclass(frozen=True)
class ExportOptions(options.OptionGroup):
    """``--export PTH`` -> the path of the final weights, checked (:func:`check_export`), or None."""

    def add(self, parser):
        parser.add_argument("--export", metavar="PTH",
                            help="also write the final weights (config, no optimizer state) to this file")

    def parse(self, args) -> Optional[str]:
        check_export(args.export, args.out, args.weights)
        return args.export


@dataclass(frozen=True)
class SeedOptions(options.OptionGroup):
    """``--seed``, ``--workers`` (read by the data, init and loop groups)."""

    def add(self, parser):
        parser.add_argument("--seed", type=options.nonnegative_int, default=0,
                            help="random seed: initialisation, sampling, augmentation (default 0)")
        parser.add_argument("--workers", type=options.worker_count, default=1,
                            help="data loader processes (0 = in the main process; default 1)")


@dataclass(frozen=True)
class QuietOptions(options.OptionGroup):
    """``--quiet`` (read by :class:`LoopOptions`)."""

    def add(self, parser):
        parser.add_argument("--quiet", action="store_true", help="no per-epoch messages")


CONFIG = options.ConfigOptions(
    help="preset name (coco, cityscapes, shapes, tiny), a .json file, or inline JSON like "
         "'{\"preset\": \"shapes\", \"LEARNING_RATE\": 0.02}' (default: the dataset's preset, or the config "
         "stored in the checkpoint)", metavar=None, inline_json=True)
DATA = TrainDataOptions()
INIT = InitOptions()
LOOP = LoopOptions()
OUT = options.OutputOptions(required=True, help="output folder: epoch_NNNN.pth, last.pth, losses.json, losses.png")
EXPORT = ExportOptions()
THREADS = options.ThreadOptions(default=None)
DEVICE = options.DeviceOptions()
DIST = options.DistributedOptions("training")

#: mrcnn-train's options, in the order of --help
GROUPS = (DATA, INIT, CONFIG, LOOP, SplitOptions(), OUT, EXPORT, SeedOptions(), THREADS, DEVICE, DIST, QuietOptions())


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mrcnn-train",
        description="Train Mask R-CNN (SGD, frozen BatchNorm, per-epoch checkpoints, loss curves).",
        epilog="Ctrl-C or SIGTERM stops after saying which epoch is the last complete one (OUT/last.pth); "
               "resume with --weights last.")
    return options.add_groups(p, *GROUPS)


@run_main
def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    from mrcnn_trt.model.checkpoint import check_device
    from mrcnn_trt.train.command import run_training   # the command's work (loads torch)

    def prepare():   # in each process, before it joins the job
        INIT.check(args)
        EXPORT.parse(args)
        check_device(DEVICE.parse(args))

    def body(ctx):
        return run_training(DATA.parse(args), INIT.parse(args), LOOP.parse(args), DEVICE.parse(args),
                            THREADS.parse(args), ctx)

    return DIST.launch(args, "mrcnn_trt.train", argv, body, device=args.device, prepare=prepare)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
