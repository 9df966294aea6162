// Runtime test of the TensorRT adapters (plugin_v2.h, plugin_v3.h) without
// libnvinfer and without a GPU: needs only TensorRT's and CUDA's headers.
//
// The CUDA launchers and the two cudart functions the adapters call are
// replaced by recording stubs, and IExprBuilder / IDimensionExpr by small
// fakes over TensorRT's own implementation interfaces (NvInferImpl.h), so
// every adapter entry point runs for real: creators, field parsing,
// serialization round trips, output shapes, type/format combinations,
// workspace sizes, enqueue (which sizes, dtype and pointers reach the
// launcher) and the error paths (logged, failure values returned).
//
// Built by plugins/trt/CMakeLists.txt when TensorRT headers are found
// (ctest: trt_adapters) and by tests/test_plugin_host.py for each folder in
// MRCNN_TRT_INCLUDE_DIRS.
#include <stdio.h>
#include <string.h>

#include <memory>
#include <string>
#include <vector>

#include "plugin_v2.h"
#include "plugin_v3.h"
#include "../host/unit_check.h"

using namespace nvinfer1;
using namespace mrcnn;

#if defined(__GNUC__)
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#endif

// ------------------------------------------------------------------ stubs
namespace {
struct Call {
  std::string op;
  int dtype = -1;
  int N = -1, R = -1, C = -1, A = -1, H0 = -1, W3 = -1;
  int pooled = -1, post = -1, max_inst = -1;
  std::vector<const void*> ptrs;
  void* ws = nullptr;
};
Call g_call;
cudaError_t g_result = cudaSuccess;
}  // namespace

namespace mrcnn {
size_t pyramid_roi_align_cuda_workspace(const PyramidROIAlignParams& p) { return (size_t)p.N * p.R * 8; }
size_t proposal_layer_cuda_workspace(const ProposalLayerParams& p) { return (size_t)p.N * p.A * 20; }
size_t detection_layer_cuda_workspace(const DetectionLayerParams& p) { return (size_t)p.N * p.R * 16; }
cudaError_t pyramid_roi_align_cuda(const PyramidROIAlignParams& p, DType dtype, const float* boxes,
                                   const void* const maps[4], void* crops, void* ws, cudaStream_t) {
  g_call = Call{};
  g_call.op = "PyramidROIAlign";
  g_call.dtype = (int)dtype;
  g_call.N = p.N, g_call.R = p.R, g_call.C = p.C, g_call.H0 = p.H[0], g_call.W3 = p.W[3], g_call.pooled = p.pooled_size;
  g_call.ptrs = {boxes, maps[0], maps[1], maps[2], maps[3], crops};
  g_call.ws = ws;
  return g_result;
}
cudaError_t proposal_layer_cuda(const ProposalLayerParams& p, DType dtype, const void* scores, const void* deltas,
                                const float* anchors, float* rois, int32_t* count, int32_t* anchor_index, void* ws,
                                cudaStream_t) {
  g_call = Call{};
  g_call.op = "ProposalLayer";
  g_call.dtype = (int)dtype;
  g_call.N = p.N, g_call.A = p.A, g_call.post = p.post_nms_topk;
  g_call.ptrs = {scores, deltas, anchors, rois, count, anchor_index};
  g_call.ws = ws;
  return g_result;
}
cudaError_t detection_layer_cuda(const DetectionLayerParams& p, DType dtype, const float* rois, const int32_t* roi_count,
                                 const void* probs, const void* deltas, const float* window, float* detections,
                                 int32_t* count, void* ws, cudaStream_t) {
  g_call = Call{};
  g_call.op = "DetectionLayer";
  g_call.dtype = (int)dtype;
  g_call.N = p.N, g_call.R = p.R, g_call.max_inst = p.max_instances;
  g_call.ptrs = {rois, roi_count, probs, deltas, window, detections, count};
  g_call.ws = ws;
  return g_result;
}
}  // namespace mrcnn

extern "C" {
const char* CUDARTAPI cudaGetErrorName(cudaError_t) { return "cudaErrorStub"; }
const char* CUDARTAPI cudaGetErrorString(cudaError_t) { return "stub failure"; }
}

// ------------------------------------------------------------ test harness
namespace {

#if NV_TENSORRT_MAJOR >= 10
using CV = int64_t;
#else
using CV = int32_t;
#endif

// Fake dimension expressions: a constant or an unknown ("symbolic") value.
struct FakeDimImpl : apiv::VDimensionExpr {
  bool c;
  CV v;
  FakeDimImpl(bool c_, CV v_) : c(c_), v(v_) {}
  bool isConstant() const override { return c; }
  CV getConstantValue() const override { return c ? v : -1; }
#if NV_TENSORRT_MAJOR >= 10
  bool isSizeTensor() const override { return false; }
#endif
};
struct FakeDim : IDimensionExpr {
  FakeDimImpl impl;
  FakeDim(bool c, CV v) : impl(c, v) { mImpl = &impl; }
};
struct FakeBuilderImpl : apiv::VExprBuilder {
  std::vector<std::unique_ptr<FakeDim>> dims;
  const IDimensionExpr* make(bool c, CV v) {
    dims.emplace_back(new FakeDim(c, v));
    return dims.back().get();
  }
  const IDimensionExpr* constant(CV v) override { return make(true, v); }
  const IDimensionExpr* operation(DimensionOperation, const IDimensionExpr&, const IDimensionExpr&) override {
    return nullptr;
  }
#if NV_TENSORRT_MAJOR >= 10
  const IDimensionExpr* declareSizeTensor(int32_t, const IDimensionExpr&, const IDimensionExpr&) override {
    return nullptr;
  }
#endif
};
struct FakeBuilder : IExprBuilder {
  FakeBuilderImpl impl;
  FakeBuilder() { mImpl = &impl; }
  DimsExprs exprs(std::vector<long> d) {  // -1: symbolic
    DimsExprs e{};
    e.nbDims = (int)d.size();
    for (size_t i = 0; i < d.size(); ++i) e.d[i] = impl.make(d[i] >= 0, d[i]);
    return e;
  }
};
std::vector<long> values(const DimsExprs& e) {
  std::vector<long> out;
  for (int i = 0; i < e.nbDims; ++i) out.push_back(e.d[i]->isConstant() ? (long)e.d[i]->getConstantValue() : -1);
  return out;
}
PluginTensorDesc desc(DataType t, std::vector<long> d) {
  PluginTensorDesc p{};
  p.type = t;
  p.format = TensorFormat::kLINEAR;
  p.scale = 1.f;
  p.dims.nbDims = (int)d.size();
  for (size_t i = 0; i < d.size(); ++i) p.dims.d[i] = d[i];
  return p;
}
const void* P(uintptr_t v) { return reinterpret_cast<const void*>(v); }

struct Fields {
  int32_t post = 250;
  float thr = 0.5f;
  float std4[4] = {0.1f, 0.1f, 0.2f, 0.2f};
  int32_t bad_pool = 1;
  PluginField pf[3];
  PluginField bad[1];
  PluginFieldCollection fc{}, bad_fc{};
  Fields() {
    pf[0] = PluginField("post_nms_topk", &post, PluginFieldType::kINT32, 1);
    pf[1] = PluginField("nms_threshold", &thr, PluginFieldType::kFLOAT32, 1);
    pf[2] = PluginField("rpn_bbox_std_dev", std4, PluginFieldType::kFLOAT32, 4);
    fc.nbFields = 3;
    fc.fields = pf;
    bad[0] = PluginField("pooled_size", &bad_pool, PluginFieldType::kINT32, 1);
    bad_fc.nbFields = 1;
    bad_fc.fields = bad;
  }
};

template <typename C>
void check_field_names(C& creator, const char* name, int n, const char* first) {
  CHECK(!strcmp(creator.getPluginName(), name) && !strcmp(creator.getPluginVersion(), "1"));
  CHECK(!strcmp(creator.getPluginNamespace(), ""));
  const PluginFieldCollection* f = creator.getFieldNames();
  CHECK(f != nullptr && f->nbFields == n && !strcmp(f->fields[0].name, first));
  for (int i = 0; f && i < f->nbFields; ++i)
    CHECK(f->fields[i].type == PluginFieldType::kINT32 || f->fields[i].type == PluginFieldType::kFLOAT32);
}

// The three creators of one plugin interface, their names and fields checked.
template <template <typename> class Creator>
struct Creators {
  Creator<ProposalLayerParams> pc;
  Creator<PyramidROIAlignParams> rc;
  Creator<DetectionLayerParams> dc;
  Creators() {
    check_field_names(pc, "ProposalLayer", 5, "pre_nms_topk");
    check_field_names(rc, "PyramidROIAlign", 4, "pooled_size");
    check_field_names(dc, "DetectionLayer", 6, "num_classes");
  }
};

// ------------------------------------------------------------------ V2
void test_v2() {
  Fields F;
  FakeBuilder eb;
  Creators<trt::CreatorV2> creators;
  auto& pc = creators.pc; auto& rc = creators.rc; auto& dc = creators.dc;
  // default values are advertised with the field names
  CHECK(*(const int32_t*)rc.getFieldNames()->fields[0].data == 7);

  auto* p = static_cast<IPluginV2DynamicExt*>(pc.createPlugin("prop", &F.fc));
  CHECK(p != nullptr);
  if (!p) return;
  CHECK(p->getNbOutputs() == 2 && !strcmp(p->getPluginType(), "ProposalLayer") && !strcmp(p->getPluginVersion(), "1"));
  std::vector<char> buf(p->getSerializationSize());
  p->serialize(buf.data());
  CHECK(memcmp(buf.data(), "MRCN", 4) == 0);
  auto* p2 = static_cast<IPluginV2DynamicExt*>(pc.deserializePlugin("prop", buf.data(), buf.size()));
  CHECK(p2 != nullptr);
  std::vector<char> buf2(p2 ? p2->getSerializationSize() : 0);
  if (p2) p2->serialize(buf2.data());
  CHECK(buf == buf2);
  CHECK(pc.deserializePlugin("prop", buf.data(), buf.size() - 1) == nullptr);  // logged
  CHECK(dc.deserializePlugin("det", buf.data(), buf.size()) == nullptr);      // another op's data

  DimsExprs in[3] = {eb.exprs({2, -1}), eb.exprs({2, -1, 4}), eb.exprs({-1, 4})};
  DimsExprs o0 = p->getOutputDimensions(0, in, 3, eb), o1 = p->getOutputDimensions(1, in, 3, eb);
  CHECK((values(o0) == std::vector<long>{2, 250, 4}) && (values(o1) == std::vector<long>{2}));
  CHECK(o0.d[0] == in[0].d[0]);  // the input's expression itself, not a copy
  DimsExprs bad[3] = {eb.exprs({2, 10}), eb.exprs({2, 11, 4}), eb.exprs({10, 4})};
  CHECK(p->getOutputDimensions(0, bad, 3, eb).nbDims == -1);  // logged

  PluginTensorDesc io[5] = {desc(DataType::kHALF, {2, 10}), desc(DataType::kHALF, {2, 10, 4}),
                            desc(DataType::kFLOAT, {10, 4}), desc(DataType::kFLOAT, {2, 250, 4}),
                            desc(DataType::kINT32, {2})};
  for (int pos = 0; pos < 5; ++pos) CHECK(p->supportsFormatCombination(pos, io, 3, 2));
  io[1].type = DataType::kFLOAT;
  CHECK(!p->supportsFormatCombination(1, io, 3, 2));
  io[1].type = DataType::kHALF;
  io[4].format = TensorFormat::kCHW4;
  CHECK(!p->supportsFormatCombination(4, io, 3, 2));
  io[4].format = TensorFormat::kLINEAR;
  DataType it[3] = {DataType::kHALF, DataType::kHALF, DataType::kFLOAT};
  CHECK(p->getOutputDataType(0, it, 3) == DataType::kFLOAT && p->getOutputDataType(1, it, 3) == DataType::kINT32);
  CHECK(p->getWorkspaceSize(io, 3, io + 3, 2) == host::align_up(2 * 10 * 20) + 256);

  const void* ins[3] = {P(0x100), P(0x200), P(0x300)};
  void* outs[2] = {(void*)P(0x400), (void*)P(0x500)};
  g_result = cudaSuccess;
  CHECK(p->enqueue(io, io + 3, ins, outs, (void*)P(0x900), nullptr) == 0);
  CHECK(g_call.op == "ProposalLayer" && g_call.N == 2 && g_call.A == 10 && g_call.post == 250);
  CHECK(g_call.dtype == (int)DType::kFloat16);
  CHECK((g_call.ptrs == std::vector<const void*>{P(0x100), P(0x200), P(0x300), P(0x400), P(0x500), nullptr}));
  CHECK(g_call.ws == P(0x900));
  g_result = cudaErrorInvalidValue;
  CHECK(p->enqueue(io, io + 3, ins, outs, nullptr, nullptr) == 1);  // launch error: logged, 1
  g_result = cudaSuccess;
  CHECK(p->enqueue(io, io + 3, nullptr, outs, nullptr, nullptr) == 1);

  IPluginV2DynamicExt* c = p->clone();
  CHECK(c != nullptr && c->getNbOutputs() == 2);
  p->setPluginNamespace("ns");
  IPluginV2DynamicExt* c2 = p->clone();
  CHECK(c2 && !strcmp(c2->getPluginNamespace(), "ns"));
  if (c) c->destroy();
  if (c2) c2->destroy();
  p->destroy();
  if (p2) p2->destroy();
  CHECK(rc.createPlugin("x", &F.bad_fc) == nullptr);  // out of range: logged

  // PyramidROIAlign: [N,R,C,P,P] from boxes and P2; FP32 launch with all five inputs in order.
  auto* r = static_cast<IPluginV2DynamicExt*>(rc.createPlugin("r", nullptr));
  CHECK(r != nullptr);
  if (!r) return;
  DimsExprs rin[5] = {eb.exprs({1, -1, 4}), eb.exprs({1, 64, 64, 64}), eb.exprs({1, 64, 32, 32}),
                      eb.exprs({1, 64, 16, 16}), eb.exprs({1, 64, 8, 8})};
  CHECK((values(r->getOutputDimensions(0, rin, 5, eb)) == std::vector<long>{1, -1, 64, 7, 7}));
  PluginTensorDesc rio[6] = {desc(DataType::kFLOAT, {1, 30, 4}), desc(DataType::kFLOAT, {1, 64, 64, 64}),
                             desc(DataType::kFLOAT, {1, 64, 32, 32}), desc(DataType::kFLOAT, {1, 64, 16, 16}),
                             desc(DataType::kFLOAT, {1, 64, 8, 8}), desc(DataType::kFLOAT, {1, 30, 64, 7, 7})};
  const void* rins[5] = {P(1), P(2), P(3), P(4), P(5)};
  void* routs[1] = {(void*)P(6)};
  CHECK(r->enqueue(rio, rio + 5, rins, routs, nullptr, nullptr) == 0);
  CHECK(g_call.op == "PyramidROIAlign" && g_call.N == 1 && g_call.R == 30 && g_call.C == 64 && g_call.H0 == 64 &&
        g_call.W3 == 8 && g_call.pooled == 7 && g_call.dtype == (int)DType::kFloat32);
  CHECK((g_call.ptrs == std::vector<const void*>{P(1), P(2), P(3), P(4), P(5), P(6)}));
  r->destroy();
}

// ------------------------------------------------------------------ V3
#if MRCNN_TRT_HAS_V3
void test_v3() {
  Fields F;
  FakeBuilder eb;
  Creators<trt::CreatorV3> creators;
  auto& pc = creators.pc; auto& rc = creators.rc; auto& dc = creators.dc;
  CHECK(!strcmp(static_cast<IPluginCreatorInterface&>(pc).getInterfaceInfo().kind, "PLUGIN CREATOR_V3ONE"));

  IPluginV3* p = pc.createPlugin("prop", &F.fc, TensorRTPhase::kBUILD);
  CHECK(p != nullptr);
  if (!p) return;
  auto* core = static_cast<IPluginV3OneCore*>(p->getCapabilityInterface(PluginCapabilityType::kCORE));
  auto* build = static_cast<IPluginV3OneBuild*>(p->getCapabilityInterface(PluginCapabilityType::kBUILD));
  auto* rt = static_cast<IPluginV3OneRuntime*>(p->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
  CHECK(!strcmp(core->getPluginName(), "ProposalLayer") && build->getNbOutputs() == 2);
  const PluginFieldCollection* sf = rt->getFieldsToSerialize();
  CHECK(sf && sf->nbFields == 6 && !strcmp(sf->fields[5].name, host::kFormatField));
  CHECK(sf && *(const int32_t*)sf->fields[1].data == 250 && *(const float*)sf->fields[2].data == 0.5f);
  IPluginV3* p2 = pc.createPlugin("prop", sf, TensorRTPhase::kRUNTIME);
  CHECK(p2 != nullptr);
  if (p2) {
    auto* rt2 = static_cast<IPluginV3OneRuntime*>(p2->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
    const PluginFieldCollection* sf2 = rt2->getFieldsToSerialize();
    CHECK(sf2 && sf2->nbFields == 6 && *(const int32_t*)sf2->fields[1].data == 250);
    delete p2;
  }
  CHECK(pc.createPlugin("prop", &F.fc, TensorRTPhase::kRUNTIME) == nullptr);  // no format field: logged

  DimsExprs in[3] = {eb.exprs({2, -1}), eb.exprs({2, -1, 4}), eb.exprs({-1, 4})};
  DimsExprs out[2];
  CHECK(build->getOutputShapes(in, 3, nullptr, 0, out, 2, eb) == 0);
  CHECK((values(out[0]) == std::vector<long>{2, 250, 4}) && (values(out[1]) == std::vector<long>{2}));
  CHECK(build->getOutputShapes(in, 3, nullptr, 0, out, 1, eb) != 0);
  DataType ot[2], it[3] = {DataType::kHALF, DataType::kHALF, DataType::kFLOAT};
  CHECK(build->getOutputDataTypes(ot, 2, it, 3) == 0 && ot[0] == DataType::kFLOAT && ot[1] == DataType::kINT32);

  DynamicPluginTensorDesc dio[5];
  std::vector<long> shapes[5] = {{2, 10}, {2, 10, 4}, {10, 4}, {2, 250, 4}, {2}};
  DataType types[5] = {DataType::kHALF, DataType::kHALF, DataType::kFLOAT, DataType::kFLOAT, DataType::kINT32};
  for (int i = 0; i < 5; ++i) {
    dio[i].desc = desc(types[i], shapes[i]);
    dio[i].min = dio[i].max = dio[i].desc.dims;
  }
  dio[0].max.d[1] = dio[1].max.d[1] = dio[2].max.d[0] = 40;  // profile max A = 40
  for (int pos = 0; pos < 5; ++pos) CHECK(build->supportsFormatCombination(pos, dio, 3, 2));
  dio[2].desc.type = DataType::kHALF;
  CHECK(!build->supportsFormatCombination(2, dio, 3, 2));
  dio[2].desc.type = DataType::kFLOAT;
  CHECK(build->configurePlugin(dio, 3, dio + 3, 2) == 0);
  CHECK(build->getWorkspaceSize(dio, 3, dio + 3, 2) == host::align_up(2 * 40 * 20) + 256);  // sized for the max
  PluginTensorDesc pin[3] = {dio[0].desc, dio[1].desc, dio[2].desc};
  CHECK(rt->onShapeChange(pin, 3, nullptr, 2) == 0);
  pin[2].dims.d[0] = 11;
  CHECK(rt->onShapeChange(pin, 3, nullptr, 2) != 0);  // anchors do not match: logged
  pin[2].dims.d[0] = 10;
  const void* ins[3] = {P(0x10), P(0x20), P(0x30)};
  void* outs[2] = {(void*)P(0x40), (void*)P(0x50)};
  CHECK(rt->enqueue(pin, nullptr, ins, outs, nullptr, nullptr) == 0);
  CHECK(g_call.op == "ProposalLayer" && g_call.N == 2 && g_call.A == 10 && g_call.dtype == (int)DType::kFloat16);
  IPluginV3* c = rt->attachToContext(nullptr);
  CHECK(c != nullptr);
  delete c;
  delete p;
  CHECK(rc.createPlugin("x", &F.bad_fc, TensorRTPhase::kBUILD) == nullptr);
  // With capture on, the message is kept (for the tool's one-line error) instead of printed.
  {
    trt::ErrorLog& log = trt::error_log();
    log.capture = true;
    log.text.clear();
    CHECK(rc.createPlugin("x", &F.bad_fc, TensorRTPhase::kBUILD) == nullptr);
    CHECK(log.text.find(" createPlugin: ") != std::string::npos && log.text.back() == '\n');
    log.capture = false;
    log.text.clear();
  }

  // DetectionLayer: int32 roi_count and FP32 probs reach the launcher in order.
  IPluginV3* d = dc.createPlugin("det", nullptr, TensorRTPhase::kBUILD);
  CHECK(d != nullptr);
  if (!d) return;
  auto* drt = static_cast<IPluginV3OneRuntime*>(d->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
  PluginTensorDesc din[5] = {desc(DataType::kFLOAT, {2, 50, 4}), desc(DataType::kINT32, {2}),
                             desc(DataType::kFLOAT, {2, 50, 81}), desc(DataType::kFLOAT, {2, 50, 81, 4}),
                             desc(DataType::kFLOAT, {2, 4})};
  const void* dins[5] = {P(1), P(2), P(3), P(4), P(5)};
  void* douts[2] = {(void*)P(6), (void*)P(7)};
  CHECK(drt->enqueue(din, nullptr, dins, douts, nullptr, nullptr) == 0);
  CHECK(g_call.op == "DetectionLayer" && g_call.N == 2 && g_call.R == 50 && g_call.max_inst == 100 &&
        g_call.dtype == (int)DType::kFloat32);
  CHECK((g_call.ptrs == std::vector<const void*>{P(1), P(2), P(3), P(4), P(5), P(6), P(7)}));
  din[2] = desc(DataType::kFLOAT, {2, 50, 9});  // wrong class count
  CHECK(drt->enqueue(din, nullptr, dins, douts, nullptr, nullptr) == 1);
  delete d;
}
#endif

}  // namespace

int main() {
  test_v2();
#if MRCNN_TRT_HAS_V3
  test_v3();
#endif
  printf("trt_adapter_test (TensorRT headers %d.%d, %s): %d checks, %d failures\n", NV_TENSORRT_MAJOR,
         NV_TENSORRT_MINOR, MRCNN_TRT_HAS_V3 ? "V2 + V3" : "V2", g_checks, g_failures);
  return g_failures == 0 ? 0 : 1;
}
