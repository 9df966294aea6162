"""Explicit INT8 quantization: an ONNX model with QuantizeLinear/DequantizeLinear
(Q/DQ) nodes, calibrated on molded images with ONNX Runtime.

    from mrcnn_trt.calib.qdq import quantize_model
    side = quantize_model("model.onnx", "model.int8.onnx", images="train_images/", count=128)

The result is the INT8 route for both back ends:

* **TensorRT** (``target="tensorrt"``, the default): explicit quantization,
  the only INT8 route of TensorRT 11 (``mrcnn-build-engine model.int8.onnx
  --int8``; TensorRT 8.6/10 build it too). TensorRT's rules are followed:
  INT8 only, zero points 0 (symmetric activations and weights), weights
  per output channel (axis 0 of Conv/Gemm-transB weights, axis 1 of
  ConvTranspose weights), biases left in float (TensorRT's
  DequantizeLinear does not take INT32).
* **ONNX Runtime CPU** (``target="cpu"``): the same activation and weight
  scales, plus INT32-quantized biases. That is what ONNX Runtime's QDQ
  fusion needs to turn ``DQ -> Conv -> Q`` into ``QLinearConv`` (real INT8
  arithmetic): with float biases (the TensorRT target) ONNX Runtime runs the
  same graph correctly but as float convolutions on quantized values, so it
  is not faster. :func:`fused_int8_ops` lists the INT8 kernels a session
  really uses.

Both targets use the same scales: accuracy measured on the CPU is that of
the quantization TensorRT gets (up to kernel rounding).

What is quantized: the weights and activations of every ``Conv``,
``ConvTranspose`` and ``Gemm`` of the backbone, FPN, RPN and the two heads,
except the groups in :data:`DEFAULT_EXCLUDE`. Ranges come from
:func:`calibrate_ranges`: the float model runs once per image in ONNX Runtime
(images from :class:`mrcnn_trt.runtime.batcher.ImageBatcher`, the model's own
molding) and only the activations of the layers that get quantized are
reduced, one pass each, to the statistics of ONNX Runtime's MinMax, Entropy or
Percentile calibrators (:mod:`mrcnn_trt.calib.stats`).

What is NOT quantized, and why:

* The four custom nodes (``mrcnn::PyramidROIAlign`` x2, ``ProposalLayer``,
  ``DetectionLayer``): their kernels are float (float32/float16 data,
  float32 geometry), and they do the box geometry (anchors, deltas, clipping,
  NMS, crop coordinates) that INT8 cannot represent: they receive
  dequantized (float) tensors and produce float ones.
* Everything between and after them that is not a Conv/Gemm: softmax and
  sigmoid (probabilities near 0/1 and the score thresholds/rankings need
  float), the reshape/transpose/concat/gather plumbing, the mean
  subtraction, resize (upsampling), max-pool and the residual adds (they
  stay float between the dequantized outputs of the convolutions).
* ``rpn_out`` (RPN ``conv_class``/``conv_bbox``), ``classifier_out``
  (``linear_class``/``linear_bbox``) and ``mask_out`` (``mask.conv5``) by
  default: the last layers produce logits and box deltas that go straight
  into softmax/sigmoid and the box decoding; an 8-bit grid on their outputs
  (one scale for all anchors/classes) shifts scores and boxes directly.
  The measured cost of quantizing each group is in calib/README.md
  (``bench/bench_int8.py --sensitivity``).
* Geometry graph inputs (``windows``) and the anchors initializer.
"""
from __future__ import annotations

import collections
import logging
import os
import tempfile
import time
from typing import Dict, Iterable, List, Optional, Sequence

from mrcnn_trt.cli import progress as progress_bar
from mrcnn_trt.config import Config
from mrcnn_trt.errors import UserError
from mrcnn_trt.fileio import atomic_path, refuse_overwriting_inputs, sidecar_path, write_derived_sidecar
from mrcnn_trt.plugins.onnx_schemas import register_schemas
from mrcnn_trt.plugins.ort import CustomOpsUnavailable, missing_reason, session_options
from mrcnn_trt.runtime.batcher import ImageBatcher, as_pairs, pad_batch
from mrcnn_trt.runtime.modelfile import custom_node_types, load_onnx, open_onnx, session_errors
from mrcnn_trt.runtime.pipeline import prefetch

from .groups import (ACTIVATIONS, DEFAULT_ACTIVATIONS, DEFAULT_CALIB_COUNT, DEFAULT_EXCLUDE, DEFAULT_METHOD,
                     GROUP_NAMES, METHODS, QUANT_OP_TYPES, TARGETS, ensure_node_names, node_groups)
from .groups import parse_groups  # noqa: F401  (part of this module's API: mrcnn-calibrate, tests)
from .precision import onnx_precision
from .stats import make_collector


def check_float_model(model, path: str) -> None:
    ops = {n.op_type for n in model.graph.node}
    if ops & {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "ConvInteger"}:
        raise UserError(f"{path} is already quantized; calibrate the float32 model from mrcnn-export")
    if onnx_precision(path).has_fp16:
        raise UserError(f"{path} has float16 tensors; calibrate the float32 model from mrcnn-export")
    names = {i.name for i in model.graph.input}
    if not {"images", "windows"} <= names:
        raise UserError(f"{path} has inputs {sorted(names)}, expected 'images' and 'windows' (an mrcnn-export model)")


# --------------------------------------------------------------------------- calibration
def quantized_nodes(model, exclude: Sequence[str] = DEFAULT_EXCLUDE, exclude_nodes: Sequence[str] = ()) -> List[str]:
    """Names of the Conv/ConvTranspose/Gemm nodes that get quantized (names must be set)."""
    return sorted(n for n, g in node_groups(model).items() if g not in exclude and n not in set(exclude_nodes))


def calibration_tensors(model, nodes: Sequence[str]) -> List[str]:
    """The activations whose ranges quantizing ``nodes`` needs: their non-constant
    inputs and outputs (what ONNX Runtime's calibrators select for these nodes), in
    graph order."""
    inits = {t.name for t in model.graph.initializer}
    consts = {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    wanted = set(nodes)
    out: List[str] = []
    for n in model.graph.node:
        if n.name in wanted:
            for t in list(n.input) + list(n.output):
                if t and t not in inits and t not in consts and t not in out:
                    out.append(t)
    return out


def _calibration_session(model, threads: int):
    """An ONNX Runtime session for the model with its extra outputs: the custom ops
    registered, every graph optimization on (the NCHWc convolutions make it as fast as
    inference), but no memory pattern: with hundreds of graph outputs ORT's pre-planned
    block for them costs 8.3 GB instead of 5.4 GB on R-101 at 1024, at the same speed."""
    import onnxruntime as ort

    reason = missing_reason()
    if reason is not None:
        raise CustomOpsUnavailable(f"calibration runs the model with the mrcnn custom ops, but {reason}")
    so = session_options(threads)
    so.enable_mem_pattern = False
    return ort.InferenceSession(model.SerializeToString(), sess_options=so, providers=["CPUExecutionProvider"])


def _rows_per_image(batch: int):
    """How many leading rows of a [batch*k, ...] activation belong to the first n images."""
    def rows(x, n):
        return x.shape[0] * n // batch if n < batch and x.ndim and x.shape[0] % batch == 0 else x.shape[0]
    return rows


def calibrate_ranges(onnx_path: str, batches: Iterable, *, batch: Optional[int], image_size: int,
                     method: str = DEFAULT_METHOD, percentile: float = 99.999, threads: int = 2,
                     exclude: Sequence[str] = DEFAULT_EXCLUDE, exclude_nodes: Sequence[str] = (),
                     progress: Optional[str] = None, total_images: Optional[int] = None,
                     timings: Optional[dict] = None):
    """Run the float model once per batch and collect the statistics of the
    activations that quantizing its Conv/ConvTranspose/Gemm layers needs (all
    groups but ``exclude`` and ``exclude_nodes``; ``exclude=()`` collects every
    layer's, e.g. to try several exclusions with the same ranges).

    The model runs in ONNX Runtime (the mrcnn custom ops registered, full graph
    optimizations, :func:`_calibration_session`) with the calibrated tensors as extra outputs; each tensor of
    each batch is reduced to the method's statistics (``mrcnn_trt.calib.stats``:
    the same statistics as ONNX Runtime's calibrators, in one pass by C++
    kernels) and dropped, so memory stays that of one network call. ``batch``:
    the model's fixed batch (partial batches are zero padded and the padded
    images' rows left out of the statistics), or None for a dynamic-batch model.
    ``progress``: label of a progress bar (images/s and ETA; ``total_images``).
    ``timings`` (a dict) receives ``setup_s`` (graph + session), ``images_s`` (the
    images: reading, network, statistics) and ``ranges_s`` (the ranges from the statistics).

    Returns ``(tensors_data, images_seen)`` (``onnxruntime.quantization.calibrate.TensorsData``).
    """
    import onnx

    if method not in METHODS:
        raise UserError(f"calibration method must be one of {', '.join(METHODS)}, got {method!r}")

    t0 = time.perf_counter()
    model = load_onnx(onnx_path, external_data=True)
    ensure_node_names(model)
    tensors = calibration_tensors(model, quantized_nodes(model, exclude, exclude_nodes))
    if not tensors:
        raise UserError("every quantizable layer is excluded: nothing to calibrate")
    outputs = [o.name for o in model.graph.output]
    for t in tensors:
        if t not in outputs:
            model.graph.output.append(onnx.helper.make_tensor_value_info(t, onnx.TensorProto.FLOAT, None))
    with session_errors(onnx_path):
        session = _calibration_session(model, threads)
    del model
    stats = make_collector(method, threads=threads, percentile=percentile)
    rows = _rows_per_image(batch or 1)
    seen = 0
    t1 = time.perf_counter()
    bar = None
    if progress:
        bar = progress_bar(None, total=total_images, desc=progress, unit="img")
    try:
        # the next images are read and molded while the model runs
        for images, windows in as_pairs(prefetch(batches, 2), image_size):
            n = images.shape[0]
            if batch is not None:
                images, windows = pad_batch(images, windows, batch)
            values = session.run(tensors, {"images": images, "windows": windows})
            for name, x in zip(tensors, values):
                stats.update(name, x[:rows(x, n)])
            del values
            seen += n
            if bar is not None:
                bar.update(n)
    finally:
        if bar is not None:
            bar.close()
    if seen == 0:
        raise UserError("no calibration images could be read")
    t2 = time.perf_counter()
    result = stats.result()
    if timings is not None:
        timings.update(setup_s=t1 - t0, images_s=t2 - t1, ranges_s=time.perf_counter() - t2)
    return result, seen


# --------------------------------------------------------------------------- quantization
def _method(method: str):
    from onnxruntime.quantization import CalibrationMethod

    try:
        return {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                "percentile": CalibrationMethod.Percentile}[method]
    except KeyError:
        raise UserError(f"calibration method must be one of {', '.join(METHODS)}, got {method!r}") from None


def quantize_with_ranges(onnx_path: str, out_path: str, tensors_data, *, method: str = DEFAULT_METHOD,
                         target: str = "tensorrt", exclude: Sequence[str] = DEFAULT_EXCLUDE,
                         exclude_nodes: Sequence[str] = (), per_channel: bool = True,
                         activations: Optional[str] = None) -> dict:
    """Insert Q/DQ nodes into ``onnx_path`` using calibrated ``tensors_data``;
    write ``out_path`` (not atomically: callers write to a temporary path).

    Returns a description (groups, quantized/excluded node names, settings).
    """
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static, save_tensors_data

    if target not in TARGETS:
        raise UserError(f"target must be one of {', '.join(TARGETS)}, got {target!r}")
    activations = activations or DEFAULT_ACTIVATIONS[target]
    if activations not in ACTIVATIONS:
        raise UserError(f"activations must be one of {', '.join(ACTIVATIONS)}, got {activations!r}")
    if target == "tensorrt" and activations != "int8":
        raise UserError("TensorRT needs symmetric int8 activations (zero point 0): use --activations int8 or "
                        "--target cpu")
    register_schemas()
    model = onnx.load(onnx_path)
    ensure_node_names(model)
    groups = node_groups(model)
    unknown = [n for n in exclude_nodes if n not in {x.name for x in model.graph.node}]
    if unknown:
        raise UserError(f"no node named {unknown[0]!r} in {onnx_path}")
    excluded = sorted({n for n, g in groups.items() if g in exclude} | set(exclude_nodes))
    quantized = sorted(n for n in groups if n not in excluded)
    if not quantized:
        raise UserError("every quantizable layer is excluded: nothing to quantize")
    symmetric = activations == "int8"
    extra = {
        "ActivationSymmetric": symmetric,
        "WeightSymmetric": True,
        "QuantizeBias": target == "cpu",
        # never move Relu into the quantization range: TensorRT and the graph keep it explicit
        "QDQKeepRemovableActivations": True,
    }
    with tempfile.TemporaryDirectory(prefix="mrcnn-qdq-") as tmp:
        src = os.path.join(tmp, "float.onnx")
        onnx.save(model, src)
        cache = os.path.join(tmp, "ranges.json")
        save_tensors_data(tensors_data, cache)
        logging.disable(logging.WARNING)   # ORT's "consider pre-processing" advice (shape inference is done)
        try:
            quantize_static(src, out_path, None, quant_format=QuantFormat.QDQ,
                            op_types_to_quantize=list(QUANT_OP_TYPES), per_channel=per_channel,
                            reduce_range=False, activation_type=QuantType.QInt8 if symmetric else QuantType.QUInt8,
                            weight_type=QuantType.QInt8, nodes_to_exclude=excluded,
                            calibrate_method=_method(method), extra_options=extra, calibration_cache_path=cache)
        finally:
            logging.disable(logging.NOTSET)
    out = onnx.load(out_path)
    _restore_interface(out, model)
    onnx.save(out, out_path)
    return {
        "format": "qdq",
        "target": target,
        "activations": f"{activations}-{'symmetric' if symmetric else 'asymmetric'}",
        "weights": "int8-symmetric-" + ("per-channel" if per_channel else "per-tensor"),
        "bias": "int32" if target == "cpu" else "float32",
        "method": method,
        "op_types": list(QUANT_OP_TYPES),
        "excluded_groups": list(exclude),
        "excluded_nodes": excluded,
        "quantized_nodes": quantized,
        "groups": {g: sorted(n for n, x in groups.items() if x == g) for g in GROUP_NAMES
                   if any(x == g for x in groups.values())},
    }


def _restore_interface(out, src) -> None:
    """Keep the source model's IR version, opset imports (TensorRT 8.6 reads
    opset <= 17) and custom-domain import after ORT's rewrite."""
    import onnx

    src_opsets = {o.domain: o.version for o in src.opset_import}
    out_opsets = {o.domain: o.version for o in out.opset_import}
    if out_opsets.get("", 0) > src_opsets.get("", 0):
        raise UserError(f"quantization raised the ONNX opset to {out_opsets['']} (> {src_opsets['']})")
    merged = dict(out_opsets)
    merged.update({d: v for d, v in src_opsets.items()})
    # ORT adds com.microsoft only for contrib Q/DQ, which we do not use
    if not any(n.domain == "com.microsoft" for n in out.graph.node):
        merged.pop("com.microsoft", None)
    del out.opset_import[:]
    out.opset_import.extend(onnx.helper.make_opsetid(d, v) for d, v in merged.items())
    out.ir_version = src.ir_version
    # ORT's tooling stores shape-inference metadata; drop what it added
    keep = [p for p in out.metadata_props if p.key not in ("onnx.infer", "onnx.quant.pre_process")]
    del out.metadata_props[:]
    out.metadata_props.extend(keep)


def qdq_summary(model) -> Dict[str, int]:
    """Counts of Q/DQ nodes and of Conv/ConvTranspose/Gemm layers with
    quantized (DequantizeLinear-fed) or float weights."""
    prod = {o: n.op_type for n in model.graph.node for o in n.output}
    ops = [n.op_type for n in model.graph.node]
    layers = [n for n in model.graph.node if n.op_type in QUANT_OP_TYPES]
    q = sum(1 for n in layers if len(n.input) > 1 and prod.get(n.input[1]) == "DequantizeLinear")
    return {"QuantizeLinear": ops.count("QuantizeLinear"), "DequantizeLinear": ops.count("DequantizeLinear"),
            "quantized_layers": q, "float_layers": len(layers) - q}


def tensorrt_qdq_problems(model) -> List[str]:
    """What TensorRT's ONNX parser would refuse in the Q/DQ nodes of ``model``:
    TensorRT takes INT8 (or FP8/INT4) Q/DQ with zero points equal to 0 and
    no INT32 DequantizeLinear (quantized biases). Returns messages ([] = fine)."""
    from onnx import TensorProto, numpy_helper

    inits = {t.name: t for t in model.graph.initializer}
    out_type = {}
    for n in model.graph.node:
        if n.op_type == "QuantizeLinear" and len(n.input) > 2 and n.input[2] in inits:
            out_type[n.output[0]] = inits[n.input[2]].data_type
    problems = []
    for n in model.graph.node:
        if n.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        if len(n.input) > 2 and n.input[2]:
            zp = inits.get(n.input[2])
            if zp is None:
                problems.append(f"{n.name}: zero point is not a constant")
            elif zp.data_type != TensorProto.INT8:
                problems.append(f"{n.name}: zero point type {TensorProto.DataType.Name(zp.data_type)} (TensorRT: INT8)")
            elif numpy_helper.to_array(zp).any():
                problems.append(f"{n.name}: non-zero zero point (TensorRT needs symmetric quantization)")
        if n.op_type == "DequantizeLinear":
            x = n.input[0]
            t = inits[x].data_type if x in inits else out_type.get(x)
            if t is not None and t != TensorProto.INT8:
                problems.append(f"{n.name}: dequantizes {TensorProto.DataType.Name(t)} (TensorRT: INT8)")
    return problems


def fused_int8_ops(onnx_path: str, threads: int = 1) -> Dict[str, int]:
    """Operator counts of the graph ONNX Runtime really executes (after its
    QDQ fusion), e.g. ``{"QLinearConv": 40, "Conv": 9, ...}``.

    Uses ORT's ``optimized_model_filepath`` on a throw-away session.
    """
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="mrcnn-ortopt-") as tmp:
        opt = os.path.join(tmp, "optimized.onnx")
        so = session_options(threads, register=missing_reason() is None)
        so.optimized_model_filepath = opt
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        ort.InferenceSession(onnx_path, sess_options=so, providers=["CPUExecutionProvider"])
        m = onnx.load(opt)
        return dict(collections.Counter(n.op_type for n in m.graph.node))


# --------------------------------------------------------------------------- one call
def quantize_model(onnx_path: str, out_path: str, images, *, count: int = DEFAULT_CALIB_COUNT, seed: int = 0,
                   method: str = DEFAULT_METHOD, target: str = "tensorrt", exclude: Sequence[str] = DEFAULT_EXCLUDE,
                   exclude_nodes: Sequence[str] = (), per_channel: bool = True,
                   activations: Optional[str] = None, split: str = "val", threads: int = 2,
                   progress: bool = False, tensors_data=None) -> dict:
    """Calibrate ``onnx_path`` on ``images`` (folder, COCO or Cityscapes root,
    or a Dataset) and write the Q/DQ model ``out_path`` + ``out_path.json``.

    The sidecar is the source sidecar with ``onnx_sha256``/``onnx_bytes`` of
    the new file, ``precision: "int8-qdq"`` and a ``quantization`` section.
    ``tensors_data`` (from :func:`calibrate_ranges`) skips the calibration.
    Returns the sidecar.
    """
    import onnx

    if count < 1:
        raise UserError("--calib-count must be >= 1")
    refuse_overwriting_inputs([out_path, sidecar_path(out_path)], [onnx_path, sidecar_path(onnx_path)],
                              hint="the output must not overwrite the float model")
    source = open_onnx(onnx_path)     # one line for any unloadable model, a sidecar that is not its own
    side, src_sha = source.sidecar, source.sha256
    check_float_model(source.proto, onnx_path)
    src_custom = custom_node_types(source.proto)
    del source
    cfg = Config.from_dict(side["config"])
    batch = int(side.get("batch", 1))
    dynamic = bool(side.get("dynamic_batch"))
    size = int(side["image_size"])
    t0 = time.time()
    seen = None
    timings: dict = {}
    if tensors_data is None:
        if isinstance(images, str) and not os.path.exists(images):
            raise UserError(f"calibration images not found: {images}")
        batcher = ImageBatcher(images, cfg, batch_size=batch, sample=count, seed=seed, split=split)
        tensors_data, seen = calibrate_ranges(onnx_path, batcher, batch=None if dynamic else batch, image_size=size,
                                              method=method, threads=threads, exclude=exclude,
                                              exclude_nodes=exclude_nodes,
                                              progress="calibrate" if progress else None,
                                              total_images=batcher.num_images, timings=timings)
    t1 = time.time()
    with atomic_path(out_path) as tmp:
        info = quantize_with_ranges(onnx_path, tmp, tensors_data, method=method, target=target, exclude=exclude,
                                    exclude_nodes=exclude_nodes, per_channel=per_channel, activations=activations)
        out_model = onnx.load(tmp)
        register_schemas()
        onnx.checker.check_model(out_model, full_check=True)
        custom = [n.op_type for n in out_model.graph.node if n.domain == "mrcnn"]
        if sorted(custom) != src_custom:
            raise UserError(f"quantization changed the custom nodes ({src_custom} -> {custom})")
        if target == "tensorrt":
            problems = tensorrt_qdq_problems(out_model)
            if problems:
                raise UserError(f"the Q/DQ model would not parse in TensorRT: {problems[0]}")
        info["summary"] = qdq_summary(out_model)
    import onnxruntime

    info.update({
        "calib_images": (os.path.abspath(images) if isinstance(images, str) else type(images).__name__),
        "calib_count": seen, "calib_seed": seed, "calib_batch": batch,
        "source_onnx": os.path.abspath(onnx_path), "source_onnx_sha256": src_sha,
        "onnxruntime": onnxruntime.__version__,
        "calibration_seconds": round(t1 - t0, 2), "quantization_seconds": round(time.time() - t1, 2),
        # per image once the session is made (graph optimization is a one-time cost)
        "calibration_seconds_per_image": round(timings["images_s"] / seen, 3) if seen else None,
        "calibration_setup_seconds": round(timings["setup_s"], 2) if seen else None,
    })
    return write_derived_sidecar(out_path, side, precision="int8-qdq", quantization=info)
