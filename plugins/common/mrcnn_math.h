// Box / ROI math shared by the CPU kernels, the CUDA kernels and the TensorRT
// plugins. Every function mirrors the float32 expression of the PyTorch
// reference (plugins/reference.py) term by term and in the same order, so that CPU
// and CUDA agree bit for bit, and agree with the reference bit for bit except
// where PyTorch's float32 exp/log2 is off by an ulp (see mrcnn_exp).
//
// Conventions (see plugins/opdefs.py):
//   * boxes are (y1, x1, y2, x2);
//   * all arithmetic is float32, FP16 inputs are converted with half_to_float;
//   * no fused multiply-add: host code must be compiled with -ffp-contract=off;
//     device code uses the explicitly rounded intrinsics (__fmul_rn, ...) via
//     mrcnn_mul/mrcnn_add/mrcnn_sub/mrcnn_div, which nvcc never contracts.
//
// The header needs no CUDA header on the host: with nvcc (__CUDACC__) the
// functions are __host__ __device__.
#pragma once

#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__CUDACC__)
#define MRCNN_HD __host__ __device__ inline
#else
#define MRCNN_HD inline
#endif

namespace mrcnn {

// FPN pyramid levels handled by PyramidROIAlign (P2..P5).
constexpr int kMinLevel = 2;
constexpr int kMaxLevel = 5;
constexpr int kNumLevels = kMaxLevel - kMinLevel + 1;

// ----------------------------------------------------------------- float bits
MRCNN_HD uint32_t float_bits(float x) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(x);
#else
  uint32_t u;
  memcpy(&u, &x, sizeof(u));
  return u;
#endif
}
MRCNN_HD float bits_float(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float x;
  memcpy(&x, &u, sizeof(x));
  return x;
#endif
}

// One bit pattern for every NaN an operation produces: the default quiet NaN
// 0x7fc00000 (float('nan')). The hardware differs: x86 gives 0xffc00000 for
// inf - inf or 0 * inf and keeps an input NaN's payload, CUDA gives 0x7fffffff.
// Without this the CPU and CUDA kernels agree that a value is NaN but not on
// its bits (e.g. a box whose float16 deltas overflow exp: y2 = -inf + inf).
MRCNN_HD float canonical_nan(float x) {
  return (float_bits(x) & 0x7fffffffu) > 0x7f800000u ? bits_float(0x7fc00000u) : x;
}

// ----------------------------------------------------------------- float ops
// Correctly rounded float32 operations that are never fused into an FMA; a NaN
// result is canonical_nan's.
MRCNN_HD float mrcnn_mul(float a, float b) {
#if defined(__CUDA_ARCH__)
  return canonical_nan(__fmul_rn(a, b));
#else
  return canonical_nan(a * b);
#endif
}
MRCNN_HD float mrcnn_add(float a, float b) {
#if defined(__CUDA_ARCH__)
  return canonical_nan(__fadd_rn(a, b));
#else
  return canonical_nan(a + b);
#endif
}
MRCNN_HD float mrcnn_sub(float a, float b) {
#if defined(__CUDA_ARCH__)
  return canonical_nan(__fsub_rn(a, b));
#else
  return canonical_nan(a - b);
#endif
}
MRCNN_HD float mrcnn_div(float a, float b) {
#if defined(__CUDA_ARCH__)
  return canonical_nan(__fdiv_rn(a, b));
#else
  return canonical_nan(a / b);
#endif
}

// Correctly rounded float32 square root (IEEE 754 requires it; on the device
// __fsqrt_rn, never the approximate sqrtf of --use_fast_math).
MRCNN_HD float mrcnn_sqrt(float x) {
#if defined(__CUDA_ARCH__)
  return canonical_nan(__fsqrt_rn(x));
#else
  return canonical_nan(sqrtf(x));
#endif
}

// exp / log2 of a float32 computed in double and rounded once: correctly
// rounded except in astronomically rare cases, hence the same on every
// platform (glibc, CUDA), unlike expf/log2f. PyTorch's float32 exp is not
// correctly rounded (about 1% of values differ by 1 ulp); tests compare with
// the reference evaluated with exp/log2 in float64 for bit-exact checks.
MRCNN_HD float mrcnn_exp(float x) { return canonical_nan((float)exp((double)x)); }
MRCNN_HD float mrcnn_log2(float x) { return canonical_nan((float)log2((double)x)); }


MRCNN_HD bool is_nan(float x) { return (float_bits(x) & 0x7fffffffu) > 0x7f800000u; }
MRCNN_HD bool is_finite(float x) { return (float_bits(x) & 0x7f800000u) != 0x7f800000u; }

// torch.maximum / torch.minimum: NaN in either argument gives NaN.
MRCNN_HD float max_nan(float a, float b) {
  if (is_nan(a)) return a;
  if (is_nan(b)) return b;
  return a > b ? a : b;
}
MRCNN_HD float min_nan(float a, float b) {
  if (is_nan(a)) return a;
  if (is_nan(b)) return b;
  return a < b ? a : b;
}
// torch.clamp(x, min=lo): NaN stays NaN.
MRCNN_HD float clamp_min_nan(float x, float lo) { return is_nan(x) ? x : (x < lo ? lo : x); }

// ------------------------------------------------------------ half <-> float
// IEEE binary16 stored as uint16_t bits; usable on host and device.
MRCNN_HD float half_to_float(uint16_t h) {
  const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;  // +-0
    } else {      // subnormal: normalize
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while ((mant & 0x400u) == 0);
      bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((mant & 0x3ffu) << 13);
    }
  } else if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);  // inf / NaN (payload kept)
    if (mant) bits |= 0x00400000u;             // quiet
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  return bits_float(bits);
}

// float -> binary16, round to nearest even (as torch's .half()).
MRCNN_HD uint16_t float_to_half(float f) {
  const uint32_t x = float_bits(f);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t ax = x & 0x7fffffffu;
  if (ax > 0x7f800000u) return (uint16_t)(sign | 0x7e00u | ((ax >> 13) & 0x3ffu));  // NaN
  if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);  // rounds to >= 65520 -> inf
  if (ax < 0x38800000u) {  // result is subnormal or zero (|f| < 2^-14)
    if (ax < 0x33000000u) return (uint16_t)sign;  // < 2^-25: rounds to 0 (2^-25 ties to 0)
    const uint32_t e = ax >> 23;                   // 102..112
    const uint32_t m = (ax & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126u - e;               // 14..24
    uint32_t r = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1u);
    const uint32_t half = 1u << (shift - 1u);
    if (rem > half || (rem == half && (r & 1u))) ++r;
    return (uint16_t)(sign | r);
  }
  uint32_t r = ax - 0x38000000u;  // rebias exponent 127 -> 15 (in float bit positions)
  const uint32_t rem = r & 0x1fffu;
  r >>= 13;
  if (rem > 0x1000u || (rem == 0x1000u && (r & 1u))) ++r;  // carry into exponent is correct
  return (uint16_t)(sign | r);
}

// ------------------------------------------------------------------- boxes
struct Box {
  float y1, x1, y2, x2;
};

MRCNN_HD Box load_box(const float* p) { return Box{p[0], p[1], p[2], p[3]}; }
MRCNN_HD void store_box(float* p, const Box& b) {
  p[0] = b.y1;
  p[1] = b.x1;
  p[2] = b.y2;
  p[3] = b.x2;
}

// reference.py apply_box_deltas. `d` = (dy, dx, log dh, log dw) already
// multiplied by the std devs. exp: mrcnn_exp.
MRCNN_HD Box apply_box_deltas(const Box& b, float dy, float dx, float dh, float dw) {
  float height = mrcnn_sub(b.y2, b.y1);
  float width = mrcnn_sub(b.x2, b.x1);
  float center_y = mrcnn_add(b.y1, mrcnn_mul(0.5f, height));
  float center_x = mrcnn_add(b.x1, mrcnn_mul(0.5f, width));
  center_y = mrcnn_add(center_y, mrcnn_mul(dy, height));
  center_x = mrcnn_add(center_x, mrcnn_mul(dx, width));
  height = mrcnn_mul(height, mrcnn_exp(dh));
  width = mrcnn_mul(width, mrcnn_exp(dw));
  Box o;
  o.y1 = mrcnn_sub(center_y, mrcnn_mul(0.5f, height));
  o.x1 = mrcnn_sub(center_x, mrcnn_mul(0.5f, width));
  o.y2 = mrcnn_add(o.y1, height);
  o.x2 = mrcnn_add(o.x1, width);
  return o;
}

// Raw deltas times std devs, then apply_box_deltas (the `deltas * std` step).
MRCNN_HD Box decode_box(const Box& b, float dy, float dx, float dh, float dw, const float std_dev[4]) {
  return apply_box_deltas(b, mrcnn_mul(dy, std_dev[0]), mrcnn_mul(dx, std_dev[1]),
                          mrcnn_mul(dh, std_dev[2]), mrcnn_mul(dw, std_dev[3]));
}

// reference.py clip_boxes: y to [wy1, wy2], x to [wx1, wx2] (NaN propagates).
MRCNN_HD Box clip_box(const Box& b, float wy1, float wx1, float wy2, float wx2) {
  Box o;
  o.y1 = min_nan(max_nan(b.y1, wy1), wy2);
  o.x1 = min_nan(max_nan(b.x1, wx1), wx2);
  o.y2 = min_nan(max_nan(b.y2, wy1), wy2);
  o.x2 = min_nan(max_nan(b.x2, wx1), wx2);
  return o;
}

MRCNN_HD Box scale_box(const Box& b, float s) {
  return Box{mrcnn_mul(b.y1, s), mrcnn_mul(b.x1, s), mrcnn_mul(b.y2, s), mrcnn_mul(b.x2, s)};
}
MRCNN_HD Box divide_box(const Box& b, float s) {
  return Box{mrcnn_div(b.y1, s), mrcnn_div(b.x1, s), mrcnn_div(b.y2, s), mrcnn_div(b.x2, s)};
}
// torch.round: half to even (rintf in the default rounding mode); NaN: canonical_nan.
MRCNN_HD Box round_box(const Box& b) {
  return Box{canonical_nan(rintf(b.y1)), canonical_nan(rintf(b.x1)), canonical_nan(rintf(b.y2)),
             canonical_nan(rintf(b.x2))};
}

// Legacy +1 area: (x2 - x1 + 1) * (y2 - y1 + 1).
MRCNN_HD float box_area_plus1(const Box& b) {
  return mrcnn_mul(mrcnn_add(mrcnn_sub(b.x2, b.x1), 1.0f), mrcnn_add(mrcnn_sub(b.y2, b.y1), 1.0f));
}

// reference.py box_iou_plus1 for one pair; area_a/area_b from box_area_plus1.
MRCNN_HD float box_iou_plus1(const Box& a, float area_a, const Box& b, float area_b) {
  const float xx1 = max_nan(a.x1, b.x1);
  const float yy1 = max_nan(a.y1, b.y1);
  const float xx2 = min_nan(a.x2, b.x2);
  const float yy2 = min_nan(a.y2, b.y2);
  const float w = clamp_min_nan(mrcnn_add(mrcnn_sub(xx2, xx1), 1.0f), 0.0f);
  const float h = clamp_min_nan(mrcnn_add(mrcnn_sub(yy2, yy1), 1.0f), 0.0f);
  const float inter = mrcnn_mul(w, h);
  return mrcnn_div(inter, mrcnn_sub(mrcnn_add(area_a, area_b), inter));
}

// NMS suppression test: IoU > threshold, compared in float32 (NaN never suppresses).
MRCNN_HD bool iou_suppresses(const Box& kept, float area_kept, const Box& cand, float area_cand, float threshold) {
  return box_iou_plus1(kept, area_kept, cand, area_cand) > threshold;
}

// ----------------------------------------------------------------- sorting
// Sort key for "stable descending by score, NaN as -inf": an unsigned key
// whose ascending order is descending score; -0 and +0 compare equal.
// Combine with the index, (uint64(key) << 32) | index, for a total order
// where ties keep the lower index first.
MRCNN_HD uint32_t score_sort_key(float s) {
  if (is_nan(s)) s = -INFINITY;
  uint32_t u = float_bits(s);
  if (u == 0x80000000u) u = 0;                            // -0 -> +0
  const uint32_t asc = (u & 0x80000000u) ? ~u : (u | 0x80000000u);  // ascending order of s
  return ~asc;                                            // descending
}
MRCNN_HD uint64_t score_index_key(float s, uint32_t index) {
  return ((uint64_t)score_sort_key(s) << 32) | (uint64_t)index;
}

// ------------------------------------------------------- crop_and_resize
// One axis of TF crop_and_resize (reference.py crop_and_resize): sample i of
// P along a feature axis of `size` pixels for the normalized interval [b1, b2].
struct CropAxis {
  int lo;      // floor index, clamped to [0, size-1]
  int hi;      // ceil index, clamped to [0, size-1]
  float frac;  // in - floor(in)
  bool valid;  // 0 <= in <= size-1 (else the sample is the extrapolation value)
};

MRCNN_HD CropAxis crop_axis(float b1, float b2, int size, int pooled, int i) {
  const float sm1 = (float)(size - 1);
  const float scale = mrcnn_div(mrcnn_mul(mrcnn_sub(b2, b1), sm1), (float)(pooled - 1));
  const float in = mrcnn_add(mrcnn_mul(b1, sm1), mrcnn_mul((float)i, scale));
  CropAxis a;
  a.valid = (in >= 0.0f) && (in <= sm1);
  if (!a.valid) {
    a.lo = a.hi = 0;
    a.frac = 0.0f;
    return a;
  }
  const float f = floorf(in);
  const float c = ceilf(in);
  a.frac = mrcnn_sub(in, f);
  a.lo = (int)f;  // in range because 0 <= in <= size-1
  a.hi = (int)c;
  return a;
}

// Bilinear blend of the four neighbours, in the reference's order.
MRCNN_HD float bilerp(float tl, float tr, float bl, float br, float x_lerp, float y_lerp) {
  const float top = mrcnn_add(tl, mrcnn_mul(mrcnn_sub(tr, tl), x_lerp));
  const float bot = mrcnn_add(bl, mrcnn_mul(mrcnn_sub(br, bl), x_lerp));
  return mrcnn_add(top, mrcnn_mul(mrcnn_sub(bot, top), y_lerp));
}

// One output cell (py, px) of crop_and_resize on a single-channel float
// plane [H, W] (row-major). Returns `extrapolation` outside the map.
MRCNN_HD float crop_and_resize_cell(const float* plane, int H, int W, const Box& b, int pooled, int py, int px,
                                    float extrapolation) {
  const CropAxis ay = crop_axis(b.y1, b.y2, H, pooled, py);
  const CropAxis ax = crop_axis(b.x1, b.x2, W, pooled, px);
  if (!(ay.valid && ax.valid)) return extrapolation;
  const float* top = plane + (int64_t)ay.lo * W;
  const float* bot = plane + (int64_t)ay.hi * W;
  return bilerp(top[ax.lo], top[ax.hi], bot[ax.lo], bot[ax.hi], ax.frac, ay.frac);
}

// ------------------------------------------------------------- FPN level
// canonical_size / image_size as PyTorch sees it (double quotient -> float32).
MRCNN_HD float level_scale(float canonical_size, int image_size) {
  return (float)((double)canonical_size / (double)image_size);
}

// reference.py roi_levels for one normalized box: level in [2, 5]
// (round half to even; non-finite -> 2). `scale` from level_scale().
MRCNN_HD int roi_level(const Box& b, float scale, int canonical_level) {
  const float h = mrcnn_sub(b.y2, b.y1);
  const float w = mrcnn_sub(b.x2, b.x1);
  const float level = mrcnn_add((float)canonical_level, mrcnn_log2(mrcnn_div(mrcnn_sqrt(mrcnn_mul(h, w)), scale)));
  if (!is_finite(level)) return kMinLevel;
  const float r = rintf(level);
  if (r < (float)kMinLevel) return kMinLevel;
  if (r > (float)kMaxLevel) return kMaxLevel;
  return (int)r;
}

// ------------------------------------------------------- detection argmax
// torch.argmax over K class probabilities: first maximum; a NaN counts as the
// maximum (the first NaN wins), as in PyTorch.
template <typename LoadFn>
MRCNN_HD int argmax_first(LoadFn load, int K, float* best_out) {
  int best = 0;
  float bv = load(0);
  if (!is_nan(bv)) {
    for (int k = 1; k < K; ++k) {
      const float v = load(k);
      if (is_nan(v)) {
        best = k;
        bv = v;
        break;
      }
      if (v > bv) {
        best = k;
        bv = v;
      }
    }
  }
  *best_out = bv;
  return best;
}

}  // namespace mrcnn
