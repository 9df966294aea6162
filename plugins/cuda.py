"""The CUDA kernels of the custom ops for PyTorch: ``libmrcnn_cuda_ops.so`` through ctypes.

The library (``plugins/capi/mrcnn_capi.h``) is a C ABI over the CUDA launchers
and the host layer's contract checks; it knows nothing of PyTorch, so one
build works with any PyTorch version. :func:`run` passes tensor pointers, a
workspace allocated by PyTorch's caching allocator and the current CUDA stream.

Build it with CMake and a CUDA compiler (target ``mrcnn_cuda_ops``)::

    cmake -S . -B build/cuda -DMRCNN_WITH_CUDA=ON -DMRCNN_BUILD_TRT=OFF \\
          -DCMAKE_CUDA_COMPILER=$(which nvcc) -DMRCNN_CUDA_ARCHS=86
    cmake --build build/cuda --target mrcnn_cuda_ops -j

or ``bash tools/build_cuda.sh`` (every architecture, CUDA 11.8). Search order
of :func:`find_library`: the ``MRCNN_CUDA_OPS`` environment variable (file or
folder), the package folder, ``build/cuda/``, other ``build*/`` folders.
"""
from __future__ import annotations

import ctypes
import glob
import json
import os
import threading
from typing import Any, Dict, List, Optional, Sequence

from mrcnn_trt.errors import UserError

from . import libsearch
from .opdefs import op_def, validate_attrs
from .opdefs import output_shapes as contract_shapes

LIB_NAME = "libmrcnn_cuda_ops.so"
ENV_VAR = "MRCNN_CUDA_OPS"
CAPI_VERSION = 1

_HERE = os.path.dirname(os.path.abspath(__file__))
_REPO = os.path.dirname(_HERE)
_lock = threading.Lock()
_lib: Optional[ctypes.CDLL] = None

BUILD_HINT = ("build it with CMake and nvcc: cmake -S . -B build/cuda -DMRCNN_WITH_CUDA=ON -DMRCNN_BUILD_TRT=OFF "
              "-DCMAKE_CUDA_COMPILER=$(which nvcc) -DMRCNN_CUDA_ARCHS=<arch, e.g. 86> && "
              "cmake --build build/cuda --target mrcnn_cuda_ops -j (or set MRCNN_CUDA_OPS to the .so); "
              "or run the PyTorch reference ops: model.set_ops_backend('torch')")


class CudaOpsUnavailable(UserError):
    """The CUDA library of the PyTorch operators is not built or cannot be loaded."""


def candidates() -> List[str]:
    """Every place searched, in order (existing or not)."""
    out = []
    env = os.environ.get(ENV_VAR)
    if env:
        out.append(libsearch.in_folder(LIB_NAME, env))
    out.append(os.path.join(_HERE, LIB_NAME))
    out.append(os.path.join(_REPO, "build", "cuda", LIB_NAME))
    for d in sorted(glob.glob(os.path.join(_REPO, "build*"))):
        out.append(os.path.join(d, LIB_NAME))
    return out


def find_library() -> str:
    """Absolute path of the library; raises :class:`CudaOpsUnavailable`.

    ``MRCNN_CUDA_OPS`` pointing at nothing is an error, never silently replaced.
    """
    return libsearch.find(LIB_NAME, ENV_VAR, candidates, CudaOpsUnavailable,
                          f"{LIB_NAME} (the CUDA kernels of torch.ops.mrcnn.*) not found; {BUILD_HINT}")


def library() -> ctypes.CDLL:
    """The loaded library (loaded once; argument types declared)."""
    global _lib
    with _lock:
        if _lib is not None:
            return _lib
        path = find_library()
        try:
            lib = ctypes.CDLL(path)
        except OSError as e:
            raise CudaOpsUnavailable(f"cannot load {path}: {e}") from None
        c_int, c_void_p, c_size_t = ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t
        pd, pi, pl = ctypes.POINTER(ctypes.c_double), ctypes.POINTER(c_int), ctypes.POINTER(ctypes.c_int64)
        lib.mrcnn_capi_version.restype = c_int
        lib.mrcnn_capi_last_error.restype = ctypes.c_char_p
        lib.mrcnn_capi_info.restype = ctypes.c_char_p
        lib.mrcnn_output_shapes.argtypes = [ctypes.c_char_p, pd, c_int, c_int, pi, pl, c_int, pi, pi, pl]
        lib.mrcnn_cuda_workspace_size.argtypes = [ctypes.c_char_p, pd, c_int, c_int, pi, pl,
                                                  ctypes.POINTER(c_size_t)]
        lib.mrcnn_cuda_run.argtypes = [ctypes.c_char_p, pd, c_int, c_int, pi, pl, c_int,
                                       ctypes.POINTER(c_void_p), c_int, ctypes.POINTER(c_void_p), c_void_p,
                                       c_size_t, c_int, c_void_p]
        for f in (lib.mrcnn_output_shapes, lib.mrcnn_cuda_workspace_size, lib.mrcnn_cuda_run):
            f.restype = c_int
        version = lib.mrcnn_capi_version()
        if version != CAPI_VERSION:
            raise CudaOpsUnavailable(f"{path} has C ABI version {version}, this package needs {CAPI_VERSION}: "
                                     f"rebuild it")
        _lib = lib
        return lib


def available() -> bool:
    """True when the library can be loaded (says nothing about a GPU being present)."""
    try:
        library()
        return True
    except UserError:
        return False


def info() -> Dict[str, Any]:
    """Build facts: C ABI version, CUDA runtime version, archs, the compiled contract."""
    return json.loads(library().mrcnn_capi_info().decode())


# ------------------------------------------------------------------ arguments
def attr_values(op: str, attrs: Dict[str, Any]) -> List[float]:
    """The attribute values in contract order, flattened (what the C ABI takes)."""
    out: List[float] = []
    for a in op_def(op).attrs:
        v = attrs[a.name]
        out.extend(float(x) for x in v) if a.type == "floats" else out.append(float(v))
    return out


class _Args:
    """ctypes arrays for an op's attributes and input shapes."""

    def __init__(self, op: str, attrs: Dict[str, Any], shapes: Sequence[Sequence[int]]):
        vals = attr_values(op, attrs)
        dims = [int(d) for s in shapes for d in s]
        self.op = op.encode()
        self.attrs = (ctypes.c_double * max(1, len(vals)))(*vals)
        self.n_attrs = len(vals)
        self.n_inputs = len(shapes)
        self.ranks = (ctypes.c_int * max(1, len(shapes)))(*[len(s) for s in shapes])
        self.dims = (ctypes.c_int64 * max(1, len(dims)))(*dims)


def _error(lib, op: str, rc: int) -> str:
    msg = lib.mrcnn_capi_last_error().decode()
    return msg or f"{op}: error {rc}"


def output_shapes(op: str, attrs: Dict[str, Any], shapes: Sequence[Sequence[int]]) -> List[tuple]:
    """Output shapes (node outputs, then kernel-only outputs) as the compiled host layer sees them."""
    lib = library()
    a = _Args(op, attrs, shapes)
    n = ctypes.c_int(0)
    ranks = (ctypes.c_int * 8)()
    dims = (ctypes.c_int64 * 40)()
    rc = lib.mrcnn_output_shapes(a.op, a.attrs, a.n_attrs, a.n_inputs, a.ranks, a.dims, 8, ctypes.byref(n), ranks,
                                 dims)
    if rc != 0:
        raise ValueError(_error(lib, op, rc))
    out, k = [], 0
    for o in range(n.value):
        out.append(tuple(dims[k:k + ranks[o]]))
        k += ranks[o]
    return out


def workspace_size(op: str, attrs: Dict[str, Any], shapes: Sequence[Sequence[int]]) -> int:
    """Bytes of device workspace the op's launcher needs."""
    lib = library()
    a = _Args(op, attrs, shapes)
    n = ctypes.c_size_t(0)
    rc = lib.mrcnn_cuda_workspace_size(a.op, a.attrs, a.n_attrs, a.n_inputs, a.ranks, a.dims, ctypes.byref(n))
    if rc != 0:
        raise ValueError(_error(lib, op, rc))
    return int(n.value)


def launch(op: str, attrs: Dict[str, Any], shapes: Sequence[Sequence[int]], float16: bool, inputs: Sequence[int],
           outputs: Sequence[int], workspace: int, workspace_bytes: int, device: int, stream: int) -> None:
    """The C-ABI call of :func:`run` on raw device pointers (ints): validated ``attrs``,
    input ``shapes`` in contract order, the inputs' and outputs' device pointers, a
    workspace of at least :func:`workspace_size` bytes, the device index and a
    ``cudaStream_t`` (0: the legacy default stream). Raises RuntimeError with the
    library's message on failure. tools/sim/capi_cases.py drives the library through it
    under a GPU simulator (no PyTorch CUDA there)."""
    lib = library()
    a = _Args(op, attrs, shapes)
    ins = (ctypes.c_void_p * max(1, len(inputs)))(*inputs)
    outs = (ctypes.c_void_p * max(1, len(outputs)))(*outputs)
    rc = lib.mrcnn_cuda_run(a.op, a.attrs, a.n_attrs, a.n_inputs, a.ranks, a.dims, 1 if float16 else 0, ins,
                            len(outputs), outs, workspace, workspace_bytes, device, stream)
    if rc != 0:
        raise RuntimeError(_error(lib, op, rc))


def run(op: str, inputs: Sequence, attrs: Dict[str, Any], extra: bool = True) -> List:
    """Run ``op`` on CUDA tensors (contract order; data tensors all float32 or all
    float16, geometry float32, counts int32, all on one device). Returns new
    tensors: the node outputs, then (``extra``) the kernel-only outputs. The
    launches go to the current CUDA stream; the workspace comes from PyTorch's
    caching allocator (stream-ordered, so it is safe to release on return)."""
    import torch

    d = op_def(op)
    attrs = validate_attrs(op, attrs)
    dev = inputs[0].device
    inputs = [x.contiguous() for x in inputs]
    shapes = [tuple(x.shape) for x in inputs]
    data = next(x.dtype for x, t in zip(inputs, d.inputs) if t.role == "data")
    outs_spec = d.outputs + (d.extra_outputs if extra else ())
    out_shapes = contract_shapes(op, shapes, attrs, extra=extra)
    dtype = {"f32": torch.float32, "i32": torch.int32}
    outputs = [torch.empty(s, dtype=dtype.get(t.role, data), device=dev) for s, t in zip(out_shapes, outs_spec)]
    ws_bytes = workspace_size(op, attrs, shapes)
    ws = torch.empty(max(ws_bytes, 1), dtype=torch.uint8, device=dev)
    stream = torch.cuda.current_stream(dev).cuda_stream
    launch(op, attrs, shapes, data == torch.float16, [x.data_ptr() for x in inputs], [x.data_ptr() for x in outputs],
           ws.data_ptr(), ws_bytes, dev.index if dev.index is not None else torch.cuda.current_device(), stream)
    return outputs
