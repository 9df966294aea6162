"""Shared test fixtures: the ../shared reference data (skipped when absent), the
correctly rounded reference transcendentals, the CUDA device of the operator tests."""
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


@pytest.fixture(scope="module")
def tiny_onnx(tiny_weights, tmp_path_factory):
    """:func:`tiny_weights` exported with mrcnn-export (one per test module: tests may damage copies)."""
    from mrcnn_trt.export.cli import main as export_main

    out = str(tmp_path_factory.mktemp("onnx") / "tiny.onnx")
    assert export_main(["--weights", tiny_weights, "-o", out]) == 0
    return out


@pytest.fixture(scope="session")
def shipped_onnx(tmp_path_factory):
    """The shipped shapes model exported once (trt flavor, batch 1; read-only for tests)."""
    from mrcnn_trt.export.exporter import export_onnx
    from mrcnn_trt.model.checkpoint import shipped_model_path
    from mrcnn_trt.model.loading import load_model

    model, _, _ = load_model(shipped_model_path())
    path = str(tmp_path_factory.mktemp("shipped_onnx") / "shapes.onnx")
    export_onnx(model, path, weights_path=shipped_model_path())
    return path


@pytest.fixture
def exact_transcendentals(monkeypatch):
    """Make the reference's exp/log2 correctly rounded (float64 then float32), like the kernels
    (plugins/common/mrcnn_math.h); PyTorch's float32 exp is off by one ulp for ~1% of inputs."""
    import torch

    exp, log2 = torch.exp, torch.log2
    monkeypatch.setattr(torch, "exp", lambda x: exp(x.double()).to(x.dtype))
    monkeypatch.setattr(torch, "log2", lambda x: log2(x.double()).to(x.dtype))


def draw_shapes(seed: int, width: int = 320, height: int = 240):
    """An HxWx3 uint8 image of circles, squares and triangles on a smooth background, drawn
    with Pillow only (the shipped shapes model detects them; no pycocotools needed, so it
    works on the GPU machine too)."""
    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.uniform(0, 255, (3, 4, 3)).astype(np.uint8)).resize((width, height), Image.BILINEAR)
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(3, 7))):
        size = float(rng.uniform(24, min(width, height) / 2))
        cx, cy = rng.uniform(size / 2, width - size / 2), rng.uniform(size / 2, height - size / 2)
        colour = tuple(int(c) for c in rng.uniform(0, 255, 3))
        box = [cx - size / 2, cy - size / 2, cx + size / 2, cy + size / 2]
        kind = int(rng.integers(3))
        if kind == 0:
            draw.ellipse(box, fill=colour)
        elif kind == 1:
            draw.rectangle(box, fill=colour)
        else:
            draw.polygon([(cx, cy - size / 2), (cx - size / 2, cy + size / 2), (cx + size / 2, cy + size / 2)],
                         fill=colour)
    noisy = np.asarray(img, np.float32) + rng.normal(0, 4, (height, width, 3))
    return np.clip(noisy, 0, 255).astype(np.uint8)


def cuda_skip_reason():
    """Why the CUDA tests cannot run here (None when they can). With MRCNN_REQUIRE_CUDA=1
    (tools/gpu_check.sh on a GPU machine) a missing GPU or library fails instead."""
    import torch

    from mrcnn_trt.plugins import cuda

    reason = None
    if not torch.cuda.is_available():
        reason = "no CUDA device (torch.cuda.is_available() is False)"
    elif not cuda.available():
        reason = f"{cuda.LIB_NAME} is not built (tools/gpu_check.sh or tools/build_cuda.sh builds it)"
    if reason and os.environ.get("MRCNN_REQUIRE_CUDA") == "1":
        pytest.fail(f"MRCNN_REQUIRE_CUDA=1 but {reason}")
    return reason


@pytest.fixture(params=["cpu", "cuda"])
def device(request):
    """Each operator / model test runs on the CPU and, where possible, on CUDA."""
    if request.param == "cuda":
        reason = cuda_skip_reason()
        if reason:
            pytest.skip(reason)
        import torch

        torch.backends.cuda.matmul.allow_tf32 = False   # float32 convs and matmuls as on the CPU
        torch.backends.cudnn.allow_tf32 = False
    return request.param


@pytest.fixture
def cuda_only():
    """For tests of CUDA-only behaviour (streams, the library's build facts)."""
    reason = cuda_skip_reason()
    if reason:
        pytest.skip(reason)
    return "cuda"


def write_scenes(folder, seed: int, specs) -> list:
    """Synthetic shapes scenes (the shipped model finds objects in them) written to
    ``folder`` as ``scene<i>.<ext>``, one per ``(width, height, ext)`` of ``specs``; the paths."""
    from PIL import Image

    from mrcnn_trt.data.synthetic import generate

    files = []
    for i, (w, h, ext) in enumerate(specs):
        path = os.path.join(str(folder), f"scene{i}.{ext}")
        Image.fromarray(generate(seed, i, "val", width=w, height=h).image).save(path, quality=92)
        files.append(path)
    return files


def pipeline_documents(onnx_path: str, files) -> dict:
    """The project's in-process pipeline (ONNX Runtime + custom ops): the JSON document
    of each image file, what a healthy server answers."""
    import json

    from mrcnn_trt.model.molding import load_image
    from mrcnn_trt.runtime.results import result_to_json
    from mrcnn_trt.runtime.runners import OnnxRunner, detect

    runner = OnnxRunner(onnx_path)
    return {f: json.loads(json.dumps(result_to_json(detect(runner, [load_image(f)])[0], runner.config.CLASS_NAMES, f)))
            for f in files}


def model_repository(onnx_path: str, folder, max_batch: int) -> str:
    """A Triton model repository for ``onnx_path`` written to ``<folder>/repo`` (mrcnn-triton repo)."""
    from mrcnn_trt.serve.repository import RepoOptions, write_repository

    path = os.path.join(str(folder), "repo")
    write_repository(onnx_path, path, RepoOptions(max_batch=max_batch))
    return path
