"""Calibration caches with provenance headers (mrcnn_trt.engine.calib_cache) and the
TensorRT-independent part of the calibrators (batch handling, cache use),
all without TensorRT. The calibrator body is driven with a recording stand-in
for device memory (``RecordingCuda``), not with a TensorRT stand-in."""
from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import pytest

from mrcnn_trt.engine import calib_cache as cc
from mrcnn_trt.engine.calib_cache import (BadCalibrationCache, CacheHeader, Preprocessing, StaleCalibrationCache,
                                   check_header, decode_cache, encode_cache, load_checked, read_cache, write_cache)
from mrcnn_trt.engine.calibrator import _Base, assign_inputs, raise_if_failed
from mrcnn_trt.runtime.batcher import as_pairs, pad_batch
from mrcnn_trt.errors import UserError

# A TensorRT entropy-2 cache payload looks like this (text lines, hex scales); binary bytes too.
PAYLOAD = (b"TRT-8601-EntropyCalibration2\nimages: 3c010a14\nwindows: 3c010a14\n"
           b"/backbone/conv1/Conv_output_0: 3d8c9a2b\n\x00\xff\n")


def header(**over) -> CacheHeader:
    h = CacheHeader(onnx_sha256="a" * 64, preprocessing=Preprocessing(256, (123.7, 116.8, 103.9), 1, 256),
                    batch=2, count=100, tensorrt="8.6.1.6", calibrator="entropy2", extra={"images": "/data/calib"})
    return dataclasses.replace(h, **over)


def test_round_trip_bytes_and_file(tmp_path):
    data = encode_cache(header(), PAYLOAD)
    first, rest = data.split(b"\n", 1)
    meta = json.loads(first)
    assert meta["format"] == "mrcnn-calib-cache" and meta["version"] == 1
    assert meta["onnx_sha256"] == "a" * 64 and meta["preprocessing"]["image_size"] == 256
    assert meta["tensorrt"] == "8.6.1.6" and meta["count"] == 100 and meta["batch"] == 2
    assert rest == PAYLOAD                              # TensorRT's bytes unchanged
    h, payload = decode_cache(data)
    assert payload == PAYLOAD
    assert h.onnx_sha256 == "a" * 64 and h.preprocessing == header().preprocessing
    assert h.extra == {"images": "/data/calib"} and len(h.payload_sha256) == 64

    path = tmp_path / "model.calib"
    write_cache(path, header(), PAYLOAD)
    assert os.listdir(tmp_path) == ["model.calib"]      # atomic write leaves no temporary
    h2, p2 = read_cache(path)
    assert p2 == PAYLOAD and h2 == h
    assert load_checked(path, header()) == PAYLOAD


def test_matching_header_variants_are_accepted():
    # batch, count and the TensorRT build number do not invalidate a cache
    check_header(header(), header(batch=8, count=5, tensorrt="8.6.1.2"))


@pytest.mark.parametrize("over,what", [
    ({"onnx_sha256": "b" * 64}, "ONNX model"),
    ({"preprocessing": Preprocessing(512, (123.7, 116.8, 103.9), 1, 256)}, "image size (256 vs 512)"),
    ({"preprocessing": Preprocessing(256, (0.0, 0.0, 0.0), 1, 256)}, "mean pixel"),
    ({"preprocessing": Preprocessing(256, (123.7, 116.8, 103.9), 2, 256)}, "molding version (1 vs 2)"),
    ({"preprocessing": Preprocessing(256, (123.7, 116.8, 103.9), 1, 200)}, "IMAGE_MIN_DIM (256 vs 200)"),
    ({"tensorrt": "10.4.0"}, "TensorRT (8.6.1.6 vs 10.4.0)"),
    ({"calibrator": "minmax"}, "calibrator (entropy2 vs minmax)"),
])
def test_stale_cache_is_rejected(tmp_path, over, what):
    path = tmp_path / "c.calib"
    write_cache(path, header(), PAYLOAD)
    before = path.read_bytes()
    with pytest.raises(StaleCalibrationCache) as e:
        load_checked(path, header(**over))
    msg = str(e.value)
    assert what in msg and "stale" in msg and "recalibrate" in msg
    assert "\n" not in msg
    assert e.value.exit_code == 16
    assert path.read_bytes() == before                   # never rewritten or deleted behind the user's back


def test_several_differences_in_one_line():
    with pytest.raises(StaleCalibrationCache, match=r"ONNX model .*; image size"):
        check_header(header(), header(onnx_sha256="c" * 64,
                                      preprocessing=Preprocessing(512, (123.7, 116.8, 103.9), 1, 256)))


def test_count_only_checked_on_request():
    check_header(header(count=10), header(count=500))
    with pytest.raises(StaleCalibrationCache, match="image count"):
        check_header(header(count=10), header(count=500), check_count=True)


@pytest.mark.parametrize("data,msg", [
    (PAYLOAD, "no mrcnn-calib-cache header"),                        # a raw TensorRT cache
    (b"", "no mrcnn-calib-cache header"),
    (b'{"format": "something-else"}\n' + PAYLOAD, "no mrcnn-calib-cache header"),
    (b"\xff\xfe\n" + PAYLOAD, "no mrcnn-calib-cache header"),
])
def test_foreign_files_rejected(data, msg):
    with pytest.raises(BadCalibrationCache, match=msg):
        decode_cache(data)


def test_damaged_caches_rejected():
    data = encode_cache(header(), PAYLOAD)
    with pytest.raises(BadCalibrationCache, match="checksum"):
        decode_cache(data[:-5])                               # truncated payload
    with pytest.raises(BadCalibrationCache, match="empty TensorRT payload"):
        decode_cache(data.split(b"\n", 1)[0] + b"\n")
    meta = json.loads(data.split(b"\n", 1)[0])
    meta["version"] = 2
    with pytest.raises(BadCalibrationCache, match="format version 2"):
        decode_cache(json.dumps(meta).encode() + b"\n" + PAYLOAD)
    del meta["onnx_sha256"]
    meta["version"] = 1
    with pytest.raises(BadCalibrationCache, match="damaged header"):
        decode_cache(json.dumps(meta).encode() + b"\n" + PAYLOAD)
    with pytest.raises(UserError, match="not found"):
        read_cache("/nonexistent/c.calib")
    with pytest.raises(ValueError):
        encode_cache(header(calibrator="percentile"), PAYLOAD)


def test_preprocessing_from_sidecar():
    side = {"image_size": 1024, "mean_pixel": [123.7, 116.8, 103.9], "config": {"IMAGE_MIN_DIM": 800}}
    p = Preprocessing.from_sidecar(side)
    assert p == Preprocessing(1024, (123.7, 116.8, 103.9), cc.MOLDING_VERSION, 800)
    assert Preprocessing.from_json(p.to_json()) == p
    with pytest.raises(UserError, match="lacks image_size"):
        Preprocessing.from_sidecar({"config": {}})


# ----------------------------------------------------------------------- calibrator body
class RecordingCuda:
    """Device memory stand-in: 'allocations' are numpy arrays, copies are recorded."""

    def __init__(self):
        self.mem, self.copies, self.next = {}, [], 4096

    def alloc(self, nbytes):
        self.next += 4096 + nbytes
        self.mem[self.next] = bytearray(nbytes)
        return self.next

    def free(self, ptr):
        del self.mem[ptr]

    def htod(self, ptr, host, stream):
        self.mem[ptr][:host.nbytes] = host.tobytes()
        self.copies.append((ptr, host.copy()))

    def stream(self):
        return "stream"

    def sync(self, stream):
        pass


def _calibrator(tmp_path, batches, cache_path=None, **kw):
    c = _Base()
    cuda = RecordingCuda()
    c._setup(None, batches, batch=2, image_size=8, cache_path=cache_path, expected=header(**kw), cuda=cuda,
             max_images=None)
    return c, cuda


def test_calibrator_feeds_padded_batches_and_writes_cache(tmp_path):
    rng = np.random.default_rng(0)
    b1 = rng.uniform(0, 255, (2, 3, 8, 8)).astype(np.float32)
    b2 = rng.uniform(0, 255, (1, 3, 8, 8)).astype(np.float32)
    w2 = np.array([[1, 2, 7, 8]], np.float32)
    path = str(tmp_path / "m.calib")
    c, cuda = _calibrator(tmp_path, [b1, (b2, w2)], cache_path=path)
    assert c.get_batch_size() == 2
    assert c.read_calibration_cache() is None            # no cache yet: TensorRT calibrates
    p1 = c.get_batch(["images", "windows"])
    assert len(p1) == 2 and all(isinstance(p, int) for p in p1)
    assert np.array_equal(np.frombuffer(cuda.mem[p1[0]], np.float32).reshape(2, 3, 8, 8), b1)
    assert np.array_equal(np.frombuffer(cuda.mem[p1[1]], np.float32).reshape(2, 4), [[0, 0, 8, 8]] * 2)
    p2 = c.get_batch(["windows", "images"])               # TensorRT's order is respected
    imgs = np.frombuffer(cuda.mem[p2[1]], np.float32).reshape(2, 3, 8, 8)
    assert np.array_equal(imgs[0], b2[0]) and not imgs[1].any()   # zero padded to the network batch
    assert np.array_equal(np.frombuffer(cuda.mem[p2[0]], np.float32).reshape(2, 4), [[1, 2, 7, 8], [0, 0, 8, 8]])
    assert c.get_batch(["images", "windows"]) is None     # end of data
    assert c.count == 3 and c.error is None
    c.write_calibration_cache(memoryview(PAYLOAD))
    h, payload = read_cache(path)
    assert payload == PAYLOAD and h.count == 3 and h.batch == 2 and h.tensorrt == "8.6.1.6"
    # a second calibrator for the same model reuses it without any batch
    c2, _ = _calibrator(tmp_path, None, cache_path=path)
    assert c2.read_calibration_cache() == PAYLOAD
    c.free()
    assert cuda.mem == {}


def test_calibrator_refuses_stale_cache_before_build(tmp_path):
    path = str(tmp_path / "m.calib")
    write_cache(path, header(), PAYLOAD)
    with pytest.raises(StaleCalibrationCache, match="ONNX model"):
        _calibrator(tmp_path, None, cache_path=path, onnx_sha256="f" * 64)


def test_calibrator_stores_callback_errors(tmp_path):
    c, _ = _calibrator(tmp_path, [np.zeros((3, 3, 8, 8), np.float32)])   # 3 images > network batch 2
    assert c.get_batch(["images", "windows"]) is None
    with pytest.raises(UserError, match="batch of 3 images for a network with batch 2"):
        raise_if_failed(c)
    c, _ = _calibrator(tmp_path, [np.zeros((2, 3, 9, 9), np.float32)])
    assert c.get_batch(["images", "windows"]) is None
    with pytest.raises(UserError, match=r"expected \[n,3,8,8\]"):
        raise_if_failed(c)


def test_batch_helpers():
    class B:   # like mrcnn_trt.runtime.batcher.Batch
        images = np.ones((1, 3, 4, 4), np.float32)
        windows = np.array([[0, 0, 2, 4]], np.float32)

    pairs = list(as_pairs([B(), np.zeros((2, 3, 4, 4)), (np.zeros((1, 3, 4, 4)), [[1, 1, 3, 3]])], 4))
    assert [p[0].shape[0] for p in pairs] == [1, 2, 1]
    assert pairs[1][0].dtype == np.float32 and pairs[1][1].tolist() == [[0, 0, 4, 4]] * 2
    assert pairs[2][1].tolist() == [[1, 1, 3, 3]]
    with pytest.raises(UserError, match="1 images but 2 windows"):
        list(as_pairs([(np.zeros((1, 3, 4, 4)), np.zeros((2, 4)))], 4))
    im, w = pad_batch(np.ones((1, 3, 4, 4), np.float32), np.ones((1, 4), np.float32), 3)
    assert im.shape == (3, 3, 4, 4) and not im[1:].any() and w[1:].tolist() == [[0, 0, 4, 4]] * 2
    a, b = np.zeros(1), np.ones(1)
    assert assign_inputs(["windows", "images"], a, b)[0] is b
    with pytest.raises(UserError, match="unknown network input"):
        assign_inputs(["input_1"], a, b)
