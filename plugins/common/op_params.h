// Parameters of the three custom ops: the attributes of plugins/opdefs.py
// (same names, types, defaults, ranges) plus the runtime sizes each kernel
// needs. Shared by the CPU kernels, the CUDA kernels, the ONNX Runtime custom
// ops and the TensorRT plugins. Plain structs; no CUDA or TensorRT header.
//
// tests/test_plugins_cpu.py checks the defaults and the attribute tables
// below against plugins/opdefs.py (through the pybind11 module).
#pragma once

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <string>

namespace mrcnn {

constexpr const char* kDomain = "mrcnn";          // ONNX node domain
constexpr int kOpVersion = 1;                     // ONNX op set version of kDomain
constexpr const char* kPluginVersion = "1";       // TensorRT plugin version
constexpr const char* kPluginNamespace = "";      // TensorRT plugin namespace

constexpr const char* kPyramidROIAlign = "PyramidROIAlign";
constexpr const char* kProposalLayer = "ProposalLayer";
constexpr const char* kDetectionLayer = "DetectionLayer";

// Element type of the "data" tensors of an op (see each op's header for which
// inputs/outputs follow it; geometry tensors are always float32).
enum class DType : int { kFloat32 = 0, kFloat16 = 1 };

// ------------------------------------------------------------ attributes
enum class AttrType : int { kInt = 0, kFloat = 1, kFloats = 2 };

struct AttrDesc {
  const char* name;
  AttrType type;
  int length;             // number of values (1 for int/float)
  double default_value[4];
  bool has_range;         // ints/floats: value must lie in [min, max]
  double min, max;
  const char* doc;
};

// Same order as plugins/opdefs.py OPS.
constexpr AttrDesc kPyramidROIAlignAttrs[] = {
    {"pooled_size", AttrType::kInt, 1, {7}, true, 2, 64, "output crop size P (7 box head, 14 mask head)"},
    {"image_size", AttrType::kInt, 1, {1024}, true, 64, 8192, "side of the padded square network input in pixels"},
    {"canonical_size", AttrType::kFloat, 1, {224.0}, true, 1.0, 8192.0, "ROI side (pixels) that maps to canonical_level"},
    {"canonical_level", AttrType::kInt, 1, {4}, true, 2, 5, "FPN level k0 of a canonical_size ROI"},
};
constexpr AttrDesc kProposalLayerAttrs[] = {
    {"pre_nms_topk", AttrType::kInt, 1, {6000}, true, 1, 1 << 20, "boxes kept by score before NMS (min with A)"},
    {"post_nms_topk", AttrType::kInt, 1, {1000}, true, 1, 1 << 16, "proposals kept after NMS (output rows)"},
    {"nms_threshold", AttrType::kFloat, 1, {0.7}, true, 0.0, 1.0, "IoU above which a box is suppressed"},
    {"rpn_bbox_std_dev", AttrType::kFloats, 4, {0.1, 0.1, 0.2, 0.2}, false, 0, 0, "delta scale (dy, dx, dh, dw)"},
    {"image_size", AttrType::kInt, 1, {1024}, true, 64, 8192, "clip range and normalizer (pixels)"},
};
constexpr AttrDesc kDetectionLayerAttrs[] = {
    {"num_classes", AttrType::kInt, 1, {81}, true, 2, 4096, "classes including background (K)"},
    {"min_confidence", AttrType::kFloat, 1, {0.7}, true, 0.0, 1.0, "minimum score; 0 turns the filter off"},
    {"nms_threshold", AttrType::kFloat, 1, {0.3}, true, 0.0, 1.0, "per-class NMS IoU threshold"},
    {"max_instances", AttrType::kInt, 1, {100}, true, 1, 1 << 16, "detections kept (output rows)"},
    {"bbox_std_dev", AttrType::kFloats, 4, {0.1, 0.1, 0.2, 0.2}, false, 0, 0, "delta scale (dy, dx, dh, dw)"},
    {"image_size", AttrType::kInt, 1, {1024}, true, 64, 8192, "normalized -> pixel factor"},
};

template <typename T, size_t N>
constexpr int array_len(const T (&)[N]) {
  return (int)N;
}

// --------------------------------------------------------------- params
// PyramidROIAlign
//   inputs : boxes [N,R,4] float32 normalized; P2..P5 [N,C,H_l,W_l] (DType)
//   output : crops [N,R,C,P,P] (DType)
struct PyramidROIAlignParams {
  // attributes
  int pooled_size = 7;
  int image_size = 1024;
  float canonical_size = 224.0f;
  int canonical_level = 4;
  // runtime sizes
  int N = 0;      // images
  int R = 0;      // boxes per image
  int C = 0;      // channels (all levels)
  int H[4] = {0, 0, 0, 0};  // P2..P5 heights
  int W[4] = {0, 0, 0, 0};  // P2..P5 widths
};

// ProposalLayer
//   inputs : scores [N,A] (DType), deltas [N,A,4] (DType), anchors [A,4] float32 pixels
//   outputs: rois [N,post_nms_topk,4] float32 normalized, count [N] int32
//            (+ optional anchor_index [N,post_nms_topk] int32, -1 in padded rows)
struct ProposalLayerParams {
  // attributes
  int pre_nms_topk = 6000;
  int post_nms_topk = 1000;
  float nms_threshold = 0.7f;
  float rpn_bbox_std_dev[4] = {0.1f, 0.1f, 0.2f, 0.2f};
  int image_size = 1024;
  // runtime sizes
  int N = 0;  // images
  int A = 0;  // anchors
};

// DetectionLayer
//   inputs : rois [N,R,4] float32 normalized, roi_count [N] int32,
//            probs [N,R,K] (DType), deltas [N,R,K,4] (DType), window [N,4] float32 pixels
//   outputs: detections [N,max_instances,6] float32, count [N] int32
struct DetectionLayerParams {
  // attributes
  int num_classes = 81;
  float min_confidence = 0.7f;
  float nms_threshold = 0.3f;
  int max_instances = 100;
  float bbox_std_dev[4] = {0.1f, 0.1f, 0.2f, 0.2f};
  int image_size = 1024;
  // runtime sizes (K = num_classes)
  int N = 0;  // images
  int R = 0;  // ROIs per image
};

// ------------------------------------------------------- generic access
// set_attr: assign attribute `name` from n values (ints given as doubles).
// Returns false for an unknown name or a wrong number of values; ranges are
// checked separately by validate(). get_attr: writes the values, returns
// their count (0 for an unknown name).
namespace detail {
inline bool set_one(int& dst, const double* v, int n) {
  if (n != 1) return false;
  dst = (int)v[0];
  return (double)dst == v[0];
}
inline bool set_one(float& dst, const double* v, int n) {
  if (n != 1) return false;
  dst = (float)v[0];
  return true;
}
inline bool set_four(float* dst, const double* v, int n) {
  if (n != 4) return false;
  for (int i = 0; i < 4; ++i) dst[i] = (float)v[i];
  return true;
}
inline std::string fmt_double(double v) {
  char buf[64];
  snprintf(buf, sizeof(buf), "%.9g", v);
  return buf;
}
inline std::string check_range(const char* op, const AttrDesc* attrs, int n_attrs, const char* name, double v) {
  for (int i = 0; i < n_attrs; ++i) {
    if (strcmp(attrs[i].name, name) != 0 || !attrs[i].has_range) continue;
    if (!(v >= attrs[i].min && v <= attrs[i].max))  // NaN fails too
      return std::string(op) + "." + name + " = " + fmt_double(v) + " is out of range [" +
             fmt_double(attrs[i].min) + ", " + fmt_double(attrs[i].max) + "]";
  }
  return std::string();
}
inline std::string check_finite(const char* op, const char* name, const float* v, int n) {
  for (int i = 0; i < n; ++i)
    if (!(v[i] - v[i] == 0.0f)) return std::string(op) + "." + name + " must be finite";
  return std::string();
}
}  // namespace detail

inline bool set_attr(PyramidROIAlignParams& p, const char* name, const double* v, int n) {
  if (!strcmp(name, "pooled_size")) return detail::set_one(p.pooled_size, v, n);
  if (!strcmp(name, "image_size")) return detail::set_one(p.image_size, v, n);
  if (!strcmp(name, "canonical_size")) return detail::set_one(p.canonical_size, v, n);
  if (!strcmp(name, "canonical_level")) return detail::set_one(p.canonical_level, v, n);
  return false;
}
inline bool set_attr(ProposalLayerParams& p, const char* name, const double* v, int n) {
  if (!strcmp(name, "pre_nms_topk")) return detail::set_one(p.pre_nms_topk, v, n);
  if (!strcmp(name, "post_nms_topk")) return detail::set_one(p.post_nms_topk, v, n);
  if (!strcmp(name, "nms_threshold")) return detail::set_one(p.nms_threshold, v, n);
  if (!strcmp(name, "rpn_bbox_std_dev")) return detail::set_four(p.rpn_bbox_std_dev, v, n);
  if (!strcmp(name, "image_size")) return detail::set_one(p.image_size, v, n);
  return false;
}
inline bool set_attr(DetectionLayerParams& p, const char* name, const double* v, int n) {
  if (!strcmp(name, "num_classes")) return detail::set_one(p.num_classes, v, n);
  if (!strcmp(name, "min_confidence")) return detail::set_one(p.min_confidence, v, n);
  if (!strcmp(name, "nms_threshold")) return detail::set_one(p.nms_threshold, v, n);
  if (!strcmp(name, "max_instances")) return detail::set_one(p.max_instances, v, n);
  if (!strcmp(name, "bbox_std_dev")) return detail::set_four(p.bbox_std_dev, v, n);
  if (!strcmp(name, "image_size")) return detail::set_one(p.image_size, v, n);
  return false;
}

inline int get_attr(const PyramidROIAlignParams& p, const char* name, double* out) {
  if (!strcmp(name, "pooled_size")) return out[0] = p.pooled_size, 1;
  if (!strcmp(name, "image_size")) return out[0] = p.image_size, 1;
  if (!strcmp(name, "canonical_size")) return out[0] = p.canonical_size, 1;
  if (!strcmp(name, "canonical_level")) return out[0] = p.canonical_level, 1;
  return 0;
}
inline int get_attr(const ProposalLayerParams& p, const char* name, double* out) {
  if (!strcmp(name, "pre_nms_topk")) return out[0] = p.pre_nms_topk, 1;
  if (!strcmp(name, "post_nms_topk")) return out[0] = p.post_nms_topk, 1;
  if (!strcmp(name, "nms_threshold")) return out[0] = p.nms_threshold, 1;
  if (!strcmp(name, "rpn_bbox_std_dev")) {
    for (int i = 0; i < 4; ++i) out[i] = p.rpn_bbox_std_dev[i];
    return 4;
  }
  if (!strcmp(name, "image_size")) return out[0] = p.image_size, 1;
  return 0;
}
inline int get_attr(const DetectionLayerParams& p, const char* name, double* out) {
  if (!strcmp(name, "num_classes")) return out[0] = p.num_classes, 1;
  if (!strcmp(name, "min_confidence")) return out[0] = p.min_confidence, 1;
  if (!strcmp(name, "nms_threshold")) return out[0] = p.nms_threshold, 1;
  if (!strcmp(name, "max_instances")) return out[0] = p.max_instances, 1;
  if (!strcmp(name, "bbox_std_dev")) {
    for (int i = 0; i < 4; ++i) out[i] = p.bbox_std_dev[i];
    return 4;
  }
  if (!strcmp(name, "image_size")) return out[0] = p.image_size, 1;
  return 0;
}

// Attribute table of a params type (for generic code: plugin field lists,
// ONNX Runtime attribute parsing).
inline const AttrDesc* attr_table(const PyramidROIAlignParams&, int* n) {
  *n = array_len(kPyramidROIAlignAttrs);
  return kPyramidROIAlignAttrs;
}
inline const AttrDesc* attr_table(const ProposalLayerParams&, int* n) {
  *n = array_len(kProposalLayerAttrs);
  return kProposalLayerAttrs;
}
inline const AttrDesc* attr_table(const DetectionLayerParams&, int* n) {
  *n = array_len(kDetectionLayerAttrs);
  return kDetectionLayerAttrs;
}
inline const char* op_name(const PyramidROIAlignParams&) { return kPyramidROIAlign; }
inline const char* op_name(const ProposalLayerParams&) { return kProposalLayer; }
inline const char* op_name(const DetectionLayerParams&) { return kDetectionLayer; }

// ------------------------------------------------------------- validation
// Attribute ranges as in opdefs.validate_attrs (message format alike):
// returns "" when valid, else one line naming op, attribute and range.
template <typename P>
inline std::string validate(const P& p) {
  int n = 0;
  const AttrDesc* t = attr_table(p, &n);
  const char* op = op_name(p);
  double v[4];
  for (int i = 0; i < n; ++i) {
    const int cnt = get_attr(p, t[i].name, v);
    if (t[i].type == AttrType::kFloats) {
      float f[4];
      for (int j = 0; j < cnt; ++j) f[j] = (float)v[j];
      std::string e = detail::check_finite(op, t[i].name, f, cnt);
      if (!e.empty()) return e;
    } else {
      std::string e = detail::check_range(op, t, n, t[i].name, v[0]);
      if (!e.empty()) return e;
    }
  }
  return std::string();
}

// Runtime sizes (call after the attributes validate).
inline std::string validate_sizes(const PyramidROIAlignParams& p) {
  if (p.N < 0 || p.R < 0 || p.C < 0) return "PyramidROIAlign: negative size";
  for (int l = 0; l < 4; ++l)
    if (p.H[l] < 1 || p.W[l] < 1) return "PyramidROIAlign: feature map P" + std::to_string(l + 2) + " is empty";
  return std::string();
}
inline std::string validate_sizes(const ProposalLayerParams& p) {
  if (p.N < 0 || p.A < 0) return "ProposalLayer: negative size";
  return std::string();
}
inline std::string validate_sizes(const DetectionLayerParams& p) {
  if (p.N < 0 || p.R < 0) return "DetectionLayer: negative size";
  return std::string();
}

}  // namespace mrcnn
