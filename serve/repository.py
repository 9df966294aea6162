"""Write a Triton model repository for an exported model (``mrcnn-triton repo``).

    write_repository("model.onnx", "triton_repo", RepoOptions(instances=2))

Four models, named after ``RepoOptions.name`` (``mrcnn`` by default):

========================  ============  ==============================================
model                     kind          tensors (per image; every model batches)
========================  ============  ==============================================
``mrcnn``                 ensemble      IMAGE uint8 [-1] (a JPEG/PNG/... file) ->
                                        JSON uint8 [-1] (UTF-8 text of the mrcnn-demo
                                        per-image JSON, padded with spaces)
``mrcnn_preprocess``      Python        IMAGE -> images f32 [3,S,S], windows f32 [4],
                                        mold_info f64 [7] (h, w, window y1 x1 y2 x2, scale)
``mrcnn_network``         see below     images, windows -> detections f32 [D,6],
                                        count i32 [1], masks f32 [D,28,28]
``mrcnn_postprocess``     Python        detections, count, masks, mold_info -> JSON
========================  ============  ==============================================

The network model takes one of three forms (``RepoOptions.backend``):

* ``python`` (default for ``.onnx``): a Python-backend model running ONNX Runtime
  with the project's custom-op library, on the CPU of any machine;
* ``onnxruntime``: Triton's own ONNX Runtime backend (``platform:
  "onnxruntime_onnx"``), with ``model_operations { op_library_filename }``
  naming ``libmrcnn_ort_ops.so`` beside the model for the ``mrcnn::`` nodes;
* ``tensorrt`` (default for ``.plan``): ``platform: "tensorrt_plan"`` with
  ``libmrcnn_trt_plugins.so`` beside the plan, loaded by the server with
  ``--backend-config=tensorrt,plugins=...`` (see :func:`server_flags`).

Everything is checked before anything is written, against the model's sidecar
(``model.onnx.json`` / ``model.plan.json``): the file is the one exported or
built (sha256), a plan was built by the serving machine's TensorRT release for
its GPU architecture, batch sizes fit the model, the plugin library is the one
the plan was built with. Each model folder is written to a temporary folder and
renamed into place, the ensemble last, so a failure never leaves a half-written
model.

The checks live in :mod:`.model_facts`, the ``config.pbtxt`` text in
:mod:`.pbtxt`, the generated ``model.py`` in :mod:`.model_py`; this module
plans and writes.

Python-backend models run in Triton's stub process, whose interpreter starts
isolated (it ignores ``PYTHONPATH`` and virtual environments): each
``model.py`` is a short generated file that adds this environment's
site-packages folders (recorded when the repository is written) and imports the
model class from :mod:`mrcnn_trt.serve.python_models`. A repository with Python
models therefore belongs to the machine (and Python version) that wrote it.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from mrcnn_trt.errors import UserError
from mrcnn_trt.fileio import sha256_file
from mrcnn_trt.plugins import loader, ort

from .model_check import check_onnx_model
from .model_facts import (ModelFacts, RepoOptions, RepositoryError, check_plan_target,  # noqa: F401 (public API)
                          read_model, resolve_max_batch)
from .model_py import model_py
from .pbtxt import ensemble_config, network_config, postprocess_config, preprocess_config

MODEL_INFO_FILE = "mrcnn_model.json"   # in each Python model's version folder: config + class names
ORT_LIBRARY = "libmrcnn_ort_ops.so"
TRT_LIBRARY = "libmrcnn_trt_plugins.so"
REPO_FORMAT = "mrcnn-trt-triton/1"


@dataclass(frozen=True)
class Plan:
    """Everything decided before writing (see :func:`plan_repository`)."""

    facts: ModelFacts
    backend: str
    max_batch: int
    names: Dict[str, str]                 # role -> model name (ensemble, preprocess, network, postprocess)
    options: RepoOptions
    op_library: Optional[str] = None      # ORT custom-op library to copy (onnxruntime form, trt flavor)
    plugin_library: Optional[str] = None  # TensorRT plugin library to copy (tensorrt form, trt flavor)
    target: Optional[Tuple[str, str]] = None   # (arch, TensorRT) of the serving machine


def model_names(name: str) -> Dict[str, str]:
    return {"ensemble": name, "preprocess": f"{name}_preprocess", "network": f"{name}_network",
            "postprocess": f"{name}_postprocess"}


def plan_repository(model: str, repo: str, options: RepoOptions = RepoOptions()) -> Plan:
    """Check everything (model, sidecar, options, destination) without writing anything."""
    facts = read_model(model)
    backend = options.backend or ("tensorrt" if facts.kind == "plan" else "python")
    if facts.kind == "plan" and backend != "tensorrt":
        raise RepositoryError(f"{os.path.basename(model)} is a TensorRT plan: only --backend tensorrt can serve it")
    if facts.kind == "onnx" and backend == "tensorrt":
        raise RepositoryError(f"--backend tensorrt needs a plan: build one with mrcnn-build-engine "
                              f"{os.path.basename(model)} --arch sm_XY on the serving GPU")
    mb = resolve_max_batch(facts, backend, options.max_batch)
    op_library = plugin_library = target = None
    if backend == "python" and facts.flavor == "trt":
        if not ort.custom_ops_available():
            raise RepositoryError(f"{os.path.basename(model)} has mrcnn:: custom nodes but ONNX Runtime cannot load "
                                  f"{ort.library_path()}; reinstall the project (see plugins/README.md) or export "
                                  f"--flavor standard")
    if backend == "onnxruntime" and facts.flavor == "trt":
        op_library = ort.library_path()
        if not os.path.isfile(op_library):
            raise RepositoryError(f"{op_library} was not built: Triton's onnxruntime backend needs it for the "
                                  f"mrcnn:: nodes (or export --flavor standard)")
    if backend == "tensorrt":
        target = check_plan_target(facts, options.arch, options.tensorrt)
        if facts.flavor == "trt":
            recorded = facts.sidecar.get("plugin_library")
            try:
                if not options.plugins and recorded and os.path.isfile(recorded):
                    plugin_library = os.path.abspath(recorded)   # the library the plan was built with
                else:
                    plugin_library = loader.find_library(options.plugins)
            except UserError as e:
                raise RepositoryError(f"{e}; the plan has mrcnn:: plugin layers and Triton must load the library "
                                      f"that built it (--plugins LIB)") from None
            want = facts.sidecar.get("plugin_sha256")
            if want and sha256_file(plugin_library) != want:
                raise RepositoryError(f"{plugin_library} is not the plugin library the plan was built with "
                                      f"({facts.sidecar.get('plugin_library')}, sha256 {str(want)[:12]}...): pass "
                                      f"that library with --plugins, or rebuild the plan")
    names = model_names(options.name)
    if os.path.exists(repo) and not os.path.isdir(repo):
        raise RepositoryError(f"{repo} exists and is not a folder")
    taken = [n for n in names.values() if os.path.exists(os.path.join(repo, n))]
    if taken and not options.force:
        raise RepositoryError(f"{repo} already has model folder(s) {', '.join(taken)}: pass --force to replace "
                              f"them, or choose another --name")
    if facts.kind == "onnx":   # last: the only check that reads the whole model

        try:
            check_onnx_model(facts.path, facts.sidecar, backend=backend, image_size=facts.image_size,
                             max_instances=facts.max_instances, mask_shape=facts.mask_shape)
        except UserError as e:
            raise RepositoryError(str(e)) from None
    return Plan(facts, backend, mb, names, options, op_library, plugin_library, target)


def server_path(plan: Plan, repo: str, *parts: str) -> str:
    """Absolute path of a repository file as the server sees it (``RepoOptions.mount``)."""
    root = plan.options.mount or os.path.abspath(repo)
    return os.path.join(root, *parts)


def server_flags(plan: Plan, repo: str) -> List[str]:
    """tritonserver flags this repository needs beyond ``--model-repository``."""
    if plan.plugin_library:
        lib = server_path(plan, repo, plan.names["network"], "1", TRT_LIBRARY)
        return [f"--backend-config=tensorrt,plugins={lib}"]
    return []


def write_repository(model: str, repo: str, options: RepoOptions = RepoOptions()) -> dict:
    """Check, then write the four models into ``repo``; returns a summary dict
    (``models``, ``backend``, ``max_batch``, ``server_flags``, ...)."""
    plan = plan_repository(model, repo, options)
    os.makedirs(repo, exist_ok=True)
    if not os.access(repo, os.W_OK):
        raise RepositoryError(f"repository folder is not writable: {repo}")
    names, facts, o, mb = plan.names, plan.facts, plan.options, plan.max_batch
    info = {
        "format": REPO_FORMAT,
        "source": facts.path,
        "source_sha256": facts.sidecar.get("onnx_sha256") if facts.kind == "onnx" else facts.sidecar.get("plan_sha256"),
        "backend": plan.backend,
        "image_size": facts.image_size,
        "class_names": list(facts.config.get("CLASS_NAMES", [])),
        "config": facts.config,
        "max_batch": mb,
    }

    def python_model(folder: str, class_name: str, config_text: str) -> None:
        _write(folder, "config.pbtxt", config_text)
        _write(folder, "1/model.py", model_py(class_name))
        _write(folder, f"1/{MODEL_INFO_FILE}", json.dumps(info, indent=2) + "\n")

    def pre(folder):
        python_model(folder, "PreprocessModel", preprocess_config(names["preprocess"], facts, mb, o))

    def post(folder):
        python_model(folder, "PostprocessModel", postprocess_config(names["postprocess"], facts, mb, o))

    def net(folder):
        if plan.backend == "python":
            python_model(folder, "NetworkModel", network_config(names["network"], facts, "python", mb, o))
            _copy(facts.path, folder, "1/model.onnx")
            _copy(facts.path + ".json", folder, "1/model.onnx.json")
        elif plan.backend == "onnxruntime":
            lib = server_path(plan, repo, names["network"], "1", ORT_LIBRARY) if plan.op_library else None
            _write(folder, "config.pbtxt", network_config(names["network"], facts, "onnxruntime", mb, o, lib))
            _copy(facts.path, folder, "1/model.onnx")
            if plan.op_library:
                _copy(plan.op_library, folder, f"1/{ORT_LIBRARY}")
        else:
            _write(folder, "config.pbtxt", network_config(names["network"], facts, "tensorrt", mb, o))
            _copy(facts.path, folder, "1/model.plan")
            _copy(facts.path + ".json", folder, "1/model.plan.json")
            if plan.plugin_library:
                _copy(plan.plugin_library, folder, f"1/{TRT_LIBRARY}")

    def ens(folder):
        _write(folder, "config.pbtxt", ensemble_config(names["ensemble"], names["preprocess"], names["network"],
                                                       names["postprocess"], mb))
        os.makedirs(os.path.join(folder, "1"), exist_ok=True)   # an ensemble needs a version folder too

    # the ensemble last: it only appears once the models it refers to are in place
    for role, writer in (("preprocess", pre), ("network", net), ("postprocess", post), ("ensemble", ens)):
        _write_model_folder(repo, names[role], writer)
    return {"repository": os.path.abspath(repo), "server_repository": o.mount or os.path.abspath(repo),
            "models": names, "backend": plan.backend, "max_batch": mb,
            "instances": o.instances, "target": list(plan.target) if plan.target else None,
            "server_flags": server_flags(plan, repo)}


def _write(folder: str, rel: str, text: str) -> None:
    path = os.path.join(folder, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def _copy(src: str, folder: str, rel: str) -> None:
    path = os.path.join(folder, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    try:
        shutil.copyfile(src, path)
    except OSError as e:
        raise RepositoryError(f"cannot copy {src}: {e.strerror}") from None


def _write_model_folder(repo: str, name: str, writer) -> None:
    """Write one model folder into a temporary folder of ``repo``, then rename it into place
    (an existing folder of that name is replaced only after the new one is complete)."""
    tmp = tempfile.mkdtemp(prefix=f".{name}.", suffix=".part", dir=repo)
    old = None
    try:
        writer(tmp)
        os.chmod(tmp, 0o755)
        final = os.path.join(repo, name)
        if os.path.exists(final):
            old = tempfile.mkdtemp(prefix=f".{name}.", suffix=".old", dir=repo)
            os.rename(final, os.path.join(old, name))
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if old:
            shutil.rmtree(old, ignore_errors=True)


def read_model_info(version_dir: str) -> dict:
    """The ``mrcnn_model.json`` written next to a Python model's ``model.py``."""
    with open(os.path.join(version_dir, MODEL_INFO_FILE)) as f:
        return json.load(f)


def describe(summary: dict) -> str:
    """A few lines for the terminal: what was written and how to serve it."""
    m = summary["models"]
    lines = [f"wrote {summary['repository']}: ensemble {m['ensemble']} = {m['preprocess']} -> {m['network']} "
             f"({summary['backend']}) -> {m['postprocess']}; max batch {summary['max_batch']}, "
             f"{summary['instances']} instance(s) each"]
    if summary["backend"] == "python":
        lines.append(f"serve it: mrcnn-triton serve {summary['repository']}")
    else:
        flags = " ".join(summary["server_flags"])
        lines.append(f"serve it with a full Triton (NVIDIA's container): tritonserver "
                     f"--model-repository={summary['server_repository']} {flags}".rstrip())
    return "\n".join(lines)


__all__ = ["RepoOptions", "ModelFacts", "Plan", "RepositoryError", "read_model", "plan_repository",
           "write_repository", "server_flags", "check_plan_target", "resolve_max_batch", "model_names",
           "read_model_info", "describe"]
