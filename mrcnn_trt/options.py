"""One option vocabulary for every ``mrcnn-*`` command.

Option *groups* (Polygraphy's argument groups are the model) add a group of
options to an :mod:`argparse` parser, with the same name, type, validation
and help text in every tool, and *parse* the parsed namespace into the value
the library API takes: a checked path, a :class:`DatasetSpec`, a thread
count, an output folder that is created (and locked) as the tool writes.
A command is then a list of groups and one call into the API::

    model, data = ModelOptions(), DatasetOptions()
    out, threads = OutputOptions(default="runs/eval"), ThreadOptions()
    p = argparse.ArgumentParser(prog="mrcnn-eval")
    add_groups(p, model, data, out, threads)
    args = p.parse_args(argv)
    path, spec = model.parse(args), data.parse(args)   # one-line UserError when wrong
    with out.open(out.parse(args)) as folder:
        ...

Numbers are validated by the parser itself, so ``--threads 0`` or
``--limit -1`` fail before any work starts, with argparse's usual one-line
``error:`` message and exit code 2; a group's ``parse`` raises
:class:`~mrcnn_trt.errors.UserError` (one ``error:`` line, exit code 2) for
what only the file system can tell. The ``add_*`` functions are the single
definitions of each option; the groups call them.

Nothing here imports torch, onnxruntime or TensorRT (``--help`` stays fast).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence

from . import distributed
from .config import Config, preset
from .errors import UserError
from .fileio import output_folder

try:
    import fcntl
except ImportError:  # pragma: no cover - no flock on this platform
    fcntl = None

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


def add_config(p: argparse.ArgumentParser, help: Optional[str] = None, metavar: Optional[str] = "PRESET|JSON") -> None:
    p.add_argument("--config", metavar=metavar,
                   help=help or "config preset (coco, coco-eval, cityscapes, shapes, tiny) or a .json file; "
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


# ---------------------------------------------------------------- option groups


class OptionGroup:
    """A group of options that adds *and* parses.

    ``add(parser)`` adds the group's options (through the ``add_*`` functions
    above, so every tool spells them alike); ``parse(args)`` checks the parsed
    values and returns what the library API takes, raising a one-line
    :class:`~mrcnn_trt.errors.UserError` for a wrong one. Subclasses are frozen
    dataclasses whose fields are the per-tool settings (default, help text); the
    values themselves live in the :class:`argparse.Namespace`. A group may read
    other groups (:class:`RunnerOptions`-style groups hold them as fields)."""

    def add(self, parser: argparse.ArgumentParser) -> None:
        raise NotImplementedError

    def parse(self, args: argparse.Namespace) -> Any:
        return None


def add_groups(parser: argparse.ArgumentParser, *groups: OptionGroup) -> argparse.ArgumentParser:
    """Add each group's options to ``parser``, in order (the order of ``--help``)."""
    for g in groups:
        g.add(parser)
    return parser


class ValueOptions(OptionGroup):
    """A group of one option whose parsed value is what the API takes (``dest``: its name
    in the namespace)."""

    dest = ""

    def parse(self, args) -> Any:
        return getattr(args, self.dest)


@dataclass(frozen=True)
class InputFileOptions(ValueOptions):
    """A group of one optional input file (``help``: this tool's help text): ``parse``
    returns the path (or None) and stops with ``<what> not found: PATH`` when it does
    not exist. Subclasses name ``dest``, ``what`` and the ``add_*`` function."""

    help: Optional[str] = None
    what = "file"
    add_option = staticmethod(add_model)

    def add(self, parser):
        self.add_option(parser, help=self.help)

    def parse(self, args) -> Optional[str]:
        path = getattr(args, self.dest)
        if path and not os.path.exists(path):
            raise UserError(f"{self.what} not found: {path}")
        return path


@dataclass(frozen=True)
class ModelOptions(InputFileOptions):
    """``--model`` (alias ``--engine``) -> the model file (.plan/.onnx/.pth), or None
    for the shipped shapes model."""

    dest, what, add_option = "model", "model file", staticmethod(add_model)


@dataclass(frozen=True)
class WeightsOptions(InputFileOptions):
    """``--weights`` -> a .pth checkpoint, or None for the shipped shapes model."""

    dest, what, add_option = "weights", "weights file", staticmethod(add_weights)


@dataclass(frozen=True)
class ConfigOptions(OptionGroup):
    """``--config`` -> a :class:`~mrcnn_trt.config.Config`, or None (the tool's default:
    the config stored in the checkpoint). ``inline_json``: also take an object written
    on the command line, ``'{"preset": "shapes", "LEARNING_RATE": 0.02}'`` (mrcnn-train)."""

    help: Optional[str] = None
    metavar: Optional[str] = "PRESET|JSON"
    inline_json: bool = False

    def add(self, parser):
        add_config(parser, help=self.help, metavar=self.metavar)

    def parse(self, args) -> Optional[Config]:
        return resolve_config(args.config, self.inline_json)


def resolve_config(text: Optional[str], inline_json: bool = False) -> Optional[Config]:
    """A ``--config`` value -> a :class:`~mrcnn_trt.config.Config` (None stays None): a
    preset name or a .json file, with ``inline_json`` also a JSON object of overrides."""
    if text is None or not (inline_json or text):
        return None
    if inline_json:
        text = text.strip()
        if text.startswith("{"):
            try:
                overrides = json.loads(text)
            except json.JSONDecodeError as e:
                raise UserError(f"--config: invalid JSON: {e}") from None
            return Config.from_overrides(overrides)
    return preset(text)


@dataclass(frozen=True)
class DatasetSpec:
    """Where an evaluation dataset is: what ``mrcnn_trt.data.open_dataset(root,
    split=split, fmt=fmt, **open_options)`` opens and what the evaluators are made
    for (``fmt``: coco | cityscapes)."""

    fmt: str
    root: str
    split: str
    image_dir: Optional[str] = None

    @property
    def open_options(self) -> Mapping[str, str]:
        return {"image_dir": self.image_dir} if self.image_dir else {}


@dataclass(frozen=True)
class DatasetOptions(OptionGroup):
    """``--dataset``, ``--data-root``, ``--split``, ``--images`` -> a :class:`DatasetSpec`
    (None when not required and no ``--data-root`` was given)."""

    required: bool = True
    kinds: Sequence[str] = ("coco", "cityscapes")
    split_default: str = "val"

    def add(self, parser):
        add_dataset(parser, required=self.required, kinds=self.kinds, split_default=self.split_default)

    def parse(self, args) -> Optional[DatasetSpec]:
        if args.data_root is None:
            return None
        if not os.path.exists(args.data_root):
            raise UserError(f"data root not found: {args.data_root}")
        if args.image_dir and args.dataset != "coco":
            raise UserError("--images is for COCO data (Cityscapes images are read from DATA_ROOT/leftImg8bit)")
        return DatasetSpec(args.dataset, args.data_root, args.split, args.image_dir)


@dataclass(frozen=True)
class OutputOptions(OptionGroup):
    """``-o/--out`` -> the output path. A file output (``what="file"``) is checked:
    not an existing folder (``example``: the file name suggested instead) and in a
    writable folder (``noun``: how the error names the file). :meth:`open` creates an output folder for the run (removed again
    when the run fails while it is still empty) and, with ``lock`` (the tool's name),
    holds it against a second run of the tool (:func:`locked_output`)."""

    default: Optional[str] = None
    what: str = "folder"
    required: bool = False
    help: Optional[str] = None
    example: Optional[str] = None
    noun: str = "file"
    lock: Optional[str] = None

    def add(self, parser):
        add_output(parser, default=self.default, what=self.what, required=self.required, help=self.help)

    def parse(self, args) -> Optional[str]:
        return self.check(args.out)

    def check(self, path: Optional[str]) -> Optional[str]:
        """The checks of :meth:`parse` for a path a tool made itself (a default derived from its input)."""
        if path is None or self.what != "file":
            return path
        if self.example and os.path.isdir(path):
            raise UserError(f"-o {path} is a folder; give the {self.noun}, e.g. {os.path.join(path, self.example)}")
        folder = os.path.dirname(os.path.abspath(path))
        if os.path.isdir(folder) and not os.access(folder, os.W_OK):
            raise UserError(f"output folder is not writable: {folder}")
        return path

    @contextlib.contextmanager
    def open(self, path: str) -> Iterator[str]:
        with output_folder(path):
            with locked_output(path, self.lock) if self.lock else contextlib.nullcontext(path):
                yield path


def lock_name(tool: str) -> str:
    """The lock file of an output folder while ``tool`` writes into it."""
    return f".{tool}.lock"


@contextlib.contextmanager
def locked_output(folder: str, tool: str) -> Iterator[str]:
    """Hold an exclusive lock on an output folder while results are written into it
    (``flock`` on ``folder/.<tool>.lock``, released even when the process is
    killed): a second run of ``tool`` into the same folder is refused with one line
    instead of both mixing their files. The lock file is removed on exit."""
    if fcntl is None:  # pragma: no cover - no flock on this platform
        yield folder
        return
    path = os.path.join(folder, lock_name(tool))
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 32).decode(errors="replace").strip()
            os.close(fd)
            raise UserError(f"output folder {folder} is in use by another {tool}"
                            f"{f' (pid {holder})' if holder.isdigit() else ''}: wait for it to finish or "
                            f"pass another -o/--out") from None
        try:   # the file may have been removed by its previous holder between open and flock
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield folder
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
        os.close(fd)


@dataclass(frozen=True)
class ThreadOptions(ValueOptions):
    """``--threads N`` -> N, or None: one per available core (``default=None``)."""

    default: Optional[int] = 2
    dest = "threads"

    def add(self, parser):
        add_threads(parser, default=self.default)


@dataclass(frozen=True)
class DeviceOptions(ValueOptions):
    """``--device`` -> ``cpu``, ``cuda`` or ``cuda:N``."""

    default: str = "cpu"
    dest = "device"

    def add(self, parser):
        add_device(parser, default=self.default)


@dataclass(frozen=True)
class BatchOptions(ValueOptions):
    """``--batch N`` -> N (None: the tool's default, e.g. the config's)."""

    default: Optional[int] = 1
    help: Optional[str] = None
    dest = "batch"

    def add(self, parser):
        add_batch(parser, default=self.default, help=self.help)


@dataclass(frozen=True)
class LimitOptions(ValueOptions):
    """``--limit N`` -> N, or None (all images)."""

    dest = "limit"

    def add(self, parser):
        add_limit(parser)


@dataclass(frozen=True)
class MinConfidenceOptions(ValueOptions):
    """``--min-confidence P`` -> P, or None (the config's DETECTION_MIN_CONFIDENCE)."""

    help: Optional[str] = None
    dest = "min_confidence"

    def add(self, parser):
        add_min_confidence(parser, help=self.help)


@dataclass(frozen=True)
class CalibrationSpec:
    """INT8 calibration data: ``images`` (a folder, COCO root or json, Cityscapes root;
    None: no calibration), ``count`` images drawn with ``seed``."""

    images: Optional[str]
    count: int
    seed: int


@dataclass(frozen=True)
class CalibrationOptions(OptionGroup):
    """``--calib-images``, ``--calib-count``, ``--seed`` -> a :class:`CalibrationSpec`."""

    required: bool = False
    default_count: int = 500
    images_alias: bool = False

    def add(self, parser):
        add_calibration(parser, required=self.required, default_count=self.default_count,
                        images_alias=self.images_alias)

    def parse(self, args) -> CalibrationSpec:
        return CalibrationSpec(args.calib_images, args.calib_count, args.seed)


@dataclass(frozen=True)
class DistributedOptions(OptionGroup):
    """``--nproc``, ``--dist-timeout``: :meth:`launch` runs a command's work as one
    rank of a job (:mod:`mrcnn_trt.distributed`)."""

    what: str = "work"

    def add(self, parser):
        add_distributed(parser, self.what)

    def parse(self, args) -> distributed.DistContext:
        """The job this process is part of (the one-process defaults when not launched)."""
        return distributed.current()

    def launch(self, args, module: str, argv: Sequence[str], body: Callable[[distributed.DistContext], int],
               device: str = "cpu", prepare: Optional[Callable[[], None]] = None, **init: Any) -> int:
        """``--nproc N`` > 1 outside torchrun: start N processes of ``python -m module argv``
        through torchrun and return their exit code. Otherwise (one process, or a rank
        torchrun started): ``prepare()``, join the job on ``device`` (``init``: more
        arguments of :func:`mrcnn_trt.distributed.init`), return ``body(ctx)`` and leave the
        job, also on errors (see :func:`mrcnn_trt.distributed.shutdown`)."""
        if args.nproc > 1 and not distributed.launched():
            return distributed.relaunch(module, argv, args.nproc)
        if prepare is not None:
            prepare()
        code = None
        try:
            code = body(distributed.init(device, args.dist_timeout, **init))
            return code
        finally:
            distributed.shutdown(ended_well=distributed.job_intact(code))
