"""The ``model.py`` of each Python-backend model of a repository (:mod:`.repository`).

Triton's Python-backend stub starts an isolated interpreter (``PYTHONPATH`` and
virtual environments are ignored): each ``model.py`` is a short generated file that
adds this environment's site-packages folders (recorded when the repository is
written) and imports the model class from :mod:`mrcnn_trt.serve.python_models`.
"""
from __future__ import annotations

import os
import site
import sys
from typing import List

import mrcnn_trt


def environment_site_dirs() -> List[str]:
    """Folders that make this environment's packages importable (site-packages + user site)."""
    dirs = list(site.getsitepackages())
    if site.ENABLE_USER_SITE:
        dirs.append(site.getusersitepackages())
    return [os.path.abspath(d) for d in dirs if os.path.isdir(d)]


def model_py(class_name: str) -> str:
    """The ``model.py`` of a Python-backend model: make this environment importable, then
    import the model class from :mod:`mrcnn_trt.serve.python_models`."""
    py = tuple(sys.version_info[:2])
    return f'''"""Triton Python-backend model written by `mrcnn-triton repo` (mrcnn-trt {mrcnn_trt.__version__}).

Triton's Python-backend stub starts an isolated interpreter (PYTHONPATH and virtual
environments are ignored), so the environment that wrote this repository is added here.
The model itself is mrcnn_trt.serve.python_models.{class_name}.
"""
import site
import sys

PYTHON = {py!r}
SITE_DIRS = {environment_site_dirs()!r}

if tuple(sys.version_info[:2]) != PYTHON:
    raise RuntimeError("this model needs Python %d.%d (the environment that wrote the repository, %s) but the "
                       "Triton Python backend runs %d.%d: rewrite the repository with mrcnn-triton repo from a "
                       "Python %d.%d environment" % (PYTHON + (SITE_DIRS[0] if SITE_DIRS else "?",)
                                                    + tuple(sys.version_info[:2]) * 2))
# this environment's packages go right after the standard library, before the system's (as in a venv)
_before = list(sys.path)
_first = next((i for i, p in enumerate(_before) if p.endswith(("site-packages", "dist-packages"))), len(_before))
for _d in SITE_DIRS:
    site.addsitedir(_d)   # also runs the .pth files (editable installs)
sys.path[:] = _before[:_first] + [p for p in sys.path if p not in _before] + _before[_first:]

from mrcnn_trt.serve.python_models import {class_name} as TritonPythonModel  # noqa: E402,F401
'''
