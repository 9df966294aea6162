"""Shared test fixtures: the ../shared reference data (skipped when absent)."""
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.path.normpath(os.path.join(REPO, "..", "shared", "data"))


def shared_path(*parts: str) -> str:
    """Path under ../shared/data; skips the test when it is absent (fresh user clone)."""
    p = os.path.join(SHARED_DATA, *parts)
    if not os.path.exists(p):
        pytest.skip(f"reference data not available: {p}")
    return p


@pytest.fixture
def seed_images():
    d = shared_path("seed-images")
    return sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith(".jpg"))


@pytest.fixture
def coco_sample():
    return shared_path("coco-val2017-sample")


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory):
    """A checkpoint of the ``tiny`` preset with seeded random weights (fast CLI tests)."""
    import torch

    from mrcnn_trt.model import build_model, save_checkpoint

    torch.manual_seed(0)
    m = build_model("tiny")
    p = str(tmp_path_factory.mktemp("tiny_weights") / "tiny.pth")
    save_checkpoint(p, m, m.config)
    return p
