"""Export the Mask R-CNN to ONNX.

Graph interface (both flavors):

* inputs: ``images`` float32 [N,3,S,S] RGB 0..255, resized and zero padded
  (``mrcnn_trt.model.molding.mold_batch``); ``windows`` float32 [N,4]
  (y1, x1, y2, x2) of each image inside the padded square. Mean subtraction
  is inside the graph.
* outputs: ``detections`` float32 [N,D,6] (y1, x1, y2, x2 padded pixels,
  class id, score), ``count`` int32 [N], ``masks`` float32 [N,D,28,28]
  (probabilities of each detection's class). D = DETECTION_MAX_INSTANCES.
* N is fixed (``batch``), or with ``dynamic_batch`` the symbolic dimension
  ``batch`` (any 1..``batch``; the sidecar records ``"dynamic_batch": true``,
  ``"batch": N`` = the maximum and ``"batch_range": [1, N]``).

Flavors:

* ``trt``: backbone/FPN/RPN/heads as standard ONNX; four custom nodes in
  domain ``mrcnn`` (``PyramidROIAlign`` x2, ``ProposalLayer``,
  ``DetectionLayer``) with the attributes of ``plugins/opdefs.py``; anchors
  as an initializer. Runs in TensorRT with our plugins and in ONNX Runtime
  with our CPU custom-op library.
* ``standard``: the same graph with every custom node replaced by standard
  ONNX ops (``export/standardize.py``), for stock ONNX Runtime and TensorRT's
  built-in layers.

Export route: ``torch.onnx.export(dynamo=True)``; the custom nodes are emitted
with ``torch.onnx.ops.symbolic_multi_out`` during export only.
"""
from __future__ import annotations

import contextlib
import logging
import os
import time
import warnings
from typing import Optional

import torch

from ..config import Config
from ..errors import UserError
from ..fileio import atomic_path, sha256_file, sidecar_path, write_json_atomic
from ..plugins.onnx_schemas import register_schemas
from ..plugins.opdefs import DOMAIN, OP_DEFS, OP_VERSION, output_shapes
from ..model.backends import TorchOps
from ..model.molding import MOLDING_VERSION
from .standardize import expand_custom_nodes

OPSET = 17          # written opset: TensorRT 8.6's parser supports up to 17
EXPORT_OPSET = 18   # torch 2.13's exporter emits 18; downgrade_opset() rewrites the few ops that differ
IR_VERSION = 8
INPUT_NAMES = ["images", "windows"]
OUTPUT_NAMES = ["detections", "count", "masks"]


MASK_HEADS = ("all", "valid")


class OnnxNodeOps(TorchOps):
    """Emits the custom ONNX nodes while exporting; falls back to the reference otherwise.

    Every op of the contract, through its binding (``plugins/<op>/binding.py``): the
    call's arguments as the contract's inputs, the attributes of the call's options.

    ``mask_head`` tells the model which mask head to trace (``MaskRCNN.valid_slots``)."""

    name = "onnx"

    def __init__(self, config, mask_head: str = "all"):
        super().__init__(config)
        self.mask_head = mask_head

    def _node(self, op, inputs, attrs):
        """One custom node; output shapes and dtypes from the op contract (plugins/opdefs.py)."""
        d = OP_DEFS[op]
        shapes = [list(s) for s in output_shapes(op, [tuple(x.shape) for x in inputs], attrs)]
        data = next(x.dtype for x, t in zip(inputs, d.inputs) if t.role == "data")
        dtypes = [data if t.role == "data" else torch.int32 if t.role == "i32" else torch.float32 for t in d.outputs]
        attrs = {k: (list(v) if isinstance(v, tuple) else v) for k, v in attrs.items()}
        return torch.onnx.ops.symbolic_multi_out(f"{DOMAIN}::{op}", inputs, attrs, dtypes=dtypes, shapes=shapes,
                                                 version=OP_VERSION)

    def run(self, b, args, attrs):
        """While exporting: the op's custom node on the contract's inputs (no extra outputs: None);
        otherwise the reference."""
        if not torch.onnx.is_in_onnx_export():
            return super().run(b, args, attrs)
        outs = list(self._node(b.op, b.inputs(*args), attrs))
        return b.result(outs + [None] * len(OP_DEFS[b.op].extra_outputs))


class _ExportWrapper(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, images, windows):
        return self.model(images, windows)


@contextlib.contextmanager
def quiet_torch_logs():
    """Silence the exporter's log lines that are noise here ("torchvision is not
    installed. Skipping torchvision::nms", ...): this model has no torchvision ops."""
    names = ["torch.onnx._internal.exporter._registration", "torch.onnx._internal.exporter._core"]
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, lv in zip(loggers, levels):
            lg.setLevel(lv)


def export_onnx(model, path: str, batch: int = 1, flavor: str = "trt", weights_path: Optional[str] = None,
                verbose: bool = False, dynamic_batch: bool = False, mask_head: str = "all") -> dict:
    """Export ``model`` (a MaskRCNN in eval mode, CPU) to ``path`` atomically, with its sidecar.

    ``batch``: the fixed batch N, or with ``dynamic_batch`` the largest one:
    the graph's batch dimension is then the symbol ``batch`` (any 1..N) and the
    sidecar says ``"dynamic_batch": true, "batch": N, "batch_range": [1, N]``.
    ``mask_head``: ``"all"`` runs the mask head on every detection slot (static
    shapes: TensorRT), ``"valid"`` only on the first max(count) slots
    (data-dependent shapes: ONNX Runtime; no work on empty slots).
    Returns the sidecar dict.
    """
    import onnx

    if flavor not in ("trt", "standard"):
        raise UserError(f"unknown flavor {flavor!r} (trt|standard)")
    if batch < 1:
        raise UserError("--batch must be >= 1")
    if dynamic_batch and batch < 2:
        raise UserError("a dynamic batch needs --max-batch >= 2 (for batch 1 export a fixed batch)")
    if mask_head not in MASK_HEADS:
        raise UserError(f"unknown mask head {mask_head!r} ({'|'.join(MASK_HEADS)})")
    if flavor == "standard" and (dynamic_batch or mask_head != "all"):
        raise UserError("the standard flavor needs static shapes (its op expansion, export/standardize.py, "
                        "is built for them): use --flavor trt for --batch dynamic or --mask-head valid")
    cfg: Config = model.config
    s = cfg.IMAGE_MAX_DIM
    t0 = time.time()
    old_ops = model.ops
    model.ops = OnnxNodeOps(cfg, mask_head=mask_head)
    model.eval()
    # a dynamic batch is traced with 2 images (torch.export specializes a size of 1)
    example = 2 if dynamic_batch else batch
    images = torch.zeros(example, 3, s, s)
    windows = torch.tensor([[0.0, 0.0, s, s]] * example)
    dynamic_shapes = None
    if dynamic_batch:
        n = torch.export.Dim("batch", min=1, max=batch)
        dynamic_shapes = {"images": {0: n}, "windows": {0: n}}
    try:
        with warnings.catch_warnings(), quiet_torch_logs():
            warnings.simplefilter("ignore")
            prog = torch.onnx.export(_ExportWrapper(model), (images, windows), dynamo=True, opset_version=EXPORT_OPSET,
                                     input_names=INPUT_NAMES, output_names=OUTPUT_NAMES, verbose=verbose,
                                     external_data=False, optimize=True, dynamic_shapes=dynamic_shapes)
        proto = prog.model_proto
    finally:
        model.ops = old_ops
    proto = finalize_model(proto, flavor)
    data = proto.SerializeToString()
    if len(data) > 2 ** 31 - 1:
        raise UserError("model larger than 2 GB cannot be stored in one ONNX file")
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
    dim = "batch" if dynamic_batch else batch
    side = {
        "format": "mrcnn-trt-onnx/1",
        "flavor": flavor,
        "onnx_sha256": sha256_file(path),
        "onnx_bytes": os.path.getsize(path),
        "weights_sha256": sha256_file(weights_path) if weights_path and os.path.isfile(weights_path) else None,
        "weights": os.path.abspath(weights_path) if weights_path else None,
        "image_size": s,
        "batch": batch,
        "dynamic_batch": bool(dynamic_batch),
        "mask_head": mask_head,
        **({"batch_range": [1, batch]} if dynamic_batch else {}),
        "num_classes": cfg.NUM_CLASSES,
        "class_names": list(cfg.CLASS_NAMES),
        "min_confidence": cfg.DETECTION_MIN_CONFIDENCE,   # detections below are dropped inside the graph
        "mean_pixel": list(cfg.MEAN_PIXEL),
        "molding_version": MOLDING_VERSION,
        "inputs": {"images": [dim, 3, s, s], "windows": [dim, 4]},
        "outputs": {"detections": [dim, cfg.DETECTION_MAX_INSTANCES, 6], "count": [dim],
                    "masks": [dim, cfg.DETECTION_MAX_INSTANCES, *cfg.MASK_SHAPE]},
        "opset": OPSET,
        "ir_version": proto.ir_version,
        "op_versions": {DOMAIN: OP_VERSION} if flavor == "trt" else {},
        "config": cfg.to_dict(),
        "torch_version": torch.__version__,
        "onnx_version": onnx.__version__,
        "export_seconds": round(time.time() - t0, 2),
    }
    write_json_atomic(sidecar_path(path), side)
    return side


def finalize_model(proto, flavor: str):
    """Fix opset imports / IR version, expand custom nodes for ``standard``, validate."""
    import onnx

    try:
        register_schemas()
    except ImportError:  # schemas only add shape inference for the custom nodes
        pass
    # keep only the opset imports actually needed
    downgrade_opset(proto)
    opsets = {o.domain: o.version for o in proto.opset_import}
    opsets[""] = OPSET
    opsets[DOMAIN] = OP_VERSION
    del proto.opset_import[:]
    for d, v in opsets.items():
        if d in ("", DOMAIN) or any(n.domain == d for n in proto.graph.node):
            proto.opset_import.append(onnx.helper.make_opsetid(d, v))
    proto.ir_version = IR_VERSION
    if flavor == "standard":
        proto = expand_custom_nodes(proto)
        proto.ir_version = IR_VERSION
    onnx.checker.check_model(proto, full_check=True)
    return proto


# ops whose opset-18 form differs from opset 17 (onnx/docs/Changelog.md, opset 18)
_CHANGED_IN_18 = {"Pad", "Resize", "Split", "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax",
                  "ReduceMean", "ReduceMin", "ReduceProd", "ReduceSumSquare", "ScatterElements", "ScatterND",
                  "LpPool", "Col2Im", "BitwiseAnd", "BitwiseOr", "BitwiseXor", "BitwiseNot", "CenterCropPad",
                  "GroupNormalization", "Mish", "OptionalHasElement", "OptionalGetElement"}


def downgrade_opset(proto) -> None:
    """Rewrite an opset-18 graph as opset 17 in place (default domain only).

    Handles what this model uses: ``Resize`` (drop the opset-18 attributes
    when they hold their defaults), ``Pad`` without the ``axes`` input and
    ``ReduceMax``/``ReduceMin`` over every axis (no ``axes`` input).
    Anything else that changed in 18 raises, rather than writing a wrong graph.
    """
    from onnx import helper

    for node in proto.graph.node:
        if node.domain not in ("", "ai.onnx") or node.op_type not in _CHANGED_IN_18:
            continue
        if node.op_type == "Resize":
            keep = []
            for a in node.attribute:
                v = helper.get_attribute_value(a)
                if a.name == "keep_aspect_ratio_policy" and v in (b"stretch", "stretch"):
                    continue
                if a.name == "antialias" and v == 0:
                    continue
                keep.append(a)
            if any(a.name in ("keep_aspect_ratio_policy", "antialias") for a in keep):
                raise UserError(f"cannot write {node.name} ({node.op_type}) at opset {OPSET}")
            del node.attribute[:]
            node.attribute.extend(keep)
        elif node.op_type == "Pad" and len(node.input) <= 3:
            pass
        elif node.op_type in ("ReduceMax", "ReduceMin") and len(node.input) == 1 and not any(
                a.name == "noop_with_empty_axes" and a.i for a in node.attribute):
            # no axes: a reduction over every axis in both opsets (17 has no noop_with_empty_axes)
            keep = [a for a in node.attribute if a.name != "noop_with_empty_axes"]
            del node.attribute[:]
            node.attribute.extend(keep)
        else:
            raise UserError(f"node {node.name} ({node.op_type}) has no opset-{OPSET} form here")
