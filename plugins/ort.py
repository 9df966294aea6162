"""ONNX Runtime sessions that can run the ``mrcnn`` custom ops on the CPU.

The ops (``mrcnn::PyramidROIAlign``, ``mrcnn::ProposalLayer``,
``mrcnn::DetectionLayer``; see ``plugins/opdefs.py``) are implemented by the
custom-op library ``libmrcnn_ort_ops.so`` next to this file (built by
setup.py from ``plugins/ort_ops/ort_custom_ops.cpp`` when the ORT headers
could be fetched, see ``tools/fetch_ort_headers.sh``). Each op has a float32
and a float16 kernel for its data tensors; geometry inputs are float32.

    from mrcnn_trt.plugins.ort import make_session
    sess = make_session("model.onnx", threads=2)
    outputs = sess.run(None, {"image": x})
"""
from __future__ import annotations

import os
from typing import Iterable, Sequence

from .opdefs import DOMAIN

LIBRARY_NAME = "libmrcnn_ort_ops.so"


class CustomOpsUnavailable(RuntimeError):
    """The model needs the ``mrcnn`` ops but the custom-op library is missing or cannot load."""


def library_path() -> str:
    """Where the custom-op library is expected (inside the installed package)."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), LIBRARY_NAME)


def missing_reason() -> str | None:
    path = library_path()
    if not os.path.isfile(path):
        return (f"{path} was not built: the ONNX Runtime headers were unavailable at install time. "
                "Run `bash tools/fetch_ort_headers.sh` (needs network access to deb.debian.org) and "
                "reinstall (`pip install -e .`)")
    return None


def custom_ops_available() -> bool:
    """True when ``libmrcnn_ort_ops.so`` is there and ONNX Runtime accepts it."""
    if missing_reason() is not None:
        return False
    try:
        import onnxruntime as ort

        ort.SessionOptions().register_custom_ops_library(library_path())
        return True
    except Exception:  # noqa: BLE001 - any load failure means "not available"
        return False


def _domains_of_graph(graph) -> Iterable[str]:
    for node in graph.node:
        yield node.domain
        for attr in node.attribute:
            if attr.HasField("g"):
                yield from _domains_of_graph(attr.g)
            for g in attr.graphs:
                yield from _domains_of_graph(g)


def model_uses_custom_ops(model) -> bool:
    """Whether an ONNX model (path, bytes or ModelProto) has nodes in the ``mrcnn`` domain."""
    import onnx

    if isinstance(model, (bytes, bytearray)):
        proto = onnx.load_from_string(bytes(model))
    elif isinstance(model, (str, os.PathLike)):
        proto = onnx.load(os.fspath(model), load_external_data=False)
    else:
        proto = model
    if any(op.domain == DOMAIN for op in proto.opset_import):
        return True
    if any(d == DOMAIN for d in _domains_of_graph(proto.graph)):
        return True
    return any(n.domain == DOMAIN for f in proto.functions for n in f.node)


def session_options(threads: int = 2, register: bool = True, spinning: bool = False):
    """SessionOptions with ``threads`` intra-op threads and (if available and asked) the custom ops.

    ``spinning=False`` (the default) stops the intra-op threads from busy-waiting between
    ops: they leave the cores to other threads of the process (the pipelined evaluation
    reads and scores images beside the network) and to other processes. On the shared
    2-core machine that was faster alone too, and much faster with a competing process
    per core (``bench/bench_busy.py``, ``ort:spin`` vs ``ort:nospin``)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads)
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if not spinning:
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if register:
        so.register_custom_ops_library(library_path())
    return so


def make_session(model, threads: int = 2, providers: Sequence[str] | None = None, spinning: bool = False):
    """An ``onnxruntime.InferenceSession`` for ``model`` (path, serialized bytes or ModelProto).

    The custom-op library is registered whenever it is available (cheap); when
    it is not and the model has ``mrcnn`` nodes, raises
    :class:`CustomOpsUnavailable` with the reason and the fix.
    ``providers`` defaults to ``["CPUExecutionProvider"]``; the custom ops
    run on the CPU provider only. ``spinning``: see :func:`session_options`.
    """
    import onnxruntime as ort

    if not isinstance(model, (str, bytes, bytearray, os.PathLike)):
        model = model.SerializeToString()  # ModelProto
    if isinstance(model, os.PathLike):
        model = os.fspath(model)
    if isinstance(model, bytearray):
        model = bytes(model)
    reason = missing_reason()
    if reason is not None and model_uses_custom_ops(model):
        raise CustomOpsUnavailable(f"the model uses {DOMAIN}:: custom ops, but {reason}")
    so = session_options(threads, register=reason is None, spinning=spinning)
    return ort.InferenceSession(model, sess_options=so,
                                providers=list(providers) if providers else ["CPUExecutionProvider"])
