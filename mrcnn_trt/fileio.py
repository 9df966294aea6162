"""Atomic file writing, hashing and JSON sidecars.

Every artifact (checkpoint, ONNX model, plan, metrics) is written to a
temporary file in the destination folder and renamed into place, so a crash
or Ctrl-C never leaves a half-written file under the final name.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from typing import Any, Iterator

from .errors import UserError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary path next to ``path``; rename it to ``path`` on success.

    On any exception the temporary file is removed and ``path`` is untouched.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as e:
            raise UserError(f"cannot create output folder {folder}: {e.strerror}") from None
    if not os.access(folder, os.W_OK):
        raise UserError(f"output folder is not writable: {folder}")
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".part", dir=folder)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def _json_default(o: Any) -> Any:
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:  # pragma: no cover
        pass
    if hasattr(o, "__dataclass_fields__"):
        import dataclasses

        return dataclasses.asdict(o)
    if isinstance(o, (set, tuple)):
        return list(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def json_safe(obj: Any) -> Any:
    """Replace NaN/inf floats by None (strict JSON that any tool can read)."""
    import math

    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    try:
        import numpy as np

        if isinstance(obj, np.generic):
            return json_safe(obj.item())
        if isinstance(obj, np.ndarray):
            return json_safe(obj.tolist())
    except ImportError:  # pragma: no cover
        pass
    return obj


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    """Write strict JSON (NaN/inf become null) atomically."""
    text = json.dumps(json_safe(obj), indent=2, sort_keys=False, default=_json_default, allow_nan=False)
    write_bytes_atomic(path, (text + "\n").encode())


def read_json(path: str | os.PathLike) -> Any:
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise UserError(f"file not found: {path}") from None
    except json.JSONDecodeError as e:
        raise UserError(f"not valid JSON: {path}: {e}") from None


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
