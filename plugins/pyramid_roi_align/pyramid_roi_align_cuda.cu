// PyramidROIAlign, CUDA: one thread per output element (n, r, c, py, px).
// Each thread picks the box's FPN level (mrcnn::roi_level) and samples that
// level with TF crop_and_resize (mrcnn::crop_axis / bilerp), exactly the
// float32 expressions of the CPU kernel and of the reference.
#include "pyramid_roi_align.h"

#include "../common/cuda_common.cuh"
#include "../common/mrcnn_math.h"

namespace mrcnn {
namespace {

template <typename T>
struct Levels {
  const T* map[kNumLevels];  // P2..P5, each [N, C, H_l, W_l]
};

// crops[n, r, c, py, px] for every element: [N, R, C, P, P].
template <typename T>
__global__ void pyramid_roi_align_kernel(PyramidROIAlignParams p, float scale, const float* boxes, Levels<T> levels,
                                         T* crops) {
  const int P = p.pooled_size;
  const int64_t total = (int64_t)p.N * p.R * p.C * P * P;
  MRCNN_GRID_STRIDE_LOOP(idx, total) {
    int64_t t = idx;
    const int px = (int)(t % P);
    t /= P;
    const int py = (int)(t % P);
    t /= P;
    const int c = (int)(t % p.C);
    t /= p.C;
    const int64_t nr = t;  // n * R + r
    const int n = (int)(nr / p.R);

    const Box b = load_box(boxes + nr * 4);
    const int l = roi_level(b, scale, p.canonical_level) - kMinLevel;
    const int H = p.H[l];
    const int W = p.W[l];
    const T* plane = levels.map[l] + ((int64_t)n * p.C + c) * H * W;

    float v = 0.0f;  // extrapolation value
    const CropAxis ay = crop_axis(b.y1, b.y2, H, P, py);
    const CropAxis ax = crop_axis(b.x1, b.x2, W, P, px);
    if (ay.valid && ax.valid) {
      const T* top = plane + (int64_t)ay.lo * W;
      const T* bot = plane + (int64_t)ay.hi * W;
      v = bilerp(cuda::to_float(top[ax.lo]), cuda::to_float(top[ax.hi]), cuda::to_float(bot[ax.lo]),
                 cuda::to_float(bot[ax.hi]), ax.frac, ay.frac);
    }
    crops[idx] = cuda::from_float<T>(v);
  }
}

template <typename T>
cudaError_t launch(const PyramidROIAlignParams& p, const float* boxes, const void* const feature_maps[4], void* crops,
                   cudaStream_t stream) {
  Levels<T> levels;
  for (int l = 0; l < kNumLevels; ++l) levels.map[l] = static_cast<const T*>(feature_maps[l]);
  const int64_t total = (int64_t)p.N * p.R * p.C * p.pooled_size * p.pooled_size;
  const float scale = level_scale(p.canonical_size, p.image_size);
  pyramid_roi_align_kernel<T><<<cuda::blocks_for(total), cuda::block_threads(), 0, stream>>>(p, scale, boxes, levels,
                                                                                     static_cast<T*>(crops));
  return cudaGetLastError();
}

}  // namespace

size_t pyramid_roi_align_cuda_workspace(const PyramidROIAlignParams&) { return 0; }

cudaError_t pyramid_roi_align_cuda(const PyramidROIAlignParams& p, DType dtype, const float* boxes,
                                   const void* const feature_maps[4], void* crops, void* /*workspace*/,
                                   cudaStream_t stream) {
  if (!validate(p).empty() || !validate_sizes(p).empty()) return cudaErrorInvalidValue;
  if ((int64_t)p.N * p.R * p.C == 0) return cudaSuccess;  // empty output
  switch (dtype) {
    case DType::kFloat32:
      return launch<float>(p, boxes, feature_maps, crops, stream);
    case DType::kFloat16:
      return launch<uint16_t>(p, boxes, feature_maps, crops, stream);
  }
  return cudaErrorInvalidValue;
}

}  // namespace mrcnn
