"""The loss curves of a training run (``OUT/losses.png``, matplotlib Agg, no pyplot state)."""
from __future__ import annotations

from ..fileio import atomic_path
from .losses import LOSS_NAMES


def plot_losses(history: dict, path: str) -> None:
    """Write :func:`losses_figure` of ``history`` to ``path`` (PNG)."""
    fig = losses_figure(history)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)


def losses_figure(history: dict):
    """Loss curves: running training losses per step window, and per-epoch train/val totals
    (a matplotlib Figure, no pyplot state). The legends sit outside the plotting areas
    (right of each), so they hide no curve; epochs are whole numbers on their axis."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(13, 4.5), layout="constrained")
    axes = fig.subplots(1, 2)
    steps = history.get("steps", [])
    if steps:
        x = [s["step"] for s in steps]
        for k in ("loss",) + LOSS_NAMES:
            axes[0].plot(x, [s[k] for s in steps], label=k, lw=2 if k == "loss" else 1,
                         marker="o" if len(steps) < 20 else None, ms=3)
        axes[0].set_yscale("log")
    axes[0].set_xlabel("optimizer step")
    axes[0].set_title("training losses (running mean)")
    if steps:
        axes[0].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    ep = history.get("epochs", [])
    if ep:
        x = [e["epoch"] for e in ep]
        axes[1].plot(x, [e["train"]["loss"] for e in ep], "o-", label="train")
        if any(e.get("val") for e in ep):
            xv = [e["epoch"] for e in ep if e.get("val")]
            axes[1].plot(xv, [e["val"]["loss"] for e in ep if e.get("val")], "s-", label="val")
    axes[1].set_xlabel("epoch")
    axes[1].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[1].set_title("total loss per epoch")
    if ep:
        axes[1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    return fig
