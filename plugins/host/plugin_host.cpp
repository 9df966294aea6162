// Implementation of plugin_host.h (see there). No TensorRT, no CUDA.
#include "plugin_host.h"

#include "byte_io.h"

#include <math.h>
#include <string.h>

#include <set>
#include <sstream>
#include <utility>

namespace mrcnn {
namespace host {

namespace {

// ------------------------------------------------------------ table helpers
template <typename P>
const AttrDesc* table(int* n) {
  P p;
  return attr_table(p, n);
}

template <typename P>
const char* op_of() {
  P p;
  return op_name(p);
}

const char* type_name(AttrType t) {
  switch (t) {
    case AttrType::kInt: return "int";
    case AttrType::kFloat: return "float";
    case AttrType::kFloats: return "floats";
  }
  return "?";
}

std::string num(double v) {
  char buf[64];
  snprintf(buf, sizeof(buf), "%.9g", v);
  return buf;
}

[[noreturn]] void fail(const std::string& msg) { throw HostError(msg); }

// --------------------------------------------------------------- op specs
// Expanded from the contract's X-macros (common/op_contract.h). Every list ends
// with a terminator entry (zero-length arrays are not C++).
#define MRCNN_DIM_CONST(v) DimSpec{DimKind::kConst, v, ""}
#define MRCNN_DIM_ATTR(a) DimSpec{DimKind::kAttr, 0, #a}
#define MRCNN_DIM_SYM(i, s) DimSpec{DimKind::kSymbol, i, #s}
#define MRCNN_TENSOR(name, role, rank, ...) TensorSpec{#name, Role::role, rank, {__VA_ARGS__}},
#define MRCNN_SYMBOL(name, min) SymbolSpec{#name, min},
constexpr TensorSpec kEndTensor{nullptr, Role::kF32, 0, {}};
constexpr SymbolSpec kEndSymbol{nullptr, 0};

#define MRCNN_OP_SPECS(Op, torch_name)                                                                          \
  constexpr TensorSpec k##Op##In[] = {MRCNN_##Op##_INPUTS(MRCNN_TENSOR) kEndTensor};                            \
  constexpr TensorSpec k##Op##OutMain[] = {MRCNN_##Op##_OUTPUTS(MRCNN_TENSOR) kEndTensor};                      \
  constexpr TensorSpec k##Op##Out[] = {MRCNN_##Op##_OUTPUTS(MRCNN_TENSOR) MRCNN_##Op##_EXTRA_OUTPUTS(MRCNN_TENSOR) \
                                           kEndTensor};                                                         \
  constexpr SymbolSpec k##Op##Symbols[] = {MRCNN_##Op##_SYMBOLS(MRCNN_SYMBOL) kEndSymbol};                      \
  static_assert(array_len(k##Op##Out) - 1 <= kMaxOutputs, #Op ": more outputs than kMaxOutputs");             \
  const OpIO k##Op##IO{array_len(k##Op##In) - 1,                                                                \
                       array_len(k##Op##OutMain) - 1,                                                           \
                       array_len(k##Op##Out) - array_len(k##Op##OutMain),                                       \
                       k##Op##In,                                                                               \
                       k##Op##Out,                                                                              \
                       array_len(k##Op##Symbols) - 1,                                                           \
                       k##Op##Symbols};
MRCNN_CONTRACT_OPS(MRCNN_OP_SPECS)
#undef MRCNN_OP_SPECS
#undef MRCNN_SYMBOL
#undef MRCNN_TENSOR
#undef MRCNN_DIM_SYM
#undef MRCNN_DIM_ATTR
#undef MRCNN_DIM_CONST

std::string dims_str(const Dims& d) {
  std::string s = "[";
  for (size_t i = 0; i < d.size(); ++i) {
    if (i) s += ",";
    s += d[i] < 0 ? std::string("?") : std::to_string(d[i]);
  }
  return s + "]";
}

template <typename P>
int64_t attr_dim(const P& p, const char* name) {
  double v[4];
  if (get_attr(p, name, v) != 1) fail(std::string(op_name(p)) + ": contract dimension '" + name + "' is not an attribute");
  return (int64_t)v[0];
}

// "[N,R,4]" of a spec; with `p`, attribute dims as their value ("[N,R,81]").
template <typename P>
std::string spec_str(const TensorSpec& t, const P* p) {
  std::string s = "[";
  for (int k = 0; k < t.rank; ++k) {
    if (k) s += ",";
    const DimSpec& d = t.dims[k];
    if (d.kind == DimKind::kConst) s += std::to_string(d.value);
    else if (d.kind == DimKind::kAttr && p) s += std::to_string(attr_dim(*p, d.name));
    else s += d.name;
  }
  return s + "]";
}

// The contract's shape rules on concrete or partly unknown (-1) input dims;
// same checks and messages as plugins/opdefs.py bind_shapes.
template <typename P>
std::vector<int64_t> bind_symbols(const P& p, const std::vector<Dims>& in) {
  const OpIO& io = op_io<P>();
  const std::string op = op_name(p);
  if ((int)in.size() != io.nb_inputs)
    fail(op + ": expected " + std::to_string(io.nb_inputs) + " inputs, got " + std::to_string(in.size()));
  std::vector<int64_t> sym((size_t)io.nb_symbols, -1);
  std::vector<std::string> where((size_t)io.nb_symbols);
  for (int i = 0; i < io.nb_inputs; ++i) {
    const TensorSpec& t = io.inputs[i];
    const Dims& d = in[i];
    const std::string got = dims_str(d);
    if ((int)d.size() != t.rank)
      fail(op + ": input " + std::to_string(i) + " (" + t.name + ") must have rank " + std::to_string(t.rank) + " " +
           spec_str<P>(t, nullptr) + ", got shape " + got);
    for (int64_t v : d)
      if (v < -1) fail(op + ": input " + t.name + " has an invalid shape " + got);
    for (int k = 0; k < t.rank; ++k) {
      const int64_t v = d[k];
      if (v < 0) continue;
      const DimSpec& ds = t.dims[k];
      if (ds.kind == DimKind::kConst || ds.kind == DimKind::kAttr) {
        const int64_t want = ds.kind == DimKind::kConst ? ds.value : attr_dim(p, ds.name);
        if (v != want)
          fail(op + ": input " + t.name + " must be " + spec_str(t, &p) +
               (ds.kind == DimKind::kAttr ? " (" + std::string(ds.name) + " = " + std::to_string(want) + ")" : "") +
               ", got " + got);
        continue;
      }
      const size_t s = (size_t)ds.value;
      if (sym[s] >= 0) {
        if (v != sym[s])
          fail(op + ": input " + t.name + " " + got + " does not match " + where[s] + " (" + ds.name + " = " +
               std::to_string(sym[s]) + "); expected " + t.name + " " + spec_str<P>(t, nullptr));
        continue;
      }
      if (v < io.symbols[s].min)
        fail(op + ": input " + t.name + " " + got + " has " + ds.name + " = " + std::to_string(v) + " (must be >= " +
             std::to_string(io.symbols[s].min) + ")");
      sym[s] = v;
      where[s] = std::string(t.name) + " " + got;
    }
  }
  return sym;
}

void require_known(const char* op, const OpIO& io, const std::vector<Dims>& in) {
  for (size_t i = 0; i < in.size(); ++i)
    for (int64_t d : in[i])
      if (d < 0) fail(std::string(op) + ": input " + io.inputs[i].name + " " + dims_str(in[i]) + " is not fully known");
}

int to_int(int64_t v, const char* op, const char* what) {
  if (v > 0x7fffffff) fail(std::string(op) + ": " + what + " = " + std::to_string(v) + " is too large");
  return (int)v;
}

// ----------------------------------------------------------------- JSON
std::string json_str(const char* s) {
  std::string o = "\"";
  for (const char* c = s; *c; ++c) {
    if (*c == '"' || *c == '\\') o += '\\';
    o += *c;
  }
  return o + "\"";
}

template <typename P>
std::string op_json() {
  int n = 0;
  const AttrDesc* t = table<P>(&n);
  const P parsed = parse_fields<P>({});  // what a node without attributes gets
  const P initial{};                      // the struct's member initializers
  std::ostringstream os;
  os << json_str(op_of<P>()) << ": [";
  for (int i = 0; i < n; ++i) {
    double v[4];
    os << (i ? ", " : "") << "{\"name\": " << json_str(t[i].name) << ", \"type\": \"" << type_name(t[i].type)
       << "\", \"length\": " << t[i].length << ", \"table_default\": [";
    for (int j = 0; j < t[i].length; ++j) os << (j ? ", " : "") << num(t[i].default_value[j]);
    os << "], \"struct_default\": [";
    int cnt = get_attr(initial, t[i].name, v);
    for (int j = 0; j < cnt; ++j) os << (j ? ", " : "") << num(v[j]);
    os << "], \"parsed_default\": [";
    cnt = get_attr(parsed, t[i].name, v);
    for (int j = 0; j < cnt; ++j) os << (j ? ", " : "") << num(v[j]);
    os << "], \"min\": " << (t[i].has_range ? num(t[i].min) : "null")
       << ", \"max\": " << (t[i].has_range ? num(t[i].max) : "null") << "}";
  }
  os << "]";
  return os.str();
}

}  // namespace

// ================================================================= fields
template <typename P>
P parse_fields(const std::vector<FieldValue>& fields, bool allow_format_field) {
  P p;  // struct defaults
  const char* op = op_name(p);
  int n = 0;
  const AttrDesc* t = attr_table(p, &n);
  // Start from the table defaults so that the table is the one source.
  for (int i = 0; i < n; ++i) {
    if (!set_attr(p, t[i].name, t[i].default_value, t[i].length))
      fail(std::string(op) + ": bad default for " + t[i].name);
  }
  std::set<std::string> seen;
  for (const FieldValue& f : fields) {
    if (f.name == "plugin_version" || f.name == "plugin_namespace") continue;  // ONNX parser conventions
    if (!seen.insert(f.name).second) fail(std::string(op) + ": field " + f.name + " given twice");
    if (f.name == kFormatField) {
      if (!allow_format_field) fail(std::string(op) + ": unknown field " + f.name);
      if (f.values.size() != 1 || f.values[0] != (double)kSerialFormatVersion)
        fail(std::string(op) + ": serialized with format version " +
             (f.values.size() == 1 ? num(f.values[0]) : std::string("?")) + ", this library reads version " +
             std::to_string(kSerialFormatVersion) + " (rebuild the engine with this plugin library)");
      continue;
    }
    const AttrDesc* a = nullptr;
    for (int i = 0; i < n; ++i)
      if (f.name == t[i].name) a = &t[i];
    if (!a) {
      std::string known;
      for (int i = 0; i < n; ++i) known += std::string(i ? ", " : "") + t[i].name;
      fail(std::string(op) + ": unknown field '" + f.name + "' (fields: " + known + ")");
    }
    if ((int)f.values.size() != a->length)
      fail(std::string(op) + "." + f.name + " needs " + std::to_string(a->length) + " value(s), got " +
           std::to_string(f.values.size()));
    for (double v : f.values)
      if (!std::isfinite(v)) fail(std::string(op) + "." + f.name + " must be finite");
    if (a->type == AttrType::kInt) {
      const double v = f.values[0];
      if (v != floor(v) || fabs(v) > 2147483647.0)
        fail(std::string(op) + "." + f.name + " must be an int, got " + num(v));
    }
    if (!set_attr(p, a->name, f.values.data(), (int)f.values.size()))
      fail(std::string(op) + ": cannot set " + f.name);
  }
  const std::string err = validate(p);
  if (!err.empty()) fail(err);
  return p;
}

template <typename P>
std::vector<FieldValue> to_fields(const P& p, bool with_format_field) {
  int n = 0;
  const AttrDesc* t = attr_table(p, &n);
  std::vector<FieldValue> out;
  for (int i = 0; i < n; ++i) {
    double v[4];
    const int cnt = get_attr(p, t[i].name, v);
    FieldValue f;
    f.name = t[i].name;
    f.kind = t[i].type == AttrType::kInt ? FieldKind::kInt : FieldKind::kFloat;
    f.values.assign(v, v + cnt);
    out.push_back(f);
  }
  if (with_format_field) out.push_back({kFormatField, FieldKind::kInt, {(double)kSerialFormatVersion}});
  return out;
}

// ========================================================== serialization
template <typename P>
size_t serialized_size(const P& p) {
  int n = 0;
  const AttrDesc* t = attr_table(p, &n);
  size_t s = 4 + 2 + 2 + strlen(op_name(p)) + 2;
  for (int i = 0; i < n; ++i) s += 2 + strlen(t[i].name) + 1 + 1 + 4 * (size_t)t[i].length;
  return s;
}

template <typename P>
void serialize(const P& p, void* buffer, size_t size) {
  if (size != serialized_size(p)) fail(std::string(op_name(p)) + ": serialize buffer has the wrong size");
  int n = 0;
  const AttrDesc* t = attr_table(p, &n);
  Writer w{(uint8_t*)buffer, (uint8_t*)buffer + size};
  w.u32(kMagic);
  w.u16((uint16_t)kSerialFormatVersion);
  w.str(op_name(p));
  w.u16((uint16_t)n);
  for (int i = 0; i < n; ++i) {
    double v[4];
    const int cnt = get_attr(p, t[i].name, v);
    w.str(t[i].name);
    w.u8((uint8_t)t[i].type);
    w.u8((uint8_t)cnt);
    for (int j = 0; j < cnt; ++j) {
      if (t[i].type == AttrType::kInt)
        w.u32((uint32_t)(int32_t)v[j]);
      else
        w.u32(f32_bits((float)v[j]));
    }
  }
}

template <typename P>
std::vector<uint8_t> serialize(const P& p) {
  std::vector<uint8_t> out(serialized_size(p));
  serialize(p, out.data(), out.size());
  return out;
}

template <typename P>
P deserialize(const void* data, size_t size) {
  P p;
  const std::string op = op_name(p);
  if (data == nullptr) fail(op + ": no serialized data");
  Reader r{(const uint8_t*)data, (const uint8_t*)data + size, op};
  if (r.u32() != kMagic) fail(op + ": serialized data is not from this plugin library (bad magic)");
  const uint16_t version = r.u16();
  if (version != kSerialFormatVersion)
    fail(op + ": serialized with format version " + std::to_string(version) + ", this library reads version " +
         std::to_string(kSerialFormatVersion) + " (rebuild the engine with this plugin library)");
  const std::string name = r.str();
  if (name != op) fail(op + ": serialized data belongs to op '" + name + "'");
  int n = 0;
  const AttrDesc* t = attr_table(p, &n);
  const uint16_t count = r.u16();
  if (count != n) fail(op + ": serialized " + std::to_string(count) + " fields, expected " + std::to_string(n));
  std::vector<FieldValue> fields;
  for (int i = 0; i < n; ++i) {
    const std::string fname = r.str();
    const uint8_t type = r.u8();
    const uint8_t cnt = r.u8();
    if (fname != t[i].name || type != (uint8_t)t[i].type || cnt != t[i].length)
      fail(op + ": serialized field " + std::to_string(i) + " is '" + fname + "' (type " + std::to_string(type) +
           ", " + std::to_string(cnt) + " values), expected '" + t[i].name + "'");
    FieldValue f;
    f.name = fname;
    f.kind = t[i].type == AttrType::kInt ? FieldKind::kInt : FieldKind::kFloat;
    for (int j = 0; j < cnt; ++j) {
      const uint32_t u = r.u32();
      f.values.push_back(t[i].type == AttrType::kInt ? (double)(int32_t)u : (double)bits_f32(u));
    }
    fields.push_back(f);
  }
  if (r.p != r.end) fail(op + ": " + std::to_string(r.end - r.p) + " unexpected trailing bytes in serialized data");
  return parse_fields<P>(fields);
}

// ================================================================ tensors
#define MRCNN_OP_IO(Op, torch_name) \
  template <>                       \
  const OpIO& op_io<Op##Params>() { \
    return k##Op##IO;               \
  }
MRCNN_CONTRACT_OPS(MRCNN_OP_IO)
#undef MRCNN_OP_IO

namespace {
const TensorSpec& spec_at(const OpIO& io, int pos) {
  return pos < io.nb_inputs ? io.inputs[pos] : io.outputs[pos - io.nb_inputs];
}
int first_data_input(const OpIO& io) {
  for (int i = 0; i < io.nb_inputs; ++i)
    if (io.inputs[i].role == Role::kData) return i;
  return -1;
}
}  // namespace

template <typename P>
bool supports_combination(int pos, const TType* types, const bool* linear, int nb_inputs, int nb_outputs) {
  const OpIO& io = op_io<P>();
  if (nb_inputs != io.nb_inputs || nb_outputs != io.nb_outputs) return false;
  if (pos < 0 || pos >= nb_inputs + nb_outputs || types == nullptr || linear == nullptr) return false;
  if (!linear[pos]) return false;
  const TType t = types[pos];
  switch (spec_at(io, pos).role) {
    case Role::kF32: return t == TType::kFloat32;
    case Role::kI32: return t == TType::kInt32;
    case Role::kData: {
      if (t != TType::kFloat32 && t != TType::kFloat16) return false;
      const int first = first_data_input(io);
      return first < 0 || first >= pos || types[first] == t;
    }
  }
  return false;
}

template <typename P>
TType output_type(int index, const TType* input_types, int nb_inputs) {
  const OpIO& io = op_io<P>();
  if (index < 0 || index >= io.nb_outputs) fail(std::string(op_of<P>()) + ": no output " + std::to_string(index));
  switch (io.outputs[index].role) {
    case Role::kF32: return TType::kFloat32;
    case Role::kI32: return TType::kInt32;
    case Role::kData: {
      const int first = first_data_input(io);
      if (first < 0 || first >= nb_inputs || input_types == nullptr) return TType::kFloat32;
      const TType t = input_types[first];
      return (t == TType::kFloat16) ? TType::kFloat16 : TType::kFloat32;
    }
  }
  return TType::kFloat32;
}

template <typename P>
DType data_dtype(const TType* input_types, int nb_inputs) {
  const OpIO& io = op_io<P>();
  const int first = first_data_input(io);
  if (first < 0 || first >= nb_inputs || input_types == nullptr)
    fail(std::string(op_of<P>()) + ": missing data input");
  if (input_types[first] == TType::kFloat32) return DType::kFloat32;
  if (input_types[first] == TType::kFloat16) return DType::kFloat16;
  fail(std::string(op_of<P>()) + ": input " + io.inputs[first].name + " must be float32 or float16");
}

// ================================================================= shapes
template <typename P>
std::vector<int64_t> check_input_dims(const P& p, const std::vector<Dims>& in) {
  return bind_symbols(p, in);
}

template <typename P>
std::vector<DimRule> output_dim_rules(const P& p, int index) {
  const OpIO& io = op_io<P>();
  if (index < 0 || index >= io.nb_outputs + io.nb_extra_outputs)
    fail(std::string(op_name(p)) + ": no output " + std::to_string(index));
  const TensorSpec& t = io.outputs[index];
  std::vector<DimRule> rules;
  for (int k = 0; k < t.rank; ++k) {
    const DimSpec& d = t.dims[k];
    if (d.kind == DimKind::kConst) {
      rules.push_back({-1, 0, d.value});
    } else if (d.kind == DimKind::kAttr) {
      rules.push_back({-1, 0, attr_dim(p, d.name)});
    } else {  // the first input dimension bound to the symbol
      bool found = false;
      for (int i = 0; i < io.nb_inputs && !found; ++i)
        for (int j = 0; j < io.inputs[i].rank && !found; ++j)
          if (io.inputs[i].dims[j].kind == DimKind::kSymbol && io.inputs[i].dims[j].value == d.value) {
            rules.push_back({i, j, 0});
            found = true;
          }
      if (!found) fail(std::string(op_name(p)) + ": output symbol " + d.name + " is bound by no input");
    }
  }
  return rules;
}

template <typename P>
std::vector<Dims> output_shapes(const P& p, const std::vector<Dims>& inputs, bool with_extra) {
  check_input_dims(p, inputs);
  const OpIO& io = op_io<P>();
  std::vector<Dims> out;
  for (int o = 0; o < io.nb_outputs + (with_extra ? io.nb_extra_outputs : 0); ++o) {
    Dims d;
    for (const DimRule& r : output_dim_rules(p, o)) d.push_back(r.input < 0 ? r.value : inputs[r.input][r.dim]);
    out.push_back(d);
  }
  return out;
}

namespace {
// Value of symbol `name` (must be known).
template <typename P>
int symbol(const P& p, const std::vector<int64_t>& sym, const char* name) {
  const OpIO& io = op_io<P>();
  for (int s = 0; s < io.nb_symbols; ++s)
    if (strcmp(io.symbols[s].name, name) == 0) return to_int(sym[(size_t)s], op_name(p), name);
  fail(std::string(op_name(p)) + ": the contract has no size " + name);
}
}  // namespace

template <typename P>
P with_runtime_sizes(P p, const std::vector<Dims>& in) {
  const std::vector<int64_t> s = check_input_dims(p, in);
  require_known(op_name(p), op_io<P>(), in);
  OpTraits<P>::set_sizes(p, [&](const char* name) { return symbol(p, s, name); });
  const std::string e = validate_sizes(p);
  if (!e.empty()) fail(e);
  return p;
}

template <typename P>
size_t workspace_bytes(const P& p, const std::vector<Dims>& inputs, size_t (*launcher_workspace)(const P&)) {
  const P sized = with_runtime_sizes(p, inputs);
  const size_t n = launcher_workspace ? launcher_workspace(sized) : 0;
  return n == 0 ? 0 : align_up(n) + 256;
}

// =============================================================== reporting
std::string fields_json() {
  std::ostringstream os;
  os << "{\"serial_format_version\": " << kSerialFormatVersion << ", \"plugin_version\": " << json_str(kPluginVersion)
     << ", \"plugin_namespace\": " << json_str(kPluginNamespace) << ", \"ops\": {";
  const char* sep = "";
  for_each_op([&](auto tag) { os << std::exchange(sep, ", ") << op_json<decltype(tag)>(); });
  os << "}}";
  return os.str();
}

namespace {
const char* role_name(Role r) {
  switch (r) {
    case Role::kF32: return "f32";
    case Role::kData: return "data";
    case Role::kI32: return "i32";
  }
  return "?";
}

std::string tensors_json(const TensorSpec* t, int n) {
  std::ostringstream os;
  os << "[";
  for (int i = 0; i < n; ++i) {
    os << (i ? ", " : "") << "{\"name\": " << json_str(t[i].name) << ", \"role\": \"" << role_name(t[i].role)
       << "\", \"dims\": [";
    for (int k = 0; k < t[i].rank; ++k) {
      const DimSpec& d = t[i].dims[k];
      os << (k ? ", " : "");
      if (d.kind == DimKind::kConst) os << d.value;
      else os << json_str(d.name);
    }
    os << "]}";
  }
  os << "]";
  return os.str();
}

template <typename P>
std::string op_contract_json() {
  const OpIO& io = op_io<P>();
  int n = 0;
  const AttrDesc* t = table<P>(&n);
  std::ostringstream os;
  os << json_str(op_of<P>()) << ": {\"attrs\": [";
  for (int i = 0; i < n; ++i) {
    os << (i ? ", " : "") << "{\"name\": " << json_str(t[i].name) << ", \"type\": \"" << type_name(t[i].type)
       << "\", \"length\": " << t[i].length << ", \"default\": [";
    for (int j = 0; j < t[i].length; ++j) os << (j ? ", " : "") << num(t[i].default_value[j]);
    os << "], \"min\": " << (t[i].has_range ? num(t[i].min) : "null")
       << ", \"max\": " << (t[i].has_range ? num(t[i].max) : "null") << ", \"doc\": " << json_str(t[i].doc) << "}";
  }
  os << "], \"inputs\": " << tensors_json(io.inputs, io.nb_inputs)
     << ", \"outputs\": " << tensors_json(io.outputs, io.nb_outputs)
     << ", \"extra_outputs\": " << tensors_json(io.outputs + io.nb_outputs, io.nb_extra_outputs) << ", \"symbols\": [";
  for (int s = 0; s < io.nb_symbols; ++s)
    os << (s ? ", " : "") << "{\"name\": " << json_str(io.symbols[s].name) << ", \"min\": " << io.symbols[s].min << "}";
  os << "]}";
  return os.str();
}
}  // namespace

std::string contract_json() {
  std::ostringstream os;
  os << "{\"domain\": " << json_str(kDomain) << ", \"op_version\": " << kOpVersion
     << ", \"plugin_version\": " << json_str(kPluginVersion) << ", \"plugin_namespace\": " << json_str(kPluginNamespace)
     << ", \"ops\": {";
  const char* sep = "";
  for_each_op([&](auto tag) { os << std::exchange(sep, ", ") << op_contract_json<decltype(tag)>(); });
  os << "}}";
  return os.str();
}

// ====================================================== instantiations
#define MRCNN_HOST_INSTANTIATE(P)                                                                        \
  template P parse_fields<P>(const std::vector<FieldValue>&, bool);                                      \
  template std::vector<FieldValue> to_fields<P>(const P&, bool);                                         \
  template size_t serialized_size<P>(const P&);                                                          \
  template void serialize<P>(const P&, void*, size_t);                                                   \
  template std::vector<uint8_t> serialize<P>(const P&);                                                  \
  template P deserialize<P>(const void*, size_t);                                                        \
  template bool supports_combination<P>(int, const TType*, const bool*, int, int);                       \
  template TType output_type<P>(int, const TType*, int);                                                 \
  template DType data_dtype<P>(const TType*, int);                                                       \
  template std::vector<int64_t> check_input_dims<P>(const P&, const std::vector<Dims>&);                \
  template std::vector<DimRule> output_dim_rules<P>(const P&, int);                                      \
  template std::vector<Dims> output_shapes<P>(const P&, const std::vector<Dims>&, bool);                 \
  template P with_runtime_sizes<P>(P, const std::vector<Dims>&);                                         \
  template size_t workspace_bytes<P>(const P&, const std::vector<Dims>&, size_t (*)(const P&));
#define MRCNN_HOST_INSTANTIATE_OP(Op, torch_name) MRCNN_HOST_INSTANTIATE(Op##Params)
MRCNN_CONTRACT_OPS(MRCNN_HOST_INSTANTIATE_OP)
#undef MRCNN_HOST_INSTANTIATE_OP
#undef MRCNN_HOST_INSTANTIATE

}  // namespace host
}  // namespace mrcnn
