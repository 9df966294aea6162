// PyramidROIAlign: crop every box from its FPN level (TF crop_and_resize,
// bilinear, corner aligned, extrapolation 0). Semantics: plugins/opdefs.py,
// reference: plugins/pyramid_roi_align/reference.py (crop_and_resize, roi_levels:
// plugins/reference.py).
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

#include "../common/op_header.h"

namespace mrcnn {

// ------------------------------------------------------------- params
// Attributes (contract) + runtime sizes (from the input shapes).
struct PyramidROIAlignParams {
  MRCNN_OP_ATTR_MEMBERS(PyramidROIAlign)
  int N = 0;                // images
  int R = 0;                // boxes per image
  int C = 0;                // channels (all levels)
  int H[4] = {0, 0, 0, 0};  // P2..P5 heights
  int W[4] = {0, 0, 0, 0};  // P2..P5 widths
};
MRCNN_OP_ATTR_ACCESS(PyramidROIAlign)

// Runtime sizes (call after the attributes validate): "" when valid.
inline std::string validate_sizes(const PyramidROIAlignParams& p) {
  if (p.N < 0 || p.R < 0 || p.C < 0) return "PyramidROIAlign: negative size";
  for (int l = 0; l < 4; ++l)
    if (p.H[l] < 1 || p.W[l] < 1) return "PyramidROIAlign: feature map P" + std::to_string(l + 2) + " is empty";
  return std::string();
}

// ---------------------------------------------------------------- CPU
// Bytes of scratch memory pyramid_roi_align_cpu needs (may be 0).
size_t pyramid_roi_align_cpu_workspace(const PyramidROIAlignParams& p);

// `p` must be valid (validate(p), validate_sizes(p) empty). `workspace` holds
// pyramid_roi_align_cpu_workspace(p) bytes or is nullptr (then allocated
// internally). `par`: optional thread pool (parallel over boxes).
void pyramid_roi_align_cpu(const PyramidROIAlignParams& p, DType dtype, const float* boxes,
                           const void* const feature_maps[4], void* crops, void* workspace,
                           const CpuParallel* par = nullptr);

// reference.py crop_and_resize on one feature map:
//   image [N, C, H, W] (`dtype`), boxes [K, 4] float32 normalized,
//   box_ind [K] int32 in [0, N), crops (out) [K, C, crop_size, crop_size] (`dtype`).
// crop_size >= 2. Cells outside [0, H-1] x [0, W-1] get extrapolation_value.
void crop_and_resize_cpu(DType dtype, const void* image, int N, int C, int H, int W, const float* boxes,
                         const int32_t* box_ind, int K, int crop_size, float extrapolation_value, void* crops,
                         const CpuParallel* par = nullptr);

// --------------------------------------------------------------- CUDA
#if MRCNN_OP_WITH_CUDA
// Device pointers; same layouts and semantics as the CPU function.
size_t pyramid_roi_align_cuda_workspace(const PyramidROIAlignParams& p);
cudaError_t pyramid_roi_align_cuda(const PyramidROIAlignParams& p, DType dtype, const float* boxes,
                                   const void* const feature_maps[4], void* crops, void* workspace,
                                   cudaStream_t stream);
#endif


// ---------------------------------------------------------- op traits
// The uniform per-op interface (common/op_params.h OpTraits).
template <>
struct OpTraits<PyramidROIAlignParams> {
  using Params = PyramidROIAlignParams;
  template <typename Size>
  static void set_sizes(Params& p, Size&& size) {
    static const char* const kH[4] = {"H2", "H3", "H4", "H5"};
    static const char* const kW[4] = {"W2", "W3", "W4", "W5"};
    p.N = size("N");
    p.R = size("R");
    p.C = size("C");
    for (int l = 0; l < 4; ++l) p.H[l] = size(kH[l]), p.W[l] = size(kW[l]);
  }
  // inputs: boxes, P2, P3, P4, P5; outputs: crops.
  static size_t cpu_workspace(const Params& p) { return pyramid_roi_align_cpu_workspace(p); }
  static void cpu(const Params& p, DType dt, const void* const* in, void* const* out, void* ws,
                  const CpuParallel* par) {
    pyramid_roi_align_cpu(p, dt, static_cast<const float*>(in[0]), in + 1, out[0], ws, par);
  }
#if MRCNN_OP_WITH_CUDA
  static size_t cuda_workspace(const Params& p) { return pyramid_roi_align_cuda_workspace(p); }
  static cudaError_t cuda(const Params& p, DType dt, const void* const* in, void* const* out, void* ws,
                          cudaStream_t stream) {
    return pyramid_roi_align_cuda(p, dt, static_cast<const float*>(in[0]), in + 1, out[0], ws, stream);
  }
#endif
};

}  // namespace mrcnn
