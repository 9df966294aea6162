"""FP16: a float16 ONNX model with float32 inputs/outputs and float32 geometry.

    from mrcnn_trt.calib.fp16 import convert_model
    side = convert_model("model.onnx", "model.fp16.onnx")      # + model.fp16.onnx.json

What the converted graph computes in float16: every standard node on the
feature path (backbone, FPN, RPN convolutions and softmax, the heads,
sigmoid, the reshape/concat plumbing), their weights (stored as float16),
and the data tensors of the custom nodes: ``PyramidROIAlign`` samples float16
feature maps into float16 crops, ``ProposalLayer`` reads float16 scores and
deltas, ``DetectionLayer`` float16 probabilities and deltas (the custom-op
kernels of ONNX Runtime and TensorRT have float16 versions of these).

What stays float32, and why:

* the graph inputs and outputs (``images``, ``windows`` in; ``detections``,
  ``count``, ``masks`` out): the same interface as the float32 model, so
  runners, the evaluator and the sidecar checks are unchanged;
* the geometry: ``windows``, the anchors, the ``rois``/``detections``
  outputs of the custom nodes (their kernels decode and clip boxes in
  float32) and every standard node computing on them (the slicing and
  normalization of the detection boxes fed to the mask ``PyramidROIAlign``):
  box coordinates up to 1024 px would lose up to half a pixel in float16;
* ``Cast`` and other nodes whose output type is set by an attribute.

How to use it:

* **TensorRT <= 10**: FP16 is the builder flag ``mrcnn-build-engine
  model.onnx --fp16`` on the float32 model (TensorRT chooses per layer);
  this file is not needed.
* **TensorRT 11** (strongly typed networks, no FP16 flag): build this file,
  ``mrcnn-build-engine model.fp16.onnx --fp16``.
* **ONNX Runtime CPU**: it runs (``mrcnn-eval model.fp16.onnx``) and is how
  the FP16 accuracy cost is measured here. ONNX Runtime's x86 CPU provider has
  float16 kernels for few operators; for the others it casts to float32
  around the node, so the numbers are those of float16 *storage* (weights
  and every tensor between nodes rounded to float16) with float32
  arithmetic inside a node, close to what GPUs do (FP16 inputs, FP32
  accumulation). It is not faster on CPU.
"""
from __future__ import annotations

import copy
import os
import time
from typing import Callable, Dict, List, Optional, Sequence, Set, Tuple

import numpy as np

from mrcnn_trt.errors import UserError
from mrcnn_trt.fileio import atomic_path, refuse_overwriting_inputs, sidecar_path, write_derived_sidecar
from mrcnn_trt.plugins.onnx_schemas import register_schemas
from mrcnn_trt.plugins.opdefs import DOMAIN, OP_DEFS, data_inputs, data_outputs
from mrcnn_trt.runtime.modelfile import open_onnx

from .qdq import check_float_model

FLOAT = 1      # onnx.TensorProto.FLOAT
FLOAT16 = 10   # onnx.TensorProto.FLOAT16

#: Custom ops (from the op contract, plugins/opdefs.py): indices of the inputs of
#: type T (float or float16 data); the other float inputs are float32 geometry.
#: Output indices of type T.
CUSTOM_DATA_INPUTS = {op: data_inputs(op) for op in OP_DEFS}
CUSTOM_DATA_OUTPUTS = {op: data_outputs(op) for op in OP_DEFS}
#: Standard ops never converted (output type from an attribute, or no float data).
KEEP_OPS = frozenset({"Cast", "CastLike", "ConstantOfShape", "EyeLike", "RandomNormal", "RandomNormalLike",
                      "RandomUniform", "RandomUniformLike", "Shape", "Size", "NonMaxSuppression", "TopK",
                      "RoiAlign", "Range"})
#: float16's largest finite value (initializers beyond it are an error, not clipped).
FP16_MAX = 65504.0


def _schema(op_type: str, opset: int, domain: str = ""):
    import onnx.defs

    try:
        return onnx.defs.get_schema(op_type, opset, domain)
    except Exception:  # noqa: BLE001 - unknown op
        return None


def _typevars(schema, n_in: int, n_out: int) -> Tuple[List[Optional[str]], List[Optional[str]]]:
    """Type strings of each actual input/output (variadic last parameters repeat)."""

    def expand(params, n):
        out = []
        for i in range(n):
            if not params:
                out.append(None)
            elif i < len(params):
                out.append(params[i].type_str)
            else:
                last = params[-1]
                variadic = last.option == last.option.__class__.Variadic
                out.append(last.type_str if variadic else None)
        return out

    return expand(schema.inputs, n_in), expand(schema.outputs, n_out)


class _TypePlan:
    """The state of one planning pass over a graph (see :func:`plan_types`)."""

    def __init__(self, model, keep_nodes: Sequence[str]):
        g = model.graph
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 17)
        self.keep_nodes = set(keep_nodes)
        #: element types before conversion (shape inference + initializers)
        self.types: Dict[str, int] = {vi.name: vi.type.tensor_type.elem_type
                                      for vi in list(g.input) + list(g.value_info) + list(g.output)}
        self.types.update({t.name: t.data_type for t in g.initializer})
        #: float32 geometry: the graph inputs but images, the custom nodes' non-data inputs
        self.geometry: Set[str] = {i.name for i in g.input if i.name != "images"}
        for n in g.node:
            if n.domain == DOMAIN:
                data = CUSTOM_DATA_INPUTS.get(n.op_type, ())
                self.geometry.update(x for i, x in enumerate(n.input) if i not in data and x)
        #: element types after conversion (filled in node by node)
        self.new_types: Dict[str, int] = {t.name: t.data_type for t in g.initializer}
        self.new_types.update({i.name: i.type.tensor_type.elem_type for i in g.input})
        self.fp16_nodes: Set[str] = set()
        self.required: Dict[Tuple[str, int], int] = {}

    def require(self, n, half_inputs) -> None:
        """Each float input of ``n`` is wanted float16 if its index is in ``half_inputs``, else float32."""
        for i, x in enumerate(n.input):
            if x and self.types.get(x) in (FLOAT, FLOAT16):
                self.required[(n.name, i)] = FLOAT16 if i in half_inputs else FLOAT

    def touches_geometry(self, n) -> bool:
        return any(x in self.geometry for x in n.input if x)

    def result(self) -> Dict[str, object]:
        return {"fp16_nodes": self.fp16_nodes, "required": self.required, "out_types": self.new_types,
                "geometry": self.geometry}


def _plan_custom(n, st: _TypePlan) -> None:
    """A custom node: float16 on its data inputs/outputs (op contract) when its data arrives in
    float16; the geometry inputs and outputs stay float32."""
    data, data_out = CUSTOM_DATA_INPUTS[n.op_type], CUSTOM_DATA_OUTPUTS[n.op_type]
    half = n.name not in st.keep_nodes and any(st.new_types.get(n.input[i]) == FLOAT16 for i in data
                                               if i < len(n.input))
    st.require(n, data if half else ())
    for j, y in enumerate(n.output):
        t = st.types.get(y, FLOAT)
        if t == FLOAT and half and j in data_out:
            t = FLOAT16
        st.new_types[y] = t
        if t == FLOAT and j not in data_out:
            st.geometry.add(y)
    if half:
        st.fp16_nodes.add(n.name)


def _plan_float32(n, st: _TypePlan) -> None:
    """A standard node kept as it is: float inputs float32, outputs of their inferred type
    (geometry when it reads geometry)."""
    st.require(n, ())
    touches = st.touches_geometry(n)
    for y in n.output:
        t = st.new_types[y] = st.types.get(y, 0)
        if touches and t == FLOAT:
            st.geometry.add(y)


def _plan_standard(n, st: _TypePlan) -> None:
    """A standard node: float16 on the type variables of its schema that are float outputs,
    unless it is kept, reads geometry, or has no schema / float output."""
    schema = (None if n.name in st.keep_nodes or st.touches_geometry(n)
              else _schema(n.op_type, st.opset, n.domain))
    if schema is None:
        return _plan_float32(n, st)
    in_vars, out_vars = _typevars(schema, len(n.input), len(n.output))
    half_vars = {v for j, v in enumerate(out_vars)
                 if v and not v.startswith("tensor(") and st.types.get(n.output[j]) == FLOAT}
    if not half_vars:
        return _plan_float32(n, st)
    st.require(n, {i for i, v in enumerate(in_vars) if v in half_vars})
    for j, y in enumerate(n.output):
        half = j < len(out_vars) and out_vars[j] in half_vars
        st.new_types[y] = FLOAT16 if half else st.types.get(y, 0)
    st.fp16_nodes.add(n.name)


NodePlanner = Callable[[object, _TypePlan], None]
#: How each kind of node is planned: the custom ops of the contract by op type (domain
#: ``mrcnn``); standard ops by op type, :func:`_plan_standard` for those not listed.
CUSTOM_PLANNERS: Dict[str, NodePlanner] = {op: _plan_custom for op in OP_DEFS}
STANDARD_PLANNERS: Dict[str, NodePlanner] = {op: _plan_float32 for op in KEEP_OPS}


def _planner(n) -> NodePlanner:
    if n.domain != DOMAIN:
        return STANDARD_PLANNERS.get(n.op_type, _plan_standard)
    if n.op_type not in CUSTOM_PLANNERS:
        raise UserError(f"unknown custom op {n.domain}::{n.op_type}")
    return CUSTOM_PLANNERS[n.op_type]


def plan_types(model, keep_nodes: Sequence[str] = ()) -> Dict[str, object]:
    """Decide the float16 conversion of ``model`` (shape-inferred ModelProto).

    Returns {"fp16_nodes": set of node names computing in float16,
    "required": {(node name, input index): elem type}, "out_types": {tensor:
    elem type after conversion}, "geometry": set of tensors kept float32}.
    Nodes are planned in the graph's (topological) order, each by its kind
    (:data:`CUSTOM_PLANNERS`, :data:`STANDARD_PLANNERS`); a node in
    ``keep_nodes`` stays float32.
    """
    st = _TypePlan(model, keep_nodes)
    for n in model.graph.node:   # topological order (the exporter and ONNX require it)
        _planner(n)(n, st)
    return st.result()


def convert_to_fp16(model, keep_nodes: Sequence[str] = ()):
    """Return a float16 copy of ``model`` (a float32 mrcnn-export ModelProto)."""
    import onnx
    from onnx import helper, numpy_helper

    register_schemas()
    src = copy.deepcopy(model)
    names = set()
    for i, n in enumerate(src.graph.node):
        if not n.name or n.name in names:
            n.name = f"{n.op_type}_{i}"
        names.add(n.name)
    inferred = onnx.shape_inference.infer_shapes(src, strict_mode=True)
    plan = plan_types(inferred)
    g = src.graph
    required: Dict[Tuple[str, int], int] = plan["required"]
    new_types: Dict[str, int] = plan["out_types"]

    # initializers: float16 when every float consumer wants float16
    consumers: Dict[str, List[Tuple[str, int]]] = {}
    for n in g.node:
        for i, x in enumerate(n.input):
            consumers.setdefault(x, []).append((n.name, i))
    inits = {t.name: t for t in g.initializer}
    for name, t in inits.items():
        if t.data_type != FLOAT:
            continue
        wants = {required.get(c) for c in consumers.get(name, [])} - {None}
        if wants == {FLOAT16}:
            a = numpy_helper.to_array(t)
            if a.size and np.abs(a).max() > FP16_MAX:
                raise UserError(f"initializer {name} has values beyond float16's range ({np.abs(a).max():g})")
            t.CopyFrom(numpy_helper.from_array(a.astype(np.float16), name))
            new_types[name] = FLOAT16

    # Casts where a node wants another float type than its input has
    casts: Dict[Tuple[str, int], str] = {}
    new_nodes = []
    for n in g.node:
        for i, x in enumerate(n.input):
            want = required.get((n.name, i))
            have = new_types.get(x)
            if want is None or have is None or want == have or have not in (FLOAT, FLOAT16):
                continue
            key = (x, want)
            if key not in casts:
                out = f"{x}__to_{'fp16' if want == FLOAT16 else 'fp32'}"
                new_nodes.append(helper.make_node("Cast", [x], [out], to=want, name=f"Cast_{out}"))
                casts[key] = out
            n.input[i] = casts[key]
        new_nodes.append(n)
    # graph outputs keep their float32 type
    tail = []
    for o in g.output:
        if new_types.get(o.name) == FLOAT16 and o.type.tensor_type.elem_type == FLOAT:
            inner = f"{o.name}__fp16"
            for n in new_nodes:
                for j, y in enumerate(n.output):
                    if y == o.name:
                        n.output[j] = inner
                for i, x in enumerate(n.input):
                    if x == o.name:
                        n.input[i] = inner
            tail.append(helper.make_node("Cast", [inner], [o.name], to=FLOAT, name=f"Cast_{o.name}_to_fp32"))
    del g.node[:]
    g.node.extend(new_nodes + tail)
    del g.value_info[:]
    out = onnx.shape_inference.infer_shapes(src, strict_mode=True)
    onnx.checker.check_model(out, full_check=True)
    return out, plan


def convert_model(onnx_path: str, out_path: str, keep_nodes: Sequence[str] = ()) -> dict:
    """Convert ``onnx_path`` to float16 and write ``out_path`` + its sidecar
    (the source sidecar with the new sha256, ``precision: "fp16"`` and an
    ``fp16`` section). Returns the sidecar."""
    import onnx

    refuse_overwriting_inputs([out_path, sidecar_path(out_path)], [onnx_path, sidecar_path(onnx_path)],
                              hint="the output must not overwrite the float32 model")
    t0 = time.time()
    # one line for any unloadable model; the sidecar must name and describe this graph (a sidecar copied
    # from another model is not carried over to the float16 one)
    source = open_onnx(onnx_path, external_data=True)
    side, src_sha, model = source.sidecar, source.sha256, source.proto
    check_float_model(model, onnx_path)
    out, plan = convert_to_fp16(model, keep_nodes)
    with atomic_path(out_path) as tmp:
        onnx.save(out, tmp)
    half = plan["fp16_nodes"]
    info = {
        "float16_nodes": len(half),
        "float32_nodes": sum(1 for n in out.graph.node if n.name not in half and not n.name.startswith("Cast_")),
        "casts": sum(1 for n in out.graph.node if n.name.startswith("Cast_")),
        "float16_custom_nodes": sorted(n.op_type for n in out.graph.node if n.domain == "mrcnn" and n.name in half),
        "io": "float32", "geometry": "float32",
        "source_onnx": os.path.abspath(onnx_path), "source_onnx_sha256": src_sha,
        "seconds": round(time.time() - t0, 2),
    }
    return write_derived_sidecar(out_path, side, precision="fp16", fp16=info)
