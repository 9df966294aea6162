// Segmented uint64 sort (CUB) and bitmask NMS shared by the ProposalLayer and
// DetectionLayer CUDA kernels. See nms_cuda.h for the contracts.

// Keep this library's CUB instantiations apart from any other CUB user in the
// same process (TensorRT, PyTorch, ...).
#ifndef CUB_WRAPPED_NAMESPACE
#define CUB_WRAPPED_NAMESPACE mrcnn_cub
#endif
#include <cub/device/device_segmented_radix_sort.cuh>

#include "cuda_common.cuh"
#include "nms_cuda.h"

namespace mrcnn {
namespace cuda {

namespace cub = CUB_NS_QUALIFIER;

// ------------------------------------------------------------ block size
namespace {
int g_block_threads = 0;  // 0: every kernel's own choice
}  // namespace

void set_block_threads(int threads) { g_block_threads = threads > 0 ? threads : 0; }

int block_threads(int fallback) { return g_block_threads > 0 ? g_block_threads : fallback; }

// ----------------------------------------------------------- segmented sort
// With a DoubleBuffer (the caller supplies both buffers) CUB's temporary
// storage is only alignment slack (255 bytes in CUB 1.15); reserve more and
// check the real requirement at run time.
constexpr size_t kCubTempReserve = 4096;

size_t segmented_sort_u64_workspace(int num_segments) {
  Carver c(nullptr);
  c.take<int>((int64_t)num_segments + 1);
  c.take<char>((int64_t)kCubTempReserve);
  return c.bytes();
}

__global__ void segment_offsets_kernel(int* offsets, int num_segments, int seg_len) {
  MRCNN_GRID_STRIDE_LOOP(i, (int64_t)num_segments + 1) { offsets[i] = (int)i * seg_len; }
}

cudaError_t segmented_sort_u64(uint64_t* keys, uint64_t* alt, int num_segments, int seg_len, void* workspace,
                               size_t workspace_bytes, uint64_t** sorted, cudaStream_t stream) {
  *sorted = keys;
  if (num_segments <= 0 || seg_len <= 1) return cudaSuccess;
  if ((int64_t)num_segments * seg_len > (int64_t)INT32_MAX) return cudaErrorInvalidValue;
  if (workspace_bytes < segmented_sort_u64_workspace(num_segments)) return cudaErrorInvalidValue;
  Carver c(workspace);
  int* offsets = c.take<int>((int64_t)num_segments + 1);
  void* temp = c.take<char>((int64_t)kCubTempReserve);

  segment_offsets_kernel<<<blocks_for((int64_t)num_segments + 1), block_threads(), 0, stream>>>(offsets, num_segments,
                                                                                         seg_len);
  MRCNN_CUDA_TRY(cudaGetLastError());

  const int num_items = num_segments * seg_len;
  cub::DoubleBuffer<uint64_t> buf(keys, alt);
  size_t temp_bytes = 0;
  MRCNN_CUDA_TRY(cub::DeviceSegmentedRadixSort::SortKeys(nullptr, temp_bytes, buf, num_items, num_segments,
                                                         offsets, offsets + 1, 0, 64, stream));
  if (temp_bytes > kCubTempReserve) return cudaErrorInvalidValue;
  temp_bytes = kCubTempReserve;
  MRCNN_CUDA_TRY(cub::DeviceSegmentedRadixSort::SortKeys(temp, temp_bytes, buf, num_items, num_segments, offsets,
                                                         offsets + 1, 0, 64, stream));
  MRCNN_CUDA_TRY(cudaGetLastError());
  *sorted = buf.Current();
  return cudaSuccess;
}

// --------------------------------------------------------------------- NMS
constexpr int kNmsCols = 64;  // boxes per mask word

// Grid (col word cb, row block rb, segment s), 64 threads by default (any
// count works: threads stride over the 64 columns and the 64 rows). Row
// i = rb*64 + t (+ blockDim.x ...) gets mask[s][i][cb]: bit u set <=> box i
// suppresses box j = cb*64 + u, for j > i (only words cb >= rb are written;
// the sequential pass reads no others).
__global__ void nms_mask_kernel(const float* boxes, const int32_t* classes, int K, int col_words, float threshold,
                                uint64_t* mask) {
  const int cb = blockIdx.x;
  const int rb = blockIdx.y;
  const int s = blockIdx.z;
  if (cb < rb) return;

  __shared__ Box col_box[kNmsCols];
  __shared__ float col_area[kNmsCols];
  __shared__ int32_t col_class[kNmsCols];

  const int col_start = cb * kNmsCols;
  const int n_cols = min(K - col_start, kNmsCols);
  const int64_t seg_base = (int64_t)s * K;
  for (int t = threadIdx.x; t < n_cols; t += blockDim.x) {
    const Box b = load_box(boxes + (seg_base + col_start + t) * 4);
    col_box[t] = b;
    col_area[t] = box_area_plus1(b);
    col_class[t] = classes != nullptr ? classes[seg_base + col_start + t] : 0;
  }
  __syncthreads();

  for (int t = threadIdx.x; t < kNmsCols; t += blockDim.x) {
    const int i = rb * kNmsCols + t;
    if (i >= K) return;
    const Box bi = load_box(boxes + (seg_base + i) * 4);
    const float area_i = box_area_plus1(bi);
    const int32_t class_i = classes != nullptr ? classes[seg_base + i] : 0;
    uint64_t bits = 0;
    for (int u = (rb == cb) ? t + 1 : 0; u < n_cols; ++u) {
      if (col_class[u] == class_i && iou_suppresses(bi, area_i, col_box[u], col_area[u], threshold))
        bits |= 1ull << u;
    }
    mask[(seg_base + i) * col_words + cb] = bits;
  }
}

// One block per segment. Walks the boxes in order; a box is kept unless a
// previously kept box suppresses it. `removed` accumulates (OR) the mask rows
// of the kept boxes. The walk is sequential; each kept box's row is OR-ed by
// all threads of the block in parallel.
__global__ void nms_reduce_kernel(const uint64_t* mask, const int32_t* num_valid, int K, int col_words,
                                  int max_keep, uint64_t* removed, int32_t* keep, int keep_stride,
                                  int32_t* keep_count) {
  const int s = blockIdx.x;
  uint64_t* rem = removed + (int64_t)s * col_words;
  for (int w = threadIdx.x; w < col_words; w += blockDim.x) rem[w] = 0;
  __syncthreads();

  int n = K;
  if (num_valid != nullptr) n = min(max(num_valid[s], 0), K);
  int kept = 0;
  for (int i = 0; i < n && kept < max_keep; ++i) {
    // Same value in every thread, so the branches below are uniform.
    const bool suppressed = (rem[i / 64] >> (i % 64)) & 1ull;
    __syncthreads();  // everyone has read rem before anyone updates it
    if (suppressed) continue;
    if (threadIdx.x == 0) keep[(int64_t)s * keep_stride + kept] = i;
    ++kept;
    const uint64_t* row = mask + ((int64_t)s * K + i) * col_words;
    for (int w = i / 64 + threadIdx.x; w < col_words; w += blockDim.x) rem[w] |= row[w];
    __syncthreads();  // updates visible before the next read
  }
  if (threadIdx.x == 0) keep_count[s] = kept;
}

cudaError_t nms_cuda(const float* boxes, const int32_t* classes, const int32_t* num_valid, int S, int K,
                     float threshold, int max_keep, uint64_t* mask, uint64_t* removed, int32_t* keep,
                     int keep_stride, int32_t* keep_count, cudaStream_t stream) {
  if (S <= 0) return cudaSuccess;
  if (K < 0 || S > 65535) return cudaErrorInvalidValue;
  const int col_words = nms_col_words(K);
  if (col_words > 65535) return cudaErrorInvalidValue;
  if (max_keep > K) max_keep = K;
  if (max_keep < 0) max_keep = 0;
  if (keep_stride < max_keep) return cudaErrorInvalidValue;
  if (K > 0) {
    const dim3 grid(col_words, col_words, S);
    nms_mask_kernel<<<grid, block_threads(kNmsCols), 0, stream>>>(boxes, classes, K, col_words, threshold, mask);
    MRCNN_CUDA_TRY(cudaGetLastError());
  }
  nms_reduce_kernel<<<S, block_threads(), 0, stream>>>(mask, num_valid, K, col_words, max_keep, removed, keep, keep_stride,
                                                keep_count);
  return cudaGetLastError();
}

}  // namespace cuda
}  // namespace mrcnn
