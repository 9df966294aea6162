"""TensorRT for RTX in the loop: every TensorRT code path that runs without a GPU.

TensorRT for RTX (pip wheels, ``bash tools/install_rtx.sh`` / ``pip install -e
".[rtx]"``) builds plans ahead of time on the CPU. Here it runs for real:

* ``mrcnn-build-plugins`` compiles the plugin library against the public
  TensorRT 11.1.0 headers (``../shared``) with nvcc, links it to
  ``libtensorrt_rtx.so.1`` and the ``libtensorrt_rtx.so`` name the RTX parser
  needs; its creators register in RTX's plugin registry;
* ``mrcnn-build-engine`` parses the trt-flavor export of the shipped model
  (the parser calls our creators, getOutputShapes, supportsFormatCombination,
  getWorkspaceSize, getFieldsToSerialize) and builds plans for sm_89 (FP32),
  sm_75 (FP16 graph made internally), sm_86+sm_89+sm_120 in one plan, INT8
  from a Q/DQ model and from ``--calib-images``, a dynamic-batch model; an
  R-101 COCO-layout model (1024 px, random weights) parses and builds for sm_86;
* a wrong attribute ends with our own creator's message; the standard flavor
  (ONNX NonMaxSuppression, which RTX does not implement) and every family /
  precision / arch refusal end in one line with their exit code and no file.

What still needs a GPU: deserializing and running a plan (the runner stops at
its GPU check here).

Skipped (with the reason) only when the RTX wheels, ``../shared``'s headers or
a CUDA compiler are absent. The plugin library is cached in
``.cache/rtx-plugins/<hash of its sources>`` (a clean clone builds it once,
~30-60 s on 2 cores).
"""
from __future__ import annotations

import glob
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEADERS_11 = os.path.normpath(os.path.join(REPO, "..", "shared", "third_party", "tensorrt-include", "11.1.0"))
HEADERS_10 = os.path.normpath(os.path.join(REPO, "..", "shared", "third_party", "tensorrt-include", "10.13.3"))
HAVE_RTX = importlib.util.find_spec("tensorrt_rtx_bindings") is not None
CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
#: SASS sm_75 + PTX compute_75: the shortest CUDA build whose code runs on every RTX target.
CUDA_ARCHS = "75"

pytestmark = [
    pytest.mark.skipif(not HAVE_RTX, reason="TensorRT for RTX wheels not installed (bash tools/install_rtx.sh)"),
    pytest.mark.skipif(not os.path.isdir(HEADERS_11), reason=f"TensorRT 11.1.0 headers absent ({HEADERS_11})"),
]


# --------------------------------------------------------------------------- helpers
def cli(argv, capsys):
    """mrcnn-build-engine in this process: (exit code, stderr lines)."""
    from mrcnn_trt.engine.cli import main

    capsys.readouterr()
    rc = main([str(a) for a in argv])
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    return rc, err


def files(folder):
    return sorted(os.listdir(folder))


def read_json(path):
    with open(path) as f:
        return json.load(f)


def write_sidecar(onnx_path, base: dict, **over) -> dict:
    from mrcnn_trt.fileio import sha256_file

    side = {**base, **over, "onnx_sha256": sha256_file(onnx_path)}
    with open(onnx_path + ".json", "w") as f:
        json.dump(side, f)
    return side


def rtx_version():
    import tensorrt_rtx_bindings as trt

    return trt.__version__


def _nvcc():
    for c in (os.environ.get("CUDACXX"), shutil.which("nvcc"), "/usr/local/cuda/bin/nvcc"):
        if c and os.path.isfile(c):
            return c
    return None


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def plugin_lib():
    """libmrcnn_trt_plugins.so for TensorRT for RTX, built by mrcnn-build-plugins (cached by source hash)."""
    if _nvcc() is None:
        msg = "no CUDA compiler (nvcc) for the plugin library's kernels"
        if CI:
            pytest.fail(msg)
        pytest.skip(msg)
    h = hashlib.sha256()
    srcs = sorted(glob.glob(os.path.join(REPO, "plugins", "**", "*.*"), recursive=True))
    for p in srcs + [os.path.join(REPO, "engine", f) for f in ("plugin_builder.py", "plugins_cli.py")]:
        if p.endswith((".h", ".cpp", ".cu", ".cuh", ".map", ".py", "native.json")) and "/lib/" not in p:
            h.update(p.encode())
            with open(p, "rb") as f:
                h.update(f.read())
    h.update(f"{rtx_version()} {CUDA_ARCHS} {_nvcc()}".encode())
    root = os.path.join(REPO, ".cache", "rtx-plugins")
    out = os.path.join(root, h.hexdigest()[:16])
    lib = os.path.join(out, "libmrcnn_trt_plugins.so")
    if not os.path.isfile(lib + ".json"):
        for old in glob.glob(os.path.join(root, "*")):
            shutil.rmtree(old, ignore_errors=True)
        r = subprocess.run([sys.executable, "-m", "mrcnn_trt.engine.plugins_cli", "--tensorrt-include", HEADERS_11,
                            "--cuda-archs", CUDA_ARCHS, "-o", out], capture_output=True, text=True, timeout=1200)
        assert r.returncode == 0, r.stderr[-3000:]
        assert r.stdout.strip() == lib                          # stdout: where it went (scripts read it)
        assert f"wrote {lib} (TensorRT for RTX {rtx_version()}, IPluginV3, sass:75 ptx:75)" in r.stderr
    return lib


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("rtx")


@pytest.fixture(scope="module")
def shapes_onnx(work):
    """The shipped shapes model, trt flavor (custom nodes), batch 1, 256 px."""
    import torch

    from mrcnn_trt.export.exporter import export_onnx
    from mrcnn_trt.model.checkpoint import shipped_model_path
    from mrcnn_trt.model.loading import load_model

    torch.set_num_threads(2)
    model, _, _ = load_model(shipped_model_path())
    path = str(work / "shapes.onnx")
    export_onnx(model.eval(), path, batch=1, flavor="trt", weights_path=shipped_model_path())
    return path


@pytest.fixture(scope="module")
def calib_images(work):
    from mrcnn_trt.data.synthetic import write_dataset

    write_dataset(str(work / "calib"), fmt="coco", num_images=2, seed=5, split="train", show_progress=False)
    return str(work / "calib" / "images")


@pytest.fixture
def out(tmp_path):
    d = tmp_path / "out"
    d.mkdir()
    return d


# --------------------------------------------------------------------------- the plugin library
def test_plugin_library_for_rtx(plugin_lib):
    from mrcnn_trt.engine.plugin_library import read_build_tag

    side = read_json(plugin_lib + ".json")
    assert side["family"] == "rtx" and side["family_version"] == rtx_version()
    assert side["tensorrt_headers"] == "11.1.0" and side["plugin_api"] == "IPluginV3"
    assert side["cuda_archs"] == "sass:75 ptx:75" and side["creators"] == ["DetectionLayer", "ProposalLayer",
                                                                           "PyramidROIAlign"]
    assert side["links"].endswith("libtensorrt_rtx.so.1")
    assert read_build_tag(plugin_lib) == {"family": "rtx", "family_version": rtx_version(),
                                          "tensorrt_headers": "11.1.0", "cuda_archs": "sass:75 ptx:75"}
    assert os.path.isfile(os.path.join(os.path.dirname(plugin_lib), "libtensorrt_rtx.so"))
    # In a fresh process: the name the RTX parser dlopens is missing until the plugin library is loaded;
    # then the creators are in RTX's registry with our version/namespace and field names.
    code = r"""
import ctypes, json, os, sys
import tensorrt_rtx_bindings as trt
def resolvable():
    try:
        ctypes.CDLL("libtensorrt_rtx.so", mode=os.RTLD_NOLOAD)
        return True
    except OSError:
        return False
before = resolvable()
lib = ctypes.CDLL(sys.argv[1], mode=ctypes.RTLD_GLOBAL)
reg = trt.get_plugin_registry()
ops = {}
for name in ("PyramidROIAlign", "ProposalLayer", "DetectionLayer"):
    c = reg.get_creator(name, "1", "")
    ops[name] = [f.name for f in c.field_names] if c is not None else None
print(json.dumps({"before": before, "after": resolvable(), "ops": ops}))
"""
    r = subprocess.run([sys.executable, "-c", code, plugin_lib], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["before"] is False and res["after"] is True
    from mrcnn_trt.plugins.opdefs import OPS

    assert res["ops"] == {op: [a.name for a in attrs] for op, attrs in OPS.items()}


def test_build_plugins_refusals(tmp_path, capsys):
    from mrcnn_trt.engine.plugins_cli import main

    def run(*argv):
        capsys.readouterr()
        try:
            rc = main(list(argv) + ["-o", str(tmp_path / "lib")])
        except SystemExit as e:   # argparse: the option's grammar is checked when the command line is read
            rc = e.code
        return rc, [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]

    if os.path.isdir(HEADERS_10):
        rc, err = run("--tensorrt-include", HEADERS_10)              # 10.x registry layout: would crash at load
        assert rc == 21 and len(err) == 1 and "do not fit TensorRT for RTX" in err[0] and "TensorRT 11" in err[0]
    rc, err = run("--tensorrt-include", str(tmp_path))
    assert rc == 2 and err == [f"error: --tensorrt-include {tmp_path}: no NvInfer.h there"]
    rc, err = run("--family", "tensorrt", "--tensorrt-include", HEADERS_11)
    assert rc == 10 and "TensorRT is not installed" in err[0]
    if _nvcc():
        rc, err = run("--tensorrt-include", HEADERS_11, "--cuda-archs", "sm_61", "--nvcc", _nvcc())
        assert rc == 2 and len(err) == 1 and "cannot compile sm_61" in err[0] and "CUDA 11.8" in err[0]
    rc, err = run("--tensorrt-include", HEADERS_11, "--cuda-archs", "sm_8x")
    errors = [ln for ln in err if "error:" in ln]
    assert rc == 2 and len(errors) == 1 and "'sm_8x' is not a GPU architecture" in errors[0], err
    assert not (tmp_path / "lib").exists()


# --------------------------------------------------------------------------- builds of the shipped model
def test_build_sm89_fp32(shapes_onnx, plugin_lib, out, capsys, monkeypatch):
    """Without --plugins the builder finds the library where mrcnn-build-plugins puts it."""
    from mrcnn_trt.engine import plugin_library
    from mrcnn_trt.fileio import sha256_file

    monkeypatch.delenv("MRCNN_TRT_PLUGINS", raising=False)
    monkeypatch.setattr(plugin_library, "default_dir", lambda family: os.path.dirname(plugin_lib))
    plan = out / "shapes_sm89.plan"
    rc, err = cli([shapes_onnx, "--arch", "sm_89", "-o", plan, "--timing-cache", out / "timing.cache"], capsys)
    assert rc == 0, err
    assert "note: --timing-cache ignored: TensorRT for RTX has no timing cache" in err
    assert err[-1].startswith(f"wrote {plan} (fp32, sm_89, TensorRT for RTX {rtx_version()}, ")
    side = read_json(str(plan) + ".json")
    assert (side["family"], side["family_version"], side["targets"], side["arch"]) == \
        ("rtx", rtx_version(), ["sm_89"], "sm_89")
    assert side["tensorrt"] is None and side["format"] == "mrcnn-trt-plan/1"
    assert side["precision"] == {"label": "fp32", "source": "graph", "fp16": False, "int8": None, "calibrator": None}
    assert side["plan_bytes"] == os.path.getsize(plan) > 1_000_000
    assert side["plan_sha256"] == sha256_file(plan)
    assert side["plugin_library"] == plugin_lib and side["plugin_info"]["family"] == "rtx"
    assert side["onnx_sha256"] == side["built_graph_sha256"] == sha256_file(shapes_onnx)
    assert (side["batch"], side["dynamic_batch"], side["batch_range"]) == (1, False, None)
    assert side["num_classes"] == 4 and side["image_size"] == 256
    assert side["timing_cache"] is None
    assert files(out) == ["shapes_sm89.plan", "shapes_sm89.plan.json"]


def test_runner_stops_at_the_gpu_check(shapes_onnx, plugin_lib, out, capsys):
    """The runner reads an RTX plan's sidecar, imports TensorRT for RTX and checks
    the GPU; deserializing needs a GPU of the plan's targets."""
    from mrcnn_trt.engine.errors import GpuMismatch
    from mrcnn_trt.engine.gpu import visible_compute_capabilities
    from mrcnn_trt.engine.runner import TensorRTRunner

    if visible_compute_capabilities():
        pytest.skip("a GPU is visible: the runner would go on to deserialize")
    plan = out / "m.plan"
    assert cli([shapes_onnx, "--arch", "sm_86", "--plugins", plugin_lib, "-o", plan], capsys)[0] == 0
    with pytest.raises(GpuMismatch, match=r"no CUDA GPU is visible: .*m\.plan runs on sm_86"):
        TensorRTRunner(str(plan), plugins=plugin_lib)


def test_build_sm75_needs_fp16(shapes_onnx, plugin_lib, out, capsys):
    """RTX has no FP32 GEMM for Turing: FP32 fails in one line with the fix;
    --fp16 builds from an FP16 graph made with calib.fp16 (no FP16 flag in RTX)."""
    rc, err = cli([shapes_onnx, "--arch", "sm_75", "--plugins", plugin_lib, "-o", out / "a.plan"], capsys)
    assert rc == 18 and len(err) == 1, err
    assert "FP32 GEMM" in err[0] and err[0].endswith("(TensorRT for RTX has no FP32 GEMM for sm_75: add --fp16)")
    assert files(out) == []
    rc, err = cli([shapes_onnx, "--arch", "sm_75", "--fp16", "--plugins", plugin_lib, "-o", out / "b.plan"], capsys)
    assert rc == 0, err
    side = read_json(str(out / "b.plan.json"))
    assert side["targets"] == ["sm_75"]
    assert side["precision"]["label"] == "fp16" and side["precision"]["source"] == "fp16-graph-converted"
    assert side["built_graph_sha256"] != side["onnx_sha256"]
    assert side["fp16"]["float16_custom_nodes"] and side["fp16"]["io"] == "float32"
    assert files(out) == ["b.plan", "b.plan.json"]                # the FP16 graph was temporary


def test_build_three_targets_in_one_plan(shapes_onnx, plugin_lib, out, capsys):
    """--arch in any spelling of the one grammar; the sidecar records every target, and the
    time the command printed (the whole build) is the sidecar's build_seconds."""
    t0 = time.perf_counter()
    rc, err = cli([shapes_onnx, "--arch", "86,8.9,sm_120", "--plugins", plugin_lib, "-o", out / "m.plan"],
                  capsys)
    waited = time.perf_counter() - t0
    assert rc == 0, err
    side = read_json(str(out / "m.plan.json"))
    assert side["targets"] == ["sm_86", "sm_89", "sm_120"] and side["arch"] == "sm_86,sm_89,sm_120"
    assert err[-1].startswith(f"wrote {out / 'm.plan'} (fp32, sm_86,sm_89,sm_120, TensorRT for RTX ")
    assert err[-1].endswith(f" in {side['build_seconds']:.1f} s")
    assert 0 < side["builder_seconds"] <= side["build_seconds"] <= waited
    assert side["build_seconds"] >= 0.5 * waited        # the checks and the parse count, not the builder alone
    assert any("only PTX for sm_86, sm_89, sm_120" in ln for ln in err)   # our kernels: SASS sm_75 + PTX


def test_build_qdq_model(shapes_onnx, plugin_lib, calib_images, work, out, capsys):
    """A Q/DQ model from mrcnn-calibrate's code builds as INT8 (implied)."""
    from mrcnn_trt.calib.qdq import quantize_model

    qdq = str(work / "shapes.int8.onnx")
    if not os.path.isfile(qdq):
        quantize_model(shapes_onnx, qdq, calib_images, count=2, threads=2)
    rc, err = cli([qdq, "--arch", "sm_89", "--plugins", plugin_lib, "-o", out / "q.plan"], capsys)
    assert rc == 0, err
    side = read_json(str(out / "q.plan.json"))
    assert side["precision"] == {"label": "qdq-int8", "source": "graph", "fp16": False, "int8": "qdq",
                                 "calibrator": None}
    fp32 = cli([shapes_onnx, "--arch", "sm_89", "--plugins", plugin_lib, "-o", out / "f.plan"], capsys)
    assert fp32[0] == 0
    assert side["plan_bytes"] < read_json(str(out / "f.plan.json"))["plan_bytes"]   # INT8 weights are smaller
    rc, err = cli([qdq, "--arch", "sm_89", "--fp16", "--plugins", plugin_lib, "-o", out / "x.plan"], capsys)
    assert rc == 15 and len(err) == 1 and "--int8 with --fp16" in err[0]


def test_build_int8_from_calibration_images(shapes_onnx, plugin_lib, calib_images, out, capsys):
    """No calibrators in RTX: --int8 --calib-images calibrates a Q/DQ graph first."""
    rc, err = cli([shapes_onnx, "--arch", "sm_89", "--int8", "--calib-images", calib_images, "--calib-count", 2,
                   "--plugins", plugin_lib, "-o", out / "i.plan"], capsys)
    assert rc == 0, err
    side = read_json(str(out / "i.plan.json"))
    assert side["precision"]["label"] == "qdq-int8" and side["precision"]["source"] == "qdq-graph-calibrated"
    q = side["quantization"]
    assert q["calib_count"] == 2 and q["target"] == "tensorrt" and q["summary"]["QuantizeLinear"] > 10
    assert files(out) == ["i.plan", "i.plan.json"]


# --------------------------------------------------------------------------- dynamic batch
def dynamic_model(path: str, batch: int = 4) -> dict:
    """A small graph with a symbolic batch: images [N,3,8,8] -> 48 anchors'
    scores and deltas -> ProposalLayer (our plugin) -> rois [N,10,4], count [N]."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    y, x = rng.uniform(0, 48, (2, 48)).astype(np.float32)
    anchors = np.stack([y, x, y + 12, x + 12], 1).astype(np.float32)
    inits = [numpy_helper.from_array(anchors, "anchors"),
             numpy_helper.from_array(np.array([0, 48, 4], np.int64), "shape")]
    nodes = [
        helper.make_node("Reshape", ["images", "shape"], ["deltas"]),
        helper.make_node("ReduceMean", ["deltas"], ["mean"], axes=[2], keepdims=0),
        helper.make_node("Sigmoid", ["mean"], ["scores"]),
        helper.make_node("ProposalLayer", ["scores", "deltas", "anchors"], ["rois", "count"], domain="mrcnn",
                         pre_nms_topk=48, post_nms_topk=10, nms_threshold=0.7, rpn_bbox_std_dev=[0.1, 0.1, 0.2, 0.2],
                         image_size=64),
        helper.make_node("Mul", ["windows", "windows"], ["windows_sq"]),
    ]
    graph = helper.make_graph(
        nodes, "dynamic_batch",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, 8, 8]),
         helper.make_tensor_value_info("windows", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("rois", TensorProto.FLOAT, ["N", 10, 4]),
         helper.make_tensor_value_info("count", TensorProto.INT32, ["N"]),
         helper.make_tensor_value_info("windows_sq", TensorProto.FLOAT, ["N", 4])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("mrcnn", 1)])
    model.ir_version = 8
    onnx.save(model, path)
    return write_sidecar(path, {"format": "mrcnn-trt-onnx/1", "flavor": "trt", "image_size": 64, "batch": batch,
                                "dynamic_batch": True, "num_classes": 2, "op_versions": {"mrcnn": 1}})


def test_dynamic_batch_profile(plugin_lib, tmp_path, capsys):
    onnx_path = str(tmp_path / "dyn.onnx")
    dynamic_model(onnx_path, batch=4)
    out = tmp_path / "out"
    rc, err = cli([onnx_path, "--arch", "sm_89", "--batch", 2, "--plugins", plugin_lib, "-o", out / "d.plan"], capsys)
    assert rc == 0, err
    side = read_json(str(out / "d.plan.json"))
    assert (side["dynamic_batch"], side["batch_range"], side["batch"]) == (True, [1, 2, 4], 4)
    rc, err = cli([onnx_path, "--arch", "sm_89", "--plugins", plugin_lib, "-o", out / "e.plan"], capsys)
    assert rc == 0 and read_json(str(out / "e.plan.json"))["batch_range"] == [1, 4, 4]
    rc, err = cli([onnx_path, "--arch", "sm_89", "--batch", 5, "--plugins", plugin_lib, "-o", out / "f.plan"], capsys)
    assert rc == 2 and len(err) == 1 and "--batch 5 exceeds the largest batch" in err[0]
    assert files(out) == ["d.plan", "d.plan.json", "e.plan", "e.plan.json"]


def test_fixed_batch_keeps_its_batch(shapes_onnx, plugin_lib, out, capsys):
    rc, err = cli([shapes_onnx, "--arch", "sm_89", "--batch", 2, "--plugins", plugin_lib, "-o", out / "x.plan"], capsys)
    assert rc == 2 and len(err) == 1 and "exported with batch 1" in err[0]
    assert files(out) == []


# --------------------------------------------------------------------------- the parser reaches our creators
@pytest.mark.parametrize("value,message", [
    (7, "DetectionLayer getOutputShapes: DetectionLayer: input probs must be [N,R,7] (num_classes = 7), got [1,"),
    (1, "DetectionLayer createPlugin: DetectionLayer.num_classes = 1 is out of range [2, 4096]"),
])
def test_wrong_attribute_fails_with_our_message(shapes_onnx, plugin_lib, tmp_path, capsys, value, message):
    import onnx

    m = onnx.load(shapes_onnx)
    node = next(n for n in m.graph.node if n.op_type == "DetectionLayer")
    next(a for a in node.attribute if a.name == "num_classes").i = value
    bad = str(tmp_path / "bad.onnx")
    onnx.save(m, bad)
    write_sidecar(bad, read_json(shapes_onnx + ".json"))
    before = files(tmp_path)
    rc, err = cli([bad, "--arch", "sm_89", "--plugins", plugin_lib], capsys)
    assert rc == 18 and len(err) == 1, err
    assert err[0].startswith(f"error: TensorRT for RTX {rtx_version()} could not parse {bad}: {message}")
    assert f"(node {node.name})" in err[0]
    assert files(tmp_path) == before


# --------------------------------------------------------------------------- NonMaxSuppression
def nms_model(path: str):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(np.array([4], np.int64), "max"),
             numpy_helper.from_array(np.array([0.5], np.float32), "iou")]
    graph = helper.make_graph(
        [helper.make_node("NonMaxSuppression", ["boxes", "scores", "max", "iou"], ["selected"])], "nms",
        [helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, 8, 4]),
         helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 1, 8])],
        [helper.make_tensor_value_info("selected", TensorProto.INT64, [None, 3])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return model


def test_rtx_has_no_nonmaxsuppression(tmp_path):
    """The fact behind the refusal below: RTX parses ONNX NMS but cannot build it
    (NVIDIA/TensorRT-RTX#5). If a release adds it, this fails: revisit Family.has_nms."""
    import tensorrt_rtx_bindings as trt

    model = nms_model(str(tmp_path / "nms.onnx"))
    logger = trt.Logger(trt.Logger.INTERNAL_ERROR)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    assert trt.OnnxParser(network, logger).parse(model.SerializeToString())
    config = builder.create_builder_config()
    config.num_compute_capabilities = 1
    config.set_compute_capability(trt.ComputeCapability.SM89, 0)
    assert builder.build_serialized_network(network, config) is None


def test_standard_flavor_is_refused(tmp_path):
    """A process run: exit 20, one line naming NonMaxSuppression and the fix, no file, no traceback."""
    path = str(tmp_path / "std.onnx")
    nms_model(path)
    write_sidecar(path, {"flavor": "standard", "image_size": 64, "batch": 1, "num_classes": 2})
    before = files(tmp_path)
    exe = os.path.join(os.path.dirname(sys.executable), "mrcnn-build-engine")
    cmd = [exe] if os.path.isfile(exe) else [sys.executable, "-m", "mrcnn_trt.engine.cli"]
    r = subprocess.run(cmd + [path, "--arch", "sm_89"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 20, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith("error: ")
    assert "no NonMaxSuppression implementation" in r.stderr and "mrcnn-export --flavor trt" in r.stderr
    assert files(tmp_path) == before


# --------------------------------------------------------------------------- refusals: one line, no file
def _tagged(tmp_path, tag):
    """A fake library file carrying only a build tag (checked before any load)."""
    p = tmp_path / "fake" / hashlib.sha256(tag.encode()).hexdigest()[:8] / "libmrcnn_trt_plugins.so"
    p.parent.mkdir(parents=True)
    p.write_bytes(b"\x7fELF\x00" + tag.encode() + b"\x00")
    return str(p)


@pytest.mark.parametrize("case", ["sm_90", "sm_61", "sm_100", "sm_72", "tensorrt", "int8", "int8+fp16", "calib-cache",
                                  "other-family-lib", "old-headers-lib", "no-device-code", "no-lib", "no-sidecar",
                                  "no-arch"])
def test_refusals(case, shapes_onnx, plugin_lib, tmp_path, capsys, calib_images):
    rtx = rtx_version()
    args = {"sm_90": (["--arch", "sm_90"], 11, "cannot build for sm_90 (Hopper"),
            "sm_61": (["--arch", "sm_61"], 11, "install TensorRT 8.6.1"),
            "sm_100": (["--arch", "sm_86,sm_100"], 11, "cannot build for sm_100 (Blackwell"),
            "sm_72": (["--arch", "sm_72"], 11, "cannot build for sm_72 (Volta (Jetson Xavier); it targets"),
            "tensorrt": (["--arch", "sm_89", "--family", "tensorrt"], 10, "TensorRT is not installed"),
            "int8": (["--arch", "sm_89", "--int8"], 15, "no INT8 calibrators (explicit quantization only)"),
            "int8+fp16": (["--arch", "sm_89", "--int8", "--fp16", "--calib-images", calib_images], 15,
                          "--int8 with --fp16"),
            "calib-cache": (["--arch", "sm_89", "--int8", "--calib-images", calib_images, "--calib-cache",
                             str(tmp_path / "c")], 15, "drop --calib-cache"),
            "other-family-lib": (["--arch", "sm_89", "--plugins", _tagged(
                tmp_path, "mrcnn_trt_plugins_build: family=tensorrt family_version=10.13.3 tensorrt_headers=10.13.3 "
                          "cuda_archs=sass:89 ptx:89;")], 21, f"built for TensorRT 10.13.3 but TensorRT for RTX {rtx}"),
            "old-headers-lib": (["--arch", "sm_89", "--plugins", _tagged(
                tmp_path, f"mrcnn_trt_plugins_build: family=rtx family_version={rtx} tensorrt_headers=10.13.3 "
                          f"cuda_archs=sass:89 ptx:89;")], 21, "compiled with TensorRT 10.13.3 headers"),
            "no-device-code": (["--arch", "sm_89", "--plugins", _tagged(
                tmp_path, f"mrcnn_trt_plugins_build: family=rtx family_version={rtx} tensorrt_headers=11.1.0 "
                          f"cuda_archs=sass:120 ptx:120;")], 13, "no device code for sm_89 (SASS sm_120; PTX compute_120)"),
            "no-lib": (["--arch", "sm_89", "--plugins", str(tmp_path / "none.so")], 17, "plugin library not found"),
            "no-sidecar": (["--arch", "sm_89"], 14, "shapes_copy.onnx.json not found"),
            "no-arch": ([], 12, "no GPU 0 visible to take the architecture from: pass --arch"),
            }[case]
    if case == "no-arch":
        from mrcnn_trt.engine.gpu import visible_compute_capabilities

        if visible_compute_capabilities():
            pytest.skip("a GPU is visible: --arch defaults to it")
    argv, code, text = args
    onnx_path = shapes_onnx
    if case == "no-sidecar":
        onnx_path = str(tmp_path / "shapes_copy.onnx")
        shutil.copyfile(shapes_onnx, onnx_path)
    out = tmp_path / "out"
    out.mkdir()
    if "--plugins" not in argv:
        argv = argv + ["--plugins", plugin_lib]
    rc, err = cli([onnx_path, *argv, "-o", out / "m.plan"], capsys)
    assert (rc, len(err)) == (code, 1), err
    assert err[0].startswith("error: ") and text in err[0], err[0]
    assert files(out) == []


# --------------------------------------------------------------------------- R-101, COCO layout, 1024 px
@pytest.mark.slow
def test_r101_coco_builds_for_sm86(plugin_lib, tmp_path, capsys):
    """The full-size model (R-101 + FPN, 81 classes, 1024 px, random weights):
    the parser takes every node, the plan builds for sm_86."""
    import torch

    from mrcnn_trt.config import preset
    from mrcnn_trt.export.exporter import export_onnx
    from mrcnn_trt.model.loading import build_model

    torch.manual_seed(0)
    torch.set_num_threads(2)
    model = build_model(preset("coco")).eval()
    onnx_path = str(tmp_path / "r101.onnx")
    export_onnx(model, onnx_path, batch=1, flavor="trt")
    del model
    rc, err = cli([onnx_path, "--arch", "sm_86", "--plugins", plugin_lib, "-o", tmp_path / "r101.plan"], capsys)
    assert rc == 0, err
    side = read_json(str(tmp_path / "r101.plan.json"))
    assert (side["targets"], side["num_classes"], side["image_size"]) == (["sm_86"], 81, 1024)
    assert side["plan_bytes"] > 150_000_000              # the R-101 weights (FP32) are in the plan
