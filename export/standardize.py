"""Standard-ONNX flavor: replace the ``mrcnn`` custom nodes by standard ops.

The exporter first writes the "trt flavor" graph, where ``PyramidROIAlign``
(x2), ``ProposalLayer`` and ``DetectionLayer`` are single nodes in domain
``mrcnn`` version 1 (contract: ``plugins/opdefs.py``). :func:`expand_custom_nodes`
rewrites each of them into a subgraph of standard ONNX operators, so stock
ONNX Runtime (CPU) and TensorRT's built-in layers (ONNX parser, no plugin) run
the model. Each op's subgraph is built by the ``expand`` function of its own
folder, ``plugins/<torch_name>/expand.py`` (:data:`EXPANDERS`, filled from the
contract's ops; its docstring says how the subgraph is built), with the helpers
of ``plugins/onnx_builder.py``, and reproduces the op's pure-PyTorch reference
(``plugins/<torch_name>/reference.py``). This module checks each node against
the contract, runs the expansions and re-infers the shapes.

Known differences from the references (pathological inputs only):
    * NaN class scores: the reference keeps a NaN-scored row as a candidate when
      min_confidence == 0 (sorted last); here it is dropped (NaN > threshold is
      false). Scores <= -1e38 (including -inf) are dropped too. ``ArgMax`` over
      rows containing NaN may pick another class than ``torch.argmax``.
    * ProposalLayer with the chunked TopK (k > max_topk): scores -inf, NaN and
      -FLT_MAX all compare equal (ties by index); without chunking NaN == -inf
      as in the reference.
    * NMS: ORT/TensorRT order each box's corners (min/max) and skip boxes of
      non-positive area; the reference uses the corners as given. They differ
      only for boxes inverted by more than one pixel (y2 < y1 - 1), which
      neither layer produces from valid anchors/proposals.
    * log2 via Log / ln 2 differs from torch.log2 by an ulp or so: a level
      can flip only when k0 + log2(...) is within ~1e-6 of a half integer.
      GridSample's normalized coordinates put samples within ~1e-7 of the
      map size of the reference's (~1e-5 px on a 256-wide map), so crops
      differ by that times the local feature gradient (max 1.3e-4 measured
      on 256x256 white-noise maps; < 3e-5 on the small maps of the tests).

TensorRT notes (see ``export/trt_ops_table.py``): every op emitted here is in
the onnx-tensorrt tables for TRT 8.6 and 10.x; K, axes, shapes and NMS
thresholds are initializers; GridSample is 4-D. TensorRT's NMS layer considers
only the 5000 highest-scoring boxes per image (2000 on SM 5.3/6.2) and leaves
the order of equal scores unspecified (hence the ProposalLayer's pseudo-scores); its
TopK/ArgMax tie order is unspecified too, so on TensorRT ties may resolve
differently than in ORT and the reference.

Opset: the emitted nodes are valid for ai.onnx opsets 16..24 (GridSample needs
16; its mode is "bilinear" below opset 20 and "linear" from 20 on). TensorRT
8.6 parses opsets <= 17, and the onnx-tensorrt GridSample importers of
8.6-GA/10.1-GA map only "bilinear" to linear interpolation: export with
opset 16 or 17 for TensorRT.
"""
from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence

import onnx
from onnx import TensorProto, helper, shape_inference

from mrcnn_trt.plugins.onnx_builder import Builder, Shape
from mrcnn_trt.plugins.opdefs import DOMAIN, OP_DEFS, OPS, bind_shapes, op_module, output_shapes, validate_attrs

from .trt_ops_table import TOPK_MAX_K

MIN_OPSET = 16            # GridSample
MAX_OPSET = 24

# inputs / output count of each custom node (the op contract)
_INPUTS = {op: tuple(t.name for t in d.inputs) for op, d in OP_DEFS.items()}
_OUTPUTS = {op: len(d.outputs) for op, d in OP_DEFS.items()}


def load_expanders() -> Dict[str, Callable[..., None]]:
    """Contract op -> its ``expand(builder, inputs, outputs, attrs, shapes, max_topk)``, for every
    op of ``OP_DEFS`` whose folder has an ``expand.py`` (an op without one is refused by name
    when a graph holds it; an ``expand.py`` that fails to import raises here)."""
    modules = {op: op_module(op, "expand") for op in OP_DEFS}
    return {op: m.expand for op, m in modules.items() if m is not None}


#: contract op name (plugins/opdefs.py) -> its expansion (``plugins/<torch_name>/expand.py``)
EXPANDERS: Dict[str, Callable[..., None]] = load_expanders()


# --------------------------------------------------------------------------- driver
def _static_shapes(model: onnx.ModelProto) -> Dict[str, Shape]:
    """Static shapes of every value known to shape inference (dynamic ones are left out)."""
    try:
        inferred = shape_inference.infer_shapes(model, check_type=False, strict_mode=False, data_prop=True)
    except Exception:  # noqa: BLE001 - fall back to what the graph declares
        inferred = model
    g = inferred.graph
    out: Dict[str, Shape] = {}
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        t = vi.type.tensor_type
        if not t.HasField("shape"):
            continue
        dims = []
        for d in t.shape.dim:
            if d.HasField("dim_value") and d.dim_value >= 0:
                dims.append(int(d.dim_value))
            else:
                dims = None
                break
        if dims is not None:
            out[vi.name] = tuple(dims)
    for init in g.initializer:
        out[init.name] = tuple(int(x) for x in init.dims)
    for node in g.node:
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            for attr in node.attribute:
                if attr.name == "value":
                    out[node.output[0]] = tuple(int(x) for x in attr.t.dims)
    return out


def _output_shapes(op: str, ins: Sequence[str], a: dict, shapes: Dict[str, Shape]) -> List[Shape]:
    return [tuple(int(x) for x in shp) for shp in output_shapes(op, [shapes[x] for x in ins], a)]


def _default_opset(model: onnx.ModelProto) -> Optional[int]:
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx"):
            return int(o.version)
    return None


def is_custom(node: onnx.NodeProto) -> bool:
    return node.domain == DOMAIN and node.op_type in OPS


def expand_custom_nodes(model: onnx.ModelProto, opset: int = 17, *,
                        max_topk: Optional[int] = TOPK_MAX_K) -> onnx.ModelProto:
    """Return a copy of ``model`` with every ``mrcnn`` custom node replaced by standard ONNX ops.

    Args:
        model: the trt-flavor model. Each custom node's inputs must have static
            shapes (from the graph's value_info or ONNX shape inference);
            float32 tensors, counts int32 (``plugins/opdefs.py``).
        opset: ai.onnx opset to import when ``model`` imports none (e.g. a graph
            of custom nodes only). A model that imports ai.onnx keeps its
            version, which must be in [16, 24].
        max_topk: largest K of an emitted ``TopK`` (TensorRT supports K <=
            3840); larger selections (ProposalLayer's pre_nms_topk = 6000)
            are made in exact chunks. None: one TopK of any size.
    Returns:
        A new model: same graph inputs/outputs and value names, custom nodes
        replaced in place by their subgraphs (node names and intermediate
        values prefixed with the custom node's name), the ``mrcnn`` opset import
        removed, shapes re-inferred. ``ir_version`` is kept.
    Raises:
        ValueError: unknown ``mrcnn`` op, bad attributes, wrong input count,
        non-static or inconsistent input shapes, non-float32 data, opset out of range.
    """
    out = onnx.ModelProto()
    out.CopyFrom(model)
    target = _import_default_opset(out, opset)
    g = out.graph
    _check_custom_ops(g)
    taken = _taken_names(g)
    elem_types = _elem_types(g)
    counter = 0
    while any(is_custom(nd) for nd in g.node):
        shapes = _static_shapes(out)
        new_nodes: List[onnx.NodeProto] = []
        missing = []
        counted = counter
        for node in g.node:
            if not is_custom(node):
                new_nodes.append(node)
                continue
            unknown = _check_custom_node(node, shapes)
            if unknown:
                missing.append(f"{node.op_type} {node.name!r}: {', '.join(unknown)}")
                new_nodes.append(node)
                continue
            counter += 1
            b = Builder(f"std{counter}_{node.name or node.op_type}", taken, target)
            _expand_node(node, b, shapes, elem_types, max_topk)
            new_nodes.extend(b.nodes)
            g.initializer.extend(b.inits)
        if counter == counted:   # no node could be expanded
            raise ValueError("cannot expand custom nodes: inputs without a static shape: " + "; ".join(missing))
        del g.node[:]
        g.node.extend(new_nodes)
    _check_no_nested_custom_nodes(out)
    keep = [o for o in out.opset_import if o.domain != DOMAIN]
    del out.opset_import[:]
    out.opset_import.extend(keep)
    try:
        out = shape_inference.infer_shapes(out, check_type=True, strict_mode=False, data_prop=True)
    except Exception:  # noqa: BLE001 - keep the graph without extra value_info
        pass
    return out


def _import_default_opset(model: onnx.ModelProto, opset: int) -> int:
    """The ai.onnx opset the expansions are written for: the model's, or ``opset``
    (then imported into ``model``); refused outside [MIN_OPSET, MAX_OPSET]."""
    have = _default_opset(model)
    target = have if have is not None else int(opset)
    if not MIN_OPSET <= target <= MAX_OPSET:
        raise ValueError(f"the standard flavor needs ai.onnx opset {MIN_OPSET}..{MAX_OPSET} (GridSample); "
                         f"the model {'imports' if have is not None else 'would import'} opset {target}")
    if have is None:
        model.opset_import.append(helper.make_opsetid("", target))
    return target


def _check_custom_ops(g: onnx.GraphProto) -> None:
    """Refuse an ``mrcnn`` op the contract does not know, or one without an expansion."""
    for node in g.node:
        if node.domain == DOMAIN and node.op_type not in OPS:
            raise ValueError(f"unknown {DOMAIN} op {node.op_type!r} (node {node.name!r})")
        if is_custom(node) and node.op_type not in EXPANDERS:
            raise ValueError(f"{DOMAIN} op {node.op_type!r} has no standard-ONNX expansion (node {node.name!r})")


def _taken_names(g: onnx.GraphProto) -> set:
    """Every value and node name of ``g`` (new names must avoid them)."""
    taken = {v for node in g.node for v in list(node.input) + list(node.output)}
    taken |= {node.name for node in g.node}
    taken |= {x.name for x in list(g.input) + list(g.output) + list(g.initializer) + list(g.value_info)}
    return taken


def _elem_types(g: onnx.GraphProto) -> Dict[str, int]:
    """Value name -> ONNX element type, for the values whose type ``g`` declares."""
    types = {vi.name: vi.type.tensor_type.elem_type for vi in list(g.input) + list(g.value_info) + list(g.output)}
    types.update({init.name: init.data_type for init in g.initializer})
    return types


def _check_custom_node(node: onnx.NodeProto, shapes: Dict[str, Shape]) -> List[str]:
    """Check a custom node's input and output counts against the contract; return its
    inputs whose static shape is not known yet."""
    op, ins = node.op_type, list(node.input)
    if len(ins) != len(_INPUTS[op]) or any(not x for x in ins):
        raise ValueError(f"{op} node {node.name!r} needs inputs {', '.join(_INPUTS[op])}; got {ins}")
    if len(node.output) > _OUTPUTS[op]:
        raise ValueError(f"{op} node {node.name!r} has {len(node.output)} outputs, expected {_OUTPUTS[op]}")
    return [x for x in ins if x not in shapes]


def _expand_node(node: onnx.NodeProto, b: Builder, shapes: Dict[str, Shape], elem_types: Dict[str, int],
                 max_topk: Optional[int]) -> None:
    """Check a custom node (attributes, input types, the contract's shape rules) and build
    its standard-ONNX subgraph into ``b``; record its outputs' shapes and types."""
    op, ins, outs = node.op_type, list(node.input), list(node.output)
    attrs = validate_attrs(op, {at.name: helper.get_attribute_value(at) for at in node.attribute})
    for x, t in zip(ins, OP_DEFS[op].inputs):
        et = elem_types.get(x)
        want = TensorProto.INT32 if t.role == "i32" else TensorProto.FLOAT
        if et not in (None, TensorProto.UNDEFINED, want):
            raise ValueError(f"{op} node {node.name!r}: input {t.name} ({x}) has type "
                             f"{TensorProto.DataType.Name(et)}, expected {TensorProto.DataType.Name(want)}")
    bind_shapes(op, [shapes[x] for x in ins], attrs)   # the contract's shape rules
    EXPANDERS[op](b, ins, outs, attrs, shapes, max_topk)
    for name, shp, t in zip(outs, _output_shapes(op, ins, attrs, shapes), OP_DEFS[op].outputs):
        if name:
            shapes[name] = shp
            elem_types[name] = TensorProto.INT32 if t.role == "i32" else TensorProto.FLOAT


def _check_no_nested_custom_nodes(model: onnx.ModelProto) -> None:
    """Refuse ``mrcnn`` nodes inside functions or subgraphs (only the main graph is expanded)."""
    leftover = [f"function {f.name}" for f in model.functions for nd in f.node if nd.domain == DOMAIN]
    leftover += [f"subgraph of {nd.name or nd.op_type}" for nd in model.graph.node for at in nd.attribute
                 if at.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
                 for sg in ([at.g] if at.type == onnx.AttributeProto.GRAPH else list(at.graphs))
                 for inner in sg.node if inner.domain == DOMAIN]
    if leftover:
        raise ValueError(f"{DOMAIN} nodes outside the main graph are not supported: {', '.join(leftover)}")
