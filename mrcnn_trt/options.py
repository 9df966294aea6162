"""One option vocabulary for every ``mrcnn-*`` command.

Each function adds one group of options to an :mod:`argparse` parser, with
the same name, type, validation and help text in every tool (Polygraphy's
argument groups are the model). Numbers are validated by the parser itself,
so ``--threads 0`` or ``--limit -1`` fail before any work starts, with
argparse's usual one-line ``error:`` message and exit code 2.

    p = argparse.ArgumentParser(prog="mrcnn-eval")
    add_model(p, required=False)           # --model (alias --engine) / --weights
    add_output(p, default="runs/eval", what="folder")
    add_threads(p)
    add_device(p)

Nothing here imports torch, onnxruntime or TensorRT (``--help`` stays fast).
"""
from __future__ import annotations

import argparse
import math
from typing import Callable, Optional, Sequence

# ---------------------------------------------------------------- typed values


def _number(kind: Callable, low: Optional[float], high: Optional[float], low_open: bool = False,
            what: str = "") -> Callable[[str], object]:
    def parse(text: str):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what or kind.__name__}, got {text!r}") from None
        if isinstance(v, float) and not math.isfinite(v):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        if low is not None and (v <= low if low_open else v < low):
            raise argparse.ArgumentTypeError(f"must be {'>' if low_open else '>='} {low:g}, got {text}")
        if high is not None and v > high:
            raise argparse.ArgumentTypeError(f"must be <= {high:g}, got {text}")
        return v

    parse.__name__ = what or kind.__name__   # argparse names the type in its messages
    return parse


#: Upper bounds of resource-sized options: beyond them a run only grows memory without
#: progress (100000 threads) or fails late; the parser refuses them at once.
MAX_THREADS = 256        # --threads
MAX_BATCH = 256          # --batch, --max-batch: images per network call
MAX_WORKERS = 64         # --workers: data loader processes

#: ``type=`` callables for argparse.
positive_int = _number(int, 1, None, what="an integer >= 1")
thread_count = _number(int, 1, MAX_THREADS, what=f"a thread count in 1..{MAX_THREADS}")
batch_count = _number(int, 1, MAX_BATCH, what=f"a batch size in 1..{MAX_BATCH}")
worker_count = _number(int, 0, MAX_WORKERS, what=f"a worker count in 0..{MAX_WORKERS}")
nonnegative_int = _number(int, 0, None, what="an integer >= 0")
positive_float = _number(float, 0.0, None, low_open=True, what="a number > 0")
probability = _number(float, 0.0, 1.0, what="a number in [0, 1]")
port_number = _number(int, 0, 65535, what="a port number (0 = any free port)")


def device_name(text: str) -> str:
    """``cpu``, ``cuda`` or ``cuda:N`` (the torch spelling, used by every tool)."""
    t = text.strip().lower()
    if t in ("cpu", "cuda") or (t.startswith("cuda:") and t[5:].isdigit()):
        return t
    if t.isdigit():   # a bare index, as TensorRT tools often take
        return f"cuda:{t}"
    raise argparse.ArgumentTypeError(f"expected cpu, cuda or cuda:N, got {text!r}")


device_name.__name__ = "device"


def cuda_index(device: str) -> int:
    """``cuda:1`` -> 1, ``cuda`` -> 0 (for TensorRT / the CUDA driver)."""
    return int(device.split(":", 1)[1]) if ":" in device else 0


# ---------------------------------------------------------------- groups

def add_output(p: argparse.ArgumentParser, default: Optional[str] = None, what: str = "folder",
               required: bool = False, help: Optional[str] = None) -> None:
    """``-o/--out``: where results go (a folder or a file, per tool); ``--output``
    is kept as an alias."""
    text = help or (f"output {what}" + (f" (default {default})" if default else ""))
    p.add_argument("-o", "--out", "--output", dest="out", default=default, required=required,
                   metavar="FOLDER" if what == "folder" else "FILE", help=text)


def add_weights(p: argparse.ArgumentParser, help: Optional[str] = None) -> None:
    """``--weights``: a .pth checkpoint (default: the shipped shapes model)."""
    p.add_argument("--weights", metavar="PTH",
                   help=help or "checkpoint .pth (the lab's mask_rcnn_coco.pth or ours); "
                                "default: the small shipped shapes model")


def add_model(p: argparse.ArgumentParser, help: Optional[str] = None) -> None:
    """``--model`` (alias ``--engine``): a .plan, .onnx or .pth."""
    p.add_argument("--model", "--engine", dest="model", metavar="FILE",
                   help=help or "model.plan (TensorRT) | model.onnx (ONNX Runtime) | weights.pth (PyTorch); "
                                "default: the shipped shapes model")


def add_config(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="PRESET|JSON",
                   help="config preset (coco, coco-eval, cityscapes, shapes, tiny) or a .json file; "
                        "default: the one stored in the checkpoint")


def add_dataset(p: argparse.ArgumentParser, required: bool = True, kinds: Sequence[str] = ("coco", "cityscapes"),
                split_default: str = "val") -> None:
    """``--dataset``, ``--data-root``, ``--split``, ``--images``."""
    p.add_argument("--dataset", choices=list(kinds), required=required, help="dataset format")
    p.add_argument("--data-root", required=required, metavar="DIR",
                   help="dataset folder (COCO: annotations/instances_<split>.json + images; Cityscapes: "
                        "leftImg8bit/ + gtFine/), or a COCO instances .json")
    add_split(p, split_default)
    p.add_argument("--images", dest="image_dir", metavar="DIR",
                   help="folder of the COCO images when they are not beside the annotations "
                        "(DATA_ROOT/<split>, DATA_ROOT/images/<split> and DATA_ROOT/images are tried)")


def add_split(p: argparse.ArgumentParser, default: str = "val") -> None:
    p.add_argument("--split", default=default, help=f"dataset split (default {default})")


def add_threads(p: argparse.ArgumentParser, default: Optional[int] = 2) -> None:
    """``--threads N`` (at most :data:`MAX_THREADS`); ``default=None``: one per available core
    (:mod:`mrcnn_trt.threads`)."""
    p.add_argument("--threads", type=thread_count, default=default, metavar="N",
                   help=f"CPU threads (ONNX Runtime / PyTorch; at most {MAX_THREADS}); default "
                        + (str(default) if default else "one per available core"))


def add_device(p: argparse.ArgumentParser, default: str = "cpu") -> None:
    p.add_argument("--device", type=device_name, default=default,
                   help=f"cpu, cuda or cuda:N (default {default})")


def add_batch(p: argparse.ArgumentParser, default: Optional[int] = 1, help: Optional[str] = None) -> None:
    p.add_argument("--batch", type=batch_count, default=default, metavar="N",
                   help=help or f"images per network call (default {default}; at most {MAX_BATCH})")


def add_limit(p: argparse.ArgumentParser) -> None:
    p.add_argument("--limit", type=positive_int, metavar="N", help="only the first N images (default: all)")


def add_min_confidence(p: argparse.ArgumentParser, help: Optional[str] = None) -> None:
    p.add_argument("--min-confidence", type=probability, metavar="P",
                   help=help or "override DETECTION_MIN_CONFIDENCE (detections scoring below are dropped)")


def add_calibration(p: argparse.ArgumentParser, required: bool = False, default_count: int = 500,
                    images_alias: bool = False) -> None:
    """``--calib-images``, ``--calib-count``, ``--seed`` (the same in mrcnn-calibrate and mrcnn-build-engine)."""
    names = ["--calib-images"] + (["--images"] if images_alias else [])
    p.add_argument(*names, dest="calib_images", metavar="DIR", required=required,
                   help="INT8 calibration images: a folder of images, a COCO root or instances .json, or a "
                        "Cityscapes root (prefer training images)")
    p.add_argument("--calib-count", type=positive_int, default=default_count, metavar="N",
                   help=f"calibration images (default {default_count}; a fixed-seed random subset when there "
                        f"are more)")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="seed of the calibration subset (default 0)")


def add_distributed(p: argparse.ArgumentParser, what: str = "work") -> None:
    """``--nproc`` (start that many processes on this machine through torchrun) and
    ``--dist-timeout`` (how long a rank waits for the others); see ``mrcnn_trt.distributed``."""
    p.add_argument("--nproc", type=positive_int, default=1, metavar="N",
                   help=f"share the {what} between N processes on this machine (torchrun --standalone "
                        f"--nproc_per_node N; one GPU each with --device cuda); for several machines run "
                        f"torchrun yourself (README, 'Training and evaluation on several GPUs or machines')")
    p.add_argument("--dist-timeout", type=positive_float, default=1800.0, metavar="S",
                   help="with several processes: seconds a rank waits for the others before it stops with "
                        "one line, exit code 5 (default 1800; a killed process is noticed at once)")
