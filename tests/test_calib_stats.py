"""Calibration statistics (calib/stats.py + the C++ kernels of mrcnn_trt.calib._stats)
against NumPy and against ONNX Runtime's own calibration collectors, and the
streaming calibration of a real model against ONNX Runtime's calibrators."""
import contextlib
import io

import numpy as np
import pytest

from mrcnn_trt.calib import _stats, qdq
from mrcnn_trt.calib.stats import EntropyCollector, MinMaxCollector, PercentileCollector


def _heavy_tailed(rng, n, scale=1.0, relu=False):
    x = (rng.standard_t(3, n) * scale).astype(np.float32)
    return np.maximum(x, 0) if relu else x


@pytest.mark.parametrize("absolute", [True, False])
@pytest.mark.parametrize("start", [0, 1500])
@pytest.mark.parametrize("threads", [1, 2])
def test_histogram_kernel_equals_numpy(absolute, start, threads):
    rng = np.random.default_rng(0)
    x = _heavy_tailed(rng, 300_001)
    x[7], x[99] = np.nan, 0.0
    v = np.abs(x) if absolute else x
    finite = v[~np.isnan(v)]
    edges = np.histogram_bin_edges(np.array([finite.min(), finite.max()], np.float32), bins=2048)
    # ORT widens its percentile histograms with np.arange bins of the same width
    width = edges[1] - edges[0]
    wide = np.hstack((edges, np.arange(edges[-1] + width, edges[-1] * 1.5 + width, width))).astype(np.float32)
    for e, data in ((edges, x), (wide, x * np.float32(1.4))):
        vv = np.abs(data) if absolute else data
        ref, _ = np.histogram(vv[~np.isnan(vv)], bins=e)
        counts, below, above, mn, mx = _stats.histogram(data, e, absolute, start, threads)
        np.testing.assert_array_equal(counts[start:], ref[start:])
        assert not counts[:start].any() and below == ref[:start].sum()
        assert above == int((vv > e[-1]).sum())
        assert (mn, mx) == (np.nanmin(data), np.nanmax(data))
    assert _stats.minmax(x, absolute, threads) == (finite.min(), finite.max())
    assert _stats.minmax(np.full(5, np.nan, np.float32)) == (np.inf, -np.inf)


def test_kernel_rejects_bad_arguments():
    x = np.zeros(10, np.float32)
    with pytest.raises(ValueError, match="increasing"):
        _stats.histogram(x, np.array([0, 1, 1], np.float32))
    with pytest.raises(ValueError, match="start_bin"):
        _stats.histogram(x, np.array([0, 1, 2], np.float32), start_bin=2)
    with pytest.raises(TypeError):   # never a silent copy of a strided view
        _stats.minmax(np.zeros((10, 10), np.float32)[:, ::2])


def _ort_collector(method):
    from onnxruntime.quantization.calibrate import HistogramCollector

    if method == "percentile":
        return HistogramCollector("percentile", True, 2048, 128, 99.999, "same")
    return HistogramCollector("entropy", False, 128, 128, 99.999, "same")


def _images_of_tensors(seed, n_images):
    """Per image, a few activations like a network's: growing ranges, ReLU outputs,
    an outlier image, a constant (all-zero) tensor."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_images):
        scale = 1.0 + 0.3 * i + (4.0 if i == 3 else 0.0)
        out.append({"conv": _heavy_tailed(rng, 200_000, scale), "relu": _heavy_tailed(rng, 150_000, scale, True),
                    "small": rng.standard_normal(1000).astype(np.float32) * scale,
                    "zeros": np.zeros(5000, np.float32)})
    return out


@pytest.mark.parametrize("method", ["percentile", "entropy"])
def test_streamed_histograms_equal_onnxruntime(method):
    """Fed the same tensors one image at a time, ORT's HistogramCollector and ours give
    the same histograms (tail bins for percentile) and exactly the same ranges."""
    from onnxruntime.quantization.calibrate import CalibrationMethod, TensorsData

    images = _images_of_tensors(1, 6)
    ref = _ort_collector(method)
    ours = PercentileCollector(threads=2) if method == "percentile" else EntropyCollector(threads=2)
    with contextlib.redirect_stdout(io.StringIO()):
        for tensors in images:
            ref.collect({k: [v] for k, v in tensors.items()})
            for k, v in tensors.items():
                ours.update(k, v)
        want = TensorsData(CalibrationMethod.Percentile if method == "percentile" else CalibrationMethod.Entropy,
                           ref.compute_collection_result())
    got = ours.result()
    assert set(got.keys()) == set(want.keys()) == set(images[0])
    for k in want.keys():
        assert [float(v) for v in got[k].range_value] == [float(v) for v in want[k].range_value], k
    if method == "percentile":
        assert ours.inexact == []
        for k, (hist, edges, mn, mx) in ours.histograms().items():
            r_hist, r_edges, r_mn, r_mx = ref.histogram_dict[k]
            np.testing.assert_array_equal(edges, r_edges)
            s = ours.state[k].exact_from
            np.testing.assert_array_equal(hist[s:], r_hist[s:])
            assert hist.sum() == r_hist.sum() and (mn, mx) == (r_mn, r_mx)
        conv = ours.state["conv"]   # the tail shortcut was used: ~99 % of the values only counted
        assert conv.exact_from > 50 and conv.below > 0.95 * conv.hist.sum()


def test_minmax_collector():
    images = _images_of_tensors(2, 4)
    c = MinMaxCollector(threads=2)
    for t in images:
        for k, v in t.items():
            c.update(k, v)
    r = c.result()
    for k in images[0]:
        lo, hi = r[k].range_value
        assert lo.shape == (1,) and lo.dtype == np.float32
        assert lo[0] == min(t[k].min() for t in images) and hi[0] == max(t[k].max() for t in images)


@pytest.fixture(scope="module")
def shipped(tmp_path_factory, shipped_onnx):
    from mrcnn_trt.config import Config
    from mrcnn_trt.data.synthetic import write_dataset
    from mrcnn_trt.runtime.runners import read_sidecar

    d = tmp_path_factory.mktemp("stats")
    write_dataset(str(d / "calib"), num_images=5, seed=31, split="train", show_progress=False)
    return shipped_onnx, str(d / "calib"), Config.from_dict(read_sidecar(shipped_onnx)["config"])


@contextlib.contextmanager
def _ort_sessions_with_custom_ops():
    """ORT's calibrators create plain sessions; give them the mrcnn custom ops."""
    import onnxruntime as ort
    from onnxruntime.quantization import calibrate

    from mrcnn_trt.plugins.ort import session_options

    original = calibrate.CalibraterBase.create_inference_session

    def create(self):
        so = session_options(2)
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        self.infer_session = ort.InferenceSession(self.augmented_model_path, sess_options=so,
                                                  providers=["CPUExecutionProvider"])

    calibrate.CalibraterBase.create_inference_session = create
    try:
        yield
    finally:
        calibrate.CalibraterBase.create_inference_session = original


@pytest.mark.parametrize("method", ["percentile", "minmax"])
def test_calibrate_ranges_equal_onnxruntime_calibrators(shipped, tmp_path, method):
    """One float run per image, statistics only of the quantized layers' tensors: the
    ranges of ONNX Runtime's own calibrators fed one image per collect_data call
    (up to float rounding: ours runs the graph with ORT's optimizations on)."""
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, create_calibrator

    from mrcnn_trt.plugins.onnx_schemas import register_schemas
    from mrcnn_trt.runtime.batcher import ImageBatcher

    src, calib, cfg = shipped

    def batches():
        return ImageBatcher(calib, cfg, sample=4, seed=0, split="train")

    got, seen = qdq.calibrate_ranges(src, batches(), batch=1, image_size=cfg.IMAGE_MAX_DIM, method=method)
    assert seen == 4
    register_schemas()
    ort_method = {"percentile": CalibrationMethod.Percentile, "minmax": CalibrationMethod.MinMax}[method]
    extra = {"percentile": 99.999, "symmetric": True} if method == "percentile" else {"symmetric": False}

    class One(CalibrationDataReader):
        def __init__(self, b):
            self.items = [{"images": b.images, "windows": b.windows}]

        def get_next(self):
            return self.items.pop() if self.items else None

    with _ort_sessions_with_custom_ops(), contextlib.redirect_stdout(io.StringIO()):
        cal = create_calibrator(src, list(qdq.QUANT_OP_TYPES), augmented_model_path=str(tmp_path / "aug.onnx"),
                                calibrate_method=ort_method, extra_options=extra)
        for b in batches():
            cal.collect_data(One(b))
        want = cal.compute_data()
    # only the tensors of the quantized layers (the default float groups are left out)
    import onnx

    m = onnx.load(src)
    qdq.ensure_node_names(m)
    quantized = set(qdq.quantized_nodes(m))
    needed = {t for n in m.graph.node if n.name in quantized for t in list(n.input[:1]) + list(n.output)}
    assert set(got.keys()) == needed and needed < set(want.keys())
    for k in got.keys():
        np.testing.assert_allclose(np.asarray(got[k].range_value, np.float64).ravel(),
                                   np.asarray(want[k].range_value, np.float64).ravel(), rtol=2e-5, atol=1e-6,
                                   err_msg=k)
