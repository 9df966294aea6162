// CPU ProposalLayer and generic NMS (see proposal_layer.h).
#include "proposal_layer.h"

#include <string.h>

#include <algorithm>

#include "../common/cpu_util.h"
#include "../common/mrcnn_math.h"

namespace mrcnn {
namespace {

// Per-image scratch of the proposal layer.
struct ProposalScratch {
  uint64_t* keys;   // [A]  (score key << 32 | anchor)
  Box* boxes;       // [k]  decoded, clipped, in score order
  int32_t* keep;    // [post]
  cpu::KeptBoxes kept;  // [post]

  static ProposalScratch carve(cpu::Arena& a, const ProposalLayerParams& p) {
    const size_t k = (size_t)std::min(p.pre_nms_topk, p.A);
    const size_t post = (size_t)std::min(p.post_nms_topk, (int)k);
    ProposalScratch s;
    s.keys = a.take<uint64_t>((size_t)p.A);
    s.boxes = a.take<Box>(k);
    s.keep = a.take<int32_t>(post);
    s.kept = cpu::KeptBoxes::carve(a, post);
    return s;
  }
};

size_t per_image_bytes(const ProposalLayerParams& p) {
  cpu::Arena a;
  ProposalScratch::carve(a, p);
  return a.size();
}

// Sorts the first k of n keys ascending (= score descending, ties by index).
void top_k_keys(uint64_t* keys, int n, int k) {
  if (k < n) {
    std::nth_element(keys, keys + k, keys + n);
    std::sort(keys, keys + k);
  } else {
    std::sort(keys, keys + n);
  }
}

template <typename T>
void proposal_image(const ProposalLayerParams& p, const T* scores, const T* deltas, const float* anchors,
                    float* rois, int32_t* count, int32_t* anchor_index, ProposalScratch s) {
  const int A = p.A;
  const int post = p.post_nms_topk;
  const int k = std::min(p.pre_nms_topk, A);
  for (int a = 0; a < A; ++a) s.keys[a] = score_index_key(cpu::load(scores, a), (uint32_t)a);
  top_k_keys(s.keys, A, k);

  const float S = (float)p.image_size;
  for (int j = 0; j < k; ++j) {
    const int a = (int)(uint32_t)s.keys[j];
    const Box anchor = load_box(anchors + 4 * (int64_t)a);
    const int64_t d = 4 * (int64_t)a;
    const Box b = decode_box(anchor, cpu::load(deltas, d), cpu::load(deltas, d + 1), cpu::load(deltas, d + 2),
                             cpu::load(deltas, d + 3), p.rpn_bbox_std_dev);
    s.boxes[j] = clip_box(b, 0.0f, 0.0f, S, S);
  }
  const int m = cpu::greedy_nms_sorted(
      k, [&](int j) { return s.boxes[j]; }, p.nms_threshold, post, s.kept, s.keep);
  for (int j = 0; j < m; ++j) {
    store_box(rois + 4 * (int64_t)j, divide_box(s.boxes[s.keep[j]], S));
    if (anchor_index) anchor_index[j] = (int32_t)(uint32_t)s.keys[s.keep[j]];
  }
  memset(rois + 4 * (int64_t)m, 0, sizeof(float) * 4 * (size_t)(post - m));
  if (anchor_index)
    for (int j = m; j < post; ++j) anchor_index[j] = -1;
  *count = m;
}

template <typename T>
void proposal_impl(const ProposalLayerParams& p, const void* scores, const void* deltas, const float* anchors,
                   float* rois, int32_t* count, int32_t* anchor_index, void* workspace, const CpuParallel* par) {
  const T* sc = static_cast<const T*>(scores);
  const T* de = static_cast<const T*>(deltas);
  const int post = p.post_nms_topk;
  cpu::for_each_image(par, p.N, per_image_bytes(p), workspace, [&](int64_t n, cpu::Arena& arena) {
    ProposalScratch s = ProposalScratch::carve(arena, p);
    proposal_image<T>(p, sc + n * (int64_t)p.A, de + n * (int64_t)p.A * 4, anchors, rois + n * (int64_t)post * 4,
                      count + n, anchor_index ? anchor_index + n * (int64_t)post : nullptr, s);
  });
}

}  // namespace

size_t proposal_layer_cpu_workspace(const ProposalLayerParams& p) { return per_image_bytes(p) * (size_t)p.N + 64; }

void proposal_layer_cpu(const ProposalLayerParams& p, DType dtype, const void* scores, const void* deltas,
                        const float* anchors, float* rois, int32_t* count, int32_t* anchor_index, void* workspace,
                        const CpuParallel* par) {
  if (dtype == DType::kFloat16)
    proposal_impl<uint16_t>(p, scores, deltas, anchors, rois, count, anchor_index, workspace, par);
  else
    proposal_impl<float>(p, scores, deltas, anchors, rois, count, anchor_index, workspace, par);
}

// ------------------------------------------------------------ generic NMS
namespace {
struct NmsScratch {
  uint64_t* keys;
  int32_t* keep_pos;
  cpu::KeptBoxes kept;
  static NmsScratch carve(cpu::Arena& a, int K) {
    NmsScratch s;
    s.keys = a.take<uint64_t>((size_t)K);
    s.keep_pos = a.take<int32_t>((size_t)K);
    s.kept = cpu::KeptBoxes::carve(a, (size_t)K);
    return s;
  }
};
}  // namespace

size_t nms_cpu_workspace(int K) {
  cpu::Arena a;
  NmsScratch::carve(a, K);
  return a.size() + 64;
}

int nms_cpu(const float* boxes, const float* scores, int K, float threshold, int max_keep, int32_t* keep,
            void* workspace) {
  if (K <= 0) return 0;
  cpu::Workspace ws(workspace, nms_cpu_workspace(K));
  cpu::Arena arena(ws.get());
  NmsScratch s = NmsScratch::carve(arena, K);
  for (int i = 0; i < K; ++i) s.keys[i] = score_index_key(scores[i], (uint32_t)i);
  std::sort(s.keys, s.keys + K);
  const int limit = max_keep < 0 ? K : std::min(max_keep, K);
  const int m = cpu::greedy_nms_sorted(
      K, [&](int j) { return load_box(boxes + 4 * (int64_t)(uint32_t)s.keys[j]); }, threshold, limit, s.kept,
      s.keep_pos);
  for (int j = 0; j < m; ++j) keep[j] = (int32_t)(uint32_t)s.keys[s.keep_pos[j]];
  return m;
}

}  // namespace mrcnn
