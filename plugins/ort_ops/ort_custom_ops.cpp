// ONNX Runtime custom-op library (libmrcnn_ort_ops.so): runs the nodes
// mrcnn::PyramidROIAlign, mrcnn::ProposalLayer and mrcnn::DetectionLayer
// (plugins/opdefs.py) on the CPU execution provider with the C++ kernels.
//
// Built against the ORT C/C++ API headers only (tools/fetch_ort_headers.sh);
// it does not link libonnxruntime: ORT hands its API table to
// RegisterCustomOps when Python calls SessionOptions.register_custom_ops_library.
//
// Each op is registered twice under the same name: a float32 and a float16
// kernel for its data tensors (features / scores / deltas / probs);
// geometry tensors (boxes, anchors, rois, window) are float32 in both.
// Attributes are validated when the session creates the kernel (an invalid
// value fails session creation with the op, attribute and range).
#define ORT_API_MANUAL_INIT
#include <onnxruntime_cxx_api.h>
#undef ORT_API_MANUAL_INIT

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "../common/op_params.h"
#include "../detection_layer/detection_layer.h"
#include "../proposal_layer/proposal_layer.h"
#include "../pyramid_roi_align/pyramid_roi_align.h"

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
// Reads every attribute of the params' table from the node; a missing one
// keeps the default, one of the wrong type or out of range is an Error.
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
  for (int i = 0; i < n; ++i) {
    const char* name = t[i].name;
    double v[4];
    int cnt = 0;
    bool present = false, wrong_type = false;
    int64_t iv = 0;
    float fv = 0.f;
    size_t len = 0;
    if (t[i].type == AttrType::kInt) {
      if (ok(api.KernelInfoGetAttribute_int64(info, name, &iv))) {
        present = true;
        if (iv < -(int64_t(1) << 31) || iv >= (int64_t(1) << 31)) {
          throw Error{ORT_INVALID_ARGUMENT, op + "." + name + " = " + std::to_string(iv) + " is out of range [" +
                                                detail::fmt_double(t[i].min) + ", " + detail::fmt_double(t[i].max) + "]"};
        }
        v[0] = (double)iv;
        cnt = 1;
      } else {
        wrong_type = ok(api.KernelInfoGetAttribute_float(info, name, &fv));
      }
    } else if (t[i].type == AttrType::kFloat) {
      if (ok(api.KernelInfoGetAttribute_float(info, name, &fv))) {
        present = true;
        v[0] = fv;
        cnt = 1;
      } else {
        wrong_type = ok(api.KernelInfoGetAttribute_int64(info, name, &iv));
      }
    } else {  // floats
      len = 0;
      // First call with a null buffer returns the length.
      if (ok(api.KernelInfoGetAttributeArray_float(info, name, nullptr, &len))) {
        present = true;
        if (len != (size_t)t[i].length)
          throw Error{ORT_INVALID_ARGUMENT, op + "." + name + " needs " + std::to_string(t[i].length) +
                                                " values, got " + std::to_string(len)};
        float buf[4];
        len = 4;
        if (!ok(api.KernelInfoGetAttributeArray_float(info, name, buf, &len)))
          throw Error{ORT_INVALID_ARGUMENT, op + "." + name + ": cannot read the attribute"};
        for (int j = 0; j < 4; ++j) v[j] = buf[j];
        cnt = 4;
      } else {
        wrong_type = ok(api.KernelInfoGetAttribute_float(info, name, &fv)) ||
                     ok(api.KernelInfoGetAttribute_int64(info, name, &iv));
      }
    }
    if (wrong_type) {
      static const char* types[] = {"an int", "a float", "a list of floats"};
      throw Error{ORT_INVALID_ARGUMENT, op + "." + name + " must be " + types[(int)t[i].type]};
    }
    if (present && !set_attr(p, name, v, cnt))
      throw Error{ORT_INVALID_ARGUMENT, op + "." + name + ": invalid value"};
  }
  const std::string err = validate(p);
  if (!err.empty()) throw Error{ORT_INVALID_ARGUMENT, err};
  return p;
}

// ----------------------------------------------------------- tensor help
struct In {
  const void* data;
  std::vector<int64_t> shape;
  ONNXTensorElementDataType type;
};

In input(Ort::KernelContext& ctx, size_t i) {
  Ort::ConstValue v = ctx.GetInput(i);
  auto info = v.GetTensorTypeAndShapeInfo();
  return In{v.GetTensorRawData(), info.GetShape(), info.GetElementType()};
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

// want: -1 = any size (returned through `out`)
void expect_shape(const char* op, const char* what, const std::vector<int64_t>& got,
                  const std::vector<int64_t>& want) {
  bool good = got.size() == want.size();
  for (size_t i = 0; good && i < want.size(); ++i) good = want[i] < 0 || got[i] == want[i];
  if (!good) {
    std::string w = "[";
    for (size_t i = 0; i < want.size(); ++i) w += (i ? ", " : "") + (want[i] < 0 ? std::string("?") : std::to_string(want[i]));
    throw Error{ORT_INVALID_ARGUMENT, std::string(op) + ": " + what + " must have shape " + w + "], got " + shape_str(got)};
  }
}

int to_int(const char* op, int64_t v) {
  if (v < 0 || v > 0x7fffffff) throw Error{ORT_INVALID_ARGUMENT, std::string(op) + ": dimension out of range"};
  return (int)v;
}

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
struct PyramidKernel {
  PyramidROIAlignParams attrs;
  DType dtype;
  const OrtApi* api;
  OrtStatusPtr ComputeV2(OrtKernelContext* context) {
    return guarded(*api, [&] {
      Ort::KernelContext ctx(context);
      const char* op = kPyramidROIAlign;
      PyramidROIAlignParams p = attrs;
      In boxes = input(ctx, 0);
      expect_shape(op, "boxes", boxes.shape, {-1, -1, 4});
      p.N = to_int(op, boxes.shape[0]);
      p.R = to_int(op, boxes.shape[1]);
      const void* maps[4];
      for (int l = 0; l < 4; ++l) {
        In m = input(ctx, 1 + l);
        const std::string name = "P" + std::to_string(l + 2);
        if (l == 0) {
          expect_shape(op, name.c_str(), m.shape, {p.N, -1, -1, -1});
          p.C = to_int(op, m.shape[1]);
        }
        expect_shape(op, name.c_str(), m.shape, {p.N, p.C, -1, -1});
        p.H[l] = to_int(op, m.shape[2]);
        p.W[l] = to_int(op, m.shape[3]);
        maps[l] = m.data;
      }
      const std::string err = validate_sizes(p);
      if (!err.empty()) throw Error{ORT_INVALID_ARGUMENT, err};
      Ort::UnownedValue out = ctx.GetOutput(0, std::vector<int64_t>{p.N, p.R, p.C, p.pooled_size, p.pooled_size});
      OrtParallel par(&ctx);
      pyramid_roi_align_cpu(p, dtype, static_cast<const float*>(boxes.data), maps, out.GetTensorMutableRawData(),
                            nullptr, &par.par);
    });
  }
};

struct ProposalKernel {
  ProposalLayerParams attrs;
  DType dtype;
  const OrtApi* api;
  OrtStatusPtr ComputeV2(OrtKernelContext* context) {
    return guarded(*api, [&] {
      Ort::KernelContext ctx(context);
      const char* op = kProposalLayer;
      ProposalLayerParams p = attrs;
      In scores = input(ctx, 0), deltas = input(ctx, 1), anchors = input(ctx, 2);
      expect_shape(op, "scores", scores.shape, {-1, -1});
      p.N = to_int(op, scores.shape[0]);
      p.A = to_int(op, scores.shape[1]);
      expect_shape(op, "deltas", deltas.shape, {p.N, p.A, 4});
      expect_shape(op, "anchors", anchors.shape, {p.A, 4});
      const int64_t post = p.post_nms_topk;
      Ort::UnownedValue rois = ctx.GetOutput(0, std::vector<int64_t>{p.N, post, 4});
      Ort::UnownedValue count = ctx.GetOutput(1, std::vector<int64_t>{p.N});
      OrtParallel par(&ctx);
      proposal_layer_cpu(p, dtype, scores.data, deltas.data, static_cast<const float*>(anchors.data),
                         rois.GetTensorMutableData<float>(), count.GetTensorMutableData<int32_t>(), nullptr, nullptr,
                         &par.par);
    });
  }
};

struct DetectionKernel {
  DetectionLayerParams attrs;
  DType dtype;
  const OrtApi* api;
  OrtStatusPtr ComputeV2(OrtKernelContext* context) {
    return guarded(*api, [&] {
      Ort::KernelContext ctx(context);
      const char* op = kDetectionLayer;
      DetectionLayerParams p = attrs;
      In rois = input(ctx, 0), roi_count = input(ctx, 1), probs = input(ctx, 2), deltas = input(ctx, 3),
         window = input(ctx, 4);
      expect_shape(op, "rois", rois.shape, {-1, -1, 4});
      p.N = to_int(op, rois.shape[0]);
      p.R = to_int(op, rois.shape[1]);
      const int64_t K = p.num_classes;
      expect_shape(op, "roi_count", roi_count.shape, {p.N});
      expect_shape(op, "probs", probs.shape, {p.N, p.R, K});
      expect_shape(op, "deltas", deltas.shape, {p.N, p.R, K, 4});
      expect_shape(op, "window", window.shape, {p.N, 4});
      Ort::UnownedValue dets = ctx.GetOutput(0, std::vector<int64_t>{p.N, p.max_instances, 6});
      Ort::UnownedValue count = ctx.GetOutput(1, std::vector<int64_t>{p.N});
      OrtParallel par(&ctx);
      detection_layer_cpu(p, dtype, static_cast<const float*>(rois.data),
                          static_cast<const int32_t*>(roi_count.data), probs.data, deltas.data,
                          static_cast<const float*>(window.data), dets.GetTensorMutableData<float>(),
                          count.GetTensorMutableData<int32_t>(), nullptr, &par.par);
    });
  }
};

// ------------------------------------------------------------ op classes
template <typename Params, typename Kernel>
struct OpBase : Ort::CustomOpBase<OpBase<Params, Kernel>, Kernel, /*WithStatus=*/true> {
  DType dtype;
  const char* name;
  std::vector<ONNXTensorElementDataType> in_types, out_types;

  OpBase(DType dt, const char* nm, std::vector<ONNXTensorElementDataType> ins,
         std::vector<ONNXTensorElementDataType> outs)
      : dtype(dt), name(nm), in_types(std::move(ins)), out_types(std::move(outs)) {}

  OrtStatusPtr CreateKernelV2(const OrtApi& api, const OrtKernelInfo* info, void** kernel) const {
    return guarded(api, [&] { *kernel = new Kernel{read_attrs<Params>(api, info), dtype, &api}; });
  }
  const char* GetName() const { return name; }
  size_t GetInputTypeCount() const { return in_types.size(); }
  ONNXTensorElementDataType GetInputType(size_t i) const { return in_types[i]; }
  size_t GetOutputTypeCount() const { return out_types.size(); }
  ONNXTensorElementDataType GetOutputType(size_t i) const { return out_types[i]; }
};

using PyramidOp = OpBase<PyramidROIAlignParams, PyramidKernel>;
using ProposalOp = OpBase<ProposalLayerParams, ProposalKernel>;
using DetectionOp = OpBase<DetectionLayerParams, DetectionKernel>;

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
    for (DType dt : {DType::kFloat32, DType::kFloat16}) {
      const ONNXTensorElementDataType T = dt == DType::kFloat16 ? kF16 : kF32;
      own(std::make_shared<PyramidOp>(dt, kPyramidROIAlign, std::vector<ONNXTensorElementDataType>{kF32, T, T, T, T},
                                      std::vector<ONNXTensorElementDataType>{T}));
      own(std::make_shared<ProposalOp>(dt, kProposalLayer, std::vector<ONNXTensorElementDataType>{T, T, kF32},
                                       std::vector<ONNXTensorElementDataType>{kF32, kI32}));
      own(std::make_shared<DetectionOp>(dt, kDetectionLayer,
                                        std::vector<ONNXTensorElementDataType>{kF32, kI32, T, T, kF32},
                                        std::vector<ONNXTensorElementDataType>{kF32, kI32}));
    }
  }
};

Registry& registry() {
  static Registry r;
  return r;
}

}  // namespace
}  // namespace ort
}  // namespace mrcnn

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
