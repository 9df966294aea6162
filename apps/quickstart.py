"""``mrcnn-quickstart``: the whole pipeline on its embedded default, on CPU.

1. make a synthetic "shapes" validation set in COCO and in Cityscapes format;
2. take the small model shipped in ``mrcnn_trt/assets`` (or ``--weights``);
3. export it to ONNX, both flavors (custom-op nodes, standard ops), with no confidence cut-off
   (DETECTION_MIN_CONFIDENCE 0: AP counts every detection);
4. run it on ONNX Runtime CPU (our custom ops / stock ops), on PyTorch for
   reference, and on TensorRT when it is installed and a GPU is visible;
5. evaluate with pycocotools and the official Cityscapes scripts and print
   the AP table and latency. Everything lands in ``--out``
   (``summary.json`` holds the table).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Optional, Sequence

from mrcnn_trt import options
from mrcnn_trt.cli import run_main
from mrcnn_trt.data import open_dataset
from mrcnn_trt.data.synthetic import write_dataset
from mrcnn_trt.engine import build_engine
from mrcnn_trt.engine.archs import arch_name
from mrcnn_trt.engine.families import import_family
from mrcnn_trt.engine.gpu import visible_compute_capabilities
from mrcnn_trt.eval.evaluate import evaluate
from mrcnn_trt.eval.evaluators import make_evaluator
from mrcnn_trt.fileio import make_folder, write_json_atomic
from mrcnn_trt.runtime.registry import open_runner


def build_parser():
    p = argparse.ArgumentParser(prog="mrcnn-quickstart", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    options.add_groups(p, options.OutputOptions(default="runs/quickstart"))
    p.add_argument("--num-images", type=options.positive_int, default=100,
                   help="synthetic validation images (default 100)")
    options.add_groups(p, options.WeightsOptions(help="a .pth with the shapes classes instead of the shipped shapes "
                                                      "model"), options.ThreadOptions())
    p.add_argument("--seed", type=options.nonnegative_int, default=2024,
                   help="seed of the synthetic images (default 2024)")
    p.add_argument("--skip-torch", action="store_true", help="skip the PyTorch reference run")
    return p


def _visible_gpu_arch() -> Optional[str]:
    """sm_XX of GPU 0 when a TensorRT family imports and a GPU is visible, else None."""
    try:
        import_family("auto")
        ccs = visible_compute_capabilities()
        return arch_name(ccs[0]) if ccs else None
    except Exception:
        return None


def results_table(rows) -> str:
    """The quick start's table: AP in percent (one decimal), as LAB.md and the report print it."""
    f = lambda v: "-" if v is None or v != v else f"{100 * v:.1f}"  # noqa: E731
    head = (f"{'backend':<28}{'data':<12}{'box AP':>8}{'mask AP':>8}{'mask AP50':>10}{'CS AP':>8}{'CS AP50':>8}"
            f"{'p50 ms':>9}{'img/s':>7}")
    lines = ["AP in percent (summary.json: fractions of 1)", head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['backend']:<28}{r['data']:<12}{f(r['bbox_AP_fraction']):>8}{f(r['mask_AP_fraction']):>8}"
                     f"{f(r['mask_AP50_fraction']):>10}{f(r['cityscapes_AP_fraction']):>8}"
                     f"{f(r['cityscapes_AP50_fraction']):>8}{r['latency_p50_ms']:>9.1f}{r['throughput_ips']:>7.2f}")
    return "\n".join(lines)


@run_main
def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    from mrcnn_trt.export.exporter import export_onnx
    from mrcnn_trt.model.checkpoint import shipped_model_path
    from mrcnn_trt.model.loading import load_model

    t0 = time.time()
    make_folder(args.out)
    say = lambda m: print(f"[{time.time() - t0:6.1f}s] {m}", file=sys.stderr, flush=True)  # noqa: E731

    say(f"1/5 synthetic data: {args.num_images} images, COCO and Cityscapes formats")
    roots = {}
    for fmt in ("coco", "cityscapes"):
        roots[fmt] = os.path.join(args.out, "data", fmt)
        write_dataset(roots[fmt], fmt=fmt, num_images=args.num_images, seed=args.seed, split="val")

    weights = args.weights or shipped_model_path()
    say(f"2/5 model: {weights}")
    model, cfg, _ = load_model(weights)
    if cfg.DETECTION_MIN_CONFIDENCE > 0:   # AP counts every detection: no cut-off in the graphs
        model, cfg, _ = load_model(weights, config=cfg.replace(DETECTION_MIN_CONFIDENCE=0.0))

    say("3/5 export to ONNX (trt flavor with custom nodes, standard flavor)")
    onnx_paths = {}
    for flavor in ("trt", "standard"):
        onnx_paths[flavor] = os.path.join(args.out, f"shapes_{flavor}.onnx")
        export_onnx(model, onnx_paths[flavor], batch=1, flavor=flavor, weights_path=weights)

    # pipelined: the evaluation reads and scores images in threads beside the network
    open_for = lambda path, **kw: open_runner(path, threads=args.threads, pipelined=True, **kw)  # noqa: E731
    runs = [("onnxruntime (custom ops)", lambda: open_for(onnx_paths["trt"])),
            ("onnxruntime (standard ops)", lambda: open_for(onnx_paths["standard"]))]
    if not args.skip_torch:
        def torch_runner():
            runner = open_for(weights, ops="cpu")
            runner.set_min_confidence(cfg.DETECTION_MIN_CONFIDENCE)   # as exported
            return runner
        runs.append(("pytorch", torch_runner))
    arch = _visible_gpu_arch()
    if arch:
        def trt_runner():
            plan = os.path.join(args.out, "shapes_fp16.plan")
            build_engine(onnx_paths["trt"], arch=arch, precision="fp16", output=plan)
            return open_for(plan)
        runs.append(("tensorrt fp16", trt_runner))
    else:
        say("TensorRT not installed (or no GPU): skipping the engine")

    say("4/5 inference + evaluation")
    rows = []
    for name, make in runs:
        runner = make()
        for kind in ("coco", "cityscapes"):
            if kind == "cityscapes" and name != runs[0][0]:
                continue  # one backend is enough for the official Cityscapes protocol
            ds = open_dataset(roots[kind], split="val", fmt=kind)
            out = os.path.join(args.out, "eval", name.split()[0] + ("_std" if "standard" in name else "") + "_" + kind)
            os.makedirs(out, exist_ok=True)
            ev = make_evaluator(kind, ds, cfg.CLASS_NAMES, "auto", out)
            m = evaluate(runner, ds, ev, out_dir=out, save_vis=4 if kind == "coco" else 0)
            write_json_atomic(os.path.join(out, "metrics.json"), m)
            rows.append({
                "backend": name, "data": kind,
                # fractions of 1, as in metrics.json (the table below prints percent)
                "bbox_AP_fraction": m.get("bbox", {}).get("AP"), "mask_AP_fraction": m.get("segm", {}).get("AP"),
                "mask_AP50_fraction": m.get("segm", {}).get("AP50"),
                "cityscapes_AP_fraction": m.get("cityscapes", {}).get("AP"),
                "cityscapes_AP50_fraction": m.get("cityscapes", {}).get("AP50"),
                "latency_p50_ms": m["latency_ms"]["p50"], "throughput_ips": m["throughput_ips"],
                "images": m["num_images"],
            })

    say("5/5 results")
    print(results_table(rows))
    write_json_atomic(os.path.join(args.out, "summary.json"),
                      {"weights": weights, "num_images": args.num_images, "rows": rows,
                       "seconds": round(time.time() - t0, 1)})
    print(f"\nfiles in {args.out}  (summary.json, eval/*/metrics.json, eval/*/vis/*.png); "
          f"total {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
