// Implementation of mrcnn_capi.h: the host layer (attributes, shapes) in front
// of the CUDA launchers. Host code only (compiled by the C++ compiler; the
// kernels come from plugins/<op>/<op>_cuda.cu). Built by CMake as
// libmrcnn_cuda_ops.so (target mrcnn_cuda_ops, MRCNN_WITH_CUDA=ON).
#include "mrcnn_capi.h"

#include <cuda_runtime_api.h>
#include <stdio.h>
#include <string.h>

#include <exception>
#include <sstream>
#include <string>
#include <vector>

#include "../common/all_ops.h"
#include "../common/op_params.h"
#include "../host/plugin_host.h"
#ifdef MRCNN_CAPI_CHECKS
#include "capi_checks.h"
#endif

#ifndef MRCNN_CAPI_CUDA_ARCHS
#define MRCNN_CAPI_CUDA_ARCHS ""
#endif

namespace {

using mrcnn::host::Dims;
using mrcnn::host::HostError;

thread_local std::string g_error;

struct CapiError {
  int code;
  std::string msg;
};

[[noreturn]] void fail(const std::string& msg, int code = -1) { throw CapiError{code, msg}; }

template <typename Fn>
int guarded(Fn&& fn) {
  g_error.clear();
  try {
    fn();
    return 0;
  } catch (const CapiError& e) {
    g_error = e.msg;
    return e.code;
#ifdef MRCNN_CAPI_CHECKS
  } catch (const mrcnn::capi_checks::CheckError& e) {
    g_error = e.msg;
    return mrcnn::capi_checks::kCheckFailed;
#endif
  } catch (const HostError& e) {
    g_error = e.what();
    return -1;
  } catch (const std::exception& e) {
    g_error = e.what();
    return -1;
  }
}

void cuda_check(cudaError_t e, const char* op, const char* what) {
  if (e != cudaSuccess)
    fail(std::string(op) + ": " + what + ": " + cudaGetErrorName(e) + ": " + cudaGetErrorString(e), (int)e);
}

// Attribute values in contract order -> validated params (host::parse_fields).
template <typename P>
P params_from(const double* values, int n_values) {
  int n = 0;
  const mrcnn::AttrDesc* t = mrcnn::attr_table(P{}, &n);
  int total = 0;
  for (int i = 0; i < n; ++i) total += t[i].length;
  if (n_values != total || (total > 0 && values == nullptr))
    fail(std::string(mrcnn::op_name(P{})) + ": expected " + std::to_string(total) + " attribute values, got " +
         std::to_string(n_values));
  std::vector<mrcnn::host::FieldValue> fields;
  for (int i = 0, k = 0; i < n; k += t[i].length, ++i) {
    mrcnn::host::FieldValue f;
    f.name = t[i].name;
    f.kind = t[i].type == mrcnn::AttrType::kInt ? mrcnn::host::FieldKind::kInt : mrcnn::host::FieldKind::kFloat;
    f.values.assign(values + k, values + k + t[i].length);
    fields.push_back(f);
  }
  return mrcnn::host::parse_fields<P>(fields);
}

std::vector<Dims> dims_from(int n_inputs, const int* ranks, const int64_t* dims) {
  if (n_inputs < 0 || (n_inputs > 0 && (ranks == nullptr || dims == nullptr))) fail("null input shapes");
  std::vector<Dims> out;
  for (int i = 0, k = 0; i < n_inputs; ++i) {
    if (ranks[i] < 0 || ranks[i] > mrcnn::host::kMaxRank) fail("input " + std::to_string(i) + ": bad rank");
    out.emplace_back(dims + k, dims + k + ranks[i]);
    k += ranks[i];
  }
  return out;
}

#ifdef MRCNN_CAPI_CHECKS
constexpr bool kChecks = true;
#else
constexpr bool kChecks = false;
#endif

int64_t numel(const Dims& d) {
  int64_t n = 1;
  for (int64_t v : d) n *= v;
  return n;
}

// Calls fn(P{}) for the params type of `op`.
template <typename Fn>
void dispatch(const char* op, Fn&& fn) {
  if (op == nullptr) fail("null op name");
  if (!mrcnn::with_op(op, fn)) fail(std::string("unknown op '") + op + "' (" + mrcnn::op_names() + ")");
}

// The op's CUDA launcher and its workspace size (OpTraits, in the op's folder).
template <typename P>
size_t launcher_workspace(const P& p) {
  return mrcnn::OpTraits<P>::cuda_workspace(p);
}
template <typename P>
cudaError_t launch(const P& p, mrcnn::DType dt, const void* const* in, void* const* out, void* ws, cudaStream_t s) {
  return mrcnn::OpTraits<P>::cuda(p, dt, in, out, ws, s);
}

}  // namespace

extern "C" {

int mrcnn_capi_version(void) { return MRCNN_CAPI_VERSION; }

const char* mrcnn_capi_last_error(void) { return g_error.c_str(); }

const char* mrcnn_capi_info(void) {
  static const std::string info = [] {
    std::ostringstream os;
    os << "{\"capi_version\": " << MRCNN_CAPI_VERSION << ", \"cuda_runtime_version\": " << CUDART_VERSION
       << ", \"archs\": \"" << MRCNN_CAPI_CUDA_ARCHS << "\", \"debug_checks\": " << (kChecks ? "true" : "false")
       << ", \"contract\": " << mrcnn::host::contract_json() << "}";
    return os.str();
  }();
  return info.c_str();
}

int mrcnn_output_shapes(const char* op, const double* attrs, int n_attr_values, int n_inputs, const int* ranks,
                        const int64_t* dims, int max_outputs, int* n_outputs, int* out_ranks, int64_t* out_dims) {
  return guarded([&] {
    dispatch(op, [&](auto tag) {
      using P = decltype(tag);
      const P p = params_from<P>(attrs, n_attr_values);
      const std::vector<Dims> shapes = mrcnn::host::output_shapes(p, dims_from(n_inputs, ranks, dims), true);
      if ((int)shapes.size() > max_outputs || n_outputs == nullptr || out_ranks == nullptr || out_dims == nullptr)
        fail(std::string(op) + ": room for " + std::to_string(max_outputs) + " outputs, " +
             std::to_string(shapes.size()) + " needed");
      *n_outputs = (int)shapes.size();
      int k = 0;
      for (size_t o = 0; o < shapes.size(); ++o) {
        out_ranks[o] = (int)shapes[o].size();
        for (int64_t d : shapes[o]) out_dims[k++] = d;
      }
    });
  });
}

int mrcnn_cuda_workspace_size(const char* op, const double* attrs, int n_attr_values, int n_inputs, const int* ranks,
                              const int64_t* dims, size_t* bytes) {
  return guarded([&] {
    dispatch(op, [&](auto tag) {
      using P = decltype(tag);
      const P p = params_from<P>(attrs, n_attr_values);
      if (bytes == nullptr) fail("null result pointer");
      *bytes = mrcnn::host::workspace_bytes<P>(p, dims_from(n_inputs, ranks, dims), launcher_workspace<P>);
    });
  });
}

int mrcnn_cuda_run(const char* op, const double* attrs, int n_attr_values, int n_inputs, const int* ranks,
                   const int64_t* dims, int dtype, const void* const* inputs, int n_outputs, void* const* outputs,
                   void* workspace, size_t workspace_bytes, int device, void* stream) {
  return guarded([&] {
    dispatch(op, [&](auto tag) {
      using P = decltype(tag);
      const mrcnn::host::OpIO& io = mrcnn::host::op_io<P>();
      const std::vector<Dims> shapes = dims_from(n_inputs, ranks, dims);
      const P p = mrcnn::host::with_runtime_sizes(params_from<P>(attrs, n_attr_values), shapes);
      if (dtype != 0 && dtype != 1) fail(std::string(op) + ": dtype must be 0 (float32) or 1 (float16)");
      if (n_outputs < io.nb_outputs || n_outputs > io.nb_outputs + io.nb_extra_outputs)
        fail(std::string(op) + ": expected " + std::to_string(io.nb_outputs) + " to " +
             std::to_string(io.nb_outputs + io.nb_extra_outputs) + " outputs, got " + std::to_string(n_outputs));
      if (inputs == nullptr || outputs == nullptr) fail(std::string(op) + ": null tensor list");
      // Null pointers only for empty tensors (PyTorch gives those no storage).
      for (int i = 0; i < n_inputs; ++i)
        if (inputs[i] == nullptr && numel(shapes[i]) > 0)
          fail(std::string(op) + ": input " + io.inputs[i].name + " is null");
      const std::vector<Dims> out_shapes = mrcnn::host::output_shapes(p, shapes, true);
      void* outs[mrcnn::host::kMaxOutputs] = {};
      for (int o = 0; o < n_outputs; ++o) {
        outs[o] = outputs[o];
        if (o < io.nb_outputs && outs[o] == nullptr && numel(out_shapes[o]) > 0)
          fail(std::string(op) + ": output " + io.outputs[o].name + " is null");
      }
      const size_t need = mrcnn::host::workspace_bytes<P>(p, shapes, launcher_workspace<P>);
      if (workspace_bytes < need || (need > 0 && workspace == nullptr))
        fail(std::string(op) + ": workspace of " + std::to_string(workspace_bytes) + " bytes, " +
             std::to_string(need) + " needed");
      if (device >= 0) cuda_check(cudaSetDevice(device), op, "cudaSetDevice");
      const mrcnn::DType dt = dtype == 1 ? mrcnn::DType::kFloat16 : mrcnn::DType::kFloat32;
      const cudaStream_t s = static_cast<cudaStream_t>(stream);
#ifdef MRCNN_CAPI_CHECKS
      // Debug build: alignment, overlaps, guard bands, unchanged inputs (capi_checks.h).
      const size_t data_size = dtype == 1 ? 2 : 4;
      auto elem = [&](const mrcnn::host::TensorSpec& t) {
        return t.role == mrcnn::host::Role::kData ? data_size : (size_t)4;
      };
      mrcnn::capi_checks::Launch chk(op);
      for (int i = 0; i < n_inputs; ++i)
        chk.input(io.inputs[i].name, inputs[i], (size_t)numel(shapes[i]) * elem(io.inputs[i]), elem(io.inputs[i]));
      for (int o = 0; o < n_outputs; ++o)
        if (outs[o] != nullptr)
          chk.output(io.outputs[o].name, outs[o], (size_t)numel(out_shapes[o]) * elem(io.outputs[o]),
                     elem(io.outputs[o]));
      if (workspace != nullptr && need > 0) chk.workspace(workspace, workspace_bytes);
      chk.before();
      void* staged_outs[mrcnn::host::kMaxOutputs];
      for (int o = 0; o < mrcnn::host::kMaxOutputs; ++o) staged_outs[o] = outs[o] != nullptr ? chk.staged(outs[o]) : nullptr;
      cuda_check(launch(p, dt, inputs, staged_outs, chk.staged(workspace), s), op, "CUDA launch");
      chk.after(s);
#else
      cuda_check(launch(p, dt, inputs, outs, workspace, s), op, "CUDA launch");
#endif
    });
  });
}

}  // extern "C"
