"""The three custom ops: names, ONNX domain/version and attributes, declared once.

This table is the contract between the exporter (node attributes), the ONNX
Runtime CPU custom-op library, and the TensorRT plugin creators (plugin name,
version, fields). The C++ side declares the same fields in
``plugins/common/op_params.h``; ``tests/test_opdefs.py`` checks the two agree.

Conventions (all ops):
  * boxes are (y1, x1, y2, x2); "normalized" = pixels / IMAGE_SIZE (not / (S-1));
  * counts are int32, one per image; rows past the count are zero;
  * NMS uses the legacy +1 area convention and suppresses when IoU > threshold.

PyramidROIAlign
  inputs : boxes [N,R,4] normalized; P2 [N,C,H/4,W/4], P3, P4, P5 (same C)
  output : crops [N,R,C,P,P]  (P = pooled_size), same dtype as P2
  level  = clamp(round(k0 + log2(sqrt(h*w) * image_size / canonical_size)), 2, 5)
           (h, w normalized; round half to even; non-finite -> level 2)
  sample = TF crop_and_resize, bilinear, corner aligned, extrapolation 0

ProposalLayer
  inputs : scores [N,A] (foreground prob), deltas [N,A,4], anchors [A,4] pixels
  outputs: rois [N,post_nms_topk,4] normalized, count [N] int32
  steps  : stable descending sort, keep min(pre_nms_topk, A); deltas *= std;
           decode in pixels; clip to [0, image_size]; NMS(nms_threshold);
           keep first post_nms_topk; divide by image_size

DetectionLayer
  inputs : rois [N,R,4] normalized, roi_count [N] int32, probs [N,R,K],
           deltas [N,R,K,4], window [N,4] pixels (y1,x1,y2,x2) of the image in
           the padded input
  outputs: detections [N,max_instances,6] (y1,x1,y2,x2 pixels, class, score),
           count [N] int32
  steps  : class = argmax(probs) (first max), score = probs[class]; deltas of
           that class * std; decode on the normalized roi; * image_size; clip
           to window; round half to even; keep class > 0 and (score >=
           min_confidence if min_confidence > 0); per class (ascending):
           stable sort by score desc, NMS(nms_threshold); union; top
           max_instances by score (stable, descending)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Tuple

DOMAIN = "mrcnn"          # ONNX node domain; TensorRT plugin namespace is ""
OP_VERSION = 1            # ONNX op set version of DOMAIN; TensorRT plugin version "1"


@dataclass(frozen=True)
class Attr:
    name: str
    type: str          # "int" | "float" | "floats"
    default: Any
    doc: str
    min: float | None = None
    max: float | None = None
    length: int | None = None   # for "floats"


OPS: Dict[str, Tuple[Attr, ...]] = {
    "PyramidROIAlign": (
        Attr("pooled_size", "int", 7, "output crop size P (7 box head, 14 mask head)", min=2, max=64),
        Attr("image_size", "int", 1024, "side of the padded square network input in pixels", min=64, max=8192),
        Attr("canonical_size", "float", 224.0, "ROI side (pixels) that maps to canonical_level", min=1.0, max=8192.0),
        Attr("canonical_level", "int", 4, "FPN level k0 of a canonical_size ROI", min=2, max=5),
    ),
    "ProposalLayer": (
        Attr("pre_nms_topk", "int", 6000, "boxes kept by score before NMS (min with A)", min=1, max=1 << 20),
        Attr("post_nms_topk", "int", 1000, "proposals kept after NMS (output rows)", min=1, max=1 << 16),
        Attr("nms_threshold", "float", 0.7, "IoU above which a box is suppressed", min=0.0, max=1.0),
        Attr("rpn_bbox_std_dev", "floats", (0.1, 0.1, 0.2, 0.2), "delta scale (dy, dx, dh, dw)", length=4),
        Attr("image_size", "int", 1024, "clip range and normalizer (pixels)", min=64, max=8192),
    ),
    "DetectionLayer": (
        Attr("num_classes", "int", 81, "classes including background (K)", min=2, max=4096),
        Attr("min_confidence", "float", 0.7, "minimum score; 0 turns the filter off", min=0.0, max=1.0),
        Attr("nms_threshold", "float", 0.3, "per-class NMS IoU threshold", min=0.0, max=1.0),
        Attr("max_instances", "int", 100, "detections kept (output rows)", min=1, max=1 << 16),
        Attr("bbox_std_dev", "floats", (0.1, 0.1, 0.2, 0.2), "delta scale (dy, dx, dh, dw)", length=4),
        Attr("image_size", "int", 1024, "normalized -> pixel factor", min=64, max=8192),
    ),
}


def validate_attrs(op: str, attrs: Dict[str, Any]) -> Dict[str, Any]:
    """Fill defaults, check types and ranges; return the complete attribute dict.

    Raises ValueError naming the op, attribute and allowed range.
    """
    if op not in OPS:
        raise ValueError(f"unknown op {op!r}; known: {', '.join(OPS)}")
    out: Dict[str, Any] = {}
    known = {a.name for a in OPS[op]}
    extra = sorted(set(attrs) - known)
    if extra:
        raise ValueError(f"{op}: unknown attribute(s) {', '.join(extra)}")
    for a in OPS[op]:
        v = attrs.get(a.name, a.default)
        if a.type == "int":
            if isinstance(v, bool) or not isinstance(v, (int,)) and not (hasattr(v, "__int__") and float(v) == int(v)):
                raise ValueError(f"{op}.{a.name} must be an int, got {v!r}")
            v = int(v)
        elif a.type == "float":
            v = float(v)
        elif a.type == "floats":
            v = tuple(float(x) for x in v)
            if a.length is not None and len(v) != a.length:
                raise ValueError(f"{op}.{a.name} needs {a.length} values, got {len(v)}")
        if a.type in ("int", "float"):
            if (a.min is not None and v < a.min) or (a.max is not None and v > a.max):
                raise ValueError(f"{op}.{a.name} = {v} is out of range [{a.min}, {a.max}]")
        out[a.name] = v
    return out


def attrs_from_config(cfg, op: str, *, pooled_size: int | None = None, training: bool = False) -> Dict[str, Any]:
    """Attributes of ``op`` for a :class:`mrcnn_trt.config.Config`."""
    S = cfg.IMAGE_MAX_DIM
    if op == "PyramidROIAlign":
        d = dict(pooled_size=pooled_size or cfg.POOL_SIZE, image_size=S,
                 canonical_size=float(cfg.ROI_CANONICAL_SIZE), canonical_level=cfg.ROI_CANONICAL_LEVEL)
    elif op == "ProposalLayer":
        d = dict(pre_nms_topk=cfg.PRE_NMS_LIMIT,
                 post_nms_topk=cfg.POST_NMS_ROIS_TRAINING if training else cfg.POST_NMS_ROIS_INFERENCE,
                 nms_threshold=float(cfg.RPN_NMS_THRESHOLD), rpn_bbox_std_dev=tuple(cfg.RPN_BBOX_STD_DEV),
                 image_size=S)
    elif op == "DetectionLayer":
        # The original refines final boxes with RPN_BBOX_STD_DEV (spec §3.7; equal values).
        d = dict(num_classes=cfg.NUM_CLASSES, min_confidence=float(cfg.DETECTION_MIN_CONFIDENCE),
                 nms_threshold=float(cfg.DETECTION_NMS_THRESHOLD), max_instances=cfg.DETECTION_MAX_INSTANCES,
                 bbox_std_dev=tuple(cfg.RPN_BBOX_STD_DEV), image_size=S)
    else:
        raise ValueError(op)
    return validate_attrs(op, d)


def markdown_table() -> str:
    """The attribute tables (used in plugins/README.md)."""
    lines = []
    for op, attrs in OPS.items():
        lines += [f"### {op} (domain `{DOMAIN}`, version {OP_VERSION})", "",
                  "| name | type | default | range | meaning |", "|---|---|---|---|---|"]
        for a in attrs:
            rng = f"{a.length} values" if a.type == "floats" else f"[{a.min}, {a.max}]"
            lines.append(f"| `{a.name}` | {a.type} | {a.default} | {rng} | {a.doc} |")
        lines.append("")
    return "\n".join(lines)
