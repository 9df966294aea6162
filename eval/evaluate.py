"""The evaluation loop shared by ``mrcnn-eval``, the quick start and benchmarks.

    runner = open_runner("model.onnx")
    metrics = evaluate(runner, dataset, evaluator, batch_size=1, out_dir="runs/eval")

One batcher feeds the runner; one unmolding (``mrcnn_trt.model.molding``)
turns raw outputs into the original ``detect`` dicts; the evaluator (reset /
process / evaluate) consumes them. Latency is measured around the network
call only (after ``warmup`` untimed calls); throughput is end to end
(loading, molding, network, unmolding, evaluator bookkeeping).

Reading/molding, the network and unmolding/evaluation run overlapped
(``pipeline``, :mod:`mrcnn_trt.runtime.pipeline`); ``pipeline_efficiency`` in the
metrics is the end-to-end throughput over the network's own rate, 1 / (mean network
time per image): the share of the wall time spent in network calls, at most 1.

Ctrl-C stops the loop: the images processed so far are evaluated and every
file is still written atomically, with ``"interrupted": true`` in metrics.json.

Scoring (:func:`score`) comes last: the evaluator first saves the predictions
(:mod:`.predictions`), so a scoring step that fails (bad ground truth found late)
or is interrupted (Ctrl-C / SIGTERM stop it at once) can be rerun without
inference: :func:`rescore`, ``mrcnn-eval --from-predictions OUT``.
"""
from __future__ import annotations

import os
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..cli import progress as progress_bar
from ..data.classmap import CITYSCAPES_LABEL_NAMES
from ..errors import UserError
from ..fileio import atomic_path
from ..runtime.batcher import ImageBatcher
from ..runtime.pipeline import run_pipelined
from ..runtime.runners import unmold_outputs
from ..visualize import draw_detections
from .predictions import find_predictions

#: what a failing scoring step may raise on bad ground truth or predictions (pycocotools
#: asserts, cityscapesscripts' errors are RuntimeErrors): one error line, not a traceback
SCORING_ERRORS = (UserError, ValueError, KeyError, TypeError, IndexError, AssertionError, RuntimeError)


def latency_stats(values_ms: Sequence[float]) -> Dict[str, float]:
    if not values_ms:
        return {"p50": None, "p90": None, "p99": None, "mean": None, "n": 0}
    a = np.asarray(values_ms, dtype=np.float64)
    return {"p50": round(float(np.percentile(a, 50)), 3), "p90": round(float(np.percentile(a, 90)), 3),
            "p99": round(float(np.percentile(a, 99)), 3), "mean": round(float(a.mean()), 3), "n": int(a.size)}


def picture_class_names(evaluator, class_names: Sequence[str]) -> List[str]:
    """The class names the ``--save-vis`` pictures show: the evaluated dataset's names where
    the evaluator maps the model's classes (a shapes model on Cityscapes data: circle ->
    person, ...), so the pictures say what the tables say; the model's own names otherwise
    (and for classes the evaluation drops)."""
    label_map = getattr(evaluator, "label_map", None)       # Cityscapes: model id -> label id
    if label_map:
        target_names = CITYSCAPES_LABEL_NAMES
    else:                                                    # COCO: model id -> category id
        label_map = getattr(evaluator, "class_map", None) or {}
        coco = getattr(evaluator, "coco", None)
        cats = getattr(coco, "cats", None) or {}
        target_names = {int(c): str(v.get("name")) for c, v in cats.items()}
    return [target_names.get(label_map[i], name) if i in label_map else name for i, name in enumerate(class_names)]


def pipeline_efficiency(latencies_ms: Sequence[float], images: int, elapsed_s: float) -> Optional[float]:
    """End-to-end images/s over the network's own rate, 1 / (mean network time per image):
    ``(images / elapsed) x (sum(latencies) / images)`` = the share of the timed wall time
    spent inside network calls. 1.0: nothing but the network on the critical path. The
    network calls run one after another within ``elapsed_s``, so it cannot exceed 1
    (a median instead of the mean could: 1.11 was seen). None without timed calls."""
    if not images or elapsed_s <= 0 or not latencies_ms:
        return None
    return round(sum(latencies_ms) / 1000.0 / elapsed_s, 3)


def evaluate(runner, dataset, evaluator, batch_size: int = 1, limit: Optional[int] = None,
             out_dir: Optional[str] = None, save_vis: int = 0, warmup: int = 1, pipeline: int = 2,
             shard: Optional[Tuple[int, int]] = None) -> Dict:
    """Run ``runner`` over the first ``limit`` images of ``dataset`` (all by default)
    and feed ``evaluator``; returns its metrics.json sections (see
    :mod:`mrcnn_trt.eval.evaluators`) with latency, throughput and counts.

    The evaluator receives image ids (it reads the ground truth itself) and the
    ``detect`` dicts in the model's class ids (it maps classes itself).

    ``pipeline`` (default 2): reading + molding of the next batches and
    unmolding + evaluator work of the previous ones overlap the network call
    (:func:`mrcnn_trt.runtime.pipeline.run_pipelined`, at most ``pipeline``
    batches queued on each side); the evaluator still sees the batches in
    order, so the metrics are those of the serial loop (``pipeline=0``).

    ``shard=(rank, world_size)``: only every ``world_size``-th of those images,
    from position ``rank`` (one rank of a job: :mod:`mrcnn_trt.eval.distributed`)."""
    evaluator.reset()
    batcher = ImageBatcher(dataset, runner.config, batch_size=batch_size, limit=limit)
    if shard is not None:
        batcher.indices = batcher.indices[shard[0]::shard[1]]
    count = batcher.num_images
    latencies: List[float] = []
    per_image_ms: List[float] = []
    state = {"done": 0, "vis": 0, "warm": not warmup}
    interrupted = False
    vis_dir = os.path.join(out_dir, "vis") if out_dir and save_vis else None
    vis_names = picture_class_names(evaluator, runner.config.CLASS_NAMES)
    if vis_dir:
        os.makedirs(vis_dir, exist_ok=True)
    bar = progress_bar(None, total=count, desc=f"eval [{runner.backend}]", unit="img")
    t_start = [time.perf_counter()]

    def network(b):
        if not state["warm"]:
            for _ in range(warmup):
                runner(b.images, b.windows)
            state["warm"] = True
            t_start[0] = time.perf_counter()
        out = runner(b.images, b.windows)
        latencies.append(runner.last_latency_ms)
        per_image_ms.append(runner.last_latency_ms / len(b.indices))
        return out

    def finish(b, out):
        results = unmold_outputs(out, b.infos)
        image_ids = [dataset.image_id(i) for i in b.indices]
        evaluator.process(image_ids, results)
        if vis_dir and state["vis"] < save_vis:
            for img, r, i in zip(b.originals, results, b.indices):
                if state["vis"] >= save_vis:
                    break
                name = os.path.splitext(os.path.basename(dataset.image_path(i)))[0] + ".png"
                with atomic_path(os.path.join(vis_dir, name)) as tmp:
                    draw_detections(img, r, vis_names).save(tmp, format="PNG")
                state["vis"] += 1
        state["done"] += len(b.indices)
        bar.update(len(b.indices))
        elapsed = time.perf_counter() - t_start[0]
        bar.set_postfix(ips=f"{state['done'] / max(elapsed, 1e-9):.2f}",
                        lat_ms=f"{latencies[-1]:.0f}" if latencies else "-")

    try:
        run_pipelined(batcher, network, finish, depth=pipeline)
    except KeyboardInterrupt:
        interrupted = True
        print(f"\ninterrupted after {state['done']} images: evaluating those", file=sys.stderr)
    finally:
        bar.close()
    elapsed = time.perf_counter() - t_start[0]
    done = state["done"]
    metrics: Dict = score(evaluator, done) if done else {}
    lat = latency_stats(per_image_ms)
    ips = round(done / elapsed, 3) if elapsed > 0 and done else 0.0
    metrics.update({
        "latency_ms": latency_stats(latencies),
        "latency_per_image_ms": lat,
        "throughput_ips": ips,
        "pipeline_efficiency": pipeline_efficiency(latencies, done, elapsed),
        "pipeline": pipeline,
        "batch": batch_size,
        "num_images": done,
        "skipped_images": batcher.skipped,
        "interrupted": interrupted,
        "AP_unit": "fraction (0.559 = 55.9 %)",
    })
    return metrics


def score(evaluator, num_images: int) -> Dict:
    """``evaluator.evaluate()``, said on stderr. The evaluator saves its predictions
    before scoring; if scoring then fails, the error is one :class:`UserError` line
    saying where they are and how to rescore them; on Ctrl-C / SIGTERM the same is
    said and the interrupt goes on (exit 130 / 143)."""
    print(f"scoring {num_images} image(s)", file=sys.stderr)
    try:
        return dict(evaluator.evaluate())
    except KeyboardInterrupt:
        saved = getattr(evaluator, "predictions_path", None)
        if saved:
            print(f"scoring stopped: the predictions are saved in {saved}; rescore them with "
                  f"mrcnn-eval --from-predictions {saved}", file=sys.stderr)
        raise
    except SCORING_ERRORS as e:
        saved = getattr(evaluator, "predictions_path", None)
        hint = (f"; the predictions are saved in {saved}: rescore them with mrcnn-eval --from-predictions {saved}"
                if saved else "")
        what = str(e) if isinstance(e, UserError) else f"{type(e).__name__}: {e}"
        raise UserError(f"scoring failed ({what}){hint}") from None


def rescore(evaluator, predictions: str) -> Dict:
    """Score saved predictions (a run's output folder, its ``predictions.json``, or a
    COCO results file: :func:`mrcnn_trt.eval.predictions.find_predictions`) with
    ``evaluator`` (a :class:`~.evaluators.COCOEvaluator` or
    :class:`~.cityscapes_eval.CityscapesEvaluator` of the same ground truth): the same
    metrics as the run that saved them, without inference."""
    kind = "cityscapes" if hasattr(evaluator, "gt_root") else "coco"
    path = find_predictions(predictions, kind)
    evaluator.load_predictions(path)
    n = len(evaluator.image_ids)
    if not n:
        raise UserError(f"{path} lists no images")
    metrics = score(evaluator, n)
    metrics.update(num_images=n, from_predictions=os.path.abspath(path))
    return metrics

