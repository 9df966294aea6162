// CPU DetectionLayer (see detection_layer.h).
#include "detection_layer.h"

#include <string.h>

#include <algorithm>

#include "../common/cpu_util.h"
#include "../common/mrcnn_math.h"

namespace mrcnn {
namespace {

struct Candidate {
  Box box;       // refined, clipped, rounded pixels
  float score;
  int32_t cls;
  int32_t roi;   // ROI row (ascending = the reference's order)
  uint64_t key;  // score_index_key(score, roi)
};

// Per-image scratch.
struct DetectionScratch {
  Candidate* cand;     // [R]
  int32_t* keep_pos;   // [R]
  uint64_t* surv;      // [R] survivor keys (score desc, roi asc) ...
  int32_t* surv_cand;  // [R] ... and their candidate position (via the key's low bits: roi)
  cpu::KeptBoxes kept; // [R]

  static DetectionScratch carve(cpu::Arena& a, int R) {
    DetectionScratch s;
    s.cand = a.take<Candidate>((size_t)R);
    s.keep_pos = a.take<int32_t>((size_t)R);
    s.surv = a.take<uint64_t>((size_t)R);
    s.surv_cand = a.take<int32_t>((size_t)R);
    s.kept = cpu::KeptBoxes::carve(a, (size_t)R);
    return s;
  }
};

size_t per_image_bytes(const DetectionLayerParams& p) {
  cpu::Arena a;
  DetectionScratch::carve(a, p.R);
  return a.size();
}

template <typename T>
void detection_image(const DetectionLayerParams& p, const float* rois, int32_t roi_count, const T* probs,
                     const T* deltas, const float* window, float* dets, int32_t* count, DetectionScratch s) {
  const int K = p.num_classes;
  const int m = std::max(0, std::min(roi_count, p.R));
  const float S = (float)p.image_size;
  const bool filter = p.min_confidence > 0.0f;
  const float wy1 = window[0], wx1 = window[1], wy2 = window[2], wx2 = window[3];

  // 1. class, score, refined box of every ROI that survives the filters.
  int nc = 0;
  for (int r = 0; r < m; ++r) {
    const T* pr = probs + (int64_t)r * K;
    float score;
    const int cls = argmax_first([&](int k) { return cpu::load(pr, k); }, K, &score);
    if (cls <= 0) continue;
    if (filter && !(score >= p.min_confidence)) continue;
    const int64_t d = ((int64_t)r * K + cls) * 4;
    Box b = decode_box(load_box(rois + 4 * (int64_t)r), cpu::load(deltas, d), cpu::load(deltas, d + 1),
                       cpu::load(deltas, d + 2), cpu::load(deltas, d + 3), p.bbox_std_dev);
    b = round_box(clip_box(scale_box(b, S), wy1, wx1, wy2, wx2));
    s.cand[nc++] = Candidate{b, score, cls, r, score_index_key(score, (uint32_t)r)};
  }

  // 2. group by class (ascending), within a class by score desc / roi asc.
  std::sort(s.cand, s.cand + nc, [](const Candidate& a, const Candidate& b) {
    return a.cls != b.cls ? a.cls < b.cls : a.key < b.key;
  });

  // 3. per-class greedy NMS; survivors keyed by (score desc, roi asc).
  int ns = 0;
  for (int g = 0; g < nc;) {
    int e = g + 1;
    while (e < nc && s.cand[e].cls == s.cand[g].cls) ++e;
    const Candidate* grp = s.cand + g;
    const int kept = cpu::greedy_nms_sorted(
        e - g, [&](int j) { return grp[j].box; }, p.nms_threshold, e - g, s.kept, s.keep_pos);
    for (int j = 0; j < kept; ++j) {
      s.surv[ns] = grp[s.keep_pos[j]].key;
      s.surv_cand[ns] = g + s.keep_pos[j];
      ++ns;
    }
    g = e;
  }

  // 4. top max_instances by score over all classes. Keys are unique (roi in
  //    the low bits), so sorting (key, candidate) pairs by key is a total order.
  const int out_n = std::min(ns, p.max_instances);
  int32_t* order = s.keep_pos;  // reuse: permutation of survivors
  for (int j = 0; j < ns; ++j) order[j] = j;
  auto by_key = [&](int32_t a, int32_t b) { return s.surv[a] < s.surv[b]; };
  if (out_n < ns)
    std::partial_sort(order, order + out_n, order + ns, by_key);
  else
    std::sort(order, order + ns, by_key);
  for (int j = 0; j < out_n; ++j) {
    const Candidate& c = s.cand[s.surv_cand[order[j]]];
    float* row = dets + 6 * (int64_t)j;
    store_box(row, c.box);
    row[4] = (float)c.cls;
    row[5] = c.score;
  }
  memset(dets + 6 * (int64_t)out_n, 0, sizeof(float) * 6 * (size_t)(p.max_instances - out_n));
  *count = out_n;
}

template <typename T>
void detection_impl(const DetectionLayerParams& p, const float* rois, const int32_t* roi_count, const void* probs,
                    const void* deltas, const float* window, float* dets, int32_t* count, void* workspace,
                    const CpuParallel* par) {
  const T* pr = static_cast<const T*>(probs);
  const T* de = static_cast<const T*>(deltas);
  const int64_t K = p.num_classes;
  cpu::for_each_image(par, p.N, per_image_bytes(p), workspace, [&](int64_t n, cpu::Arena& arena) {
    DetectionScratch s = DetectionScratch::carve(arena, p.R);
    detection_image<T>(p, rois + n * (int64_t)p.R * 4, roi_count[n], pr + n * (int64_t)p.R * K,
                       de + n * (int64_t)p.R * K * 4, window + 4 * n, dets + n * (int64_t)p.max_instances * 6,
                       count + n, s);
  });
}

}  // namespace

size_t detection_layer_cpu_workspace(const DetectionLayerParams& p) {
  return per_image_bytes(p) * (size_t)p.N + 64;
}

void detection_layer_cpu(const DetectionLayerParams& p, DType dtype, const float* rois, const int32_t* roi_count,
                         const void* probs, const void* deltas, const float* window, float* detections,
                         int32_t* count, void* workspace, const CpuParallel* par) {
  if (dtype == DType::kFloat16)
    detection_impl<uint16_t>(p, rois, roi_count, probs, deltas, window, detections, count, workspace, par);
  else
    detection_impl<float>(p, rois, roi_count, probs, deltas, window, detections, count, workspace, par);
}

}  // namespace mrcnn
