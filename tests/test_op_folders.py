"""Each op's Python parts live in its own folder (plugins/<torch_name>/), found from the contract.

A new op is its ``OpDef`` in plugins/opdefs.py plus its folder: the reference
(``reference.py``), how the network's call reaches each implementation
(``binding.py``, an ``OpBinding``) and its standard-ONNX expansion (``expand.py``).
The ops backends (model/backends.py), the exporter's node emitter and the
standard-flavor driver name no op; they find the op folders from ``OP_DEFS``.
"""
import ast
import os
import sys

import pytest
import torch

from mrcnn_trt import plugins
from mrcnn_trt.config import preset
from mrcnn_trt.export import standardize
from mrcnn_trt.export.exporter import OnnxNodeOps
from mrcnn_trt.model import backends
from mrcnn_trt.plugins import opbinding
from mrcnn_trt.plugins.opdefs import OP_DEFS, OpDef, TensorDef

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: generic files: they must work for any op of the contract without naming one
GENERIC = ["model/backends.py", "export/exporter.py", "export/standardize.py", "plugins/opbinding.py",
           "plugins/onnx_builder.py", "plugins/reference.py"]


def _code_names(path):
    """Identifiers and string constants of a module's code (docstrings left out)."""
    tree = ast.parse(open(os.path.join(REPO, path)).read(), path)
    docs = {id(n.body[0].value) for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef)) and n.body
            and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    out = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.Name):
            out.add(n.id)
        elif isinstance(n, ast.Attribute):
            out.add(n.attr)
        elif isinstance(n, (ast.FunctionDef, ast.ClassDef)):
            out.add(n.name)
        elif isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docs:
            out.add(n.value)
    return out


@pytest.mark.parametrize("path", GENERIC)
def test_generic_files_name_no_op(path):
    names = {d.name for d in OP_DEFS.values()} | {d.torch_name for d in OP_DEFS.values()}
    assert not _code_names(path) & names


@pytest.mark.parametrize("op", list(OP_DEFS))
def test_each_op_folder_holds_its_python_parts(op):
    d = OP_DEFS[op]
    folder = os.path.join(REPO, "plugins", d.torch_name)
    for f in ("__init__.py", "reference.py", "binding.py", "expand.py"):
        assert os.path.isfile(os.path.join(folder, f)), f
    b = backends.BINDINGS[op]
    assert b.op == op and b.reference.__module__ == f"mrcnn_trt.plugins.{d.torch_name}.reference"
    assert b.reference.__name__ == d.torch_name
    assert standardize.EXPANDERS[op].__module__ == f"mrcnn_trt.plugins.{d.torch_name}.expand"


@pytest.mark.parametrize("make", [lambda c: backends.make_ops(c, "torch"), lambda c: backends.make_ops(c, "cpu"),
                                  lambda c: backends.make_ops(c, "native"), OnnxNodeOps])
def test_every_backend_has_a_method_per_op(make):
    ops = make(preset("tiny"))
    for op, d in OP_DEFS.items():
        assert getattr(ops, d.torch_name).__name__ == d.torch_name
        with pytest.raises(TypeError, match=f"{d.torch_name}\\(\\) got an unexpected keyword argument 'bogus'"):
            getattr(ops, d.torch_name)(bogus=True)


def test_the_options_pick_the_attributes():
    cfg = preset("tiny")
    ops = backends.make_ops(cfg, "torch")
    assert ops.attrs("PyramidROIAlign")["pooled_size"] == cfg.POOL_SIZE
    assert ops.attrs("PyramidROIAlign", mask=True)["pooled_size"] == cfg.MASK_POOL_SIZE
    assert ops.attrs("ProposalLayer")["post_nms_topk"] == cfg.POST_NMS_ROIS_INFERENCE
    assert ops.attrs("ProposalLayer", training=True)["post_nms_topk"] == cfg.POST_NMS_ROIS_TRAINING
    assert ops.attrs("DetectionLayer")["max_instances"] == cfg.DETECTION_MAX_INSTANCES


def test_native_returns_what_the_reference_returns():
    """Types and arity of each op's result: the anchor index int64 (the operators give int32),
    one output alone unwrapped; a crop that needs a gradient comes from the reference."""
    cfg = preset("tiny")
    nat, ref = backends.make_ops(cfg, "native"), backends.make_ops(cfg, "torch")
    g = torch.Generator().manual_seed(0)
    a = 64
    scores = torch.rand(1, a, generator=g)
    deltas = torch.randn(1, a, 4, generator=g) * 0.1
    anchors = torch.rand(a, 2, generator=g).repeat(1, 2) * 100 + torch.tensor([0.0, 0.0, 20.0, 30.0])
    got, want = nat.proposal_layer(scores, deltas, anchors), ref.proposal_layer(scores, deltas, anchors)
    assert [t.dtype for t in got] == [t.dtype for t in want] == [torch.float32, torch.int32, torch.int64]
    maps = [torch.rand(1, 4, s, s, generator=g, requires_grad=True) for s in (16, 8, 4, 2)]
    crops = nat.pyramid_roi_align(got[0], maps)
    assert isinstance(crops, torch.Tensor) and crops.requires_grad       # the reference ran (grad_fallback)
    with torch.no_grad():
        crops = nat.pyramid_roi_align(got[0], maps)
    assert torch.equal(crops, ref.pyramid_roi_align(got[0], maps).detach())


def _fourth_op():
    return OpDef("FourthOp", "fourth_op", "a test op", attrs=(),
                 inputs=(TensorDef("x", "data", ("N",), "input"),), outputs=(TensorDef("y", "data", ("N",), "out"),))


def test_a_new_op_is_found_from_the_contract_and_its_folder(tmp_path, monkeypatch):
    """An OpDef and a folder with binding.py and expand.py: nothing else to register."""
    monkeypatch.setitem(OP_DEFS, "FourthOp", _fourth_op())
    with pytest.raises(ValueError, match=r"'FourthOp' of the contract has no binding \(plugins/fourth_op/binding.py"):
        opbinding.load_bindings()
    assert "FourthOp" not in standardize.load_expanders()      # refused by name when a graph holds one

    folder = tmp_path / "fourth_op"
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    (folder / "binding.py").write_text(
        "from mrcnn_trt.plugins.opbinding import OpBinding\n"
        "def fourth_op(x):\n    return x + 1\n"
        "BINDING = OpBinding('FourthOp', fourth_op)\n")
    (folder / "expand.py").write_text("def expand(b, ins, outs, a, shapes, max_topk):\n"
                                      "    b.op('Identity', ins, outs[0])\n")
    monkeypatch.setattr(plugins, "__path__", list(plugins.__path__) + [str(tmp_path)])
    for name in [m for m in sys.modules if m.startswith("mrcnn_trt.plugins.fourth_op")]:
        monkeypatch.delitem(sys.modules, name)
    try:
        found = opbinding.load_bindings()
        assert found["FourthOp"].reference(torch.tensor([1.0])).item() == 2.0
        assert standardize.load_expanders()["FourthOp"].__module__ == "mrcnn_trt.plugins.fourth_op.expand"
    finally:
        for name in [m for m in sys.modules if m.startswith("mrcnn_trt.plugins.fourth_op")]:
            del sys.modules[name]
