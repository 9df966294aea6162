// DetectionLayer, CUDA. Per image (all images in one launch each step):
//   1. per ROI r < roi_count: class = argmax (first max, NaN wins), score,
//      refine with that class's deltas * std, * image_size, clip to the
//      window, round half to even. A candidate (class > 0, score filter) gets
//      the key  class << 52 | score_sort_key(score) << 20 | r  (else ~0);
//   2. CUB segmented sort of the keys: candidates grouped by class
//      (ascending), within a class by score desc / ROI asc, then the rest;
//   3. bitmask NMS on that list where a box only suppresses boxes of its own
//      class (= per-class greedy NMS), no limit on the kept count;
//   4. survivors get the key  score_sort_key(score) << 32 | r  (else ~0);
//      second segmented sort -> score desc, ROI asc;
//   5. detections[n, j] = the first min(survivors, max_instances) of them as
//      (y1, x1, y2, x2, class, score); zero rows after; count[n].
#include "detection_layer.h"

#include <algorithm>

#include "../common/cuda_common.cuh"
#include "../common/mrcnn_math.h"
#include "../common/nms_cuda.h"

namespace mrcnn {
namespace {

using cuda::Carver;

constexpr uint64_t kNoKey = ~0ull;   // non-candidates sort last
constexpr int kRoiBits = 20;         // ROI index bits of the first key
constexpr int kMaxRois = (1 << kRoiBits) - 1;  // R <= this keeps every real key != kNoKey
constexpr int kMaxClasses = 1 << (64 - 32 - kRoiBits);  // 4096: class bits of the first key

struct DetectionWorkspace {
  float* boxes = nullptr;        // [N, R, 4] refined boxes by ROI
  int32_t* cls = nullptr;        // [N, R] class by ROI
  float* score = nullptr;        // [N, R] score by ROI
  uint64_t* keys = nullptr;      // [N, R]
  uint64_t* keys_alt = nullptr;  // [N, R]
  float* cand_boxes = nullptr;   // [N, R, 4] boxes in candidate (class, score) order
  int32_t* cand_cls = nullptr;   // [N, R] their classes
  int32_t* cand_roi = nullptr;   // [N, R] their ROI rows
  int32_t* num_cand = nullptr;   // [N] candidates per image
  uint64_t* mask = nullptr;      // NMS bitmask
  uint64_t* removed = nullptr;   // NMS pass state
  int32_t* keep = nullptr;       // [N, R] kept candidate positions
  int32_t* num_kept = nullptr;   // [N]
  void* sort_ws = nullptr;
  size_t sort_bytes = 0;
  size_t total = 0;

  DetectionWorkspace(const DetectionLayerParams& p, void* base) {
    const int64_t NR = (int64_t)p.N * p.R;
    Carver c(base);
    boxes = c.take<float>(NR * 4);
    cls = c.take<int32_t>(NR);
    score = c.take<float>(NR);
    keys = c.take<uint64_t>(NR);
    keys_alt = c.take<uint64_t>(NR);
    cand_boxes = c.take<float>(NR * 4);
    cand_cls = c.take<int32_t>(NR);
    cand_roi = c.take<int32_t>(NR);
    num_cand = c.take<int32_t>(p.N);
    mask = c.take<uint64_t>(cuda::nms_mask_words(p.N, p.R));
    removed = c.take<uint64_t>(cuda::nms_removed_words(p.N, p.R));
    keep = c.take<int32_t>(NR);
    num_kept = c.take<int32_t>(p.N);
    sort_bytes = cuda::segmented_sort_u64_workspace(p.N);
    sort_ws = c.take<char>((int64_t)sort_bytes);
    total = c.bytes();
  }
};

// Step 1: one thread per (n, r).
template <typename T>
__global__ void detection_refine_kernel(DetectionLayerParams p, const float* rois, const int32_t* roi_count,
                                        const T* probs, const T* deltas, const float* window, float* boxes,
                                        int32_t* cls_out, float* score_out, uint64_t* keys) {
  const int K = p.num_classes;
  const float S = (float)p.image_size;
  const bool filter = p.min_confidence > 0.0f;
  MRCNN_GRID_STRIDE_LOOP(i, (int64_t)p.N * p.R) {
    const int64_t n = i / p.R;
    const int r = (int)(i % p.R);
    const int m = min(max(roi_count[n], 0), p.R);
    uint64_t key = kNoKey;
    if (r < m) {
      const T* pr = probs + i * K;
      float score;
      const int c = argmax_first([&](int k) { return cuda::to_float(pr[k]); }, K, &score);
      const T* d = deltas + (i * K + c) * 4;
      Box b = decode_box(load_box(rois + i * 4), cuda::to_float(d[0]), cuda::to_float(d[1]), cuda::to_float(d[2]),
                         cuda::to_float(d[3]), p.bbox_std_dev);
      const float* w = window + n * 4;
      b = round_box(clip_box(scale_box(b, S), w[0], w[1], w[2], w[3]));
      store_box(boxes + i * 4, b);
      cls_out[i] = c;
      score_out[i] = score;
      if (c > 0 && (!filter || score >= p.min_confidence))
        key = ((uint64_t)c << 52) | ((uint64_t)score_sort_key(score) << kRoiBits) | (uint64_t)r;
    }
    keys[i] = key;
  }
}

// Step 2b: candidates in sorted order; num_cand[n] (zeroed before) = their count.
__global__ void detection_gather_kernel(int N, int R, const uint64_t* sorted, const float* boxes, const int32_t* cls,
                                        float* cand_boxes, int32_t* cand_cls, int32_t* cand_roi, int32_t* num_cand) {
  MRCNN_GRID_STRIDE_LOOP(i, (int64_t)N * R) {
    const int64_t n = i / R;
    const int j = (int)(i % R);
    const uint64_t key = sorted[i];
    if (key == kNoKey) {  // past the candidates: never read by the NMS pass
      store_box(cand_boxes + i * 4, Box{0.0f, 0.0f, 0.0f, 0.0f});
      cand_cls[i] = -1;
      cand_roi[i] = -1;
      continue;
    }
    const int r = (int)(key & ((1u << kRoiBits) - 1));
    const int64_t src = n * R + r;
    store_box(cand_boxes + i * 4, load_box(boxes + src * 4));
    cand_cls[i] = cls[src];
    cand_roi[i] = r;
    if (j == R - 1 || sorted[i + 1] == kNoKey) num_cand[n] = j + 1;  // last candidate of the image
  }
}

// Step 4: survivors keyed by score desc / ROI asc.
__global__ void detection_survivor_keys_kernel(int N, int R, const int32_t* keep, const int32_t* num_kept,
                                               const int32_t* cand_roi, const float* score, uint64_t* keys) {
  MRCNN_GRID_STRIDE_LOOP(i, (int64_t)N * R) {
    const int64_t n = i / R;
    const int j = (int)(i % R);
    uint64_t key = kNoKey;
    if (j < num_kept[n]) {
      const int r = cand_roi[n * R + keep[i]];
      key = ((uint64_t)score_sort_key(score[n * R + r]) << 32) | (uint64_t)r;
    }
    keys[i] = key;
  }
}

// Step 5: one thread per output row.
__global__ void detection_output_kernel(DetectionLayerParams p, const uint64_t* sorted, const int32_t* num_kept,
                                        const float* boxes, const int32_t* cls, const float* score, float* dets,
                                        int32_t* count) {
  const int M = p.max_instances;
  MRCNN_GRID_STRIDE_LOOP(i, (int64_t)p.N * M) {
    const int64_t n = i / M;
    const int j = (int)(i % M);
    const int c = min(num_kept[n], M);
    float* row = dets + i * 6;
    if (j < c) {
      const int64_t src = n * p.R + (uint32_t)sorted[n * p.R + j];  // low 32 bits: ROI
      store_box(row, load_box(boxes + src * 4));
      row[4] = (float)cls[src];
      row[5] = score[src];
    } else {
      for (int e = 0; e < 6; ++e) row[e] = 0.0f;
    }
    if (j == 0) count[n] = c;
  }
}

template <typename T>
cudaError_t launch(const DetectionLayerParams& p, const float* rois, const int32_t* roi_count, const void* probs,
                   const void* deltas, const float* window, float* dets, int32_t* count, void* workspace,
                   cudaStream_t stream) {
  const int64_t NR = (int64_t)p.N * p.R;
  const unsigned int grid = cuda::blocks_for(NR);
  DetectionWorkspace ws(p, workspace);

  detection_refine_kernel<T><<<grid, cuda::block_threads(), 0, stream>>>(
      p, rois, roi_count, static_cast<const T*>(probs), static_cast<const T*>(deltas), window, ws.boxes, ws.cls,
      ws.score, ws.keys);
  MRCNN_CUDA_TRY(cudaGetLastError());
  uint64_t* sorted = nullptr;
  MRCNN_CUDA_TRY(cuda::segmented_sort_u64(ws.keys, ws.keys_alt, p.N, p.R, ws.sort_ws, ws.sort_bytes, &sorted,
                                          stream));
  MRCNN_CUDA_TRY(cudaMemsetAsync(ws.num_cand, 0, sizeof(int32_t) * (size_t)p.N, stream));
  detection_gather_kernel<<<grid, cuda::block_threads(), 0, stream>>>(p.N, p.R, sorted, ws.boxes, ws.cls, ws.cand_boxes,
                                                              ws.cand_cls, ws.cand_roi, ws.num_cand);
  MRCNN_CUDA_TRY(cudaGetLastError());

  MRCNN_CUDA_TRY(cuda::nms_cuda(ws.cand_boxes, ws.cand_cls, ws.num_cand, p.N, p.R, p.nms_threshold,
                                /*max_keep=*/p.R, ws.mask, ws.removed, ws.keep, p.R, ws.num_kept, stream));

  detection_survivor_keys_kernel<<<grid, cuda::block_threads(), 0, stream>>>(p.N, p.R, ws.keep, ws.num_kept, ws.cand_roi,
                                                                     ws.score, ws.keys);
  MRCNN_CUDA_TRY(cudaGetLastError());
  MRCNN_CUDA_TRY(cuda::segmented_sort_u64(ws.keys, ws.keys_alt, p.N, p.R, ws.sort_ws, ws.sort_bytes, &sorted,
                                          stream));

  detection_output_kernel<<<cuda::blocks_for((int64_t)p.N * p.max_instances), cuda::block_threads(), 0, stream>>>(
      p, sorted, ws.num_kept, ws.boxes, ws.cls, ws.score, dets, count);
  return cudaGetLastError();
}

}  // namespace

size_t detection_layer_cuda_workspace(const DetectionLayerParams& p) { return DetectionWorkspace(p, nullptr).total; }

cudaError_t detection_layer_cuda(const DetectionLayerParams& p, DType dtype, const float* rois,
                                 const int32_t* roi_count, const void* probs, const void* deltas,
                                 const float* window, float* detections, int32_t* count, void* workspace,
                                 cudaStream_t stream) {
  if (!validate(p).empty() || !validate_sizes(p).empty()) return cudaErrorInvalidValue;
  if (p.num_classes > kMaxClasses || p.R > kMaxRois || p.N > 65535) return cudaErrorInvalidValue;
  if ((int64_t)p.N * p.R > (int64_t)INT32_MAX) return cudaErrorInvalidValue;
  if (p.N == 0) return cudaSuccess;
  if (p.R == 0) {  // no ROIs: every row and count is zero
    MRCNN_CUDA_TRY(cudaMemsetAsync(detections, 0, sizeof(float) * 6 * (size_t)p.N * p.max_instances, stream));
    return cudaMemsetAsync(count, 0, sizeof(int32_t) * (size_t)p.N, stream);
  }
  if (workspace == nullptr) return cudaErrorInvalidValue;
  switch (dtype) {
    case DType::kFloat32:
      return launch<float>(p, rois, roi_count, probs, deltas, window, detections, count, workspace, stream);
    case DType::kFloat16:
      return launch<uint16_t>(p, rois, roi_count, probs, deltas, window, detections, count, workspace, stream);
  }
  return cudaErrorInvalidValue;
}

}  // namespace mrcnn
