"""mrcnn-build-engine without TensorRT (a tiny stand-in named ``FakeTensorRT``
provides only ``__version__`` where a check needs a ``tensorrt`` module: the
CLI's TensorRT-version and GPU checks), the engine package's imports, and the
TensorRT runner's checks and batch handling without a GPU (TensorRT itself is
not installed here; the builds with TensorRT for RTX are in tests/test_rtx.py)."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import types

import numpy as np
import pytest

from mrcnn_trt.engine import families, gpu
from mrcnn_trt.engine.errors import (ArchUnsupported, GpuMismatch, PlanMismatch, PrecisionUnsupported,
                                     SidecarMismatch, TensorRTMissing)
from mrcnn_trt.errors import UserError

from engine_stand_ins import stand_in_model as _model

HAVE_TENSORRT = importlib.util.find_spec("tensorrt") is not None


# ----------------------------------------------------------------------- CLI
def _files(folder):
    return sorted(os.listdir(folder))


@pytest.mark.skipif(HAVE_TENSORRT, reason="TensorRT is installed")
def test_cli_without_tensorrt_one_line_no_file(tmp_path, capsys):
    from mrcnn_trt.engine.cli import main

    path, _ = _model(tmp_path)
    before = _files(tmp_path)
    rc = main([path, "--arch", "sm_61", "--family", "tensorrt"])
    err = capsys.readouterr().err.strip()
    assert rc == TensorRTMissing.exit_code
    assert len(err.splitlines()) == 1
    assert "TensorRT" in err and "not installed" in err and "8.6.1" in err and "pip install" in err
    assert _files(tmp_path) == before       # no plan, no sidecar, no temporary file
    # the same when the ONNX file does not even exist (nothing is written either)
    rc = main([str(tmp_path / "missing.onnx"), "--arch", "sm_61", "-o", str(tmp_path / "x.plan")])
    assert rc == 2 and _files(tmp_path) == before
    assert capsys.readouterr().err.strip() == f"error: ONNX model not found: {tmp_path / 'missing.onnx'}"


@pytest.mark.skipif(HAVE_TENSORRT, reason="TensorRT is installed")
def test_cli_process_without_tensorrt(tmp_path):
    path, _ = _model(tmp_path)
    r = subprocess.run([sys.executable, "-m", "mrcnn_trt.engine.cli", path, "--arch", "sm_86", "--family", "tensorrt"],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == TensorRTMissing.exit_code
    assert len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith("error: ")
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "model.plan").exists()


def test_cli_help_and_argument_errors(tmp_path, capsys):
    from mrcnn_trt.engine.cli import main

    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "--calib-images" in out and "--family" in out and "sm_86,sm_89,sm_120" in out
    assert main(["m.onnx", "--arch", "sm_61"]) == 2                 # the missing file first, before anything else
    assert "ONNX model not found: m.onnx" in capsys.readouterr().err
    path, _ = _model(tmp_path)
    before = _files(tmp_path)
    with pytest.raises(SystemExit) as e:          # the grammar is checked by the parser: one error line
        main([path, "--arch", "sm61x"])
    assert e.value.code == 2
    assert "'sm61x' is not a GPU architecture; write sm_86, 86 or 8.6" in capsys.readouterr().err
    assert main([path, "--arch", "sm_61", "--calib-cache", "c"]) == PrecisionUnsupported.exit_code
    assert main([path, "--arch", "sm_99"]) == ArchUnsupported.exit_code
    assert "sm_99 is not a GPU architecture" in capsys.readouterr().err
    for bad in (["--workspace", "0"], ["--batch", "0"], ["--calib-count", "0"], ["--family", "tensorrt-rtx"]):
        with pytest.raises(SystemExit) as e:
            main([path, "--arch", "sm_86", *bad])
        assert e.value.code == 2
    assert _files(tmp_path) == before


class FakeTensorRT(types.ModuleType):
    """Stand-in for the ``tensorrt`` module with only a version (used solely to
    reach the CLI's TensorRT-version / GPU / sidecar checks without TensorRT)."""

    def __init__(self, version):
        super().__init__("tensorrt")
        self.__version__ = version


@pytest.fixture
def fake_tensorrt(monkeypatch):
    def install(version):
        monkeypatch.setitem(sys.modules, "tensorrt", FakeTensorRT(version))
    return install


def test_cli_checks_with_fake_tensorrt(tmp_path, capsys, fake_tensorrt):
    from mrcnn_trt.engine.cli import main

    path, _ = _model(tmp_path)
    before = _files(tmp_path)
    fake_tensorrt("8.6.1.6")
    assert main([path, "--arch", "sm_52"]) == ArchUnsupported.exit_code
    assert "TensorRT 8.5.3" in capsys.readouterr().err
    fake_tensorrt("10.4.0.26")
    assert main([path, "--arch", "sm_61"]) == ArchUnsupported.exit_code
    assert "TensorRT 8.6.1" in capsys.readouterr().err
    if not gpu.visible_compute_capabilities():
        assert main([path, "--arch", "sm_86"]) == GpuMismatch.exit_code
        assert "no CUDA GPU is visible" in capsys.readouterr().err
    with open(path, "ab") as f:
        f.write(b"edited")
    assert main([path, "--arch", "sm_86"]) == SidecarMismatch.exit_code
    assert "does not match its sidecar" in capsys.readouterr().err
    assert _files(tmp_path) == before


@pytest.mark.skipif(HAVE_TENSORRT, reason="TensorRT is installed")
def test_import_tensorrt_missing():
    with pytest.raises(TensorRTMissing, match=r"for sm_70.*TensorRT 10\.4"):
        families.import_tensorrt("sm_70")


def test_runner_without_plan_sidecar(tmp_path):
    from mrcnn_trt.engine.runner import TensorRTRunner

    plan = tmp_path / "m.plan"
    plan.write_bytes(b"plan")
    with pytest.raises(PlanMismatch, match="has no sidecar"):
        TensorRTRunner(str(plan))
    with pytest.raises(UserError, match="plan not found"):
        TensorRTRunner(str(tmp_path / "none.plan"))


def test_runner_input_roles():
    import numpy as np

    from mrcnn_trt.engine.runner import IOTensor, input_roles

    f = np.dtype(np.float32)
    ins = [IOTensor("windows", True, (2, 4), f, 1), IOTensor("images", True, (2, 3, 64, 64), f, 0)]
    assert input_roles(ins) == {"windows": "windows", "images": "images"}
    ins = [IOTensor("input.1", True, (2, 3, 64, 64), f, 0), IOTensor("input.2", True, (2, 4), f, 1)]
    assert input_roles(ins) == {"input.1": "images", "input.2": "windows"}
    with pytest.raises(UserError, match="are not"):
        input_roles([IOTensor("images", True, (2, 3, 64, 64), f, 0)])


def test_engine_package_imports_nothing_heavy():
    code = ("import sys, mrcnn_trt.engine, mrcnn_trt.engine.build, mrcnn_trt.engine.cli, "
            "mrcnn_trt.engine.plugins_cli; "
            "print(sorted(m for m in ('tensorrt', 'tensorrt_rtx_bindings', 'torch', 'onnx', 'onnxruntime') "
            "if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


# ----------------------------------------------------------------------- runner: batch handling (no GPU)
class _HostCuda:
    """Host memory standing in for device memory (pointers are ids of numpy buffers)."""

    def __init__(self):
        self.mem, self.next = {}, 1

    def alloc(self, nbytes):
        ptr, self.next = self.next, self.next + 1
        self.mem[ptr] = bytearray(max(nbytes, 1))
        return ptr

    def free(self, ptr):
        self.mem.pop(ptr, None)

    def htod(self, ptr, host, stream):
        b = host.tobytes()
        self.mem[ptr][:len(b)] = b

    def dtoh(self, host, ptr, stream):
        host[...] = np.frombuffer(bytes(self.mem[ptr][:host.nbytes]), host.dtype).reshape(host.shape)

    def stream(self):
        return None

    def stream_handle(self, stream):
        return 0

    def sync(self, stream):
        pass


class _Context:
    """Records set_input_shape; 'runs' by writing the batch size into count."""

    def __init__(self, runner, max_rows):
        self.runner, self.max_rows, self.shapes, self.addr, self.calls = runner, max_rows, {}, {}, []

    def set_input_shape(self, name, shape):
        self.calls.append((name, tuple(shape)))
        self.shapes[name] = tuple(shape)

    def get_tensor_shape(self, name):
        n = self.shapes.get("images", (self.runner.fixed_batch or 0,))[0]
        return {"count": (n,), "detections": (n, self.max_rows, 6)}[name]

    def set_tensor_address(self, name, ptr):
        self.addr[name] = ptr

    def execute_async_v3(self, stream):
        cuda = self.runner.cuda
        n = self.get_tensor_shape("count")[0]
        images = np.frombuffer(bytes(cuda.mem[self.addr["images"]][:n * 3 * 4 * 4 * 4]), np.float32)
        cuda.mem[self.addr["count"]][:4 * n] = np.full(n, images.size // 48, np.int32).tobytes()
        return True


def _runner(batch_dim, max_batch):
    from mrcnn_trt.engine.cuda_mem import DeviceBuffer
    from mrcnn_trt.engine.runner import IOTensor, TensorRTRunner

    r = TensorRTRunner.__new__(TensorRTRunner)
    f, i = np.dtype(np.float32), np.dtype(np.int32)
    r.name, r.cuda, r.stream, r._DeviceBuffer, r.buffers = "m.plan", _HostCuda(), None, DeviceBuffer, {}
    r.inputs = [IOTensor("images", True, (batch_dim, 3, 4, 4), f, 0), IOTensor("windows", True, (batch_dim, 4), f, 1)]
    r.outputs = [IOTensor("count", False, (batch_dim,), i, 2), IOTensor("detections", False, (batch_dim, 2, 6), f, 3)]
    r.roles = {"images": "images", "windows": "windows"}
    r.fixed_batch = None if batch_dim < 0 else batch_dim
    r.max_batch = max_batch
    r.context = _Context(r, 2)
    return r


def test_runner_dynamic_batch_sets_shapes_and_never_pads():
    r = _runner(-1, 4)
    for n in (1, 3, 4):
        out = r(np.ones((n, 3, 4, 4), np.float32), np.zeros((n, 4), np.float32))
        assert out["count"].tolist() == [n] * n and out["detections"].shape == (n, 2, 6)
        assert r.context.calls[-2:] == [("images", (n, 3, 4, 4)), ("windows", (n, 4))]   # no padding to 4
    with pytest.raises(UserError, match="takes 1..4 images per call, got 5"):
        r(np.ones((5, 3, 4, 4), np.float32), np.zeros((5, 4), np.float32))


def test_runner_fixed_batch_pads():
    r = _runner(2, 2)
    out = r(np.ones((1, 3, 4, 4), np.float32), np.zeros((1, 4), np.float32))
    assert r.context.calls == []                       # static shapes: nothing to set
    assert out["count"].tolist() == [2]                 # the engine saw 2 images; the padded row is cut off
