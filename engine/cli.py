"""``mrcnn-build-engine``: ONNX (+ sidecar) -> TensorRT plan (+ ``model.plan.json``).

    mrcnn-build-engine model.onnx --arch sm_86                        # FP32
    mrcnn-build-engine model.onnx --arch sm_86 --fp16 -o model_fp16.plan
    mrcnn-build-engine model.onnx --arch sm_61 --int8 --calib-images calib/ --calib-cache model.calib
    mrcnn-build-engine model.onnx --arch sm_61 --int8 --calib-cache model.calib   # reuse a cache
    mrcnn-build-engine model_qdq.onnx --arch sm_89 --int8                 # Q/DQ model (TensorRT 11)

Checks before building (each with its own exit code, see engine/README.md):
TensorRT importable (10), TensorRT release supports --arch (11), the visible
GPU is --arch (12), the plugin library has device code for it (13), the ONNX
matches its sidecar (14), the precision request is possible (15), a
calibration cache matches this model/preprocessing/TensorRT (16), the plugin
library exists (17); a failed parse/build exits with 18. The plan and its
sidecar are written atomically: a failed build leaves no file behind.
"""
from __future__ import annotations

import argparse
import datetime
import os
import sys
import time
from typing import Optional, Sequence

from mrcnn_trt.cli import run_main
from mrcnn_trt.errors import UserError

from . import checks


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mrcnn-build-engine", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("onnx", help="model.onnx from mrcnn-export (with model.onnx.json beside it)")
    p.add_argument("--arch", required=True, help="GPU architecture of the GPU building and running the engine, "
                                                 "e.g. sm_61, sm_75, sm_86 (engines are tied to one arch)")
    p.add_argument("--fp16", action="store_true", help="allow FP16 kernels (TensorRT <= 10; on 11 give an FP16 model)")
    p.add_argument("--int8", action="store_true", help="INT8: calibrate (TensorRT <= 10) or build a Q/DQ model")
    p.add_argument("--calib-images", metavar="DIR", help="images (folder, COCO or Cityscapes root) to calibrate on")
    p.add_argument("--calib-cache", metavar="FILE", help="calibration cache: read if it exists (must match this "
                                                         "model), else written (default: <plan>.calib)")
    p.add_argument("--calib-count", type=int, default=500, help="calibration images (default 500)")
    p.add_argument("--calibrator", choices=["entropy2", "minmax"], default="entropy2",
                   help="INT8 calibrator (default entropy2)")
    p.add_argument("--plugins", metavar="LIB", help="libmrcnn_trt_plugins.so (default: MRCNN_TRT_PLUGINS, the "
                                                    "package folder, then build*/ folders)")
    p.add_argument("--workspace", type=int, default=2048, metavar="MB", help="builder workspace limit (default 2048)")
    p.add_argument("--timing-cache", metavar="FILE", help="TensorRT timing cache: read if present, updated after")
    p.add_argument("--batch", type=int, help="batch size (must equal the ONNX batch unless its batch is dynamic)")
    p.add_argument("--device", type=int, default=0, help="CUDA device index (default 0)")
    p.add_argument("-o", "--output", help="plan file (default: the ONNX path with .plan)")
    p.add_argument("--verbose", action="store_true", help="TensorRT INFO messages")
    return p


def default_output(onnx_path: str) -> str:
    root, ext = os.path.splitext(onnx_path)
    return (root if ext.lower() == ".onnx" else onnx_path) + ".plan"


def _check_args(args) -> None:
    checks.arch_support(checks.parse_arch(args.arch))   # well-formed and known
    if args.workspace < 1:
        raise UserError("--workspace must be >= 1 (MB)")
    if args.batch is not None and args.batch < 1:
        raise UserError("--batch must be >= 1")
    if args.calib_count < 1:
        raise UserError("--calib-count must be >= 1")
    if (args.calib_images or args.calib_cache) and not args.int8:
        raise checks.PrecisionUnsupported("--calib-images/--calib-cache only make sense with --int8")
    if args.calib_images and not os.path.exists(args.calib_images):
        raise UserError(f"calibration images not found: {args.calib_images}")
    if args.int8 and args.calib_cache and not args.calib_images and not os.path.isfile(args.calib_cache):
        raise UserError(f"calibration cache not found: {args.calib_cache} (give --calib-images to create it)")
    out_dir = os.path.dirname(os.path.abspath(args.output))
    if os.path.isdir(out_dir) and not os.access(out_dir, os.W_OK):
        raise UserError(f"output folder is not writable: {out_dir}")


@run_main
def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    args.output = args.output or default_output(args.onnx)
    _check_args(args)
    if not os.path.isfile(args.onnx):
        raise UserError(f"ONNX model not found: {args.onnx}")
    trt = checks.import_tensorrt(args.arch)           # exit 10 with an install hint
    t0 = time.time()
    builder = EngineBuild(args, trt)
    side = builder.run()
    print(f"wrote {args.output} ({side['precision']['label']}, {side['arch']}, TensorRT {side['tensorrt']}, "
          f"{side['plan_bytes'] / 1e6:.1f} MB) in {time.time() - t0:.1f} s", file=sys.stderr)
    return 0


def make_logger(trt, verbose: bool = False):
    """A TensorRT logger printing warnings (INFO with ``verbose``) that also
    keeps the errors, so a failed build can end with one line."""

    class Logger(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)
            self.errors = []
            self.level = 3 if verbose else 2   # Severity: 0 internal error, 1 error, 2 warning, 3 info

        def log(self, severity, msg):
            if int(severity) <= 1:
                self.errors.append(str(msg))
            if int(severity) <= self.level:
                print(f"[TensorRT] {msg}", file=sys.stderr)

    return Logger()


class EngineBuild:
    """One engine build (checks, parse, configure, build, write)."""

    def __init__(self, args, trt):
        self.args = args
        self.trt = trt
        self.trt_version = str(trt.__version__)

    # ------------------------------------------------------------ checks
    def preflight(self):
        from mrcnn_trt.fileio import sha256_file

        a = self.args
        self.onnx_sha256 = sha256_file(a.onnx) if os.path.isfile(a.onnx) else None
        self.sidecar = checks.check_onnx_sidecar(a.onnx, onnx_sha256=self.onnx_sha256)
        quant = self.sidecar.get("quantization") or {}
        if quant.get("target") == "cpu":
            raise checks.PrecisionUnsupported(
                f"{a.onnx} was quantized for ONNX Runtime (mrcnn-calibrate --target cpu: uint8 activations, INT32 "
                f"biases), which TensorRT cannot parse; make the TensorRT one with mrcnn-calibrate --target tensorrt")
        checks.check_trt_supports_arch(self.trt_version, a.arch)
        self.cc = checks.check_gpu_arch(checks.visible_compute_capabilities(), a.arch, a.device)
        self.model_precision = checks.onnx_precision(a.onnx)
        self.precision = checks.plan_precision(self.trt_version, fp16=a.fp16, int8=a.int8,
                                               model=self.model_precision, calib_images=a.calib_images,
                                               calib_cache=a.calib_cache)
        self.plugin_path = None
        self.plugin_info = {}
        if checks.needs_plugins(self.sidecar):
            from mrcnn_trt.plugins import loader

            self.plugin_path = loader.find_library(a.plugins)
            code = checks.library_device_code(self.plugin_path)
            lib = None
            if code is None:   # no cuobjdump: the library's embedded arch list
                lib = loader.load(self.plugin_path)
                self.plugin_info = loader.library_info(lib)
                code = checks.parse_arch_list(self.plugin_info.get("cuda_archs", ""))
            how = checks.check_plugin_arch(code, a.arch, library=self.plugin_path)
            if how == "ptx":
                print(f"warning: {self.plugin_path} has only PTX for {a.arch}: kernels are JIT-compiled at load",
                      file=sys.stderr)
            if lib is None:
                lib = loader.load(self.plugin_path)
                self.plugin_info = loader.library_info(lib)
            loader.check_tensorrt_match(self.plugin_info, self.trt_version, self.plugin_path)

    # ------------------------------------------------------------- build
    def run(self) -> dict:
        self.preflight()
        trt, a = self.trt, self.args
        t0 = time.time()
        logger = make_logger(trt, a.verbose)
        if not self.plugin_path:
            trt.init_libnvinfer_plugins(logger, "")
        builder = trt.Builder(logger)
        major = checks.parse_trt_version(self.trt_version)[0]
        flags = 0
        if major < 10 and hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH"):
            flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
        network = builder.create_network(flags)
        parser = trt.OnnxParser(network, logger)
        if not parser.parse_from_file(os.path.abspath(a.onnx)):
            errs = [str(parser.get_error(i)) for i in range(parser.num_errors)]
            first = errs[0].replace("\n", " ") if errs else "unknown error"
            hint = ""
            if self.plugin_path is None and "mrcnn" in first.lower():
                hint = " (the model needs libmrcnn_trt_plugins.so)"
            raise checks.BuildFailed(f"TensorRT could not parse {a.onnx}: {first}{hint}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(a.workspace) << 20)
        self._set_batch(builder, network, config)
        if self.precision.fp16_flag:
            config.set_flag(trt.BuilderFlag.FP16)
        if self.precision.int8_flag:
            config.set_flag(trt.BuilderFlag.INT8)
        calibrator = self._calibrator(config) if self.precision.calibrate else None
        timing = self._timing_cache(config)
        try:
            serialized = builder.build_serialized_network(network, config)
            if calibrator is not None:
                from mrcnn_trt.engine.calibrator import raise_if_failed

                raise_if_failed(calibrator)
            if serialized is None:
                last = logger.errors[-1] if logger.errors else "see the TensorRT messages above"
                raise checks.BuildFailed(f"TensorRT could not build the engine: {last}")
            data = bytes(serialized)
        finally:
            if calibrator is not None:
                calibrator.free()
        return self._write(data, config, timing, time.time() - t0)

    def _set_batch(self, builder, network, config):
        a = self.args
        n_side = int(self.sidecar.get("batch", 1))
        dynamic = False
        shapes = {}
        for i in range(network.num_inputs):
            t = network.get_input(i)
            shape = tuple(t.shape)
            shapes[t.name] = shape
            dynamic = dynamic or (len(shape) > 0 and shape[0] < 0)
        if not dynamic:
            batch = next((s[0] for s in shapes.values() if s), n_side)
            if a.batch is not None and a.batch != batch:
                raise UserError(f"{a.onnx} was exported with batch {batch}; re-export with mrcnn-export --batch "
                                f"{a.batch} (engines keep the ONNX batch)")
            self.batch = int(batch)
            return
        self.batch = int(a.batch or n_side)
        profile = builder.create_optimization_profile()
        for name, shape in shapes.items():
            fixed = (self.batch,) + tuple(shape[1:])
            if any(d < 0 for d in fixed):
                raise UserError(f"input {name} has dynamic dimensions other than the batch: {shape}")
            profile.set_shape(name, fixed, fixed, fixed)
        config.add_optimization_profile(profile)

    def _calibrator(self, config):
        from mrcnn_trt.engine.calib_cache import CacheHeader, Preprocessing
        from mrcnn_trt.engine.calibrator import make_calibrator

        a = self.args
        cache_path = a.calib_cache or (a.output + ".calib")
        expected = CacheHeader(onnx_sha256=self.sidecar["onnx_sha256"],
                               preprocessing=Preprocessing.from_sidecar(self.sidecar), batch=self.batch, count=0,
                               tensorrt=self.trt_version, calibrator=a.calibrator,
                               extra={"images": os.path.abspath(a.calib_images) if a.calib_images else None})
        batches = None
        if a.calib_images and not os.path.isfile(cache_path):
            batches = calibration_batches(a.calib_images, self.sidecar, self.batch, a.calib_count)
        cal = make_calibrator(batches, batch=self.batch, image_size=int(self.sidecar["image_size"]),
                              expected=expected, cache_path=cache_path, kind=a.calibrator, trt=self.trt,
                              max_images=a.calib_count)
        config.int8_calibrator = cal
        self.calib_cache_path = cache_path
        return cal

    def _timing_cache(self, config):
        a = self.args
        if not a.timing_cache:
            return None
        data = b""
        if os.path.isfile(a.timing_cache):
            with open(a.timing_cache, "rb") as f:
                data = f.read()
        cache = config.create_timing_cache(data)
        config.set_timing_cache(cache, ignore_mismatch=False)
        return cache

    def _write(self, data: bytes, config, timing, seconds: float) -> dict:
        import hashlib

        import mrcnn_trt
        from mrcnn_trt.fileio import sha256_file, sidecar_path, write_bytes_atomic, write_json_atomic

        a = self.args
        calib_path = getattr(self, "calib_cache_path", None)
        side = {
            "format": checks.PLAN_FORMAT,
            "plan_sha256": hashlib.sha256(data).hexdigest(),
            "plan_bytes": len(data),
            "tensorrt": self.trt_version,
            "cuda_runtime": _cuda_runtime_version(),
            **checks.cuda_driver_info(a.device),
            "arch": a.arch,
            "precision": {"label": self.precision.label, "fp16": bool(a.fp16), "int8": self.precision.int8_mode,
                          "calibrator": a.calibrator if self.precision.calibrate else None},
            "plugin_library": self.plugin_path,
            "plugin_sha256": sha256_file(self.plugin_path) if self.plugin_path else None,
            "plugin_info": self.plugin_info,
            "onnx": os.path.abspath(a.onnx),
            "onnx_sha256": self.sidecar["onnx_sha256"],
            "flavor": self.sidecar["flavor"],
            "calibration_cache": os.path.abspath(calib_path) if calib_path else None,
            "calibration_cache_sha256": sha256_file(calib_path) if calib_path and os.path.isfile(calib_path) else None,
            "batch": self.batch,
            "workspace_mb": a.workspace,
            "timing_cache": os.path.abspath(a.timing_cache) if a.timing_cache else None,
            "build_seconds": round(seconds, 2),
            "built_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "mrcnn_trt_version": mrcnn_trt.__version__,
        }
        for k in ("image_size", "num_classes", "class_names", "mean_pixel", "inputs", "outputs", "config"):
            if k in self.sidecar:
                side[k] = self.sidecar[k]
        write_bytes_atomic(a.output, data)
        try:
            write_json_atomic(sidecar_path(a.output), side)
        except BaseException:
            os.unlink(a.output)
            raise
        if timing is not None:
            write_bytes_atomic(a.timing_cache, bytes(config.get_timing_cache().serialize()))
        return side


def _cuda_runtime_version() -> Optional[str]:
    try:
        from .cuda_mem import CudaPython

        return CudaPython().runtime_version()
    except Exception:
        return None


def calibration_batches(source: str, sidecar: dict, batch: int, count: int):
    """Molded calibration batches from an image folder / dataset root, using
    the model's config from the sidecar (the shared batcher)."""
    from mrcnn_trt.runtime.batcher import ImageBatcher
    from mrcnn_trt.config import Config

    cfg = Config.from_dict(sidecar["config"])
    return ImageBatcher(source, cfg, batch_size=batch, sample=count, seed=0, progress="calibrate")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
