"""``mrcnn-eval --report``: an evaluation report with error analysis and the
Mask R-CNN paper's numbers side by side.

    mrcnn-eval --model model.onnx --dataset cityscapes --data-root CS/ --out eval_cs --report

    from mrcnn_trt.eval.report import write_report
    paths = write_report("eval_cs", dataset, config=runner.config)   # after metrics.json exists

It reads what the evaluation left in the output folder (``metrics.json``, the
COCO-format predictions and ground truth; nothing is run again) and writes:

- ``report.html``: one self-contained page (pictures embedded as data URIs, no
  links, no scripts): opens offline, mails as one file;
- ``report.md``: the same tables, pictures from ``report_files/`` (for a README
  or a notebook);
- ``report.json``: the numbers (reference comparison, TIDE, confusion matrix,
  AP by size) for scripts;
- ``report_files/``: the plots (PNG) and galleries (JPEG).

Sections: run facts; the paper's numbers beside ours (per-class mask AP and
AP/AP50 for Cityscapes, the COCO mask and box metrics), each reference with the
split it was measured on and the difference to ours; for Cityscapes, the class
mapping; the TIDE error breakdown (:mod:`mrcnn_trt.eval.error_analysis`, ``tidecv``) per error type and
per class; AP by object size; the class confusion matrix; precision-recall
curves per class; galleries of the worst false positives and the missed objects
per class (crops with the mask drawn).

AP numbers in the report are percentages, as in the paper.

Modules, one concern each: :mod:`.references` (published numbers, comparison),
:mod:`.facts`, :mod:`.inputs`, :mod:`.sections`, :mod:`.plots`, :mod:`.galleries`,
:mod:`.document` (HTML / Markdown).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from mrcnn_trt.cli import progress as progress_bar
from mrcnn_trt.errors import UserError
from mrcnn_trt.fileio import read_json, write_bytes_atomic, write_json_atomic

from .. import error_analysis as E
from .document import FILES_DIR, Figure, Gallery, Section, Table, render_html, render_markdown
from .facts import model_config, model_precision, run_facts
from .galleries import write_galleries
from .inputs import data_is_synthetic, load_eval_data
from .plots import plot_confusion, plot_pr_curves, plot_sizes, plot_tide
from .references import (CITYSCAPES_CLASSES, CITYSCAPES_REFERENCES, COCO_REFERENCES, Comparison, Reference,
                         compare_with_references, confidence_effect)
from .sections import (class_mapping_notes, confusion_section, counted_classes, gallery_section, mapping_section,
                       paper_section, size_section, tide_section)

__all__ = ["write_report", "ReportPaths", "FILES_DIR", "Figure", "Gallery", "Section", "Table", "render_html",
           "render_markdown", "model_config", "model_precision", "run_facts", "write_galleries", "data_is_synthetic",
           "load_eval_data", "plot_confusion", "plot_pr_curves", "plot_sizes", "plot_tide", "CITYSCAPES_CLASSES",
           "CITYSCAPES_REFERENCES", "COCO_REFERENCES", "Comparison", "Reference", "compare_with_references",
           "confidence_effect", "class_mapping_notes", "counted_classes", "paper_section"]


# ----------------------------------------------------------------------------- the report
@dataclass(frozen=True)
class ReportPaths:
    html: str
    markdown: str
    json: str
    files_dir: str


def write_report(out_dir: str, dataset, config=None, score_thresh: float = 0.5,
                 gallery_size: int = 6) -> ReportPaths:
    """Write report.html, report.md, report.json and report_files/ into ``out_dir`` (which
    holds an evaluation's metrics.json and predictions). ``dataset`` is the evaluated
    dataset (images for the galleries, COCO ground truth); ``config`` the model's config
    (default: from its sidecar or checkpoint). ``score_thresh``: detections counted in the
    confusion matrix."""
    E.require_tidecv()
    metrics = read_json(os.path.join(out_dir, "metrics.json"))
    if not metrics.get("num_images"):
        raise UserError("--report: no image was evaluated")
    files_dir = os.path.join(out_dir, FILES_DIR)
    os.makedirs(files_dir, exist_ok=True)
    for name in os.listdir(files_dir):   # galleries of an earlier report (other classes)
        if name.startswith("gallery_") and name.endswith(".jpg"):
            os.unlink(os.path.join(files_dir, name))
    cfg = model_config(metrics, config)
    bar = progress_bar(None, total=7, desc="report", unit="step")

    def step(name: str) -> None:
        bar.set_postfix_str(name)
        bar.update(1)

    data, load_image = load_eval_data(out_dir, metrics, dataset)
    step("inputs")
    tides = {"segm": E.tide_analysis(data, "segm")}
    step("TIDE masks")
    tides["bbox"] = E.tide_analysis(data, "bbox")
    step("TIDE boxes")
    cm = E.confusion_matrix(data, "segm", score_thresh=score_thresh)
    step("confusion matrix")
    curves = E.coco_curves(data, "segm")
    step("PR curves")
    galleries = write_galleries(data, tides["segm"], load_image, files_dir, gallery_size)
    step("galleries")

    comparison = compare_with_references(metrics)
    kind = metrics.get("dataset", "coco")
    model_classes = tuple(cfg.get("CLASS_NAMES") or ())
    synthetic = data_is_synthetic(dataset)
    effect = confidence_effect(metrics.get("min_confidence", cfg.get("DETECTION_MIN_CONFIDENCE")))
    sections = [
        Section("Run", [Table(["", ""], run_facts(metrics, cfg), left=True)], "run"),
        paper_section(metrics, comparison, model_classes, synthetic, effect),
    ]
    if kind == "cityscapes":
        sections.append(mapping_section(metrics, cm, model_classes, effect))
    plot_tide(tides, os.path.join(files_dir, "tide.png"))
    sections.append(tide_section(tides, effect))
    plot_sizes(metrics, os.path.join(files_dir, "sizes.png"))
    sections.append(size_section(metrics, curves, effect))
    active = [i for i in range(len(cm.classes))
              if len(cm.classes) <= 12 or cm.matrix[i].sum() or cm.matrix[:, i].sum()]
    plot_confusion(cm, os.path.join(files_dir, "confusion.png"), active)
    sections.append(confusion_section(cm, active))
    with_gt = [n for n in data.class_names if sum(curves.gt_by_size[n].values())]
    plot_pr_curves(curves, os.path.join(files_dir, "pr_curves.png"), with_gt)
    sections.append(Section("Precision–recall curves", [
        "Interpolated precision at each recall (pycocotools, at most 100 detections per image), per class "
        "with ground truth; solid IoU 0.50, dashed IoU 0.75. A curve that ends early means objects that "
        "no detection found; a low start means high-scoring false positives.",
        Figure("pr_curves.png", "precision–recall per class (masks)")], "pr"))
    sections.append(gallery_section(galleries, gallery_size))

    title = f"Evaluation report: {os.path.basename(str(metrics.get('model') or 'model'))} on {kind}"
    intro = [f"{metrics.get('num_images')} {'synthetic ' if synthetic else ''}{kind} images "
             f"({metrics.get('split', '?')} split), backend {metrics.get('backend', '?')}. AP numbers are "
             f"percentages (the paper's convention); masks unless marked 'box'."]
    if effect:
        intro.append(f"Note: {effect}.")
    md = render_markdown(title, intro, sections)
    page = render_html(title, intro, sections, files_dir)
    paths = ReportPaths(os.path.join(out_dir, "report.html"), os.path.join(out_dir, "report.md"),
                        os.path.join(out_dir, "report.json"), files_dir)
    write_json_atomic(paths.json, {
        "metrics_file": os.path.join(out_dir, "metrics.json"), "comparison": comparison.to_json(),
        "tide": {k: t.to_json() for k, t in tides.items()}, "confusion": cm.to_json(),
        "curves": curves.to_json(), "run": dict(run_facts(metrics, cfg)),
        "synthetic_data": synthetic, "ap_under_reported": bool(effect)})
    write_bytes_atomic(paths.markdown, md.encode())
    write_bytes_atomic(paths.html, page.encode())
    step("pages")
    bar.close()
    return paths
