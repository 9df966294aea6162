// pybind11 module mrcnn_trt.calib._stats: one-pass statistics of activation
// tensors for INT8 calibration (calib/stats.py is the Python side).
//
//   minmax(x, absolute=False, threads=1) -> (min, max)
//   histogram(x, edges, absolute=False, start_bin=0, threads=1)
//       -> (counts int64[bins], below, above, min, max)
//
// x: float32, C-contiguous, any shape (read in place as a flat array; anything
// else is a TypeError, never a silent copy).
// minmax() returns the min/max of x (or of |x|); NaNs are ignored like
// numpy.nanmin / nanmax (+inf, -inf when there is no number).
//
// histogram() bins v = x (or |x| with absolute=True) into the monotonically
// increasing float32 ``edges`` [bins + 1] exactly like numpy.histogram(v,
// bins=edges): bin i holds edges[i] <= v < edges[i+1], the last bin also
// v == edges[-1]; NaNs and values below edges[0] are not counted. Only the bins
// from ``start_bin`` on are counted one by one: values in
// [edges[0], edges[start_bin]) are only counted, in ``below`` (a percentile in
// the upper tail needs no more, and this part of the pass runs at memory speed).
// ``above`` counts the values > edges[-1] (the caller extends the edges and
// bins the tensor again). min/max are those of x itself (not |x|).
//
// The bin of a value is estimated with the uniform-bin formula
// (v - e0) * bins / (eN - e0) and then corrected against the real edges, so
// nearly uniform edges (numpy.linspace / numpy.arange in float32, as ONNX
// Runtime's calibrators build them) give numpy's counts exactly.
// The work is split over ``threads`` std::threads; the GIL is released.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <thread>
#include <tuple>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace py = pybind11;

namespace {

using F32 = py::array_t<float, py::array::c_style>;

constexpr float kInf = std::numeric_limits<float>::infinity();

struct Partial {
  float mn = kInf;
  float mx = -kInf;
  int64_t below = 0;
  int64_t above = 0;
  std::vector<int64_t> hist;
};

// Runs fn(begin, end, partial) over [0, n) in up to ``threads`` contiguous pieces.
template <typename Fn>
std::vector<Partial> split(int64_t n, int threads, size_t bins, Fn fn) {
  const int64_t min_piece = 1 << 16;
  const int t = (int)std::max<int64_t>(1, std::min<int64_t>(threads, (n + min_piece - 1) / min_piece));
  std::vector<Partial> parts(t);
  for (auto& p : parts) p.hist.assign(bins, 0);
  if (t == 1) {
    fn(0, n, parts[0]);
    return parts;
  }
  std::vector<std::thread> pool;
  const int64_t step = (n + t - 1) / t;
  for (int i = 0; i < t; ++i) {
    const int64_t b = std::min(n, i * step), e = std::min(n, (i + 1) * step);
    pool.emplace_back([&fn, &parts, b, e, i] { fn(b, e, parts[i]); });
  }
  for (auto& th : pool) th.join();
  return parts;
}

// ------------------------------------------------------------------ min / max
template <bool kAbs>
void minmax_range(const float* x, int64_t b, int64_t e, Partial& p) {
  float mn = p.mn, mx = p.mx;
  int64_t i = b;
#if defined(__SSE2__)
  // MINPS/MAXPS return the second operand when the first is NaN: NaNs are skipped
  const __m128 sign = _mm_set1_ps(-0.0f);
  __m128 mn0 = _mm_set1_ps(mn), mn1 = mn0, mx0 = _mm_set1_ps(mx), mx1 = mx0;
  for (; i + 8 <= e; i += 8) {
    __m128 a = _mm_loadu_ps(x + i), c = _mm_loadu_ps(x + i + 4);
    if (kAbs) {
      a = _mm_andnot_ps(sign, a);
      c = _mm_andnot_ps(sign, c);
    }
    mn0 = _mm_min_ps(a, mn0);
    mx0 = _mm_max_ps(a, mx0);
    mn1 = _mm_min_ps(c, mn1);
    mx1 = _mm_max_ps(c, mx1);
  }
  alignas(16) float lo[8], hi[8];
  _mm_store_ps(lo, mn0);
  _mm_store_ps(lo + 4, mn1);
  _mm_store_ps(hi, mx0);
  _mm_store_ps(hi + 4, mx1);
  for (int k = 0; k < 8; ++k) {
    mn = std::min(mn, lo[k]);
    mx = std::max(mx, hi[k]);
  }
#endif
  for (; i < e; ++i) {
    const float v = kAbs ? std::fabs(x[i]) : x[i];
    mn = v < mn ? v : mn;   // false for NaN: skipped
    mx = v > mx ? v : mx;
  }
  p.mn = mn;
  p.mx = mx;
}

// ------------------------------------------------------------------ histogram
struct Bins {
  const float* edges;
  int bins;
  int start;      // first bin counted one by one
  float e0, en, cut;  // edges[0], edges[bins], edges[start]
  float scale;    // bins / (en - e0)
};

// One value v >= cut (not NaN): its bin, or ``above``.
inline void count_one(float v, const Bins& b, int64_t* hist, int64_t& above) {
  if (v > b.en) {
    ++above;
    return;
  }
  int k = (int)(((double)v - (double)b.e0) * (double)b.scale);
  k = std::min(std::max(k, b.start), b.bins - 1);
  while (k > b.start && v < b.edges[k]) --k;
  while (k < b.bins - 1 && v >= b.edges[k + 1]) ++k;
  ++hist[k];
}

template <bool kAbs>
void hist_range(const float* x, int64_t i0, int64_t e, const Bins& b, Partial& p) {
  int64_t* hist = p.hist.data();
  float mn = p.mn, mx = p.mx;
  int64_t below = 0, above = 0;
  int64_t i = i0;
#if defined(__SSE2__)
  const __m128 sign = _mm_set1_ps(-0.0f);
  const __m128 e0 = _mm_set1_ps(b.e0), cut = _mm_set1_ps(b.cut);
  __m128 mnv = _mm_set1_ps(mn), mxv = _mm_set1_ps(mx);
  __m128i below_v = _mm_setzero_si128();   // 4 x int32 lane counters, flushed below
  int64_t since_flush = 0;
  for (; i + 4 <= e; i += 4) {
    const __m128 raw = _mm_loadu_ps(x + i);
    mnv = _mm_min_ps(raw, mnv);
    mxv = _mm_max_ps(raw, mxv);
    const __m128 v = kAbs ? _mm_andnot_ps(sign, raw) : raw;
    const __m128 tail = _mm_cmpge_ps(v, cut);     // false for NaN
    // lanes in [e0, cut): all ones = -1 per lane
    const __m128 low = _mm_andnot_ps(tail, _mm_cmpge_ps(v, e0));
    below_v = _mm_sub_epi32(below_v, _mm_castps_si128(low));
    if (_mm_movemask_ps(tail)) {
      alignas(16) float lanes[4];
      _mm_store_ps(lanes, v);
      const int m = _mm_movemask_ps(tail);
      for (int k = 0; k < 4; ++k)
        if (m & (1 << k)) count_one(lanes[k], b, hist, above);
    }
    if (++since_flush == (1 << 28)) {   // int32 lanes never overflow
      alignas(16) int32_t c[4];
      _mm_store_si128((__m128i*)c, below_v);
      below += (int64_t)c[0] + c[1] + c[2] + c[3];
      below_v = _mm_setzero_si128();
      since_flush = 0;
    }
  }
  alignas(16) int32_t c[4];
  _mm_store_si128((__m128i*)c, below_v);
  below += (int64_t)c[0] + c[1] + c[2] + c[3];
  alignas(16) float lo[4], hi[4];
  _mm_store_ps(lo, mnv);
  _mm_store_ps(hi, mxv);
  for (int k = 0; k < 4; ++k) {
    mn = std::min(mn, lo[k]);
    mx = std::max(mx, hi[k]);
  }
#endif
  for (; i < e; ++i) {
    const float raw = x[i];
    mn = raw < mn ? raw : mn;
    mx = raw > mx ? raw : mx;
    const float v = kAbs ? std::fabs(raw) : raw;
    if (v >= b.cut)
      count_one(v, b, hist, above);
    else if (v >= b.e0)
      ++below;
  }
  p.mn = mn;
  p.mx = mx;
  p.below += below;
  p.above += above;
}

// ------------------------------------------------------------------ bindings
void check_threads(int threads) {
  if (threads < 1) throw py::value_error("threads must be >= 1");
}

std::tuple<float, float> minmax(const F32& x, bool absolute, int threads) {
  check_threads(threads);
  const float* data = x.data();
  const int64_t n = x.size();
  std::vector<Partial> parts;
  {
    py::gil_scoped_release release;
    parts = split(n, threads, 0, [&](int64_t b, int64_t e, Partial& p) {
      if (absolute)
        minmax_range<true>(data, b, e, p);
      else
        minmax_range<false>(data, b, e, p);
    });
  }
  float mn = kInf, mx = -kInf;
  for (const auto& p : parts) {
    mn = std::min(mn, p.mn);
    mx = std::max(mx, p.mx);
  }
  return {mn, mx};
}

std::tuple<py::array_t<int64_t>, int64_t, int64_t, float, float> histogram(const F32& x, const F32& edges, bool absolute,
                                                                         int start_bin, int threads) {
  check_threads(threads);
  if (edges.ndim() != 1 || edges.size() < 2) throw py::value_error("edges must be a 1-D array of >= 2 values");
  if (edges.size() > (1 << 30)) throw py::value_error("too many bins");
  const int bins = (int)edges.size() - 1;
  const float* ed = edges.data();
  for (int k = 0; k <= bins; ++k)
    if (!std::isfinite(ed[k]) || (k < bins && !(ed[k] < ed[k + 1])))
      throw py::value_error("edges must be finite and strictly increasing");
  if (start_bin < 0 || start_bin >= bins) throw py::value_error("start_bin must be in [0, bins)");
  Bins b{ed, bins, start_bin, ed[0], ed[bins], ed[start_bin],
         (float)((double)bins / ((double)ed[bins] - (double)ed[0]))};
  const float* data = x.data();
  const int64_t n = x.size();
  std::vector<Partial> parts;
  {
    py::gil_scoped_release release;
    parts = split(n, threads, (size_t)bins, [&](int64_t lo, int64_t hi, Partial& p) {
      if (absolute)
        hist_range<true>(data, lo, hi, b, p);
      else
        hist_range<false>(data, lo, hi, b, p);
    });
  }
  py::array_t<int64_t> out(bins);
  int64_t* h = out.mutable_data();
  std::fill(h, h + bins, 0);
  float mn = kInf, mx = -kInf;
  int64_t below = 0, above = 0;
  for (const auto& p : parts) {
    for (int k = 0; k < bins; ++k) h[k] += p.hist[k];
    mn = std::min(mn, p.mn);
    mx = std::max(mx, p.mx);
    below += p.below;
    above += p.above;
  }
  return {out, below, above, mn, mx};
}

}  // namespace

PYBIND11_MODULE(_stats, m) {
  m.doc() = "One-pass min/max and histograms of float32 tensors (INT8 calibration statistics).";
  m.def("minmax", &minmax, py::arg("x").noconvert(), py::arg("absolute") = false, py::arg("threads") = 1,
        "(min, max) of x (or |x|), a float32 C-contiguous array; NaNs ignored (+inf, -inf when none).");
  m.def("histogram", &histogram, py::arg("x").noconvert(), py::arg("edges").noconvert(), py::arg("absolute") = false,
        py::arg("start_bin") = 0, py::arg("threads") = 1,
        "(counts int64[len(edges)-1], below, above, min, max): numpy.histogram(x or |x|, bins=edges) "
        "counts from start_bin on, the count of values in [edges[0], edges[start_bin]) and above "
        "edges[-1], and the min/max of x, in one pass.");
}
