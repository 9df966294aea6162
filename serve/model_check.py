"""Load check of an exported ONNX model before ``mrcnn-triton repo`` writes a repository.

A sidecar whose sha256 matches proves only that the file is the one described,
not that it is a model: garbage, a truncated file, a zip or a pickle named
``.onnx``, unknown operators or domains, custom-op attributes the op library
refuses, tensors in external files, or a graph whose inputs and outputs are not
the ones the repository's configs declare would each give a repository that
Triton cannot load or that fails every request. :func:`check_onnx_model` opens
the model the way the server's network model does - an ONNX Runtime session with
the custom-op library registered (:func:`mrcnn_trt.plugins.ort.make_session`, as
``OnnxRunner``) - and compares its signature with the configs
(:func:`.pbtxt.network_tensors`): batch, image size, detection slots, mask
size, data types.

A TensorRT plan cannot be opened here (no TensorRT); it is checked through its
sidecar. Triton's onnxruntime backend runs its own ONNX Runtime release: a model
that loads here needs the same opset support there.
"""
from __future__ import annotations

import os
import re
from typing import Dict, Iterator, List

from mrcnn_trt.errors import UserError
from mrcnn_trt.plugins.ort import make_session

#: ONNX Runtime type of each tensor the repository's configs declare
FLOAT, INT32, INT64 = "tensor(float)", "tensor(int32)", "tensor(int64)"


def _brief(e: BaseException, limit: int = 300) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    text = lines[0] if lines else type(e).__name__
    text = re.sub(r"^\[ONNXRuntimeError\] : \d+ : [A-Z_]+ : ", "", text)     # ONNX Runtime's status prefix
    text = re.sub(r"^Load model from .* failed: ?", "", text)                 # the path is named already
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _tensors(graph) -> Iterator:
    """Every initializer and constant tensor of ``graph`` and of its subgraphs."""
    from onnx import AttributeProto

    yield from graph.initializer
    for node in graph.node:
        for a in node.attribute:
            if a.type == AttributeProto.TENSOR:
                yield a.t
            elif a.type == AttributeProto.TENSORS:
                yield from a.tensors
            elif a.type == AttributeProto.GRAPH:
                yield from _tensors(a.g)
            elif a.type == AttributeProto.GRAPHS:
                for g in a.graphs:
                    yield from _tensors(g)


def signature_problems(inputs: Dict[str, tuple], outputs: Dict[str, tuple], *, batch: int, dynamic: bool,
                       image_size: int, max_instances: int, mask_shape, int64_count: bool) -> List[str]:
    """Where a graph's inputs / outputs (``{name: (ort_type, shape)}``) differ from the network
    model's config. Empty when they fit."""
    want_in = {"images": (FLOAT, [3, image_size, image_size]), "windows": (FLOAT, [4])}
    count_types = (INT32, INT64) if int64_count else (INT32,)
    want_out = {"detections": ((FLOAT,), [max_instances, 6]), "count": (count_types, []),
                "masks": ((FLOAT,), [max_instances, *mask_shape])}
    problems = []
    if set(inputs) != set(want_in):
        problems.append(f"inputs {sorted(inputs)}, expected {sorted(want_in)}")
    missing = sorted(set(want_out) - set(outputs))
    if missing:
        problems.append(f"no output(s) {', '.join(missing)}")

    def batch_ok(dim) -> bool:
        return not isinstance(dim, int) if dynamic else dim == batch

    def check(name, types, dims, have):
        kind, shape = have
        shape = list(shape or [])
        if kind not in types:
            problems.append(f"{name} is {kind}, expected {' or '.join(types)}")
        if len(shape) != 1 + len(dims) or shape[1:] != list(dims):
            problems.append(f"{name} has shape {shape}, expected [{', '.join(['N', *map(str, dims)])}]")
        elif not batch_ok(shape[0]):
            batch_problems.add(f"the graph's batch is {shape[0]!r}, the sidecar says "
                               f"{'a dynamic batch' if dynamic else batch}")

    batch_problems: set = set()
    for name, (kind, dims) in want_in.items():
        if name in inputs:
            check(name, (kind,), dims, inputs[name])
    for name, (kinds, dims) in want_out.items():
        if name in outputs:
            check(name, kinds, dims, outputs[name])
    return problems + sorted(batch_problems)


def check_onnx_model(path: str, sidecar: dict, *, backend: str, image_size: int, max_instances: int,
                     mask_shape) -> None:
    """Raise a :class:`UserError` (one line) unless ``path`` loads in ONNX Runtime with the
    custom-op library and has the signature the repository's configs declare."""
    import onnx

    name = os.path.basename(path)
    try:
        proto = onnx.load(path, load_external_data=False)
    except Exception as e:  # noqa: BLE001 - DecodeError, RuntimeError, ... for files that are not ONNX
        raise UserError(f"{name} is not an ONNX model ({_brief(e)}): export it again with mrcnn-export") from None
    if not proto.graph.node:
        raise UserError(f"{name} holds no ONNX graph: export it again with mrcnn-export")
    external = [t.name or "?" for t in _tensors(proto.graph) if t.data_location == onnx.TensorProto.EXTERNAL]
    if external:
        raise UserError(f"{name} keeps {len(external)} tensor(s) ({external[0]}, ...) in external data files, which "
                        f"a repository does not carry: export the model as one file")
    del proto

    try:
        session = make_session(path, threads=1, spinning=False)
    except UserError as e:
        raise UserError(f"{name}: {e}") from None
    except Exception as e:  # noqa: BLE001 - ONNX Runtime's Fail / InvalidGraph / NotImplemented / ...
        raise UserError(f"ONNX Runtime cannot load {name}: {_brief(e)}") from None
    sig = lambda args: {a.name: (a.type, list(a.shape)) for a in args}  # noqa: E731
    problems = signature_problems(sig(session.get_inputs()), sig(session.get_outputs()),
                                  batch=int(sidecar.get("batch", 1)), dynamic=bool(sidecar.get("dynamic_batch")),
                                  image_size=image_size, max_instances=max_instances, mask_shape=mask_shape,
                                  int64_count=backend == "python")
    if problems:
        raise UserError(f"{name} does not have the inputs and outputs of a mrcnn-export model described by its "
                        f"sidecar: {'; '.join(problems[:4])}")
