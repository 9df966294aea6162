"""Atomic file writing, hashing and JSON sidecars.

Every artifact (checkpoint, ONNX model, plan, metrics) is written to a
temporary file in the destination folder and renamed into place, so a crash
or Ctrl-C never leaves a half-written file under the final name. Files get
the usual permissions (0666 minus the umask) and temporary files of a killed
process are cleaned up by the next write into that folder.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import re
import stat
import tempfile
import time
from typing import Any, Iterator, List

import numpy as np

from .errors import UserError


PART_SUFFIX = ".part"
_PART_RE = re.compile(r"^\..+\.(\d+)\.[A-Za-z0-9_]+\.part$")   # .<name>.<pid>.<random>.part
STALE_PART_SECONDS = 60.0


def current_umask() -> int:
    """The process umask (read without changing it where /proc allows)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)   # no way to read it without setting it
    os.umask(mask)
    return mask


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (one of another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_parts(folder: str) -> List[str]:
    """Remove temporary files of ours (``.<name>.<pid>.<random>.part``) left in
    ``folder`` by a process that no longer runs (e.g. killed with SIGKILL) and
    untouched for a minute. Returns the removed paths."""
    removed = []
    now = time.time()
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        m = _PART_RE.match(name)
        if not m or pid_alive(int(m.group(1))):
            continue
        path = os.path.join(folder, name)
        with contextlib.suppress(OSError):
            if now - os.stat(path).st_mtime >= STALE_PART_SECONDS:
                os.unlink(path)
                removed.append(path)
    return removed


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary path next to ``path``; rename it to ``path`` on success.

    On any exception the temporary file is removed and ``path`` is untouched. The
    file gets the permissions a plain ``open()`` would give it (0666 minus the
    umask, e.g. 0644), not the 0600 of temporary files. Temporary files left by a
    killed process are removed on the next write into the same folder.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        make_folder(folder)
    if not os.access(folder, os.W_OK):
        raise UserError(f"output folder is not writable: {folder}")
    remove_stale_parts(folder)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.{os.getpid()}.", suffix=PART_SUFFIX, dir=folder)
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~current_umask())
        yield tmp
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.errno and e.filename in (None, tmp):
            raise OSError(e.errno, os.strerror(e.errno), path) from None   # name the file the user asked for
        raise


def make_folder(folder: str) -> List[str]:
    """``os.makedirs`` with one clear :class:`UserError` naming the folder; returns
    the folders it created (outermost first)."""
    folder = os.path.abspath(os.fspath(folder))
    missing = []
    p = folder
    while not os.path.exists(p):
        missing.append(p)
        parent = os.path.dirname(p)
        if parent == p:
            break
        p = parent
    if os.path.exists(p) and not os.path.isdir(p):
        raise UserError(f"cannot create output folder {folder}: {p} is a file, not a folder")
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create output folder {folder}: {e.strerror}") from None
    return list(reversed(missing))


@contextlib.contextmanager
def output_folder(path: str | os.PathLike) -> Iterator[str]:
    """Create a command's output folder; if the command then fails (error,
    Ctrl-C) the folders created here are removed again when they are still empty,
    so a failed run leaves no empty output folder behind."""
    path = os.fspath(path)
    created = make_folder(path)
    if not os.access(path, os.W_OK):
        raise UserError(f"output folder is not writable: {path}")
    try:
        yield path
    except BaseException:
        for d in reversed(created):
            with contextlib.suppress(OSError):
                os.rmdir(d)       # only succeeds while empty
        raise


def check_regular_file(path: str | os.PathLike, what: str = "file") -> str:
    """Raise one :class:`UserError` unless ``path`` is an existing regular file
    (or a link to one). A FIFO, socket or device named like an input would make
    ``open()`` block or read forever; a folder is not a file. Returns the path."""
    path = os.fspath(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise UserError(f"{what} not found: {path}") from None
    except OSError as e:
        raise UserError(f"cannot read {what} {path}: {e.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        raise UserError(f"{what} {path} is a folder, not a file")
    if not stat.S_ISREG(st.st_mode):
        raise UserError(f"{what} {path} is not a regular file (a FIFO, socket or device): not read")
    return path


def _same_file(a: str, b: str) -> bool:
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)   # hard links
    except OSError:
        return False


def refuse_overwriting_inputs(outputs, inputs, hint: str = "choose another output") -> None:
    """The one "never overwrite an input" rule of every command: raise one
    :class:`UserError` if any path in ``outputs`` (files a command is about to
    write, sidecars included) is one of ``inputs`` (same path after resolving
    links, or the same file through a hard link). Call it before any work."""
    ins = [os.fspath(i) for i in inputs if i]
    for out in outputs:
        if not out:
            continue
        out = os.fspath(out)
        for i in ins:
            if _same_file(out, i):
                raise UserError(f"{out} would overwrite the input {i}: {hint}")


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if hasattr(o, "__dataclass_fields__"):
        return dataclasses.asdict(o)
    if isinstance(o, (set, tuple)):
        return list(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def json_safe(obj: Any) -> Any:
    """Replace NaN/inf floats by None (strict JSON that any tool can read)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        return json_safe(obj.item())
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    return obj


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    """Write strict JSON (NaN/inf become null) atomically."""
    text = json.dumps(json_safe(obj), indent=2, sort_keys=False, default=_json_default, allow_nan=False)
    write_bytes_atomic(path, (text + "\n").encode())


def read_json(path: str | os.PathLike) -> Any:
    """Parse a JSON file; every way it can fail is one :class:`UserError` naming
    the file: missing or unreadable, not UTF-8 text, not JSON, nested too deeply."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise UserError(f"file not found: {path}") from None
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror or e}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise UserError(f"not valid JSON: {path}: not UTF-8 text (byte {e.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"not valid JSON: {path}: {e}") from None
    except RecursionError:
        raise UserError(f"not valid JSON: {path}: nested too deeply") from None


def read_json_object(path: str | os.PathLike, what: str = "file") -> dict:
    """:func:`read_json` of a file that must hold a JSON object (a sidecar, a
    manifest); ``what`` names it in the error."""
    obj = read_json(path)
    if not isinstance(obj, dict):
        raise UserError(f"{what} {path} is not a JSON object (found a {type(obj).__name__})")
    return obj


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def sidecar_path(path: str | os.PathLike) -> str:
    """``model.onnx`` -> ``model.onnx.json``."""
    return os.fspath(path) + ".json"


def read_sidecar_of(path: str | os.PathLike, *, missing: str, unusable: str, error=UserError,
                    reader=read_json) -> Any:
    """The JSON sidecar of the artifact at ``path`` (:func:`sidecar_path`), read by
    ``reader``; one ``error`` line when it is absent (``missing``, which may name
    ``{path}`` and ``{sidecar}``) or unreadable ("the sidecar of <path> is unusable
    (<why>); ``unusable``")."""
    sp = sidecar_path(path)
    if not os.path.isfile(sp):
        raise error(missing.format(path=path, sidecar=sp))
    try:
        return reader(sp)
    except UserError as e:   # missing, not UTF-8, not JSON, nested too deeply, not an object
        raise error(f"the sidecar of {path} is unusable ({e}); {unusable}") from None


SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


def verify_model_digest(model_path: str | os.PathLike, sidecar: Any, digest: str | None = None,
                        field: str = "onnx_sha256") -> str:
    """The one integrity rule for a model and its sidecar, applied by every command
    that runs, converts, builds or serves a model: the sidecar must record the
    model's sha256 in ``field`` (64 lowercase hex digits) and it must equal the
    file's (``digest`` if already computed). A sidecar without it vouches for
    nothing, so it is refused like a wrong one. Returns the digest; raises one
    :class:`UserError` line otherwise."""
    model_path = os.fspath(model_path)
    want = sidecar.get(field) if isinstance(sidecar, dict) else None
    if not isinstance(want, str) or not SHA256_RE.match(want):
        found = "no" if want is None else f"an invalid ({str(want)[:20]!r})"
        raise UserError(f"{sidecar_path(model_path)} records {found} {field}, so nothing vouches for "
                        f"{model_path}: re-export the model (its sidecar is written with it)")
    digest = digest or sha256_file(model_path)
    if want != digest:
        raise UserError(f"{model_path} does not match its sidecar (sha256 {digest[:12]}... vs {want[:12]}...): "
                        f"the file was changed or the sidecar belongs to another export; re-export the model")
    return digest


def write_derived_sidecar(out_path: str, source_sidecar: dict, **fields) -> dict:
    """Sidecar of a model derived from another (quantized, float16): the source's
    fields, the new file's sha256/size and ``fields``. If the sidecar cannot be
    written the new model file is removed, so no model is left without one."""
    new = dict(source_sidecar)
    new.update({"onnx_sha256": sha256_file(out_path), "onnx_bytes": os.path.getsize(out_path)}, **fields)
    try:
        write_json_atomic(sidecar_path(out_path), new)
    except BaseException:
        os.unlink(out_path)
        raise
    return new
