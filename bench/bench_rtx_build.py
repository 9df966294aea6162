"""Ahead-of-time plan builds with TensorRT for RTX (no GPU): build time and plan size per target.

    python bench/bench_rtx_build.py [--models shapes,r101] [--repeat 3] [--plugins LIB]

For the shipped shapes model (256 px) and an R-101 COCO-layout model (1024 px,
random weights), trt flavor, batch 1: parse + build (``build_engine``) for each
target alone and for sm_86+sm_89+sm_120 in one plan, FP32 and FP16 (sm_75 only
FP16: TensorRT for RTX has no FP32 GEMM for Turing). Prints the median build
time over --repeat builds, the plan size, and both as ratios to the sm_86 plan
of the same model and precision. The FP16 graph conversion (done once per
model, before the builds) is timed separately. Needs ``pip install -e ".[rtx]"``
and ``mrcnn-build-plugins``.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

from mrcnn_trt.config import preset
from mrcnn_trt.export.exporter import export_onnx
from mrcnn_trt.model.checkpoint import shipped_model_path
from mrcnn_trt.model.loading import build_model, load_model

TARGETS = ["sm_75", "sm_80", "sm_86", "sm_89", "sm_120", "sm_86,sm_89,sm_120"]


def export(name: str, folder: str) -> str:
    import torch

    torch.set_num_threads(2)
    path = os.path.join(folder, f"{name}.onnx")
    t0 = time.time()
    if name == "shapes":
        model, _, _ = load_model(shipped_model_path())
        export_onnx(model.eval(), path, flavor="trt", weights_path=shipped_model_path())
    else:
        torch.manual_seed(0)
        export_onnx(build_model(preset("coco")).eval(), path, flavor="trt")
    print(f"{name}: exported in {time.time() - t0:.1f} s ({os.path.getsize(path) / 1e6:.0f} MB ONNX)", file=sys.stderr)
    return path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="shapes,r101")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--plugins", help="libmrcnn_trt_plugins.so for TensorRT for RTX (default: where mrcnn-build-plugins "
                                     "put it)")
    args = p.parse_args(argv)
    from mrcnn_trt.calib.fp16 import convert_model
    from mrcnn_trt.engine import build_engine

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-rtx-") as tmp:
        for name in args.models.split(","):
            onnx32 = export(name, tmp)
            t0 = time.time()
            onnx16 = os.path.join(tmp, f"{name}.fp16.onnx")
            convert_model(onnx32, onnx16)
            print(f"{name}: FP16 graph in {time.time() - t0:.1f} s", file=sys.stderr)
            for precision, onnx_path in (("fp32", onnx32), ("fp16", onnx16)):
                for target in TARGETS:
                    if target == "sm_75" and precision == "fp32":
                        continue
                    times, size = [], 0
                    for _ in range(args.repeat):
                        plan = os.path.join(tmp, "plan.plan")
                        t = time.time()
                        side = build_engine(onnx_path, arch=target, family="rtx", plugins=args.plugins, output=plan)
                        times.append(time.time() - t)
                        size = side["plan_bytes"]
                    rows.append((name, precision, target, statistics.median(times), size))
                    print(f"  {name} {precision} {target}: {rows[-1][3]:.2f} s, {size / 1e6:.1f} MB", file=sys.stderr)
                    os.unlink(plan)
                    os.unlink(plan + ".json")
    print(f"\nTensorRT for RTX ahead-of-time builds (no GPU), median of {args.repeat}; ratios vs sm_86 of the same "
          f"model and precision\n")
    print("| model | precision | targets | build s | plan MB | build vs sm_86 | size vs sm_86 |")
    print("|---|---|---|---|---|---|---|")
    base = {(m, pr): (t, s) for m, pr, tg, t, s in rows if tg == "sm_86"}
    for m, pr, tg, t, s in rows:
        bt, bs = base[(m, pr)]
        print(f"| {m} | {pr} | {tg} | {t:.2f} | {s / 1e6:.1f} | {t / bt:.2f}x | {s / bs:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
