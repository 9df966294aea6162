"""The POSIX shared-memory regions (``/dev/shm``) of a served repository.

Triton's Python backend gives every model instance a region through which the
server and that instance's stub process exchange tensors (1 MB, growing with the
largest request: tens of MB for large images). ``mrcnn-triton serve`` names them
(``--backend-config=python,shm-region-prefix-name=``) with a prefix of its own,
:func:`region_prefix`, ``mrcnn_triton_<pid>_<random>_``, so that it can

* make them private (:func:`make_private`): the backend creates them readable by
  every user (mode 0644) whatever the umask, and they hold the requests' images;
* remove them on every exit (:func:`remove_regions`): a server that aborts, or
  whose stub is killed, leaves its regions behind;
* remove the regions of an earlier run whose process no longer exists
  (:func:`remove_stale_regions`, at start): the trace of a ``kill -9``.

Only regions owned by this user are touched.
"""
from __future__ import annotations

import os
import re
import secrets
import stat
from typing import List, Optional

from mrcnn_trt.fileio import pid_alive

SHM_DIR = "/dev/shm"
PREFIX = "mrcnn_triton_"
_OURS = re.compile(re.escape(PREFIX) + r"(\d+)_[0-9a-f]+_")


def region_prefix(pid: Optional[int] = None) -> str:
    """A fresh prefix naming the regions of one server start of process ``pid`` (default: this one)."""
    return f"{PREFIX}{pid or os.getpid()}_{secrets.token_hex(4)}_"


def regions(prefix: str, folder: str = SHM_DIR) -> List[str]:
    """Paths of this user's regions whose name starts with ``prefix``."""
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    out = []
    for name in sorted(names):
        if name.startswith(prefix):
            path = os.path.join(folder, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode) and st.st_uid == os.getuid():
                out.append(path)
    return out


def make_private(prefix: str, folder: str = SHM_DIR) -> int:
    """chmod 600 the regions of ``prefix`` that others may read; returns how many were changed."""
    changed = 0
    for path in regions(prefix, folder):
        try:
            if os.lstat(path).st_mode & 0o077:
                os.chmod(path, 0o600)
                changed += 1
        except OSError:   # removed meanwhile
            continue
    return changed


def _unlink(paths: List[str]) -> List[str]:
    """Unlink ``paths`` (processes that still map one keep their mapping); returns those removed."""
    removed = []
    for path in paths:
        try:
            os.unlink(path)
            removed.append(path)
        except OSError:
            continue
    return removed


def remove_regions(prefix: str, folder: str = SHM_DIR) -> List[str]:
    """Unlink the regions of ``prefix`` (processes that still map one keep their mapping)."""
    return _unlink(regions(prefix, folder))


def remove_stale_regions(folder: str = SHM_DIR) -> List[str]:
    """Unlink this user's ``mrcnn_triton_<pid>_*`` regions whose process ``pid`` is gone."""
    stale = []
    for path in regions(PREFIX, folder):
        m = _OURS.match(os.path.basename(path))
        if m and not pid_alive(int(m.group(1))):
            stale.append(path)
    return _unlink(stale)
