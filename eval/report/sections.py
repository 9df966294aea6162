"""The report's sections, each from the evaluation's numbers: the comparison with
the paper, the Cityscapes class mapping, TIDE errors, AP by object size, the
confusion matrix, the galleries.
"""
from __future__ import annotations

import math
from typing import Dict, List, Mapping, Optional, Sequence

from mrcnn_trt.config import COCO_CLASS_NAMES, SHAPES_CLASS_NAMES
from mrcnn_trt.data.classmap import SHAPES_TO_CITYSCAPES_NAMES

from ..error_analysis import TIDE_ERRORS, TIDE_SPECIAL
from .document import Block, Figure, Gallery, Section, Table
from .galleries import TILE
from .references import CITYSCAPES_CLASSES, Comparison, fmt, fmt_delta, pct


def paper_section(metrics: dict, comp: Comparison, model_classes: Sequence[str], synthetic: bool = False,
                   effect: Optional[str] = None) -> Section:
    """The comparison table. Where it means nothing (synthetic data, the shapes model) or
    where our AP is under-reported (a confidence cut-off), the table says so itself: in the
    'ours' header and in every difference, not only in a note."""
    kind = metrics.get("dataset")
    split = metrics.get("split", "?")
    names = tuple(model_classes)
    shapes_model = names == tuple(SHAPES_CLASS_NAMES)
    meaningless = synthetic or shapes_model
    what = "synthetic data, " if synthetic else ("shapes model, " if shapes_model else "")
    ours_header = f"ours ({what}{split}, {metrics.get('num_images')} images)"
    if effect:
        ours_header += f", under-reported: cut-off {float(metrics.get('min_confidence') or 0):.2f}"
    header = ["metric", ours_header]
    for r in comp.references:
        header += [r.label, "Δ (not comparable)" if meaningless else "Δ"]
    rows = []
    for metric, ours, cells in comp.rows:
        row = [metric, fmt(ours) + (" *" if effect and math.isfinite(ours) else "")]
        for (ref, ref_split, d) in cells:
            delta = fmt_delta(ours, ref)
            if meaningless and delta != "—":
                delta += " (synthetic)" if synthetic else " (shapes)"
            row += [f"{fmt(ref)} [{ref_split}]" if math.isfinite(ref) else "—", delta]
        rows.append(row)
    blocks: List[Block] = []
    if kind == "cityscapes":
        blocks.append("Mask AP on Cityscapes, official evaluation (cityscapesscripts), beside the Mask R-CNN "
                      "paper's Table 7. The paper's per-class numbers and its AP/AP50 were measured on the "
                      "Cityscapes test set; 'AP[val]' on the val set. Ours are on the split evaluated here: "
                      "compare a val run with AP[val]; the test-set columns show how the classes rank. "
                      "Δ = ours − reference.")
    else:
        blocks.append("COCO mask ('segm') and box AP (pycocotools, IoU .50:.95 unless marked) beside the Mask "
                      "R-CNN paper's ResNet-101-FPN model, measured on COCO test-dev, and the numbers the lab "
                      "repository publishes for its converted weights mask_rcnn_coco.pth, measured on COCO "
                      "2014 minival (the images of val2017). Δ = ours − reference.")
    if synthetic:
        blocks.append("Note: ours are measured on synthetic data (mrcnn-make-dataset shapes written in the "
                      f"{kind} layout), not on the real dataset: the reference columns show the layout of the "
                      "comparison only; the differences mean nothing.")
    elif shapes_model:
        blocks.append("Note: this is the synthetic-shapes model (circle, square, triangle): the reference columns "
                      "show the layout of the comparison only; the differences mean nothing.")
    if effect:
        blocks.append(f"Note: * = {effect}.")
    blocks.append(Table(header, rows, caption="; ".join(f"{r.label}: {r.source}" for r in comp.references)))
    if kind == "cityscapes" and names == tuple(COCO_CLASS_NAMES):
        blocks.append("Note: a COCO model evaluated on Cityscapes without fine-tuning. The paper's models were "
                      "trained on Cityscapes ('fine only') or fine-tuned on it from COCO ('fine + COCO'); "
                      "expect lower numbers here, and rider AP 0 (no COCO class; see the class mapping).")
    return Section("Side by side with the paper", blocks, "paper")


def class_mapping_notes(cm, model_classes: Sequence[str]) -> List[str]:
    """How the model's classes map to the Cityscapes classes (paragraphs); for a COCO model,
    what happens to riders, with the counts of the confusion matrix ``cm``."""
    names = tuple(model_classes)
    blocks: List[str] = []
    if names == tuple(COCO_CLASS_NAMES):
        blocks.append("The model predicts COCO classes. person, bicycle, car, motorcycle, bus, train and truck map "
                      "to the Cityscapes class of the same name; every other COCO class is dropped before the "
                      "evaluation. Cityscapes 'rider' (a person on a bicycle or motorcycle) has no COCO class: the "
                      "model finds riders as 'person', so they count as person false positives and rider misses, "
                      "rider AP is 0 and it still counts in the official mean over 8 classes.")
        if "rider" in cm.classes and "person" in cm.classes:
            blocks.append(f"Confusion matrix (score ≥ {cm.score_thresh:g}): riders detected as person: "
                          f"{cm.count('rider', 'person')}, riders missed: {cm.count('rider', 'missed')}, "
                          f"riders found as rider: {cm.count('rider', 'rider')}.")
    elif names == tuple(SHAPES_CLASS_NAMES):
        blocks.append("Synthetic shapes written in Cityscapes format: "
                      + ", ".join(f"{k} → {v}" for k, v in SHAPES_TO_CITYSCAPES_NAMES.items())
                      + "; the other Cityscapes classes have no objects.")
    else:
        blocks.append("The model's classes map by name to the Cityscapes classes.")
    return blocks


def counted_classes(metrics: dict, classes: Sequence[str]) -> List[str]:
    """The ``classes`` that count in the official Cityscapes means: those with an AP (ground
    truth or detections in the evaluated images); the others are nan and skipped."""
    per = (metrics.get("cityscapes") or {}).get("per_class") or {}
    return [c for c in classes if math.isfinite(pct((per.get(c) or {}).get("AP")))]


def mapping_section(metrics: dict, cm, model_classes: Sequence[str], effect: Optional[str] = None) -> Section:
    cs = metrics.get("cityscapes") or {}
    mappable = list(cs.get("mappable_classes") or [])
    missing = [c for c in CITYSCAPES_CLASSES if c not in mappable]
    official = counted_classes(metrics, CITYSCAPES_CLASSES)
    mapped = counted_classes(metrics, mappable)
    blocks: List[Block] = list(class_mapping_notes(cm, model_classes))
    caption = ("The official mean averages the classes with ground truth or detections in the evaluated images "
               "(the others have no AP, —, and are skipped); with every class present it is the mean over all 8.")
    if effect:
        caption += f" {effect}."
    blocks.append(Table(["", "classes", "AP", "AP50"], [
        [f"official mean ({len(official)} of 8 classes: those with ground truth or detections)",
         ", ".join(official) or "—", fmt(pct(cs.get("AP"))), fmt(pct(cs.get("AP50")))],
        [f"mean over the model's classes ({len(mapped)} of {len(mappable)} mappable: those with ground truth or "
         f"detections)", ", ".join(mapped) or "—", fmt(pct(cs.get("AP_mappable"))),
         fmt(pct(cs.get("AP50_mappable")))],
        ["classes the model cannot predict", ", ".join(missing) or "none", "", ""],
    ], caption=caption))
    return Section("Class mapping", blocks, "mapping")


def tide_section(tides: Mapping[str, object], effect: Optional[str] = None) -> Section:
    segm = tides["segm"]
    rows = []
    for short, name in list(TIDE_ERRORS.items()) + list(TIDE_SPECIAL.items()):
        row = [f"{name} ({short})"]
        for t in tides.values():
            v = t.main.get(short, t.special.get(short))
            row += [fmt(v, 2), str(t.counts[short]) if short in t.counts else ""]
        rows.append(row)
    header = ["error type"]
    for k, t in tides.items():
        label = "mask" if k == "segm" else "box"
        header += [f"{label} dAP50", f"{label} count"]
    table = Table(header, rows, caption=f"TIDE (tidecv) at IoU 0.5: mask AP50 {segm.ap50:.1f}, box AP50 "
                                        f"{tides['bbox'].ap50:.1f}. dAP50 = AP50 gained by fixing every error "
                                        f"of the type; the last two rows: perfect precision / perfect recall."
                                        + (f" {effect}: the dropped detections count as missed objects."
                                           if effect else ""))
    per_rows = []
    for name, v in sorted(segm.per_class.items(), key=lambda kv: -sum(kv[1][s] for s in TIDE_ERRORS)):
        per_rows.append([name, fmt(v["AP50"])] + [fmt(v[s], 2) for s in TIDE_ERRORS])
    per = Table(["class", "AP50"] + [f"{s}" for s in TIDE_ERRORS], per_rows,
                caption="Per class (masks): dAP50 of each error type within the class; classes with the most to "
                        "gain first. Cls classification, Loc localization, Both cls + loc, Dupe duplicate, "
                        "Bkg background, Miss missed.")
    return Section("Errors (TIDE)", [
        "Every false positive gets one type: classification (right place, wrong class), localization (right "
        "class, IoU 0.1–0.5), both, duplicate (the object was already matched by a higher score), background "
        "(IoU < 0.1 with every object); objects that no detection comes near are missed. dAP50 is what fixing "
        "all errors of a type would add to AP50 (Bolya et al., TIDE, ECCV 2020).",
        table, Figure("tide.png", "TIDE dAP50 per error type"), per], "tide")


def size_section(metrics: dict, curves, effect: Optional[str] = None) -> Section:
    note = ("COCO size ranges by mask area: small < 32² px, medium 32²–96², large > 96² (areas in "
            "original-image pixels).")
    if metrics.get("dataset") == "cityscapes":
        note += (" Cityscapes frames are 2048×1024, shrunk to the network's IMAGE_MAX_DIM (1024 for the "
                 "coco and cityscapes presets): most objects there are small or medium.")
    overall = []
    for kind in ("segm", "bbox"):
        m = metrics.get(kind) or {}
        overall.append(["mask" if kind == "segm" else "box"] + [fmt(pct(m.get(s))) for s in
                                                                ("AP", "APs", "APm", "APl")])
    rows = []
    for name, s in curves.ap_by_size.items():
        n = curves.gt_by_size.get(name, {})
        if not sum(n.values()):
            continue
        rows.append([name] + [fmt(s[k]) for k in ("all", "small", "medium", "large")]
                    + [str(n.get(k, 0)) for k in ("small", "medium", "large")])
    return Section("AP by object size", [
        note,
        Table(["", "AP", "APs", "APm", "APl"], overall,
              caption="all classes (pycocotools)" + (f"; {effect}" if effect else "")),
        Figure("sizes.png", "AP by object size"),
        Table(["class", "AP", "small", "medium", "large", "# small", "# medium", "# large"], rows,
              caption="Per class (masks): AP by size and the number of ground-truth objects of each size.")],
        "sizes")


def confusion_section(cm, active: Sequence[int]) -> Section:
    blocks: List[Block] = [
        f"Detections with score ≥ {cm.score_thresh:g} matched to objects at mask IoU ≥ {cm.iou_thresh:g}: first "
        "to an object of their own class (as AP counts), then to a remaining object of any class. Rows: the "
        "object's true class, or 'background' for detections that match no free object (background or "
        "duplicates); columns: the predicted class, or 'missed' for objects no detection matched. The diagonal "
        "is the true positives."]
    labels = [cm.classes[i] for i in active]
    if len(active) <= 20:
        rows = []
        for i in list(active) + [len(cm.classes)]:
            cols = list(active) + [len(cm.classes)]
            rows.append([cm.labels_gt[i]] + [str(int(cm.matrix[i, j])) for j in cols])
        blocks.append(Table(["true \\ predicted"] + labels + ["missed"], rows,
                            caption="confusion matrix (counts)"))
    bg = int(cm.matrix[len(cm.classes), :len(cm.classes)].sum())
    dup = int(cm.on_matched.sum())
    if bg:
        blocks.append(f"Of the {bg} background detections, {dup} lie on an object that another detection already "
                      f"matched (a duplicate, or a second class label for the same object: TIDE counts the "
                      f"latter as classification errors), {bg - dup} on no object.")
    top = cm.confusions(12)
    if top:
        blocks.append(Table(["true class", "predicted as", "count"], [[a, b, str(n)] for a, b, n in top],
                            caption="largest class confusions"))
    else:
        blocks.append("No class confusions at this threshold.")
    blocks.append(Figure("confusion.png", "confusion matrix, each row normalised to 1"))
    return Section("Confusion matrix", blocks, "confusion")


def gallery_section(galleries, per_class: int) -> Section:
    blocks: List[Block] = [
        f"Per class, the {per_class} highest-scoring false positives (red: the detection's mask; green outline: "
        f"the object it lies on, if any; caption: TIDE type, IoU and score; 'is X' = the object is really an X) "
        f"and the {per_class} largest missed objects (hatched orange). Crops are scaled to {TILE} px."]
    if not galleries:
        blocks.append("No false positive and no missed object.")
    by_class: Dict[str, List[Figure]] = {}
    for name, kind, fig in galleries:
        by_class.setdefault(name, []).append(fig)
    for name, figs in by_class.items():
        blocks.append(Gallery(name, figs))
    return Section("Worst false positives and missed objects", blocks, "gallery")
