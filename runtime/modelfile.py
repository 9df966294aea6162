"""Opening ONNX model files: the one loader of every command.

Every command that reads an ONNX model (``mrcnn-eval``, ``mrcnn-calibrate``,
``mrcnn-build-engine``, the ONNX Runtime runner) opens it here, so that every way
a file can fail to load gives the same one-line :class:`ModelFileError`
instead of a protobuf, onnx or ONNX Runtime traceback:

* not a regular file (a folder, a FIFO named ``model.onnx``: never opened);
* not an ONNX protobuf (garbage, a zip or a pickle named ``.onnx``, a truncated
  file, an empty one) or a protobuf without a graph;
* external data that is missing or points outside the model's folder;
* operators or domains ONNX Runtime does not know, custom-op attributes the
  ``mrcnn`` op library refuses, a graph that does not type-check.

    proto = load_onnx("model.onnx")                       # onnx.ModelProto
    sess = onnx_session("model.onnx", threads=2)          # onnxruntime.InferenceSession
    m = open_onnx("model.onnx", session=False)            # file + sidecar + integrity (see OnnxModel)

:class:`ModelFileError` exits with 2 (``mrcnn-eval``, ``mrcnn-calibrate``);
``mrcnn-build-engine`` reports it as "TensorRT could not parse the ONNX" (18).
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from mrcnn_trt.errors import UserError
from mrcnn_trt.fileio import check_regular_file, sha256_file, verify_model_digest
from mrcnn_trt.plugins.ort import CustomOpsUnavailable, make_session

from .onnx_sidecar import read_sidecar, sidecar_problems


class ModelFileError(UserError):
    """A model file that cannot be loaded (the message is one line naming the file)."""


def error_detail(e: BaseException, limit: int = 300) -> str:
    """One line of an exception's message (ONNX Runtime's span several lines)."""
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."


def check_model_file(path: str, what: str = "ONNX model") -> str:
    """Exists and is a regular file (folders, FIFOs, devices are refused unopened)."""
    return check_regular_file(path, what=what)


def load_onnx(path: str, external_data: bool = False):
    """``onnx.ModelProto`` of ``path``; any failure -> :class:`ModelFileError`.

    ``external_data``: also load external tensors (only from inside the model's
    folder; onnx refuses other locations, and so does this function)."""
    import onnx

    check_model_file(path)
    if os.path.getsize(path) == 0:
        raise ModelFileError(f"cannot load ONNX model {path}: the file is empty")
    try:
        proto = onnx.load(path, load_external_data=external_data)
    except MemoryError:
        raise ModelFileError(f"cannot load ONNX model {path}: it does not fit in memory") from None
    except Exception as e:  # noqa: BLE001 - DecodeError, ValueError, OSError, onnx.checker errors ...
        raise ModelFileError(f"cannot load ONNX model {path}: {error_detail(e)} (not an ONNX file, truncated, or "
                             f"its external data is missing or outside its folder)") from None
    if not proto.HasField("graph") or not proto.graph.node or proto.ir_version < 1:
        raise ModelFileError(f"cannot load ONNX model {path}: the file holds no ONNX graph (not an ONNX model)")
    if not external_data:
        check_external_data(proto, path)
    return proto


def check_external_data(proto, path: str) -> None:
    """Without reading them: every external tensor of ``proto`` names a regular
    file inside the model's folder that is long enough (what ONNX Runtime and
    TensorRT would otherwise discover, or refuse, later)."""
    from onnx.external_data_helper import ExternalDataInfo, _get_all_tensors, uses_external_data

    folder = os.path.realpath(os.path.dirname(os.path.abspath(path)))
    for t in _get_all_tensors(proto):
        if not uses_external_data(t):
            continue
        info = ExternalDataInfo(t)
        where = os.path.realpath(os.path.join(folder, info.location or ""))
        if (not info.location or os.path.isabs(info.location)
                or os.path.commonpath([folder, where]) != folder):
            raise ModelFileError(f"cannot load ONNX model {path}: tensor {t.name!r} points outside the model's "
                                 f"folder ({info.location!r}); refused")
        if not os.path.isfile(where):
            raise ModelFileError(f"cannot load ONNX model {path}: external data {info.location!r} of tensor "
                                 f"{t.name!r} is missing")
        end = (info.offset or 0) + (info.length or 0)
        if end > os.path.getsize(where):
            raise ModelFileError(f"cannot load ONNX model {path}: external data {info.location!r} is shorter than "
                                 f"tensor {t.name!r} needs")


@contextlib.contextmanager
def session_errors(name: str) -> Iterator[None]:
    """Turn any failure of creating an ONNX Runtime session for ``name`` into one
    :class:`ModelFileError` line (for code that builds its own session)."""
    try:
        yield
    except UserError:
        raise
    except CustomOpsUnavailable as e:
        raise UserError(str(e)) from None
    except MemoryError:
        raise ModelFileError(f"ONNX Runtime cannot load {name}: out of memory") from None
    except Exception as e:  # noqa: BLE001 - onnxruntime's Fail, InvalidGraph, InvalidProtobuf, NotImplemented ...
        raise ModelFileError(f"ONNX Runtime cannot load {name}: {error_detail(e)}") from None


def onnx_session(model, threads: int = 2, providers: Optional[Sequence[str]] = None, spinning: bool = False,
                 name: Optional[str] = None):
    """An ``onnxruntime.InferenceSession`` (the ``mrcnn`` custom ops registered,
    :func:`mrcnn_trt.plugins.ort.make_session`) for a path, bytes or ModelProto;
    any load failure -> :class:`ModelFileError`."""
    if isinstance(model, (str, os.PathLike)):
        model = check_model_file(os.fspath(model))
        name = name or model
    with session_errors(name or "the ONNX model"):
        return make_session(model, threads=threads, providers=providers, spinning=spinning)


def graph_io_shapes(proto) -> Tuple[Dict[str, list], Dict[str, list]]:
    """``({input: [dims]}, {output: [dims]})`` of a ModelProto (symbolic dims as
    strings, unknown ones as None), like ONNX Runtime's ``get_inputs()``."""
    def dims(v):
        t = v.type.tensor_type
        if not t.HasField("shape"):
            return []
        return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in t.shape.dim]

    inits = {t.name for t in proto.graph.initializer}
    return ({v.name: dims(v) for v in proto.graph.input if v.name not in inits},
            {v.name: dims(v) for v in proto.graph.output})


def verify_sidecar(path: str, side: dict, inputs: Dict[str, list], outputs: Dict[str, list],
                   sha256: Optional[str] = None) -> None:
    """The integrity rule of a model read with its sidecar: the sidecar names
    this file (``onnx_sha256`` present and equal) and describes this graph
    (:func:`mrcnn_trt.runtime.onnx_sidecar.sidecar_problems`). A model made by
    another tool, or a sidecar copied from another model, is refused in one line."""
    if not isinstance(side, dict):
        raise UserError(f"{path}.json is not a JSON object: re-export the model")
    verify_model_digest(path, side, sha256)      # the one digest rule (mrcnn_trt.fileio)
    problems = sidecar_problems(side, inputs, outputs)
    if problems:
        raise UserError(f"{path}.json does not match the model ({'; '.join(problems)}): it was not made for this "
                        f"graph; re-export the model or restore its sidecar")


@dataclass
class OnnxModel:
    """An ONNX model opened with its sidecar and checked (:func:`open_onnx`)."""

    path: str
    proto: object            # onnx.ModelProto (without external data)
    sidecar: dict
    sha256: str
    session: object = None   # onnxruntime.InferenceSession when asked for


def open_onnx(path: str, session: bool = False, threads: int = 2, verify: bool = True,
              external_data: bool = False) -> OnnxModel:
    """Open a model of ours: regular file, sidecar beside it, graph loadable by
    onnx (``external_data``: with its external tensors) and by ONNX Runtime with
    ``session=True``, sidecar naming and describing the graph
    (:func:`verify_sidecar`, unless ``verify=False``)."""
    check_model_file(path)
    side = read_sidecar(path)
    sha = sha256_file(path)
    if verify:   # before parsing: a changed or foreign file is refused without reading its graph
        verify_model_digest(path, side, sha)
    proto = load_onnx(path, external_data=external_data)
    if verify:
        verify_sidecar(path, side, *graph_io_shapes(proto), sha256=sha)
    sess = onnx_session(path, threads=threads) if session else None
    return OnnxModel(path, proto, side, sha, sess)


def custom_node_types(proto) -> List[str]:
    """Op types of the ``mrcnn`` custom nodes of a graph (sorted)."""
    return sorted(n.op_type for n in proto.graph.node if n.domain == "mrcnn")
