// CPU PyramidROIAlign / crop_and_resize (see pyramid_roi_align.h).
#include "pyramid_roi_align.h"

#include "../common/cpu_util.h"
#include "../common/mrcnn_math.h"

#include <utility>
#include <vector>

namespace mrcnn {
namespace {

// Sampling positions of one box along y and x (P entries each), computed once
// per box and shared by all channels.
struct AxisTable {
  int32_t lo[2];   // [0]: y row offset (lo * W), [1]: x column
  int32_t hi[2];
  float frac[2];
  uint8_t valid[2];
};

void make_table(const Box& b, int H, int W, int P, AxisTable* t) {
  for (int i = 0; i < P; ++i) {
    const CropAxis ay = crop_axis(b.y1, b.y2, H, P, i);
    const CropAxis ax = crop_axis(b.x1, b.x2, W, P, i);
    t[i].lo[0] = ay.lo * W;
    t[i].hi[0] = ay.hi * W;
    t[i].frac[0] = ay.frac;
    t[i].valid[0] = ay.valid;
    t[i].lo[1] = ax.lo;
    t[i].hi[1] = ax.hi;
    t[i].frac[1] = ax.frac;
    t[i].valid[1] = ax.valid;
  }
}

// One channel plane [H, W] -> out [P, P] for one box.
template <typename T>
inline void crop_plane(const T* src, const AxisTable* t, int P, float extrapolation, T* dst) {
  for (int py = 0; py < P; ++py) {
    T* row = dst + py * P;
    if (!t[py].valid[0]) {
      for (int px = 0; px < P; ++px) cpu::store(row, px, extrapolation);
      continue;
    }
    const T* top = src + t[py].lo[0];
    const T* bot = src + t[py].hi[0];
    const float yl = t[py].frac[0];
    for (int px = 0; px < P; ++px) {
      float v = extrapolation;
      if (t[px].valid[1]) {
        const int l = t[px].lo[1], r = t[px].hi[1];
        v = bilerp(cpu::load(top, l), cpu::load(top, r), cpu::load(bot, l), cpu::load(bot, r), t[px].frac[1], yl);
      }
      cpu::store(row, px, v);
    }
  }
}

// Boxes grouped by the feature plane they read (image, level). The work is
// split into (group, channel block) tasks and each task walks all boxes of
// its group channel by channel, so a channel plane stays in cache while every
// box samples it (NCHW maps are far larger than the caches).
struct Group {
  const void* fmap;  // [C, H, W] of one image and level
  int H, W;
  int begin, end;    // range in the sorted box list
};

constexpr int kChannelsPerTask = 8;

template <typename T>
void crop_groups(const std::vector<Group>& groups, const int32_t* box_ids, const AxisTable* tables, int C, int P,
                 float extrapolation, T* out, const CpuParallel* par) {
  const int64_t out_stride = (int64_t)C * P * P;
  const int64_t cblocks = (C + kChannelsPerTask - 1) / kChannelsPerTask;
  parallel_for(par, (int64_t)groups.size() * cblocks, [&](int64_t task) {
    const Group& g = groups[(size_t)(task / cblocks)];
    const int c0 = (int)(task % cblocks) * kChannelsPerTask;
    const int c1 = std::min(C, c0 + kChannelsPerTask);
    const int64_t plane = (int64_t)g.H * g.W;
    for (int c = c0; c < c1; ++c) {
      const T* src = static_cast<const T*>(g.fmap) + c * plane;
      for (int j = g.begin; j < g.end; ++j) {
        const int32_t b = box_ids[j];
        crop_plane(src, tables + (int64_t)b * P, P, extrapolation, out + b * out_stride + (int64_t)c * P * P);
      }
    }
  });
}

// Scratch: per-box axis tables, the box order, the group key of each box.
struct Scratch {
  AxisTable* tables;  // [nboxes * P]
  int32_t* ids;       // [nboxes] sorted by group
  int32_t* key;       // [nboxes] group key
  static Scratch carve(cpu::Arena& a, int64_t nboxes, int P) {
    Scratch s;
    s.tables = a.take<AxisTable>((size_t)(nboxes * P));
    s.ids = a.take<int32_t>((size_t)nboxes);
    s.key = a.take<int32_t>((size_t)nboxes);
    return s;
  }
};

size_t scratch_bytes(int64_t nboxes, int P) {
  cpu::Arena a;
  Scratch::carve(a, nboxes, P);
  return a.size();
}

// Counting sort of box ids by key in [0, nkeys); returns the groups' ranges.
std::vector<std::pair<int, int>> sort_by_key(const int32_t* key, int64_t n, int nkeys, int32_t* ids) {
  std::vector<int> start((size_t)nkeys + 1, 0);
  for (int64_t i = 0; i < n; ++i) ++start[(size_t)key[i] + 1];
  for (int k = 0; k < nkeys; ++k) start[(size_t)k + 1] += start[(size_t)k];
  std::vector<int> pos(start.begin(), start.end() - 1);
  for (int64_t i = 0; i < n; ++i) ids[pos[(size_t)key[i]]++] = (int32_t)i;
  std::vector<std::pair<int, int>> ranges;
  for (int k = 0; k < nkeys; ++k) ranges.emplace_back(start[(size_t)k], start[(size_t)k + 1]);
  return ranges;
}

template <typename T>
void pyramid_impl(const PyramidROIAlignParams& p, const float* boxes, const void* const maps[4], void* crops,
                  void* workspace, const CpuParallel* par) {
  const int P = p.pooled_size;
  const int64_t nboxes = (int64_t)p.N * p.R;
  if (nboxes == 0) return;
  cpu::Workspace ws(workspace, scratch_bytes(nboxes, P));
  cpu::Arena arena(ws.get());
  Scratch s = Scratch::carve(arena, nboxes, P);
  const float scale = level_scale(p.canonical_size, p.image_size);
  parallel_for(par, (nboxes + 63) / 64, [&](int64_t t) {
    const int64_t end = std::min(nboxes, (t + 1) * 64);
    for (int64_t i = t * 64; i < end; ++i) {
      const Box b = load_box(boxes + 4 * i);
      const int l = roi_level(b, scale, p.canonical_level) - kMinLevel;
      s.key[i] = (int32_t)((i / p.R) * kNumLevels + l);  // (image, level)
      make_table(b, p.H[l], p.W[l], P, s.tables + i * P);
    }
  });
  const auto ranges = sort_by_key(s.key, nboxes, p.N * kNumLevels, s.ids);
  std::vector<Group> groups;
  for (int k = 0; k < (int)ranges.size(); ++k) {
    if (ranges[(size_t)k].first == ranges[(size_t)k].second) continue;
    const int n = k / kNumLevels, l = k % kNumLevels;
    const T* fmap = static_cast<const T*>(maps[l]) + (int64_t)n * p.C * p.H[l] * p.W[l];
    groups.push_back(Group{fmap, p.H[l], p.W[l], ranges[(size_t)k].first, ranges[(size_t)k].second});
  }
  crop_groups<T>(groups, s.ids, s.tables, p.C, P, 0.0f, static_cast<T*>(crops), par);
}

template <typename T>
void crop_and_resize_impl(const void* image, int N, int C, int H, int W, const float* boxes, const int32_t* box_ind,
                          int K, int P, float extrapolation, void* crops, const CpuParallel* par) {
  if (K == 0) return;
  cpu::Workspace ws(nullptr, scratch_bytes(K, P));
  cpu::Arena arena(ws.get());
  Scratch s = Scratch::carve(arena, K, P);
  for (int k = 0; k < K; ++k) {
    s.key[k] = box_ind[k];
    make_table(load_box(boxes + 4 * (int64_t)k), H, W, P, s.tables + (int64_t)k * P);
  }
  const auto ranges = sort_by_key(s.key, K, N, s.ids);
  std::vector<Group> groups;
  for (int n = 0; n < N; ++n) {
    if (ranges[(size_t)n].first == ranges[(size_t)n].second) continue;
    groups.push_back(Group{static_cast<const T*>(image) + (int64_t)n * C * H * W, H, W, ranges[(size_t)n].first,
                           ranges[(size_t)n].second});
  }
  crop_groups<T>(groups, s.ids, s.tables, C, P, extrapolation, static_cast<T*>(crops), par);
}

}  // namespace

size_t pyramid_roi_align_cpu_workspace(const PyramidROIAlignParams& p) {
  return scratch_bytes((int64_t)p.N * p.R, p.pooled_size) + 64;
}

void pyramid_roi_align_cpu(const PyramidROIAlignParams& p, DType dtype, const float* boxes,
                           const void* const feature_maps[4], void* crops, void* workspace,
                           const CpuParallel* par) {
  if (dtype == DType::kFloat16)
    pyramid_impl<uint16_t>(p, boxes, feature_maps, crops, workspace, par);
  else
    pyramid_impl<float>(p, boxes, feature_maps, crops, workspace, par);
}

void crop_and_resize_cpu(DType dtype, const void* image, int N, int C, int H, int W, const float* boxes,
                         const int32_t* box_ind, int K, int crop_size, float extrapolation_value, void* crops,
                         const CpuParallel* par) {
  if (dtype == DType::kFloat16)
    crop_and_resize_impl<uint16_t>(image, N, C, H, W, boxes, box_ind, K, crop_size, extrapolation_value, crops, par);
  else
    crop_and_resize_impl<float>(image, N, C, H, W, boxes, box_ind, K, crop_size, extrapolation_value, crops, par);
}

}  // namespace mrcnn
