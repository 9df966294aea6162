"""Finding a shared library of ours (the TensorRT plugins, the CUDA ops for
PyTorch): a path the user gave (argument or environment variable) must exist;
otherwise the first existing file of a fixed list of places wins."""
from __future__ import annotations

import os
from typing import Callable, Iterable, Optional, Type


def in_folder(lib_name: str, path: str) -> str:
    """``path`` itself, or ``path/lib_name`` when ``path`` is a folder (``~`` expanded)."""
    path = os.path.expanduser(path)
    return os.path.join(path, lib_name) if os.path.isdir(path) else path


def pinned(lib_name: str, path: str, error: Type[Exception], label: str) -> str:
    """The absolute path of a library the user named (a file or a folder holding
    it); raises ``error("<label>: <path> does not exist")``: never replaced by
    another copy."""
    p = in_folder(lib_name, path)
    if not os.path.isfile(p):
        raise error(f"{label}: {p} does not exist")
    return os.path.abspath(p)


def first_file(paths: Iterable[str]) -> Optional[str]:
    """The absolute path of the first existing file of ``paths`` (None: none)."""
    for p in paths:
        if os.path.isfile(p):
            return os.path.abspath(p)
    return None


def find(lib_name: str, env_var: str, candidates: Callable[[], Iterable[str]], error: Type[Exception],
         missing: str) -> str:
    """``$env_var`` when set (it must exist), else the first existing candidate;
    raises ``error(missing)`` when there is none."""
    env = os.environ.get(env_var)
    if env:
        return pinned(lib_name, env, error, f"{env_var}={env}")
    found = first_file(candidates())
    if found is None:
        raise error(missing)
    return found
