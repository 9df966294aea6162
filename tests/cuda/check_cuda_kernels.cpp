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
// Prints "GPU: skipped (...)" or "GPU: compared" and exits non-zero on any failure.
#include <cuda_runtime_api.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <vector>

#include "common/mrcnn_math.h"
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
  size_t bad = 0;
  for (size_t i = 0; i < g.size(); ++i) bad += memcmp(&g[i], &c[i], sizeof(float)) != 0;
  CHECK(bad == 0, "DetectionLayer (%s): %zu of %zu output values differ from the CPU kernel (bits)", tag, bad,
        g.size());
}

int main() {
  check_host_side();
  int ndev = 0;
  const cudaError_t e = cudaGetDeviceCount(&ndev);
  if (e != cudaSuccess || ndev == 0) {
    check_no_device_errors();
    printf("GPU: skipped (%s)\n", e != cudaSuccess ? cudaGetErrorName(e) : "no device");
  } else {
    for (DType dt : {DType::kFloat32, DType::kFloat16}) {
      compare_pyramid(dt);
      compare_proposal(dt);
      compare_detection(dt);
    }
    CHECK(cudaDeviceSynchronize() == cudaSuccess, "device error");
    printf("GPU: compared\n");
  }
  printf("%s (%d failures)\n", g_failures ? "FAILED" : "OK", g_failures);
  return g_failures ? 1 : 0;
}
