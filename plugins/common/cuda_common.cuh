// Helpers shared by the CUDA kernels (plugins/<op>/<op>_cuda.cu): dtype
// loads/stores, launch sizes, error propagation and workspace carving.
// Include only from .cu files (needs nvcc).
#pragma once

#include <cuda_runtime_api.h>
#include <stddef.h>
#include <stdint.h>

#include "mrcnn_math.h"
#include "op_params.h"

namespace mrcnn {
namespace cuda {

// Return the error of a CUDA call (or of the last launch) to the caller.
#define MRCNN_CUDA_TRY(expr)              \
  do {                                    \
    const cudaError_t mrcnn_err_ = (expr); \
    if (mrcnn_err_ != cudaSuccess) return mrcnn_err_; \
  } while (0)

// ------------------------------------------------------------ dtype access
// FP32 data is float, FP16 data is IEEE binary16 bits in uint16_t; all math
// is float32 (mrcnn_math.h), conversions are bit-exact (round to nearest even).
__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(uint16_t h) { return half_to_float(h); }

template <typename T>
__device__ __forceinline__ T from_float(float x);
template <>
__device__ __forceinline__ float from_float<float>(float x) {
  return x;
}
template <>
__device__ __forceinline__ uint16_t from_float<uint16_t>(float x) {
  return float_to_half(x);
}

// ---------------------------------------------------------------- launches
constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 1 << 20;  // grid-stride loops cover the rest

// Threads per block of a launch: `fallback` (the kernel's own choice, kThreads
// by default) unless set_block_threads (nms_cuda.h) chose another count.
int block_threads(int fallback = kThreads);

// Blocks for a grid-stride loop over n items (at least 1).
inline unsigned int blocks_for(int64_t n, int threads = block_threads()) {
  int64_t b = (n + threads - 1) / threads;
  if (b < 1) b = 1;
  if (b > kMaxBlocks) b = kMaxBlocks;
  return (unsigned int)b;
}

#define MRCNN_GRID_STRIDE_LOOP(i, n)                                                     \
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (int64_t)(n); \
       i += (int64_t)blockDim.x * gridDim.x)

// -------------------------------------------------------------- workspace
// Carves typed, 256-byte aligned arrays out of one workspace block. With a
// null base it only counts: the same code computes the size
// (<op>_cuda_workspace) and the pointers (<op>_cuda), so they cannot disagree.
// bytes() includes slack for an unaligned base pointer.
class Carver {
 public:
  static constexpr size_t kAlign = 256;

  explicit Carver(void* base) {
    if (base != nullptr) base_ = (char*)(((uintptr_t)base + kAlign - 1) & ~(uintptr_t)(kAlign - 1));
  }

  template <typename T>
  T* take(int64_t count) {
    offset_ = (offset_ + kAlign - 1) & ~(kAlign - 1);
    T* p = base_ != nullptr ? (T*)(base_ + offset_) : nullptr;
    offset_ += (size_t)(count > 0 ? count : 0) * sizeof(T);
    return p;
  }

  size_t bytes() const { return offset_ + kAlign - 1; }

 private:
  char* base_ = nullptr;
  size_t offset_ = 0;
};

}  // namespace cuda
}  // namespace mrcnn
