"""Build a plan from an exported ONNX model: the Python API behind ``mrcnn-build-engine``.

    from mrcnn_trt.engine import build_engine
    side = build_engine("model.onnx", arch="sm_86,sm_89,sm_120", precision="fp16", family="rtx")
    side["targets"], side["precision"]["label"], side["plan_bytes"]   # model.plan + model.plan.json

Families (:mod:`.families`): TensorRT builds on the GPU it targets (one
``arch``, checked against the visible GPU); TensorRT for RTX builds ahead of
time without a GPU for one or several targets. Checks, in this order, each a
one-line :class:`~mrcnn_trt.errors.UserError` with its exit code
(:mod:`.errors`): the ONNX file exists (2) and matches its sidecar (14); a
family imports (10) and builds every target (11); TensorRT: the GPU is the
target (12); the family implements the model's operators (20: no
NonMaxSuppression in TensorRT for RTX); the precision request is possible
(15); the plugin library exists (17), fits the family (21) and has device
code for every target (13); TensorRT parses and builds (18). The plan and its
sidecar are written atomically: a failed build leaves no file behind.
"""
from __future__ import annotations

import datetime
import hashlib
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, List, Optional, Sequence, Tuple

import mrcnn_trt
from mrcnn_trt.calib.fp16 import convert_model
from mrcnn_trt.calib.qdq import quantize_model
from mrcnn_trt.config import Config
from mrcnn_trt.engine.calib_cache import CacheHeader, Preprocessing
from mrcnn_trt.engine.calibrator import make_calibrator, raise_if_failed
from mrcnn_trt.errors import UserError
from mrcnn_trt.fileio import refuse_overwriting_inputs, sha256_file, sidecar_path, write_bytes_atomic, write_json_atomic
from mrcnn_trt.options import cuda_index
from mrcnn_trt.runtime.batcher import ImageBatcher
from mrcnn_trt.runtime.modelfile import ModelFileError, check_model_file, load_onnx

from . import archs, device_code, gpu, sidecars
from .cuda_mem import CudaPython
from .archs import FAMILY_NAMES
from .errors import BuildFailed, GpuMismatch, ModelUnsupported, PrecisionUnsupported
from .families import Family, import_family
from .plugin_library import check_build_facts, find, open_library, read_build_tag
from .precision import PrecisionPlan, onnx_precision, parse_precision, plan_precision

CALIBRATORS = ("entropy2", "minmax")

#: TensorRT logger severities (ILogger.Severity values).
SEVERITY_INTERNAL_ERROR, SEVERITY_ERROR, SEVERITY_WARNING, SEVERITY_INFO, SEVERITY_VERBOSE = 0, 1, 2, 3, 4

#: Error messages TensorRT logs without a GPU that say nothing about the model.
_NO_GPU_NOISE = ("CUDA driver version is insufficient", "cudaError 35", "catchCudaError")


@dataclass(frozen=True)
class BuildRequest:
    """Everything one build needs (see :func:`build_engine`)."""

    onnx: str
    output: Optional[str] = None
    arch: Optional[str] = None              # "sm_86" or "sm_86,sm_89,sm_120"; None: the visible GPU
    precision: str = "fp32"                 # fp32 | fp16 | int8 | int8+fp16
    family: str = "auto"                    # auto | tensorrt | rtx
    plugins: Optional[str] = None
    batch: Optional[int] = None             # opt batch of a dynamic-batch model (default its max)
    workspace_mb: int = 2048
    timing_cache: Optional[str] = None
    calib_images: Optional[str] = None
    calib_count: int = 500
    calib_cache: Optional[str] = None       # TensorRT <= 10 only
    calibrator: str = "entropy2"            # TensorRT <= 10 only
    seed: int = 0
    threads: int = 2                        # ONNX Runtime threads of a Q/DQ calibration
    device: str = "cuda:0"
    verbose: bool = False


def default_output(onnx_path: str) -> str:
    root, ext = os.path.splitext(onnx_path)
    return (root if ext.lower() == ".onnx" else onnx_path) + ".plan"


def build_engine(onnx_path: str, *, arch: Optional[str | Sequence[str]] = None, precision: str = "fp32",
                 family: str = "auto", plugins: Optional[str] = None, output: Optional[str] = None,
                 batch: Optional[int] = None, workspace_mb: int = 2048, timing_cache: Optional[str] = None,
                 calib_images: Optional[str] = None, calib_count: int = 500, calib_cache: Optional[str] = None,
                 calibrator: str = "entropy2", seed: int = 0, threads: int = 2, device: str = "cuda:0",
                 verbose: bool = False) -> dict:
    """Build ``onnx_path`` (+ its sidecar) into a plan; returns the plan sidecar.

    ``arch``: "sm_86", "sm_86,sm_89" or a list (several only with TensorRT for
    RTX; default: the visible GPU). ``precision``: "fp32", "fp16", "int8" or
    "int8+fp16" (a Q/DQ model is INT8 whatever is asked). ``family``: "auto"
    (TensorRT if it imports, else TensorRT for RTX), "tensorrt" or "rtx".
    ``output``: the plan path (default: the ONNX path with ``.plan``); the
    sidecar is ``<output>.json``. ``batch``: the optimization-profile batch
    of a dynamic-batch model (1 <= batch <= its max; default the max).
    ``calib_images``: INT8 calibration images (TensorRT <= 10: calibrated in
    the builder, cache ``calib_cache``; strongly typed families: a Q/DQ model
    is calibrated with mrcnn-calibrate's code first). Raises
    :class:`~mrcnn_trt.errors.UserError` subclasses (one line, exit code).
    """
    if not isinstance(arch, (str, type(None))):
        arch = ",".join(arch)
    req = BuildRequest(onnx=onnx_path, output=output, arch=arch, precision=precision, family=family, plugins=plugins,
                       batch=batch, workspace_mb=workspace_mb, timing_cache=timing_cache, calib_images=calib_images,
                       calib_count=calib_count, calib_cache=calib_cache, calibrator=calibrator, seed=seed,
                       threads=threads, device=device, verbose=verbose)
    return EngineBuild(req).run()


def make_logger(trt, verbose: bool = False):
    """A TensorRT logger that keeps every message (errors go into the one-line
    error, warnings are shown after a successful build) and prints INFO
    messages as they come with ``verbose``."""

    class Logger(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)
            self.messages: List[Tuple[int, str]] = []

        def log(self, severity, msg):
            self.messages.append((int(severity), str(msg)))
            if verbose and int(severity) >= SEVERITY_WARNING:
                print(f"[TensorRT] {msg}", file=sys.stderr)

        def errors(self) -> List[str]:
            return [m for s, m in self.messages if s <= SEVERITY_ERROR and not any(n in m for n in _NO_GPU_NOISE)]

        def warnings(self) -> List[str]:
            return [m for s, m in self.messages if s == SEVERITY_WARNING]

    return Logger()


def _one_line(text: str, limit: int = 600) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[:limit - 3] + "..."


def graph_op_types(path: str) -> set:
    """Operator types of an ONNX file; a file onnx cannot load is :class:`BuildFailed`
    (18: TensorRT could not parse it either), in one line (``mrcnn_trt.runtime.modelfile``)."""
    try:
        m = load_onnx(path)
    except ModelFileError as e:
        raise BuildFailed(str(e)) from None
    ops = {n.op_type for n in m.graph.node}
    for f in m.functions:
        ops |= {n.op_type for n in f.node}
    return ops


@dataclass
class _Graph:
    """The ONNX file TensorRT parses and where its precision came from."""

    path: str
    sha256: str
    derived: dict = field(default_factory=dict)   # sidecar of a graph made for this build (fp16 / Q/DQ)


class EngineBuild:
    """One engine build: checks, graph preparation, parse, configure, build, write."""

    def __init__(self, req: BuildRequest):
        self.req = req
        self.output = req.output or default_output(req.onnx)
        self.family: Optional[Family] = None
        self.plugin = None
        self.calib_cache_path: Optional[str] = None
        self.notes: List[str] = []   # shown after a successful build (a failure stays one line)

    # ---------------------------------------------------------------- checks
    def check_request(self) -> None:
        """Argument checks that need nothing installed (the file comes first)."""
        r = self.req

        check_model_file(r.onnx)
        self.fp16, self.int8 = parse_precision(r.precision)
        self.target_ccs = archs.parse_arch_list(r.arch) if r.arch else None
        for cc in self.target_ccs or ():
            if cc not in archs.ARCH_SUPPORT and cc not in archs.RTX_TARGETS:
                archs.arch_support(cc)   # raises: unknown architecture
        if r.workspace_mb < 1:
            raise UserError("workspace must be >= 1 (MB)")
        if r.batch is not None and r.batch < 1:
            raise UserError("--batch must be >= 1")
        if r.calib_count < 1:
            raise UserError("--calib-count must be >= 1")
        if r.calibrator not in CALIBRATORS:
            raise UserError(f"calibrator must be one of {', '.join(CALIBRATORS)}, got {r.calibrator!r}")
        if (r.calib_images or r.calib_cache) and not self.int8:
            raise PrecisionUnsupported("--calib-images/--calib-cache only make sense with --int8")
        if r.calib_images and not os.path.exists(r.calib_images):
            raise UserError(f"calibration images not found: {r.calib_images}")
        if self.int8 and r.calib_cache and not r.calib_images and not os.path.isfile(r.calib_cache):
            raise UserError(f"calibration cache not found: {r.calib_cache} (give --calib-images to create it)")
        out_dir = os.path.dirname(os.path.abspath(self.output))
        if os.path.isdir(out_dir) and not os.access(out_dir, os.W_OK):
            raise UserError(f"output folder is not writable: {out_dir}")
        refuse_overwriting_inputs([self.output, sidecar_path(self.output)], [r.onnx, sidecar_path(r.onnx)],
                                  hint="the plan must not overwrite the ONNX model")

    def preflight(self) -> None:
        r = self.req
        self.check_request()
        self.onnx_sha256 = sha256_file(r.onnx)
        self.sidecar = sidecars.check_onnx_sidecar(r.onnx, onnx_sha256=self.onnx_sha256)
        quant = self.sidecar.get("quantization") or {}
        if quant.get("target") == "cpu":
            raise PrecisionUnsupported(
                f"{r.onnx} was quantized for ONNX Runtime (mrcnn-calibrate --target cpu: uint8 activations, INT32 "
                f"biases), which TensorRT cannot parse; make the TensorRT one with mrcnn-calibrate --target tensorrt")
        if self.sidecar.get("mask_head", "all") != "all":
            raise ModelUnsupported(
                f"{r.onnx} was exported with --mask-head {self.sidecar['mask_head']} (data-dependent shapes, for "
                f"ONNX Runtime); TensorRT builds the static graph: re-export with mrcnn-export --mask-head all")
        self.op_types = graph_op_types(r.onnx)   # a file onnx cannot load: 18, before TensorRT is looked for
        self.device_index = cuda_index(r.device) if r.device.startswith("cuda") else 0
        fam = self.family = import_family(r.family, r.arch)
        self.targets = self._targets(fam)
        if not fam.has_nms and "NonMaxSuppression" in self.op_types:
            raise ModelUnsupported(
                f"{fam.label} has no NonMaxSuppression implementation (upstream request NVIDIA/TensorRT-RTX#5), which "
                f"this {self.sidecar.get('flavor', '')} ONNX uses: export the plugin flavor (mrcnn-export --flavor trt, "
                f"the default) and build that")
        self.model_precision = onnx_precision(r.onnx)
        self.precision: PrecisionPlan = plan_precision(fam, fp16=self.fp16, int8=self.int8,
                                                       model=self.model_precision, calib_images=r.calib_images,
                                                       calib_cache=r.calib_cache)
        self.dynamic, self.max_batch = sidecars.batch_limits(self.sidecar, r.onnx)
        if r.batch is not None and self.dynamic and r.batch > self.max_batch:
            raise UserError(f"--batch {r.batch} exceeds the largest batch of {r.onnx} ({self.max_batch}); re-export "
                            f"with mrcnn-export --batch {r.batch}")
        if sidecars.needs_plugins(self.sidecar):
            self._open_plugins()

    def _targets(self, fam: Family) -> List[int]:
        """The build targets (compute capabilities), checked against the family (and the GPU for TensorRT)."""
        ccs = self.target_ccs
        visible = None
        if ccs is None:
            visible = gpu.visible_compute_capabilities()
            if self.device_index >= len(visible):
                raise GpuMismatch(f"no GPU {self.device_index} visible to take the architecture from: pass --arch "
                                  f"(e.g. --arch sm_86{', or several: --arch sm_86,sm_89' if fam.ahead_of_time else ''})")
            ccs = [visible[self.device_index]]
        if fam.ahead_of_time:
            archs.check_rtx_targets(fam.version, ccs, fam.targets)
            return list(ccs)
        archs.check_tensorrt_targets(fam.version, ccs)
        gpu.check_gpu_arch(visible if visible is not None else gpu.visible_compute_capabilities(), ccs[0],
                           self.device_index)
        return list(ccs)

    def _open_plugins(self) -> None:
        """Find the plugin library; check its family (21) and device code (13)
        from the file, before loading it; then load it (its creators register)."""
        fam = self.family
        path = find(fam.name, self.req.plugins)
        tag = read_build_tag(path)
        if tag or fam.name == archs.RTX:
            check_build_facts(tag, fam, path)
            self._check_device_code(path, tag.get("cuda_archs", ""))
        self.plugin = open_library(fam, path)
        if not tag:
            self._check_device_code(path, self.plugin.info.get("cuda_archs", ""))

    def _check_device_code(self, path: str, embedded: str) -> None:
        code = device_code.library_device_code(path)
        if code is None or (not code.sass and not code.ptx):   # no cuobjdump: the library's own list
            code = device_code.parse_embedded_archs(embedded)
        jit = [archs.arch_name(cc) for cc in self.targets
               if device_code.check_plugin_arch(code, cc, library=path) == "ptx"]
        if jit:
            self.notes.append(f"warning: {path} has only PTX for {', '.join(jit)}: its kernels are JIT-compiled "
                              f"when the plan is first loaded there")

    # ---------------------------------------------------------------- graph
    def _prepare_graph(self, tmp: str) -> _Graph:
        """The graph to parse: the ONNX itself, or (strongly typed families) an
        FP16 or Q/DQ graph made from it for this build."""
        r, p = self.req, self.precision
        if p.convert_fp16:
            out = os.path.join(tmp, "model.fp16.onnx")
            print(f"converting {r.onnx} to an FP16 graph ({self.family.label} has no FP16 builder flag)",
                  file=sys.stderr)
            side = convert_model(r.onnx, out)
            return _Graph(out, side["onnx_sha256"], {"fp16": side.get("fp16")})
        if p.make_qdq:
            out = os.path.join(tmp, "model.int8.onnx")
            print(f"calibrating an INT8 Q/DQ graph on {r.calib_images} ({r.calib_count} images; {self.family.label} "
                  f"has no INT8 calibrators)", file=sys.stderr)
            side = quantize_model(r.onnx, out, r.calib_images, count=r.calib_count, seed=r.seed, target="tensorrt",
                                  threads=r.threads, progress=True)
            return _Graph(out, side["onnx_sha256"], {"quantization": side.get("quantization")})
        return _Graph(os.path.abspath(r.onnx), self.onnx_sha256)

    # ---------------------------------------------------------------- build
    def run(self) -> dict:
        t_start = time.perf_counter()   # build_seconds: everything the user waits for, checks included
        self.preflight()
        with tempfile.TemporaryDirectory(prefix="mrcnn-build-engine-") as tmp:
            graph = self._prepare_graph(tmp)
            t0 = time.perf_counter()
            data, config_facts = self._build(graph)
            builder_seconds = time.perf_counter() - t0
        side = self._write(data, graph, config_facts, builder_seconds, time.perf_counter() - t_start)
        for note in self.notes:
            print(note, file=sys.stderr)
        return side

    def _parse(self, trt, builder, logger, path: str):
        network = builder.create_network(self._network_flags(trt))
        parser = trt.OnnxParser(network, logger)
        ok = parser.parse_from_file(path)
        if ok:
            return network, parser
        errs = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        ours = self.plugin.take_errors() if self.plugin else []
        first = errs[0] if errs else (logger.errors() or ["unknown error"])[-1]
        if ours:
            node = ""
            if errs and hasattr(parser.get_error(0), "node_name"):
                node = f" (node {parser.get_error(0).node_name()})"
            detail = ours[0] + node
        else:
            detail = first.split("\n")[0]
            if self.plugin is None and "mrcnn" in first.lower():
                detail += " (the model needs libmrcnn_trt_plugins.so)"
        raise BuildFailed(_one_line(f"{self.family.label} could not parse {self.req.onnx}: {detail}"))

    def _network_flags(self, trt) -> int:
        flags = getattr(trt, "NetworkDefinitionCreationFlag", None)
        fam = self.family
        # TensorRT < 10 needs explicit batch; later releases (and RTX) ignore or lack the flag.
        if fam.name == archs.TENSORRT and archs.parse_trt_version(fam.version)[0] < 10 and \
                flags is not None and hasattr(flags, "EXPLICIT_BATCH"):
            return 1 << int(flags.EXPLICIT_BATCH)
        return 0

    def _build(self, graph: _Graph) -> Tuple[bytes, dict]:
        fam, r = self.family, self.req
        trt = fam.module
        logger = make_logger(trt, r.verbose)
        if self.plugin:
            self.plugin.capture_errors(True)
            self.plugin.take_errors()
        elif hasattr(trt, "init_libnvinfer_plugins"):
            trt.init_libnvinfer_plugins(logger, "")
        try:
            builder = trt.Builder(logger)
            network, _parser = self._parse(trt, builder, logger, graph.path)
            config = builder.create_builder_config()
            config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(r.workspace_mb) << 20)
            batch_range = self._set_batch(builder, network, config)
            if self.precision.fp16_flag:
                config.set_flag(trt.BuilderFlag.FP16)
            if self.precision.int8_flag:
                config.set_flag(trt.BuilderFlag.INT8)
            if fam.ahead_of_time:
                config.num_compute_capabilities = len(self.targets)
                for i, cc in enumerate(self.targets):
                    if not config.set_compute_capability(getattr(trt.ComputeCapability, f"SM{cc}"), i):
                        raise BuildFailed(f"{fam.label} refused target {archs.arch_name(cc)}")
            calibrator = self._calibrator(config) if self.precision.calibrate else None
            timing = self._timing_cache(config)
            try:
                serialized = builder.build_serialized_network(network, config)
                if calibrator is not None:
                    raise_if_failed(calibrator)
            finally:
                if calibrator is not None:
                    calibrator.free()
            if serialized is None:
                ours = self.plugin.take_errors() if self.plugin else []
                errs = logger.errors()
                last = ours[0] if ours else (errs[-1] if errs else "see the messages with --verbose")
                hint = ""
                if fam.name == archs.RTX and 75 in self.targets and self.precision.label == "fp32" \
                        and "FP32 GEMM" in last:
                    hint = " (TensorRT for RTX has no FP32 GEMM for sm_75: add --fp16)"
                raise BuildFailed(_one_line(f"{fam.label} could not build the engine: {last}") + hint)
            data = bytes(serialized)
            facts = {"batch_range": batch_range,
                     "timing_cache": bytes(config.get_timing_cache().serialize()) if timing is not None else None}
        finally:
            if self.plugin:
                self.plugin.capture_errors(False)
        if not r.verbose:
            for w in dict.fromkeys(logger.warnings()):
                self.notes.append(f"[TensorRT] warning: {_one_line(w, 300)}")
        return data, facts

    def _set_batch(self, builder, network, config) -> Optional[List[int]]:
        """Fixed models keep their batch; a dynamic-batch model gets the
        profile min 1, opt ``--batch`` (default its max N), max N."""
        r = self.req
        shapes = {}
        dynamic = False
        for i in range(network.num_inputs):
            t = network.get_input(i)
            shape = tuple(t.shape)
            shapes[t.name] = shape
            dynamic = dynamic or (len(shape) > 0 and shape[0] < 0)
        if not dynamic:
            batch = next((s[0] for s in shapes.values() if s), self.max_batch)
            if r.batch is not None and r.batch != batch:
                raise UserError(f"{r.onnx} was exported with batch {batch}; re-export with mrcnn-export --batch "
                                f"{r.batch} (engines keep the ONNX batch)")
            self.batch = int(batch)
            return None
        n = self.max_batch
        opt = int(r.batch or n)
        profile = builder.create_optimization_profile()
        for name, shape in shapes.items():
            if any(d < 0 for d in shape[1:]):
                raise UserError(f"input {name} has dynamic dimensions other than the batch: {shape}")
            rest = tuple(shape[1:])
            profile.set_shape(name, (1,) + rest, (opt,) + rest, (n,) + rest)
        config.add_optimization_profile(profile)
        self.batch = n
        return [1, opt, n]

    def _calibrator(self, config):
        r = self.req
        cache_path = r.calib_cache or (self.output + ".calib")
        expected = CacheHeader(onnx_sha256=self.sidecar["onnx_sha256"],
                               preprocessing=Preprocessing.from_sidecar(self.sidecar), batch=self.batch, count=0,
                               tensorrt=self.family.version, calibrator=r.calibrator,
                               extra={"images": os.path.abspath(r.calib_images) if r.calib_images else None})
        batches = None
        if r.calib_images and not os.path.isfile(cache_path):
            batches = calibration_batches(r.calib_images, self.sidecar, self.batch, r.calib_count, r.seed)
        cal = make_calibrator(batches, batch=self.batch, image_size=int(self.sidecar["image_size"]),
                              expected=expected, cache_path=cache_path, kind=r.calibrator, trt=self.family.module,
                              max_images=r.calib_count)
        config.int8_calibrator = cal
        self.calib_cache_path = cache_path
        return cal

    def _timing_cache(self, config):
        path = self.req.timing_cache
        if not path:
            return None
        if not self.family.timing_cache:
            self.notes.append(f"note: --timing-cache ignored: {FAMILY_NAMES[self.family.name]} has no timing cache")
            return None
        data = b""
        if os.path.isfile(path):
            with open(path, "rb") as f:
                data = f.read()
        cache = config.create_timing_cache(data)
        config.set_timing_cache(cache, ignore_mismatch=False)
        return cache

    # ---------------------------------------------------------------- write
    def _write(self, data: bytes, graph: _Graph, facts: dict, builder_seconds: float, seconds: float) -> dict:
        """Write the plan and its sidecar. ``seconds``: the whole build as the user waited for it
        (``build_seconds``, what ``mrcnn-build-engine`` prints); ``builder_seconds``: the TensorRT
        builder's part of it."""
        r, fam, p = self.req, self.family, self.precision
        calib = self.calib_cache_path
        targets = [archs.arch_name(c) for c in self.targets]
        side: dict[str, Any] = {
            "format": sidecars.PLAN_FORMAT,
            "plan_sha256": hashlib.sha256(data).hexdigest(),
            "plan_bytes": len(data),
            "family": fam.name,
            "family_version": fam.version,
            "targets": targets,
            "arch": ",".join(targets),    # every target, as --arch takes them ("sm_86,sm_89,sm_120")
            "tensorrt": fam.version if fam.name == archs.TENSORRT else None,
            "cuda_runtime": _cuda_runtime_version(),
            **gpu.cuda_driver_info(self.device_index),
            "precision": {"label": p.label, "source": p.source, "fp16": bool(self.fp16 or p.label == "fp16"),
                          "int8": p.int8_mode, "calibrator": r.calibrator if p.calibrate else None},
            "plugin_library": self.plugin.path if self.plugin else None,
            "plugin_sha256": sha256_file(self.plugin.path) if self.plugin else None,
            "plugin_info": self.plugin.info if self.plugin else {},
            "onnx": os.path.abspath(r.onnx),
            "onnx_sha256": self.sidecar["onnx_sha256"],
            "built_graph_sha256": graph.sha256,
            **graph.derived,
            "flavor": self.sidecar["flavor"],
            "calibration_cache": os.path.abspath(calib) if calib else None,
            "calibration_cache_sha256": sha256_file(calib) if calib and os.path.isfile(calib) else None,
            "batch": self.batch,
            "dynamic_batch": facts["batch_range"] is not None,
            "batch_range": facts["batch_range"],
            "workspace_mb": r.workspace_mb,
            "timing_cache": os.path.abspath(r.timing_cache) if r.timing_cache and fam.timing_cache else None,
            "build_seconds": round(seconds, 2),
            "builder_seconds": round(builder_seconds, 2),
            "built_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "mrcnn_trt_version": mrcnn_trt.__version__,
        }
        for k in ("image_size", "num_classes", "class_names", "mean_pixel", "inputs", "outputs", "config"):
            if k in self.sidecar:
                side[k] = self.sidecar[k]
        write_bytes_atomic(self.output, data)
        try:
            write_json_atomic(sidecar_path(self.output), side)
        except BaseException:
            os.unlink(self.output)
            raise
        if facts.get("timing_cache") is not None:
            write_bytes_atomic(r.timing_cache, facts["timing_cache"])
        return side


def _cuda_runtime_version() -> Optional[str]:
    try:
        return CudaPython().runtime_version()
    except Exception:  # noqa: BLE001 - cuda-python absent or no driver
        return None


def calibration_batches(source: str, sidecar: dict, batch: int, count: int, seed: int = 0):
    """Molded calibration batches from an image folder / dataset root, using
    the model's config from the sidecar (the shared batcher)."""
    cfg = Config.from_dict(sidecar["config"])
    return ImageBatcher(source, cfg, batch_size=batch, sample=count, seed=seed, progress="calibrate")
