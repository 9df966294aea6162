"""mrcnn-triton repo: the written configs against Triton's own config schema, the ensemble
wiring, and every refusal of inconsistent inputs (no server here: see test_triton_server.py).

ONNX models are tiny generated graphs with the export's signature (inputs images, windows;
outputs detections, count, masks, zeros of the right shapes) and sidecars in the exporter's
format: the writer opens every ONNX model in ONNX Runtime (load check) and compares its
signature with the configs. Plans are stand-ins (random bytes): without TensorRT the writer
checks their sidecars and hashes only.
"""
import json
import os

import pytest

from mrcnn_trt.config import preset
from mrcnn_trt.engine.sidecars import PLAN_FORMAT
from mrcnn_trt.fileio import sha256_file
from mrcnn_trt.serve.cli import main
from mrcnn_trt.serve.repository import RepoOptions, RepositoryError, write_repository

model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2",
                                       reason="tritonclient is not installed (pip install -e '.[serve]')")
from google.protobuf import text_format  # noqa: E402  (installed with tritonclient)

CFG = preset("shapes")


def tiny_graph(batch=1, dynamic=False, *, image_size=None, max_instances=None, mask_shape=None, count_type=None,
               input_names=("images", "windows"), opset=17):
    """An onnx ModelProto with the signature of a mrcnn-export model whose outputs are zeros
    (their batch follows the input's, so a dynamic batch works)."""
    from onnx import TensorProto, helper

    s = image_size or CFG.IMAGE_MAX_DIM
    d = max_instances or CFG.DETECTION_MAX_INSTANCES
    mh, mw = mask_shape or CFG.MASK_SHAPE
    n = "N" if dynamic else batch
    count_type = count_type or TensorProto.INT32
    const = lambda name, values, dtype=TensorProto.INT64: helper.make_node(  # noqa: E731
        "Constant", [], [name], value=helper.make_tensor(name, dtype, [len(values)], values))
    nodes = [helper.make_node("Shape", [input_names[0]], ["shape"]),
             helper.make_node("Slice", ["shape", "zero", "one"], ["n"]),
             const("zero", [0]), const("one", [1]), const("det_rest", [d, 6]), const("mask_rest", [d, mh, mw]),
             const("f0", [0.0], TensorProto.FLOAT), const("c0", [0], count_type),
             helper.make_node("Concat", ["n", "det_rest"], ["det_shape"], axis=0),
             helper.make_node("Concat", ["n", "mask_rest"], ["mask_shape"], axis=0),
             helper.make_node("Expand", ["f0", "det_shape"], ["detections"]),
             helper.make_node("Expand", ["f0", "mask_shape"], ["masks"]),
             helper.make_node("Expand", ["c0", "n"], ["count"])]
    graph = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info(input_names[0], TensorProto.FLOAT, [n, 3, s, s]),
         helper.make_tensor_value_info(input_names[1], TensorProto.FLOAT, [n, 4])],
        [helper.make_tensor_value_info("detections", TensorProto.FLOAT, [n, d, 6]),
         helper.make_tensor_value_info("count", count_type, [n]),
         helper.make_tensor_value_info("masks", TensorProto.FLOAT, [n, d, mh, mw])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


def write_with_sidecar(folder, name, data, batch=1, dynamic=False, flavor="trt", **extra):
    """Write model bytes and a matching sidecar in the exporter's format; returns the path."""
    path = os.path.join(folder, name)
    with open(path, "wb") as f:
        f.write(data)
    side = {"format": "mrcnn-trt-onnx/1", "flavor": flavor, "onnx_sha256": sha256_file(path), "batch": batch,
            "image_size": CFG.IMAGE_MAX_DIM, "num_classes": CFG.NUM_CLASSES, "class_names": list(CFG.CLASS_NAMES),
            "config": CFG.to_dict(), **extra}
    if dynamic:
        side["dynamic_batch"] = True
    with open(path + ".json", "w") as f:
        json.dump(side, f)
    return path


def fake_onnx(folder, name="m.onnx", batch=1, dynamic=False, flavor="trt", **extra):
    data = tiny_graph(batch, dynamic).SerializeToString()
    return write_with_sidecar(folder, name, data, batch=batch, dynamic=dynamic, flavor=flavor, **extra)


def fake_plan(folder, name="m.plan", tensorrt="10.4.0", arch="sm_86", plugin=None, **extra):
    path = os.path.join(folder, name)
    with open(path, "wb") as f:
        f.write(os.urandom(512))
    side = {"format": PLAN_FORMAT, "plan_sha256": sha256_file(path), "tensorrt": tensorrt, "arch": arch,
            "flavor": "trt", "batch": 1, "plugin_library": plugin, "plugin_sha256": sha256_file(plugin) if plugin
            else None, "image_size": CFG.IMAGE_MAX_DIM, "config": CFG.to_dict(), **extra}
    with open(path + ".json", "w") as f:
        json.dump(side, f)
    return path


@pytest.fixture
def plugin(tmp_path):
    p = tmp_path / "libmrcnn_trt_plugins.so"
    p.write_bytes(b"\x7fELF stand-in for the TensorRT plugin library")
    return str(p)


def parse_repo(repo):
    """{model name: ModelConfig} parsed with Triton's own protobuf schema (unknown fields fail)."""
    out = {}
    for name in sorted(os.listdir(repo)):
        with open(os.path.join(repo, name, "config.pbtxt")) as f:
            out[name] = text_format.Parse(f.read(), model_config_pb2.ModelConfig())
        assert out[name].name == name
        assert os.path.isdir(os.path.join(repo, name, "1"))
    return out


def check_ensemble(configs, ensemble="mrcnn"):
    """What Triton checks when it loads an ensemble: every step's model exists and has the mapped
    tensors, every input is produced earlier, types and shapes agree, batch sizes fit."""
    ens = configs[ensemble]
    tensors = {t.name: (t.data_type, list(t.dims)) for t in ens.input}
    for step in ens.ensemble_scheduling.step:
        m = configs[step.model_name]
        assert m.max_batch_size >= ens.max_batch_size
        ins = {t.name: (t.data_type, list(t.dims)) for t in m.input}
        outs = {t.name: (t.data_type, list(t.dims)) for t in m.output}
        assert set(step.input_map) == set(ins), step.model_name
        for key, value in step.input_map.items():
            assert tensors[value] == ins[key], (step.model_name, key)
        for key, value in step.output_map.items():
            tensors[value] = outs[key]
    for t in ens.output:
        assert tensors[t.name] == (t.data_type, list(t.dims))


def test_python_form_config_and_files(tmp_path):
    onnx = fake_onnx(tmp_path)
    repo = str(tmp_path / "repo")
    summary = write_repository(onnx, repo, RepoOptions(instances=3, max_batch=4, queue_delay_us=500, threads=1))
    cfgs = parse_repo(repo)
    assert sorted(cfgs) == ["mrcnn", "mrcnn_network", "mrcnn_postprocess", "mrcnn_preprocess"]
    check_ensemble(cfgs)
    assert cfgs["mrcnn"].platform == "ensemble" and cfgs["mrcnn"].max_batch_size == 4
    for name in ("mrcnn_preprocess", "mrcnn_network", "mrcnn_postprocess"):
        c = cfgs[name]
        assert c.backend == "python" and c.max_batch_size == 4
        assert c.instance_group[0].count == 3 and c.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_CPU
        assert c.dynamic_batching.max_queue_delay_microseconds == 500
        text = (tmp_path / "repo" / name / "1" / "model.py").read_text()
        compile(text, "model.py", "exec")
        assert "site.addsitedir" in text and "TritonPythonModel" in text
    net = cfgs["mrcnn_network"]
    assert net.parameters["threads"].string_value == "1"
    assert [list(t.dims) for t in net.input] == [[3, 256, 256], [4]]
    assert [list(t.dims) for t in net.output] == [[CFG.DETECTION_MAX_INSTANCES, 6], [1],
                                                  [CFG.DETECTION_MAX_INSTANCES, 28, 28]]
    assert cfgs["mrcnn_preprocess"].input[0].allow_ragged_batch
    assert cfgs["mrcnn_preprocess"].parameters["max_pixels"].string_value == "40000000"
    # the network runs the copied ONNX with its sidecar; pre/post read the config
    assert sha256_file(str(tmp_path / "repo/mrcnn_network/1/model.onnx")) == sha256_file(onnx)
    info = json.loads((tmp_path / "repo/mrcnn_postprocess/1/mrcnn_model.json").read_text())
    assert info["class_names"] == list(CFG.CLASS_NAMES) and info["config"] == json.loads(json.dumps(CFG.to_dict()))
    assert summary["server_flags"] == [] and summary["backend"] == "python"
    assert not [f for f in os.listdir(repo) if f.startswith(".")]   # no temporary folders left


def test_onnxruntime_form_names_the_custom_op_library_as_the_server_sees_it(tmp_path):
    onnx = fake_onnx(tmp_path, batch=4, dynamic=True)
    repo = str(tmp_path / "repo")
    write_repository(onnx, repo, RepoOptions(backend="onnxruntime", mount="/models", name="det"))
    cfgs = parse_repo(repo)
    check_ensemble(cfgs, "det")
    net = cfgs["det_network"]
    assert net.platform == "onnxruntime_onnx" and net.max_batch_size == 4   # the export's maximum batch
    assert list(net.model_operations.op_library_filename) == ["/models/det_network/1/libmrcnn_ort_ops.so"]
    assert os.path.isfile(os.path.join(repo, "det_network/1/libmrcnn_ort_ops.so"))
    count = [t for t in net.output if t.name == "count"][0]
    assert count.HasField("reshape") and list(count.reshape.shape) == []   # graph [N] <-> Triton [N, 1]
    # a standard-flavor model needs no op library
    std = fake_onnx(tmp_path, "s.onnx", flavor="standard")
    write_repository(std, repo, RepoOptions(backend="onnxruntime", name="std"))
    assert not parse_repo(repo)["std_network"].HasField("model_operations")


def test_tensorrt_form_with_plugins_and_new_sidecar_fields(tmp_path, plugin):
    plan = fake_plan(tmp_path, plugin=plugin, family="tensorrt", targets=["sm_86", "sm_89"], batch=8,
                     dynamic_batch=True)
    repo = str(tmp_path / "repo")
    summary = write_repository(plan, repo, RepoOptions(arch="sm_89", tensorrt="10.4.0.26", mount="/models",
                                                       instances=2, max_batch=2))
    cfgs = parse_repo(repo)
    check_ensemble(cfgs)
    net = cfgs["mrcnn_network"]
    assert net.platform == "tensorrt_plan" and net.max_batch_size == 2
    assert net.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_GPU
    assert net.instance_group[0].count == 2
    folder = tmp_path / "repo/mrcnn_network/1"
    assert sha256_file(str(folder / "model.plan")) == sha256_file(plan)
    assert sha256_file(str(folder / "libmrcnn_trt_plugins.so")) == sha256_file(plugin)
    assert summary["server_flags"] == ["--backend-config=tensorrt,plugins=/models/mrcnn_network/1/"
                                       "libmrcnn_trt_plugins.so"]
    assert summary["target"] == ["sm_89", "10.4.0.26"]
    # an old sidecar (arch only, no family/targets) is accepted too
    old = fake_plan(tmp_path, "old.plan", plugin=plugin)
    write_repository(old, repo, RepoOptions(arch="sm_86", tensorrt="10.4.0", name="old"))
    assert parse_repo(repo)["old_network"].max_batch_size == 1


def test_force_replaces_existing_models_completely(tmp_path):
    repo = str(tmp_path / "repo")
    write_repository(fake_onnx(tmp_path, "a.onnx"), repo, RepoOptions(max_batch=2))
    (tmp_path / "repo/mrcnn_network/1/stale.txt").write_text("old")
    write_repository(fake_onnx(tmp_path, "b.onnx"), repo, RepoOptions(max_batch=3, force=True))
    cfgs = parse_repo(repo)
    assert {c.max_batch_size for c in cfgs.values()} == {3}
    assert not (tmp_path / "repo/mrcnn_network/1/stale.txt").exists()
    assert sha256_file(str(tmp_path / "repo/mrcnn_network/1/model.onnx")) == sha256_file(str(tmp_path / "b.onnx"))


def _refusals(tmp, plugin):
    """(description, model, options, expected words) - each must be refused before anything is written."""
    onnx = fake_onnx(tmp)
    changed = fake_onnx(tmp, "changed.onnx")
    with open(changed, "ab") as f:
        f.write(b"x")
    nosidecar = os.path.join(tmp, "bare.onnx")
    open(nosidecar, "wb").write(b"onnx")
    dyn4 = fake_onnx(tmp, "dyn4.onnx", batch=4, dynamic=True)
    fixed2 = fake_onnx(tmp, "fixed2.onnx", batch=2)
    plan = fake_plan(tmp, plugin=plugin)
    rtx = fake_plan(tmp, "rtx.plan", plugin=plugin, family="rtx", targets=["sm_86"])
    other_lib = os.path.join(tmp, "other.so")
    open(other_lib, "wb").write(b"another build")
    return [
        ("missing sidecar", nosidecar, {}, "not found: export the model with mrcnn-export"),
        ("edited model", changed, {}, "does not match its sidecar"),
        ("unknown file type", plugin, {}, "expected an .onnx"),
        ("batch above the export's maximum", dyn4, {"max_batch": 8}, "exceeds the maximum batch"),
        ("fixed batch 2 in Triton's backend", fixed2, {"backend": "onnxruntime"}, "fixed batch of 2"),
        ("batch > 1 on a batch-1 export", onnx, {"backend": "onnxruntime", "max_batch": 4}, "fixed batch of 1"),
        ("onnx as tensorrt", onnx, {"backend": "tensorrt"}, "needs a plan"),
        ("plan as python", plan, {"backend": "python"}, "only --backend tensorrt"),
        ("plan for another GPU", plan, {"arch": "sm_89", "tensorrt": "10.4.0"}, "built for sm_86 but the server's GPU is sm_89"),
        ("plan of another TensorRT", plan, {"arch": "sm_86", "tensorrt": "10.5.0"}, "built with TensorRT 10.4.0"),
        ("serving machine unknown", plan, {}, "of the serving machine"),
        ("TensorRT for RTX plan", rtx, {"arch": "sm_86", "tensorrt": "10.4.0"}, "TensorRT for RTX"),
        ("other plugin library", plan, {"arch": "sm_86", "tensorrt": "10.4.0", "plugins": other_lib},
         "not the plugin library the plan was built with"),
    ]


def test_inconsistent_inputs_are_refused_with_one_line(tmp_path, plugin):
    repo = tmp_path / "repo"
    for what, model, opts, words in _refusals(str(tmp_path), plugin):
        with pytest.raises(RepositoryError) as e:
            write_repository(model, str(repo), RepoOptions(**opts))
        msg = str(e.value)
        assert words in msg and "\n" not in msg, (what, msg)
        assert not repo.exists() or not os.listdir(repo), what


def test_bad_options_are_refused(tmp_path):
    for kw, words in [({"name": "a/b"}, "model name"), ({"mount": "models"}, "absolute path"),
                      ({"instances": 0}, "instances must be >= 1"), ({"backend": "tf"}, "backend 'tf'")]:
        with pytest.raises(RepositoryError, match=words):
            RepoOptions(**kw)
    repo = str(tmp_path / "repo")
    onnx = fake_onnx(tmp_path)
    write_repository(onnx, repo)
    with pytest.raises(RepositoryError, match="pass --force"):
        write_repository(onnx, repo)


def test_cli_repo_writes_and_errors_in_one_line(tmp_path, capsys):
    onnx = fake_onnx(tmp_path)
    assert main(["repo", onnx, "-o", str(tmp_path / "r"), "--instances", "2"]) == 0
    out = capsys.readouterr().out
    assert "ensemble mrcnn" in out and "mrcnn-triton serve" in out
    assert main(["repo", onnx, "-o", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "--force" in err[0]
    with pytest.raises(SystemExit) as e:   # parser-level validation
        main(["repo", onnx, "-o", str(tmp_path / "r2"), "--instances", "0"])
    assert e.value.code == 2


def _invalid_models(tmp):
    """(description, path, expected words): files that are not a servable mrcnn-export model although
    their sidecar describes them (sha256 matches). Generated here, a family per kind of damage."""
    import io
    import pickle
    import zipfile

    from onnx import TensorProto, helper

    good = tiny_graph().SerializeToString()
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as z:
        z.writestr("model.onnx", good)

    def graph_with(node, domain=None):
        m = tiny_graph()
        m.graph.node.append(node)
        m.graph.output.append(helper.make_tensor_value_info(node.output[0], TensorProto.FLOAT, None))
        if domain:
            m.opset_import.append(helper.make_opsetid(domain, 1))
        return m.SerializeToString()

    def external(location):
        m = tiny_graph()
        t = helper.make_tensor("w", TensorProto.FLOAT, [4], [0.0] * 4)
        t.ClearField("float_data")
        t.data_location = TensorProto.EXTERNAL
        t.external_data.add(key="location", value=location)
        t.external_data.add(key="length", value="16")
        m.graph.initializer.append(t)
        return m.SerializeToString()

    open(os.path.join(tmp, "weights.bin"), "wb").write(b"\0" * 16)
    no_nodes = tiny_graph()
    del no_nodes.graph.node[:]
    cases = [
        ("empty file", b"", "not an ONNX model|holds no ONNX graph"),
        ("random bytes", os.urandom(4096), "not an ONNX model|holds no ONNX graph|ONNX Runtime cannot load"),
        ("truncated", good[: len(good) // 2], "not an ONNX model|ONNX Runtime cannot load"),
        ("zip named .onnx", zipped.getvalue(), "not an ONNX model|holds no ONNX graph"),
        ("pickle named .onnx", pickle.dumps({"state_dict": [1.0, 2.0]}), "not an ONNX model|holds no ONNX graph"),
        ("JSON text", b'{"graph": "none"}', "not an ONNX model|holds no ONNX graph"),
        ("graph without nodes", no_nodes.SerializeToString(), "holds no ONNX graph"),
        ("unknown standard op", graph_with(helper.make_node("NoSuchOp", ["windows"], ["x"])), "ONNX Runtime cannot load"),
        ("unknown domain", graph_with(helper.make_node("Op", ["windows"], ["x"], domain="evil.ops"), "evil.ops"),
         "ONNX Runtime cannot load"),
        ("opset from the future", tiny_graph(opset=99).SerializeToString(), "ONNX Runtime cannot load"),
        ("external data outside the folder", external("../../../../etc/passwd"), "external data"),
        ("external data beside the model", external("weights.bin"), "external data"),
        ("input names", tiny_graph(input_names=("image", "window")).SerializeToString(), "inputs \\['image', 'window'\\]"),
        ("image size", tiny_graph(image_size=128).SerializeToString(), "images has shape \\[1, 3, 128, 128\\]"),
        ("detection slots", tiny_graph(max_instances=7).SerializeToString(), "detections has shape \\[1, 7, 6\\]"),
        ("mask size", tiny_graph(mask_shape=(14, 14)).SerializeToString(), "masks has shape"),
        ("count type", tiny_graph(count_type=TensorProto.FLOAT).SerializeToString(), "count is tensor\\(float\\)"),
        ("batch", tiny_graph(batch=2).SerializeToString(), "the graph's batch is 2, the sidecar says 1"),
        ("dynamic graph, fixed sidecar", tiny_graph(dynamic=True).SerializeToString(), "batch is 'N', the sidecar says 1"),
    ]
    return [(what, write_with_sidecar(tmp, f"bad{i}.onnx", data), words) for i, (what, data, words) in enumerate(cases)]


def test_models_that_do_not_load_are_refused_before_anything_is_written(tmp_path, capfd):
    """The load check: every member of the family is refused in one line naming the problem,
    in the API and in the CLI (exit 2, no traceback), and the repository stays empty."""
    import re

    from onnx import TensorProto

    repo = tmp_path / "repo"
    for what, path, words in _invalid_models(str(tmp_path)):
        with pytest.raises(RepositoryError) as e:
            write_repository(path, str(repo))
        msg = str(e.value)
        assert re.search(words, msg) and "\n" not in msg, (what, msg)
        assert not repo.exists() or not os.listdir(repo), what
        capfd.readouterr()
        assert main(["repo", path, "-o", str(repo)]) == 2, what
        err = capfd.readouterr().err
        assert "Traceback" not in err and err.strip().splitlines() == [f"error: {msg}"], (what, err)
    # the same graphs in a dynamic-batch export and Triton's onnxruntime form: the count must be int32 there
    dyn = write_with_sidecar(str(tmp_path), "dyn.onnx", tiny_graph(4, dynamic=True).SerializeToString(), batch=4,
                             dynamic=True)
    write_repository(dyn, str(repo), RepoOptions(backend="onnxruntime", name="dyn"))
    c64 = write_with_sidecar(str(tmp_path), "c64.onnx", tiny_graph(count_type=TensorProto.INT64).SerializeToString())
    write_repository(c64, str(repo), RepoOptions(name="c64"))    # the Python form casts the count
    with pytest.raises(RepositoryError, match="count is tensor\\(int64\\), expected tensor\\(int32\\)"):
        write_repository(c64, str(repo), RepoOptions(name="c64ort", backend="onnxruntime"))
