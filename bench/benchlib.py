"""Small helpers shared by the bench/ scripts (run as ``python bench/NAME.py``,
so this folder is on ``sys.path``)."""
from __future__ import annotations

from mrcnn_trt.config import preset
from mrcnn_trt.model import build_model


def load_avg() -> str:
    """The 1, 5 and 15 minute load averages ("n/a" where /proc is absent): printed
    beside timings, since a loaded machine inflates them."""
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "n/a"


def random_coco_model(backbone: str = "resnet101", min_confidence: float = 0.3, seed: int = 0):
    """A COCO-layout Mask R-CNN (1024 px, 81 classes) with seeded random weights, in eval
    mode, its heads sharpened (decisive class scores, spread box deltas) so that it
    returns detections and the detection/mask stages do real work."""
    import torch

    torch.manual_seed(seed)
    m = build_model(preset("coco").replace(BACKBONE=backbone, DETECTION_MIN_CONFIDENCE=min_confidence))
    with torch.no_grad():
        m.classifier.linear_class.weight.mul_(300)
        m.classifier.linear_bbox.weight.mul_(30)
    return m.eval()
