"""What a Triton repository is written from: the exported model, as its sidecar
describes it, and the options of ``mrcnn-triton repo``.

:func:`read_model` reads and checks the sidecar of an ``.onnx`` or ``.plan``
(the file is the one exported or built, sha256); :func:`check_plan_target`
refuses a plan that the serving machine's TensorRT or GPU cannot load;
:func:`resolve_max_batch` picks the ``max_batch_size`` of every model. Nothing
here writes a file; :mod:`.repository` does, after these checks.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

from mrcnn_trt.config import Config
from mrcnn_trt.engine.archs import arch_name, parse_arch, parse_trt_version
from mrcnn_trt.engine.gpu import visible_compute_capabilities
from mrcnn_trt.engine.sidecars import PLAN_FORMAT, check_onnx_sidecar, read_plan_sidecar
from mrcnn_trt.errors import UserError
from mrcnn_trt.fileio import sha256_file

BACKENDS = ("python", "onnxruntime", "tensorrt")

#: max_batch_size of the Python-backend models (and of a fixed-batch ONNX in the python form)
DEFAULT_MAX_BATCH = 8
#: largest decoded image accepted by the preprocess model (pixels); larger ones get an error response
DEFAULT_MAX_PIXELS = 40_000_000


class RepositoryError(UserError):
    """The model, its sidecar and the options do not fit together."""


@dataclass(frozen=True)
class RepoOptions:
    """What ``mrcnn-triton repo`` writes (see :mod:`.repository`).

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


def read_model(path: str) -> ModelFacts:
    """Read and check the sidecar of an ``.onnx`` (mrcnn-export) or ``.plan`` (mrcnn-build-engine)."""
    if not path or not os.path.isfile(path):
        raise RepositoryError(f"model not found: {path}")
    ext = os.path.splitext(path)[1].lower()
    try:
        if ext == ".onnx":
            side, kind = check_onnx_sidecar(path), "onnx"
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
    try:
        side = read_plan_sidecar(path)
    except UserError as e:
        raise RepositoryError(str(e)) from None
    if not isinstance(side, dict) or side.get("format") != PLAN_FORMAT:
        raise RepositoryError(f"{path}: the sidecar is not a {PLAN_FORMAT} description; build the plan with "
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
    side = facts.sidecar
    name = os.path.basename(facts.path)
    if plan_family(side) != "tensorrt":
        raise RepositoryError(f"{name} is a TensorRT for RTX plan (family {plan_family(side)!r}): Triton's TensorRT "
                              f"backend links TensorRT itself and cannot load it; build the plan with TensorRT "
                              f"(mrcnn-build-engine) or serve the ONNX model (--backend python|onnxruntime)")
    if arch is None:
        visible = visible_compute_capabilities()
        arch = arch_name(visible[0]) if visible else None
    if trt_version is None:
        trt_version = _local_tensorrt_version()
    if arch is None or trt_version is None:
        missing = " and ".join(x for x, v in (("--arch", arch), ("--tensorrt", trt_version)) if v is None)
        raise RepositoryError(f"{name}: pass {missing} of the serving machine (GPU compute capability, and the "
                              f"TensorRT release of its Triton, listed in the Triton release notes): a plan only "
                              f"loads there if they match the plan's (built for {', '.join(plan_targets(side)) or '?'}"
                              f", TensorRT {side.get('tensorrt', '?')})")
    arch = arch_name(parse_arch(arch))   # sm_86, 86 or 8.6: one spelling from here on
    built = str(side.get("tensorrt", ""))
    try:
        same = parse_trt_version(built) == parse_trt_version(trt_version)
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
