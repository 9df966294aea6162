// ProposalLayer, CUDA. Per image (all images in one launch each step):
//   1. key[a] = score_index_key(score[a], a): ascending key = descending
//      score (NaN as -inf), ties by lower anchor index;
//   2. CUB segmented radix sort of the keys (one segment per image);
//   3. the first k = min(pre_nms_topk, A): decode (deltas * std) on the
//      anchor, clip to [0, image_size]  -> boxes in score order;
//   4. bitmask NMS + sequential pass, stopping after post_nms_topk kept
//      (plugins/common/nms_cuda.cu); count[n] = kept;
//   5. rois[n, j] = kept box j / image_size, zero rows past the count;
//      anchor_index (optional) = its anchor, -1 past the count.
#include "proposal_layer.h"

#include <algorithm>

#include "../common/cuda_common.cuh"
#include "../common/mrcnn_math.h"
#include "../common/nms_cuda.h"

namespace mrcnn {
namespace {

using cuda::Carver;

// Workspace arrays; the same function sizes (base == nullptr) and carves.
struct ProposalWorkspace {
  uint64_t* keys = nullptr;       // [N, A] sort keys
  uint64_t* keys_alt = nullptr;   // [N, A] second sort buffer
  float* boxes = nullptr;         // [N, k, 4] decoded boxes in score order (pixels)
  int32_t* anchor_of = nullptr;   // [N, k] anchor of each of those boxes
  uint64_t* mask = nullptr;       // NMS bitmask
  uint64_t* removed = nullptr;    // NMS pass state
  int32_t* keep = nullptr;        // [N, post] kept positions (0..k-1)
  void* sort_ws = nullptr;
  size_t sort_bytes = 0;
  size_t total = 0;

  ProposalWorkspace(const ProposalLayerParams& p, void* base) {
    const int k = std::min(p.pre_nms_topk, p.A);
    const int64_t NA = (int64_t)p.N * p.A;
    Carver c(base);
    keys = c.take<uint64_t>(NA);
    keys_alt = c.take<uint64_t>(NA);
    boxes = c.take<float>((int64_t)p.N * k * 4);
    anchor_of = c.take<int32_t>((int64_t)p.N * k);
    mask = c.take<uint64_t>(cuda::nms_mask_words(p.N, k));
    removed = c.take<uint64_t>(cuda::nms_removed_words(p.N, k));
    keep = c.take<int32_t>((int64_t)p.N * p.post_nms_topk);
    sort_bytes = cuda::segmented_sort_u64_workspace(p.N);
    sort_ws = c.take<char>((int64_t)sort_bytes);
    total = c.bytes();
  }
};

template <typename T>
__global__ void proposal_keys_kernel(const T* scores, int64_t total, int A, uint64_t* keys) {
  MRCNN_GRID_STRIDE_LOOP(i, total) {
    keys[i] = score_index_key(cuda::to_float(scores[i]), (uint32_t)(i % A));
  }
}

// boxes[n, j] for j < k from the j-th smallest key of image n.
template <typename T>
__global__ void proposal_decode_kernel(ProposalLayerParams p, int k, const uint64_t* sorted_keys, const T* deltas,
                                       const float* anchors, float* boxes, int32_t* anchor_of) {
  const float S = (float)p.image_size;
  MRCNN_GRID_STRIDE_LOOP(i, (int64_t)p.N * k) {
    const int64_t n = i / k;
    const int64_t j = i % k;
    const uint32_t a = (uint32_t)sorted_keys[n * p.A + j];  // low 32 bits: anchor index
    const T* d = deltas + (n * p.A + a) * 4;
    const Box b = decode_box(load_box(anchors + (int64_t)a * 4), cuda::to_float(d[0]), cuda::to_float(d[1]),
                             cuda::to_float(d[2]), cuda::to_float(d[3]), p.rpn_bbox_std_dev);
    store_box(boxes + i * 4, clip_box(b, 0.0f, 0.0f, S, S));
    anchor_of[i] = (int32_t)a;
  }
}

__global__ void proposal_output_kernel(ProposalLayerParams p, int k, const float* boxes, const int32_t* anchor_of,
                                       const int32_t* keep, const int32_t* count, float* rois,
                                       int32_t* anchor_index) {
  const int post = p.post_nms_topk;
  const float S = (float)p.image_size;
  MRCNN_GRID_STRIDE_LOOP(i, (int64_t)p.N * post) {
    const int64_t n = i / post;
    const int j = (int)(i % post);
    if (j < count[n]) {
      const int64_t src = n * k + keep[i];
      store_box(rois + i * 4, divide_box(load_box(boxes + src * 4), S));
      if (anchor_index != nullptr) anchor_index[i] = anchor_of[src];
    } else {
      store_box(rois + i * 4, Box{0.0f, 0.0f, 0.0f, 0.0f});
      if (anchor_index != nullptr) anchor_index[i] = -1;
    }
  }
}

template <typename T>
cudaError_t launch(const ProposalLayerParams& p, const void* scores_v, const void* deltas_v, const float* anchors,
                   float* rois, int32_t* count, int32_t* anchor_index, void* workspace, cudaStream_t stream) {
  const T* scores = static_cast<const T*>(scores_v);
  const T* deltas = static_cast<const T*>(deltas_v);
  const int k = std::min(p.pre_nms_topk, p.A);
  const int64_t NA = (int64_t)p.N * p.A;
  ProposalWorkspace ws(p, workspace);

  uint64_t* sorted = ws.keys;
  if (k > 0) {
    proposal_keys_kernel<T><<<cuda::blocks_for(NA), cuda::block_threads(), 0, stream>>>(scores, NA, p.A, ws.keys);
    MRCNN_CUDA_TRY(cudaGetLastError());
    MRCNN_CUDA_TRY(cuda::segmented_sort_u64(ws.keys, ws.keys_alt, p.N, p.A, ws.sort_ws, ws.sort_bytes, &sorted,
                                            stream));
    proposal_decode_kernel<T><<<cuda::blocks_for((int64_t)p.N * k), cuda::block_threads(), 0, stream>>>(
        p, k, sorted, deltas, anchors, ws.boxes, ws.anchor_of);
    MRCNN_CUDA_TRY(cudaGetLastError());
  }
  MRCNN_CUDA_TRY(cuda::nms_cuda(ws.boxes, /*classes=*/nullptr, /*num_valid=*/nullptr, p.N, k, p.nms_threshold,
                                p.post_nms_topk, ws.mask, ws.removed, ws.keep, p.post_nms_topk, count, stream));
  proposal_output_kernel<<<cuda::blocks_for((int64_t)p.N * p.post_nms_topk), cuda::block_threads(), 0, stream>>>(
      p, k, ws.boxes, ws.anchor_of, ws.keep, count, rois, anchor_index);
  return cudaGetLastError();
}

}  // namespace

size_t proposal_layer_cuda_workspace(const ProposalLayerParams& p) { return ProposalWorkspace(p, nullptr).total; }

cudaError_t proposal_layer_cuda(const ProposalLayerParams& p, DType dtype, const void* scores, const void* deltas,
                                const float* anchors, float* rois, int32_t* count, int32_t* anchor_index,
                                void* workspace, cudaStream_t stream) {
  if (!validate(p).empty() || !validate_sizes(p).empty()) return cudaErrorInvalidValue;
  if (p.N == 0) return cudaSuccess;
  if (p.N > 65535 || (int64_t)p.N * p.A > (int64_t)INT32_MAX) return cudaErrorInvalidValue;
  if (workspace == nullptr && p.A > 0) return cudaErrorInvalidValue;
  switch (dtype) {
    case DType::kFloat32:
      return launch<float>(p, scores, deltas, anchors, rois, count, anchor_index, workspace, stream);
    case DType::kFloat16:
      return launch<uint16_t>(p, scores, deltas, anchors, rois, count, anchor_index, workspace, stream);
  }
  return cudaErrorInvalidValue;
}

}  // namespace mrcnn
