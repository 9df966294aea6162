// Parameters of the three custom ops: the attributes of the op contract
// (plugins/opdefs.py, generated into op_contract.h: names, types, defaults,
// ranges) plus the runtime sizes each kernel needs. Shared by the CPU kernels,
// the CUDA kernels, the ONNX Runtime custom ops, the pybind11 module, the C-ABI
// library of the PyTorch operators and the TensorRT plugins. Plain structs; no
// CUDA or TensorRT header.
//
// Every attribute is written once, in op_contract.h's X-macros: the struct
// members, the attribute tables and set_attr/get_attr below are expanded from
// them. tests/test_op_contract.py checks the generated header against
// plugins/opdefs.py and the compiled tables against both.
#pragma once

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <string>

#include "op_contract.h"

namespace mrcnn {

constexpr const char* kDomain = MRCNN_CONTRACT_DOMAIN;                    // ONNX node domain
constexpr int kOpVersion = MRCNN_CONTRACT_OP_VERSION;                     // ONNX op set version of kDomain
constexpr const char* kPluginVersion = MRCNN_CONTRACT_PLUGIN_VERSION;     // TensorRT plugin version
constexpr const char* kPluginNamespace = MRCNN_CONTRACT_PLUGIN_NAMESPACE; // TensorRT plugin namespace

#define MRCNN_OP_NAME_CONSTANT(Op, torch_name) constexpr const char* k##Op = #Op;
MRCNN_CONTRACT_OPS(MRCNN_OP_NAME_CONSTANT)
#undef MRCNN_OP_NAME_CONSTANT

// Element type of the "data" tensors of an op (the contract's role "data";
// geometry tensors are always float32, counts int32).
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

// C++ type of an attribute value: int, float or float[length].
template <AttrType T, int L>
struct AttrValue;
template <>
struct AttrValue<AttrType::kInt, 1> {
  using type = int;
};
template <>
struct AttrValue<AttrType::kFloat, 1> {
  using type = float;
};
template <int L>
struct AttrValue<AttrType::kFloats, L> {
  using type = float[L];
};
template <AttrType T, int L>
using attr_value_t = typename AttrValue<T, L>::type;

#define MRCNN_ATTR_DESC(name, type, length, has_range, lo, hi, doc, ...) \
  {#name, AttrType::type, length, {__VA_ARGS__}, has_range, lo, hi, doc},
#define MRCNN_ATTR_MEMBER(name, type, length, has_range, lo, hi, doc, ...) \
  attr_value_t<AttrType::type, length> name{__VA_ARGS__};

// Tables in contract order: kPyramidROIAlignAttrs, kProposalLayerAttrs, kDetectionLayerAttrs.
#define MRCNN_ATTR_TABLE(Op, torch_name) constexpr AttrDesc k##Op##Attrs[] = {MRCNN_##Op##_ATTRS(MRCNN_ATTR_DESC)};
MRCNN_CONTRACT_OPS(MRCNN_ATTR_TABLE)
#undef MRCNN_ATTR_TABLE

template <typename T, size_t N>
constexpr int array_len(const T (&)[N]) {
  return (int)N;
}

// --------------------------------------------------------------- params
// Attributes (from the contract) + runtime sizes (from the input shapes; see
// each op's header for the tensors).

// PyramidROIAlign
//   inputs : boxes [N,R,4] float32 normalized; P2..P5 [N,C,H_l,W_l] (DType)
//   output : crops [N,R,C,P,P] (DType)
struct PyramidROIAlignParams {
  MRCNN_PyramidROIAlign_ATTRS(MRCNN_ATTR_MEMBER)
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
  MRCNN_ProposalLayer_ATTRS(MRCNN_ATTR_MEMBER)
  // runtime sizes
  int N = 0;  // images
  int A = 0;  // anchors
};

// DetectionLayer
//   inputs : rois [N,R,4] float32 normalized, roi_count [N] int32,
//            probs [N,R,K] (DType), deltas [N,R,K,4] (DType), window [N,4] float32 pixels
//   outputs: detections [N,max_instances,6] float32, count [N] int32
struct DetectionLayerParams {
  MRCNN_DetectionLayer_ATTRS(MRCNN_ATTR_MEMBER)
  // runtime sizes (K = num_classes)
  int N = 0;  // images
  int R = 0;  // ROIs per image
};

#undef MRCNN_ATTR_MEMBER
#undef MRCNN_ATTR_DESC

// ------------------------------------------------------- generic access
// set_attr: assign attribute `name` from n values (ints given as doubles).
// Returns false for an unknown name, a wrong number of values or a
// non-integral value for an int; ranges are checked separately by validate().
// get_attr: writes the values, returns their count (0 for an unknown name).
namespace detail {
inline bool set_value(int& dst, const double* v, int n) {
  if (n != 1) return false;
  dst = (int)v[0];
  return (double)dst == v[0];
}
inline bool set_value(float& dst, const double* v, int n) {
  if (n != 1) return false;
  dst = (float)v[0];
  return true;
}
template <int L>
inline bool set_value(float (&dst)[L], const double* v, int n) {
  if (n != L) return false;
  for (int i = 0; i < L; ++i) dst[i] = (float)v[i];
  return true;
}
inline int get_value(int src, double* out) { return out[0] = src, 1; }
inline int get_value(float src, double* out) { return out[0] = src, 1; }
template <int L>
inline int get_value(const float (&src)[L], double* out) {
  for (int i = 0; i < L; ++i) out[i] = src[i];
  return L;
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

#define MRCNN_SET_ATTR(name, ...) \
  if (!strcmp(attr, #name)) return detail::set_value(p.name, v, n);
#define MRCNN_GET_ATTR(name, ...) \
  if (!strcmp(attr, #name)) return detail::get_value(p.name, out);
#define MRCNN_ATTR_ACCESS(Op, torch_name)                                            \
  inline bool set_attr(Op##Params& p, const char* attr, const double* v, int n) {    \
    MRCNN_##Op##_ATTRS(MRCNN_SET_ATTR) return false;                                 \
  }                                                                                  \
  inline int get_attr(const Op##Params& p, const char* attr, double* out) {          \
    MRCNN_##Op##_ATTRS(MRCNN_GET_ATTR) return 0;                                     \
  }                                                                                  \
  /* Attribute table of a params type (for generic code: plugin field lists,  */    \
  /* ONNX Runtime attribute parsing).                                         */    \
  inline const AttrDesc* attr_table(const Op##Params&, int* n) {                     \
    *n = array_len(k##Op##Attrs);                                                    \
    return k##Op##Attrs;                                                             \
  }                                                                                  \
  inline const char* op_name(const Op##Params&) { return k##Op; }
MRCNN_CONTRACT_OPS(MRCNN_ATTR_ACCESS)
#undef MRCNN_ATTR_ACCESS
#undef MRCNN_GET_ATTR
#undef MRCNN_SET_ATTR

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
