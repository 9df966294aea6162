"""The three custom ops, declared once: names, attributes and tensors.

This module is the op contract. Every layer takes its view of the ops from
here or is generated from / checked against it by ``tests/test_op_contract.py``:

* C++ (CPU kernels, CUDA kernels, ONNX Runtime custom ops, pybind11 module,
  TensorRT plugins, the C-ABI library of the PyTorch operators):
  ``plugins/common/op_contract.h`` is generated from this file
  (``python plugins/opdefs.py --write-cpp``); ``op_params.h`` builds
  the params structs, attribute tables and ``set_attr``/``get_attr`` from its
  X-macros and ``plugins/host`` the tensor specs and the shape checks;
* ONNX schemas (``onnx_schemas.py``), the exporter's custom nodes, the
  standard-op expansion (``export/standardize.py``), the float16 conversion
  (``calib/fp16.py``) and the PyTorch operators (``torch_ops.py``: schemas and
  fake kernels) call the helpers below.

Tensors
-------
Each tensor has a *role*: ``f32`` (geometry: always float32), ``i32`` (counts:
always int32) or ``data`` (float32 or float16, the same for every data tensor
of a node, computed in float32). Its dims are a tuple of

* an ``int``: that exact size;
* an attribute name of the op (``"pooled_size"``): the attribute's value;
* a size symbol (``"N"``, ``"R"``, ...): equal wherever it appears; inputs bind
  it, outputs reuse it. Symbols listed in ``nonempty`` must be >= 1.

``outputs`` are the node outputs (ONNX, TensorRT); ``extra_outputs`` are
returned only by the C++/CUDA kernels and the PyTorch operators (e.g. the
anchor index of each proposal, for debugging).

Conventions (all ops):
  * boxes are (y1, x1, y2, x2); "normalized" = pixels / IMAGE_SIZE (not / (S-1));
  * counts are int32, one per image; rows past the count are zero;
  * NMS uses the legacy +1 area convention and suppresses when IoU > threshold.

PyramidROIAlign
  level  = clamp(round(k0 + log2(sqrt(h*w) * image_size / canonical_size)), 2, 5)
           (h, w normalized; round half to even; non-finite -> level 2)
  sample = TF crop_and_resize, bilinear, corner aligned, extrapolation 0

ProposalLayer
  steps  : stable descending sort, keep min(pre_nms_topk, A); deltas *= std;
           decode in pixels; clip to [0, image_size]; NMS(nms_threshold);
           keep first post_nms_topk; divide by image_size

DetectionLayer
  steps  : class = argmax(probs) (first max), score = probs[class]; deltas of
           that class * std; decode on the normalized roi; * image_size; clip
           to window; round half to even; keep class > 0 and (score >=
           min_confidence if min_confidence > 0); per class (ascending):
           stable sort by score desc, NMS(nms_threshold); union; top
           max_instances by score (stable, descending)
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

DOMAIN = "mrcnn"          # ONNX node domain and torch.ops namespace; TensorRT plugin namespace is ""
OP_VERSION = 1            # ONNX op set version of DOMAIN; TensorRT plugin version "1"
PLUGIN_VERSION = "1"
PLUGIN_NAMESPACE = ""

Dim = Union[int, str]


@dataclass(frozen=True)
class Attr:
    name: str
    type: str          # "int" | "float" | "floats"
    default: Any
    doc: str
    min: float | None = None
    max: float | None = None
    length: int | None = None   # for "floats"


@dataclass(frozen=True)
class TensorDef:
    name: str
    role: str                  # "f32" | "data" | "i32"
    dims: Tuple[Dim, ...]
    doc: str

    @property
    def rank(self) -> int:
        return len(self.dims)


@dataclass(frozen=True)
class OpDef:
    name: str                          # ONNX op type / TensorRT plugin name
    torch_name: str                    # torch.ops.mrcnn.<torch_name>
    doc: str
    attrs: Tuple[Attr, ...]
    inputs: Tuple[TensorDef, ...]
    outputs: Tuple[TensorDef, ...]
    extra_outputs: Tuple[TensorDef, ...] = ()
    nonempty: Tuple[str, ...] = ()     # size symbols that must be >= 1
    # the attributes from a mrcnn_trt.config.Config: from_config(cfg, pooled_size=None, training=False)
    from_config: Optional[Callable[..., Dict[str, Any]]] = field(default=None, compare=False, repr=False)

    @property
    def attr_names(self) -> Tuple[str, ...]:
        return tuple(a.name for a in self.attrs)

    @property
    def symbols(self) -> Tuple[str, ...]:
        """Size symbols in order of first appearance in the inputs."""
        out: List[str] = []
        for t in self.inputs:
            for d in t.dims:
                if isinstance(d, str) and d not in self.attr_names and d not in out:
                    out.append(d)
        return tuple(out)


def _levels(doc_suffix: str) -> Tuple[TensorDef, ...]:
    return tuple(TensorDef(f"P{k}", "data", ("N", "C", f"H{k}", f"W{k}"), f"FPN level {k} [N,C,S/{2 ** k},S/{2 ** k}]"
                           + doc_suffix) for k in (2, 3, 4, 5))


def _roi_align_config(cfg, pooled_size: int | None = None, **_) -> Dict[str, Any]:
    return dict(pooled_size=pooled_size or cfg.POOL_SIZE, image_size=cfg.IMAGE_MAX_DIM,
                canonical_size=float(cfg.ROI_CANONICAL_SIZE), canonical_level=cfg.ROI_CANONICAL_LEVEL)


def _proposal_config(cfg, training: bool = False, **_) -> Dict[str, Any]:
    return dict(pre_nms_topk=cfg.PRE_NMS_LIMIT,
                post_nms_topk=cfg.POST_NMS_ROIS_TRAINING if training else cfg.POST_NMS_ROIS_INFERENCE,
                nms_threshold=float(cfg.RPN_NMS_THRESHOLD), rpn_bbox_std_dev=tuple(cfg.RPN_BBOX_STD_DEV),
                image_size=cfg.IMAGE_MAX_DIM)


def _detection_config(cfg, **_) -> Dict[str, Any]:
    # The original refines final boxes with RPN_BBOX_STD_DEV (docs/model.md §3.9; equal values).
    return dict(num_classes=cfg.NUM_CLASSES, min_confidence=float(cfg.DETECTION_MIN_CONFIDENCE),
                nms_threshold=float(cfg.DETECTION_NMS_THRESHOLD), max_instances=cfg.DETECTION_MAX_INSTANCES,
                bbox_std_dev=tuple(cfg.RPN_BBOX_STD_DEV), image_size=cfg.IMAGE_MAX_DIM)


OP_DEFS: Dict[str, OpDef] = {op.name: op for op in (
    OpDef(
        "PyramidROIAlign", "pyramid_roi_align",
        "Crop every normalized box from its FPN level (TF crop_and_resize, bilinear).",
        attrs=(
            Attr("pooled_size", "int", 7, "output crop size P (7 box head, 14 mask head)", min=2, max=64),
            Attr("image_size", "int", 1024, "side of the padded square network input in pixels", min=64, max=8192),
            Attr("canonical_size", "float", 224.0, "ROI side (pixels) that maps to canonical_level", min=1.0,
                 max=8192.0),
            Attr("canonical_level", "int", 4, "FPN level k0 of a canonical_size ROI", min=2, max=5),
        ),
        inputs=(TensorDef("boxes", "f32", ("N", "R", 4), "normalized (y1, x1, y2, x2)"),) + _levels(""),
        outputs=(TensorDef("crops", "data", ("N", "R", "C", "pooled_size", "pooled_size"), "crops of each box"),),
        nonempty=("H2", "W2", "H3", "W3", "H4", "W4", "H5", "W5"),
        from_config=_roi_align_config,
    ),
    OpDef(
        "ProposalLayer", "proposal_layer",
        "RPN proposals: sort, decode, clip, NMS; zero-padded.",
        attrs=(
            Attr("pre_nms_topk", "int", 6000, "boxes kept by score before NMS (min with A)", min=1, max=1 << 20),
            Attr("post_nms_topk", "int", 1000, "proposals kept after NMS (output rows)", min=1, max=1 << 16),
            Attr("nms_threshold", "float", 0.7, "IoU above which a box is suppressed", min=0.0, max=1.0),
            Attr("rpn_bbox_std_dev", "floats", (0.1, 0.1, 0.2, 0.2), "delta scale (dy, dx, dh, dw)", length=4),
            Attr("image_size", "int", 1024, "clip range and normalizer (pixels)", min=64, max=8192),
        ),
        inputs=(
            TensorDef("scores", "data", ("N", "A"), "foreground probability"),
            TensorDef("deltas", "data", ("N", "A", 4), "raw RPN deltas (not yet scaled by the std devs)"),
            TensorDef("anchors", "f32", ("A", 4), "anchors in pixels (y1, x1, y2, x2)"),
        ),
        outputs=(
            TensorDef("rois", "f32", ("N", "post_nms_topk", 4), "proposals, normalized"),
            TensorDef("count", "i32", ("N",), "valid rows of rois"),
        ),
        extra_outputs=(
            TensorDef("anchor_index", "i32", ("N", "post_nms_topk"), "anchor of each proposal, -1 in padded rows"),
        ),
        from_config=_proposal_config,
    ),
    OpDef(
        "DetectionLayer", "detection_layer",
        "Refine, filter and per-class NMS the classifier output.",
        attrs=(
            Attr("num_classes", "int", 81, "classes including background (K)", min=2, max=4096),
            Attr("min_confidence", "float", 0.7, "minimum score; 0 turns the filter off", min=0.0, max=1.0),
            Attr("nms_threshold", "float", 0.3, "per-class NMS IoU threshold", min=0.0, max=1.0),
            Attr("max_instances", "int", 100, "detections kept (output rows)", min=1, max=1 << 16),
            Attr("bbox_std_dev", "floats", (0.1, 0.1, 0.2, 0.2), "delta scale (dy, dx, dh, dw)", length=4),
            Attr("image_size", "int", 1024, "normalized -> pixel factor", min=64, max=8192),
        ),
        inputs=(
            TensorDef("rois", "f32", ("N", "R", 4), "proposals, normalized"),
            TensorDef("roi_count", "i32", ("N",), "valid rows of rois (clamped to [0, R])"),
            TensorDef("probs", "data", ("N", "R", "num_classes"), "class probabilities"),
            TensorDef("deltas", "data", ("N", "R", "num_classes", 4), "class-specific deltas (not yet scaled)"),
            TensorDef("window", "f32", ("N", 4), "image window in padded pixels (y1, x1, y2, x2)"),
        ),
        outputs=(
            TensorDef("detections", "f32", ("N", "max_instances", 6), "(y1, x1, y2, x2 pixels, class, score)"),
            TensorDef("count", "i32", ("N",), "valid rows of detections"),
        ),
        from_config=_detection_config,
    ),
)}

# op -> attributes (the historical view; same objects as OP_DEFS[op].attrs)
OPS: Dict[str, Tuple[Attr, ...]] = {name: op.attrs for name, op in OP_DEFS.items()}


# ------------------------------------------------------------------ attributes
def validate_attrs(op: str, attrs: Dict[str, Any]) -> Dict[str, Any]:
    """Fill defaults, check types and ranges; return the complete attribute dict.

    Raises ValueError naming the op, attribute and allowed range.
    """
    if op not in OPS:
        raise ValueError(f"unknown op {op!r}; known: {', '.join(OPS)}")
    out: Dict[str, Any] = {}
    known = {a.name for a in OPS[op]}
    extra = sorted(set(attrs) - known)
    if extra:
        raise ValueError(f"{op}: unknown attribute(s) {', '.join(extra)}")
    for a in OPS[op]:
        v = attrs.get(a.name, a.default)
        if a.type == "int":
            if isinstance(v, bool) or not isinstance(v, (int,)) and not (hasattr(v, "__int__") and float(v) == int(v)):
                raise ValueError(f"{op}.{a.name} must be an int, got {v!r}")
            v = int(v)
        elif a.type == "float":
            v = float(v)
        elif a.type == "floats":
            v = tuple(float(x) for x in v)
            if a.length is not None and len(v) != a.length:
                raise ValueError(f"{op}.{a.name} needs {a.length} values, got {len(v)}")
        if a.type in ("int", "float"):
            if (a.min is not None and v < a.min) or (a.max is not None and v > a.max):
                raise ValueError(f"{op}.{a.name} = {v} is out of range [{a.min}, {a.max}]")
        out[a.name] = v
    return out


def attrs_from_config(cfg, op: str, *, pooled_size: int | None = None, training: bool = False) -> Dict[str, Any]:
    """Attributes of ``op`` for a :class:`mrcnn_trt.config.Config` (the op's ``from_config``;
    ``pooled_size``: the crop size of a PyramidROIAlign, ``training``: the training
    post_nms_topk of a ProposalLayer), complete and validated."""
    d = op_def(op)
    if d.from_config is None:
        raise ValueError(f"{op}: the contract says nothing about its attributes from a config")
    return validate_attrs(op, d.from_config(cfg, pooled_size=pooled_size, training=training))


def attr_args(op: str, attrs: Dict[str, Any]) -> List[Any]:
    """The values of ``op``'s attributes in the contract's order (``floats`` as lists): the
    calling convention of every implementation after the tensors (``torch.ops.mrcnn.*``
    (:func:`torch_schema`), the C++ kernels of ``plugins.cpu``, the references ``plugins/<op>/reference.py``)."""
    return [list(attrs[a.name]) if a.type == "floats" else attrs[a.name] for a in op_def(op).attrs]


# --------------------------------------------------------------------- tensors
def op_def(op: str) -> OpDef:
    """The contract of ``op`` (its ONNX name, e.g. "ProposalLayer"); ValueError for an unknown op."""
    try:
        return OP_DEFS[op]
    except KeyError:
        raise ValueError(f"unknown op {op!r}; known: {', '.join(OP_DEFS)}") from None


def op_module(op: str, name: str):
    """Module ``name`` of ``op``'s own folder (``mrcnn_trt.plugins.<torch_name>.<name>``, e.g.
    its ``binding`` or ``expand``), or None when the folder has no such module; an error
    inside the module itself propagates."""
    full = f"mrcnn_trt.plugins.{op_def(op).torch_name}.{name}"
    try:
        return importlib.import_module(full)
    except ModuleNotFoundError as e:
        if e.name not in (full, full.rpartition(".")[0]):
            raise
        return None


def data_inputs(op: str) -> Tuple[int, ...]:
    """Indices of the inputs that carry the op's data type (float32 or float16)."""
    return tuple(i for i, t in enumerate(op_def(op).inputs) if t.role == "data")


def data_outputs(op: str, extra: bool = False) -> Tuple[int, ...]:
    """Indices of the outputs in the data type (the rest are float32 / int32)."""
    d = op_def(op)
    outs = d.outputs + (d.extra_outputs if extra else ())
    return tuple(i for i, t in enumerate(outs) if t.role == "data")


def dims_str(t: TensorDef, attrs: Dict[str, Any] | None = None) -> str:
    """``[N,R,4]``; attribute dims as their value when ``attrs`` is given."""
    return "[" + ",".join(str(attrs[d]) if attrs is not None and isinstance(d, str) and d in attrs else str(d)
                          for d in t.dims) + "]"


def bind_shapes(op: str, shapes: Sequence[Sequence[int]], attrs: Dict[str, Any] | None = None) -> Dict[str, Any]:
    """Check input shapes against the contract; return the size symbols, e.g. {"N": 2, "R": 1000, ...}.

    ``attrs``: complete attributes (:func:`validate_attrs`); defaults when None.
    Dims that are ``None`` (unknown) are skipped. Raises ValueError naming the
    op, the input and the expected shape.
    """
    d = op_def(op)
    attrs = validate_attrs(op, attrs or {})
    if len(shapes) != len(d.inputs):
        raise ValueError(f"{op}: expected {len(d.inputs)} inputs, got {len(shapes)}")
    sym: Dict[str, Any] = {}
    where: Dict[str, str] = {}
    for i, (t, shape) in enumerate(zip(d.inputs, shapes)):
        shape = tuple(shape)
        got = "[" + ",".join("?" if v is None else str(v) for v in shape) + "]"
        if len(shape) != t.rank:
            raise ValueError(f"{op}: input {i} ({t.name}) must have rank {t.rank} {dims_str(t)}, got shape {got}")
        for k, (dim, v) in enumerate(zip(t.dims, shape)):
            if v is None:
                continue
            if isinstance(dim, int) or dim in attrs:
                want = dim if isinstance(dim, int) else attrs[dim]
                if v != want:
                    note = f" ({dim} = {want})" if isinstance(dim, str) else ""
                    raise ValueError(f"{op}: input {t.name} must be {dims_str(t, attrs)}{note}, got {got}")
            elif dim in sym:
                if v != sym[dim]:
                    raise ValueError(f"{op}: input {t.name} {got} does not match {where[dim]} ({dim} = {sym[dim]}); "
                                     f"expected {t.name} {dims_str(t)}")
            else:
                if dim in d.nonempty and v < 1:
                    raise ValueError(f"{op}: input {t.name} {got} has {dim} = {v} (must be >= 1)")
                sym[dim] = v
                where[dim] = f"{t.name} {got}"
    return sym


def output_shapes(op: str, shapes: Sequence[Sequence[int]], attrs: Dict[str, Any] | None = None,
                  extra: bool = False) -> List[Tuple[Any, ...]]:
    """Output shapes for input ``shapes`` (checked with :func:`bind_shapes`); with
    ``extra`` also those of the kernel-only outputs. Unknown symbols stay None."""
    d = op_def(op)
    attrs = validate_attrs(op, attrs or {})
    sym = bind_shapes(op, shapes, attrs)
    outs = d.outputs + (d.extra_outputs if extra else ())
    return [tuple(dim if isinstance(dim, int) else attrs[dim] if dim in attrs else sym.get(dim) for dim in t.dims)
            for t in outs]


# ----------------------------------------------------------------- PyTorch
_TORCH_ATTR_TYPES = {"int": "int", "float": "float", "floats": "float[]"}


def torch_schema(op: str) -> str:
    """The schema of ``torch.ops.mrcnn.<torch_name>``: tensors, then attributes in table order;
    returns the outputs and the extra outputs."""
    d = op_def(op)
    args = [f"Tensor {t.name}" for t in d.inputs] + [f"{_TORCH_ATTR_TYPES[a.type]} {a.name}" for a in d.attrs]
    outs = d.outputs + d.extra_outputs
    ret = "Tensor" if len(outs) == 1 else "(" + ", ".join("Tensor" for _ in outs) + ")"
    return f"({', '.join(args)}) -> {ret}"


# ------------------------------------------------------------------------ C++
CPP_HEADER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "common", "op_contract.h")
#: the include list of every op's own header (plugins/<torch_name>/<torch_name>.h), for common/all_ops.h
CPP_OP_HEADERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "common", "op_headers.h")


def _cpp_num(a: Attr, v) -> str:
    if a.type == "int":
        return str(int(v))
    return repr(float(v))


def _cpp_bound(v) -> str:
    return "0" if v is None else (str(int(v)) if float(v) == int(v) and isinstance(v, int) else repr(float(v)))


def cpp_header() -> str:
    """The text of ``plugins/common/op_contract.h`` (X-macros of the contract)."""
    L = [
        "// GENERATED from plugins/opdefs.py (the op contract) by",
        "//   python plugins/opdefs.py --write-cpp",
        "// Do not edit: change opdefs.py and regenerate; tests/test_op_contract.py fails",
        "// when the two disagree. Consumers: common/op_params.h (params structs, attribute",
        "// tables, set_attr/get_attr) and host/plugin_host.cpp (tensor specs, shape rules).",
        "#pragma once",
        "",
        f'#define MRCNN_CONTRACT_DOMAIN "{DOMAIN}"',
        f"#define MRCNN_CONTRACT_OP_VERSION {OP_VERSION}",
        f'#define MRCNN_CONTRACT_PLUGIN_VERSION "{PLUGIN_VERSION}"',
        f'#define MRCNN_CONTRACT_PLUGIN_NAMESPACE "{PLUGIN_NAMESPACE}"',
        "",
        "// X(Op, torch_name) for every op.",
        "#define MRCNN_CONTRACT_OPS(X) " + " ".join(f"X({d.name}, {d.torch_name})" for d in OP_DEFS.values()),
        "",
        "// Attributes, in table order:",
        "//   X(name, AttrType, length, has_range, min, max, doc, default values...)",
        "// Tensors (inputs, outputs, kernel-only extra outputs):",
        "//   T(name, Role, rank, dims...) with dims MRCNN_DIM_CONST(value), MRCNN_DIM_ATTR(attribute),",
        "//   MRCNN_DIM_SYM(index, symbol); symbols are bound by the inputs:",
        "//   S(symbol, minimum size)",
    ]
    role = {"f32": "kF32", "data": "kData", "i32": "kI32"}
    atype = {"int": "kInt", "float": "kFloat", "floats": "kFloats"}
    for d in OP_DEFS.values():
        L += ["", f"// {d.name}: {d.doc}"]
        lines = []
        for a in d.attrs:
            defaults = a.default if a.type == "floats" else (a.default,)
            has_range = a.type != "floats"
            lo = _cpp_bound(a.min) if has_range else "0"
            hi = _cpp_bound(a.max) if has_range else "0"
            length = a.length if a.type == "floats" else 1
            doc = a.doc.replace("\\", "\\\\").replace('"', '\\"')
            lines.append(f'X({a.name}, {atype[a.type]}, {length}, {"true" if has_range else "false"}, {lo}, {hi}, '
                         f'"{doc}", {", ".join(_cpp_num(a, v) for v in defaults)})')
        L.append(_macro(f"MRCNN_{d.name}_ATTRS(X)", lines))
        syms = d.symbols
        L.append(_macro(f"MRCNN_{d.name}_SYMBOLS(S)",
                        [f"S({s}, {1 if s in d.nonempty else 0})" for s in syms]))
        for kind, tensors in (("INPUTS", d.inputs), ("OUTPUTS", d.outputs), ("EXTRA_OUTPUTS", d.extra_outputs)):
            lines = []
            for t in tensors:
                dims = []
                for dim in t.dims:
                    if isinstance(dim, int):
                        dims.append(f"MRCNN_DIM_CONST({dim})")
                    elif dim in d.attr_names:
                        dims.append(f"MRCNN_DIM_ATTR({dim})")
                    else:
                        dims.append(f"MRCNN_DIM_SYM({syms.index(dim)}, {dim})")
                lines.append(f"T({t.name}, {role[t.role]}, {t.rank}, {', '.join(dims)})")
            L.append(_macro(f"MRCNN_{d.name}_{kind}(T)", lines))
    return "\n".join(L) + "\n"


def _macro(head: str, lines: List[str]) -> str:
    if not lines:
        return f"#define {head}"
    return f"#define {head} \\\n" + " \\\n".join("  " + ln for ln in lines)


def markdown_table() -> str:
    """The attribute and tensor tables (used in plugins/README.md)."""
    lines = []
    for op, d in OP_DEFS.items():
        lines += [f"### {op} (domain `{DOMAIN}`, version {OP_VERSION}; `torch.ops.{DOMAIN}.{d.torch_name}`)", "",
                  "| name | type | default | range | meaning |", "|---|---|---|---|---|"]
        for a in d.attrs:
            rng = f"{a.length} values" if a.type == "floats" else f"[{a.min}, {a.max}]"
            lines.append(f"| `{a.name}` | {a.type} | {a.default} | {rng} | {a.doc} |")
        lines += ["", "| tensor | role | shape | meaning |", "|---|---|---|---|"]
        for kind, ts in (("in", d.inputs), ("out", d.outputs), ("extra out", d.extra_outputs)):
            for t in ts:
                lines.append(f"| {kind}: `{t.name}` | {t.role} | `{dims_str(t)}` | {t.doc} |")
        lines.append("")
    return "\n".join(lines)


def cpp_op_headers() -> str:
    """The text of ``plugins/common/op_headers.h``: one include per op folder, contract order."""
    L = ["// GENERATED from plugins/opdefs.py (the op contract) by",
         "//   python plugins/opdefs.py --write-cpp",
         "// Each op's own header (plugins/<folder>/<folder>.h: params struct, OpTraits), for",
         "// common/all_ops.h; a new op in opdefs.py adds its line here when regenerated.",
         "#pragma once", ""]
    L += [f'#include "../{d.torch_name}/{d.torch_name}.h"' for d in OP_DEFS.values()]
    return "\n".join(L) + "\n"


def generated_files() -> Dict[str, str]:
    """path -> text of every C++ file generated from the contract."""
    return {CPP_HEADER: cpp_header(), CPP_OP_HEADERS: cpp_op_headers()}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python plugins/opdefs.py",
                                description="Write or check plugins/common/op_contract.h and op_headers.h "
                                            "(generated from this file).")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--write-cpp", action="store_true", help="regenerate the headers")
    g.add_argument("--check-cpp", action="store_true", help="exit 1 when a header is out of date")
    g.add_argument("--markdown", action="store_true", help="print the tables for plugins/README.md")
    args = p.parse_args(argv)
    if args.markdown:
        print(markdown_table())
        return 0
    stale = 0
    for path, text in generated_files().items():
        current = open(path).read() if os.path.isfile(path) else ""
        if current == text:
            continue
        if args.check_cpp:
            print(f"{path} is out of date: run python plugins/opdefs.py --write-cpp", file=sys.stderr)
            stale = 1
            continue
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    return stale


if __name__ == "__main__":
    sys.exit(main())
