// Parameters of the custom ops, generic part: the attributes of the op contract
// (plugins/opdefs.py, generated into op_contract.h: names, types, defaults,
// ranges) as tables, struct members and set_attr/get_attr, attribute
// validation, and the OpTraits interface each op implements in its own folder.
// Shared by the CPU kernels, the CUDA kernels, the ONNX Runtime custom ops, the
// pybind11 module, the C-ABI library of the PyTorch operators and the TensorRT
// plugins. No CUDA or TensorRT header.
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
#undef MRCNN_ATTR_DESC

template <typename T, size_t N>
constexpr int array_len(const T (&)[N]) {
  return (int)N;
}

// --------------------------------------------------------------- params
// Each op's params struct (attributes from the contract + the runtime sizes
// its kernels need) lives in its own folder, plugins/<folder>/<folder>.h:
//   struct <Op>Params { MRCNN_OP_ATTR_MEMBERS(<Op>) int N = 0; ... };
//   MRCNN_OP_ATTR_ACCESS(<Op>)
// with OpTraits<<Op>Params> (below); plugins/common/all_ops.h includes them all.
#define MRCNN_OP_ATTR_MEMBERS(Op) MRCNN_##Op##_ATTRS(MRCNN_ATTR_MEMBER)
// For ops whose kernels need exactly the contract's size symbols: one int
// member per symbol (int N = 0; ...) and the OpTraits::set_sizes filling them.
#define MRCNN_SIZE_MEMBER(name, min) int name = 0;
#define MRCNN_OP_SIZE_MEMBERS(Op) MRCNN_##Op##_SYMBOLS(MRCNN_SIZE_MEMBER)
#define MRCNN_SET_SIZE(name, min) p.name = size(#name);
#define MRCNN_OP_SET_SIZES(Op)                        \
  template <typename Size>                            \
  static void set_sizes(Op##Params& p, Size&& size) { \
    MRCNN_##Op##_SYMBOLS(MRCNN_SET_SIZE)              \
  }


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
// set_attr / get_attr / attr_table / op_name of Op##Params (for generic code:
// plugin field lists, ONNX Runtime attribute parsing). Invoked once in each
// op's header, after its params struct.
#define MRCNN_OP_ATTR_ACCESS(Op)                                                     \
  inline bool set_attr(Op##Params& p, const char* attr, const double* v, int n) {    \
    MRCNN_##Op##_ATTRS(MRCNN_SET_ATTR) return false;                                 \
  }                                                                                  \
  inline int get_attr(const Op##Params& p, const char* attr, double* out) {          \
    MRCNN_##Op##_ATTRS(MRCNN_GET_ATTR) return 0;                                     \
  }                                                                                  \
  inline const AttrDesc* attr_table(const Op##Params&, int* n) {                     \
    *n = array_len(k##Op##Attrs);                                                    \
    return k##Op##Attrs;                                                             \
  }                                                                                  \
  inline const char* op_name(const Op##Params&) { return k##Op; }

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

// ------------------------------------------------------------ op traits
// What each layer (ONNX Runtime ops, pybind11 module, C-ABI library, TensorRT
// plugins, host) needs of an op beyond the contract, specialized once in the
// op's own header (plugins/<folder>/<folder>.h) with one fixed signature:
//
//   template <> struct OpTraits<XParams> {
//     // runtime sizes from the contract's size symbols: size("N") -> int
//     template <typename Size> static void set_sizes(XParams& p, Size&& size);
//     static size_t cpu_workspace(const XParams& p);
//     static void cpu(const XParams& p, DType dtype, const void* const* inputs,
//                     void* const* outputs, void* workspace, const CpuParallel* par);
//     // with CUDA (nvcc or MRCNN_WITH_CUDA):
//     static size_t cuda_workspace(const XParams& p);
//     static cudaError_t cuda(const XParams& p, DType dtype, const void* const* inputs,
//                             void* const* outputs, void* workspace, cudaStream_t stream);
//   };
//
// `inputs` are the contract's inputs in order; `outputs` hold the node outputs
// then the kernel-only (extra) outputs, which may be nullptr. Plus
// std::string validate_sizes(const XParams&) ("" when the sizes are valid).
template <typename P>
struct OpTraits;

// The contract name of a params type, usable in constant expressions
// (kOpName<PyramidROIAlignParams> == "PyramidROIAlign").
template <typename P>
constexpr const char* kOpName = nullptr;
#define MRCNN_OP_NAME_OF(Op, torch_name) \
  struct Op##Params;                     \
  template <>                            \
  constexpr const char* kOpName<Op##Params> = k##Op;
MRCNN_CONTRACT_OPS(MRCNN_OP_NAME_OF)
#undef MRCNN_OP_NAME_OF

}  // namespace mrcnn
