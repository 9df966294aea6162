"""The report's matplotlib charts (PNG): TIDE bars, AP by size, confusion matrix,
precision-recall curves.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

from mrcnn_trt.fileio import atomic_path

from ..error_analysis import TIDE_ERRORS, TIDE_SPECIAL
from .references import fmt, pct


# ----------------------------------------------------------------------------- plots
def _save_figure(fig, path: str, dpi: int = 100, tight: bool = True) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight" if tight else None)


def plot_tide(tides: Mapping[str, object], path: str) -> None:
    """Horizontal bars: dAP per TIDE error type (and the special errors), one colour per IoU type."""
    from matplotlib.figure import Figure as MplFigure

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
                                                                       f"(AP50 {fmt(t.ap50)})")
        for b, v in zip(bars, raw):
            ax.text(b.get_width() + 0.2, b.get_y() + b.get_height() / 2, fmt(v) if math.isfinite(v) else "n/a",
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
        raw = [pct((metrics.get(kind) or {}).get(s)) for s in sizes]
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
        ax.set_title(f"{name} (AP {fmt(ap)})", fontsize=9)
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
