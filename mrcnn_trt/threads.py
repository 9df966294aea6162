"""CPU threads of PyTorch and ONNX Runtime: how many, and how an idle thread waits.

Every ``mrcnn-*`` command runs on machines that other work shares. Thread pools
that *busy-wait* (spin) for the next parallel region keep a core while they wait;
when every core also runs another process, the thread they wait for is
descheduled and each parallel region costs whole scheduler time slices: on a busy
2-core machine the shipped model's ``model.detect`` took 0.9-1.6 s per image with
PyTorch's default OpenMP settings and about 0.14 s with idle threads that sleep. So:

* **PyTorch** (GNU OpenMP, ``libgomp``; oneDNN uses the same pool):
  :func:`prepare_process` puts ``GOMP_SPINCOUNT=1000`` (and ``KMP_BLOCKTIME=0`` for
  Intel's runtime) into the environment: an idle thread spins for about 1000 polls
  (microseconds) and then sleeps, instead of PyTorch's default 300000 polls. The short
  spin keeps the quick hand-overs between consecutive ops of a quiet machine (never
  spinning at all, ``OMP_WAIT_POLICY=PASSIVE``, made the shipped model 20-40 % slower
  there) and gives the core away before the competing process's time slice is lost.
  The OpenMP runtime reads these once, when it is loaded by ``import torch``:
  :func:`mrcnn_trt.cli.run_main` calls it before a command's body runs, and the
  commands import torch lazily inside their body (tests/test_cli_help.py keeps it
  so). A value the user set (``GOMP_SPINCOUNT`` or ``OMP_WAIT_POLICY``, which then
  decides) is kept. In a process that imported torch already it changes nothing
  (:func:`prepare_process` returns ``False`` then).
* **ONNX Runtime** (its own thread pool): intra-op threads do not spin between
  ops (``session.intra_op.allow_spinning = 0``, the default of
  :func:`mrcnn_trt.plugins.ort.session_options` and so of every command).
* **How many**: :func:`default_threads`, the cores this process may run on
  (``sched_getaffinity``: a ``taskset`` or a container's cpuset counts), at most
  :data:`MAX_DEFAULT_THREADS`; ``--threads N`` overrides it. Inter-op threads: 1
  (the model has no parallel branches for them to run).
* **Training with loader workers**: each worker computes with one thread
  (:func:`worker_init`; its OpenMP threads sleep too), the training process with
  :func:`default_threads`: the workers prepare batches ahead and then sleep, so
  taking cores away from the model for them would only slow a quiet machine down.

``python bench/bench_busy.py`` measures the effect (a competing process on every
core, per-image times quiet vs busy; README "Busy machines"). Nothing here imports
torch at module level.
"""
from __future__ import annotations

import os
import sys
from typing import Dict, MutableMapping, Optional

#: how long idle OpenMP threads spin before they sleep (GNU libgomp: GOMP_SPINCOUNT polls, where
#: PyTorch's default is 300000; Intel's runtime: KMP_BLOCKTIME ms). bench/bench_busy.py measured it.
WAIT_ENV: Dict[str, str] = {"GOMP_SPINCOUNT": "1000", "KMP_BLOCKTIME": "0"}
#: set by the user, these decide libgomp's waiting: then GOMP_SPINCOUNT is not set for them
USER_WAIT_VARS = ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")

#: the default thread count never exceeds this (more threads buy little for one image at a time)
MAX_DEFAULT_THREADS = 16


def prepare_process(environ: Optional[MutableMapping[str, str]] = None) -> bool:
    """Put :data:`WAIT_ENV` into ``environ`` (default ``os.environ``) where the user set
    nothing. Returns whether it can still take effect in this process: False when
    ``torch`` is imported already (its OpenMP runtime read the environment then)."""
    env = os.environ if environ is None else environ
    user_policy = any(k in env for k in USER_WAIT_VARS)
    for key, value in WAIT_ENV.items():
        if key == "GOMP_SPINCOUNT" and user_policy:
            continue
        env.setdefault(key, value)
    return "torch" not in sys.modules


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):   # not Linux
        return max(1, os.cpu_count() or 1)


def default_threads() -> int:
    """Compute threads when ``--threads`` is not given: one per available core, at most
    :data:`MAX_DEFAULT_THREADS`."""
    return min(available_cores(), MAX_DEFAULT_THREADS)


def configure_torch(threads: Optional[int] = None) -> int:
    """``torch.set_num_threads`` (``threads`` or :func:`default_threads`) and one inter-op
    thread (where torch still allows setting it). Returns the thread count."""
    import torch

    n = int(threads) if threads else default_threads()
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:   # only settable before the first inter-op work; the pool then stays as it is
        pass
    return n


def worker_init(_worker_id: int = 0) -> None:
    """``worker_init_fn`` of training data loaders: one compute thread per worker."""
    import torch

    torch.set_num_threads(1)
