// Small helpers shared by the CPU kernels (host only, not for CUDA code).
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <algorithm>
#include <vector>

#include "cpu_parallel.h"
#include "mrcnn_math.h"
#include "op_params.h"

namespace mrcnn {
namespace cpu {

// Element loads/stores for the two data types (half = raw uint16_t bits).
inline float load(const float* p, int64_t i) { return p[i]; }
inline float load(const uint16_t* p, int64_t i) { return half_to_float(p[i]); }
inline void store(float* p, int64_t i, float v) { p[i] = v; }
inline void store(uint16_t* p, int64_t i, float v) { p[i] = float_to_half(v); }

// Carves 64-byte aligned slices out of one 64-byte aligned buffer. With base == nullptr it
// only measures (size() is then the bytes a real carve needs).
class Arena {
 public:
  explicit Arena(void* base = nullptr) : base_(static_cast<uint8_t*>(base)) {}
  template <typename T>
  T* take(size_t count) {
    off_ = (off_ + 63) & ~size_t(63);
    T* p = base_ ? reinterpret_cast<T*>(base_ + off_) : nullptr;
    off_ += count * sizeof(T);
    return p;
  }
  // Bytes used, a multiple of 64 (so consecutive arenas stay aligned). The
  // base must be 64-byte aligned (Workspace does that; add 64 bytes of slack
  // to a caller-visible workspace size).
  size_t size() const { return (off_ + 63) & ~size_t(63); }

 private:
  uint8_t* base_;
  size_t off_ = 0;
};

// Aligns a caller's workspace (or allocates one when it is null).
class Workspace {
 public:
  Workspace(void* given, size_t bytes) {
    if (given == nullptr) {
      own_.resize(bytes + 64);
      given = own_.data();
    }
    uintptr_t a = reinterpret_cast<uintptr_t>(given);
    base_ = reinterpret_cast<void*>((a + 63) & ~uintptr_t(63));
  }
  void* get() const { return base_; }

 private:
  std::vector<uint8_t> own_;
  void* base_;
};

// fn(n, arena) for every image n in [0, N) through `par`, each image with its
// own `per_image` bytes (a multiple of 64) of the (aligned or allocated) workspace.
template <typename Fn>
inline void for_each_image(const CpuParallel* par, int64_t N, size_t per_image, void* workspace, Fn&& fn) {
  Workspace ws(workspace, per_image * (size_t)N);
  parallel_for(par, N, [&](int64_t n) {
    Arena arena(static_cast<uint8_t*>(ws.get()) + per_image * (size_t)n);
    fn(n, arena);
  });
}

// Kept boxes of a greedy NMS, struct-of-arrays so the overlap test vectorizes.
struct KeptBoxes {
  float* y1;
  float* x1;
  float* y2;
  float* x2;
  float* area;
  int n = 0;

  static KeptBoxes carve(Arena& a, size_t cap) {
    KeptBoxes k;
    k.y1 = a.take<float>(cap);
    k.x1 = a.take<float>(cap);
    k.y2 = a.take<float>(cap);
    k.x2 = a.take<float>(cap);
    k.area = a.take<float>(cap);
    return k;
  }
  void push(const Box& b, float ar) {
    y1[n] = b.y1;
    x1[n] = b.x1;
    y2[n] = b.y2;
    x2[n] = b.x2;
    area[n] = ar;
    ++n;
  }
  // True when some kept box has IoU > threshold with b (plugins/reference.py
  // box_iou_plus1 term by term). b and the kept boxes have no NaN
  // coordinate, so plain min/max equal torch.minimum/maximum here.
  bool suppresses(const Box& b, float ar, float threshold) const {
    for (int t = 0; t < n; t += 32) {
      const int e = std::min(n, t + 32);
      int hit = 0;
      for (int u = t; u < e; ++u) {
        const float xx1 = x1[u] > b.x1 ? x1[u] : b.x1;
        const float yy1 = y1[u] > b.y1 ? y1[u] : b.y1;
        const float xx2 = x2[u] < b.x2 ? x2[u] : b.x2;
        const float yy2 = y2[u] < b.y2 ? y2[u] : b.y2;
        float w = (xx2 - xx1) + 1.0f;
        float h = (yy2 - yy1) + 1.0f;
        w = w < 0.0f ? 0.0f : w;
        h = h < 0.0f ? 0.0f : h;
        const float inter = w * h;
        const float iou = inter / ((area[u] + ar) - inter);
        hit |= (iou > threshold) ? 1 : 0;
      }
      if (hit) return true;
    }
    return false;
  }
};

inline bool box_has_nan(const Box& b) { return is_nan(b.y1) || is_nan(b.x1) || is_nan(b.y2) || is_nan(b.x2); }

// Greedy NMS over candidates already in priority order 0..n-1; box(j)
// returns candidate j. Writes kept positions to keep_pos, returns their
// number (stops at max_keep). A box with a NaN coordinate has NaN IoU with
// every box: it is kept and never suppresses another (as in the reference).
template <typename BoxFn>
inline int greedy_nms_sorted(int n, BoxFn box, float threshold, int max_keep, KeptBoxes& kept, int32_t* keep_pos) {
  int nkeep = 0;
  kept.n = 0;
  if (max_keep <= 0) return 0;
  for (int j = 0; j < n; ++j) {
    const Box b = box(j);
    const float ar = box_area_plus1(b);
    if (box_has_nan(b)) {
      keep_pos[nkeep++] = j;
    } else {
      if (kept.suppresses(b, ar, threshold)) continue;
      keep_pos[nkeep++] = j;
      kept.push(b, ar);
    }
    if (nkeep >= max_keep) break;
  }
  return nkeep;
}

}  // namespace cpu
}  // namespace mrcnn
