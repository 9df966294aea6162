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
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from mrcnn_trt.errors import UserError

from .model_py import model_py

BACKENDS = ("python", "onnxruntime", "tensorrt")

#: max_batch_size of the Python-backend models (and of a fixed-batch ONNX in the python form)
DEFAULT_MAX_BATCH = 8
#: largest decoded image accepted by the preprocess model (pixels); larger ones get an error response
DEFAULT_MAX_PIXELS = 40_000_000
MODEL_INFO_FILE = "mrcnn_model.json"   # in each Python model's version folder: config + class names
ORT_LIBRARY = "libmrcnn_ort_ops.so"
TRT_LIBRARY = "libmrcnn_trt_plugins.so"
REPO_FORMAT = "mrcnn-trt-triton/1"

# ensemble I/O and internal tensor names (the network's are the exported graph's own names)
IMAGE, JSON_OUT = "IMAGE", "JSON"


class RepositoryError(UserError):
    """The model, its sidecar and the options do not fit together."""


@dataclass(frozen=True)
class RepoOptions:
    """What ``mrcnn-triton repo`` writes (see the module docstring).

    ``arch`` / ``tensorrt`` describe the *serving* machine for a TensorRT plan
    (default: this machine's GPU / TensorRT, when present). ``mount`` is where
    the server will see the repository (e.g. ``/models`` inside a container);
    absolute paths written into configs and printed flags use it.
    """

    name: str = "mrcnn"
    backend: Optional[str] = None          # python | onnxruntime | tensorrt; None: from the file type
    instances: int = 1                     # instance_group count of every model
    max_batch: Optional[int] = None        # None: from the model (see resolve_max_batch)
    queue_delay_us: int = 2000             # dynamic_batching max_queue_delay_microseconds
    threads: int = 2                       # ONNX Runtime intra-op threads per network instance (python form)
    max_pixels: int = DEFAULT_MAX_PIXELS
    arch: Optional[str] = None
    tensorrt: Optional[str] = None
    plugins: Optional[str] = None          # TensorRT plugin library (default: the plan's, else the loader's)
    mount: Optional[str] = None
    force: bool = False                    # replace model folders of the same names

    def __post_init__(self):
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", self.name or ""):
            raise RepositoryError(f"model name {self.name!r}: use letters, digits, '_', '-', '.'")
        if self.backend is not None and self.backend not in BACKENDS:
            raise RepositoryError(f"backend {self.backend!r}: expected one of {', '.join(BACKENDS)}")
        for key, low in (("instances", 1), ("threads", 1), ("max_pixels", 1), ("queue_delay_us", 0)):
            if int(getattr(self, key)) < low:
                raise RepositoryError(f"{key} must be >= {low}, got {getattr(self, key)}")
        if self.max_batch is not None and self.max_batch < 1:
            raise RepositoryError(f"max_batch must be >= 1, got {self.max_batch}")
        if self.mount is not None and not os.path.isabs(self.mount):
            raise RepositoryError(f"--mount must be an absolute path (where the server sees the repository), "
                                  f"got {self.mount!r}")


@dataclass(frozen=True)
class ModelFacts:
    """The exported model, as its sidecar describes it."""

    path: str
    kind: str                 # "onnx" | "plan"
    sidecar: dict = field(repr=False)
    config: dict = field(repr=False)
    flavor: str               # "trt" (mrcnn:: custom nodes) | "standard"
    batch: int                # fixed batch, or the maximum of a dynamic-batch export
    dynamic_batch: bool
    image_size: int
    max_instances: int
    mask_shape: Tuple[int, int]


# --------------------------------------------------------------------------- reading and checking
def read_model(path: str) -> ModelFacts:
    """Read and check the sidecar of an ``.onnx`` (mrcnn-export) or ``.plan`` (mrcnn-build-engine)."""
    from mrcnn_trt.engine import checks

    if not path or not os.path.isfile(path):
        raise RepositoryError(f"model not found: {path}")
    ext = os.path.splitext(path)[1].lower()
    try:
        if ext == ".onnx":
            side, kind = checks.check_onnx_sidecar(path), "onnx"
        elif ext in (".plan", ".engine"):
            side, kind = _check_plan_file(path), "plan"
    except UserError as e:
        raise RepositoryError(str(e)) from None
    except (ValueError, RecursionError) as e:   # a sidecar that is not UTF-8 or nested too deeply
        raise RepositoryError(f"the sidecar of {path} is not readable JSON ({type(e).__name__}); re-export or "
                              f"rebuild the model") from None
    if ext not in (".onnx", ".plan", ".engine"):
        raise RepositoryError(f"{path}: expected an .onnx (mrcnn-export) or a .plan (mrcnn-build-engine)")
    config = side.get("config")
    if not isinstance(config, dict):
        raise RepositoryError(f"the sidecar of {path} has no model config; re-export / rebuild it")
    try:
        from mrcnn_trt.config import Config

        cfg = Config.from_dict(config)
    except (UserError, TypeError, ValueError, KeyError, AttributeError) as e:
        raise RepositoryError(f"the sidecar of {path} holds an invalid config: {e}") from None
    batch = side.get("batch")
    if not isinstance(batch, int) or batch < 1:
        raise RepositoryError(f"the sidecar of {path} has no valid batch size ({batch!r})")
    return ModelFacts(path=os.path.abspath(path), kind=kind, sidecar=side, config=config,
                      flavor=str(side.get("flavor", "trt")), batch=batch,
                      dynamic_batch=bool(side.get("dynamic_batch", False)), image_size=cfg.IMAGE_MAX_DIM,
                      max_instances=cfg.DETECTION_MAX_INSTANCES, mask_shape=tuple(cfg.MASK_SHAPE))


def _check_plan_file(path: str) -> dict:
    """The plan sidecar exists, is ours and describes this very file."""
    from mrcnn_trt.engine import checks
    from mrcnn_trt.engine.runner import read_plan_sidecar
    from mrcnn_trt.fileio import sha256_file

    try:
        side = read_plan_sidecar(path)
    except UserError as e:
        raise RepositoryError(str(e)) from None
    if not isinstance(side, dict) or side.get("format") != checks.PLAN_FORMAT:
        raise RepositoryError(f"{path}: the sidecar is not a {checks.PLAN_FORMAT} description; build the plan with "
                              f"mrcnn-build-engine")
    if side.get("plan_sha256") != sha256_file(path):
        raise RepositoryError(f"{path} does not match its sidecar (sha256 differs): the plan was replaced or "
                              f"damaged; rebuild it")
    return side


def plan_family(side: dict) -> str:
    """``"tensorrt"`` or ``"rtx"`` (TensorRT for RTX); sidecars before the field are TensorRT."""
    return str(side.get("family") or "tensorrt").lower()


def plan_targets(side: dict) -> List[str]:
    """GPU architectures a plan runs on: ``targets`` (new sidecars) or ``arch``."""
    targets = side.get("targets")
    if isinstance(targets, (list, tuple)) and targets:
        return [str(t) for t in targets]
    return [str(side["arch"])] if side.get("arch") else []


def check_plan_target(facts: ModelFacts, arch: Optional[str], trt_version: Optional[str]) -> Tuple[str, str]:
    """Refuse a plan that Triton's TensorRT backend on the serving machine cannot load.

    ``arch`` (``sm_86``) and ``trt_version`` describe the serving machine; when
    not given, this machine's GPU and TensorRT are used if present. Returns the
    (arch, TensorRT version) checked against.
    """
    from mrcnn_trt.engine import checks

    side = facts.sidecar
    name = os.path.basename(facts.path)
    if plan_family(side) != "tensorrt":
        raise RepositoryError(f"{name} is a TensorRT for RTX plan (family {plan_family(side)!r}): Triton's TensorRT "
                              f"backend links TensorRT itself and cannot load it; build the plan with TensorRT "
                              f"(mrcnn-build-engine) or serve the ONNX model (--backend python|onnxruntime)")
    if arch is None:
        visible = checks.visible_compute_capabilities()
        arch = checks.arch_name(visible[0]) if visible else None
    if trt_version is None:
        trt_version = _local_tensorrt_version()
    if arch is None or trt_version is None:
        missing = " and ".join(x for x, v in (("--arch", arch), ("--tensorrt", trt_version)) if v is None)
        raise RepositoryError(f"{name}: pass {missing} of the serving machine (GPU compute capability, and the "
                              f"TensorRT release of its Triton, listed in the Triton release notes): a plan only "
                              f"loads there if they match the plan's (built for {', '.join(plan_targets(side)) or '?'}"
                              f", TensorRT {side.get('tensorrt', '?')})")
    arch = checks.arch_name(checks.parse_arch(arch))   # sm_86, 86 or 8.6: one spelling from here on
    built = str(side.get("tensorrt", ""))
    try:
        same = checks.parse_trt_version(built) == checks.parse_trt_version(trt_version)
    except ValueError:
        same = False
    if not same:
        raise RepositoryError(f"{name} was built with TensorRT {built or '?'} but the server runs TensorRT "
                              f"{trt_version}: plans only load in the TensorRT release that built them; rebuild it "
                              f"with TensorRT {trt_version} (mrcnn-build-engine) on the serving GPU")
    targets = plan_targets(side)
    if arch not in targets:
        raise RepositoryError(f"{name} was built for {', '.join(targets) or 'an unknown GPU'} but the server's GPU "
                              f"is {arch}: rebuild the plan on an {arch} GPU (mrcnn-build-engine --arch {arch})")
    return arch, trt_version


def _local_tensorrt_version() -> Optional[str]:
    try:
        import tensorrt  # noqa: F401

        return str(tensorrt.__version__)
    except Exception:  # not installed, or no usable CUDA: nothing to compare with
        return None


def resolve_max_batch(facts: ModelFacts, backend: str, requested: Optional[int]) -> int:
    """max_batch_size of every model of the repository.

    * dynamic-batch export: up to its maximum batch (the default);
    * fixed batch in the ``python`` form: anything (the model runs chunks of
      the fixed batch, padding the last one); default :data:`DEFAULT_MAX_BATCH`;
    * fixed batch in Triton's own backends: batch 1 only (Triton hands the
      model every batch size from 1 to max_batch_size).
    """
    name = os.path.basename(facts.path)
    if facts.dynamic_batch:
        if requested is not None and requested > facts.batch:
            raise RepositoryError(f"--max-batch {requested} exceeds the maximum batch of {name} ({facts.batch}); "
                                  f"export with a larger --batch")
        return requested or facts.batch
    if backend == "python":
        return requested or DEFAULT_MAX_BATCH
    if facts.batch != 1:
        raise RepositoryError(f"{name} has a fixed batch of {facts.batch}: Triton's {backend} backend needs batch 1 "
                              f"or a dynamic-batch export (Triton sends batches of any size up to max_batch_size)")
    if requested is not None and requested > 1:
        raise RepositoryError(f"--max-batch {requested}: {name} has a fixed batch of 1; export it with a dynamic "
                              f"batch to batch in Triton's {backend} backend")
    return 1


# --------------------------------------------------------------------------- config.pbtxt text
def _tensor(name: str, dtype: str, dims, extra: str = "") -> str:
    d = ", ".join(str(int(x)) for x in dims)
    return f'  {{ name: "{name}" data_type: {dtype} dims: [ {d} ]{extra} }}'


def _block(key: str, items: List[str]) -> str:
    return f"{key} [\n" + ",\n".join(items) + "\n]\n"


def _parameters(params: Dict[str, object]) -> str:
    return "".join(f'parameters {{ key: "{k}" value: {{ string_value: "{v}" }} }}\n' for k, v in params.items())


def _scheduling(instances: int, kind: str, queue_delay_us: int) -> str:
    return (f"instance_group [ {{ count: {instances} kind: {kind} }} ]\n"
            f"dynamic_batching {{ max_queue_delay_microseconds: {queue_delay_us} }}\n")


def network_tensors(facts: ModelFacts, reshape_count: bool) -> Tuple[List[str], List[str]]:
    """Inputs and outputs of the network model (the exported graph's names).

    ``count`` is [N] in the graph; Triton sees [N, 1] (``reshape: { shape: [] }``
    maps it for Triton's own backends)."""
    s, d = facts.image_size, facts.max_instances
    count_extra = " reshape: { shape: [ ] }" if reshape_count else ""
    inputs = [_tensor("images", "TYPE_FP32", [3, s, s]), _tensor("windows", "TYPE_FP32", [4])]
    outputs = [_tensor("detections", "TYPE_FP32", [d, 6]), _tensor("count", "TYPE_INT32", [1], count_extra),
               _tensor("masks", "TYPE_FP32", [d, *facts.mask_shape])]
    return inputs, outputs


def preprocess_config(name: str, facts: ModelFacts, mb: int, o: RepoOptions) -> str:
    s = facts.image_size
    return (f'name: "{name}"\nbackend: "python"\nmax_batch_size: {mb}\n'
            + _block("input", [_tensor(IMAGE, "TYPE_UINT8", [-1], " allow_ragged_batch: true")])
            + _block("output", [_tensor("images", "TYPE_FP32", [3, s, s]), _tensor("windows", "TYPE_FP32", [4]),
                                _tensor("mold_info", "TYPE_FP64", [7])])
            + _scheduling(o.instances, "KIND_CPU", o.queue_delay_us)
            + _parameters({"max_pixels": o.max_pixels}))


def postprocess_config(name: str, facts: ModelFacts, mb: int, o: RepoOptions) -> str:
    _, outs = network_tensors(facts, reshape_count=False)
    return (f'name: "{name}"\nbackend: "python"\nmax_batch_size: {mb}\n'
            + _block("input", outs + [_tensor("mold_info", "TYPE_FP64", [7])])
            + _block("output", [_tensor(JSON_OUT, "TYPE_UINT8", [-1])])
            + _scheduling(o.instances, "KIND_CPU", o.queue_delay_us))


def network_config(name: str, facts: ModelFacts, backend: str, mb: int, o: RepoOptions,
                   op_library: Optional[str] = None) -> str:
    ins, outs = network_tensors(facts, reshape_count=backend != "python")
    if backend == "python":
        head = 'backend: "python"\n'
        kind, tail = "KIND_CPU", _parameters({"threads": o.threads})
    elif backend == "onnxruntime":
        head = 'platform: "onnxruntime_onnx"\ndefault_model_filename: "model.onnx"\n'
        kind = "KIND_CPU"   # the mrcnn:: custom ops have CPU kernels only
        tail = (f'model_operations {{ op_library_filename: [ "{op_library}" ] }}\n' if op_library else "")
        tail += _parameters({"intra_op_thread_count": o.threads})
    else:
        head = 'platform: "tensorrt_plan"\ndefault_model_filename: "model.plan"\n'
        kind, tail = "KIND_GPU", ""
    return (f'name: "{name}"\n{head}max_batch_size: {mb}\n' + _block("input", ins) + _block("output", outs)
            + _scheduling(o.instances, kind, o.queue_delay_us) + tail)


def ensemble_config(name: str, pre: str, net: str, post: str, mb: int) -> str:
    def step(model: str, inputs: Dict[str, str], outputs: Dict[str, str]) -> str:
        ins = " ".join(f'input_map {{ key: "{k}" value: "{v}" }}' for k, v in inputs.items())
        outs = " ".join(f'output_map {{ key: "{k}" value: "{v}" }}' for k, v in outputs.items())
        return f'    {{ model_name: "{model}" model_version: -1\n      {ins}\n      {outs} }}'

    same = lambda *names: {n: n for n in names}  # noqa: E731
    steps = [step(pre, same(IMAGE), same("images", "windows", "mold_info")),
             step(net, same("images", "windows"), same("detections", "count", "masks")),
             step(post, same("detections", "count", "masks", "mold_info"), same(JSON_OUT))]
    return (f'name: "{name}"\nplatform: "ensemble"\nmax_batch_size: {mb}\n'
            + _block("input", [_tensor(IMAGE, "TYPE_UINT8", [-1])])
            + _block("output", [_tensor(JSON_OUT, "TYPE_UINT8", [-1])])
            + "ensemble_scheduling {\n  step [\n" + ",\n".join(steps) + "\n  ]\n}\n")


# --------------------------------------------------------------------------- writing
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
    from mrcnn_trt.fileio import sha256_file

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
        from mrcnn_trt.plugins import ort

        if not ort.custom_ops_available():
            raise RepositoryError(f"{os.path.basename(model)} has mrcnn:: custom nodes but ONNX Runtime cannot load "
                                  f"{ort.library_path()}; reinstall the project (see plugins/README.md) or export "
                                  f"--flavor standard")
    if backend == "onnxruntime" and facts.flavor == "trt":
        from mrcnn_trt.plugins import ort

        op_library = ort.library_path()
        if not os.path.isfile(op_library):
            raise RepositoryError(f"{op_library} was not built: Triton's onnxruntime backend needs it for the "
                                  f"mrcnn:: nodes (or export --flavor standard)")
    if backend == "tensorrt":
        target = check_plan_target(facts, options.arch, options.tensorrt)
        if facts.flavor == "trt":
            from mrcnn_trt.plugins import loader

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
        from .model_check import check_onnx_model

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
