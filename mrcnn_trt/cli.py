"""Small helpers shared by the ``mrcnn-*`` command-line tools."""
from __future__ import annotations

import functools
import sys
from typing import Callable, Iterable, Optional, Sequence

from .errors import UserError


def run_main(fn: Callable[[Optional[Sequence[str]]], int]) -> Callable[[Optional[Sequence[str]]], int]:
    """Decorator for ``main(argv=None) -> int``: user errors become one line on
    stderr and a non-zero exit code; Ctrl-C exits with 130."""

    @functools.wraps(fn)
    def wrapper(argv: Optional[Sequence[str]] = None) -> int:
        prog = fn.__module__.rsplit(".", 1)[-1]
        try:
            return int(fn(argv) or 0)
        except UserError as e:
            print(f"error: {e}", file=sys.stderr)
            return e.exit_code
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
        except ModuleNotFoundError as e:
            print(f"error: missing Python module '{e.name}' ({prog}); install the project with "
                  f"`pip install -e .` (see README)", file=sys.stderr)
            return 3

    return wrapper


def progress(iterable: Iterable, total: Optional[int] = None, desc: str = "", unit: str = "it", **kw):
    """A tqdm progress bar on stderr: shown on a terminal, hidden when stderr is
    redirected (logs stay small); MRCNN_PROGRESS=1 forces it on, =0 off."""
    import os

    from tqdm import tqdm

    env = os.environ.get("MRCNN_PROGRESS")
    disable = None if env is None else env == "0"
    return tqdm(iterable, total=total, desc=desc, unit=unit, disable=disable, dynamic_ncols=True,
                file=sys.stderr, **kw)
