"""The ONNX and plan sidecars (mrcnn_trt.engine.sidecars): a sidecar that is missing,
of another file, incomplete or garbage, plan families and targets, batch limits."""
from __future__ import annotations

import json
import os

import pytest

from mrcnn_trt.engine import sidecars
from mrcnn_trt.engine.errors import GpuMismatch, PlanMismatch, SidecarMismatch
from mrcnn_trt.errors import UserError

from engine_stand_ins import stand_in_model as _model


# ----------------------------------------------------------------------- ONNX sidecar
def test_sidecar_ok(tmp_path):
    path, side = _model(tmp_path)
    assert sidecars.check_onnx_sidecar(path)["num_classes"] == 4
    assert sidecars.needs_plugins(side)
    assert not sidecars.needs_plugins({**side, "flavor": "standard"})


def test_sidecar_missing(tmp_path):
    path, _ = _model(tmp_path)
    os.unlink(path + ".json")
    with pytest.raises(SidecarMismatch, match="model.onnx.json not found"):
        sidecars.check_onnx_sidecar(path)


def test_sidecar_of_another_file(tmp_path):
    path, _ = _model(tmp_path)
    with open(path, "ab") as f:
        f.write(b"changed")
    with pytest.raises(SidecarMismatch, match="does not match its sidecar"):
        sidecars.check_onnx_sidecar(path)


@pytest.mark.parametrize("over,msg", [
    ({"flavor": "tflite"}, "unknown flavor"),
    ({"op_versions": {"mrcnn": 2}}, "op set version 2"),
])
def test_sidecar_bad_fields(tmp_path, over, msg):
    path, _ = _model(tmp_path, **over)
    with pytest.raises(SidecarMismatch, match=msg):
        sidecars.check_onnx_sidecar(path)


def test_sidecar_incomplete_and_garbage(tmp_path):
    path, side = _model(tmp_path)
    del side["image_size"]
    (tmp_path / "model.onnx.json").write_text(json.dumps(side))
    with pytest.raises(SidecarMismatch, match="lacks field"):
        sidecars.check_onnx_sidecar(path)
    (tmp_path / "model.onnx.json").write_text("{not json")
    with pytest.raises(SidecarMismatch, match="not valid JSON"):
        sidecars.check_onnx_sidecar(path)
    with pytest.raises(UserError, match="ONNX model not found"):
        sidecars.check_onnx_sidecar(str(tmp_path / "nope.onnx"))


# ----------------------------------------------------------------------- plan sidecar
def _plan_side(**over):
    side = {"format": sidecars.PLAN_FORMAT, "plan_sha256": "ab" * 32, "tensorrt": "10.4.0.26", "arch": "sm_86"}
    side.update(over)
    return side


def test_plan_sidecar_checks():
    """Older sidecars (tensorrt + arch only) are TensorRT plans for one arch."""
    kw = dict(plan_path="m.plan", plan_sha256="ab" * 32, family="tensorrt", family_version="10.4.0.26", visible=[86])
    sidecars.check_plan_sidecar(_plan_side(), **kw)
    sidecars.check_plan_sidecar(_plan_side(tensorrt="10.4.0.11"), **kw)   # other build number: same release
    with pytest.raises(PlanMismatch, match="built with TensorRT 10.3.0 but TensorRT 10.4.0.26"):
        sidecars.check_plan_sidecar(_plan_side(tensorrt="10.3.0"), **kw)
    with pytest.raises(PlanMismatch, match="sha256 differs"):
        sidecars.check_plan_sidecar(_plan_side(plan_sha256="cd" * 32), **kw)
    with pytest.raises(PlanMismatch, match="not a mrcnn-trt-plan/1"):
        sidecars.check_plan_sidecar({"tensorrt": "10.4.0"}, **kw)
    with pytest.raises(GpuMismatch, match="built for sm_86 but GPU 0 is sm_75"):
        sidecars.check_plan_sidecar(_plan_side(), **{**kw, "visible": [75]})
    with pytest.raises(GpuMismatch, match="no CUDA GPU"):
        sidecars.check_plan_sidecar(_plan_side(), **{**kw, "visible": []})


def test_plan_sidecar_families_and_targets():
    rtx = _plan_side(family="rtx", family_version="1.7.1.116", tensorrt=None, targets=["sm_86", "sm_89", "sm_120"],
                     arch="sm_86")
    kw = dict(plan_path="m.plan", plan_sha256="ab" * 32, family="rtx", family_version="1.7.1.116")
    for cc in (86, 89, 120):                       # any of the plan's targets runs it
        sidecars.check_plan_sidecar(rtx, **kw, visible=[cc])
    with pytest.raises(GpuMismatch, match=r"built for sm_86,sm_89,sm_120 but GPU 0 is sm_75"):
        sidecars.check_plan_sidecar(rtx, **kw, visible=[75])
    with pytest.raises(PlanMismatch, match="built with TensorRT for RTX 1.7.1.116 but TensorRT 10.4.0 is running"):
        sidecars.check_plan_sidecar(rtx, **{**kw, "family": "tensorrt", "family_version": "10.4.0"}, visible=[86])
    with pytest.raises(PlanMismatch, match="built with TensorRT 10.4.0.26 but TensorRT for RTX 1.7.1.116"):
        sidecars.check_plan_sidecar(_plan_side(), **kw, visible=[86])
    with pytest.raises(PlanMismatch, match="built with TensorRT for RTX 1.6.0 but TensorRT for RTX 1.7.1.116"):
        sidecars.check_plan_sidecar({**rtx, "family_version": "1.6.0"}, **kw, visible=[86])
    assert sidecars.plan_targets(rtx) == ["sm_86", "sm_89", "sm_120"]
    assert sidecars.plan_family(_plan_side()) == ("tensorrt", "10.4.0.26")


# ----------------------------------------------------------------------- ONNX sidecar: dynamic batch
def test_sidecar_batch_limits(tmp_path):
    path, side = _model(tmp_path, batch=4, dynamic_batch=True)
    assert sidecars.batch_limits(sidecars.check_onnx_sidecar(path)) == (True, 4)
    assert sidecars.batch_limits({"batch": 2}) == (False, 2)
    path, _ = _model(tmp_path, batch=0)
    with pytest.raises(SidecarMismatch, match="batch must be an integer >= 1"):
        sidecars.check_onnx_sidecar(path)
