"""Which Triton endpoints ``mrcnn-triton serve`` opens to clients, and the key that opens the rest.

The server listens on 127.0.0.1 only, so every local process (and anything a local
process forwards) is a client. Open to all of them, over HTTP and gRPC:

* health, metadata, inference, model configuration, statistics (read-only or inference).

Restricted (:data:`RESTRICTED`, Triton's ``--http-restricted-api`` /
``--grpc-restricted-protocol``):

* ``shared-memory``: registering system / CUDA shared-memory regions. Triton opens
  any region name a client gives it, including the Python backend's own IPC
  regions (listed in ``/dev/shm``); an inference that writes its outputs into such
  a region corrupts the backend's locks and aborts the whole server
  (``boost::interprocess::lock_exception``);
* ``model-repository``: repository index, model load / unload;
* ``trace``, ``logging``: server settings.

Two modes (:class:`AdminAccess`):

* **off** (the default): the restricted endpoints demand a header that no client can
  send - its name and value contain a line break, which an HTTP/1.1 header cannot
  carry (a line break ends the header) and an HTTP/2 (gRPC) header name may not
  contain. Triton answers HTTP 403 / gRPC UNAVAILABLE "This API is restricted".
  Reading the server's command line (``/proc/PID/cmdline``) does not help.
* **key** (``mrcnn-triton serve --admin-key-file FILE``): a request that carries the
  HTTP header ``mrcnn-admin-key: KEY`` (gRPC metadata
  ``triton-grpc-protocol-mrcnn-admin-key: KEY``: Triton prefixes gRPC keys) may use
  them. The key is on tritonserver's command line, which other users of the
  machine can read in ``/proc``: enable it only where they are trusted, and only
  for clients that are (a key holder can still crash the server as above).
"""
from __future__ import annotations

import os
import re
import secrets
import stat
from dataclasses import dataclass
from typing import List, Optional

from mrcnn_trt.errors import UserError
from mrcnn_trt.fileio import check_regular_file

#: Triton API groups that need the key (the others stay open)
RESTRICTED = ("shared-memory", "model-repository", "trace", "logging")
#: HTTP header (and, after Triton's prefix, gRPC metadata key) carrying the admin key
ADMIN_HEADER = "mrcnn-admin-key"
_KEY_RE = re.compile(r"[A-Za-z0-9_.~+/-]{16,256}")


@dataclass(frozen=True)
class AdminAccess:
    """``key=None``: the restricted endpoints are off; else they need ``key`` in :data:`ADMIN_HEADER`."""

    key: Optional[str] = None

    def __post_init__(self):
        if self.key is not None and not _KEY_RE.fullmatch(self.key):
            raise UserError("the admin key must be 16-256 characters: letters, digits and - _ . ~ + /")

    @property
    def enabled(self) -> bool:
        return self.key is not None

    def header(self) -> dict:
        """The HTTP header a client sends (``{}`` when off)."""
        return {ADMIN_HEADER: self.key} if self.key else {}

    def flags(self) -> List[str]:
        """tritonserver flags restricting :data:`RESTRICTED` on HTTP and gRPC."""
        if self.key:
            name, value = ADMIN_HEADER, self.key
        else:   # a header nobody can send (see the module docstring); new for every server start
            name, value = f"disabled\n{secrets.token_hex(8)}", f"{secrets.token_hex(16)}\r\n{secrets.token_hex(16)}"
        spec = f"{','.join(RESTRICTED)}:{name}={value}"
        return [f"--http-restricted-api={spec}", f"--grpc-restricted-protocol={spec}"]

    def describe(self) -> str:
        what = "/".join(RESTRICTED)
        if self.key:
            return f"{what} endpoints: need header {ADMIN_HEADER}"
        return f"{what} endpoints: off (--admin-key-file enables them)"


def read_admin_key(path: str) -> str:
    """The key in ``path`` (its first line), which only its owner may read (as ssh keys)."""
    hint = (f"create it with `(umask 077; python3 -c 'import secrets; print(secrets.token_urlsafe(32))' > {path})`")
    if not os.path.lexists(path):
        raise UserError(f"admin key file not found: {path}; {hint}")
    check_regular_file(path, what="admin key file")   # not a folder, FIFO or device
    st = os.stat(path)
    if st.st_mode & 0o077:
        raise UserError(f"admin key file {path} can be read by other users (mode {stat.filemode(st.st_mode)}): "
                        f"chmod 600 {path}")
    if st.st_size > 4096:
        raise UserError(f"admin key file {path} is {st.st_size} bytes: expected one line with the key")
    try:
        with open(path, "rb") as f:
            text = f.read().decode("ascii")
    except UnicodeDecodeError:
        raise UserError(f"admin key file {path} is not ASCII text") from None
    except OSError as e:
        raise UserError(f"cannot read the admin key file {path}: {e.strerror}") from None
    lines = text.strip().splitlines()
    key = lines[0].strip() if lines else ""
    if not _KEY_RE.fullmatch(key):
        raise UserError(f"admin key file {path}: the key (first line) must be 16-256 characters: letters, digits and "
                        f"- _ . ~ + /; {hint}")
    return key
