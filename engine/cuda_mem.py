"""Device memory and streams for the TensorRT runner and calibrators.

Two backends, imported lazily:

* ``cuda-python`` (``cuda.bindings.runtime``, or ``cuda.cudart`` in older
  releases) - preferred; imports fine without a GPU and reports errors as
  values;
* ``pycuda`` - optional fallback. ``import pycuda.driver`` needs
  ``libcuda.so.1`` and its ``init()`` can crash without a driver, so the
  driver library is probed with ctypes first.

Both expose the same small interface (:class:`CudaMemory`): ``alloc``,
``free``, ``htod``/``dtoh`` (asynchronous on a stream), ``stream`` and
``sync``. Pointers and stream handles are plain ints, as TensorRT wants them.
"""
from __future__ import annotations

import ctypes
from typing import Optional

import numpy as np

from mrcnn_trt.errors import UserError

INSTALL_HINT = "pip install cuda-python (or pycuda), with an NVIDIA driver installed"


class CudaError(UserError):
    exit_code = 12


def driver_available() -> bool:
    """Whether ``libcuda.so.1`` (the NVIDIA driver's library) can be loaded."""
    try:
        ctypes.CDLL("libcuda.so.1")
        return True
    except OSError:
        return False


class CudaMemory:
    name = "?"

    def alloc(self, nbytes: int) -> int: ...
    def free(self, ptr: int) -> None: ...
    def htod(self, ptr: int, host: np.ndarray, stream) -> None: ...
    def dtoh(self, host: np.ndarray, ptr: int, stream) -> None: ...
    def stream(self): ...
    def stream_handle(self, stream) -> int: ...
    def sync(self, stream) -> None: ...
    def runtime_version(self) -> Optional[str]: ...


class CudaPython(CudaMemory):
    name = "cuda-python"

    def __init__(self, device: int = 0):
        try:
            from cuda.bindings import runtime as rt  # cuda-python >= 12.6
        except ImportError:
            from cuda import cudart as rt  # older cuda-python
        self.rt = rt
        self._check(rt.cudaSetDevice(device), f"cudaSetDevice({device})")

    def _check(self, res, what: str):
        err = res[0] if isinstance(res, tuple) else res
        if int(err) != 0:
            try:
                msg = self.rt.cudaGetErrorString(err)[1].decode()
            except Exception:  # pragma: no cover
                msg = str(err)
            raise CudaError(f"CUDA error in {what}: {msg}")
        return res[1] if isinstance(res, tuple) and len(res) == 2 else res

    def alloc(self, nbytes):
        return int(self._check(self.rt.cudaMalloc(max(1, int(nbytes))), "cudaMalloc"))

    def free(self, ptr):
        self.rt.cudaFree(ptr)

    def htod(self, ptr, host, stream):
        self._check(self.rt.cudaMemcpyAsync(ptr, host.ctypes.data, host.nbytes,
                                            self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice, stream), "cudaMemcpyAsync")

    def dtoh(self, host, ptr, stream):
        self._check(self.rt.cudaMemcpyAsync(host.ctypes.data, ptr, host.nbytes,
                                            self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost, stream), "cudaMemcpyAsync")

    def stream(self):
        return self._check(self.rt.cudaStreamCreate(), "cudaStreamCreate")

    def stream_handle(self, stream) -> int:
        try:
            return int(stream)
        except TypeError:
            return int(stream.getPtr())

    def sync(self, stream):
        self._check(self.rt.cudaStreamSynchronize(stream), "cudaStreamSynchronize")

    def runtime_version(self):
        try:
            v = int(self._check(self.rt.cudaRuntimeGetVersion(), "cudaRuntimeGetVersion"))
            return f"{v // 1000}.{(v % 1000) // 10}"
        except Exception:
            return None


class _PyCuda(CudaMemory):
    name = "pycuda"

    def __init__(self, device: int = 0):
        import pycuda.driver as cuda

        self.cuda = cuda
        cuda.init()
        self.ctx = cuda.Device(device).retain_primary_context()  # the context TensorRT uses
        self.ctx.push()
        self._allocs = {}

    def alloc(self, nbytes):
        a = self.cuda.mem_alloc(max(1, int(nbytes)))
        self._allocs[int(a)] = a
        return int(a)

    def free(self, ptr):
        a = self._allocs.pop(ptr, None)
        if a is not None:
            a.free()

    def htod(self, ptr, host, stream):
        self.cuda.memcpy_htod_async(ptr, host, stream)

    def dtoh(self, host, ptr, stream):
        self.cuda.memcpy_dtoh_async(host, ptr, stream)

    def stream(self):
        return self.cuda.Stream()

    def stream_handle(self, stream) -> int:
        return int(stream.handle)

    def sync(self, stream):
        stream.synchronize()

    def runtime_version(self):
        try:
            v = self.cuda.get_driver_version()
            return f"driver {v // 1000}.{(v % 1000) // 10}"
        except Exception:
            return None


def open_cuda(device: int = 0) -> CudaMemory:
    """The first working backend; :class:`CudaError` with an install hint otherwise."""
    errors = []
    try:
        return CudaPython(device)
    except ImportError as e:
        errors.append(f"cuda-python: {e}")
    if driver_available():
        try:
            return _PyCuda(device)
        except ImportError as e:
            errors.append(f"pycuda: {e}")
    else:
        errors.append("pycuda: libcuda.so.1 not found (no NVIDIA driver)")
    raise CudaError(f"no CUDA Python binding available ({'; '.join(errors)}); {INSTALL_HINT}")


class DeviceBuffer:
    """A device allocation sized for one array shape/dtype."""

    def __init__(self, cuda: CudaMemory, shape, dtype):
        self.cuda = cuda
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)
        self.nbytes = int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize
        self.ptr = cuda.alloc(self.nbytes)

    def free(self):
        if self.ptr:
            self.cuda.free(self.ptr)
            self.ptr = 0

    def __del__(self):  # pragma: no cover - best effort
        try:
            self.free()
        except Exception:
            pass
