"""Small helpers shared by the bench/ scripts (run as ``python bench/NAME.py``,
so this folder is on ``sys.path``)."""
from __future__ import annotations


def load_avg() -> str:
    """The 1, 5 and 15 minute load averages ("n/a" where /proc is absent): printed
    beside timings, since a loaded machine inflates them."""
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "n/a"
