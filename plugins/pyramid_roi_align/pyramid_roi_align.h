// PyramidROIAlign: crop every box from its FPN level (TF crop_and_resize,
// bilinear, corner aligned, extrapolation 0). Semantics: plugins/opdefs.py,
// reference: model/ops.py pyramid_roi_align / crop_and_resize / roi_levels.
//
// Tensors (all contiguous, row-major):
//   boxes         [N, R, 4] float32, normalized (y1, x1, y2, x2)
//   feature_maps  4 pointers P2..P5, each [N, C, H_l, W_l] in `dtype`
//   crops (out)   [N, R, C, P, P] in `dtype` (P = pooled_size)
// Every output element is written (cells outside the map are 0).
//
// Include without CUDA: the CUDA launcher is declared only when compiling
// with nvcc or with MRCNN_WITH_CUDA defined (then cuda_runtime_api.h is used).
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "../common/cpu_parallel.h"
#include "../common/op_params.h"

#if defined(MRCNN_WITH_CUDA) || defined(__CUDACC__)
#include <cuda_runtime_api.h>
#endif

namespace mrcnn {

// ---------------------------------------------------------------- CPU
// Bytes of scratch memory pyramid_roi_align_cpu needs (may be 0).
size_t pyramid_roi_align_cpu_workspace(const PyramidROIAlignParams& p);

// `p` must be valid (validate(p), validate_sizes(p) empty). `workspace` holds
// pyramid_roi_align_cpu_workspace(p) bytes or is nullptr (then allocated
// internally). `par`: optional thread pool (parallel over boxes).
void pyramid_roi_align_cpu(const PyramidROIAlignParams& p, DType dtype, const float* boxes,
                           const void* const feature_maps[4], void* crops, void* workspace,
                           const CpuParallel* par = nullptr);

// model/ops.py crop_and_resize on one feature map:
//   image [N, C, H, W] (`dtype`), boxes [K, 4] float32 normalized,
//   box_ind [K] int32 in [0, N), crops (out) [K, C, crop_size, crop_size] (`dtype`).
// crop_size >= 2. Cells outside [0, H-1] x [0, W-1] get extrapolation_value.
void crop_and_resize_cpu(DType dtype, const void* image, int N, int C, int H, int W, const float* boxes,
                         const int32_t* box_ind, int K, int crop_size, float extrapolation_value, void* crops,
                         const CpuParallel* par = nullptr);

// --------------------------------------------------------------- CUDA
#if defined(MRCNN_WITH_CUDA) || defined(__CUDACC__)
// Device pointers; same layouts and semantics as the CPU function.
size_t pyramid_roi_align_cuda_workspace(const PyramidROIAlignParams& p);
cudaError_t pyramid_roi_align_cuda(const PyramidROIAlignParams& p, DType dtype, const float* boxes,
                                   const void* const feature_maps[4], void* crops, void* workspace,
                                   cudaStream_t stream);
#endif

}  // namespace mrcnn
