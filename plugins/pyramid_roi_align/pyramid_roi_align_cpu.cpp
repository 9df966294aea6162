// CPU PyramidROIAlign / crop_and_resize (see pyramid_roi_align.h).
#include "pyramid_roi_align.h"

#include "../common/cpu_util.h"
#include "../common/mrcnn_math.h"

namespace mrcnn {
namespace {

constexpr int kMaxPooled = 64;  // opdefs: pooled_size <= 64

// Crops one box from one image's feature map [C, H, W] into out [C, P, P].
// The sampling positions / weights are computed once per box and shared by
// all channels.
template <typename T>
void crop_box(const T* fmap, int C, int H, int W, const Box& b, int P, float extrapolation, T* out) {
  int ylo[kMaxPooled], yhi[kMaxPooled], xlo[kMaxPooled], xhi[kMaxPooled];
  float yf[kMaxPooled], xf[kMaxPooled];
  bool yv[kMaxPooled], xv[kMaxPooled];
  for (int i = 0; i < P; ++i) {
    const CropAxis ay = crop_axis(b.y1, b.y2, H, P, i);
    const CropAxis ax = crop_axis(b.x1, b.x2, W, P, i);
    ylo[i] = ay.lo * W;
    yhi[i] = ay.hi * W;
    yf[i] = ay.frac;
    yv[i] = ay.valid;
    xlo[i] = ax.lo;
    xhi[i] = ax.hi;
    xf[i] = ax.frac;
    xv[i] = ax.valid;
  }
  const int64_t plane = (int64_t)H * W;
  for (int c = 0; c < C; ++c) {
    const T* src = fmap + c * plane;
    T* dst = out + (int64_t)c * P * P;
    for (int py = 0; py < P; ++py) {
      T* row = dst + py * P;
      if (!yv[py]) {
        for (int px = 0; px < P; ++px) cpu::store(row, px, extrapolation);
        continue;
      }
      const T* top = src + ylo[py];
      const T* bot = src + yhi[py];
      const float yl = yf[py];
      for (int px = 0; px < P; ++px) {
        float v = extrapolation;
        if (xv[px]) {
          v = bilerp(cpu::load(top, xlo[px]), cpu::load(top, xhi[px]), cpu::load(bot, xlo[px]),
                     cpu::load(bot, xhi[px]), xf[px], yl);
        }
        cpu::store(row, px, v);
      }
    }
  }
}

// Boxes per parallel task (amortizes the dispatch over a few boxes).
constexpr int64_t kBoxesPerTask = 4;

template <typename T>
void pyramid_impl(const PyramidROIAlignParams& p, const float* boxes, const void* const maps[4], void* crops,
                  const CpuParallel* par) {
  const int P = p.pooled_size;
  const int64_t nboxes = (int64_t)p.N * p.R;
  const int64_t out_stride = (int64_t)p.C * P * P;
  const float scale = level_scale(p.canonical_size, p.image_size);
  T* out = static_cast<T*>(crops);
  const int64_t tasks = (nboxes + kBoxesPerTask - 1) / kBoxesPerTask;
  parallel_for(par, tasks, [&](int64_t t) {
    const int64_t end = std::min(nboxes, (t + 1) * kBoxesPerTask);
    for (int64_t i = t * kBoxesPerTask; i < end; ++i) {
      const int64_t n = i / (p.R > 0 ? p.R : 1);
      const Box b = load_box(boxes + 4 * i);
      const int l = roi_level(b, scale, p.canonical_level) - kMinLevel;
      const int H = p.H[l], W = p.W[l];
      const T* fmap = static_cast<const T*>(maps[l]) + n * (int64_t)p.C * H * W;
      crop_box(fmap, p.C, H, W, b, P, 0.0f, out + i * out_stride);
    }
  });
}

template <typename T>
void crop_and_resize_impl(const void* image, int C, int H, int W, const float* boxes, const int32_t* box_ind, int K,
                          int P, float extrapolation, void* crops, const CpuParallel* par) {
  const T* img = static_cast<const T*>(image);
  T* out = static_cast<T*>(crops);
  const int64_t out_stride = (int64_t)C * P * P;
  const int64_t tasks = (K + kBoxesPerTask - 1) / kBoxesPerTask;
  parallel_for(par, tasks, [&](int64_t t) {
    const int64_t end = std::min<int64_t>(K, (t + 1) * kBoxesPerTask);
    for (int64_t k = t * kBoxesPerTask; k < end; ++k) {
      const T* fmap = img + (int64_t)box_ind[k] * C * H * W;
      crop_box(fmap, C, H, W, load_box(boxes + 4 * k), P, extrapolation, out + k * out_stride);
    }
  });
}

}  // namespace

size_t pyramid_roi_align_cpu_workspace(const PyramidROIAlignParams&) { return 0; }

void pyramid_roi_align_cpu(const PyramidROIAlignParams& p, DType dtype, const float* boxes,
                           const void* const feature_maps[4], void* crops, void* /*workspace*/,
                           const CpuParallel* par) {
  if (dtype == DType::kFloat16)
    pyramid_impl<uint16_t>(p, boxes, feature_maps, crops, par);
  else
    pyramid_impl<float>(p, boxes, feature_maps, crops, par);
}

void crop_and_resize_cpu(DType dtype, const void* image, int /*N*/, int C, int H, int W, const float* boxes,
                         const int32_t* box_ind, int K, int crop_size, float extrapolation_value, void* crops,
                         const CpuParallel* par) {
  if (dtype == DType::kFloat16)
    crop_and_resize_impl<uint16_t>(image, C, H, W, boxes, box_ind, K, crop_size, extrapolation_value, crops, par);
  else
    crop_and_resize_impl<float>(image, C, H, W, boxes, box_ind, K, crop_size, extrapolation_value, crops, par);
}

}  // namespace mrcnn
