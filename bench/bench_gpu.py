"""Timings of the PyTorch path on one device (a GPU, or the CPU): our operators and model
against the PyTorch references and torchvision's equivalents, warm-up excluded, medians.

Ops (1 image at 1024 unless --batch; 8 images for the batched ProposalLayer row):

* PyramidROIAlign: 1000 ROIs x 256 channels, 7x7 (box head) and 100 ROIs at 14x14 (mask
  head) from P2..P5 - ours (``torch.ops.mrcnn.pyramid_roi_align``), the reference
  (plugins/<op>/reference.py) and torchvision's ``MultiScaleRoIAlign`` (same FPN level rule) with
  sampling_ratio 1 (one bilinear sample per bin: the work of crop_and_resize) and 2
  (its default, 4 samples per bin);
* ProposalLayer: 261,888 anchors -> 6000 -> NMS -> 1000 - ours, the reference, and the
  torchvision way (topk, decode, clip, ``batched_nms`` over the images, keep 1000);
* DetectionLayer: 1000 ROIs x 81 classes - ours, the reference, and torchvision's
  ``RoIHeads.postprocess_detections`` logic (every class decoded, its default score
  threshold 0.05, ``batched_nms`` over classes, top 100: more work by design, the same role).

End to end: R-101 Mask R-CNN at 1024 (random weights, minimum confidence 0 and per-class
NMS threshold 1.0, so 100 detections as torchvision's), batch 1 and 8, float32 and float16 autocast: ours (native ops; the
reference ops at batch 1 float32) vs torchvision ``maskrcnn_resnet50_fpn`` (random
weights, min/max size 1024, score threshold 0, 100 detections), the same image; the
network call only (torchvision: transform + backbone + RPN + ROI heads, without pasting
masks into the image; ours: the molded batch to 28x28 masks). Peak GPU memory per row.

Timing: CUDA events on a GPU (synchronized); on the CPU ``time.perf_counter`` and the
process's CPU time (``time.process_time``, all threads; the CPU "vs ours" op ratios use
it). The end-to-end rows of one batch/precision are timed round robin, so that a change in
a shared machine's load hits them alike.

    python bench/bench_gpu.py --device cuda --out bench.json [--markdown bench.md]
    python bench/bench_gpu.py --device cpu --threads 2          # CPU numbers
    python bench/bench_gpu.py --device cpu --quick              # smoke test (CI: tools/gpu_check.sh --dry-run)

torchvision is optional: without it those rows say why they are missing.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections import OrderedDict
from typing import Callable, Dict, List, Optional

import numpy as np
import torch

from mrcnn_trt.config import preset
from mrcnn_trt.model import build_model
from mrcnn_trt.model.anchors import generate_pyramid_anchors
from mrcnn_trt.model.backends import make_ops
from mrcnn_trt.model.molding import mold_batch
from mrcnn_trt.plugins import cuda
from mrcnn_trt.plugins.detection_layer.reference import detection_layer
from mrcnn_trt.plugins.proposal_layer.reference import proposal_layer
from mrcnn_trt.plugins.pyramid_roi_align.reference import pyramid_roi_align

STD = [0.1, 0.1, 0.2, 0.2]


# --------------------------------------------------------------------------- timing
def timer(device: str, repeat: int, warmup: int = 2) -> Callable[[Callable], Dict[str, float]]:
    def run(fn) -> Dict[str, float]:
        for _ in range(warmup):
            fn()
        times = []
        if device.startswith("cuda"):
            torch.cuda.synchronize()
            for _ in range(repeat):
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                fn()
                end.record()
                torch.cuda.synchronize()
                times.append(start.elapsed_time(end))
        else:   # wall time, and the process's CPU time (robust when other jobs share the cores)
            cpu = []
            for _ in range(repeat):
                t0, c0 = time.perf_counter(), time.process_time()
                fn()
                times.append((time.perf_counter() - t0) * 1e3)
                cpu.append((time.process_time() - c0) * 1e3)
            return {"ms": statistics.median(times), "min_ms": min(times), "cpu_ms": statistics.median(cpu),
                    "runs": len(times)}
        return {"ms": statistics.median(times), "min_ms": min(times), "runs": len(times)}

    return run


def interleaved(device: str, fns: List[Callable], repeats: List[int], warmup: int) -> List[Dict[str, float]]:
    """Time several callables round robin (one call of each per round, `repeats[i]` rounds for
    the i-th), so that a change in the machine's load hits them alike; medians per callable."""
    one = timer(device, 1, warmup=0)
    for fn in fns:
        for _ in range(warmup):
            fn()
    runs: List[List[Dict[str, float]]] = [[] for _ in fns]
    for r in range(max(repeats)):
        for i, fn in enumerate(fns):
            if r < repeats[i]:
                runs[i].append(one(fn))
    out = []
    for rs in runs:
        res = {"ms": statistics.median(x["ms"] for x in rs), "min_ms": min(x["ms"] for x in rs), "runs": len(rs)}
        if "cpu_ms" in rs[0]:
            res["cpu_ms"] = statistics.median(x["cpu_ms"] for x in rs)
        out.append(res)
    return out


def peak_memory(device: str, fn) -> Optional[float]:
    """Peak allocated GPU memory (MiB) of one call."""
    if not device.startswith("cuda"):
        return None
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() / 2 ** 20


def torchvision_or_reason():
    try:
        import torchvision  # noqa: F401
        from torchvision.ops import batched_nms  # noqa: F401

        return torchvision, None
    except Exception as e:  # ImportError, or a torchvision built for another torch
        return None, f"torchvision not importable ({type(e).__name__}: {str(e).splitlines()[0][:120]})"


# --------------------------------------------------------------------------- op inputs
def realistic_rois(g: torch.Generator, n: int, r: int, s: int) -> torch.Tensor:
    """Normalized ROIs [n, r, 4] with log-uniform sides 16..600 px (every FPN level used)."""
    side = torch.exp(torch.empty(n, r, 2).uniform_(np.log(16), np.log(600), generator=g)) * (s / 1024)
    c = torch.rand(n, r, 2, generator=g) * s
    b = torch.cat([c - side / 2, c + side / 2], -1)            # (y1, x1, y2, x2)
    return (b.clamp(0, s) / s).contiguous()


def bench_ops(device: str, s: int, r: int, c: int, pre_nms: int, repeat: int, tv, tv_reason) -> List[dict]:
    run = timer(device, repeat, warmup=2 if repeat > 1 else 1)
    slow = timer(device, max(1, repeat // 3), warmup=1)
    rows: List[dict] = []
    g = torch.Generator().manual_seed(0)

    def add(op, impl, res, note=""):
        rows.append({"op": op, "impl": impl, **res, "note": note})

    # PyramidROIAlign
    maps = [torch.randn(1, c, s >> k, s >> k, generator=g).to(device) for k in (2, 3, 4, 5)]
    for name, rr, p in (("PyramidROIAlign 7x7", r, 7), ("PyramidROIAlign 14x14 (mask)", min(100, r), 14)):
        boxes = realistic_rois(g, 1, rr, s).to(device)
        add(name, "ours", run(lambda: torch.ops.mrcnn.pyramid_roi_align(boxes, *maps, p, s, 224.0, 4)))
        if device.startswith("cuda"):
            half = [m.half() for m in maps]
            add(name, "ours fp16 maps", run(lambda: torch.ops.mrcnn.pyramid_roi_align(boxes, *half, p, s, 224.0, 4)))
        add(name, "reference", slow(lambda: pyramid_roi_align(boxes, maps, p, s, 224.0, 4)))
        if tv is not None:
            from torchvision.ops import MultiScaleRoIAlign

            feats = OrderedDict((f"p{k}", m) for k, m in zip((2, 3, 4, 5), maps))
            pix = [boxes[0][:, [1, 0, 3, 2]] * s]           # (x1, y1, x2, y2) pixels
            for sr in (1, 2):
                msra = MultiScaleRoIAlign(list(feats), p, sampling_ratio=sr, canonical_scale=224, canonical_level=4)
                add(name, f"torchvision MultiScaleRoIAlign (sampling_ratio {sr})",
                    run(lambda: msra(feats, pix, [(s, s)])))
        else:
            add(name, "torchvision MultiScaleRoIAlign", {"ms": None}, tv_reason)

    # ProposalLayer
    cfg = preset("coco").replace(IMAGE_MIN_DIM=s, IMAGE_MAX_DIM=s)
    anchors = torch.from_numpy(generate_pyramid_anchors(cfg)).to(device)
    a = anchors.shape[0]
    pre, post = min(pre_nms, a), min(1000, r)
    for n in (1, 8):
        scores = torch.rand(n, a, generator=g).to(device)
        deltas = (torch.randn(n, a, 4, generator=g) * 0.5).to(device)
        name = f"ProposalLayer N={n} (A={a}, {pre} -> NMS -> {post})"
        add(name, "ours", run(lambda: torch.ops.mrcnn.proposal_layer(scores, deltas, anchors, pre, post, 0.7, STD, s)))
        if n == 1:
            add(name, "reference", slow(lambda: proposal_layer(scores, deltas, anchors, pre, post, 0.7, STD, s)))
        if tv is not None:
            add(name, "torchvision way (topk, decode, batched_nms)",
                run(lambda: tv_proposals(scores, deltas, anchors, pre, post, 0.7, s)))
        else:
            add(name, "torchvision way (topk, decode, batched_nms)", {"ms": None}, tv_reason)

    # DetectionLayer
    k = 81
    rois = realistic_rois(g, 1, r, s).to(device)
    count = torch.tensor([r], dtype=torch.int32, device=device)
    probs = torch.softmax(torch.randn(1, r, k, generator=g) * 3, -1).to(device)
    deltas = (torch.randn(1, r, k, 4, generator=g) * 0.3).to(device)
    window = torch.tensor([[0.0, 0.0, s, s]], device=device)
    name = f"DetectionLayer ({r} ROIs x {k} classes)"
    add(name, "ours", run(lambda: torch.ops.mrcnn.detection_layer(rois, count, probs, deltas, window, k, 0.0, 0.3,
                                                                   100, STD, s)))
    add(name, "reference", slow(lambda: detection_layer(rois, count, probs, deltas, window, k, 0.0, 0.3, 100,
                                                            STD, s)))
    if tv is not None:
        add(name, "torchvision postprocess_detections logic", run(lambda: tv_detections(rois[0], probs[0], deltas[0], s)),
            "every class decoded, score > 0.05")
    else:
        add(name, "torchvision postprocess_detections logic", {"ms": None}, tv_reason)

    for row in rows:   # ratio to ours (>1: ours is faster); on the CPU by CPU time
        key = "cpu_ms" if "cpu_ms" in row else "ms"
        ours = next((x.get(key) for x in rows if x["op"] == row["op"] and x["impl"] == "ours"), None)
        row["vs_ours"] = None if not ours or row.get(key) is None else row[key] / ours
    return rows


def decode(boxes, deltas):
    h, w = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    cy, cx = boxes[:, 0] + 0.5 * h, boxes[:, 1] + 0.5 * w
    cy, cx = cy + deltas[:, 0] * h, cx + deltas[:, 1] * w
    h, w = h * torch.exp(deltas[:, 2]), w * torch.exp(deltas[:, 3])
    return torch.stack([cy - 0.5 * h, cx - 0.5 * w, cy + 0.5 * h, cx + 0.5 * w], 1)


def tv_proposals(scores, deltas, anchors, pre, post, thr, s):
    """torchvision's RPN filtering: top pre per image, decode, clip, batched_nms, keep post."""
    from torchvision.ops import batched_nms

    n = scores.shape[0]
    top, idx = scores.topk(pre, dim=1)
    std = torch.tensor(STD, device=scores.device)
    b = decode(anchors[idx.reshape(-1)], deltas.gather(1, idx[..., None].expand(-1, -1, 4)).reshape(-1, 4) * std)
    b = b.clamp(0, s)[:, [1, 0, 3, 2]]
    img = torch.arange(n, device=scores.device).repeat_interleave(pre)
    keep = batched_nms(b, top.reshape(-1), img, thr)
    return [keep[img[keep] == i][:post] for i in range(n)]


def tv_detections(rois, probs, deltas, s, score_thresh=0.05, thr=0.3, detections=100):
    """torchvision RoIHeads.postprocess_detections: every foreground class decoded, its default
    score threshold 0.05, NMS per class (batched_nms), top 100."""
    from torchvision.ops import batched_nms

    r, k = probs.shape
    std = torch.tensor(STD, device=rois.device)
    b = decode(rois.repeat_interleave(k, 0) * s, (deltas * std).reshape(-1, 4)).reshape(r, k, 4).clamp(0, s)
    labels = torch.arange(k, device=rois.device).expand(r, k)
    b, sc, lb = b[:, 1:].reshape(-1, 4), probs[:, 1:].reshape(-1), labels[:, 1:].reshape(-1)
    keep = torch.where(sc > score_thresh)[0]
    b, sc, lb = b[keep], sc[keep], lb[keep]
    keep = batched_nms(b[:, [1, 0, 3, 2]], sc, lb, thr)[:detections]
    return b[keep], sc[keep], lb[keep]


# --------------------------------------------------------------------------- end to end
def bench_e2e(device: str, cfg, batches, repeat: int, tv, tv_reason, reference: bool) -> List[dict]:
    rows: List[dict] = []
    s = cfg.IMAGE_MAX_DIM
    ops = {b: make_ops(cfg, b) for b in ("native", "torch")}
    arch = {"resnet101": "R-101", "resnet50": "R-50"}.get(cfg.BACKBONE, cfg.NAME)
    image = np.random.default_rng(3).integers(0, 256, (s * 3 // 4, s, 3), dtype=np.uint8)   # random weights: any image
    torch.manual_seed(0)
    ours = build_model(cfg).eval().to(device)
    precisions = ["fp32", "fp16 autocast"] if device.startswith("cuda") else ["fp32"]
    tvm = None
    if tv is not None:
        tvm = tv.models.detection.maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=91,
                                                        min_size=s, max_size=s, box_score_thresh=0.0,
                                                        box_detections_per_img=100).eval().to(device)
    for n in batches:
        batch, windows, _ = mold_batch([image] * n, cfg)
        x = torch.from_numpy(batch).to(device)
        w = torch.from_numpy(windows).to(device)
        tv_in = [torch.from_numpy(image).permute(2, 0, 1).float().div(255).to(device) for _ in range(n)]
        reps = repeat if n == 1 else max(1, repeat // 2)
        for prec in precisions:
            def call(fn, backend=None):
                def go():
                    if backend:
                        ours.ops = ops[backend]
                    with torch.no_grad():
                        if prec == "fp32":
                            return fn()
                        with torch.autocast("cuda", dtype=torch.float16):
                            return fn()
                return go

            # (label, callable, repeats, detections of one call)
            entries = [(f"ours (native ops) {arch}", call(lambda: ours(x, w), "native"), reps)]
            if reference and n == 1 and prec == "fp32":
                entries.append((f"ours (reference ops) {arch}", call(lambda: ours(x, w), "torch"),
                                max(1, reps // 3)))
            if tvm is not None:
                entries.append(("torchvision maskrcnn_resnet50_fpn", call(lambda: tv_network(tvm, tv_in)), reps))
            results = interleaved(device, [e[1] for e in entries], [e[2] for e in entries],
                                  warmup=2 if repeat > 1 else 1)
            for (label, f, _), res in zip(entries, results):
                out = f()
                dets = int(out[1].sum()) if label.startswith("ours") else sum(len(d["boxes"]) for d in out)
                rows.append({"model": label, "batch": n, "precision": prec, **res, "ms_per_image": res["ms"] / n,
                             "detections": dets, "peak_mib": peak_memory(device, f)})
            if tvm is None:
                rows.append({"model": "torchvision maskrcnn_resnet50_fpn", "batch": n, "precision": prec,
                             "ms": None, "note": tv_reason})
            ours.ops = ops["native"]
    return rows


def tv_network(model, images):
    """torchvision Mask R-CNN without pasting masks into the image (transform.postprocess)."""
    il, _ = model.transform(images)
    feats = model.backbone(il.tensors)
    props, _ = model.rpn(il, feats)
    dets, _ = model.roi_heads(feats, props, il.image_sizes)
    return dets


# --------------------------------------------------------------------------- report
def environment(device: str) -> dict:
    env = {"python": platform.python_version(), "torch": torch.__version__, "device": device,
           "threads": torch.get_num_threads(), "machine": platform.machine()}
    tv, reason = torchvision_or_reason()
    env["torchvision"] = tv.__version__ if tv is not None else reason
    if device.startswith("cuda"):
        p = torch.cuda.get_device_properties(device)
        env.update(gpu=p.name, capability=f"{p.major}.{p.minor}", gpu_memory_gib=round(p.total_memory / 2 ** 30, 1),
                   cuda_runtime=torch.version.cuda, cudnn=torch.backends.cudnn.version())
        try:
            info = cuda.info()
            env["cuda_ops_library"] = {"archs": info["archs"], "cuda_runtime_version": info["cuda_runtime_version"]}
        except Exception as e:  # reported, the rows say the rest
            env["cuda_ops_library"] = str(e)
    return env


def fmt(v, digits=2):
    return "—" if v is None else f"{v:.{digits}f}"


def markdown(result: dict) -> str:
    env = result["environment"]
    cpu = env["device"] == "cpu"
    lines = [f"Device: {env.get('gpu', 'CPU')} ({env['device']}), torch {env['torch']}, torchvision "
             f"{env['torchvision']}, {env['threads']} threads" + (" — quick mode" if result["quick"] else ""), "",
             "| op | implementation | median ms | " + ("CPU-time ms | vs ours (CPU time) |" if cpu else "vs ours |"),
             "|---|---|---|---|" + ("---|" if cpu else "")]
    for r in result["ops"]:
        ratio = fmt(r.get("vs_ours")) + "x" if r.get("vs_ours") else (r.get("note") or "—")
        lines.append(f"| {r['op']} | {r['impl']} | {fmt(r['ms'], 3)} | "
                     + (f"{fmt(r.get('cpu_ms'), 3)} | " if cpu else "") + f"{ratio} |")
    lines += ["", "| model | batch | precision | ms / batch | ms / image | "
              + ("CPU-time ms / image | " if cpu else "") + "detections | peak MiB |",
              "|---|---|---|---|---|---|---|" + ("---|" if cpu else "")]
    for r in result["e2e"]:
        cpu_img = fmt(r["cpu_ms"] / r["batch"], 1) if r.get("cpu_ms") else "—"
        lines.append(f"| {r['model']} | {r['batch']} | {r['precision']} | {fmt(r['ms'], 1)} | "
                     f"{fmt(r.get('ms_per_image'), 1)} | " + (f"{cpu_img} | " if cpu else "")
                     + f"{r.get('detections', '—')} | "
                     f"{fmt(r.get('peak_mib'), 0) if r.get('peak_mib') else (r.get('note') or '—')} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--quick", action="store_true", help="small sizes, few runs (a smoke test)")
    ap.add_argument("--no-reference", action="store_true", help="skip the reference-ops end-to-end row")
    ap.add_argument("--out", help="write the results as JSON")
    ap.add_argument("--markdown", help="write the tables as Markdown")
    args = ap.parse_args(argv)
    import mrcnn_trt.plugins.torch_ops  # noqa: F401  (torch.ops.mrcnn.*)

    torch.set_num_threads(args.threads)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    tv, reason = torchvision_or_reason()
    from mrcnn_trt.config import preset

    if args.quick:   # the tiny test model (128 px), small op sizes
        s, r, c, pre, repeat, batches = 128, 100, 16, 1000, 1, (1, 2)
        cfg = preset("tiny").replace(DETECTION_NMS_THRESHOLD=1.0)
    else:
        s, r, c, pre, repeat, batches = 1024, 1000, 256, 6000, args.repeat, (1, 8)
        # R-101, 1024, minimum confidence 0 and per-class NMS threshold 1.0: with random weights
        # 100 detections survive, as in torchvision with score threshold 0 (same mask-head work)
        cfg = preset("coco-eval").replace(DETECTION_NMS_THRESHOLD=1.0)
    t0 = time.time()
    result = {"environment": environment(args.device), "quick": args.quick,
              "sizes": {"image": s, "rois": r, "channels": c, "pre_nms": pre, "batches": list(batches),
                        "model": cfg.NAME}}
    result["ops"] = bench_ops(args.device, s, r, c, pre, repeat, tv, reason)
    result["e2e"] = bench_e2e(args.device, cfg, batches, repeat, tv, reason, reference=not args.no_reference)
    result["seconds"] = round(time.time() - t0, 1)
    md = markdown(result)
    print(md)
    if args.out:
        with open(args.out + ".tmp", "w") as f:
            json.dump(result, f, indent=1)
        os.replace(args.out + ".tmp", args.out)
    if args.markdown:
        with open(args.markdown + ".tmp", "w") as f:
            f.write(md)
        os.replace(args.markdown + ".tmp", args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
