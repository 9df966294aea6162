// TensorRT-free host logic of the three plugins: attribute parsing from a
// generic field list, versioned serialization, output shape rules, tensor
// type rules and runtime sizes. The TensorRT adapters (plugins/trt/) are thin
// translations between TensorRT's types and the ones below, so everything
// that can go wrong in a plugin's host code is unit-tested here on the CPU
// (plugins/host/plugin_host_test.cpp, run by tests/test_plugin_host.py).
//
// The attribute tables themselves (name, type, default, range) live once in
// plugins/common/op_params.h (kPyramidROIAlignAttrs, ...), mirroring
// plugins/opdefs.py; this file only consumes them.
//
// Errors: every function that can reject its input throws HostError with one
// line naming the op and the offending field / input. Adapters catch it at
// their noexcept boundary and log it.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "../common/all_ops.h"
#include "../common/op_params.h"

namespace mrcnn {
namespace host {

struct HostError : std::runtime_error {
  explicit HostError(const std::string& what) : std::runtime_error(what) {}
};

// ------------------------------------------------------------------ fields
// How a value arrived (TensorRT PluginFieldType kINT* -> kInt, kFLOAT* -> kFloat).
enum class FieldKind : int { kInt = 0, kFloat = 1 };

struct FieldValue {
  std::string name;
  FieldKind kind = FieldKind::kFloat;
  std::vector<double> values;
};

// Name of the extra field carrying the serialization format in field-based
// serialization (IPluginV3::getFieldsToSerialize). Not an op attribute.
constexpr const char* kFormatField = "mrcnn_format_version";
// Version of the serialized form (binary blob and field list). Bump when the
// layout changes; deserialization rejects other versions with a clear error.
constexpr int kSerialFormatVersion = 1;

// Attribute values from a field list: fields absent from the list keep their
// default (op_params.h); unknown names, wrong kinds (a non-integral value for
// an int), wrong value counts, duplicates and out-of-range values throw.
// `allow_format_field`: accept (and check) kFormatField.
template <typename P>
P parse_fields(const std::vector<FieldValue>& fields, bool allow_format_field = false);

// The attributes of `p` as a field list, in table order (ints as kInt).
// `with_format_field` appends kFormatField.
template <typename P>
std::vector<FieldValue> to_fields(const P& p, bool with_format_field = false);

// ------------------------------------------------------------ serialization
// Layout (little endian), format version 1:
//   u32 magic 'MRCN' | u16 format version | u16 len + op name
//   | u16 field count | per field: u16 len + name, u8 AttrType, u8 count,
//     count values (int: i32, float/floats: f32 bit pattern)
// Only attributes are serialized; runtime sizes come from tensor shapes.
template <typename P>
size_t serialized_size(const P& p);
template <typename P>
void serialize(const P& p, void* buffer, size_t size);  // size must be serialized_size(p)
template <typename P>
std::vector<uint8_t> serialize(const P& p);
// Checks magic, format version, op name, every field's name/type/count, the
// exact length and the attribute ranges.
template <typename P>
P deserialize(const void* data, size_t size);

// ------------------------------------------------------------------ tensors
// Element type as far as the plugins care (anything else is kOther).
enum class TType : int { kFloat32 = 0, kFloat16 = 1, kInt32 = 2, kOther = 3 };

// What a tensor may hold: always float32 (geometry), always int32 (counts) or
// the op's data type (float32 or float16, the same for all kData tensors).
// The tensors of each op come from the contract (common/op_contract.h,
// generated from plugins/opdefs.py).
enum class Role : int { kF32 = 0, kData = 1, kI32 = 2 };

// One dimension of a tensor: a constant, an attribute's value or a size
// symbol (N, R, ...) that is equal wherever it appears and bound by the inputs.
enum class DimKind : int { kConst = 0, kAttr = 1, kSymbol = 2 };
struct DimSpec {
  DimKind kind;
  int64_t value;     // kConst: the size; kSymbol: index into OpIO::symbols
  const char* name;  // kAttr: attribute name; kSymbol: symbol name
};

constexpr int kMaxRank = 5;
constexpr int kMaxOutputs = 8;  // node + kernel-only outputs of one op (checked at compile time)
struct TensorSpec {
  const char* name;
  Role role;
  int rank;
  DimSpec dims[kMaxRank];
};

struct SymbolSpec {
  const char* name;
  int64_t min;  // smallest valid size (1: must not be empty)
};

struct OpIO {
  int nb_inputs;
  int nb_outputs;        // node outputs (ONNX, TensorRT)
  int nb_extra_outputs;  // kernel-only outputs after them (C++/CUDA kernels, PyTorch operators)
  const TensorSpec* inputs;
  const TensorSpec* outputs;  // nb_outputs + nb_extra_outputs entries
  int nb_symbols;
  const SymbolSpec* symbols;
};

template <typename P>
const OpIO& op_io();

// supportsFormatCombination: may position `pos` (inputs first, then outputs)
// have type types[pos] with layout linear[pos], given the choices for
// positions < pos? Only linear layouts; kF32 -> float32, kI32 -> int32,
// kData -> float32 or float16 and equal to the first kData position.
template <typename P>
bool supports_combination(int pos, const TType* types, const bool* linear, int nb_inputs, int nb_outputs);

// Type of output `index` given the input types (kData outputs follow the
// first kData input).
template <typename P>
TType output_type(int index, const TType* input_types, int nb_inputs);

// The launcher's DType from the input types (first kData input); throws if
// that is neither float32 nor float16.
template <typename P>
DType data_dtype(const TType* input_types, int nb_inputs);

// ------------------------------------------------------------------- shapes
using Dims = std::vector<int64_t>;   // -1: not known yet (build time)

// One output dimension: a copy of input `input`'s dimension `dim`, or the
// constant `value` when input < 0. Adapters turn rules into IDimensionExpr.
struct DimRule {
  int input;
  int dim;
  int64_t value;
};

// Ranks and the relations between the inputs' sizes (unknown dims skipped):
// throws HostError naming the input and the expected shape. Returns the value
// of every size symbol of op_io<P>().symbols (-1 where no input knows it).
template <typename P>
std::vector<int64_t> check_input_dims(const P& p, const std::vector<Dims>& inputs);

// Output `index`'s dimensions as rules (its rank is the size). Indices
// nb_outputs ... nb_outputs + nb_extra_outputs - 1 are the extra outputs.
template <typename P>
std::vector<DimRule> output_dim_rules(const P& p, int index);

// check_input_dims + rules evaluated on `inputs` (unknown stays -1): the node
// outputs, or with `with_extra` also the kernel-only outputs.
template <typename P>
std::vector<Dims> output_shapes(const P& p, const std::vector<Dims>& inputs, bool with_extra = false);

// `p` with its runtime sizes (N, R, C, H, W / A) taken from concrete input
// dims (all known); throws if dims are invalid or unknown.
template <typename P>
P with_runtime_sizes(P p, const std::vector<Dims>& inputs);

// Workspace bytes for concrete (or maximum) input dims: the launcher's own
// size function applied to the sized params, plus alignment slack.
template <typename P>
size_t workspace_bytes(const P& p, const std::vector<Dims>& inputs, size_t (*launcher_workspace)(const P&));

// Round up to the 256-byte alignment TensorRT guarantees for workspaces.
inline size_t align_up(size_t n, size_t a = 256) { return (n + a - 1) / a * a; }

// ---------------------------------------------------------------- reporting
// The three ops' attribute tables and parsed defaults as JSON (for the check
// against plugins/opdefs.py).
std::string fields_json();

// The compiled contract as JSON: per op its attributes (name, type, length,
// defaults, range) and tensors (inputs, outputs, extra outputs: name, role,
// dims as ints / attribute names / symbol names) and symbols with their
// minimum. tests/test_op_contract.py compares it with plugins/opdefs.py.
std::string contract_json();

}  // namespace host
}  // namespace mrcnn
