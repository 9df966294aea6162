"""``mrcnn-calibrate``: float32 ONNX -> INT8 Q/DQ ONNX (calibrated) or FP16 ONNX.

    mrcnn-calibrate model.onnx --calib-images calib_images/ -o model.int8.onnx          # TensorRT Q/DQ
    mrcnn-calibrate model.onnx --calib-images coco/ --split train --target cpu -o model.cpu.int8.onnx
    mrcnn-calibrate model.onnx --fp16 -o model.fp16.onnx

INT8 (``--calib-images``, alias ``--images``): runs the model in ONNX Runtime (with the mrcnn custom
ops) once per image on --calib-count images molded like inference (about
1.2-1.5x the time of inference per image; a progress bar shows images/s and the
ETA), and inserts
QuantizeLinear/DequantizeLinear nodes with the calibrated scales into the
Conv/ConvTranspose/Gemm layers of the backbone, FPN, RPN and heads. The
custom nodes, softmax/sigmoid, box math and the last layers of the heads
(--exclude) stay float; see calib/README.md.

  --target tensorrt (default): symmetric INT8, float biases - TensorRT's
      explicit quantization (the INT8 route of TensorRT 11; 8.6/10 build it
      too): mrcnn-build-engine model.int8.onnx --int8. Runs in ONNX Runtime
      too, partly as float math on quantized values (not faster on CPU).
  --target cpu: uint8 activations, INT32 biases: ONNX Runtime fuses the
      layers into QLinearConv (real INT8 arithmetic on the CPU). Not for
      TensorRT.

FP16 (``--fp16``): float16 weights and activations, float32 inputs/outputs
and box geometry. For TensorRT <= 10 use the builder flag instead
(mrcnn-build-engine model.onnx --fp16); TensorRT 11 (strongly typed) builds
this file with --fp16.

The output gets a sidecar (model.int8.onnx.json) describing the source model,
the calibration and what was quantized.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Optional, Sequence

from mrcnn_trt import options
from mrcnn_trt.cli import run_main
from mrcnn_trt.errors import UserError


def build_parser() -> argparse.ArgumentParser:
    from .groups import DEFAULT_CALIB_COUNT, DEFAULT_EXCLUDE, DEFAULT_METHOD, GROUP_NAMES, METHODS, TARGETS

    p = argparse.ArgumentParser(prog="mrcnn-calibrate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("onnx", help="float32 model.onnx from mrcnn-export (with model.onnx.json beside it)")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--calib-images", "--images", dest="calib_images", metavar="DIR",
                      help="INT8: calibration images: a folder of images, a COCO root or instances json, or a "
                           "Cityscapes root (prefer training images)")
    what.add_argument("--fp16", action="store_true", help="write a float16 model instead (no calibration)")
    options.add_split(p)
    p.add_argument("--calib-count", type=options.positive_int, default=DEFAULT_CALIB_COUNT, metavar="N",
                   help=f"calibration images (default {DEFAULT_CALIB_COUNT}: enough on the measured models, "
                        f"see calib/README.md; a fixed-seed random subset when there are more)")
    p.add_argument("--seed", type=options.nonnegative_int, default=0, help="seed of the image subset (default 0)")
    p.add_argument("--method", choices=METHODS, default=DEFAULT_METHOD,
                   help=f"activation range calibration (default {DEFAULT_METHOD})")
    p.add_argument("--per-channel", dest="per_channel", action="store_true", default=True,
                   help="per-output-channel weight scales (default)")
    p.add_argument("--no-per-channel", dest="per_channel", action="store_false", help="one scale per weight tensor")
    p.add_argument("--target", choices=TARGETS, default="tensorrt",
                   help="tensorrt (default): symmetric INT8, float biases; cpu: ONNX Runtime QLinearConv form")
    p.add_argument("--exclude", metavar="GROUPS", default=None,
                   help=f"layer groups kept in float, comma separated, or 'none' (default "
                        f"{','.join(DEFAULT_EXCLUDE)}; groups: {', '.join(GROUP_NAMES)})")
    options.add_threads(p)
    options.add_output(p, what="file", help="output model (default: model.int8.onnx / model.fp16.onnx)")
    return p


def default_output(onnx_path: str, fp16: bool) -> str:
    root, ext = os.path.splitext(onnx_path)
    root = root if ext.lower() == ".onnx" else onnx_path
    return root + (".fp16.onnx" if fp16 else ".int8.onnx")


@run_main
def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    from mrcnn_trt.runtime.modelfile import check_model_file

    out = args.out or default_output(args.onnx, args.fp16)
    check_model_file(args.onnx)
    out_dir = os.path.dirname(os.path.abspath(out))
    if os.path.isdir(out_dir) and not os.access(out_dir, os.W_OK):
        raise UserError(f"output folder is not writable: {out_dir}")
    if args.fp16:
        from mrcnn_trt.runtime.modelfile import onnx_session

        from .fp16 import convert_model

        onnx_session(args.onnx, threads=args.threads)   # a model ONNX Runtime refuses is not converted
        side = convert_model(args.onnx, out)
        f = side["fp16"]
        print(f"wrote {out} (float16: {f['float16_nodes']} nodes, float32: {f['float32_nodes']} geometry/cast "
              f"nodes; float32 inputs/outputs)", file=sys.stderr)
        return 0
    from .qdq import parse_groups, quantize_model

    if not os.path.exists(args.calib_images):
        raise UserError(f"calibration images not found: {args.calib_images}")
    exclude = parse_groups(args.exclude)
    side = quantize_model(args.onnx, out, args.calib_images, count=args.calib_count, seed=args.seed, method=args.method,
                          target=args.target, exclude=exclude, per_channel=args.per_channel, split=args.split,
                          threads=args.threads, progress=True)
    q = side["quantization"]
    print(f"wrote {out} (INT8 Q/DQ for {args.target}: {len(q['quantized_nodes'])} layers quantized, "
          f"{len(q['excluded_nodes'])} kept float [{','.join(q['excluded_groups']) or 'none'}]; "
          f"{q['calib_count']} images, {args.method}, {q['calibration_seconds']:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
