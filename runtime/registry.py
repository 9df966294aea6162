"""Which runner for which model file: the one registry every tool opens models through.

    runner = open_runner("model.plan")      # TensorRT (mrcnn_trt.engine.runner)
    runner = open_runner("model.onnx")      # ONNX Runtime (mrcnn_trt.runtime.runners.OnnxRunner)
    runner = open_runner("weights.pth")     # PyTorch (mrcnn_trt.runtime.torch_runner.TorchRunner)
    runner = open_runner(None)              # the shipped shapes model, PyTorch
    runner = open_runner("m.onnx", "onnxruntime", threads=4)
    backends()                              # ("onnxruntime", "tensorrt", "torch")

A backend is registered with :func:`register_runner`: its name, the file
extensions it claims and its factory ``factory(path, **options) -> Runner``,
either a callable or a ``"module:attribute"`` name imported when a file is
first opened with it (so registering PyTorch does not import torch, and
``mrcnn-eval --help`` stays light).

ONNX Runtime and PyTorch are registered here, by name. Backends of the layers
above ``runtime`` register themselves when their module is imported (TensorRT:
``mrcnn_trt.engine.runner``) and announce that module in the entry point group
``mrcnn_trt.runners`` (setup.py); the registry imports the modules of that group
the first time it meets a backend name or a file extension it does not know, so
``runtime`` never imports ``engine`` (tests/test_layering.py).

The options a factory receives: ``threads`` (CPU threads), ``pipelined`` (the
runner shares the CPU with reading / scoring threads), ``config`` (a
:class:`~mrcnn_trt.config.Config` or preset for PyTorch weights), ``ops`` (the
PyTorch custom-op implementation), ``device`` (PyTorch), ``spinning`` (ONNX
Runtime); each factory ignores the options that do not concern its backend.
"""
from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from importlib import metadata
from typing import Callable, Dict, Optional, Tuple, Union

from mrcnn_trt.errors import UserError

ENTRY_POINT_GROUP = "mrcnn_trt.runners"

Factory = Union[Callable[..., object], str]


@dataclass(frozen=True)
class RunnerEntry:
    """``extensions``: lower case, with the dot (``".plan"``); ``what``: the files the
    backend takes, for error messages; ``fallback``: the backend of every file that
    no other backend claims, and of no file at all (the shipped model)."""

    backend: str
    extensions: Tuple[str, ...]
    factory: Factory
    what: str
    fallback: bool = False

    def open(self, path: Optional[str], **options):
        factory = self.factory
        if isinstance(factory, str):
            module, _, attr = factory.partition(":")
            factory = getattr(importlib.import_module(module), attr)
        return factory(path, **options)


_RUNNERS: Dict[str, RunnerEntry] = {}
_entry_points_loaded = False


def register_runner(backend: str, extensions, factory: Factory, what: Optional[str] = None,
                    fallback: bool = False) -> None:
    """Register (or replace) ``backend``: ``factory(path, **options)`` opens the files
    whose extension is one of ``extensions``. At most one backend is the fallback."""
    if not backend or backend == "auto":
        raise ValueError(f"{backend!r} cannot name a backend")
    if fallback and any(e.fallback and e.backend != backend for e in _RUNNERS.values()):
        raise ValueError(f"backend {backend!r}: another backend is the fallback already")
    exts = tuple(e.lower() for e in extensions)
    _RUNNERS[backend] = RunnerEntry(backend, exts, factory, what or f"a {' or '.join(exts)} file", fallback)


def _entry_points():
    return metadata.entry_points(group=ENTRY_POINT_GROUP)


def _load_entry_points() -> None:
    """Import, once, the module of each ``mrcnn_trt.runners`` entry point whose
    backend is not registered yet (it registers itself when imported)."""
    global _entry_points_loaded
    if not _entry_points_loaded:
        _entry_points_loaded = True
        for ep in _entry_points():
            if ep.name not in _RUNNERS:
                ep.load()


def backends() -> Tuple[str, ...]:
    """Every backend, registered or announced by an entry point (none is imported), sorted."""
    return tuple(sorted(set(_RUNNERS) | {ep.name for ep in _entry_points()}))


def _by_extension(ext: str) -> Optional[RunnerEntry]:
    return next((e for e in _RUNNERS.values() if ext and ext in e.extensions), None)


def backend_for(path: Optional[str]) -> str:
    """The backend that opens ``path``, by its extension (the fallback when none claims it)."""
    ext = os.path.splitext(path or "")[1].lower()
    entry = _by_extension(ext)
    if entry is None and ext:
        _load_entry_points()
        entry = _by_extension(ext)
    if entry is None:
        entry = next((e for e in _RUNNERS.values() if e.fallback), None)
    if entry is None:
        raise UserError(f"no backend opens {path} (backends: {', '.join(backends())})")
    return entry.backend


def open_runner(path: Optional[str], backend: str = "auto", threads: Optional[int] = 2, config=None,
                ops: str = "native", pipelined: bool = False, **options):
    """A :class:`~mrcnn_trt.runtime.runners.Runner` for ``path``.

    ``backend`` ``auto`` picks it from the extension: .plan/.engine -> TensorRT,
    .onnx -> ONNX Runtime, anything else (or no file: the shipped model) -> PyTorch.
    An explicit backend refuses a file it does not take (``onnxruntime`` a file that
    is not .onnx, ``torch`` a file another backend claims) and an unknown backend is
    refused: one-line :class:`~mrcnn_trt.errors.UserError` each.

    ``pipelined``: the runner will share the CPU with reading/scoring threads. ONNX
    Runtime's threads never busy-wait between ops now, pipelined or not (they would
    take the cores from those threads and from other processes: mrcnn_trt.threads)."""
    if backend == "auto":
        backend = backend_for(path)
    if backend not in _RUNNERS:
        _load_entry_points()
    entry = _RUNNERS.get(backend)
    if entry is None:
        raise UserError(f"unknown backend {backend!r} ({'|'.join(('auto',) + backends())})")
    ext = os.path.splitext(path or "")[1].lower()
    if entry.fallback:
        if ext:
            _load_entry_points()
        if _by_extension(ext) not in (None, entry):
            raise UserError(f"backend {backend} needs {entry.what}, got {path}")
    elif ext not in entry.extensions:
        raise UserError(f"backend {backend} needs {entry.what}, got {path}")
    return entry.open(path, threads=threads, config=config, ops=ops, pipelined=pipelined, **options)


register_runner("onnxruntime", (".onnx",), "mrcnn_trt.runtime.runners:open_onnx")
register_runner("torch", (".pth", ".pt"), "mrcnn_trt.runtime.torch_runner:open_checkpoint",
                what="a .pth checkpoint", fallback=True)
