// Host program for the CUDA kernels (built by CMake as mrcnn_check_cuda_kernels when
// MRCNN_WITH_CUDA=ON; run by tests/test_cuda_build.py and ctest).
//
// 1. Always (no GPU needed): the launchers link, the workspace sizes cover the arrays
//    the kernels use, invalid attributes are refused with cudaErrorInvalidValue before
//    any device work, and without a usable device every launcher returns an error
//    instead of crashing.
// 2. With a CUDA device: runs the three ops on deterministic pseudo-random inputs (FP32
//    and FP16, ties, a NaN score, degenerate boxes, padded ROI rows) and compares them
//    with the CPU kernels. Both sides evaluate the same expressions of
//    common/mrcnn_math.h: +,-,*,/ and sqrt correctly rounded and never contracted into
//    FMAs, exp/log2 in double rounded once to float (the same on glibc and CUDA), so
//    every output must be bit-identical: crops, proposals, anchor indices, detections
//    and counts.
//
// 3. With a CUDA device, NMS alone (plugins/common/nms_cuda.cu) at K = 1000, with and
//    without a keep limit, against the CPU NMS (nms_cpu).
//
// Prints "GPU: skipped (...)" or "GPU: compared" and exits non-zero on any failure.
// Each GPU comparison is a case: a line "CASE <name>" when it starts and, when it ends,
// "RESULT {json}" with max_abs_diff (largest |GPU - CPU| over the float outputs),
// mismatches (output elements whose bits differ), elements and seconds (tools/sim reads
// these lines and attributes the simulator's instruction counts to the cases).
//
// Options (for tools/sim_check.sh; no option: everything, default block sizes):
//   --only OP[,OP...]  only the cases of these ops (PyramidROIAlign, ProposalLayer,
//                      DetectionLayer, NMS)
//   --threads N        N threads per block in every launch of the project's kernels
//                      (mrcnn::cuda::set_block_threads; 32 = one warp)
#include <cuda_runtime_api.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <chrono>
#include <numeric>
#include <string>
#include <vector>

#include "common/mrcnn_math.h"
#include "common/nms_cuda.h"
#include "common/op_params.h"
#include "detection_layer/detection_layer.h"
#include "proposal_layer/proposal_layer.h"
#include "pyramid_roi_align/pyramid_roi_align.h"

using namespace mrcnn;

static int g_failures = 0;

#define CHECK(cond, ...)                                        \
  do {                                                          \
    if (!(cond)) {                                              \
      ++g_failures;                                             \
      printf("FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);    \
      printf(__VA_ARGS__);                                      \
      printf("\n");                                             \
    }                                                           \
  } while (0)

// ------------------------------------------------------------------ cases
// One GPU-vs-CPU comparison: counts differing elements and the largest |difference|.
struct Case {
  std::string name;
  size_t elements = 0, mismatches = 0;
  double max_abs = 0.0;
  std::chrono::steady_clock::time_point t0;

  explicit Case(std::string n) : name(std::move(n)), t0(std::chrono::steady_clock::now()) {
    printf("CASE %s\n", name.c_str());
    fflush(stdout);
  }
  void value(double g, double c, bool bits_equal) {
    ++elements;
    if (bits_equal) return;
    ++mismatches;
    const double d = (isnan(g) || isnan(c)) ? INFINITY : fabs(g - c);
    if (d > max_abs) max_abs = d;
  }
  void f32(const float* g, const float* c, size_t n) {
    for (size_t i = 0; i < n; ++i) value(g[i], c[i], memcmp(&g[i], &c[i], 4) == 0);
  }
  void f16(const uint16_t* g, const uint16_t* c, size_t n) {
    for (size_t i = 0; i < n; ++i) value(half_to_float(g[i]), half_to_float(c[i]), g[i] == c[i]);
  }
  void i32(const int32_t* g, const int32_t* c, size_t n) {
    for (size_t i = 0; i < n; ++i) value(g[i], c[i], g[i] == c[i]);
  }
  ~Case() {
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    printf("RESULT {\"case\": \"%s\", \"elements\": %zu, \"mismatches\": %zu, \"max_abs_diff\": %.9g, "
           "\"seconds\": %.3f}\n",
           name.c_str(), elements, mismatches, isinf(max_abs) ? 1e308 : max_abs, s);
    fflush(stdout);
  }
};

// ------------------------------------------------------------------ inputs
struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed * 6364136223846793005ull + 1442695040888963407ull) {}
  uint32_t next() {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(s >> 33);
  }
  float uniform(float lo, float hi) { return lo + (hi - lo) * (float)(next() & 0xffffff) / (float)0x1000000; }
};

static std::vector<uint16_t> to_half(const std::vector<float>& v) {
  std::vector<uint16_t> h(v.size());
  for (size_t i = 0; i < v.size(); ++i) h[i] = float_to_half(v[i]);
  return h;
}

// ------------------------------------------------------------ device memory
struct DevBuf {
  void* p = nullptr;
  explicit DevBuf(size_t bytes) {
    if (cudaMalloc(&p, bytes ? bytes : 1) != cudaSuccess) p = nullptr;
  }
  ~DevBuf() {
    if (p) cudaFree(p);
  }
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;
};

template <typename T>
static bool upload(DevBuf& d, const std::vector<T>& h) {
  return d.p && cudaMemcpy(d.p, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice) == cudaSuccess;
}
template <typename T>
static bool download(std::vector<T>& h, const DevBuf& d) {
  return d.p && cudaMemcpy(h.data(), d.p, h.size() * sizeof(T), cudaMemcpyDeviceToHost) == cudaSuccess;
}

// ------------------------------------------------------------ host checks
static void check_host_side() {
  PyramidROIAlignParams pr;
  pr.N = 2, pr.R = 10, pr.C = 4;
  for (int l = 0; l < 4; ++l) pr.H[l] = pr.W[l] = 64 >> l;
  CHECK(pyramid_roi_align_cuda_workspace(pr) == 0, "PyramidROIAlign needs no workspace");

  ProposalLayerParams pp;
  pp.N = 2, pp.A = 20000, pp.pre_nms_topk = 6000, pp.post_nms_topk = 1000;
  const size_t k = 6000, words = (k + 63) / 64;
  const size_t need_p = 2 * (size_t)pp.N * pp.A * 8   // two key buffers
                        + (size_t)pp.N * k * (16 + 4)  // boxes, anchor ids
                        + (size_t)pp.N * k * words * 8 // NMS mask
                        + (size_t)pp.N * pp.post_nms_topk * 4;
  CHECK(proposal_layer_cuda_workspace(pp) >= need_p, "ProposalLayer workspace %zu < %zu",
        proposal_layer_cuda_workspace(pp), need_p);
  CHECK(proposal_layer_cuda_workspace(pp) < need_p + (1u << 20), "ProposalLayer workspace %zu far above %zu",
        proposal_layer_cuda_workspace(pp), need_p);

  DetectionLayerParams dp;
  dp.N = 2, dp.R = 1000;
  const size_t rw = (1000 + 63) / 64;
  const size_t need_d = (size_t)dp.N * dp.R * (16 + 4 + 4 + 8 + 8 + 16 + 4 + 4 + 4) + (size_t)dp.N * dp.R * rw * 8;
  CHECK(detection_layer_cuda_workspace(dp) >= need_d, "DetectionLayer workspace %zu < %zu",
        detection_layer_cuda_workspace(dp), need_d);

  // Invalid attributes: refused before any device work.
  const void* maps[4] = {nullptr, nullptr, nullptr, nullptr};
  PyramidROIAlignParams bad_pr = pr;
  bad_pr.pooled_size = 1;
  CHECK(pyramid_roi_align_cuda(bad_pr, DType::kFloat32, nullptr, maps, nullptr, nullptr, 0) == cudaErrorInvalidValue,
        "pooled_size 1 accepted");
  bad_pr = pr;
  bad_pr.H[2] = 0;
  CHECK(pyramid_roi_align_cuda(bad_pr, DType::kFloat32, nullptr, maps, nullptr, nullptr, 0) == cudaErrorInvalidValue,
        "empty P4 accepted");
  ProposalLayerParams bad_pp = pp;
  bad_pp.nms_threshold = 1.5f;
  CHECK(proposal_layer_cuda(bad_pp, DType::kFloat32, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                            0) == cudaErrorInvalidValue,
        "nms_threshold 1.5 accepted");
  CHECK(proposal_layer_cuda(pp, DType::kFloat32, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 0) ==
            cudaErrorInvalidValue,
        "ProposalLayer without workspace accepted");
  DetectionLayerParams bad_dp = dp;
  bad_dp.num_classes = 1;
  CHECK(detection_layer_cuda(bad_dp, DType::kFloat32, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                             nullptr, 0) == cudaErrorInvalidValue,
        "num_classes 1 accepted");
  bad_dp = dp;
  bad_dp.R = 1 << 20;
  CHECK(detection_layer_cuda(bad_dp, DType::kFloat32, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                             nullptr, 0) == cudaErrorInvalidValue,
        "R = 2^20 accepted (the sort key holds 20 bits of ROI index)");
  // Empty batches are fine and touch nothing.
  PyramidROIAlignParams empty_pr = pr;
  empty_pr.N = 0;
  CHECK(pyramid_roi_align_cuda(empty_pr, DType::kFloat32, nullptr, maps, nullptr, nullptr, 0) == cudaSuccess,
        "N = 0 refused");
}

// No usable device: launchers must report an error, not crash.
static void check_no_device_errors() {
  PyramidROIAlignParams pr;
  pr.N = 1, pr.R = 1, pr.C = 1;
  for (int l = 0; l < 4; ++l) pr.H[l] = pr.W[l] = 8;
  const void* maps[4] = {nullptr, nullptr, nullptr, nullptr};
  CHECK(pyramid_roi_align_cuda(pr, DType::kFloat32, nullptr, maps, nullptr, nullptr, 0) != cudaSuccess,
        "PyramidROIAlign launch without a device succeeded");
  ProposalLayerParams pp;
  pp.N = 1, pp.A = 100;
  static char ws[1 << 20];  // host memory: never dereferenced, the first launch fails
  CHECK(proposal_layer_cuda_workspace(pp) <= sizeof(ws), "workspace");
  CHECK(proposal_layer_cuda(pp, DType::kFloat32, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, ws, 0) !=
            cudaSuccess,
        "ProposalLayer launch without a device succeeded");
  DetectionLayerParams dp;
  dp.N = 1, dp.R = 10;
  CHECK(detection_layer_cuda(dp, DType::kFloat32, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, ws,
                             0) != cudaSuccess,
        "DetectionLayer launch without a device succeeded");
}

// ------------------------------------------------------------- GPU vs CPU
static void compare_pyramid(DType dt) {
  PyramidROIAlignParams p;
  p.pooled_size = 7, p.image_size = 256, p.N = 2, p.R = 40, p.C = 3;
  for (int l = 0; l < 4; ++l) p.H[l] = p.W[l] = 64 >> l;
  p.W[0] = 60;  // non-square level
  Rng rng(1);
  std::vector<float> boxes((size_t)p.N * p.R * 4);
  for (size_t b = 0; b < boxes.size() / 4; ++b) {
    float y1 = rng.uniform(-0.1f, 1.0f), x1 = rng.uniform(-0.1f, 1.0f);
    float h = rng.uniform(0.0f, 0.8f), w = rng.uniform(0.0f, 0.8f);
    if (b % 11 == 3) h = 0.0f;  // degenerate: level 2
    boxes[4 * b + 0] = y1, boxes[4 * b + 1] = x1, boxes[4 * b + 2] = y1 + h, boxes[4 * b + 3] = x1 + w;
  }
  std::vector<std::vector<float>> maps(4);
  for (int l = 0; l < 4; ++l) {
    maps[l].resize((size_t)p.N * p.C * p.H[l] * p.W[l]);
    for (float& v : maps[l]) v = rng.uniform(-4.0f, 4.0f);
  }
  const size_t esz = dt == DType::kFloat16 ? 2 : 4;
  Case cs(std::string("PyramidROIAlign ") + (dt == DType::kFloat16 ? "fp16" : "fp32"));
  const size_t out_n = (size_t)p.N * p.R * p.C * p.pooled_size * p.pooled_size;
  std::vector<std::vector<uint16_t>> hmaps(4);
  const void* host_maps[4];
  DevBuf d_boxes(boxes.size() * 4), d_out(out_n * esz);
  DevBuf d_maps0(maps[0].size() * esz), d_maps1(maps[1].size() * esz), d_maps2(maps[2].size() * esz),
      d_maps3(maps[3].size() * esz);
  DevBuf* d_maps[4] = {&d_maps0, &d_maps1, &d_maps2, &d_maps3};
  bool ok = upload(d_boxes, boxes);
  for (int l = 0; l < 4; ++l) {
    if (dt == DType::kFloat16) {
      hmaps[l] = to_half(maps[l]);
      host_maps[l] = hmaps[l].data();
      ok = ok && upload(*d_maps[l], hmaps[l]);
    } else {
      host_maps[l] = maps[l].data();
      ok = ok && upload(*d_maps[l], maps[l]);
    }
  }
  CHECK(ok, "PyramidROIAlign upload");
  if (!ok) return;
  const void* dev_maps[4] = {d_maps0.p, d_maps1.p, d_maps2.p, d_maps3.p};
  const cudaError_t e = pyramid_roi_align_cuda(p, dt, (const float*)d_boxes.p, dev_maps, d_out.p, nullptr, 0);
  CHECK(e == cudaSuccess, "PyramidROIAlign: %s", cudaGetErrorString(e));
  std::vector<uint8_t> gpu(out_n * esz), cpu(out_n * esz);
  CHECK(download(gpu, d_out), "download");
  pyramid_roi_align_cpu(p, dt, boxes.data(), host_maps, cpu.data(), nullptr);
  size_t diff = 0;
  for (size_t i = 0; i < out_n; ++i) diff += memcmp(&gpu[i * esz], &cpu[i * esz], esz) != 0;
  if (dt == DType::kFloat16)
    cs.f16((const uint16_t*)gpu.data(), (const uint16_t*)cpu.data(), out_n);
  else
    cs.f32((const float*)gpu.data(), (const float*)cpu.data(), out_n);
  CHECK(diff == 0, "PyramidROIAlign (%s): %zu of %zu crop values differ from the CPU kernel",
        dt == DType::kFloat16 ? "fp16" : "fp32", diff, out_n);
}

static void compare_proposal(DType dt) {
  ProposalLayerParams p;
  p.N = 2, p.A = 3000, p.pre_nms_topk = 1200, p.post_nms_topk = 300, p.nms_threshold = 0.7f, p.image_size = 256;
  Rng rng(2);
  std::vector<float> scores((size_t)p.N * p.A), deltas((size_t)p.N * p.A * 4), anchors((size_t)p.A * 4);
  for (size_t i = 0; i < scores.size(); ++i) scores[i] = (float)(rng.next() % 64) / 64.0f;  // many ties
  scores[17] = NAN;
  for (float& d : deltas) d = rng.uniform(-1.0f, 1.0f);
  for (int a = 0; a < p.A; ++a) {
    const float cy = rng.uniform(-20.f, 276.f), cx = rng.uniform(-20.f, 276.f);
    const float h = rng.uniform(4.f, 120.f), w = rng.uniform(4.f, 120.f);
    anchors[4 * a + 0] = cy - h / 2, anchors[4 * a + 1] = cx - w / 2, anchors[4 * a + 2] = cy + h / 2,
    anchors[4 * a + 3] = cx + w / 2;
  }
  const size_t esz = dt == DType::kFloat16 ? 2 : 4;
  Case cs(std::string("ProposalLayer ") + (dt == DType::kFloat16 ? "fp16" : "fp32"));
  std::vector<uint16_t> hs, hd;
  const void* sc = scores.data();
  const void* de = deltas.data();
  if (dt == DType::kFloat16) {
    hs = to_half(scores), hd = to_half(deltas);
    sc = hs.data(), de = hd.data();
  }
  const int post = p.post_nms_topk;
  DevBuf d_s(scores.size() * esz), d_d(deltas.size() * esz), d_a(anchors.size() * 4), d_rois((size_t)p.N * post * 16),
      d_cnt((size_t)p.N * 4), d_ai((size_t)p.N * post * 4), d_ws(proposal_layer_cuda_workspace(p));
  bool ok = d_s.p && d_d.p && cudaMemcpy(d_s.p, sc, scores.size() * esz, cudaMemcpyHostToDevice) == cudaSuccess &&
            cudaMemcpy(d_d.p, de, deltas.size() * esz, cudaMemcpyHostToDevice) == cudaSuccess &&
            upload(d_a, anchors) && d_ws.p;
  CHECK(ok, "ProposalLayer upload");
  if (!ok) return;
  const cudaError_t e = proposal_layer_cuda(p, dt, d_s.p, d_d.p, (const float*)d_a.p, (float*)d_rois.p,
                                            (int32_t*)d_cnt.p, (int32_t*)d_ai.p, d_ws.p, 0);
  CHECK(e == cudaSuccess, "ProposalLayer: %s", cudaGetErrorString(e));
  std::vector<float> g_rois((size_t)p.N * post * 4), c_rois(g_rois.size());
  std::vector<int32_t> g_cnt(p.N), c_cnt(p.N), g_ai((size_t)p.N * post), c_ai(g_ai.size());
  CHECK(download(g_rois, d_rois) && download(g_cnt, d_cnt) && download(g_ai, d_ai), "download");
  proposal_layer_cpu(p, dt, sc, de, anchors.data(), c_rois.data(), c_cnt.data(), c_ai.data(), nullptr);
  const char* tag = dt == DType::kFloat16 ? "fp16" : "fp32";
  for (int n = 0; n < p.N; ++n) CHECK(g_cnt[n] == c_cnt[n], "ProposalLayer (%s) count[%d]: gpu %d cpu %d", tag, n,
                                      g_cnt[n], c_cnt[n]);
  cs.i32(g_cnt.data(), c_cnt.data(), g_cnt.size());
  cs.i32(g_ai.data(), c_ai.data(), g_ai.size());
  cs.f32(g_rois.data(), c_rois.data(), g_rois.size());
  size_t bad_ai = 0, bad_box = 0;
  for (size_t i = 0; i < g_ai.size(); ++i) bad_ai += g_ai[i] != c_ai[i];
  for (size_t i = 0; i < g_rois.size(); ++i) bad_box += memcmp(&g_rois[i], &c_rois[i], sizeof(float)) != 0;
  CHECK(bad_ai == 0, "ProposalLayer (%s): %zu anchor indices differ", tag, bad_ai);
  CHECK(bad_box == 0, "ProposalLayer (%s): %zu of %zu roi coordinates differ from the CPU kernel (bits)", tag,
        bad_box, g_rois.size());
  CHECK(c_cnt[0] > 0 && c_cnt[1] > 0, "ProposalLayer (%s): test input gives no proposals", tag);
}

static void compare_detection(DType dt) {
  DetectionLayerParams p;
  p.N = 2, p.R = 400, p.num_classes = 6, p.min_confidence = 0.3f, p.nms_threshold = 0.3f, p.max_instances = 60;
  p.image_size = 256;
  const int K = p.num_classes;
  Rng rng(3);
  std::vector<float> rois((size_t)p.N * p.R * 4), probs((size_t)p.N * p.R * K), deltas((size_t)p.N * p.R * K * 4);
  std::vector<int32_t> roi_count = {350, 400};
  std::vector<float> window = {0.f, 0.f, 256.f, 256.f, 32.f, 0.f, 224.f, 256.f};
  for (size_t b = 0; b < rois.size() / 4; ++b) {
    const float y = rng.uniform(0.f, 0.9f), x = rng.uniform(0.f, 0.9f);
    rois[4 * b + 0] = y, rois[4 * b + 1] = x;
    rois[4 * b + 2] = y + rng.uniform(0.02f, 0.3f), rois[4 * b + 3] = x + rng.uniform(0.02f, 0.3f);
  }
  for (size_t r = 0; r < probs.size() / K; ++r) {
    float sum = 0.f;
    for (int k = 0; k < K; ++k) sum += probs[r * K + k] = (float)(1 + rng.next() % 16);
    for (int k = 0; k < K; ++k) probs[r * K + k] /= sum;  // ties between classes and ROIs
  }
  for (float& d : deltas) d = rng.uniform(-0.5f, 0.5f);
  const size_t esz = dt == DType::kFloat16 ? 2 : 4;
  Case cs(std::string("DetectionLayer ") + (dt == DType::kFloat16 ? "fp16" : "fp32"));
  std::vector<uint16_t> hp, hd;
  const void* pr = probs.data();
  const void* de = deltas.data();
  if (dt == DType::kFloat16) {
    hp = to_half(probs), hd = to_half(deltas);
    pr = hp.data(), de = hd.data();
  }
  const int M = p.max_instances;
  DevBuf d_rois(rois.size() * 4), d_cnt_in(8), d_p(probs.size() * esz), d_d(deltas.size() * esz), d_w(32),
      d_dets((size_t)p.N * M * 24), d_cnt((size_t)p.N * 4), d_ws(detection_layer_cuda_workspace(p));
  bool ok = upload(d_rois, rois) && upload(d_cnt_in, roi_count) && upload(d_w, window) && d_p.p && d_d.p &&
            cudaMemcpy(d_p.p, pr, probs.size() * esz, cudaMemcpyHostToDevice) == cudaSuccess &&
            cudaMemcpy(d_d.p, de, deltas.size() * esz, cudaMemcpyHostToDevice) == cudaSuccess && d_ws.p;
  CHECK(ok, "DetectionLayer upload");
  if (!ok) return;
  const cudaError_t e =
      detection_layer_cuda(p, dt, (const float*)d_rois.p, (const int32_t*)d_cnt_in.p, d_p.p, d_d.p,
                           (const float*)d_w.p, (float*)d_dets.p, (int32_t*)d_cnt.p, d_ws.p, 0);
  CHECK(e == cudaSuccess, "DetectionLayer: %s", cudaGetErrorString(e));
  std::vector<float> g((size_t)p.N * M * 6), c(g.size());
  std::vector<int32_t> g_cnt(p.N), c_cnt(p.N);
  CHECK(download(g, d_dets) && download(g_cnt, d_cnt), "download");
  detection_layer_cpu(p, dt, rois.data(), roi_count.data(), pr, de, window.data(), c.data(), c_cnt.data(), nullptr);
  const char* tag = dt == DType::kFloat16 ? "fp16" : "fp32";
  for (int n = 0; n < p.N; ++n) {
    CHECK(g_cnt[n] == c_cnt[n], "DetectionLayer (%s) count[%d]: gpu %d cpu %d", tag, n, g_cnt[n], c_cnt[n]);
    CHECK(c_cnt[n] > 0, "DetectionLayer (%s): test input gives no detections", tag);
  }
  cs.i32(g_cnt.data(), c_cnt.data(), g_cnt.size());
  cs.f32(g.data(), c.data(), g.size());
  size_t bad = 0;
  for (size_t i = 0; i < g.size(); ++i) bad += memcmp(&g[i], &c[i], sizeof(float)) != 0;
  CHECK(bad == 0, "DetectionLayer (%s): %zu of %zu output values differ from the CPU kernel (bits)", tag, bad,
        g.size());
}

// NMS alone: K boxes in priority order (host sort: score desc, ties by lower index, as
// nms_cpu), one segment; kept original indices (and their count) vs nms_cpu's.
static void compare_nms(int K, int max_keep) {
  Case cs("NMS K=" + std::to_string(K) + (max_keep < K ? " max_keep=" + std::to_string(max_keep) : ""));
  Rng rng(4);
  std::vector<float> boxes((size_t)K * 4), scores(K);
  for (int i = 0; i < K; ++i) {
    // Clusters of overlapping boxes (many suppressions), score ties, a few degenerate boxes.
    const float cy = (float)(rng.next() % 8) * 40.f + rng.uniform(-6.f, 6.f);
    const float cx = (float)(rng.next() % 8) * 40.f + rng.uniform(-6.f, 6.f);
    const float h = i % 97 == 5 ? 0.f : rng.uniform(8.f, 60.f), w = rng.uniform(8.f, 60.f);
    boxes[4 * i + 0] = cy - h / 2, boxes[4 * i + 1] = cx - w / 2, boxes[4 * i + 2] = cy + h / 2,
    boxes[4 * i + 3] = cx + w / 2;
    scores[i] = (float)(rng.next() % 200) / 200.f;
  }
  std::vector<int32_t> order(K);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return scores[a] > scores[b]; });
  std::vector<float> sorted((size_t)K * 4);
  for (int j = 0; j < K; ++j) memcpy(&sorted[4 * j], &boxes[4 * order[j]], 16);
  const float thr = 0.5f;
  DevBuf d_boxes(sorted.size() * 4), d_mask(cuda::nms_mask_words(1, K) * 8), d_rem(cuda::nms_removed_words(1, K) * 8),
      d_keep((size_t)K * 4), d_cnt(4);
  bool ok = upload(d_boxes, sorted) && d_mask.p && d_rem.p && d_keep.p && d_cnt.p;
  CHECK(ok, "NMS upload");
  if (!ok) return;
  const cudaError_t e = cuda::nms_cuda((const float*)d_boxes.p, nullptr, nullptr, 1, K, thr, max_keep,
                                       (uint64_t*)d_mask.p, (uint64_t*)d_rem.p, (int32_t*)d_keep.p, K,
                                       (int32_t*)d_cnt.p, 0);
  CHECK(e == cudaSuccess, "NMS: %s", cudaGetErrorString(e));
  std::vector<int32_t> g_keep(K, -1), g_cnt(1);
  CHECK(download(g_keep, d_keep) && download(g_cnt, d_cnt), "download");
  std::vector<int32_t> c_keep(K, -1);
  const int c_cnt = nms_cpu(boxes.data(), scores.data(), K, thr, max_keep, c_keep.data(), nullptr);
  std::vector<int32_t> g_idx(K, -1);
  for (int j = 0; j < g_cnt[0] && j < K; ++j) g_idx[j] = g_keep[j] >= 0 && g_keep[j] < K ? order[g_keep[j]] : -2;
  for (int j = c_cnt; j < K; ++j) c_keep[j] = -1;
  cs.i32(g_cnt.data(), &c_cnt, 1);
  cs.i32(g_idx.data(), c_keep.data(), K);
  CHECK(g_cnt[0] == c_cnt, "NMS K=%d: gpu keeps %d, cpu %d", K, g_cnt[0], c_cnt);
  if (max_keep < K)
    CHECK(c_cnt == max_keep, "NMS K=%d: test input keeps %d boxes (want the limit, %d)", K, c_cnt, max_keep);
  else
    CHECK(c_cnt > 1 && c_cnt < K, "NMS K=%d: test input keeps %d boxes (want suppressions)", K, c_cnt);
  printf("NMS K=%d max_keep=%d: %d kept\n", K, max_keep, c_cnt);
  CHECK(cs.mismatches == 0, "NMS K=%d max_keep=%d: %zu kept indices differ from the CPU NMS", K, max_keep,
        cs.mismatches);
}

static bool wanted(const char* only, const char* op) {
  if (only == nullptr) return true;
  const std::string list = std::string(",") + only + ",";
  return list.find(std::string(",") + op + ",") != std::string::npos;
}

int main(int argc, char** argv) {
  const char* only = nullptr;
  for (int i = 1; i < argc; ++i) {
    if (!strcmp(argv[i], "--only") && i + 1 < argc) {
      only = argv[++i];
    } else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
      const int t = atoi(argv[++i]);
      if (t < 1 || t > 1024) {
        fprintf(stderr, "--threads: 1..1024\n");
        return 2;
      }
      cuda::set_block_threads(t);
    } else {
      fprintf(stderr, "usage: %s [--only OP[,OP...]] [--threads N]\n", argv[0]);
      return 2;
    }
  }
  check_host_side();
  int ndev = 0;
  const cudaError_t e = cudaGetDeviceCount(&ndev);
  if (e != cudaSuccess || ndev == 0) {
    check_no_device_errors();
    printf("GPU: skipped (%s)\n", e != cudaSuccess ? cudaGetErrorName(e) : "no device");
  } else {
    for (DType dt : {DType::kFloat32, DType::kFloat16}) {
      if (wanted(only, "PyramidROIAlign")) compare_pyramid(dt);
      if (wanted(only, "ProposalLayer")) compare_proposal(dt);
      if (wanted(only, "DetectionLayer")) compare_detection(dt);
    }
    if (wanted(only, "NMS")) {
      compare_nms(1000, 1000);
      compare_nms(1000, 100);
    }
    CHECK(cudaDeviceSynchronize() == cudaSuccess, "device error");
    printf("GPU: compared\n");
  }
  printf("%s (%d failures)\n", g_failures ? "FAILED" : "OK", g_failures);
  return g_failures ? 1 : 0;
}
