"""Evaluation on several processes: shard the images, gather the detections on
rank 0, score once.

    torchrun --nproc_per_node 4 -m mrcnn_trt.eval --model model.plan --dataset coco --data-root COCO/

Every rank opens the model on its own device (``cuda:LOCAL_RANK`` for
TensorRT / PyTorch on GPUs; ONNX Runtime on the CPU) and runs the ordinary
evaluation loop (:func:`mrcnn_trt.eval.evaluate.evaluate`) over its shard:
images ``r, r+W, r+2W, ...`` of the evaluated list (no padding, no repeats:
with an uneven count the first ranks take one more). A :class:`ShardCollector`
stands in for the evaluator and keeps each image's detections (masks as
run-length encodings: lossless and small). Rank 0 gathers them
(``torch.distributed.gather_object`` over gloo) and feeds the real evaluator
in the order one process would use, so ``metrics.json`` has exactly the
metrics of one process; ``distributed`` in it adds every rank's images,
throughput and latency, the sum of their throughputs and the job's
end-to-end rate (all images / the slowest rank's time).

Only rank 0 writes files (``metrics.json``, predictions, ``--save-vis``
pictures of its own shard, the report). Ctrl-C stops every rank: each hands
over what it finished and rank 0 scores that, with ``"interrupted": true``.
A rank that dies makes the others stop with one line (exit code 5).
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

import numpy as np

from ..distributed import DistContext, gather_objects
from ..runtime.batcher import select_indices
from .evaluate import evaluate
from .evaluator_base import DatasetEvaluator


def pack_result(r: Dict[str, Any]) -> Dict[str, Any]:
    """A ``detect`` dict made small for sending: {0,1} uint8 masks ``[H, W, M]``
    become COCO run-length encodings (:func:`unpack_result` restores them
    bit for bit); everything else is kept as it is."""
    out = dict(r)
    m = r.get("masks")
    if isinstance(m, np.ndarray) and m.dtype == np.uint8 and m.ndim == 3 and (m.size == 0 or m.max() <= 1):
        from pycocotools import mask as mask_util

        rles = mask_util.encode(np.asfortranarray(m)) if m.shape[2] else []
        out["masks"] = {"rle": list(rles), "shape": tuple(m.shape)}
    return out


def unpack_result(r: Dict[str, Any]) -> Dict[str, Any]:
    """The inverse of :func:`pack_result`."""
    out = dict(r)
    m = r.get("masks")
    if isinstance(m, dict) and "rle" in m:
        from pycocotools import mask as mask_util

        h, w, n = m["shape"]
        out["masks"] = (np.ascontiguousarray(mask_util.decode(m["rle"]).reshape(h, w, n), dtype=np.uint8) if n
                        else np.zeros((h, w, 0), np.uint8))
    return out


class ShardCollector(DatasetEvaluator):
    """Stands in for the evaluator on every rank: keeps ``(image_id, packed detect dict)``."""

    def __init__(self):
        self.items: List[tuple] = []

    def reset(self) -> None:
        self.items = []

    def process(self, samples, outputs) -> None:
        for image_id, r in zip(samples, outputs):
            self.items.append((image_id, pack_result(r)))

    def evaluate(self) -> dict:
        return {}


_RANK_KEYS = ("num_images", "throughput_ips", "latency_ms", "latency_per_image_ms", "pipeline_efficiency",
              "interrupted")


def evaluate_sharded(ctx: DistContext, runner, dataset, evaluator: Optional[DatasetEvaluator],
                     batch_size: int = 1, limit: Optional[int] = None, out_dir: Optional[str] = None,
                     save_vis: int = 0, warmup: int = 1, pipeline: int = 2) -> Optional[Dict]:
    """:func:`~mrcnn_trt.eval.evaluate.evaluate` as one rank of a job (same
    arguments; ``evaluator`` is used on rank 0 only, pass None elsewhere).
    Returns the metrics on rank 0, and this rank's own numbers (no AP) on the
    others."""
    collector = ShardCollector()
    local = evaluate(runner, dataset, collector, batch_size=batch_size, limit=limit,
                     out_dir=out_dir if ctx.is_main else None, save_vis=save_vis if ctx.is_main else 0,
                     warmup=warmup, pipeline=pipeline, shard=(ctx.rank, ctx.world_size))
    mine = {"rank": ctx.rank, "items": collector.items, "skipped": local["skipped_images"],
            "stats": {k: local.get(k) for k in _RANK_KEYS}}
    everyone = gather_objects(ctx, mine, "gathering the detections on rank 0")
    if not ctx.is_main:
        return mine["stats"]
    return _score(ctx, dataset, evaluator, everyone, local, limit)


def _score(ctx: DistContext, dataset, evaluator, everyone: List[dict], local: Dict, limit: Optional[int]) -> Dict:
    """Rank 0: feed the evaluator in one process's order, then merge the ranks' numbers."""
    by_id = {}
    for part in everyone:
        for image_id, packed in part["items"]:
            by_id[image_id] = packed
    evaluator.reset()
    order = [dataset.image_id(i) for i in select_indices(len(dataset), limit=limit)]
    done = 0
    for image_id in order:
        packed = by_id.pop(image_id, None)
        if packed is None:   # unreadable, or not reached before an interruption
            continue
        evaluator.process([image_id], [unpack_result(packed)])
        done += 1
    metrics: Dict = dict(evaluator.evaluate()) if done else {}
    ranks = [dict(p["stats"], rank=p["rank"]) for p in everyone]
    n = [r["num_images"] or 0 for r in ranks]
    times = [ni / r["throughput_ips"] for ni, r in zip(n, ranks) if ni and r["throughput_ips"]]
    effs = [r["pipeline_efficiency"] for r in ranks if r["pipeline_efficiency"]]
    ips_sum = round(sum(r["throughput_ips"] or 0.0 for r in ranks), 3)
    ips_job = round(sum(n) / max(times), 3) if times else 0.0
    metrics.update({
        # latency is a property of one device: rank 0's here, every rank's under "distributed"
        "latency_ms": local["latency_ms"],
        "latency_per_image_ms": local["latency_per_image_ms"],
        "throughput_ips": ips_job,
        "pipeline_efficiency": round(float(np.mean(effs)), 3) if effs else None,
        "pipeline": local["pipeline"],
        "batch": local["batch"],
        "num_images": done,
        "skipped_images": [s for p in everyone for s in p["skipped"]],
        "interrupted": any(r["interrupted"] for r in ranks),
        "distributed": {**ctx.describe(), "throughput_ips_sum": ips_sum, "throughput_ips_job": ips_job,
                        "per_rank": ranks},
    })
    return metrics
