"""One op contract (plugins/opdefs.py) and every layer that implements it.

The contract declares each op's attributes and tensors (names, roles, shape
rules) once. This file fails when any one layer changes its view alone:

* the C++ header ``plugins/common/op_contract.h`` is generated from opdefs.py
  (text equality), and the contract compiled into the pybind11 module, the
  ONNX Runtime library and (when built) the CUDA C-ABI library equals opdefs;
* on inputs whose shapes are derived from the contract, every layer gives the
  contract's output shapes and types: opdefs.output_shapes, the host layer
  (pybind11), ONNX Runtime, ONNX shape inference, the standard-op expansion,
  the PyTorch operators and their fake kernels;
* a shape that breaks one rule (each input, each dimension) is refused by every
  layer, and the C++ host layer words the error exactly as opdefs.bind_shapes;
* an attribute out of range is refused by every layer.
"""
from __future__ import annotations

import ctypes
import json
import os
import re

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

import mrcnn_trt.plugins.torch_ops  # noqa: F401  (registers torch.ops.mrcnn.*)
from mrcnn_trt.plugins import cpu, opdefs
from mrcnn_trt.plugins import ort as mort
from mrcnn_trt.plugins.onnx_schemas import register_schemas

OPS = list(opdefs.OP_DEFS)
# sizes for the contract's symbols (small, every one distinct)
SIZES = {"N": 2, "R": 5, "C": 3, "A": 40, "H2": 16, "W2": 15, "H3": 8, "W3": 9, "H4": 4, "W4": 5, "H5": 2, "W5": 3}
ATTRS = {"PyramidROIAlign": {"pooled_size": 4, "image_size": 64},
         "ProposalLayer": {"pre_nms_topk": 30, "post_nms_topk": 7, "image_size": 64},
         "DetectionLayer": {"num_classes": 4, "max_instances": 6, "min_confidence": 0.0, "image_size": 64}}
ONNX_TYPES = {"f32": TensorProto.FLOAT, "i32": TensorProto.INT32}
TORCH_TYPES = {"f32": torch.float32, "i32": torch.int32}


def attrs_of(op):
    return opdefs.validate_attrs(op, ATTRS[op])


def input_shapes(op, sizes=SIZES):
    a = attrs_of(op)
    return [tuple(d if isinstance(d, int) else a[d] if d in a else sizes[d] for d in t.dims)
            for t in opdefs.OP_DEFS[op].inputs]


def make_inputs(op, dtype=np.float32, shapes=None):
    """Values for the given (default: the contract's) shapes: boxes in [0, 1], small counts."""
    rng = np.random.default_rng(0)
    out = []
    for t, s, good in zip(opdefs.OP_DEFS[op].inputs, shapes or input_shapes(op), input_shapes(op)):
        s = tuple(s)
        if t.role == "i32":
            out.append(np.full(s, 3, np.int32))
        elif t.name in ("boxes", "rois", "anchors") and s == good:
            b = np.sort(rng.random(s, dtype=np.float32).reshape(-1, 2, 2), axis=1).reshape(s)
            out.append((b[..., [0, 2, 1, 3]] * (50 if t.name == "anchors" else 1)).astype(np.float32))
        elif t.name == "window" and s == good:
            out.append(np.tile(np.array([0, 0, 64, 64], np.float32), (s[0], 1)))
        else:
            out.append(rng.random(s, dtype=np.float32).astype(dtype if t.role == "data" else np.float32))
    return out


def expected(op, dtype=np.float32, extra=False):
    d = opdefs.OP_DEFS[op]
    shapes = opdefs.output_shapes(op, input_shapes(op), attrs_of(op), extra=extra)
    types = [dtype if t.role == "data" else np.int32 if t.role == "i32" else np.float32
             for t in d.outputs + (d.extra_outputs if extra else ())]
    return shapes, types


# --------------------------------------------------------------------------- the C++ side
def test_generated_headers_are_up_to_date():
    for path, text in opdefs.generated_files().items():
        with open(path) as f:
            assert f.read() == text, f"{path}: run python plugins/opdefs.py --write-cpp"


def test_op_headers_name_each_op_folder():
    """common/op_headers.h includes plugins/<folder>/<folder>.h of every op, and those files exist."""
    includes = re.findall(r'#include "\.\./(\w+)/(\w+)\.h"', opdefs.cpp_op_headers())
    assert [a for a, _ in includes] == [d.torch_name for d in opdefs.OP_DEFS.values()]
    for folder, name in includes:
        assert folder == name and os.path.isfile(os.path.join(os.path.dirname(opdefs.CPP_HEADER), "..", folder,
                                                              name + ".h"))


def contract_from_opdefs():
    ops = {}
    for op, d in opdefs.OP_DEFS.items():
        ops[op] = {
            "attrs": [{"name": a.name, "type": a.type, "length": a.length if a.type == "floats" else 1,
                       "default": [float(x) for x in (a.default if a.type == "floats" else (a.default,))],
                       "min": a.min, "max": a.max, "doc": a.doc} for a in d.attrs],
            "inputs": [{"name": t.name, "role": t.role, "dims": list(t.dims)} for t in d.inputs],
            "outputs": [{"name": t.name, "role": t.role, "dims": list(t.dims)} for t in d.outputs],
            "extra_outputs": [{"name": t.name, "role": t.role, "dims": list(t.dims)} for t in d.extra_outputs],
            "symbols": [{"name": s, "min": 1 if s in d.nonempty else 0} for s in d.symbols],
        }
    return {"domain": opdefs.DOMAIN, "op_version": opdefs.OP_VERSION, "plugin_version": opdefs.PLUGIN_VERSION,
            "plugin_namespace": opdefs.PLUGIN_NAMESPACE, "ops": ops}


def normalized(contract):
    for op in contract["ops"].values():
        for a in op["attrs"]:
            a["default"] = [float(np.float64(x)) for x in a["default"]]
            a["min"] = None if a["min"] is None else float(a["min"])
            a["max"] = None if a["max"] is None else float(a["max"])
    return contract


def test_pybind_module_compiled_the_contract():
    assert normalized(json.loads(cpu.contract_json())) == normalized(contract_from_opdefs())


def test_ort_library_compiled_the_contract():
    if not mort.custom_ops_available():
        pytest.skip("libmrcnn_ort_ops.so not built (no ONNX Runtime headers)")
    lib = ctypes.CDLL(mort.library_path())
    lib.mrcnn_ort_contract_json.restype = ctypes.c_char_p
    assert normalized(json.loads(lib.mrcnn_ort_contract_json().decode())) == normalized(contract_from_opdefs())


def test_cuda_library_compiled_the_contract():
    from mrcnn_trt.plugins import cuda

    if not cuda.available():
        pytest.skip(f"{cuda.LIB_NAME} not built (tests/test_cuda_build.py builds it)")
    assert normalized(cuda.info()["contract"]) == normalized(contract_from_opdefs())
    for op in OPS:   # and its shape rules (host layer) give the contract's output shapes
        assert cuda.output_shapes(op, attrs_of(op), input_shapes(op)) == expected(op, extra=True)[0]


# --------------------------------------------------------------------------- output shapes and types
def ort_model(op, dtype):
    d = opdefs.OP_DEFS[op]
    et = TensorProto.FLOAT16 if dtype == np.float16 else TensorProto.FLOAT
    ins = [helper.make_tensor_value_info(t.name, et if t.role == "data" else ONNX_TYPES[t.role], s)
           for t, s in zip(d.inputs, input_shapes(op))]
    outs = [helper.make_tensor_value_info(f"out_{t.name}", et if t.role == "data" else ONNX_TYPES[t.role], None)
            for t in d.outputs]   # no shapes: shape inference and the kernels give them
    node = helper.make_node(op, [t.name for t in d.inputs], [o.name for o in outs], domain=opdefs.DOMAIN,
                            **{k: (list(v) if isinstance(v, tuple) else v) for k, v in attrs_of(op).items()})
    m = helper.make_model(helper.make_graph([node], "g", ins, outs),
                          opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(opdefs.DOMAIN, 1)])
    m.ir_version = 10
    return m


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_every_layer_gives_the_contract_outputs(op, dtype):
    shapes, types = expected(op, dtype)
    shapes_x, types_x = expected(op, dtype, extra=True)
    inputs = make_inputs(op, dtype)
    tdtype = torch.float16 if dtype == np.float16 else torch.float32

    # ONNX shape inference (onnx_schemas)
    register_schemas()
    inferred = onnx.shape_inference.infer_shapes(ort_model(op, dtype), strict_mode=True)
    got = [(tuple(d.dim_value for d in o.type.tensor_type.shape.dim),
            helper.tensor_dtype_to_np_dtype(o.type.tensor_type.elem_type)) for o in inferred.graph.output]
    assert got == list(zip(shapes, map(np.dtype, types))), "onnx_schemas"

    # ONNX Runtime custom ops (host layer shapes, contract types)
    if mort.custom_ops_available():
        sess = mort.make_session(ort_model(op, dtype).SerializeToString())
        outs = sess.run(None, {t.name: x for t, x in zip(opdefs.OP_DEFS[op].inputs, inputs)})
        assert [(o.shape, o.dtype) for o in outs] == list(zip(shapes, map(np.dtype, types))), "onnxruntime"

    # pybind11 module (host layer) through the CPU wrapper, with the kernel-only outputs
    outs = cpu.run(op, [torch.from_numpy(x) for x in inputs], attrs_of(op))
    assert [(tuple(o.shape), o.numpy().dtype) for o in outs] == list(zip(shapes_x, map(np.dtype, types_x))), "pybind"

    # PyTorch operators and their fake kernels
    from torch._subclasses.fake_tensor import FakeTensorMode

    packet = getattr(torch.ops.mrcnn, opdefs.OP_DEFS[op].torch_name)
    args = [torch.from_numpy(x) for x in inputs] + [list(v) if isinstance(v, tuple) else v
                                                     for v in attrs_of(op).values()]
    outs = packet(*args)
    outs = [outs] if isinstance(outs, torch.Tensor) else list(outs)
    want_t = [(s, torch.from_numpy(np.zeros(0, t)).dtype) for s, t in zip(shapes_x, types_x)]
    assert [(tuple(o.shape), o.dtype) for o in outs] == want_t, "torch operator"
    with FakeTensorMode() as mode:
        fouts = packet(*[mode.from_tensor(a) if isinstance(a, torch.Tensor) else a for a in args])
        fouts = [fouts] if isinstance(fouts, torch.Tensor) else list(fouts)
        assert [(tuple(o.shape), o.dtype) for o in fouts] == want_t, "fake kernel"
    assert all(o.dtype == tdtype for o, t in zip(outs, opdefs.OP_DEFS[op].outputs) if t.role == "data")


@pytest.mark.parametrize("op", OPS)
def test_standard_expansion_gives_the_contract_outputs(op):
    from mrcnn_trt.export.standardize import expand_custom_nodes

    shapes, types = expected(op)
    m = expand_custom_nodes(ort_model(op, np.float32))
    m = onnx.shape_inference.infer_shapes(m)
    vi = {v.name: v for v in list(m.graph.value_info) + list(m.graph.output)}
    for t, s, ty in zip(opdefs.OP_DEFS[op].outputs, shapes, types):
        tt = vi[f"out_{t.name}"].type.tensor_type
        assert tuple(d.dim_value for d in tt.shape.dim) == s and helper.tensor_dtype_to_np_dtype(tt.elem_type) == ty


# --------------------------------------------------------------------------- shape rules
def broken_shapes(op):
    """(description, input shapes) breaking one rule each: every input's rank, and every
    dimension of every input changed by +1 (0 for a size that must be >= 1)."""
    d = opdefs.OP_DEFS[op]
    good = input_shapes(op)
    out = []
    for i, (t, s) in enumerate(zip(d.inputs, good)):
        out.append((f"{t.name} rank", [x if j != i else s + (1,) for j, x in enumerate(good)]))
        for k, dim in enumerate(t.dims):
            v = 0 if dim in d.nonempty else s[k] + 1
            shapes = [list(x) for x in good]
            shapes[i][k] = v
            out.append((f"{t.name} dim {k} ({dim})", [tuple(x) for x in shapes]))
    return out


def python_error(op, shapes):
    try:
        opdefs.bind_shapes(op, shapes, attrs_of(op))
    except ValueError as e:
        return str(e)
    return None


@pytest.mark.parametrize("op", OPS)
def test_cpu_run_is_the_generic_call_of_every_op(op):
    """``cpu.run`` passes the contract's inputs flat, for every op alike (P2..P5 too):
    the same arrays as the module's per-op function, a missing input refused in
    the contract's words."""
    inputs = make_inputs(op)
    attrs = attrs_of(op)
    got = cpu.run(op, [torch.from_numpy(x) for x in inputs], attrs, threads=1)
    per_op = getattr(cpu._lib(), opdefs.OP_DEFS[op].torch_name)(
        *inputs, {k: list(v) if isinstance(v, tuple) else v for k, v in attrs.items()}, 1)
    per_op = [per_op] if isinstance(per_op, np.ndarray) else list(per_op)
    assert len(got) == len(per_op) == len(opdefs.OP_DEFS[op].outputs + opdefs.OP_DEFS[op].extra_outputs)
    for g, w in zip(got, per_op):
        np.testing.assert_array_equal(g.numpy(), w)
    shapes = [x.shape for x in inputs[:-1]]
    with pytest.raises(ValueError) as e:
        cpu.run(op, [torch.from_numpy(x) for x in inputs[:-1]], attrs)
    assert str(e.value) == python_error(op, shapes) == f"{op}: expected {len(inputs)} inputs, got {len(inputs) - 1}"


@pytest.mark.parametrize("op", OPS)
def test_every_layer_refuses_the_same_shapes(op):
    attrs = attrs_of(op)
    packet = getattr(torch.ops.mrcnn, opdefs.OP_DEFS[op].torch_name)
    attr_args = [list(v) if isinstance(v, tuple) else v for v in attrs.values()]
    checked = 0
    for what, shapes in broken_shapes(op):
        msg = python_error(op, shapes)
        tensors = [torch.from_numpy(x) for x in make_inputs(op, shapes=shapes)]
        if msg is None:   # a symbol that appears once (e.g. H2) took another valid value
            cpu.run(op, tensors, attrs)   # and the C++ side accepts it too
            continue
        checked += 1
        # the host layer (pybind11) words it exactly as opdefs
        with pytest.raises(ValueError) as e:
            cpu.run(op, tensors, attrs)
        assert str(e.value) == msg, what
        # the PyTorch operator (its CPU kernel) and its fake kernel
        with pytest.raises(ValueError):
            packet(*tensors, *attr_args)
        from torch._subclasses.fake_tensor import FakeTensorMode

        with FakeTensorMode() as mode, pytest.raises(ValueError):
            packet(*[mode.from_tensor(t) for t in tensors], *attr_args)
        # ONNX Runtime: the same host message inside its error
        if mort.custom_ops_available():
            m = ort_model(op, np.float32)
            for vi in m.graph.input:
                vi.type.tensor_type.ClearField("shape")
            sess = mort.make_session(m.SerializeToString())
            with pytest.raises(Exception) as e:
                sess.run(None, {t.name: x.numpy() for t, x in zip(opdefs.OP_DEFS[op].inputs, tensors)})
            assert msg in str(e.value), what
        # the CUDA library's host layer (when built)
        from mrcnn_trt.plugins import cuda

        if cuda.available():
            with pytest.raises(ValueError) as e:
                cuda.output_shapes(op, attrs, shapes)
            assert str(e.value) == msg, what
    assert checked >= len(opdefs.OP_DEFS[op].inputs) * 2


@pytest.mark.parametrize("op", OPS)
def test_every_layer_refuses_out_of_range_attributes(op):
    for a in opdefs.OP_DEFS[op].attrs:
        if a.type == "floats":
            bad = list(a.default)[:-1]
        else:
            bad = a.max + 1 if a.max is not None else None
        attrs = dict(attrs_of(op), **{a.name: bad})
        with pytest.raises(ValueError):
            opdefs.validate_attrs(op, attrs)
        with pytest.raises(ValueError):
            cpu.validate(op, attrs)
        if mort.custom_ops_available():
            m = ort_model(op, np.float32)
            for at in m.graph.node[0].attribute:
                if at.name == a.name:
                    at.CopyFrom(helper.make_attribute(a.name, bad))
            with pytest.raises(Exception, match=f"{op}.{a.name}"):
                mort.make_session(m.SerializeToString())
        from mrcnn_trt.plugins import cuda

        if cuda.available():
            with pytest.raises(ValueError, match=op):
                cuda.output_shapes(op, attrs, input_shapes(op))


# Which tensors each op reads and writes, spelled out by hand from plugins/README.md (the op
# table): input names, indices of the float-or-float16 data inputs / outputs, number of outputs.
HAND = {"PyramidROIAlign": (("boxes", "P2", "P3", "P4", "P5"), (1, 2, 3, 4), (0,), 1),
        "ProposalLayer": (("scores", "deltas", "anchors"), (0, 1), (), 2),
        "DetectionLayer": (("rois", "roi_count", "probs", "deltas", "window"), (2, 3), (), 2)}


def test_contract_tensor_roles_are_the_documented_ones():
    assert set(HAND) == set(opdefs.OP_DEFS)
    for op, (names, data_in, data_out, n_out) in HAND.items():
        assert tuple(t.name for t in opdefs.OP_DEFS[op].inputs) == names, op
        assert opdefs.data_inputs(op) == data_in and opdefs.data_outputs(op) == data_out, op
        assert len(opdefs.OP_DEFS[op].outputs) == n_out, op
    assert os.path.basename(opdefs.CPP_HEADER) == "op_contract.h"


@pytest.mark.parametrize("op", OPS)
def test_standard_expansion_refuses_nodes_that_break_the_contract(op):
    """The expansion checks a node's inputs and outputs against the contract."""
    from mrcnn_trt.export.standardize import expand_custom_nodes

    names, _, _, n_out = HAND[op]
    m = ort_model(op, np.float32)
    del m.graph.node[0].input[-1]
    with pytest.raises(ValueError, match=f"{op} node '' needs inputs {', '.join(names)}; got "):
        expand_custom_nodes(m)
    m = ort_model(op, np.float32)
    m.graph.node[0].output.append("one_too_many")
    with pytest.raises(ValueError, match=f"{op} node '' has {n_out + 1} outputs, expected {n_out}"):
        expand_custom_nodes(m)


@pytest.mark.parametrize("op", OPS)
def test_fp16_conversion_halves_only_the_data_tensors(op):
    """With float16 data inputs, the float16 conversion computes the custom node in float16 on its
    data inputs / outputs only; boxes, anchors and windows stay float32, counts int32."""
    from mrcnn_trt.calib import fp16

    names, data_in, data_out, _ = HAND[op]
    m = onnx.shape_inference.infer_shapes(ort_model(op, np.float16))
    plan = fp16.plan_types(m)
    assert plan["fp16_nodes"] == {""}
    required = {i: t for (node, i), t in plan["required"].items()}
    want = {i: (TensorProto.FLOAT16 if i in data_in else TensorProto.FLOAT)
            for i, t in enumerate(opdefs.OP_DEFS[op].inputs) if t.role != "i32"}
    assert required == want
    for j, t in enumerate(opdefs.OP_DEFS[op].outputs):
        got = plan["out_types"][f"out_{t.name}"]
        assert got == (TensorProto.FLOAT16 if j in data_out else ONNX_TYPES[t.role]), t.name
    # and a float32 model stays float32 entirely
    plan32 = fp16.plan_types(onnx.shape_inference.infer_shapes(ort_model(op, np.float32)))
    assert plan32["fp16_nodes"] == set()
    assert set(plan32["required"].values()) == {TensorProto.FLOAT}
