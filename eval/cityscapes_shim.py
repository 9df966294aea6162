"""The one place where the official Cityscapes instance-level evaluation
(``cityscapesscripts==2.3.0``, ``evaluation/evalInstanceLevelSemanticLabeling.py``)
is adapted to run here. Its matching and AP code is used unchanged; only these
things are worked around:

1. **NumPy 2**: ``np.in1d`` no longer exists (removed in NumPy 2.4). The evaluation
   module's global ``np`` is replaced by a proxy of numpy that adds
   ``in1d = isin(ravel(a), b)`` (what ``in1d`` returned). numpy itself is not touched.
2. **JSON writer**: ``writeDict2JSON`` serializes with ``default=lambda o: o.__dict__``,
   which fails on numpy scalars (``np.count_nonzero`` returns ``np.int64`` in NumPy 2).
   The module's ``writeDict2JSON`` is replaced by one that converts numpy scalars and
   arrays first (same output format otherwise: sorted keys, indent 4).
3. **Import-time environment**: the module reads ``CITYSCAPES_DATASET`` /
   ``CITYSCAPES_RESULTS`` when imported and when searching predictions. We never use
   those defaults: every path (ground-truth list, prediction root, export file, cache)
   is set explicitly on a *fresh copy* of its global ``args`` for each run, so neither
   the environment nor a previous run leaks in.
4. **Ground-truth cache**: ``args.gtInstancesFile`` defaults to ``gtInstances.json``
   inside site-packages and is reused blindly if present. It is put in the output folder
   and deleted before each run.
5. **``matches.json``** is written to the current directory: the evaluation runs with
   the output folder as the current directory (the process-wide cwd is restored
   afterwards).
6. **Errors** end the process (``printError`` -> ``sys.exit(-1)``): ``SystemExit`` is
   turned into :class:`CityscapesEvalError` carrying the tool's message. Its progress
   prints are captured (``run(...).log``).

Predictions use the tool's own format: one ``<city>_<seq>_<frame>_pred.txt`` per image
under the prediction root, each line ``masks/<file>.png <labelId> <score>`` with a path
relative to the txt file; it finds the txt for each ground-truth file with its own
``getPrediction`` search.
"""
from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import threading
import warnings
from dataclasses import dataclass
from typing import List, Sequence

import numpy as np

from mrcnn_trt.errors import UserError

_LOCK = threading.Lock()
_MODULE = None


class CityscapesEvalError(RuntimeError):
    """The official evaluation stopped with an error (its message is kept)."""


class _NumpyCompat:
    """numpy, plus the ``in1d`` that NumPy 2.4 removed."""

    def __getattr__(self, name):
        return getattr(np, name)

    @staticmethod
    def in1d(ar1, ar2, assume_unique=False, invert=False):
        return np.isin(np.ravel(ar1), ar2, assume_unique=assume_unique, invert=invert)


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return o.__dict__


def _write_dict_to_json(dict_name, file_name):
    """``csHelpers.writeDict2JSON`` that also accepts numpy scalars and arrays."""
    with open(file_name, "w") as f:
        f.write(json.dumps(dict_name, default=_json_default, sort_keys=True, indent=4))


@contextlib.contextmanager
def _chdir(path: str):
    """``contextlib.chdir`` (Python >= 3.11) for Python 3.10 too."""
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def load_module():
    """Import and patch ``evalInstanceLevelSemanticLabeling`` (once)."""
    global _MODULE
    if _MODULE is None:
        try:
            from cityscapesscripts.evaluation import evalInstanceLevelSemanticLabeling as m
        except ImportError as e:  # pragma: no cover - dependency missing
            raise UserError(f"the Cityscapes evaluation needs cityscapesscripts==2.3.0 ({e}); "
                            f"install the project with `pip install -e .`") from None
        m.np = _NumpyCompat()
        m.writeDict2JSON = _write_dict_to_json
        _MODULE = m
    return _MODULE


@dataclass
class CityscapesRun:
    """Result of :func:`run`: the tool's result dict (``averages``, ``resultApMatrix``,
    ...), its export file, and its captured console output."""

    result: dict
    export_file: str
    matches_file: str
    log: str


def run(gt_files: Sequence[str], prediction_root: str, out_dir: str) -> CityscapesRun:
    """Evaluate predictions under ``prediction_root`` against ``gt_files``
    (``*_gtFine_instanceIds.png``) with the official code. Writes
    ``gtInstances.json``, ``matches.json`` and
    ``resultInstanceLevelSemanticLabeling.json`` into ``out_dir``."""
    m = load_module()
    out_dir = os.path.abspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    gt_list: List[str] = [os.path.abspath(p) for p in gt_files]
    args = copy.copy(m.args)
    args.predictionPath = os.path.abspath(prediction_root)
    args.predictionWalk = None
    args.gtInstancesFile = os.path.join(out_dir, "gtInstances.json")
    args.exportFile = os.path.join(out_dir, "resultInstanceLevelSemanticLabeling.json")
    args.JSONOutput = True
    args.quiet = True
    args.colorized = False
    args.csv = False
    args.distanceAvailable = False
    args.instLabels = []
    with contextlib.suppress(FileNotFoundError):
        os.remove(args.gtInstancesFile)
    log = io.StringIO()
    with _LOCK, contextlib.redirect_stdout(log), _chdir(out_dir), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # nanmean over classes without GT
        try:
            pred_list = [m.getPrediction(gt, args) for gt in gt_list]
            result = m.evaluateImgLists(pred_list, gt_list, args)
        except SystemExit:
            lines = [ln for ln in log.getvalue().splitlines() if ln.strip()]
            msg = lines[-1] if lines else "cityscapesscripts exited"
            raise CityscapesEvalError(msg.replace("ERROR: ", "", 1)) from None
    return CityscapesRun(result=result, export_file=args.exportFile,
                         matches_file=os.path.join(out_dir, "matches.json"), log=log.getvalue())
