"""``mrcnn-make-dataset``: write a synthetic instance-segmentation dataset in the
COCO or Cityscapes on-disk format (see :mod:`mrcnn_trt.data.synthetic`).

Examples::

    mrcnn-make-dataset --kind shapes --format coco --out data/shapes --num-images 2000 --split train
    mrcnn-make-dataset --kind shapes --format coco --out data/shapes --num-images 200 --split val
    mrcnn-make-dataset --kind shapes --format cityscapes --out data/shapes-cs --num-images 100 --split val
"""
from __future__ import annotations

import argparse
import time

from mrcnn_trt import options
from mrcnn_trt.cli import run_main
from mrcnn_trt.errors import UserError


def _size(text: str):
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, e.g. 320x240, got {text!r}") from None
    if w <= 0 or h <= 0:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return w, h


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
    options.add_output(p, required=True, help="output folder (created; generated files of the same split from an "
                                              "earlier run are replaced)")
    p.add_argument("--num-images", type=options.positive_int, default=200, help="number of images (default 200)")
    p.add_argument("--seed", type=options.nonnegative_int, default=0,
                   help="random seed; image i depends only on seed, split, i (default 0)")
    options.add_split(p)
    p.add_argument("--size", type=_size, default="320x240", metavar="WxH", help="image size (default 320x240)")
    p.add_argument("--max-instances", type=options.positive_int, default=8,
                   help="at most this many shapes per image (default 8)")
    p.add_argument("--min-instances", type=options.positive_int, default=1,
                   help="at least this many shapes per image (default 1)")
    p.add_argument("--crowd-prob", type=options.probability, default=0.0,
                   help="probability that an instance is marked crowd: COCO iscrowd=1, Cityscapes group region "
                        "(default 0)")
    p.add_argument("--segmentation", choices=["rle", "polygon"], default="rle",
                   help="COCO segmentation encoding: rle (default), or polygon for unoccluded shapes inside the "
                        "image (RLE otherwise)")
    p.add_argument("--image-format", choices=["png", "jpg"], default="png", help="COCO image files (default png)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


@run_main
def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.min_instances > args.max_instances:
        raise UserError("need --min-instances <= --max-instances")
    from mrcnn_trt.fileio import output_folder

    from .synthetic import write_dataset

    t0 = time.time()
    with output_folder(args.out):
        info = write_dataset(args.out, fmt=args.fmt, num_images=args.num_images, seed=args.seed, split=args.split,
                             size=args.size, image_format=args.image_format, segmentation=args.segmentation,
                             show_progress=not args.quiet, max_instances=args.max_instances,
                             min_instances=args.min_instances, crowd_prob=args.crowd_prob)
    print(f"wrote {info['images']} images with {info['instances']} instances ({args.fmt}, split "
          f"{args.split}) to {args.out} in {time.time() - t0:.1f} s")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
