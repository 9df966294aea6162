// Translations between TensorRT types and the TensorRT-free host logic
// (plugins/host/plugin_host.h), logging, and the per-op launch traits shared
// by the IPluginV2DynamicExt and IPluginV3 adapters. Header-only; included by
// plugins/trt/mrcnn_trt_plugins.cpp only.
#pragma once

#include <NvInfer.h>
#include <NvInferVersion.h>
#include <cuda_runtime_api.h>
#include <stdio.h>
#include <string.h>

#include <mutex>
#include <string>
#include <vector>

#include "../common/all_ops.h"
#include "../host/plugin_host.h"

#if NV_TENSORRT_MAJOR < 8 || (NV_TENSORRT_MAJOR == 8 && NV_TENSORRT_MINOR < 5)
#error "mrcnn TensorRT plugins need TensorRT >= 8.5"
#endif

#define MRCNN_TRT_HAS_LOGGER_FINDER (NV_TENSORRT_MAJOR > 8 || (NV_TENSORRT_MAJOR == 8 && NV_TENSORRT_MINOR >= 6))
#define MRCNN_TRT_HAS_V3 (NV_TENSORRT_MAJOR >= 10)

namespace mrcnn {
namespace trt {

// ------------------------------------------------------------------ logging
#if MRCNN_TRT_HAS_LOGGER_FINDER
// Set by setLoggerFinder() when TensorRT loads the library with
// IPluginRegistry::loadLibrary (version-compatible engines).
inline nvinfer1::ILoggerFinder*& logger_finder() {
  static nvinfer1::ILoggerFinder* finder = nullptr;
  return finder;
}
#endif

// Error capture for tools that report errors themselves (mrcnn-build-engine
// puts the plugin's own message into its one-line error): while capture is
// on, messages that would go to stderr are kept instead, newline-separated,
// until read and cleared (C exports in mrcnn_trt_plugins.cpp).
struct ErrorLog {
  std::mutex mutex;
  bool capture = false;
  std::string text;
};
inline ErrorLog& error_log() {
  static ErrorLog log;
  return log;
}

// One line to TensorRT's logger when known, else captured or to stderr.
inline void log_error(const std::string& msg) noexcept {
  try {
    const std::string line = "[mrcnn_trt_plugins] " + msg;
#if MRCNN_TRT_HAS_LOGGER_FINDER
    if (logger_finder() != nullptr) {
      if (nvinfer1::ILogger* l = logger_finder()->findLogger()) {
        l->log(nvinfer1::ILogger::Severity::kERROR, line.c_str());
        return;
      }
    }
#endif
    ErrorLog& log = error_log();
    std::lock_guard<std::mutex> lock(log.mutex);
    if (log.capture) {
      if (log.text.size() < (1u << 16)) log.text += msg + "\n";
      return;
    }
    fprintf(stderr, "%s\n", line.c_str());
  } catch (...) {
  }
}

// Runs f(); on any exception logs "<op> <where>: <what>" and returns false.
template <typename F>
inline bool guarded(const char* op, const char* where, F&& f) noexcept {
  try {
    f();
    return true;
  } catch (const std::exception& e) {
    log_error(std::string(op) + " " + where + ": " + e.what());
  } catch (...) {
    log_error(std::string(op) + " " + where + ": unknown exception");
  }
  return false;
}

// -------------------------------------------------------------------- types
inline host::TType to_ttype(nvinfer1::DataType t) {
  switch (t) {
    case nvinfer1::DataType::kFLOAT: return host::TType::kFloat32;
    case nvinfer1::DataType::kHALF: return host::TType::kFloat16;
    case nvinfer1::DataType::kINT32: return host::TType::kInt32;
    default: return host::TType::kOther;
  }
}

inline nvinfer1::DataType from_ttype(host::TType t) {
  switch (t) {
    case host::TType::kFloat16: return nvinfer1::DataType::kHALF;
    case host::TType::kInt32: return nvinfer1::DataType::kINT32;
    default: return nvinfer1::DataType::kFLOAT;
  }
}

inline host::Dims to_dims(const nvinfer1::Dims& d) {
  host::Dims out;
  for (int i = 0; i < d.nbDims && i < nvinfer1::Dims::MAX_DIMS; ++i) out.push_back((int64_t)d.d[i]);
  return out;
}

// Input dims from expressions: constants where known, -1 elsewhere.
inline host::Dims to_dims(const nvinfer1::DimsExprs& d) {
  host::Dims out;
  for (int i = 0; i < d.nbDims && i < nvinfer1::Dims::MAX_DIMS; ++i)
    out.push_back(d.d[i] != nullptr && d.d[i]->isConstant() ? (int64_t)d.d[i]->getConstantValue() : -1);
  return out;
}

// Output dims from the host rules: copies of input expressions or constants.
inline nvinfer1::DimsExprs build_dims(const std::vector<host::DimRule>& rules, const nvinfer1::DimsExprs* inputs,
                                      int nb_inputs, nvinfer1::IExprBuilder& eb) {
  nvinfer1::DimsExprs out{};
  out.nbDims = (int32_t)rules.size();
  for (size_t k = 0; k < rules.size(); ++k) {
    const host::DimRule& r = rules[k];
    if (r.input < 0) {
      out.d[k] = eb.constant(r.value);
    } else {
      if (r.input >= nb_inputs || r.dim >= inputs[r.input].nbDims) throw host::HostError("bad output dimension rule");
      out.d[k] = inputs[r.input].d[r.dim];
    }
  }
  return out;
}

// ------------------------------------------------------------------- fields
inline float half_bits_to_float(uint16_t h) {
  const uint32_t sign = (uint32_t)(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
  if (exp == 0) {
    if (man == 0) {
      bits = sign;
    } else {  // subnormal
      exp = 127 - 15 + 1;
      while (!(man & 0x400)) {
        man <<= 1;
        --exp;
      }
      bits = sign | (exp << 23) | ((man & 0x3ff) << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (man << 13);
  } else {
    bits = sign | ((exp - 15 + 127) << 23) | (man << 13);
  }
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

// PluginFieldCollection -> host fields (numeric types only).
inline std::vector<host::FieldValue> fields_from(const nvinfer1::PluginFieldCollection* fc, const char* op) {
  std::vector<host::FieldValue> out;
  if (fc == nullptr) return out;
  if (fc->nbFields > 0 && fc->fields == nullptr) throw host::HostError(std::string(op) + ": null field list");
  for (int32_t i = 0; i < fc->nbFields; ++i) {
    const nvinfer1::PluginField& f = fc->fields[i];
    if (f.name == nullptr) throw host::HostError(std::string(op) + ": field without a name");
    host::FieldValue v;
    v.name = f.name;
    if (f.length < 0 || (f.length > 0 && f.data == nullptr))
      throw host::HostError(std::string(op) + ": field " + f.name + " has no data");
    for (int32_t j = 0; j < f.length; ++j) {
      double x;
      switch (f.type) {
        case nvinfer1::PluginFieldType::kINT8: x = ((const int8_t*)f.data)[j], v.kind = host::FieldKind::kInt; break;
        case nvinfer1::PluginFieldType::kINT16: x = ((const int16_t*)f.data)[j], v.kind = host::FieldKind::kInt; break;
        case nvinfer1::PluginFieldType::kINT32: x = ((const int32_t*)f.data)[j], v.kind = host::FieldKind::kInt; break;
#if NV_TENSORRT_MAJOR >= 10
        case nvinfer1::PluginFieldType::kINT64:
          x = (double)((const int64_t*)f.data)[j], v.kind = host::FieldKind::kInt;
          break;
#endif
        case nvinfer1::PluginFieldType::kFLOAT16:
          x = half_bits_to_float(((const uint16_t*)f.data)[j]), v.kind = host::FieldKind::kFloat;
          break;
        case nvinfer1::PluginFieldType::kFLOAT32: x = ((const float*)f.data)[j], v.kind = host::FieldKind::kFloat; break;
        case nvinfer1::PluginFieldType::kFLOAT64: x = ((const double*)f.data)[j], v.kind = host::FieldKind::kFloat; break;
        default:
          throw host::HostError(std::string(op) + ": field " + f.name + " has an unsupported type (" +
                                std::to_string((int)f.type) + "); expected int32 or float32 values");
      }
      v.values.push_back(x);
    }
    out.push_back(v);
  }
  return out;
}

// Storage behind a PluginFieldCollection (names + int32/float32 data).
class FieldStore {
 public:
  void set(const std::vector<host::FieldValue>& fields) {
    names_.clear();
    ints_.clear();
    floats_.clear();
    fields_.clear();
    names_.reserve(fields.size());
    ints_.reserve(fields.size());
    floats_.reserve(fields.size());
    for (const auto& f : fields) {
      names_.push_back(f.name);
      ints_.emplace_back();
      floats_.emplace_back();
      for (double x : f.values) {
        ints_.back().push_back((int32_t)x);
        floats_.back().push_back((float)x);
      }
    }
    for (size_t i = 0; i < fields.size(); ++i) {
      const bool is_int = fields[i].kind == host::FieldKind::kInt;
      fields_.emplace_back(names_[i].c_str(),
                           is_int ? (const void*)ints_[i].data() : (const void*)floats_[i].data(),
                           is_int ? nvinfer1::PluginFieldType::kINT32 : nvinfer1::PluginFieldType::kFLOAT32,
                           (int32_t)fields[i].values.size());
    }
    fc_.nbFields = (int32_t)fields_.size();
    fc_.fields = fields_.data();
  }
  const nvinfer1::PluginFieldCollection* collection() const { return &fc_; }

 private:
  std::vector<std::string> names_;
  std::vector<std::vector<int32_t>> ints_;
  std::vector<std::vector<float>> floats_;
  std::vector<nvinfer1::PluginField> fields_;
  nvinfer1::PluginFieldCollection fc_{};
};

// ---------------------------------------------------------------- op traits
inline void check_cuda(cudaError_t e, const char* op) {
  if (e != cudaSuccess)
    throw host::HostError(std::string(op) + " CUDA launch failed: " + cudaGetErrorName(e) + ": " + cudaGetErrorString(e));
}

// An op's name and CUDA launcher (its OpTraits, in the op's folder). TensorRT
// passes the node outputs only: the kernel-only outputs are nullptr.
template <typename P>
struct Op {
  static constexpr const char* kName = kOpName<P>;
  static size_t workspace(const P& p) { return OpTraits<P>::cuda_workspace(p); }
  static void launch(const P& p, DType dtype, const void* const* in, void* const* out, void* ws, cudaStream_t stream) {
    const host::OpIO& io = host::op_io<P>();
    void* outs[host::kMaxOutputs] = {};
    for (int o = 0; o < io.nb_outputs; ++o) outs[o] = out[o];
    check_cuda(OpTraits<P>::cuda(p, dtype, in, outs, ws, stream), kName);
  }
};

// ------------------------------------------------------- shared plugin body
// Everything an adapter does beyond translating types, in one place.
template <typename P>
struct Body {
  P params;

  static std::vector<host::Dims> dims_of(const nvinfer1::PluginTensorDesc* d, int n) {
    std::vector<host::Dims> out;
    for (int i = 0; i < n; ++i) out.push_back(to_dims(d[i].dims));
    return out;
  }
  static std::vector<host::TType> types_of(const nvinfer1::PluginTensorDesc* d, int n) {
    std::vector<host::TType> out;
    for (int i = 0; i < n; ++i) out.push_back(to_ttype(d[i].type));
    return out;
  }

  bool supports(int pos, const nvinfer1::PluginTensorDesc* io, int nb_in, int nb_out) const {
    const int n = nb_in + nb_out;
    if (pos < 0 || pos >= n || n > 16) return false;
    host::TType types[16];
    bool linear[16];
    for (int i = 0; i <= pos; ++i) {
      types[i] = to_ttype(io[i].type);
      linear[i] = io[i].format == nvinfer1::TensorFormat::kLINEAR;
    }
    return host::supports_combination<P>(pos, types, linear, nb_in, nb_out);
  }

  nvinfer1::DataType output_type(int index, const nvinfer1::DataType* in, int nb_in) const {
    std::vector<host::TType> t;
    for (int i = 0; i < nb_in; ++i) t.push_back(to_ttype(in[i]));
    return from_ttype(host::output_type<P>(index, t.data(), nb_in));
  }

  nvinfer1::DimsExprs output_dims(int index, const nvinfer1::DimsExprs* in, int nb_in, nvinfer1::IExprBuilder& eb) const {
    std::vector<host::Dims> dims;
    for (int i = 0; i < nb_in; ++i) dims.push_back(to_dims(in[i]));
    host::check_input_dims(params, dims);
    return build_dims(host::output_dim_rules(params, index), in, nb_in, eb);
  }

  void check(const std::vector<host::Dims>& dims) const { host::check_input_dims(params, dims); }

  size_t workspace(const std::vector<host::Dims>& dims) const {
    return host::workspace_bytes<P>(params, dims, &Op<P>::workspace);
  }

  void enqueue(const nvinfer1::PluginTensorDesc* in_desc, int nb_in, const void* const* inputs, void* const* outputs,
               void* ws, cudaStream_t stream) const {
    if (in_desc == nullptr || inputs == nullptr || outputs == nullptr) throw host::HostError("null tensor list");
    const P sized = host::with_runtime_sizes(params, dims_of(in_desc, nb_in));
    const std::vector<host::TType> types = types_of(in_desc, nb_in);
    const DType dtype = host::data_dtype<P>(types.data(), nb_in);
    Op<P>::launch(sized, dtype, inputs, outputs, ws, stream);
  }
  // enqueue as both plugin interfaces return it: 0, or 1 after logging the error.
  int32_t enqueue_status(const nvinfer1::PluginTensorDesc* in_desc, const void* const* inputs, void* const* outputs,
                         void* ws, cudaStream_t stream) const noexcept {
    const bool ok = guarded(Op<P>::kName, "enqueue", [&] {
      enqueue(in_desc, host::op_io<P>().nb_inputs, inputs, outputs, ws, stream);
    });
    return ok ? 0 : 1;
  }

};

// Creator field list (names, types, lengths and default values).
template <typename P>
inline std::vector<host::FieldValue> default_fields() {
  return host::to_fields(host::parse_fields<P>({}));
}

// What the V2 and V3 creators share: the field list, filled on construction.
template <typename P>
struct CreatorFields {
  FieldStore field_names_;
  CreatorFields() {
    guarded(Op<P>::kName, "creator", [&] { field_names_.set(default_fields<P>()); });
  }
};

}  // namespace trt
}  // namespace mrcnn
