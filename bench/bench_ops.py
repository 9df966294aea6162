"""CPU timings of the custom-op kernels at realistic Mask R-CNN sizes (1024 input, 1 image).

Compares, with the same number of threads everywhere (default 2):
  * ``ours``      - the C++ kernels through ``mrcnn_trt.plugins.cpu`` (pybind11),
  * ``ours/ORT``  - the same kernels as ONNX Runtime custom ops (one-node session),
  * ``torch ref`` - the PyTorch reference implementations (``plugins/<op>/reference.py``),
  * ``ORT RoiAlign`` / ``ORT NMS`` - ONNX Runtime's built-in RoiAlign (one
    bilinear sample per bin, i.e. the same work as crop_and_resize; boxes
    pre-split by FPN level, one node per level) and NonMaxSuppression.

Sizes: ProposalLayer 261,888 anchors -> 6000 pre-NMS -> 1000 proposals; NMS
alone on those 6000 boxes (keep 1000); PyramidROIAlign 1000 ROIs x 256 channels
x P2..P5 of a 1024 image, 7x7 (and 100 ROIs at 14x14 for the mask head);
DetectionLayer 1000 ROIs x 81 classes.

    python bench/bench_ops.py [--threads 2] [--repeat 7]

Prints a table of median milliseconds and the ratio to ``ours``.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from mrcnn_trt.config import Config
from mrcnn_trt.model.anchors import generate_pyramid_anchors
from mrcnn_trt.plugins.detection_layer.reference import detection_layer
from mrcnn_trt.plugins.proposal_layer.reference import proposal_layer
from mrcnn_trt.plugins.pyramid_roi_align.reference import pyramid_roi_align
from mrcnn_trt.plugins.reference import apply_box_deltas, clip_boxes, nms, roi_levels
from mrcnn_trt.plugins.opdefs import DOMAIN, OP_DEFS
from mrcnn_trt.plugins import cpu
from mrcnn_trt.plugins.ort import custom_ops_available, make_session

S = 1024
STD = (0.1, 0.1, 0.2, 0.2)


def median_ms(fn, repeat: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def ordered(b):
    return np.concatenate([np.minimum(b[..., :2], b[..., 2:]), np.maximum(b[..., :2], b[..., 2:])], -1)


def realistic_rois(rng, r: int) -> np.ndarray:
    """Normalized ROIs with log-uniform sides 16..600 px (all four FPN levels used)."""
    side = np.exp(rng.uniform(np.log(16), np.log(600), (r, 2)))
    cy, cx = rng.uniform(0, S, (2, r))
    b = np.stack([cy - side[:, 0] / 2, cx - side[:, 1] / 2, cy + side[:, 0] / 2, cx + side[:, 1] / 2], 1)
    return (np.clip(b, 0, S) / S).astype(np.float32)


def one_node_session(op: str, inputs, outputs, attrs, threads: int):
    from onnx import helper

    domain = DOMAIN if op in OP_DEFS else ""
    node = helper.make_node(op, [n for n, _, _ in inputs], [n for n, _, _ in outputs], domain=domain, **attrs)
    g = helper.make_graph([node], "bench",
                          [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
                          [helper.make_tensor_value_info(n, t, s) for n, t, s in outputs])
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid("mrcnn", 1)] if domain else [])
    m = helper.make_model(g, opset_imports=opsets)
    m.ir_version = 10
    return make_session(m.SerializeToString(), threads=threads)


def bench(threads: int, repeat: int):
    from onnx import TensorProto as TP

    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    have_ort_ops = custom_ops_available()
    rows = []

    def add(op, impl, ms):
        rows.append((op, impl, ms))

    # ---------------------------------------------------------------- ProposalLayer
    anchors = generate_pyramid_anchors(Config())
    a = anchors.shape[0]
    scores = rng.random((1, a), dtype=np.float32)
    deltas = (rng.standard_normal((1, a, 4)) * 0.5).astype(np.float32)
    ts, td, ta = map(torch.from_numpy, (scores, deltas, anchors))
    op = f"ProposalLayer A={a} 6000->1000"
    add(op, "ours", median_ms(lambda: cpu.proposal_layer(ts, td, ta, 6000, 1000, 0.7, STD, S, threads=threads),
                              repeat))
    if have_ort_ops:
        sess = one_node_session("ProposalLayer", [("scores", TP.FLOAT, [1, a]), ("deltas", TP.FLOAT, [1, a, 4]),
                                                  ("anchors", TP.FLOAT, [a, 4])],
                                [("rois", TP.FLOAT, [1, 1000, 4]), ("count", TP.INT32, [1])],
                                dict(pre_nms_topk=6000, post_nms_topk=1000, nms_threshold=0.7,
                                     rpn_bbox_std_dev=list(STD), image_size=S), threads)
        add(op, "ours/ORT", median_ms(lambda: sess.run(None, dict(scores=scores, deltas=deltas, anchors=anchors)),
                                      repeat))
    add(op, "torch ref", median_ms(lambda: proposal_layer(ts, td, ta, 6000, 1000, 0.7, STD, S),
                                   max(3, repeat // 2)))
    rois, count, _ = cpu.proposal_layer(ts, td, ta, 6000, 1000, 0.7, STD, S)

    # ---------------------------------------------------------------- NMS on 6000 boxes
    order = np.argsort(-scores[0], kind="stable")[:6000]

    boxes = clip_boxes(apply_box_deltas(ta[order], td[0, order] * torch.tensor(STD)),
                       torch.tensor([0.0, 0, S, S])).contiguous()
    bscores = ts[0, order].contiguous()
    op = "NMS 6000 boxes, keep 1000"
    add(op, "ours", median_ms(lambda: cpu.nms(boxes, bscores, 0.7, 1000), repeat))
    add(op, "torch ref", median_ms(lambda: nms(boxes, bscores, 0.7, 1000), max(3, repeat // 2)))
    shifted = boxes.numpy().copy()
    shifted[:, 2:] += 1  # ORT has no +1 areas
    nms_sess = one_node_session("NonMaxSuppression", [("b", TP.FLOAT, [1, 6000, 4]), ("s", TP.FLOAT, [1, 1, 6000]),
                                                      ("m", TP.INT64, [1]), ("t", TP.FLOAT, [1])],
                                [("sel", TP.INT64, [None, 3])], dict(center_point_box=0), threads)
    nms_feed = {"b": shifted[None], "s": bscores.numpy()[None, None], "m": np.array([1000], np.int64),
                "t": np.array([0.7], np.float32)}
    add(op, "ORT NMS", median_ms(lambda: nms_sess.run(None, nms_feed), repeat))

    # ---------------------------------------------------------------- PyramidROIAlign
    c = 256
    maps = [rng.standard_normal((1, c, S // s, S // s), dtype=np.float32) for s in (4, 8, 16, 32)]
    tmaps = [torch.from_numpy(m) for m in maps]
    for r, p in ((1000, 7), (100, 14)):
        boxes_n = realistic_rois(rng, r)[None]
        tb = torch.from_numpy(boxes_n)
        op = f"PyramidROIAlign {r} ROIs x {c} ch, {p}x{p}"
        add(op, "ours", median_ms(lambda: cpu.pyramid_roi_align(tb, tmaps, p, S, threads=threads), repeat))
        if have_ort_ops:
            sess = one_node_session(
                "PyramidROIAlign",
                [("boxes", TP.FLOAT, [1, r, 4])] + [(f"P{lv}", TP.FLOAT, list(maps[lv - 2].shape)) for lv in range(2, 6)],
                [("crops", TP.FLOAT, [1, r, c, p, p])], dict(pooled_size=p, image_size=S), threads)
            feed = {"boxes": boxes_n, **{f"P{lv}": maps[lv - 2] for lv in range(2, 6)}}
            add(op, "ours/ORT", median_ms(lambda: sess.run(None, feed), repeat))
        add(op, "torch ref", median_ms(lambda: pyramid_roi_align(tb, tmaps, p, S), max(3, repeat // 2)))
        # ORT RoiAlign per level: pixel boxes (x1, y1, x2, y2) on that level's map
        levels = roi_levels(tb, S)[0].numpy()
        import onnx
        from onnx import helper

        nodes, inputs, outputs, feed = [], [], [], {}
        for lv in range(2, 6):
            sel = np.nonzero(levels == lv)[0]
            h = S >> lv
            b = boxes_n[0, sel] * (h - 1)  # corner-aligned like crop_and_resize
            feed[f"F{lv}"] = maps[lv - 2]
            feed[f"R{lv}"] = b[:, [1, 0, 3, 2]].astype(np.float32)
            feed[f"I{lv}"] = np.zeros(len(sel), np.int64)
            inputs += [helper.make_tensor_value_info(f"F{lv}", TP.FLOAT, list(maps[lv - 2].shape)),
                       helper.make_tensor_value_info(f"R{lv}", TP.FLOAT, [len(sel), 4]),
                       helper.make_tensor_value_info(f"I{lv}", TP.INT64, [len(sel)])]
            outputs.append(helper.make_tensor_value_info(f"Y{lv}", TP.FLOAT, [len(sel), c, p, p]))
            nodes.append(helper.make_node("RoiAlign", [f"F{lv}", f"R{lv}", f"I{lv}"], [f"Y{lv}"], mode="avg",
                                          output_height=p, output_width=p, sampling_ratio=1, spatial_scale=1.0,
                                          coordinate_transformation_mode="output_half_pixel"))
        m = helper.make_model(helper.make_graph(nodes, "ra", inputs, outputs),
                              opset_imports=[helper.make_opsetid("", 17)])
        m.ir_version = 10
        ra = make_session(m.SerializeToString(), threads=threads)
        add(op, "ORT RoiAlign", median_ms(lambda: ra.run(None, feed), repeat))
        del onnx

    # ---------------------------------------------------------------- DetectionLayer
    r, k = 1000, 81
    drois = rois
    probs = torch.softmax(torch.from_numpy(rng.standard_normal((1, r, k), dtype=np.float32)) * 4, -1)
    ddeltas = torch.from_numpy((rng.standard_normal((1, r, k, 4)) * 0.5).astype(np.float32))
    window = torch.tensor([[128.0, 0.0, 896.0, 1024.0]])
    dcount = count
    args = (k, 0.7, 0.3, 100, STD, S)
    op = f"DetectionLayer {r} ROIs x {k} classes"
    add(op, "ours", median_ms(lambda: cpu.detection_layer(drois, dcount, probs, ddeltas, window, *args,
                                                          threads=threads), repeat))
    if have_ort_ops:
        sess = one_node_session(
            "DetectionLayer",
            [("rois", TP.FLOAT, [1, r, 4]), ("roi_count", TP.INT32, [1]), ("probs", TP.FLOAT, [1, r, k]),
             ("deltas", TP.FLOAT, [1, r, k, 4]), ("window", TP.FLOAT, [1, 4])],
            [("dets", TP.FLOAT, [1, 100, 6]), ("count", TP.INT32, [1])],
            dict(num_classes=k, min_confidence=0.7, nms_threshold=0.3, max_instances=100, bbox_std_dev=list(STD),
                 image_size=S), threads)
        feed = dict(rois=drois.numpy(), roi_count=dcount.numpy(), probs=probs.numpy(), deltas=ddeltas.numpy(),
                    window=window.numpy())
        add(op, "ours/ORT", median_ms(lambda: sess.run(None, feed), repeat))
    add(op, "torch ref", median_ms(lambda: detection_layer(drois, dcount, probs, ddeltas, window, *args),
                                   repeat))
    return rows


def table(rows) -> str:
    ours = {op: ms for op, impl, ms in rows if impl == "ours"}
    w = max(len(op) for op, _, _ in rows)
    lines = [f"| {'op'.ljust(w)} | {'impl':<12} | {'median ms':>10} | {'x ours':>7} |",
             f"|{'-' * (w + 2)}|{'-' * 14}|{'-' * 12}|{'-' * 9}|"]
    for op, impl, ms in rows:
        lines.append(f"| {op.ljust(w)} | {impl:<12} | {ms:>10.2f} | {ms / ours[op]:>7.2f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args(argv)
    rows = bench(args.threads, args.repeat)
    print(f"threads={args.threads}, median of {args.repeat} runs (torch ref: fewer when slow)")
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
