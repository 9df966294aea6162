"""The one description of the native build: ``plugins/native.json``, read by its three builders.

* CMake (``CMakeLists.txt`` and ``plugins/*/CMakeLists.txt`` through ``cmake/mrcnn_native.cmake``):
  the kernels, the C ABI library, the TensorRT plugin library, the test programs;
* setup.py (``tools/native_ext.py``): the pybind11 CPU module, the ONNX Runtime custom-op
  library, the calibration statistics module;
* ``mrcnn-build-plugins`` (``mrcnn_trt.engine.plugin_builder``): the TensorRT plugin library
  for the installed TensorRT family.

The rules, the same in ``cmake/mrcnn_native.cmake`` and here:

* paths in the file are relative to the repository root;
* the op list is the X-macro ``ops.macro`` in ``ops.header`` (``X(Op, folder)``, generated from
  ``plugins/opdefs.py``); a target's ``per_op`` patterns are expanded with ``{folder}`` for
  every op, in the macro's order, after its own ``sources``;
* ``exact_math.cxx`` goes to every C++ compile and ``exact_math.cuda`` to every nvcc compile
  of every target;
* ``uses``: targets whose code becomes part of this one (CMake: the objects of an OBJECT
  library, else a link; the Python builders: their sources, compiled into the artifact), with
  their include folders and defines.

Standard library only: setup.py loads this file by path before anything is installed.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

#: the description, next to this module (installed with the package data of mrcnn_trt.plugins)
DESCRIPTION = os.path.join(os.path.dirname(os.path.abspath(__file__)), "native.json")
FORMAT = "mrcnn-native/1"
KINDS = ("object", "static", "shared", "executable", "python_extension")
BUILDERS = ("cmake", "setuptools", "build-plugins")


class NativeBuildError(ValueError):
    """The description is malformed or names a file that is not there."""


@dataclass(frozen=True)
class Target:
    """One target with its ``uses`` resolved. Paths are repository-relative.

    ``sources``: its own sources then the per-op ones; ``all_sources``: those followed by the
    sources of every target it uses (depth first, each once): what a builder that compiles
    everything into one artifact compiles. ``include_dirs`` / ``defines``: its own then those
    of the targets it uses."""

    name: str
    kind: str
    built_by: Tuple[str, ...]
    sources: Tuple[str, ...]
    all_sources: Tuple[str, ...]
    include_dirs: Tuple[str, ...]
    defines: Tuple[str, ...]
    uses: Tuple[str, ...]
    cxx_flags: Tuple[str, ...] = ()
    link_flags: Tuple[str, ...] = ()
    export_map: Optional[str] = None
    exports: Tuple[str, ...] = ()
    module: Optional[str] = None


@dataclass(frozen=True)
class NativeBuild:
    """``plugins/native.json`` read against a checkout (``repo_root``)."""

    repo_root: str
    ops: Tuple[Tuple[str, str], ...]          # (Op, folder) in contract order
    exact_cxx: Tuple[str, ...]
    exact_cuda: Tuple[str, ...]
    targets: Dict[str, Target]

    def target(self, name: str) -> Target:
        try:
            return self.targets[name]
        except KeyError:
            raise NativeBuildError(f"{DESCRIPTION}: no target {name!r} (have {', '.join(self.targets)})") from None

    def path(self, rel: str) -> str:
        """Absolute path of a repository-relative path of the description."""
        return os.path.join(self.repo_root, rel)

    def missing(self, name: str) -> List[str]:
        """Sources (and the export map) of target ``name`` and its uses that are not in the checkout."""
        t = self.target(name)
        files = list(t.all_sources) + ([t.export_map] if t.export_map else [])
        return [f for f in files if not os.path.isfile(self.path(f))]


def contract_ops(header: str, macro: str = "MRCNN_CONTRACT_OPS") -> Tuple[Tuple[str, str], ...]:
    """``#define MACRO(X) X(Op, folder) ...`` in ``header`` -> ((Op, folder), ...)."""
    try:
        with open(header) as f:
            text = f.read()
    except OSError as e:
        raise NativeBuildError(f"cannot read the op list ({header}): {e.strerror}") from None
    m = re.search(rf"^\s*#\s*define\s+{re.escape(macro)}\(X\)(.*)$", text, re.M)
    if not m:
        raise NativeBuildError(f"{header} has no #define {macro}(X)")
    ops = tuple(re.findall(r"X\(\s*(\w+)\s*,\s*(\w+)\s*\)", m.group(1)))
    if not ops:
        raise NativeBuildError(f"{header}: {macro} lists no op")
    return ops


def _strings(spec: dict, key: str, where: str) -> Tuple[str, ...]:
    v = spec.get(key, [])
    if not isinstance(v, list) or not all(isinstance(s, str) for s in v):
        raise NativeBuildError(f"{where}.{key} must be a list of strings")
    return tuple(v)


def _unique(items) -> Tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def load(repo_root: Optional[str] = None, path: str = DESCRIPTION) -> NativeBuild:
    """Read the description; ``repo_root`` defaults to the folder above ``plugins/``."""
    repo_root = os.path.abspath(repo_root or os.path.dirname(os.path.dirname(os.path.abspath(path))))
    try:
        with open(path) as f:
            raw = json.load(f)
    except (OSError, ValueError) as e:
        raise NativeBuildError(f"cannot read {path}: {e}") from None
    if raw.get("format") != FORMAT:
        raise NativeBuildError(f"{path}: format {raw.get('format')!r}, expected {FORMAT!r}")
    ops = contract_ops(os.path.join(repo_root, raw["ops"]["header"]), raw["ops"]["macro"])
    exact = raw["exact_math"]
    specs = raw["targets"]

    own: Dict[str, dict] = {}
    for name, spec in specs.items():
        where = f"targets.{name}"
        if spec.get("kind") not in KINDS:
            raise NativeBuildError(f"{where}.kind must be one of {', '.join(KINDS)}")
        built_by = _strings(spec, "built_by", where)
        if not built_by or set(built_by) - set(BUILDERS):
            raise NativeBuildError(f"{where}.built_by must name builders among {', '.join(BUILDERS)}")
        per_op = [p.format(folder=folder) for p in _strings(spec, "per_op", where) for _, folder in ops]
        uses = _strings(spec, "uses", where)
        unknown = [u for u in uses if u not in specs]
        if unknown:
            raise NativeBuildError(f"{where}.uses names an unknown target {unknown[0]!r}")
        sources = _unique(_strings(spec, "sources", where) + tuple(per_op))
        own[name] = {"spec": spec, "built_by": built_by, "sources": sources,
                     "include_dirs": _strings(spec, "include_dirs", where), "defines": _strings(spec, "defines", where),
                     "uses": uses, "cxx_flags": _strings(spec, "cxx_flags", where),
                     "link_flags": _strings(spec, "link_flags", where), "exports": _strings(spec, "exports", where)}

    def closure(name: str, seen: Tuple[str, ...] = ()) -> List[str]:
        """``name`` then every target it uses, depth first, each once."""
        if name in seen:
            raise NativeBuildError(f"targets.{name}: a cycle in uses ({' -> '.join(seen + (name,))})")
        out = [name]
        for u in own[name]["uses"]:
            out += [t for t in closure(u, seen + (name,)) if t not in out]
        return out

    targets = {}
    for name, o in own.items():
        chain = closure(name)
        targets[name] = Target(
            name=name, kind=o["spec"]["kind"], built_by=o["built_by"], sources=o["sources"],
            all_sources=_unique(s for t in chain for s in own[t]["sources"]),
            include_dirs=_unique(d for t in chain for d in own[t]["include_dirs"]),
            defines=_unique(d for t in chain for d in own[t]["defines"]),
            uses=o["uses"], cxx_flags=o["cxx_flags"], link_flags=o["link_flags"],
            export_map=o["spec"].get("export_map"), exports=o["exports"], module=o["spec"].get("module"))
    return NativeBuild(repo_root=repo_root, ops=ops, exact_cxx=_strings(exact, "cxx", "exact_math"),
                       exact_cuda=_strings(exact, "cuda", "exact_math"), targets=targets)
