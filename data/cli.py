"""``mrcnn-make-dataset``: write a synthetic instance-segmentation dataset in the
COCO or Cityscapes on-disk format (see :mod:`mrcnn_trt.data.synthetic`).

Examples::

    mrcnn-make-dataset --kind shapes --format coco --out data/shapes --num-images 2000 --split train
    mrcnn-make-dataset --kind shapes --format coco --out data/shapes --num-images 200 --split val
    mrcnn-make-dataset --kind shapes --format cityscapes --out data/shapes-cs --num-images 100 --split val
"""
from __future__ import annotations

import argparse
import os
import re
import time
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

from mrcnn_trt import options
from mrcnn_trt.cli import run_main
from mrcnn_trt.errors import UserError

from .synthetic import CITIES, is_synthetic_image, write_dataset


MAX_SIDE = 8192            # --size: a generated image stays below 200 MB
MAX_INSTANCES = 100        # --max-instances: shapes per image (placing more only retries)


def _size(text: str):
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, e.g. 320x240, got {text!r}") from None
    if w <= 0 or h <= 0:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    if w > MAX_SIDE or h > MAX_SIDE:
        raise argparse.ArgumentTypeError(f"each side must be <= {MAX_SIDE}, got {text!r}")
    return w, h


@dataclass(frozen=True)
class ShapesOptions(options.OptionGroup):
    """``--num-images``, ``--seed``, ``--split``, ``--size``, ``--max-instances``,
    ``--min-instances``, ``--crowd-prob``, ``--segmentation``, ``--image-format`` -> the
    keywords of :func:`~mrcnn_trt.data.synthetic.write_dataset` that say what is drawn."""

    def add(self, parser):
        parser.add_argument("--num-images", type=options.positive_int, default=200,
                            help="number of images (default 200)")
        parser.add_argument("--seed", type=options.nonnegative_int, default=0,
                            help="random seed; image i depends only on seed, split, i (default 0)")
        options.add_split(parser)
        parser.add_argument("--size", type=_size, default="320x240", metavar="WxH",
                            help="image size (default 320x240)")
        instances = options._number(int, 1, MAX_INSTANCES, what=f"an integer in 1..{MAX_INSTANCES}")
        parser.add_argument("--max-instances", type=instances, default=8,
                            help=f"at most this many shapes per image (default 8; at most {MAX_INSTANCES})")
        parser.add_argument("--min-instances", type=instances, default=1,
                            help="at least this many shapes per image (default 1)")
        parser.add_argument("--crowd-prob", type=options.probability, default=0.0,
                            help="probability that an instance is marked crowd: COCO iscrowd=1, Cityscapes group "
                                 "region (default 0)")
        parser.add_argument("--segmentation", choices=["rle", "polygon"], default="rle",
                            help="COCO segmentation encoding: rle (default), or polygon for unoccluded shapes inside "
                                 "the image (RLE otherwise)")
        parser.add_argument("--image-format", choices=["png", "jpg"], default="png",
                            help="COCO image files (default png)")

    def parse(self, args) -> Dict[str, Any]:
        if args.min_instances > args.max_instances:
            raise UserError("need --min-instances <= --max-instances")
        return dict(num_images=args.num_images, seed=args.seed, split=args.split, size=args.size,
                    image_format=args.image_format, segmentation=args.segmentation,
                    max_instances=args.max_instances, min_instances=args.min_instances, crowd_prob=args.crowd_prob)


SHAPES = ShapesOptions()
OUT = options.OutputOptions(required=True, help="output folder (created; generated files of the same split from an "
                                                "earlier run are replaced)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mrcnn-make-dataset",
        description="Write a synthetic dataset (circles, squares, triangles on textured backgrounds) "
                    "in the exact COCO or Cityscapes file layout, deterministic for a seed.",
        epilog="examples:" + __doc__.split("Examples::", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kind", default="shapes", choices=["shapes"], help="what to draw (default shapes)")
    p.add_argument("--format", dest="fmt", default="coco", choices=["coco", "cityscapes"],
                   help="on-disk layout: coco (default; images/ + annotations/instances_<split>.json) or "
                        "cityscapes (leftImg8bit/ + gtFine/; circle->person, square->car, triangle->bicycle)")
    OUT.add(p)
    SHAPES.add(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


#: how every COCO annotation file of mrcnn-make-dataset begins (``write_dataset``)
COCO_MARK = b'{"info":{"description":"mrcnn-trt synthetic shapes"'


def check_out_is_ours(out: str, fmt: str, split: str) -> None:
    """Before anything is written: every file a run would replace or remove in
    ``out`` must be one of ours (an annotation file we wrote, images carrying the
    synthetic mark, our Cityscapes file names), so ``--out`` pointing at a real
    dataset is refused in one line instead of losing its files."""
    problem = (_coco_problem if fmt == "coco" else _cityscapes_problem)(out, split)
    if problem:
        path, why = problem
        raise UserError(f"--out {out} holds {path}, {why}: not replaced; mrcnn-make-dataset only replaces the files "
                        f"of its own earlier runs; choose another --out")


def _coco_problem(out: str, split: str) -> Optional[Tuple[str, str]]:
    """(path, why) of the first file in a COCO ``out`` that a run of ``split`` must not replace."""
    ann = os.path.join(out, "annotations", f"instances_{split}.json")
    if os.path.lexists(ann):
        try:
            with open(ann, "rb") as f:
                head = f.read(len(COCO_MARK)) if os.path.isfile(ann) else b""
        except OSError:
            head = b""
        if head != COCO_MARK:
            return ann, "an annotation file not written by mrcnn-make-dataset"
    img_dir = os.path.join(out, "images")
    if os.path.isdir(img_dir):
        pat = re.compile(re.escape(split) + r"_\d{6}\.(png|jpg)$")
        for name in sorted(os.listdir(img_dir)):
            path = os.path.join(img_dir, name)
            if pat.match(name) and not (os.path.isfile(path) and is_synthetic_image(path)):
                return path, "an image without the synthetic mark"
    return None


def _cityscapes_problem(out: str, split: str) -> Optional[Tuple[str, str]]:
    """(path, why) of the first file in a Cityscapes ``out`` that a run of ``split`` must not replace."""
    for city in CITIES:
        names = {"leftImg8bit": re.compile(re.escape(city) + r"_\d{6}_000019_leftImg8bit\.png$"),
                 "gtFine": re.compile(re.escape(city) + r"_\d{6}_000019_gtFine_(instanceIds\.png|labelIds\.png|"
                                                         r"polygons\.json)$")}
        for top, pat in names.items():
            d = os.path.join(out, top, split, city)
            if not os.path.lexists(d):
                continue
            if not os.path.isdir(d) or os.path.islink(d):
                return d, "not a folder of ours"
            for name in sorted(os.listdir(d)):
                problem = _cityscapes_file_problem(os.path.join(d, name), pat, top == "leftImg8bit")
                if problem:
                    return problem
    return None


def _cityscapes_file_problem(path: str, pat, image: bool) -> Optional[Tuple[str, str]]:
    if not pat.match(os.path.basename(path)) or not os.path.isfile(path) or os.path.islink(path):
        return path, "a file mrcnn-make-dataset does not write"
    if image and not is_synthetic_image(path):
        return path, "an image without the synthetic mark"
    return None


@run_main
def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    shapes = SHAPES.parse(args)
    check_out_is_ours(args.out, args.fmt, args.split)
    t0 = time.time()
    with OUT.open(OUT.parse(args)) as out:
        info = write_dataset(out, fmt=args.fmt, show_progress=not args.quiet, **shapes)
    print(f"wrote {info['images']} images with {info['instances']} instances ({args.fmt}, split "
          f"{args.split}) to {args.out} in {time.time() - t0:.1f} s")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
