// ONNX Runtime custom-op library (libmrcnn_ort_ops.so): runs the nodes of
// every op of the contract (mrcnn::<Op>, plugins/opdefs.py) on the CPU
// execution provider with the C++ kernels (each op's OpTraits).
//
// Built against the ORT C/C++ API headers only (tools/fetch_ort_headers.sh);
// it does not link libonnxruntime: ORT hands its API table to
// RegisterCustomOps when Python calls SessionOptions.register_custom_ops_library.
//
// Each op is registered twice under the same name: a float32 and a float16
// kernel for its data tensors (features / scores / deltas / probs);
// geometry tensors (boxes, anchors, rois, window) are float32 in both.
// Attributes are validated when the session creates the kernel (an invalid
// value fails session creation with the op, attribute and range). Tensor
// types, attribute parsing and shape checks come from the op contract through
// the host layer (plugins/host/plugin_host.h), as for the TensorRT plugins.
#define ORT_API_MANUAL_INIT
#include <onnxruntime_cxx_api.h>
#undef ORT_API_MANUAL_INIT

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "../common/all_ops.h"
#include "../common/op_params.h"
#include "../host/plugin_host.h"

namespace mrcnn {
namespace ort {
namespace {

constexpr ONNXTensorElementDataType kF32 = ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
constexpr ONNXTensorElementDataType kF16 = ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16;
constexpr ONNXTensorElementDataType kI32 = ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32;

struct Error {
  OrtErrorCode code;
  std::string msg;
};

// ------------------------------------------------------------ attributes
// Reads every attribute of the op's contract table from the node into a field
// list (an attribute of the wrong ONNX type is an Error; a missing one keeps
// its default) and leaves names, counts, ranges and defaults to the host
// layer's parse_fields, like the pybind11 module and the TensorRT plugins.
template <typename P>
P read_attrs(const OrtApi& api, const OrtKernelInfo* info) {
  P p;
  int n = 0;
  const AttrDesc* t = attr_table(p, &n);
  const std::string op = op_name(p);
  auto ok = [&](OrtStatus* st) {
    const bool good = st == nullptr;
    if (st) api.ReleaseStatus(st);
    return good;
  };
  std::vector<host::FieldValue> fields;
  for (int i = 0; i < n; ++i) {
    const char* name = t[i].name;
    host::FieldValue f;
    f.name = name;
    bool present = false, wrong_type = false;
    int64_t iv = 0;
    float fv = 0.f;
    if (t[i].type == AttrType::kInt) {
      present = ok(api.KernelInfoGetAttribute_int64(info, name, &iv));
      if (present) f.kind = host::FieldKind::kInt, f.values = {(double)iv};
      else wrong_type = ok(api.KernelInfoGetAttribute_float(info, name, &fv));
    } else if (t[i].type == AttrType::kFloat) {
      present = ok(api.KernelInfoGetAttribute_float(info, name, &fv));
      if (present) f.values = {(double)fv};
      else wrong_type = ok(api.KernelInfoGetAttribute_int64(info, name, &iv));
    } else {  // floats: the first call with a null buffer returns the length
      size_t len = 0;
      present = ok(api.KernelInfoGetAttributeArray_float(info, name, nullptr, &len));
      if (present) {
        std::vector<float> buf(len);
        if (len > 0 && !ok(api.KernelInfoGetAttributeArray_float(info, name, buf.data(), &len)))
          throw Error{ORT_INVALID_ARGUMENT, op + "." + name + ": cannot read the attribute"};
        f.values.assign(buf.begin(), buf.end());
      } else {
        wrong_type = ok(api.KernelInfoGetAttribute_float(info, name, &fv)) ||
                     ok(api.KernelInfoGetAttribute_int64(info, name, &iv));
      }
    }
    if (wrong_type) {
      static const char* types[] = {"an int", "a float", "a list of floats"};
      throw Error{ORT_INVALID_ARGUMENT, op + "." + name + " must be " + types[(int)t[i].type]};
    }
    if (present) fields.push_back(std::move(f));
  }
  try {
    return host::parse_fields<P>(fields);
  } catch (const host::HostError& e) {
    throw Error{ORT_INVALID_ARGUMENT, e.what()};
  }
}

// ----------------------------------------------------------- tensor help
// The shapes of the node's inputs, checked against the contract by the host
// layer (plugins/host): `p` gets its runtime sizes; returns the output shapes.
template <typename P>
std::vector<host::Dims> check_inputs(Ort::KernelContext& ctx, P& p) {
  const host::OpIO& io = host::op_io<P>();
  std::vector<host::Dims> dims;
  for (int i = 0; i < io.nb_inputs; ++i)
    dims.push_back(ctx.GetInput(i).GetTensorTypeAndShapeInfo().GetShape());
  try {
    p = host::with_runtime_sizes(p, dims);
    return host::output_shapes(p, dims);
  } catch (const host::HostError& e) {
    throw Error{ORT_INVALID_ARGUMENT, e.what()};
  }
}

const void* in_data(Ort::KernelContext& ctx, size_t i) { return ctx.GetInput(i).GetTensorRawData(); }

// CpuParallel on ORT's intra-op thread pool.
struct OrtParallel {
  Ort::KernelContext* ctx;
  CpuParallel par;
  struct Call {
    void (*fn)(void*, int64_t);
    void* arg;
  };
  explicit OrtParallel(Ort::KernelContext* c) : ctx(c) {
    par.ctx = this;
    par.run = [](void* self, int64_t n, void (*fn)(void*, int64_t), void* arg) {
      Call call{fn, arg};
      static_cast<OrtParallel*>(self)->ctx->ParallelFor(
          [](void* u, size_t i) {
            const Call* c = static_cast<const Call*>(u);
            c->fn(c->arg, (int64_t)i);
          },
          (size_t)n, 0, &call);
    };
  }
};

OrtStatusPtr to_status(const OrtApi& api, OrtErrorCode code, const std::string& msg) {
  return api.CreateStatus(code, msg.c_str());
}

template <typename Fn>
OrtStatusPtr guarded(const OrtApi& api, Fn&& fn) {
  try {
    fn();
    return nullptr;
  } catch (const Error& e) {
    return to_status(api, e.code, e.msg);
  } catch (const Ort::Exception& e) {
    return to_status(api, e.GetOrtErrorCode(), e.what());
  } catch (const std::exception& e) {
    return to_status(api, ORT_FAIL, e.what());
  }
}

// ------------------------------------------------------------- kernels
// The op's CPU call (OpTraits, in the op's folder) on inputs already checked
// against the contract (``p``: the attributes completed by check_inputs,
// ``out``: the output dims); kernel-only outputs are not computed (nullptr).
template <typename P>
void run(Ort::KernelContext& ctx, const P& p, DType dtype, const std::vector<host::Dims>& out, OrtParallel& par) {
  const host::OpIO& io = host::op_io<P>();
  std::vector<const void*> ins((size_t)io.nb_inputs);
  for (int i = 0; i < io.nb_inputs; ++i) ins[(size_t)i] = in_data(ctx, (size_t)i);
  std::vector<void*> outs((size_t)(io.nb_outputs + io.nb_extra_outputs), nullptr);
  for (int o = 0; o < io.nb_outputs; ++o) outs[(size_t)o] = ctx.GetOutput((size_t)o, out[(size_t)o]).GetTensorMutableRawData();
  OpTraits<P>::cpu(p, dtype, ins.data(), outs.data(), nullptr, &par.par);
}

// One ORT kernel per op and data type: attributes read once at session creation.
template <typename Params>
struct Kernel {
  Params attrs;
  DType dtype;
  const OrtApi* api;
  OrtStatusPtr ComputeV2(OrtKernelContext* context) {
    return guarded(*api, [&] {
      Ort::KernelContext ctx(context);
      Params p = attrs;
      const std::vector<host::Dims> out = check_inputs(ctx, p);
      OrtParallel par(&ctx);
      run(ctx, p, dtype, out, par);
    });
  }
};

// ------------------------------------------------------------ op classes
// Input/output element types from the contract's roles (host::op_io): float32
// geometry, int32 counts, and the kernel's data type T for the data tensors.
template <typename Params, typename Kernel>
struct OpBase : Ort::CustomOpBase<OpBase<Params, Kernel>, Kernel, /*WithStatus=*/true> {
  DType dtype;
  std::vector<ONNXTensorElementDataType> in_types, out_types;

  static ONNXTensorElementDataType type_of(host::Role r, DType dt) {
    switch (r) {
      case host::Role::kF32: return kF32;
      case host::Role::kI32: return kI32;
      case host::Role::kData: return dt == DType::kFloat16 ? kF16 : kF32;
    }
    return kF32;
  }

  explicit OpBase(DType dt) : dtype(dt) {
    const host::OpIO& io = host::op_io<Params>();
    for (int i = 0; i < io.nb_inputs; ++i) in_types.push_back(type_of(io.inputs[i].role, dt));
    for (int i = 0; i < io.nb_outputs; ++i) out_types.push_back(type_of(io.outputs[i].role, dt));
  }

  OrtStatusPtr CreateKernelV2(const OrtApi& api, const OrtKernelInfo* info, void** kernel) const {
    return guarded(api, [&] { *kernel = new Kernel{read_attrs<Params>(api, info), dtype, &api}; });
  }
  const char* GetName() const { return op_name(Params{}); }
  size_t GetInputTypeCount() const { return in_types.size(); }
  ONNXTensorElementDataType GetInputType(size_t i) const { return in_types[i]; }
  size_t GetOutputTypeCount() const { return out_types.size(); }
  ONNXTensorElementDataType GetOutputType(size_t i) const { return out_types[i]; }
};

// The ops are created once; each registration adds a new domain object
// holding them (ORT requires both to outlive every session using them).
struct Registry {
  std::vector<std::shared_ptr<void>> owned;  // typed deleters
  std::vector<OrtCustomOp*> ops;
  std::vector<Ort::CustomOpDomain> domains;

  template <typename Op>
  void own(std::shared_ptr<Op> op) {
    ops.push_back(op.get());
    owned.push_back(std::move(op));
  }
  Registry() {
    for (DType dt : {DType::kFloat32, DType::kFloat16})
      for_each_op([&](auto tag) {
        using P = decltype(tag);
        own(std::make_shared<OpBase<P, Kernel<P>>>(dt));
      });
  }
};

Registry& registry() {
  static Registry r;
  return r;
}

}  // namespace
}  // namespace ort
}  // namespace mrcnn

// The op contract as compiled into this library (host layer JSON), for
// tests/test_op_contract.py.
extern "C" __attribute__((visibility("default"))) const char* mrcnn_ort_contract_json() {
  static const std::string json = mrcnn::host::contract_json();
  return json.c_str();
}

extern "C" __attribute__((visibility("default"))) OrtStatus* ORT_API_CALL
RegisterCustomOps(OrtSessionOptions* options, const OrtApiBase* api_base) {
  using namespace mrcnn::ort;
  const OrtApi* api = api_base->GetApi(ORT_API_VERSION);
  if (api == nullptr) return nullptr;  // cannot even report: ORT is older than the headers
  Ort::InitApi(api);
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  return guarded(*api, [&] {
    Registry& r = registry();
    Ort::CustomOpDomain domain(mrcnn::kDomain);
    for (OrtCustomOp* op : r.ops) domain.Add(op);
    Ort::UnownedSessionOptions(options).Add(domain);
    r.domains.push_back(std::move(domain));
  });
}
