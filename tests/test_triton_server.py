"""The shipped model served by a real tritonserver (nvidia-pytriton's standalone server, Python
backend) on free loopback ports: one server for the module, restarted by the last test.

References: the project's own pipeline in this process (ONNX Runtime + custom ops, molding,
unmolding, result_to_json) must equal the server's JSON exactly; mrcnn-demo (PyTorch) must agree
up to float noise in the scores.
"""
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from conftest import model_repository, pipeline_documents, write_scenes

from mrcnn_trt.errors import UserError

pytest.importorskip("tritonclient.http", reason="tritonclient is not installed (pip install -e '.[serve]')")
from mrcnn_trt.serve import server as triton_server  # noqa: E402

try:
    triton_server.find_server()
except UserError as e:   # the wheel could not be installed (offline setup)
    pytest.skip(f"no tritonserver: {e}", allow_module_level=True)

from mrcnn_trt.serve.client import InferenceError, TritonClient, encode_batch, model_statistics  # noqa: E402


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("triton")


@pytest.fixture(scope="module")
def onnx_model(shipped_onnx):
    return shipped_onnx   # the shipped model exported once per session (conftest)


@pytest.fixture(scope="module")
def images(workdir):
    """Synthetic shapes scenes as PNG and JPEG, two sizes."""
    return write_scenes(workdir, 11, [(320, 240, "png"), (320, 240, "jpg"), (480, 300, "png"), (256, 384, "jpg")])


@pytest.fixture(scope="module")
def expected(onnx_model, images):
    """The project's pipeline in this process: JSON document per image."""
    docs = pipeline_documents(onnx_model, images)
    assert sum(len(d["detections"]) for d in docs.values()) >= 8   # scenes with objects, not a vacuous check
    return docs


@pytest.fixture(scope="module")
def repo(onnx_model, workdir):
    return model_repository(onnx_model, workdir, max_batch=8)


@pytest.fixture(scope="module")
def server(repo, workdir):
    srv = triton_server.TritonServer(repo, http_port=0, grpc_port=0, metrics_port=0,
                                     log_file=str(workdir / "tritonserver.log"))
    srv.start(timeout=180)
    yield srv
    srv.stop()


def same_as_demo(doc, demo):
    """Same detections as mrcnn-demo (PyTorch): classes, boxes, masks; scores up to float noise."""
    from pycocotools import mask as mask_util

    assert (doc["height"], doc["width"]) == (demo["height"], demo["width"])
    assert len(doc["detections"]) == len(demo["detections"])
    for a, b in zip(doc["detections"], demo["detections"]):
        assert (a["class_id"], a["class_name"], a["box_yxyx"]) == (b["class_id"], b["class_name"], b["box_yxyx"])
        assert abs(a["score"] - b["score"]) <= 1e-4
        ra, rb = [dict(r["mask_rle"], counts=r["mask_rle"]["counts"].encode()) for r in (a, b)]
        assert mask_util.iou([ra], [rb], [0])[0, 0] >= 0.98


def test_http_and_grpc_results_equal_the_pipeline_and_mrcnn_demo(server, images, expected, workdir):
    from mrcnn_trt.apps.demo import main as demo_main

    with TritonClient(f"http://{server.http_url}") as http, TritonClient(f"grpc://{server.grpc_url}") as grpc:
        for f in images:
            via_http, via_grpc = http.detect_file(f), grpc.detect_file(f)
            assert via_http == expected[f]
            assert via_grpc == expected[f]
    out = workdir / "demo"
    assert demo_main([*images, "--out", str(out)]) == 0
    for f in images:
        demo = json.loads((out / (os.path.splitext(os.path.basename(f))[0] + ".json")).read_text())
        same_as_demo(expected[f], demo)
    mem = server.memory_mb()
    assert mem["processes"] >= 4 and mem["total_mb"] > mem["server_mb"] > 0   # server + 3 Python stubs


def test_32_concurrent_requests_are_all_correct_and_dynamically_batched(server, images, expected):
    with TritonClient(server.http_url) as c:
        before = {m: model_statistics(c.statistics(m)) for m in ("mrcnn", "mrcnn_network")}
    start = threading.Barrier(32)

    def one(i):
        url = f"grpc://{server.grpc_url}" if i % 2 else f"http://{server.http_url}"
        with TritonClient(url) as c:
            start.wait()
            f = images[i % len(images)]
            return f, c.detect_file(f)

    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(one, range(32)))
    assert len(results) == 32
    for f, doc in results:
        assert doc == expected[f]
    with TritonClient(server.http_url) as c:
        after = {m: model_statistics(c.statistics(m)) for m in ("mrcnn", "mrcnn_network")}
    assert after["mrcnn"]["inference_count"] - before["mrcnn"]["inference_count"] == 32
    net_images = after["mrcnn_network"]["inference_count"] - before["mrcnn_network"]["inference_count"]
    net_runs = after["mrcnn_network"]["execution_count"] - before["mrcnn_network"]["execution_count"]
    assert net_images == 32
    assert net_runs < 32, "the dynamic batcher never grouped requests"
    assert max(after["mrcnn_network"]["batch_sizes"]) > 1


def test_several_images_in_one_request(server, images, expected):
    datas = [open(f, "rb").read() for f in images]
    assert len({len(d) for d in datas}) > 1   # zero padding of the shorter files is exercised
    with TritonClient(f"grpc://{server.grpc_url}") as c:
        docs = c.detect(datas)
    for f, doc in zip(images, docs):
        assert dict(doc, image=f) == expected[f]


def png_header(width, height):
    """A valid PNG start claiming width x height (almost no data)."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def raw_http(server, body: bytes, header: dict = None):
    """POST to the ensemble's HTTP endpoint; returns (status, text)."""
    url = f"http://{server.http_url}/v2/models/mrcnn/infer"
    headers = {}
    if header is not None:
        head = json.dumps(header).encode()
        body, headers = head + body, {"Inference-Header-Content-Length": str(len(head))}
    req = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_bad_requests_get_errors_and_the_server_stays_ready(server, images, expected):
    jpeg = open(images[1], "rb").read()
    rng = np.random.default_rng(0)
    bad = {
        "random bytes": (rng.integers(0, 256, 4000, dtype=np.uint8).tobytes(), "not a readable image"),
        "truncated JPEG": (jpeg[: len(jpeg) // 2], "truncated"),
        "20000x20000 PNG header": (png_header(20000, 20000), "image too large"),
        "7000x7000 PNG header": (png_header(7000, 7000), "at most 40000000"),
    }
    with TritonClient(server.http_url) as c:
        for what, (data, words) in bad.items():
            with pytest.raises(InferenceError, match=words):
                c.detect([data])
            assert server.ready(), what
        with pytest.raises(InferenceError, match="empty image"):
            c.infer_raw(np.zeros((1, 0), np.uint8))
        with pytest.raises(InferenceError, match="FP32.*expects 'UINT8'"):
            c.infer_raw(np.zeros((1, 16), np.float32))
        with pytest.raises(InferenceError, match="unexpected inference input 'PIXELS'"):
            c.infer_raw(encode_batch([jpeg]), name="PIXELS")
    # raw HTTP: a bad image is the client's fault (400), an empty body is refused too
    status, text = raw_http(server, jpeg[:3000], {"inputs": [{"name": "IMAGE", "shape": [1, 3000], "datatype":
                                                             "UINT8", "parameters": {"binary_data_size": 3000}}]})
    assert status == 400 and "truncated" in text
    status, text = raw_http(server, b"")
    assert status >= 400 and "error" in text
    assert server.proc.poll() is None and server.ready()
    with TritonClient(f"grpc://{server.grpc_url}") as c:   # still serving correct results
        assert c.detect_file(images[0]) == expected[images[0]]


def test_infer_cli_writes_demo_style_files_and_prints_json_lines(server, images, expected, workdir, capsys):
    from mrcnn_trt.serve.cli import main

    out = workdir / "infer_out"
    assert main(["infer", f"http://{server.http_url}", *images[:2], "-o", str(out), "--batch", "2"]) == 0
    for f in images[:2]:
        assert json.loads((out / (os.path.splitext(os.path.basename(f))[0] + ".json")).read_text()) == expected[f]
    assert json.loads((out / "summary.json").read_text())["processed"] == 2
    capsys.readouterr()
    assert main(["infer", server.grpc_url, "--protocol", "grpc", images[2]]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and json.loads(lines[0]) == expected[images[2]]
    bad = workdir / "bad.png"
    bad.write_bytes(b"not an image")
    assert main(["infer", f"http://{server.http_url}", str(bad), "-o", str(workdir / "bad_out")]) == 1
    assert "not a readable image" in capsys.readouterr().err


def test_server_restarts_from_the_cli_and_serves_again(server, repo, images, expected):
    """Last test of the module: stop the fixture's server, run `mrcnn-triton serve` on the same
    ports, serve, stop it with SIGTERM."""
    http_port, grpc_port, metrics_port = server.http_port, server.grpc_port, server.metrics_port
    from mrcnn_trt.serve import shm

    assert len(shm.regions(server.shm_prefix)) == 3   # one per Python model instance, private
    assert all(os.stat(r).st_mode & 0o077 == 0 for r in shm.regions(server.shm_prefix))
    assert server.stop() == 0
    assert not server.ready()
    assert shm.regions(server.shm_prefix) == []
    cmd = [sys.executable, "-m", "mrcnn_trt.serve.cli", "serve", repo, "--http-port", str(http_port),
           "--grpc-port", str(grpc_port), "--metrics-port", str(metrics_port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180
        line = ""
        while time.monotonic() < deadline and not line.startswith("ready:"):
            line = proc.stdout.readline()
            assert line or proc.poll() is None, proc.stderr.read()
        assert line.startswith("ready:") and f"127.0.0.1:{http_port}" in line
        with TritonClient(f"grpc://127.0.0.1:{grpc_port}") as c:
            assert c.detect_file(images[3]) == expected[images[3]]
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as r:
            assert b"nv_inference_request_success" in r.read()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    assert not triton_server._port_in_use(http_port)
    assert shm.regions(f"{shm.PREFIX}{proc.pid}_") == []
