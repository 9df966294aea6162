"""The published numbers the report compares with (the Mask R-CNN paper, the lab's
README), the comparison of ours with them, and the number formats of the report
(percent, one decimal).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Optional, Tuple

from ..evaluator_base import AP_CONFIDENCE_WARNING

PAPER = "He, Gkioxari, Dollár, Girshick: Mask R-CNN (ICCV 2017, arXiv 1703.06870)"
LAB = "the lab repository's README (multimodallearning/pytorch-mask-rcnn)"
CITYSCAPES_CLASSES = ("person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle")


# ----------------------------------------------------------------------------- reference numbers
@dataclass(frozen=True)
class Reference:
    """Published numbers (percent) of one model: ``values`` by metric name, each measured on
    ``split`` except the metrics in ``other_splits`` (metric -> split)."""

    label: str
    source: str
    split: str
    values: Mapping[str, float]
    other_splits: Mapping[str, str] = field(default_factory=dict)

    def split_of(self, metric: str) -> str:
        return self.other_splits.get(metric, self.split)


#: Mask R-CNN paper, Table 7 (Cityscapes, R-50-FPN): per-class mask AP and AP50 on the test set, AP on val
CITYSCAPES_REFERENCES = (
    Reference("paper: fine only", f"{PAPER}, Table 7, ResNet-50-FPN trained on Cityscapes fine", "test",
              {"AP[val]": 31.5, "AP": 26.2, "AP50": 49.9, "person": 30.5, "rider": 23.7, "car": 46.9,
               "truck": 22.8, "bus": 32.2, "train": 18.6, "motorcycle": 19.1, "bicycle": 16.0},
              {"AP[val]": "val"}),
    Reference("paper: fine + COCO", f"{PAPER}, Table 7, ResNet-50-FPN initialised from COCO, fine-tuned on "
              "Cityscapes fine", "test",
              {"AP[val]": 36.4, "AP": 32.0, "AP50": 58.1, "person": 34.8, "rider": 27.0, "car": 49.1,
               "truck": 30.1, "bus": 40.9, "train": 30.9, "motorcycle": 24.1, "bicycle": 18.7},
              {"AP[val]": "val"}),
)
#: COCO: the paper's ResNet-101-FPN (mask: Table 1, box: Table 3, test-dev) and the lab's converted weights
COCO_REFERENCES = (
    Reference("paper: R-101-FPN", f"{PAPER}, Table 1 (mask) and Table 3 (box), ResNet-101-FPN", "COCO test-dev",
              {"segm AP": 35.7, "segm AP50": 58.0, "segm AP75": 37.8, "segm APs": 15.5, "segm APm": 38.1,
               "segm APl": 52.4, "bbox AP": 38.2, "bbox AP50": 60.3, "bbox AP75": 41.7}),
    Reference("lab: mask_rcnn_coco.pth", f"{LAB}: the converted weights mask_rcnn_coco.pth (its evaluate "
              "command uses the first 500 images by default)", "COCO 2014 minival",
              {"segm AP": 29.6, "bbox AP": 34.7}),
)


def pct(v) -> float:
    """A fraction from metrics.json -> percent (nan for None / nan)."""
    if v is None:
        return float("nan")
    v = float(v)
    return v * 100.0 if math.isfinite(v) else float("nan")


def fmt(v, digits: int = 1) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    return f"{v:.{digits}f}"


def fmt_delta(ours: float, ref: float) -> str:
    if not (math.isfinite(ours) and math.isfinite(ref)):
        return "—"
    d = ours - ref
    return f"{'+' if d >= 0 else '−'}{abs(d):.1f}"


def confidence_effect(min_conf) -> Optional[str]:
    """What a ``DETECTION_MIN_CONFIDENCE`` cut-off does to AP, or None when it is low enough
    (at most ``mrcnn-eval``'s warning threshold) to leave AP as defined."""
    if min_conf is None or float(min_conf) <= AP_CONFIDENCE_WARNING:
        return None
    return (f"AP under-reported: the model drops detections scoring below {float(min_conf):.2f} "
            f"(DETECTION_MIN_CONFIDENCE), while AP counts all detections; export with mrcnn-export "
            f"--min-confidence 0 to evaluate")


@dataclass(frozen=True)
class Comparison:
    """Rows ``(metric, ours, [(reference value, split, delta)...])`` against ``references``."""

    references: Tuple[Reference, ...]
    rows: Tuple[Tuple[str, float, Tuple[Tuple[float, str, float], ...]], ...]

    def to_json(self) -> dict:
        return {"references": [{"label": r.label, "source": r.source, "split": r.split,
                                "other_splits": dict(r.other_splits)} for r in self.references],
                "rows": [{"metric": m, "ours": o, "references": [{"value": v, "split": s, "delta": d}
                                                                 for v, s, d in refs]}
                         for m, o, refs in self.rows]}


def compare_with_references(metrics: dict) -> Comparison:
    """Our numbers beside the published ones (see :data:`CITYSCAPES_REFERENCES`,
    :data:`COCO_REFERENCES`); Cityscapes uses the official evaluation's numbers."""
    if metrics.get("dataset") == "cityscapes":
        cs = metrics.get("cityscapes") or {}
        per = cs.get("per_class") or {}
        ours = {"AP[val]": pct(cs.get("AP")), "AP": pct(cs.get("AP")), "AP50": pct(cs.get("AP50"))}
        for name in CITYSCAPES_CLASSES:
            ours[name] = pct((per.get(name) or {}).get("AP"))
        refs = CITYSCAPES_REFERENCES
    else:
        ours = {}
        for kind in ("segm", "bbox"):
            for stat in ("AP", "AP50", "AP75", "APs", "APm", "APl"):
                ours[f"{kind} {stat}"] = pct((metrics.get(kind) or {}).get(stat))
        refs = COCO_REFERENCES
    rows = []
    for metric, value in ours.items():
        if not any(metric in r.values for r in refs):
            continue
        cells = []
        for r in refs:
            ref = r.values.get(metric, float("nan"))
            cells.append((ref, r.split_of(metric) if metric in r.values else "",
                          value - ref if math.isfinite(value) and math.isfinite(ref) else float("nan")))
        rows.append((metric, value, tuple(cells)))
    return Comparison(tuple(refs), tuple(rows))
