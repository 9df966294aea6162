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
import functools
import os
import sys
from dataclasses import dataclass
from typing import Dict, Optional, Sequence

from .. import options
from ..cli import interrupt_exit_code, run_main
from ..data import open_dataset
from ..data.synthetic import is_synthetic_image
from ..errors import EXIT_INPUTS_SKIPPED, UserError
from ..fileio import write_bytes_atomic, write_json_atomic
from ..runtime.registry import backends, open_runner
from ..runtime.runners import Runner
from .cityscapes_eval import CityscapesEvaluator
from .distributed import evaluate_sharded
from .error_analysis import require_tidecv
from .evaluate import evaluate, rescore
from .evaluator_base import AP_CONFIDENCE_WARNING
from .evaluators import COCOEvaluator, make_evaluator
from .report import write_report

#: --backend: auto (from the model file's extension) or a backend of the runner registry
BACKENDS = ("auto",) + backends()

CLASS_MAPS = ("auto", "none", "coco-to-cityscapes", "shapes-to-cityscapes")

#: :func:`mrcnn_trt.options.locked_output` for mrcnn-eval: a second mrcnn-eval into the same folder is refused
locked_output = functools.partial(options.locked_output, tool="mrcnn-eval")


@dataclass(frozen=True)
class RunnerOptions(options.OptionGroup):
    """``--backend``, read with the ``--model``, ``--config``, ``--threads`` and
    ``--min-confidence`` groups -> an open :class:`~mrcnn_trt.runtime.runners.Runner`
    (``open_runner``: the backend from the model file's extension by default).
    ``--config`` is passed on as written: only a .pth model reads it."""

    model: options.ModelOptions = options.ModelOptions()
    threads: options.ThreadOptions = options.ThreadOptions()
    min_confidence: options.MinConfidenceOptions = options.MinConfidenceOptions()

    def add(self, parser):
        parser.add_argument("--backend", choices=BACKENDS, default="auto",
                            help="auto (default): from the model file's extension")

    def parse(self, args, pipelined: bool = False) -> Runner:
        runner = open_runner(self.model.parse(args), args.backend, threads=self.threads.parse(args),
                             config=args.config, pipelined=pipelined)
        value = self.min_confidence.parse(args)
        if value is not None:
            if runner.backend != "torch":
                raise UserError("--min-confidence is baked into exported models: re-export with mrcnn-export "
                                f"--min-confidence {value:g}")
            runner.set_min_confidence(value)
        return runner


@dataclass(frozen=True)
class ScoringOptions(options.OptionGroup):
    """``--class-map``, ``--save-vis``: how detections are scored and shown."""

    def add(self, parser):
        parser.add_argument("--class-map", choices=CLASS_MAPS, default="auto",
                            help="model classes -> dataset classes (default auto: by class names)")
        parser.add_argument("--save-vis", type=options.nonnegative_int, default=0, metavar="K",
                            help="save K pictures of detections (default 0)")

    def parse(self, args) -> str:
        return args.class_map


@dataclass(frozen=True)
class LoopOptions(options.OptionGroup):
    """``--warmup``, ``--pipeline`` -> the keyword arguments of
    :func:`~mrcnn_trt.eval.evaluate.evaluate` that shape the timed loop."""

    def add(self, parser):
        parser.add_argument("--warmup", type=options.nonnegative_int, default=1, metavar="N",
                            help="untimed warm-up calls (default 1)")
        parser.add_argument("--pipeline", type=options.nonnegative_int, default=2, metavar="N",
                            help="batches read/molded ahead and post-processed behind the network call, "
                                 "overlapped with it (default 2; 0: one step after the other)")

    def parse(self, args) -> Dict[str, int]:
        return {"warmup": args.warmup, "pipeline": args.pipeline}


@dataclass(frozen=True)
class SourceOptions(options.OptionGroup):
    """``--from-predictions``, ``--report`` -> the saved predictions to score instead
    of running a model (None: run the model); checks that the report can be written."""

    def add(self, parser):
        parser.add_argument("--from-predictions", metavar="DIR_OR_FILE",
                            help="score saved predictions instead of running a model: the -o folder of an "
                                 "earlier run (its predictions.json, written before scoring), or a COCO results "
                                 ".json")
        parser.add_argument("--report", action="store_true",
                            help="also write report.html + report.md: the paper's numbers side by side, TIDE "
                                 "errors, AP by size, confusion matrix, PR curves, worst false positives / missed "
                                 "objects (needs the [report] extra: tidecv)")

    def parse(self, args, ctx=None) -> Optional[str]:
        if args.from_predictions is not None and args.model is not None:
            raise UserError("--from-predictions scores saved predictions: --model is not used with it")
        if args.from_predictions is not None and ctx is not None and ctx.enabled:
            raise UserError("--from-predictions scores in one process: run it without --nproc / torchrun")
        if args.report:
            require_tidecv()   # before the model runs
        return args.from_predictions


MODEL = options.ModelOptions()
DATA = options.DatasetOptions()
THREADS = options.ThreadOptions()
MIN_CONFIDENCE = options.MinConfidenceOptions(help="DETECTION_MIN_CONFIDENCE for a .pth (0 for COCO AP); exported "
                                                   "models keep the value they were exported with")
OUT = options.OutputOptions(default="runs/eval", lock="mrcnn-eval")
BATCH = options.BatchOptions(help="images per network call (default 1; at most the model's batch, or the top of a "
                                  "dynamic batch's range)")
DIST = options.DistributedOptions("images")
LOOP = LoopOptions()
SCORING = ScoringOptions()
SOURCE = SourceOptions()
RUNNER = RunnerOptions(MODEL, THREADS, MIN_CONFIDENCE)

#: mrcnn-eval's options, in the order of --help
GROUPS = (MODEL, DATA, options.LimitOptions(), BATCH, OUT, RUNNER, options.ConfigOptions(), MIN_CONFIDENCE,
          SCORING, THREADS, DIST, LOOP, SOURCE)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mrcnn-eval", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    return options.add_groups(p, *GROUPS)


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


def open_eval_dataset(spec: options.DatasetSpec):
    """The dataset of a :class:`~mrcnn_trt.options.DatasetSpec`; one line when it has no image."""
    dataset = open_dataset(spec.root, split=spec.split, fmt=spec.fmt, **spec.open_options)
    if len(dataset) == 0:
        raise UserError(f"no images in {spec.root} (split {spec.split})")
    return dataset


def check_batch(runner: Runner, batch: int) -> None:
    """``--batch`` within what the model takes (its fixed batch or dynamic range)."""
    if runner.fixed_batch is not None and batch > runner.fixed_batch:
        raise UserError(f"--batch {batch} exceeds the model's fixed batch {runner.fixed_batch}")
    if runner.max_batch is not None and batch > runner.max_batch:
        raise UserError(f"--batch {batch} exceeds the model's dynamic batch range 1..{runner.max_batch}")


def write_results(out: str, metrics: dict, report: bool, dataset, config=None) -> None:
    """metrics.json and per_class.txt into ``out``, the table and summary on stdout,
    and with ``report`` report.html + report.md (called under the folder's lock)."""
    write_json_atomic(os.path.join(out, "metrics.json"), metrics)
    table = per_class_table(metrics)
    write_bytes_atomic(os.path.join(out, "per_class.txt"), (table + "\n").encode())
    print(table)
    print(summary_line(metrics))
    if report:
        print(f"report: {write_report(out, dataset, config=config).html}")


def rescore_main(args, spec: options.DatasetSpec, dataset) -> int:
    """``--from-predictions``: score saved predictions on the same ground truth, write
    metrics.json and per_class.txt to --out, print the table (no model, no inference)."""
    with OUT.open(OUT.parse(args)) as out:
        if spec.fmt == "coco":
            evaluator = COCOEvaluator(dataset, output_dir=out)
        else:
            evaluator = CityscapesEvaluator(dataset, output_dir=os.path.join(out, "cityscapes"))
        metrics = rescore(evaluator, args.from_predictions)
        metrics.update(dataset=spec.fmt, data_root=os.path.abspath(spec.root), split=spec.split)
        write_results(out, metrics, args.report, dataset)
    return 0


@run_main
def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    # gloo (results travel as Python objects); a GPU model uses the rank's GPU: cuda:LOCAL_RANK
    return DIST.launch(args, "mrcnn_trt.eval", argv, functools.partial(_main, args), pin_gpu=True)


def _main(args, ctx) -> int:
    MODEL.parse(args)
    spec = DATA.parse(args)
    predictions = SOURCE.parse(args, ctx)
    dataset = open_eval_dataset(spec)
    if predictions is not None:
        return rescore_main(args, spec, dataset)
    loop = LOOP.parse(args)
    runner = RUNNER.parse(args, pipelined=loop["pipeline"] > 0)
    check_batch(runner, args.batch)
    min_conf = runner.config.DETECTION_MIN_CONFIDENCE
    warning = confidence_warning(min_conf, runner.backend)
    if warning:
        print(warning, file=sys.stderr)
    if args.model is None and not is_synthetic_image(dataset.image_path(0)):
        print("note: no --model given: this is the small shipped shapes model, which only knows circles, "
              "squares and triangles; pass real weights with --model mask_rcnn_coco.pth", file=sys.stderr)
    run = functools.partial(evaluate_sharded, ctx) if ctx.enabled else evaluate
    if not ctx.is_main:   # one rank of several: evaluate a shard, rank 0 scores everything (eval/distributed.py)
        done = run(runner, dataset, None, batch_size=args.batch, limit=args.limit, **loop)
        return interrupt_exit_code() if done.get("interrupted") else 0
    with OUT.open(OUT.parse(args)) as out:
        evaluator = make_evaluator(spec.fmt, dataset, runner.config.CLASS_NAMES, SCORING.parse(args), out)
        metrics = run(runner, dataset, evaluator, batch_size=args.batch, limit=args.limit, out_dir=out,
                      save_vis=args.save_vis, **loop)
        metrics.update(backend=runner.backend, model=os.path.abspath(args.model) if args.model else "shipped:shapes",
                       dataset=spec.fmt, data_root=os.path.abspath(spec.root), split=spec.split,
                       min_confidence=min_conf)
        write_results(out, metrics, args.report and bool(metrics.get("num_images")), dataset, config=runner.config)
    if warning:
        print(warning, file=sys.stderr)
    return exit_code(metrics)


def exit_code(metrics: dict) -> int:
    """130/143 for an interrupted run, 4 when images could not be read (one line), else 0."""
    if metrics.get("interrupted"):
        return interrupt_exit_code()
    if metrics.get("skipped_images"):
        print(f"error: {len(metrics['skipped_images'])} image(s) could not be read and were left out "
              f"(listed in metrics.json)", file=sys.stderr)
        return EXIT_INPUTS_SKIPPED
    return 0


if __name__ == "__main__":
    sys.exit(main())
