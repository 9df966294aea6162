// Building blocks shared by the ProposalLayer and DetectionLayer CUDA kernels
// (implemented in plugins/common/nms_cuda.cu, the only file that includes CUB):
//
//   * segmented_sort_u64: ascending sort of uint64 keys per fixed-length
//     segment (CUB DeviceSegmentedRadixSort, all 64 bits). The callers make
//     every key unique by putting the element index in its low bits
//     (mrcnn::score_index_key), so the order is total and "stable".
//   * nms_cuda: greedy NMS (+1 areas, IoU > threshold suppresses, NaN never
//     suppresses) on boxes that are already in priority order: a bitmask
//     kernel (box i vs. every later box j, 64 columns per word) followed by a
//     sequential pass per segment that walks i = 0, 1, ... and keeps i unless a
//     kept box's mask row has bit i set.
//
// Device pointers throughout; every function returns the first CUDA error.
#pragma once

#include <cuda_runtime_api.h>
#include <stddef.h>
#include <stdint.h>

namespace mrcnn {
namespace cuda {

// ----------------------------------------------------------- segmented sort
// Scratch bytes segmented_sort_u64 needs for `num_segments` segments.
size_t segmented_sort_u64_workspace(int num_segments);

// Sorts keys [num_segments * seg_len] ascending within each segment
// [s*seg_len, (s+1)*seg_len). `keys` holds the input, `alt` is a second
// buffer of the same size; *sorted is set to whichever of the two holds the
// result (the other one is clobbered). num_segments * seg_len must fit an int.
cudaError_t segmented_sort_u64(uint64_t* keys, uint64_t* alt, int num_segments, int seg_len, void* workspace,
                               size_t workspace_bytes, uint64_t** sorted, cudaStream_t stream);

// ------------------------------------------------------------- block size
// Threads per block of every launch of the project's kernels (not CUB's):
// 0 (the default) = each kernel's own choice (256; 64 for the NMS mask
// kernel). The results do not depend on it; tests run 32 (one warp) and 1024
// threads per block to show that. Process-wide and not thread-safe: set it
// before launching, from tests only (the libraries do not export it).
void set_block_threads(int threads);

// --------------------------------------------------------------------- NMS
// Words of one mask row for K boxes.
inline int nms_col_words(int K) { return (K + 63) / 64; }

// Sizes (in elements) of the scratch arrays nms_cuda needs.
inline int64_t nms_mask_words(int num_segments, int K) {
  return (int64_t)num_segments * K * nms_col_words(K);
}
inline int64_t nms_removed_words(int num_segments, int K) { return (int64_t)num_segments * nms_col_words(K); }

// boxes      [S, K, 4] float32 (y1, x1, y2, x2), each segment in priority order
// classes    [S, K] int32 or nullptr: when given, a box only suppresses boxes
//            of the same class (per-class NMS on a class-grouped list)
// num_valid  [S] int32 or nullptr: only the first num_valid[s] boxes of a
//            segment take part (nullptr: all K)
// max_keep   stop a segment after this many kept boxes (K or more: no limit)
// mask       [nms_mask_words(S, K)] uint64 scratch
// removed    [nms_removed_words(S, K)] uint64 scratch
// keep (out) [S, keep_stride] int32: positions (0..K-1) of the kept boxes,
//            ascending; only the first keep_count[s] entries are written
// keep_count (out) [S] int32
// Requires keep_stride >= min(K, max_keep), S <= 65535, nms_col_words(K) <= 65535.
cudaError_t nms_cuda(const float* boxes, const int32_t* classes, const int32_t* num_valid, int S, int K,
                     float threshold, int max_keep, uint64_t* mask, uint64_t* removed, int32_t* keep,
                     int keep_stride, int32_t* keep_count, cudaStream_t stream);

}  // namespace cuda
}  // namespace mrcnn
