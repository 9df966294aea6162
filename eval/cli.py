"""``mrcnn-eval``: COCO / Cityscapes AP and latency for any backend.

    mrcnn-eval --model model.plan --dataset cityscapes --data-root CITYSCAPES/
    mrcnn-eval --model model.onnx --dataset coco --data-root COCO/ --split val2017 --limit 500
    mrcnn-eval --model mask_rcnn_coco.pth --dataset cityscapes --data-root CS/ --class-map coco-to-cityscapes

The backend is chosen from the file (.plan -> TensorRT, .onnx -> ONNX Runtime
with our ops, .pth -> PyTorch). COCO data: ``DATA_ROOT/annotations/instances_<split>.json``
+ images (or pass the json itself; ``--images DIR`` when the images are elsewhere);
Cityscapes: ``DATA_ROOT/leftImg8bit`` + ``gtFine``.

COCO AP counts every detection: evaluate a model exported with
``mrcnn-export --min-confidence 0`` (a .pth takes ``--min-confidence 0`` here).

Writes to -o/--out: metrics.json, per_class.txt, COCO-format predictions, the
official Cityscapes result files, and --save-vis K pictures. The predictions are
written before scoring (with predictions.json): if scoring fails or is stopped,
``mrcnn-eval --from-predictions OUT --dataset ... --data-root ...`` scores them
again without inference. One run at a time writes into a folder (a second one
is refused). Reading and
molding the next images and unmolding/scoring the last ones overlap the
network call (--pipeline); a dynamic-batch model (mrcnn-export --batch dynamic)
takes any --batch up to its maximum.

Exit codes: 0 done, 4 some images could not be read (left out, listed in
metrics.json), 130 Ctrl-C / 143 SIGTERM (the images done so far are evaluated
and written, with "interrupted": true), 2 a user error.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import os
import sys
from typing import Optional, Sequence

from .. import options
from ..cli import interrupt_exit_code, run_main
from ..errors import EXIT_INPUTS_SKIPPED, UserError
from ..runtime.registry import backends

CLASS_MAPS = ("auto", "none", "coco-to-cityscapes", "shapes-to-cityscapes")

#: above this DETECTION_MIN_CONFIDENCE, COCO AP is visibly under-reported
AP_CONFIDENCE_WARNING = 0.05


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mrcnn-eval", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    options.add_model(p)
    options.add_dataset(p)
    options.add_limit(p)
    options.add_batch(p, help="images per network call (default 1; at most the model's batch, or the top of a "
                              "dynamic batch's range)")
    options.add_output(p, default="runs/eval")
    p.add_argument("--backend", choices=("auto",) + backends(), default="auto",
                   help="auto (default): from the model file's extension")
    options.add_config(p)
    options.add_min_confidence(p, help="DETECTION_MIN_CONFIDENCE for a .pth (0 for COCO AP); exported models "
                                       "keep the value they were exported with")
    p.add_argument("--class-map", choices=CLASS_MAPS, default="auto",
                   help="model classes -> dataset classes (default auto: by class names)")
    p.add_argument("--save-vis", type=options.nonnegative_int, default=0, metavar="K",
                   help="save K pictures of detections (default 0)")
    options.add_threads(p)
    options.add_distributed(p, "images")
    p.add_argument("--warmup", type=options.nonnegative_int, default=1, metavar="N",
                   help="untimed warm-up calls (default 1)")
    p.add_argument("--pipeline", type=options.nonnegative_int, default=2, metavar="N",
                   help="batches read/molded ahead and post-processed behind the network call, overlapped "
                        "with it (default 2; 0: one step after the other)")
    p.add_argument("--from-predictions", metavar="DIR_OR_FILE",
                   help="score saved predictions instead of running a model: the -o folder of an earlier run "
                        "(its predictions.json, written before scoring), or a COCO results .json")
    p.add_argument("--report", action="store_true",
                   help="also write report.html + report.md: the paper's numbers side by side, TIDE errors, "
                        "AP by size, confusion matrix, PR curves, worst false positives / missed objects "
                        "(needs the [report] extra: tidecv)")
    return p


def confidence_warning(min_confidence: float, backend: str) -> Optional[str]:
    """The warning printed when a cut-off makes COCO AP under-report, else None."""
    if min_confidence is None or min_confidence <= AP_CONFIDENCE_WARNING:
        return None
    fix = ("pass --min-confidence 0" if backend == "torch"
           else "re-export it with mrcnn-export --min-confidence 0 for evaluation")
    return (f"warning: the model drops detections scoring below {min_confidence:g} (DETECTION_MIN_CONFIDENCE); "
            f"AP is defined over all detections and comes out lower: {fix}")


def per_class_table(metrics: dict) -> str:
    """Per-class AP as people read it: percent, one decimal (metrics.json keeps fractions)."""
    rows = []
    for kind in ("bbox", "segm"):
        pc = (metrics.get(kind) or {}).get("per_class") or {}
        for name, ap in pc.items():
            rows.append(("box" if kind == "bbox" else "mask", name, _pct(ap)))
    cs = metrics.get("cityscapes") or {}
    for name, v in (cs.get("per_class") or {}).items():
        rows.append(("cityscapes", name, f"{_pct(v.get('AP')):>6}  AP50 {_pct(v.get('AP50')):>5}"))
    lines = [f"{'metric':<11} {'class':<16} AP (%)"]
    lines += [f"{k:<11} {n:<16} {v:>6}" for k, n, v in rows]
    return "\n".join(lines)


def _pct(v) -> str:
    """A fraction from metrics.json as a percentage with one decimal (``n/a`` when undefined)."""
    return "n/a" if v is None or v != v else f"{100 * v:.1f}"


def summary_line(metrics: dict) -> str:
    parts = []
    for kind, label in (("bbox", "box"), ("segm", "mask")):
        if kind in metrics:
            parts.append(f"{label} AP {_pct(metrics[kind].get('AP'))} %, AP50 {_pct(metrics[kind].get('AP50'))} %")
    if "cityscapes" in metrics:
        parts.append(f"cityscapes AP {_pct(metrics['cityscapes'].get('AP'))} %, "
                     f"AP50 {_pct(metrics['cityscapes'].get('AP50'))} %")
    lat = metrics.get("latency_ms")
    eff = metrics.get("pipeline_efficiency")
    if lat is not None:
        parts.append(f"latency p50 {lat.get('p50')} ms/call, {metrics.get('throughput_ips')} img/s end-to-end"
                     + (f" ({100 * eff:.0f} % of the network's rate)" if eff else ""))
    return " | ".join(parts)


#: the lock file of an output folder while an mrcnn-eval writes into it
LOCK_NAME = ".mrcnn-eval.lock"


@contextlib.contextmanager
def locked_output(folder: str):
    """Hold an exclusive lock on an output folder while results are written into it
    (``flock`` on ``folder/.mrcnn-eval.lock``, released even when the process is
    killed): a second mrcnn-eval into the same folder is refused with one line
    instead of both mixing their files. The lock file is removed on exit."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - no flock on this platform
        yield folder
        return
    path = os.path.join(folder, LOCK_NAME)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 32).decode(errors="replace").strip()
            os.close(fd)
            raise UserError(f"output folder {folder} is in use by another mrcnn-eval"
                            f"{f' (pid {holder})' if holder.isdigit() else ''}: wait for it to finish or "
                            f"pass another -o/--out") from None
        try:   # the file may have been removed by its previous holder between open and flock
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield folder
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
        os.close(fd)


def rescore_main(args, dataset) -> int:
    """``--from-predictions``: score saved predictions on the same ground truth, write
    metrics.json and per_class.txt to --out, print the table (no model, no inference)."""
    from ..fileio import output_folder, write_bytes_atomic, write_json_atomic
    from .evaluate import rescore

    with output_folder(args.out), locked_output(args.out):
        if args.dataset == "coco":
            from .evaluators import COCOEvaluator

            evaluator = COCOEvaluator(dataset, output_dir=args.out)
        else:
            from .cityscapes_eval import CityscapesEvaluator

            evaluator = CityscapesEvaluator(dataset, output_dir=os.path.join(args.out, "cityscapes"))
        metrics = rescore(evaluator, args.from_predictions)
        metrics.update(dataset=args.dataset, data_root=os.path.abspath(args.data_root), split=args.split)
        write_json_atomic(os.path.join(args.out, "metrics.json"), metrics)
        table = per_class_table(metrics)
        write_bytes_atomic(os.path.join(args.out, "per_class.txt"), (table + "\n").encode())
        print(table)
        print(summary_line(metrics))
        if args.report:
            from .report import write_report

            print(f"report: {write_report(args.out, dataset).html}")
    return 0


@run_main
def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    from .. import distributed

    if args.nproc > 1 and not distributed.launched():   # several processes: torchrun runs this module
        return distributed.relaunch("mrcnn_trt.eval", argv, args.nproc)
    try:
        # gloo (results travel as Python objects); a GPU model uses the rank's GPU: cuda:LOCAL_RANK
        return _main(args, distributed.init("cpu", args.dist_timeout, pin_gpu=True))
    finally:
        distributed.shutdown()


def _main(args, ctx) -> int:
    if args.model and not os.path.exists(args.model):
        raise UserError(f"model file not found: {args.model}")
    if not os.path.exists(args.data_root):
        raise UserError(f"data root not found: {args.data_root}")
    if args.from_predictions is not None and args.model is not None:
        raise UserError("--from-predictions scores saved predictions: --model is not used with it")
    if args.from_predictions is not None and ctx.enabled:
        raise UserError("--from-predictions scores in one process: run it without --nproc / torchrun")
    if args.report:
        from .error_analysis import require_tidecv

        require_tidecv()   # before the model runs
    from ..data import open_dataset
    from ..fileio import output_folder, write_bytes_atomic, write_json_atomic
    from .evaluate import evaluate
    from .evaluators import make_evaluator
    from ..runtime.registry import open_runner

    if args.image_dir and args.dataset != "coco":
        raise UserError("--images is for COCO data (Cityscapes images are read from DATA_ROOT/leftImg8bit)")
    kw = {"image_dir": args.image_dir} if args.image_dir else {}
    dataset = open_dataset(args.data_root, split=args.split, fmt=args.dataset, **kw)
    if len(dataset) == 0:
        raise UserError(f"no images in {args.data_root} (split {args.split})")
    if args.from_predictions is not None:
        return rescore_main(args, dataset)
    runner = open_runner(args.model, args.backend, threads=args.threads, config=args.config,
                         pipelined=args.pipeline > 0)
    if args.min_confidence is not None:
        if runner.backend != "torch":
            raise UserError("--min-confidence is baked into exported models: re-export with mrcnn-export "
                            f"--min-confidence {args.min_confidence:g}")
        runner.set_min_confidence(args.min_confidence)
    if runner.fixed_batch is not None and args.batch > runner.fixed_batch:
        raise UserError(f"--batch {args.batch} exceeds the model's fixed batch {runner.fixed_batch}")
    if runner.max_batch is not None and args.batch > runner.max_batch:
        raise UserError(f"--batch {args.batch} exceeds the model's dynamic batch range 1..{runner.max_batch}")
    min_conf = runner.config.DETECTION_MIN_CONFIDENCE
    warning = confidence_warning(min_conf, runner.backend)
    if warning:
        print(warning, file=sys.stderr)
    if args.model is None:
        from ..data.synthetic import is_synthetic_image

        if not is_synthetic_image(dataset.image_path(0)):
            print("note: no --model given: this is the small shipped shapes model, which only knows circles, "
                  "squares and triangles; pass real weights with --model mask_rcnn_coco.pth", file=sys.stderr)
    if ctx.enabled:   # one rank of several: evaluate a shard, rank 0 scores everything (eval/distributed.py)
        from .distributed import evaluate_sharded as evaluate  # noqa: F811
        evaluate = functools.partial(evaluate, ctx)
        if not ctx.is_main:
            done = evaluate(runner, dataset, None, batch_size=args.batch, limit=args.limit, warmup=args.warmup,
                            pipeline=args.pipeline)
            return interrupt_exit_code() if done.get("interrupted") else 0
    with output_folder(args.out), locked_output(args.out):
        evaluator = make_evaluator(args.dataset, dataset, runner.config.CLASS_NAMES, args.class_map, args.out)
        metrics = evaluate(runner, dataset, evaluator, batch_size=args.batch, limit=args.limit, out_dir=args.out,
                           save_vis=args.save_vis, warmup=args.warmup, pipeline=args.pipeline)
        metrics.update(backend=runner.backend, model=os.path.abspath(args.model) if args.model else "shipped:shapes",
                       dataset=args.dataset, data_root=os.path.abspath(args.data_root), split=args.split,
                       min_confidence=min_conf)
        write_json_atomic(os.path.join(args.out, "metrics.json"), metrics)
        table = per_class_table(metrics)
        write_bytes_atomic(os.path.join(args.out, "per_class.txt"), (table + "\n").encode())
        print(table)
        print(summary_line(metrics))
        if args.report and metrics.get("num_images"):   # still under the folder's lock
            from .report import write_report

            print(f"report: {write_report(args.out, dataset, config=runner.config).html}")
    if warning:
        print(warning, file=sys.stderr)
    if metrics.get("interrupted"):
        return interrupt_exit_code()
    if metrics.get("skipped_images"):
        print(f"error: {len(metrics['skipped_images'])} image(s) could not be read and were left out "
              f"(listed in metrics.json)", file=sys.stderr)
        return EXIT_INPUTS_SKIPPED
    return 0


if __name__ == "__main__":
    sys.exit(main())
