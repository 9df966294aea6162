"""Several processes, one job: the ``torch.distributed`` plumbing shared by
``mrcnn-train`` and ``mrcnn-eval`` (nothing home-made: torchrun starts the
processes and its rendezvous connects them; the collectives are PyTorch's).

    torchrun --nproc_per_node 2 -m mrcnn_trt.train ...      # or: mrcnn-train --nproc 2 ...
    torchrun --nnodes 2 --nproc_per_node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29500 -m mrcnn_trt.eval ...

A process started by torchrun (or by any launcher that sets ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``) calls
:func:`init` and gets a :class:`DistContext`; a plain process gets the
one-process context (``enabled`` False) and nothing changes for it.

Conventions:

* backend: NCCL when the rank works on a CUDA device, gloo otherwise; every
  rank uses the GPU ``cuda:LOCAL_RANK`` of its machine. Python objects
  (evaluation results, resume state) always travel over a gloo group, so they
  stay in host memory.
* rank 0 is the *main* rank: it alone writes files and prints progress; the
  other ranks' standard output is discarded (errors still reach stderr).
* a lost peer (killed, crashed, its machine gone) or a collective that waits
  longer than the timeout (``--dist-timeout``, default 1800 s) ends the rank
  with one line and exit code 5 (:class:`PeerLost`); gloo notices a killed
  peer at once (its sockets close), a hung one after the timeout.

The module imports torch lazily: ``--help`` works without it.
"""
from __future__ import annotations

import contextlib
import datetime
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from typing import Any, Iterator, List, Optional, Sequence

from .cli import Terminated, exit_without_finalizing
from .errors import EXIT_INTERRUPTED, EXIT_PEER_LOST, EXIT_TERMINATED, UserError
from .threads import default_threads

#: environment variables torchrun sets for every worker
LAUNCH_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
DEFAULT_TIMEOUT_S = 1800.0


class PeerLost(UserError):
    """Another rank stopped answering (dead, killed, interrupted or hung past
    the timeout); reported like a user error (one line), exit code 5."""

    exit_code = EXIT_PEER_LOST


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in the job (the one-process defaults when not launched)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str = ""          # "nccl" | "gloo" | "" (not distributed)
    timeout_s: float = DEFAULT_TIMEOUT_S

    @property
    def enabled(self) -> bool:
        return bool(self.backend)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def describe(self) -> dict:
        """The JSON record of the job layout (``metrics.json``, training history)."""
        return {"world_size": self.world_size, "backend": self.backend or None, "timeout_s": self.timeout_s}


_object_group: List[Any] = []   # the gloo group for object collectives (NCCL jobs)
_context: List[DistContext] = []


def launched() -> bool:
    """True in a worker started by torchrun (the launch environment is set)."""
    return all(k in os.environ for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"))


def current() -> DistContext:
    """The context set by :func:`init` (the one-process context before / without it)."""
    return _context[-1] if _context else DistContext()


def init(device: str = "cpu", timeout_s: Optional[float] = None, quiet_others: bool = True,
         pin_gpu: bool = False) -> DistContext:
    """Join the job when launched by torchrun, else return the one-process context.

    ``device`` (``cpu`` | ``cuda`` | ``cuda:N``) picks the backend: NCCL for
    CUDA (the rank then uses ``cuda:LOCAL_RANK``; see :func:`rank_device`),
    gloo for the CPU. ``pin_gpu`` (gloo jobs whose ranks still run a GPU
    model, e.g. TensorRT evaluation): this process sees only GPU
    ``LOCAL_RANK`` of the visible ones, as its device 0 (``CUDA_VISIBLE_DEVICES``;
    before anything touches CUDA). ``quiet_others``: ranks > 0 discard their
    standard output and progress bars."""
    if not launched():
        return DistContext()
    if _context and _context[-1].enabled:
        return _context[-1]
    import torch
    import torch.distributed as dist

    if not dist.is_available():
        raise UserError("this PyTorch build has no torch.distributed")
    timeout_s = float(timeout_s or DEFAULT_TIMEOUT_S)
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = str(device).startswith("cuda")
    if pin_gpu and not cuda:
        visible = [d for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
        if visible and local_rank < len(visible):
            os.environ["CUDA_VISIBLE_DEVICES"] = visible[local_rank]
        elif not visible and int(os.environ.get("LOCAL_WORLD_SIZE", "1")) > 1:
            os.environ["CUDA_VISIBLE_DEVICES"] = str(local_rank)
    if cuda:
        if not torch.cuda.is_available():
            raise UserError(f"--device {device}: no CUDA device on this machine")
        if local_rank >= torch.cuda.device_count():
            raise UserError(f"local rank {local_rank} has no GPU: this machine has {torch.cuda.device_count()}; "
                            f"start at most that many processes per node")
        torch.cuda.set_device(local_rank)
    backend = "nccl" if cuda else "gloo"
    timeout = datetime.timedelta(seconds=timeout_s)
    try:
        dist.init_process_group(backend, timeout=timeout)
        if backend != "gloo":
            _object_group.append(dist.new_group(backend="gloo", timeout=timeout))
    except (RuntimeError, ValueError) as e:
        raise PeerLost(f"rank {rank}: could not join the job ({_reason(e)})") from None
    ctx = DistContext(rank=rank, world_size=world, local_rank=local_rank, backend=backend, timeout_s=timeout_s)
    _context.append(ctx)
    _first_signal_only()
    if quiet_others and rank != 0:
        os.environ["MRCNN_PROGRESS"] = "0"
        sys.stdout = open(os.devnull, "w")
    return ctx


def _first_signal_only() -> None:
    """Let only the first SIGINT/SIGTERM interrupt this rank. A Ctrl-C reaches
    the workers and torchrun at once, and torchrun then sends SIGTERM to the
    workers: that second signal must not cut short the clean-up the first one
    started (saying which epoch is kept, scoring the images done). torchrun
    kills a worker that is still running 30 s later; ``run_main`` restores the
    handlers when the command returns."""
    if threading.current_thread() is not threading.main_thread():
        return
    fired: List[int] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous = signal.getsignal(sig)
        if not callable(previous):
            continue

        def handler(signum, frame, previous=previous):
            if fired:
                return
            fired.append(signum)
            previous(signum, frame)

        signal.signal(sig, handler)


def job_intact(code: Optional[int]) -> bool:
    """Whether a rank's work that ended with exit ``code`` (None: an exception escaped)
    left the job intact: every collective complete. Not after an interrupt, SIGTERM or a
    lost peer; a finished run that skipped unreadable inputs (exit 4) is intact."""
    return code is not None and code not in (EXIT_PEER_LOST, EXIT_INTERRUPTED, EXIT_TERMINATED)


def shutdown(ended_well: bool = True) -> None:
    """Leave the job (a no-op when not in one).

    ``ended_well`` False (an error escaped, the command was interrupted or lost a peer:
    :func:`job_intact`): the job may be broken mid-collective, so the process group is
    left as it is (NCCL's clean-up can wait forever on a dead peer) and the command's
    process ends right
    after its last line, skipping the interpreter's finalization
    (:func:`mrcnn_trt.cli.exit_without_finalizing`): a gloo worker thread still
    finishing the broken collective would otherwise abort it (SIGABRT) instead of
    letting it exit with its code."""
    if not _context:
        return
    enabled = _context[-1].enabled
    _context.clear()
    _object_group.clear()
    if enabled and not ended_well:
        exit_without_finalizing()
        return
    with contextlib.suppress(Exception):
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def threads_per_rank(ctx: DistContext) -> Optional[int]:
    """The default compute threads of a rank: the available cores shared by the
    ranks of this machine (``LOCAL_WORLD_SIZE``); None outside a job (the
    command's own default, :func:`mrcnn_trt.threads.default_threads`)."""
    if not ctx.enabled:
        return None

    return max(1, default_threads() // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))


def rank_device(ctx: DistContext, device: str) -> str:
    """The device a rank works on: ``cuda`` becomes ``cuda:LOCAL_RANK`` in a job."""
    if ctx.enabled and str(device).startswith("cuda"):
        return f"cuda:{ctx.local_rank}"
    return device


def _reason(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text if len(text) <= 160 else text[:157] + "..."


@contextlib.contextmanager
def collective(ctx: DistContext, what: str) -> Iterator[None]:
    """Turn the failure of a collective inside the block (a peer gone, the
    timeout) into :class:`PeerLost`: ``rank R: WHAT: lost contact with the
    other ranks (reason)``."""
    if not ctx.enabled:
        yield
        return
    import torch.distributed as dist

    try:
        yield
    except (dist.DistError, RuntimeError) as e:
        if isinstance(e, dist.DistError) or _looks_like_peer_loss(e):
            raise PeerLost(f"rank {ctx.rank}: {what}: lost contact with the other ranks, or they stopped "
                           f"(timeout {ctx.timeout_s:g} s): {_reason(e)}") from None
        raise


def _looks_like_peer_loss(e: BaseException) -> bool:
    text = str(e).lower()
    return any(s in text for s in ("connection closed", "connection reset", "timed out", "timeout",
                                   "broken pipe", "gloo", "nccl", "socket", "peer"))


def object_group():
    """The process group for Python-object collectives (gloo; None = the default one)."""
    return _object_group[0] if _object_group else None


def broadcast_object(ctx: DistContext, obj: Any = None, what: str = "broadcast") -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not ctx.enabled:
        return obj
    import torch.distributed as dist

    box = [obj if ctx.is_main else None]
    with collective(ctx, what):
        dist.broadcast_object_list(box, src=0, group=object_group())
    return box[0]


def gather_objects(ctx: DistContext, obj: Any, what: str = "gather") -> Optional[List[Any]]:
    """Every rank's ``obj`` in rank order on rank 0 (None on the other ranks)."""
    if not ctx.enabled:
        return [obj]
    import torch.distributed as dist

    out = [None] * ctx.world_size if ctx.is_main else None
    with collective(ctx, what):
        dist.gather_object(obj, out, dst=0, group=object_group())
    return out


def shard(indices: Sequence[int], ctx: DistContext) -> List[int]:
    """Rank ``r``'s share of ``indices``: every ``world_size``-th from position ``r``
    (no padding, no repeats: with an uneven count the first ranks get one more)."""
    return list(indices)[ctx.rank::ctx.world_size] if ctx.enabled else list(indices)


# --------------------------------------------------------------------------- --nproc convenience
def strip_option(argv: Sequence[str], name: str) -> List[str]:
    """``argv`` without ``name VALUE`` / ``name=VALUE``."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == name:
            skip = True
            continue
        if a.startswith(name + "="):
            continue
        out.append(a)
    return out


def relaunch(module: str, argv: Sequence[str], nproc: int) -> int:
    """Run ``torchrun --standalone --nproc_per_node NPROC -m MODULE ARGV`` (one machine)
    and return its exit code. Ctrl-C reaches the workers through the terminal;
    SIGTERM to this process is passed on to torchrun, which stops every worker."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={int(nproc)}",
           "-m", module, *strip_option(argv, "--nproc")]
    print("launching: " + " ".join(cmd[1:]), file=sys.stderr, flush=True)
    child = subprocess.Popen(cmd)
    while True:
        try:
            return child.wait()
        except KeyboardInterrupt as e:   # run_main turned SIGINT/SIGTERM into this: pass it on, wait
            sig = signal.SIGTERM if isinstance(e, Terminated) else signal.SIGINT
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(sig)
