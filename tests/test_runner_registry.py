"""The runner registry (mrcnn_trt.runtime.registry): which runner opens which file.

Checked against the runners themselves: the type each file gets, the one-line
errors for a wrong backend or extension, TensorRT found through its entry point
without ``runtime`` importing ``engine``, and a backend registered from outside.
"""
import json
import subprocess
import sys

import pytest

from mrcnn_trt.errors import UserError
from mrcnn_trt.runtime import registry
from mrcnn_trt.runtime.runners import OnnxRunner


def _python(code: str) -> str:
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_backends_are_listed_without_importing_any():
    out = _python("import json, sys; from mrcnn_trt.runtime.registry import backends; "
                  "print(json.dumps([backends(), sorted(m for m in sys.modules "
                  "if m == 'torch' or m.startswith(('mrcnn_trt.engine', 'mrcnn_trt.model', 'onnxruntime')))]))")
    names, loaded = json.loads(out)
    assert names == ["onnxruntime", "tensorrt", "torch"]
    assert loaded == []


def test_a_plan_reaches_tensorrt_through_the_entry_point():
    """The registry knows no .plan until the entry point's module (mrcnn_trt.engine.runner)
    is imported; an ONNX file never imports it."""
    out = _python("import json, sys; from mrcnn_trt.runtime import registry; "
                  "a = registry.backend_for('m.onnx'), 'mrcnn_trt.engine.runner' in sys.modules; "
                  "b = registry.backend_for('m.PLAN'), registry.backend_for('m.engine'); "
                  "print(json.dumps([a, b, 'mrcnn_trt.engine.runner' in sys.modules]))")
    assert json.loads(out) == [["onnxruntime", False], ["tensorrt", "tensorrt"], True]


@pytest.mark.parametrize("path, backend", [("m.onnx", "onnxruntime"), ("m.ONNX", "onnxruntime"),
                                           ("w.pth", "torch"), ("w.pt", "torch"), ("w.ckpt", "torch"),
                                           (None, "torch"), ("m.plan", "tensorrt")])
def test_auto_picks_the_backend_from_the_extension(path, backend):
    assert registry.backend_for(path) == backend


@pytest.mark.parametrize("path, backend, message", [
    ("m.pth", "onnxruntime", "backend onnxruntime needs a .onnx file, got m.pth"),
    ("m.onnx", "torch", "backend torch needs a .pth checkpoint, got m.onnx"),
    ("m.plan", "torch", "backend torch needs a .pth checkpoint, got m.plan"),
    ("m.onnx", "tensorrt", "backend tensorrt needs a .plan or .engine file, got m.onnx"),
    ("m.onnx", "tensorflow", "unknown backend 'tensorflow' (auto|onnxruntime|tensorrt|torch)"),
])
def test_a_wrong_backend_or_extension_is_one_line(path, backend, message):
    with pytest.raises(UserError) as e:
        registry.open_runner(path, backend)
    assert str(e.value) == message


def test_a_missing_plan_is_refused_by_the_tensorrt_runner(tmp_path):
    """auto dispatch reaches mrcnn_trt.engine.runner, whose own check refuses the file."""
    with pytest.raises(UserError, match="none.plan"):
        registry.open_runner(str(tmp_path / "none.plan"))


def test_onnx_opens_in_onnx_runtime_without_spinning(shipped_onnx):
    r = registry.open_runner(shipped_onnx, threads=1)
    assert type(r) is OnnxRunner and r.backend == "onnxruntime" and r.fixed_batch == 1
    opts = r.session.get_session_options()
    assert opts.intra_op_num_threads == 1
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_no_file_is_the_shipped_pytorch_model():
    from mrcnn_trt.runtime.torch_runner import TorchRunner

    r = registry.open_runner(None, ops="torch", threads=1)
    assert type(r) is TorchRunner and r.name == "shipped shapes model" and r.config.NAME


def test_a_backend_registered_from_outside(monkeypatch):
    monkeypatch.setattr(registry, "_RUNNERS", dict(registry._RUNNERS))
    opened = []

    def factory(path, **options):
        opened.append((path, options["threads"], options["extra"]))
        return "runner"

    registry.register_runner("fake", (".Fake",), factory)
    assert "fake" in registry.backends()
    assert registry.open_runner("m.fake", threads=3, extra=1) == "runner"
    assert opened == [("m.fake", 3, 1)]
    with pytest.raises(UserError, match="backend torch needs a .pth checkpoint, got m.fake"):
        registry.open_runner("m.fake", "torch")
    with pytest.raises(ValueError, match="fallback"):
        registry.register_runner("fake2", (".x",), factory, fallback=True)
    with pytest.raises(ValueError):
        registry.register_runner("auto", (".x",), factory)


def test_eval_offers_the_registered_backends(capsys):
    from mrcnn_trt.eval.cli import main

    with pytest.raises(SystemExit) as e:
        main(["--model", "m.onnx", "--backend", "tensorflow", "--dataset", "coco", "--data-root", "x"])
    assert e.value.code == 2
    assert "(choose from 'auto', 'onnxruntime', 'tensorrt', 'torch')" in capsys.readouterr().err
