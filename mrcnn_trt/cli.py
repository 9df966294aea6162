"""Small helpers shared by the ``mrcnn-*`` command-line tools.

:func:`run_main` gives every ``main(argv=None) -> int`` the same behaviour:

* a :class:`~mrcnn_trt.errors.UserError` becomes one ``error:`` line and its exit code;
* a full disk, a read-only or forbidden path (``OSError`` with such an errno) becomes one
  ``error:`` line naming the path (exit 2);
* Ctrl-C (SIGINT) prints ``interrupted`` and exits 130, SIGTERM prints ``terminated``
  and exits 143 - also when a library turned the interrupt into another exception on
  its way up (torch's exporter does);
* a missing optional Python module becomes one line (exit 3);
* idle OpenMP threads of PyTorch sleep instead of spinning (:func:`mrcnn_trt.threads.prepare_process`,
  set before the command imports torch), so a command degrades gracefully on a busy machine.

SIGTERM is delivered as :class:`Terminated`, a ``KeyboardInterrupt``, so the code that
saves partial work on Ctrl-C (evaluation, training) does the same on SIGTERM;
:func:`interrupt_exit_code` tells which signal it was.

Once a command has its exit code, the process only shuts down: a Ctrl-C or SIGTERM that
arrives then is ignored and the exit code stands (the command's files are complete).
Python itself would restore the default action while it finalizes, so a late Ctrl-C
killed the process silently (status -2) and lost the code.

A command may ask, with :func:`exit_without_finalizing`, that the process end right
after its last line, with its exit code, without the interpreter's clean-up (a rank of
a torch.distributed job that ended abnormally does).
"""
from __future__ import annotations

import atexit
import errno
import functools
import os
import signal
import sys
import threading
import traceback
from typing import Callable, Iterable, Optional, Sequence

from tqdm import tqdm

from .errors import EXIT_INTERRUPTED, EXIT_MISSING_MODULE, EXIT_TERMINATED, EXIT_USER_ERROR, UserError
from .threads import prepare_process

#: errnos reported as one line naming the path instead of a traceback
PATH_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.EISDIR,
               errno.ENAMETOOLONG, errno.EFBIG, errno.EIO}


class Terminated(KeyboardInterrupt):
    """SIGTERM, delivered like Ctrl-C."""


_received: list = []   # signals received while a command runs
_no_finalizing: list = []   # set by exit_without_finalizing()


def interrupt_exit_code() -> int:
    """130 after Ctrl-C, 143 after SIGTERM (for commands that save partial work and return)."""
    return EXIT_TERMINATED if signal.SIGTERM in _received else EXIT_INTERRUPTED


def exit_without_finalizing() -> None:
    """Make :func:`run_main` end the process once the command has its exit code and
    has printed its last line: standard output and error flushed, then
    ``os._exit(code)``, skipping the interpreter's finalization.

    For a rank whose torch.distributed job ended abnormally (a lost peer, an
    interrupt): gloo's worker threads may still be finishing a collective of the
    broken job, and one that frees a tensor while the interpreter finalizes aborts
    the process ("terminate called without an active exception", SIGABRT) instead
    of letting it exit with the command's code. Everything the command writes is
    complete by then (files are written atomically)."""
    _no_finalizing.append(True)


def _end_process(code: int) -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):   # closed, or its pipe is gone
            pass
    os._exit(code)


def _ignore_signals_from_now_on() -> None:
    """At exit (the first exit function to run: see :func:`run_main`): SIGINT and SIGTERM
    ignored for the rest of the shut-down. ``SIG_IGN`` survives the interpreter's
    finalization, which resets a Python handler to the default action (death by the
    signal, no message, the exit code lost)."""
    if threading.current_thread() is threading.main_thread():
        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, signal.SIG_IGN)


def _on_signal(signum, frame):
    _received.append(signum)
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def _os_error_line(e: OSError) -> str:
    what = e.strerror or str(e)
    where = e.filename if e.filename is not None else ""
    if e.errno == errno.ENOSPC:
        what = "no space left on the device"
    return f"{what}: {where}" if where else what


def run_main(fn: Callable[[Optional[Sequence[str]]], int]) -> Callable[[Optional[Sequence[str]]], int]:
    """Decorator for ``main(argv=None) -> int`` (see the module docstring)."""

    @functools.wraps(fn)
    def wrapper(argv: Optional[Sequence[str]] = None) -> int:
        prepare_process()
        _received.clear()
        _no_finalizing.clear()
        main_thread = threading.current_thread() is threading.main_thread()
        previous = {}
        if main_thread:
            for s in (signal.SIGINT, signal.SIGTERM):
                previous[s] = signal.signal(s, _on_signal)
        try:
            code = _exit_code(fn, argv)
        except Exception:
            if not _no_finalizing:
                raise
            traceback.print_exc()   # what Python prints for an escaping exception, and its exit code
            code = 1
        finally:
            for s, h in previous.items():
                signal.signal(s, h)
        if main_thread:   # registered last, so it runs first (exit functions run in reverse order)
            atexit.unregister(_ignore_signals_from_now_on)
            atexit.register(_ignore_signals_from_now_on)
        if _no_finalizing:
            _end_process(code)
        return code

    return wrapper


def _exit_code(fn: Callable[[Optional[Sequence[str]]], int], argv: Optional[Sequence[str]]) -> int:
    """``fn(argv)``'s exit code; the exceptions of the module docstring become one line and their code."""
    prog = fn.__module__.rsplit(".", 1)[-1]
    try:
        return int(fn(argv) or 0)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except SystemExit:
        raise
    except BaseException as e:
        if _received or isinstance(e, KeyboardInterrupt):
            # also when a library caught the interrupt and raised something else
            code = interrupt_exit_code()
            print("terminated" if code == EXIT_TERMINATED else "interrupted", file=sys.stderr)
            return code
        if isinstance(e, ModuleNotFoundError):
            print(f"error: missing Python module '{e.name}' ({prog}); install the project with "
                  f"`pip install -e .` (see README)", file=sys.stderr)
            return EXIT_MISSING_MODULE
        if isinstance(e, OSError) and e.errno in PATH_ERRNOS:
            print(f"error: {_os_error_line(e)}", file=sys.stderr)
            return EXIT_USER_ERROR
        raise


def progress(iterable: Iterable, total: Optional[int] = None, desc: str = "", unit: str = "it", **kw):
    """A tqdm progress bar on stderr: shown on a terminal, hidden when stderr is
    redirected (logs stay small); MRCNN_PROGRESS=1 forces it on, =0 off."""
    env = os.environ.get("MRCNN_PROGRESS")
    disable = None if env is None else env == "0"
    return tqdm(iterable, total=total, desc=desc, unit=unit, disable=disable, dynamic_ncols=True,
                file=sys.stderr, **kw)
