"""Streaming activation statistics for INT8 calibration.

One collector per calibration method; each sees every calibrated tensor of
every image once (:meth:`update`), keeps only small per-tensor state (a
min/max pair or one histogram), and turns it into ONNX Runtime's
``TensorsData`` (:meth:`result`), the input of ``quantize_static``:

    stats = make_collector("percentile", threads=2)
    for image in images:
        for name, x in run_augmented_model(image):      # float32 arrays, any shape
            stats.update(name, x)
    tensors_data = stats.result()

The statistics are those of ONNX Runtime's calibrators (onnxruntime 1.32,
``onnxruntime.quantization.calibrate``) when they are fed one image per
``collect_data`` call, computed in one pass per tensor by the C++ kernels of
``mrcnn_trt.calib._stats`` instead of numpy on every kept activation:

* ``minmax`` (:class:`MinMaxCollector`): the min and max of each tensor over all
  images (ORT ``MinMaxCalibrater``, asymmetric, no moving average).
* ``percentile`` (:class:`PercentileCollector`): ORT's symmetric percentile:
  a 2048-bin histogram of |x| whose range is set by the first image
  ([min |x|, max |x|]) and extended by bins of the same width when a later
  image goes beyond it; the range is +-(the edge where the cumulative count
  reaches ``percentile`` %), clamped to the observed min/max. Only the upper
  tail decides that edge, so every bin below a cut that holds at least
  :data:`TAIL_MARGIN` times the needed tail
  is only counted, not binned: that part of the pass runs at memory speed
  (the first image is binned above a cut chosen on a 1/64 subsample).
  The result equals the full histogram's as long as the final percentile edge
  lies above the cut; :attr:`PercentileCollector.inexact` lists the tensors
  where it did not (never seen in practice: the cut keeps 1000x the needed tail).
* ``entropy`` (:class:`EntropyCollector`): ORT's entropy calibration: a
  128-bin histogram of x over +-max |x|, widened symmetrically as needed
  (``merge_histogram``), thresholds from ONNX Runtime's own KL search.

NaNs are ignored (ORT's calibrators fail on them); empty tensors are skipped.
"""
from __future__ import annotations

import contextlib
import io
from typing import Dict, List

import numpy as np

from mrcnn_trt.errors import UserError

try:
    from . import _stats
    _STATS_MISSING = None
except ImportError as e:   # pragma: no cover - the build always makes it
    _stats, _STATS_MISSING = None, e

#: Histogram bins of ORT's percentile and entropy calibrators (their defaults).
PERCENTILE_BINS = 2048
ENTROPY_BINS = 128
ENTROPY_QUANTIZED_BINS = 128
#: The cut below which a percentile histogram only counts keeps this many times
#: the tail mass that decides the percentile (1 % of the values at 99.999 %).
TAIL_MARGIN = 1000.0


def _kernels():
    if _stats is None:   # pragma: no cover - the build always makes it
        raise UserError("the calibration kernels (mrcnn_trt.calib._stats) are not built; reinstall with "
                        f"`pip install -e .` ({_STATS_MISSING})")
    return _stats


def _f32(x) -> np.ndarray:
    """A float32, C-contiguous view (a copy only when x is not one already)."""
    return np.ascontiguousarray(x, dtype=np.float32)


class Collector:
    """Base class: ``update(name, x)`` per tensor and image, then ``result()``."""

    method = "?"

    def __init__(self, threads: int = 1):
        self.threads = max(1, int(threads))
        self._k = _kernels()

    @property
    def names(self) -> List[str]:
        raise NotImplementedError

    def update(self, name: str, x: np.ndarray) -> None:
        raise NotImplementedError

    def result(self):
        """``onnxruntime.quantization.calibrate.TensorsData`` for quantize_static."""
        raise NotImplementedError


class MinMaxCollector(Collector):
    method = "minmax"

    def __init__(self, threads: int = 1):
        super().__init__(threads)
        self.ranges: Dict[str, List[float]] = {}

    @property
    def names(self):
        return list(self.ranges)

    def update(self, name, x):
        x = _f32(x)
        if x.size == 0:
            return
        lo, hi = self._k.minmax(x, False, self.threads)
        if lo > hi:   # only NaNs
            return
        r = self.ranges.setdefault(name, [lo, hi])
        r[0], r[1] = min(r[0], lo), max(r[1], hi)

    def result(self):
        from onnxruntime.quantization.calibrate import CalibrationMethod, TensorsData

        # ORT keeps ReduceMin/ReduceMax outputs: float32 arrays of shape (1,)
        return TensorsData(CalibrationMethod.MinMax, {
            n: (np.array([lo], np.float32), np.array([hi], np.float32)) for n, (lo, hi) in self.ranges.items()})


class _Hist:
    """One tensor's histogram: counts [bins] int64, edges [bins+1] float32, min, max."""

    __slots__ = ("hist", "edges", "mn", "mx", "start", "exact_from", "below", "threshold")

    def __init__(self, hist, edges, mn, mx, threshold=None):
        self.hist, self.edges, self.mn, self.mx = hist, edges, mn, mx
        self.start = 0              # percentile: bins below it are only counted (``below``) for new images
        self.exact_from = 0         # percentile: the highest cut used so far (bins from it on are exact)
        self.below = 0
        self.threshold = threshold  # entropy: the symmetric range of the histogram


class PercentileCollector(Collector):
    """ORT's symmetric percentile calibration (see the module docstring)."""

    method = "percentile"

    def __init__(self, threads: int = 1, percentile: float = 99.999, bins: int = PERCENTILE_BINS):
        super().__init__(threads)
        if not 0 < percentile <= 100:
            raise ValueError(f"percentile must be in (0, 100], got {percentile}")
        self.percentile = float(percentile)
        self.bins = int(bins)
        self.state: Dict[str, _Hist] = {}
        #: tensors whose percentile edge fell below the counting cut (approximate ranges)
        self.inexact: List[str] = []

    @property
    def names(self):
        return list(self.state)

    def _tail(self) -> float:
        return min(1.0, TAIL_MARGIN * (1.0 - self.percentile / 100.0))

    @staticmethod
    def _cut_of(hist: np.ndarray, total: int, fraction: float) -> int:
        """Highest bin such that the bins from it on hold >= ``fraction`` of ``total``
        (-1 when even all of ``hist`` holds less)."""
        if fraction >= 1.0 or total == 0:
            return 0
        from_top = np.cumsum(hist[::-1])
        k = int(np.searchsorted(from_top, fraction * total))   # first index (from the top) reaching it
        return len(hist) - 1 - k

    def _first(self, name: str, x: np.ndarray) -> None:
        """The first image of a tensor: ORT's edges from its |x| range, then an exact
        count of the bins above a cut chosen on a 1/64 subsample (10x the tail
        margin), or of every bin when that cut turns out too high."""
        k = self._k
        lo, hi = k.minmax(x, True, self.threads)
        if lo > hi:
            return
        # numpy.histogram(|x|, bins=2048): range [min |x|, max |x|], float32 edges
        edges = np.histogram_bin_edges(np.array([lo, hi], np.float32), bins=self.bins)
        start = 0
        tail = self._tail()
        if tail < 0.1 and x.size >= 64 * 4096:
            sub = np.ascontiguousarray(x.reshape(-1)[::64])
            counts, _, _, _, _ = k.histogram(sub, edges, True, 0, self.threads)
            start = max(0, self._cut_of(counts, int(counts.sum()), 10 * tail))
        counts, below, _, mn, mx = k.histogram(x, edges, True, start, self.threads)
        total = int(counts.sum()) + below
        cut = self._cut_of(counts, total, tail)
        if cut < start:   # the subsample misjudged the tail: count every bin
            counts, below, _, mn, mx = k.histogram(x, edges, True, 0, self.threads)
            start, cut = 0, self._cut_of(counts, int(counts.sum()), tail)
        h = self.state[name] = _Hist(counts, edges, np.float32(mn), np.float32(mx))
        h.below = below
        # bins from ``start`` on are exact for this image; later images bin from ``cut`` on
        h.start = h.exact_from = max(start, cut)

    def update(self, name, x):
        k = self._k
        x = _f32(x)
        if x.size == 0:
            return
        h = self.state.get(name)
        if h is None:
            self._first(name, x)
            return
        counts, below, above, mn, mx = k.histogram(x, h.edges, True, h.start, self.threads)
        if mn > mx:   # only NaNs
            return
        if above:
            # ORT: np.arange(last + width, amax + width, width) more bins of the same width
            amax = np.float32(max(-mn, mx))
            width = h.edges[1] - h.edges[0]
            more = np.arange(h.edges[-1] + width, amax + width, width)
            h.edges = np.hstack((h.edges, more)).astype(np.float32)
            h.hist = np.concatenate([h.hist, np.zeros(len(h.edges) - 1 - len(h.hist), np.int64)])
            counts, below, above, mn, mx = k.histogram(x, h.edges, True, h.start, self.threads)
        h.hist[h.start:] += counts[h.start:]
        h.below += below
        h.mn, h.mx = min(h.mn, np.float32(mn)), max(h.mx, np.float32(mx))
        if h.start > 0 and int(h.hist[h.start:].sum()) < 10 * (1.0 - self.percentile / 100.0) * (
                int(h.hist.sum()) + h.below):
            # the tail above the cut got thin (far lower activations than the first image's):
            # bin more of it from now on
            h.start //= 2

    def histograms(self) -> Dict[str, tuple]:
        """ORT ``HistogramCollector.histogram_dict`` entries: (hist, edges, min, max); the
        counted-only values are added to bin 0 (the cumulative counts above the cut are exact)."""
        out = {}
        for name, h in self.state.items():
            hist = h.hist.copy()
            hist[0] += h.below
            out[name] = (hist, h.edges, h.mn, h.mx)
        return out

    def result(self):
        from onnxruntime.quantization.calibrate import CalibrationMethod, HistogramCollector, TensorsData

        hists = self.histograms()
        self.inexact = []
        for name, (hist, _, _, _) in hists.items():
            cdf = np.cumsum(hist / hist.sum())
            if int(np.searchsorted(cdf, self.percentile / 100.0)) < self.state[name].exact_from:
                self.inexact.append(name)
        col = HistogramCollector(method="percentile", symmetric=True, num_bins=self.bins,
                                 num_quantized_bins=ENTROPY_QUANTIZED_BINS, percentile=self.percentile,
                                 scenario="same")
        col.histogram_dict = hists
        with contextlib.redirect_stdout(io.StringIO()):
            return TensorsData(CalibrationMethod.Percentile, col.compute_collection_result())


class EntropyCollector(Collector):
    """ORT's entropy calibration (``HistogramCollector.collect_value`` + ``merge_histogram``)."""

    method = "entropy"

    def __init__(self, threads: int = 1, bins: int = ENTROPY_BINS, quantized_bins: int = ENTROPY_QUANTIZED_BINS):
        super().__init__(threads)
        self.bins = int(bins)
        self.quantized_bins = int(quantized_bins)
        self.state: Dict[str, _Hist] = {}

    @property
    def names(self):
        return list(self.state)

    @staticmethod
    def _edges(bins: int, threshold) -> np.ndarray:
        # the edges of numpy.histogram(float32 data, bins, range=(-t, t))
        return np.histogram_bin_edges(np.empty(0, np.float32), bins, range=(-threshold, threshold))

    def _count(self, x, bins, threshold):
        counts, below, above, _, _ = self._k.histogram(x, self._edges(bins, threshold), False, 0, self.threads)
        return counts

    def update(self, name, x):
        x = _f32(x)
        if x.size == 0:
            return
        lo, hi = self._k.minmax(x, False, self.threads)
        if lo > hi:
            return
        mn, mx = np.float32(lo), np.float32(hi)
        t = np.array(max(abs(mn), abs(mx)), dtype=np.float32)
        h = self.state.get(name)
        if h is None:
            self.state[name] = _Hist(self._count(x, self.bins, t), self._edges(self.bins, t), mn, mx, threshold=t)
            return
        old_t, n = h.threshold, len(h.hist)
        if t <= old_t:
            h.hist = h.hist + self._count(x, n, old_t)
        elif old_t == 0:
            h.hist = self._count(x, n, t) + h.hist
            h.edges, h.threshold = self._edges(n, t), t
        else:
            stride = 2 * old_t / n
            half = int((t - old_t) // stride + 1)
            new_n = n + 2 * half
            new_t = half * stride + old_t
            hist = self._count(x, new_n, new_t)
            hist[half:new_n - half] += h.hist
            h.hist, h.edges, h.threshold = hist, self._edges(new_n, new_t), new_t
        h.mn, h.mx = min(h.mn, mn), max(h.mx, mx)

    def result(self):
        from onnxruntime.quantization.calibrate import CalibrationMethod, HistogramCollector, TensorsData

        col = HistogramCollector(method="entropy", symmetric=False, num_bins=self.bins,
                                 num_quantized_bins=self.quantized_bins, percentile=99.999, scenario="same")
        col.histogram_dict = {n: (h.hist, h.edges, h.mn, h.mx, h.threshold) for n, h in self.state.items()}
        with contextlib.redirect_stdout(io.StringIO()):
            return TensorsData(CalibrationMethod.Entropy, col.compute_collection_result())


def make_collector(method: str, threads: int = 1, percentile: float = 99.999) -> Collector:
    if method == "minmax":
        return MinMaxCollector(threads)
    if method == "percentile":
        return PercentileCollector(threads, percentile)
    if method == "entropy":
        return EntropyCollector(threads)
    raise ValueError(f"unknown calibration method {method!r} (minmax|percentile|entropy)")
