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
mapping; the TIDE error breakdown (:mod:`.error_analysis`, ``tidecv``) per error type and
per class; AP by object size; the class confusion matrix; precision-recall
curves per class; galleries of the worst false positives and the missed objects
per class (crops with the mask drawn).

AP numbers in the report are percentages, as in the paper.
"""
from __future__ import annotations

import base64
import html
import math
import os
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from mrcnn_trt.errors import UserError

PAPER = "He, Gkioxari, Dollár, Girshick: Mask R-CNN (ICCV 2017, arXiv 1703.06870)"
LAB = "the lab repository's README (multimodallearning/pytorch-mask-rcnn)"
CITYSCAPES_CLASSES = ("person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle")
FILES_DIR = "report_files"


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


def _pct(v) -> float:
    """A fraction from metrics.json -> percent (nan for None / nan)."""
    if v is None:
        return float("nan")
    v = float(v)
    return v * 100.0 if math.isfinite(v) else float("nan")


def _fmt(v, digits: int = 1) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    return f"{v:.{digits}f}"


def _delta(ours: float, ref: float) -> str:
    if not (math.isfinite(ours) and math.isfinite(ref)):
        return "—"
    d = ours - ref
    return f"{'+' if d >= 0 else '−'}{abs(d):.1f}"


def confidence_effect(min_conf) -> Optional[str]:
    """What a ``DETECTION_MIN_CONFIDENCE`` cut-off does to AP, or None when it is low enough
    (at most ``mrcnn-eval``'s warning threshold) to leave AP as defined."""
    from .cli import AP_CONFIDENCE_WARNING

    if min_conf is None or float(min_conf) <= AP_CONFIDENCE_WARNING:
        return None
    return (f"AP under-reported: the model drops detections scoring below {float(min_conf):.2f} "
            f"(DETECTION_MIN_CONFIDENCE), while AP counts all detections; export with mrcnn-export "
            f"--min-confidence 0 to evaluate")


def data_is_synthetic(dataset) -> bool:
    """True when the evaluated images were written by ``mrcnn-make-dataset`` (synthetic
    shapes, not the real dataset): comparisons with published numbers mean nothing."""
    from mrcnn_trt.data.synthetic import is_synthetic_image

    try:
        return len(dataset) > 0 and is_synthetic_image(dataset.image_path(0))
    except (AttributeError, IndexError, OSError, TypeError):
        return False


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
        ours = {"AP[val]": _pct(cs.get("AP")), "AP": _pct(cs.get("AP")), "AP50": _pct(cs.get("AP50"))}
        for name in CITYSCAPES_CLASSES:
            ours[name] = _pct((per.get(name) or {}).get("AP"))
        refs = CITYSCAPES_REFERENCES
    else:
        ours = {}
        for kind in ("segm", "bbox"):
            for stat in ("AP", "AP50", "AP75", "APs", "APm", "APl"):
                ours[f"{kind} {stat}"] = _pct((metrics.get(kind) or {}).get(stat))
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


# ----------------------------------------------------------------------------- run facts
def _model_sidecar(model: Optional[str]) -> dict:
    from mrcnn_trt.fileio import read_json, sidecar_path

    if model and os.path.isfile(model) and os.path.isfile(sidecar_path(model)):
        try:
            return read_json(sidecar_path(model))
        except UserError:
            return {}
    return {}


def model_config(metrics: dict, config=None) -> dict:
    """The model's config as a dict: ``config`` when given, else the model's sidecar
    (.onnx/.plan), else the checkpoint's (.pth, the shipped model)."""
    if config is not None:
        return config.to_dict() if hasattr(config, "to_dict") else dict(config)
    model = metrics.get("model")
    side = _model_sidecar(model)
    if side.get("config"):
        return dict(side["config"])
    from mrcnn_trt.model.checkpoint import config_from_checkpoint, read_checkpoint, shipped_model_path

    path = shipped_model_path() if model in (None, "shipped:shapes") else model
    if path and os.path.isfile(path) and not path.endswith((".onnx", ".plan", ".engine")):
        sd, extra = read_checkpoint(path)
        return config_from_checkpoint(extra, sd, None).to_dict()
    return {}


def model_precision(metrics: dict) -> str:
    model = metrics.get("model") or ""
    side = _model_sidecar(model)
    p = side.get("precision")
    if isinstance(p, dict):
        return str(p.get("label") or "?")
    if p:
        return str(p)
    if model.endswith(".onnx"):
        return "fp32"
    if model.endswith((".plan", ".engine")):
        return "? (no sidecar)"
    return "fp32 (PyTorch)"


def run_facts(metrics: dict, cfg: dict) -> List[Tuple[str, str]]:
    """``(name, value)`` rows: model, backend, precision, image size, min confidence, images, speed."""
    lat = metrics.get("latency_ms") or {}
    lat_img = metrics.get("latency_per_image_ms") or {}
    min_conf = metrics.get("min_confidence", cfg.get("DETECTION_MIN_CONFIDENCE"))
    size = "?"
    if cfg.get("IMAGE_MAX_DIM"):
        size = (f"{cfg.get('IMAGE_MIN_DIM')}–{cfg['IMAGE_MAX_DIM']} px (IMAGE_MIN_DIM–IMAGE_MAX_DIM; "
                f"network input {cfg['IMAGE_MAX_DIM']}×{cfg['IMAGE_MAX_DIM']})")
    classes = cfg.get("CLASS_NAMES") or []
    facts = [
        ("model", str(metrics.get("model", "?"))),
        ("backbone", f"{cfg.get('BACKBONE', '?')}, {max(len(classes) - 1, 0)} classes "
                     f"({', '.join(list(classes)[1:6])}{', ...' if len(classes) > 6 else ''})"),
        ("backend", str(metrics.get("backend", "?"))),
        ("precision", model_precision(metrics)),
        ("image size", size),
        ("DETECTION_MIN_CONFIDENCE", (_fmt(min_conf, 2) if min_conf is not None else "?")
         + (f" ({confidence_effect(min_conf)})" if confidence_effect(min_conf) else "")),
        ("dataset", f"{metrics.get('dataset', '?')} ({metrics.get('split', '?')} split): "
                    f"{metrics.get('data_root', '?')}"),
        ("images evaluated", str(metrics.get("num_images", "?"))),
        ("batch", str(metrics.get("batch", "?"))),
        ("latency (network call)", f"p50 {_fmt(lat.get('p50'))} ms, p90 {_fmt(lat.get('p90'))} ms; "
                                   f"per image p50 {_fmt(lat_img.get('p50'))} ms"),
        ("throughput (end to end)", f"{_fmt(metrics.get('throughput_ips'), 2)} images/s"),
    ]
    if metrics.get("interrupted"):
        facts.append(("note", "the evaluation was interrupted: only the images processed are counted"))
    return facts


# ----------------------------------------------------------------------------- document model
@dataclass
class Table:
    header: Sequence[str]
    rows: Sequence[Sequence[str]]
    caption: str = ""
    first_col_header: bool = True
    left: bool = False      # left-align every column (key/value tables)


@dataclass
class Figure:
    path: str          # file under report_files/
    caption: str
    width: Optional[int] = None


@dataclass
class Gallery:
    title: str
    figures: Sequence[Figure]


Block = Union[str, Table, Figure, Gallery]


@dataclass
class Section:
    title: str
    blocks: List[Block] = field(default_factory=list)
    anchor: str = ""


CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:24px auto;
max-width:1180px;padding:0 16px;color:#1d2430;background:#fff;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:2px solid #dde3ea;padding-bottom:.2em;margin-top:1.6em}
h3{margin-bottom:.3em}table{border-collapse:collapse;margin:.6em 0 1em;font-size:.9em}
th,td{border:1px solid #cfd6de;padding:3px 8px;text-align:right}th{background:#eef2f6}
td:first-child,th:first-child{text-align:left}tr:nth-child(even) td{background:#f8fafc}
caption{caption-side:bottom;text-align:left;color:#5a6573;font-size:.9em;padding-top:4px}
.pos{color:#11703a}.neg{color:#b3261e}figure{margin:.8em 0}figcaption{color:#5a6573;font-size:.9em}
table.left td{text-align:left}img{max-width:100%;height:auto;border:1px solid #e3e8ee}.toc a{margin-right:12px}
p.note{background:#fff8e1;border-left:4px solid #f0b400;padding:6px 10px}
"""


_MD_SPECIAL = "\\`*_[]|#"


def _md_text(text: str) -> str:
    """``text`` as literal Markdown: HTML special characters as entities (no raw HTML gets
    through: a class name ``<script>`` stays text), Markdown punctuation backslash-escaped,
    on one line."""
    t = html.escape(" ".join(str(text).split()), quote=False)
    return "".join("\\" + ch if ch in _MD_SPECIAL else ch for ch in t)


def _md_cell(text: str) -> str:
    return _md_text(text)


def render_markdown(title: str, intro: Sequence[str], sections: Sequence[Section]) -> str:
    out = [f"# {_md_text(title)}", ""]
    out += [_md_text(p) + "\n" for p in intro]
    for s in sections:
        out += [f"## {_md_text(s.title)}", ""]
        for b in s.blocks:
            if isinstance(b, str):
                out += [_md_text(b), ""]
            elif isinstance(b, Table):
                out.append("| " + " | ".join(_md_cell(h) for h in b.header) + " |")
                out.append("|" + "|".join(["---"] + ["---:"] * (len(b.header) - 1)) + "|")
                out += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in b.rows]
                out += ([f"\n*{_md_text(b.caption)}*"] if b.caption else []) + [""]
            elif isinstance(b, Figure):
                out += [f"![{_md_text(b.caption)}]({FILES_DIR}/{b.path})", "", f"*{_md_text(b.caption)}*", ""]
            elif isinstance(b, Gallery):
                out += [f"### {_md_text(b.title)}", ""]
                for f in b.figures:
                    out += [f"**{_md_text(f.caption)}**", "", f"![{_md_text(f.caption)}]({FILES_DIR}/{f.path})", ""]
    return "\n".join(out).rstrip() + "\n"


def _data_uri(path: str) -> str:
    mime = "image/jpeg" if path.lower().endswith((".jpg", ".jpeg")) else "image/png"
    with open(path, "rb") as f:
        return f"data:{mime};base64,{base64.b64encode(f.read()).decode('ascii')}"


def _html_cell(text: str, tag: str) -> str:
    t = str(text)
    cls = ""
    if tag == "td" and len(t) > 1 and t[0] in "+−" and t[1:].replace(".", "", 1).isdigit():
        cls = ' class="pos"' if t[0] == "+" else ' class="neg"'
    return f"<{tag}{cls}>{html.escape(t)}</{tag}>"


def render_html(title: str, intro: Sequence[str], sections: Sequence[Section], files_dir: str) -> str:
    e = html.escape
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{e(title)}</title><style>{CSS}</style></head><body>", f"<h1>{e(title)}</h1>"]
    for p in intro:
        cls = ' class="note"' if p.startswith("Note:") else ""
        parts.append(f"<p{cls}>{e(p)}</p>")
    parts.append('<p class="toc">' + "".join(f'<a href="#{e(s.anchor)}">{e(s.title)}</a>' for s in sections)
                 + "</p>")
    for s in sections:
        parts.append(f'<h2 id="{e(s.anchor)}">{e(s.title)}</h2>')
        for b in s.blocks:
            if isinstance(b, str):
                cls = ' class="note"' if b.startswith("Note:") else ""
                parts.append(f"<p{cls}>{e(b)}</p>")
            elif isinstance(b, Table):
                rows = [] if not any(b.header) else ["<tr>" + "".join(_html_cell(h, "th") for h in b.header)
                                                      + "</tr>"]
                for r in b.rows:
                    cells = [_html_cell(c, "th" if (i == 0 and b.first_col_header) else "td") for i, c in
                             enumerate(r)]
                    rows.append("<tr>" + "".join(cells) + "</tr>")
                cap = f"<caption>{e(b.caption)}</caption>" if b.caption else ""
                cls = ' class="left"' if b.left else ""
                parts.append(f"<table{cls}>{cap}{''.join(rows)}</table>")
            elif isinstance(b, Figure):
                w = f' width="{b.width}"' if b.width else ""
                parts.append(f'<figure><img src="{_data_uri(os.path.join(files_dir, b.path))}" alt="{e(b.caption)}"'
                             f"{w}><figcaption>{e(b.caption)}</figcaption></figure>")
            elif isinstance(b, Gallery):
                parts.append(f"<h3>{e(b.title)}</h3>")
                for f in b.figures:
                    parts.append(f'<figure><figcaption>{e(f.caption)}</figcaption>'
                                 f'<img src="{_data_uri(os.path.join(files_dir, f.path))}" alt="{e(f.caption)}">'
                                 f"</figure>")
    parts.append("</body></html>")
    # anchors inside the page are the only links; no external resource is referenced
    return "\n".join(parts) + "\n"


# ----------------------------------------------------------------------------- plots
def _save_figure(fig, path: str, dpi: int = 100, tight: bool = True) -> None:
    from mrcnn_trt.fileio import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight" if tight else None)


def plot_tide(tides: Mapping[str, object], path: str) -> None:
    """Horizontal bars: dAP per TIDE error type (and the special errors), one colour per IoU type."""
    from matplotlib.figure import Figure as MplFigure

    from .error_analysis import TIDE_ERRORS, TIDE_SPECIAL

    names = list(TIDE_ERRORS) + list(TIDE_SPECIAL)
    labels = [TIDE_ERRORS.get(n) or TIDE_SPECIAL[n] for n in names]
    fig = MplFigure(figsize=(7.5, 3.6))
    ax = fig.subplots()
    y = np.arange(len(names))
    h = 0.8 / max(len(tides), 1)
    top = 1.0
    for i, (kind, t) in enumerate(tides.items()):
        raw = [t.main.get(n, t.special.get(n, float("nan"))) for n in names]
        vals = [v if math.isfinite(v) else 0.0 for v in raw]
        top = max([top] + vals) if i else max([1.0] + vals)
        bars = ax.barh(y + i * h - 0.4 + h / 2, vals, height=h, label=f"{'mask' if kind == 'segm' else 'box'} "
                                                                       f"(AP50 {_fmt(t.ap50)})")
        for b, v in zip(bars, raw):
            ax.text(b.get_width() + 0.2, b.get_y() + b.get_height() / 2, _fmt(v) if math.isfinite(v) else "n/a",
                    va="center", fontsize=8)
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    ax.axhline(len(TIDE_ERRORS) - 0.5, color="#999", lw=0.8, ls="--")
    ax.set_xlabel("dAP50 (AP gained by fixing every error of this type)")
    ax.set_xlim(0, top * 1.15)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    ax.set_title("TIDE error breakdown")
    _save_figure(fig, path)


def plot_sizes(metrics: dict, path: str) -> None:
    from matplotlib.figure import Figure as MplFigure

    fig = MplFigure(figsize=(6, 3.2))
    ax = fig.subplots()
    sizes = ("APs", "APm", "APl")
    x = np.arange(len(sizes))
    for i, kind in enumerate(("segm", "bbox")):
        raw = [_pct((metrics.get(kind) or {}).get(s)) for s in sizes]
        vals = [v if math.isfinite(v) else 0.0 for v in raw]
        bars = ax.bar(x + (i - 0.5) * 0.38, vals, width=0.38, label="mask" if kind == "segm" else "box")
        for b, v in zip(bars, raw):
            ax.text(b.get_x() + b.get_width() / 2, (v if math.isfinite(v) else 0.0) + 0.5,
                    f"{v:.1f}" if math.isfinite(v) else "n/a", ha="center", fontsize=8)
    ax.set_xticks(x, ["small (< 32²)", "medium", "large (> 96²)"])
    ax.set_ylabel("AP (IoU .50:.95)")
    ax.set_title("AP by object size")
    ax.legend(fontsize=8)
    _save_figure(fig, path)


def plot_confusion(cm, path: str, classes: Sequence[int]) -> None:
    """Heatmap of the rows/columns ``classes`` (indices) + background / missed, row-normalised."""
    from matplotlib.figure import Figure as MplFigure

    k = len(cm.classes)
    rows = list(classes) + [k]
    cols = list(classes) + [k]
    m = cm.matrix[np.ix_(rows, cols)].astype(np.float64)
    norm = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    n = len(rows)
    size = min(max(4.0, 0.45 * n + 2), 16)
    fig = MplFigure(figsize=(size + 1, size))
    ax = fig.subplots()
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), [cm.classes[i] for i in classes] + ["missed"], rotation=60, ha="right",
                  fontsize=8 if n < 30 else 6)
    ax.set_yticks(range(n), [cm.classes[i] for i in classes] + ["background"], fontsize=8 if n < 30 else 6)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("ground-truth class")
    if n <= 20:
        for i in range(n):
            for j in range(n):
                if m[i, j]:
                    ax.text(j, i, str(int(m[i, j])), ha="center", va="center", fontsize=8,
                            color="white" if norm[i, j] > 0.6 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of the row")
    ax.set_title(f"confusion matrix ({'mask' if cm.iou_type == 'segm' else 'box'} IoU ≥ {cm.iou_thresh:g}, "
                 f"score ≥ {cm.score_thresh:g})")
    _save_figure(fig, path)


def plot_pr_curves(curves, path: str, class_names: Sequence[str]) -> None:
    from matplotlib.figure import Figure as MplFigure

    n = len(class_names)
    cols = min(4 if n <= 16 else 8, max(n, 1))
    rows = max(1, math.ceil(n / cols))
    height = 2.6 * rows + 0.9
    fig = MplFigure(figsize=(3.0 * cols, height))
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.5 / height, top=1 - 0.9 / height, hspace=0.45,
                        wspace=0.25)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax, name in zip(axes, class_names):
        for iou, style in (("0.50", "-"), ("0.75", "--")):
            p = curves.precision[name][iou]
            ax.plot(curves.recall, p, style, label=f"IoU {iou}")
        ap = curves.ap_by_size[name]["all"]
        ax.set_title(f"{name} (AP {_fmt(ap)})", fontsize=9)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in axes[n:]:
        ax.set_visible(False)
    if n:
        axes[0].legend(fontsize=7, loc="lower left")
        axes[0].set_xlabel("recall", fontsize=8)
        axes[0].set_ylabel("precision", fontsize=8)
    fig.suptitle(f"precision–recall per class ({'mask' if curves.iou_type == 'segm' else 'box'}, "
                 f"interpolated, at most 100 detections per image)", y=1 - 0.2 / height)
    _save_figure(fig, path, dpi=100 if n <= 16 else 72, tight=False)   # (a tight box costs a second draw)


# ----------------------------------------------------------------------------- galleries
TILE = 128
CAPTION_H = 18
CAPTION_PX = 11
FP_COLOR = (230, 40, 40)
GT_COLOR = (40, 200, 80)
MISS_COLOR = (255, 150, 0)


def _crop_box(boxes: Sequence[Sequence[float]], h: int, w: int) -> Tuple[int, int, int, int]:
    """Union of ``[x, y, w, h]`` boxes with a 25 % margin (at least 8 px), clipped: ``(x1, y1, x2, y2)``."""
    x1 = min(b[0] for b in boxes)
    y1 = min(b[1] for b in boxes)
    x2 = max(b[0] + b[2] for b in boxes)
    y2 = max(b[1] + b[3] for b in boxes)
    mx, my = max(8.0, 0.25 * (x2 - x1)), max(8.0, 0.25 * (y2 - y1))
    x1, y1 = int(max(0, math.floor(x1 - mx))), int(max(0, math.floor(y1 - my)))
    x2, y2 = int(min(w, math.ceil(x2 + mx))), int(min(h, math.ceil(y2 + my)))
    return x1, y1, max(x2, x1 + 1), max(y2, y1 + 1)


def _tile(image: np.ndarray, data, case):
    """One gallery tile: the crop around the case scaled to :data:`TILE` px, its masks drawn
    at the tile's own resolution (so outlines keep their thickness however much the crop
    shrinks: 2 px in colour with a 1 px black halo; a missed object also hatched in
    orange), and a caption."""
    from PIL import Image, ImageDraw
    from pycocotools import mask as mask_utils

    from mrcnn_trt.visualize import blend_mask, fit_text, label_font, resize_mask

    h, w = image.shape[:2]
    det = data.dets[case.det] if case.det is not None else None
    gt = data.gts[case.gt] if case.gt is not None else None
    boxes = [x["bbox"] for x in (det, gt) if x is not None]
    x1, y1, x2, y2 = _crop_box(boxes, h, w)
    pic = Image.fromarray(np.ascontiguousarray(image[y1:y2, x1:x2, :3]).astype(np.uint8))
    f = TILE / max(pic.size)
    size = (max(1, round(pic.width * f)), max(1, round(pic.height * f)))
    # shrink smoothly; enlarge small objects with visible pixels
    pic = pic.resize(size, Image.BILINEAR if f < 1 else Image.NEAREST)
    crop = np.asarray(pic, dtype=np.float32).copy()
    if gt is not None:
        m = resize_mask(mask_utils.decode(gt["rle"])[y1:y2, x1:x2], size[1], size[0])
        if case.kind == "Miss":
            blend_mask(crop, m, MISS_COLOR, 0.75, thickness=3, halo=1, hatched=True)
        else:
            blend_mask(crop, m, GT_COLOR, 0.0, thickness=2, halo=1)
    if det is not None and det["rle"] is not None:
        m = resize_mask(mask_utils.decode(det["rle"])[y1:y2, x1:x2], size[1], size[0])
        blend_mask(crop, m, FP_COLOR, 0.45, thickness=2, halo=1)
    pic = Image.fromarray(crop.clip(0, 255).astype(np.uint8))
    tile = Image.new("RGB", (TILE, TILE + CAPTION_H), (255, 255, 255))
    tile.paste(pic, ((TILE - pic.width) // 2, (TILE - pic.height) // 2))
    draw = ImageDraw.Draw(tile)
    font = label_font(CAPTION_PX, bold=False)
    draw.text((3, TILE + 3), fit_text(_case_caption(data, case), font, TILE - 6), fill=(20, 20, 20), font=font)
    return tile


def _case_caption(data, case) -> str:
    if case.kind == "Miss":
        return f"missed, {int(data.gts[case.gt]['area'])} px"
    if case.kind == "Cls":
        return f"is {data.class_name(case.other_class)} {case.score:.2f}"
    if case.kind in ("Loc", "Both"):
        return f"{case.kind.lower()} IoU {case.iou:.2f} {case.score:.2f}"
    return f"{case.kind.lower()} {case.score:.2f}"


def write_galleries(data, tide, load_image: Callable[[object], np.ndarray], files_dir: str,
                    per_class: int = 6) -> List[Tuple[str, str, Figure]]:
    """Per class: the ``per_class`` highest-scoring false positives and the largest missed
    objects, as JPEG strips under ``files_dir``; returns ``(class name, kind, Figure)``."""
    from PIL import Image

    from mrcnn_trt.fileio import atomic_path

    picks: Dict[Tuple[str, int], list] = {}
    for case in tide.cases:
        key = ("miss" if case.kind == "Miss" else "fp", case.category_id)
        picks.setdefault(key, []).append(case)
    for key, cases in picks.items():
        if key[0] == "fp":
            cases.sort(key=lambda c: -c.score)
        else:
            cases.sort(key=lambda c: -data.gts[c.gt]["area"])
        del cases[per_class:]
    by_image: Dict[object, list] = {}
    for key, cases in picks.items():
        for n, c in enumerate(cases):
            by_image.setdefault(c.image_id, []).append((key, n, c))
    tiles: Dict[Tuple[str, int], dict] = {k: {} for k in picks}
    for image_id, jobs in by_image.items():
        image = load_image(image_id)
        for key, n, c in jobs:
            tiles[key][n] = _tile(image, data, c)
    out = []
    order = sorted(picks, key=lambda k: (list(data.classes).index(k[1]) if k[1] in data.classes else 1e9,
                                         k[0] != "fp"))
    for kind, cid in order:
        ts = [tiles[(kind, cid)][n] for n in sorted(tiles[(kind, cid)])]
        strip = Image.new("RGB", (len(ts) * (TILE + 4), TILE + CAPTION_H), (255, 255, 255))
        for n, t in enumerate(ts):
            strip.paste(t, (n * (TILE + 4), 0))
        name = data.class_name(cid)
        fname = f"gallery_{kind}_{_slug(name)}.jpg"
        with atomic_path(os.path.join(files_dir, fname)) as tmp:
            strip.save(tmp, format="JPEG", quality=88)
        what = "highest-scoring false positives" if kind == "fp" else "largest missed objects"
        out.append((name, kind, Figure(fname, f"{name}: {what} ({len(ts)})")))
    return out


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name.lower())


# ----------------------------------------------------------------------------- inputs on disk
def _read_results(path: str) -> list:
    from mrcnn_trt.fileio import read_json

    if not os.path.isfile(path):
        raise UserError(f"--report: {path} not found (the evaluation writes it; run mrcnn-eval first)")
    return read_json(path)


def load_eval_data(out_dir: str, metrics: dict, dataset) -> Tuple[object, Callable[[object], np.ndarray]]:
    """The evaluated ground truth and predictions (:class:`.error_analysis.EvalData`) and an
    ``image id -> RGB image`` loader (through ``dataset``)."""
    from mrcnn_trt.fileio import read_json

    from .error_analysis import EvalData

    if metrics.get("dataset") == "cityscapes":
        cs_dir = os.path.join(out_dir, "cityscapes")
        gt = read_json(os.path.join(cs_dir, "coco_gt.json"))
        results = _read_results(os.path.join(cs_dir, "coco_instances_results.json"))
        data = EvalData(gt, results)
        names = {i: img["file_name"] for i, img in data.images.items()}
        return data, lambda image_id: dataset.load_image(dataset.index_of(names[image_id]))
    results = _read_results(os.path.join(out_dir, "coco_instances_results.json"))
    gt = dataset.coco.dataset
    # the evaluation took the first images in the dataset's order, minus unreadable ones
    skipped = " ".join(metrics.get("skipped_images") or [])
    n_done = int(metrics.get("num_images") or 0)
    ids = []
    for i in range(min(len(dataset), n_done + len(metrics.get("skipped_images") or []))):
        if skipped and dataset.image_path(i) in skipped:
            continue
        ids.append(dataset.image_id(i))
    data = EvalData(gt, results, ids[:n_done])
    return data, lambda image_id: dataset.load_image(dataset.index_of(image_id))


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
    from mrcnn_trt.cli import progress as progress_bar
    from mrcnn_trt.fileio import read_json, write_bytes_atomic, write_json_atomic

    from . import error_analysis as E

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
        _paper_section(metrics, comparison, model_classes, synthetic, effect),
    ]
    if kind == "cityscapes":
        sections.append(_mapping_section(metrics, cm, model_classes, effect))
    plot_tide(tides, os.path.join(files_dir, "tide.png"))
    sections.append(_tide_section(tides, effect))
    plot_sizes(metrics, os.path.join(files_dir, "sizes.png"))
    sections.append(_size_section(metrics, curves, effect))
    active = [i for i in range(len(cm.classes))
              if len(cm.classes) <= 12 or cm.matrix[i].sum() or cm.matrix[:, i].sum()]
    plot_confusion(cm, os.path.join(files_dir, "confusion.png"), active)
    sections.append(_confusion_section(cm, active))
    with_gt = [n for n in data.class_names if sum(curves.gt_by_size[n].values())]
    plot_pr_curves(curves, os.path.join(files_dir, "pr_curves.png"), with_gt)
    sections.append(Section("Precision–recall curves", [
        "Interpolated precision at each recall (pycocotools, at most 100 detections per image), per class "
        "with ground truth; solid IoU 0.50, dashed IoU 0.75. A curve that ends early means objects that "
        "no detection found; a low start means high-scoring false positives.",
        Figure("pr_curves.png", "precision–recall per class (masks)")], "pr"))
    sections.append(_gallery_section(galleries, gallery_size))

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


def _paper_section(metrics: dict, comp: Comparison, model_classes: Sequence[str], synthetic: bool = False,
                   effect: Optional[str] = None) -> Section:
    """The comparison table. Where it means nothing (synthetic data, the shapes model) or
    where our AP is under-reported (a confidence cut-off), the table says so itself: in the
    'ours' header and in every difference, not only in a note."""
    from mrcnn_trt.config import COCO_CLASS_NAMES, SHAPES_CLASS_NAMES

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
        row = [metric, _fmt(ours) + (" *" if effect and math.isfinite(ours) else "")]
        for (ref, ref_split, d) in cells:
            delta = _delta(ours, ref)
            if meaningless and delta != "—":
                delta += " (synthetic)" if synthetic else " (shapes)"
            row += [f"{_fmt(ref)} [{ref_split}]" if math.isfinite(ref) else "—", delta]
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
    from mrcnn_trt.config import COCO_CLASS_NAMES, SHAPES_CLASS_NAMES
    from mrcnn_trt.data.classmap import SHAPES_TO_CITYSCAPES_NAMES

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
    return [c for c in classes if math.isfinite(_pct((per.get(c) or {}).get("AP")))]


def _mapping_section(metrics: dict, cm, model_classes: Sequence[str], effect: Optional[str] = None) -> Section:
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
         ", ".join(official) or "—", _fmt(_pct(cs.get("AP"))), _fmt(_pct(cs.get("AP50")))],
        [f"mean over the model's classes ({len(mapped)} of {len(mappable)} mappable: those with ground truth or "
         f"detections)", ", ".join(mapped) or "—", _fmt(_pct(cs.get("AP_mappable"))),
         _fmt(_pct(cs.get("AP50_mappable")))],
        ["classes the model cannot predict", ", ".join(missing) or "none", "", ""],
    ], caption=caption))
    return Section("Class mapping", blocks, "mapping")


def _tide_section(tides: Mapping[str, object], effect: Optional[str] = None) -> Section:
    from .error_analysis import TIDE_ERRORS, TIDE_SPECIAL

    segm = tides["segm"]
    rows = []
    for short, name in list(TIDE_ERRORS.items()) + list(TIDE_SPECIAL.items()):
        row = [f"{name} ({short})"]
        for t in tides.values():
            v = t.main.get(short, t.special.get(short))
            row += [_fmt(v, 2), str(t.counts[short]) if short in t.counts else ""]
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
        per_rows.append([name, _fmt(v["AP50"])] + [_fmt(v[s], 2) for s in TIDE_ERRORS])
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


def _size_section(metrics: dict, curves, effect: Optional[str] = None) -> Section:
    note = ("COCO size ranges by mask area: small < 32² px, medium 32²–96², large > 96² (areas in "
            "original-image pixels).")
    if metrics.get("dataset") == "cityscapes":
        note += (" Cityscapes frames are 2048×1024, shrunk to the network's IMAGE_MAX_DIM (1024 for the "
                 "coco and cityscapes presets): most objects there are small or medium.")
    overall = []
    for kind in ("segm", "bbox"):
        m = metrics.get(kind) or {}
        overall.append(["mask" if kind == "segm" else "box"] + [_fmt(_pct(m.get(s))) for s in
                                                                ("AP", "APs", "APm", "APl")])
    rows = []
    for name, s in curves.ap_by_size.items():
        n = curves.gt_by_size.get(name, {})
        if not sum(n.values()):
            continue
        rows.append([name] + [_fmt(s[k]) for k in ("all", "small", "medium", "large")]
                    + [str(n.get(k, 0)) for k in ("small", "medium", "large")])
    return Section("AP by object size", [
        note,
        Table(["", "AP", "APs", "APm", "APl"], overall,
              caption="all classes (pycocotools)" + (f"; {effect}" if effect else "")),
        Figure("sizes.png", "AP by object size"),
        Table(["class", "AP", "small", "medium", "large", "# small", "# medium", "# large"], rows,
              caption="Per class (masks): AP by size and the number of ground-truth objects of each size.")],
        "sizes")


def _confusion_section(cm, active: Sequence[int]) -> Section:
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


def _gallery_section(galleries, per_class: int) -> Section:
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
