"""``mrcnn-build-engine``: ONNX (+ sidecar) -> plan (+ ``model.plan.json``).

    mrcnn-build-engine model.onnx --arch sm_86                        # FP32, on an sm_86 GPU (TensorRT)
    mrcnn-build-engine model.onnx --arch sm_86 --fp16 -o model_fp16.plan
    mrcnn-build-engine model.onnx --arch sm_86,sm_89,sm_120 --family rtx   # no GPU needed: TensorRT for RTX
    mrcnn-build-engine model.onnx --arch sm_75 --fp16                 # RTX: an FP16 graph is made internally
    mrcnn-build-engine model.onnx --arch sm_89 --int8 --calib-images calib/   # RTX / TensorRT 11: Q/DQ made here
    mrcnn-build-engine model.onnx --arch sm_61 --int8 --calib-images calib/ --calib-cache model.calib  # TensorRT <= 10
    mrcnn-build-engine model_qdq.onnx --arch sm_89                    # a Q/DQ model (mrcnn-calibrate) is INT8

Two TensorRT families (--family, default auto: TensorRT if it imports, else
TensorRT for RTX): TensorRT builds on the GPU it targets (one --arch, the
visible GPU by default); TensorRT for RTX builds ahead of time without a GPU
for sm_75, sm_80, sm_86, sm_89, sm_120, sm_121 (several in one plan).

Exit codes (engine/README.md): 2 bad arguments or files, 10 no TensorRT,
11 --arch not buildable by this family/release, 12 GPU is not --arch,
13 plugin library lacks device code, 14 ONNX sidecar mismatch, 15 precision
impossible, 16 stale calibration cache, 17 plugin library missing, 18 parse
or build failed, 20 model needs an operator the family lacks, 21 plugin
library built for another family/release. Plan and sidecar are written
atomically: a failed build leaves no file behind.

Python: mrcnn_trt.engine.build_engine(onnx_path, arch=..., precision=..., family=...).
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from mrcnn_trt import options
from mrcnn_trt.cli import run_main
from mrcnn_trt.options import positive_int

from .archs import arch_list_type

CALIBRATION = options.CalibrationOptions()
BATCH = options.BatchOptions(default=None, help="optimization-profile batch of a dynamic-batch model (1..its max, "
                                                "default the max); a fixed-batch model keeps its batch")
DEVICE = options.DeviceOptions(default="cuda")
THREADS = options.ThreadOptions()
OUT = options.OutputOptions(what="file", help="plan file (default: the ONNX path with .plan; its sidecar is "
                                              "<plan>.json)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mrcnn-build-engine", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("onnx", help="model.onnx from mrcnn-export (with model.onnx.json beside it)")
    p.add_argument("--arch", metavar="ARCH[,ARCH...]", type=arch_list_type,
                   help="GPU architecture(s) the plan is for: sm_86, 86 or 8.6 (compute capability); several "
                        "(sm_86,sm_89,sm_120) with TensorRT for RTX; default: the visible GPU")
    p.add_argument("--family", choices=["auto", "tensorrt", "rtx"], default="auto",
                   help="TensorRT family (default auto: TensorRT if installed, else TensorRT for RTX)")
    p.add_argument("--fp16", action="store_true",
                   help="FP16: the builder flag (TensorRT <= 10) or an FP16 graph made from the model (TensorRT 11, RTX)")
    p.add_argument("--int8", action="store_true",
                   help="INT8: a Q/DQ model, or --calib-images (calibrated in the builder on TensorRT <= 10, as a Q/DQ "
                        "graph otherwise)")
    CALIBRATION.add(p)
    p.add_argument("--calib-cache", metavar="FILE", help="TensorRT <= 10 calibration cache: read if it exists (must "
                                                         "match this model), else written (default: <plan>.calib)")
    p.add_argument("--calibrator", choices=["entropy2", "minmax"], default="entropy2",
                   help="TensorRT <= 10 INT8 calibrator (default entropy2)")
    p.add_argument("--plugins", metavar="LIB", help="libmrcnn_trt_plugins.so (default: MRCNN_TRT_PLUGINS, "
                                                    "plugins/lib/<family>/ from mrcnn-build-plugins, "
                                                    "the package folder, build*/)")
    p.add_argument("--workspace", type=positive_int, default=2048, metavar="MB",
                   help="builder workspace limit (default 2048)")
    p.add_argument("--timing-cache", metavar="FILE", help="TensorRT timing cache: read if present, updated after")
    options.add_groups(p, BATCH, DEVICE, THREADS, OUT)
    p.add_argument("--verbose", action="store_true", help="TensorRT messages as they come")
    return p


def precision_of(args) -> str:
    """``--int8`` / ``--fp16`` -> ``fp32``, ``fp16``, ``int8`` or ``int8+fp16``."""
    return "+".join(x for x in ("int8" if args.int8 else "", "fp16" if args.fp16 else "") if x) or "fp32"


@run_main
def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    from .build import BuildRequest, EngineBuild

    calib = CALIBRATION.parse(args)
    req = BuildRequest(onnx=args.onnx, output=args.out, arch=args.arch, precision=precision_of(args),
                       family=args.family, plugins=args.plugins, batch=BATCH.parse(args), workspace_mb=args.workspace,
                       timing_cache=args.timing_cache, calib_images=calib.images, calib_count=calib.count,
                       calib_cache=args.calib_cache, calibrator=args.calibrator, seed=calib.seed,
                       threads=THREADS.parse(args), device=DEVICE.parse(args), verbose=args.verbose)
    build = EngineBuild(req)
    side = build.run()
    fam = "TensorRT for RTX" if side["family"] == "rtx" else "TensorRT"
    # the time printed is the sidecar's build_seconds (the whole build, checks included)
    print(f"wrote {build.output} ({side['precision']['label']}, {side['arch']}, {fam} "
          f"{side['family_version']}, {side['plan_bytes'] / 1e6:.1f} MB) in {side['build_seconds']:.1f} s",
          file=sys.stderr)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
