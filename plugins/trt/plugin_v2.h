// IPluginV2DynamicExt + IPluginCreator adapters (TensorRT 8.5, 8.6, 10.x;
// still declared, deprecated, in 11.x). The only plugin interface of the
// TensorRT releases that run on sm_50 .. sm_61, so it is always compiled;
// plugins/trt/mrcnn_trt_plugins.cpp decides which interface gets registered.
//
// Every entry point is noexcept: host errors are caught, logged with the op
// name and turned into TensorRT's failure values (nullptr, 1, invalid dims).
#pragma once

#include "trt_common.h"

#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#endif

namespace mrcnn {
namespace trt {

template <typename P>
class PluginV2 final : public nvinfer1::IPluginV2DynamicExt {
 public:
  explicit PluginV2(const P& params) { body_.params = params; }

  // ---------------------------------------------------------- IPluginV2
  const char* getPluginType() const noexcept override { return Op<P>::kName; }
  const char* getPluginVersion() const noexcept override { return kPluginVersion; }
  int32_t getNbOutputs() const noexcept override { return host::op_io<P>().nb_outputs; }
  int32_t initialize() noexcept override { return 0; }
  void terminate() noexcept override {}
  size_t getSerializationSize() const noexcept override { return host::serialized_size(body_.params); }
  void serialize(void* buffer) const noexcept override {
    guarded(Op<P>::kName, "serialize", [&] { host::serialize(body_.params, buffer, host::serialized_size(body_.params)); });
  }
  void destroy() noexcept override { delete this; }
  void setPluginNamespace(const char* ns) noexcept override {
    guarded(Op<P>::kName, "setPluginNamespace", [&] { namespace_ = ns ? ns : ""; });
  }
  const char* getPluginNamespace() const noexcept override { return namespace_.c_str(); }

  // ------------------------------------------------------- IPluginV2Ext
  nvinfer1::DataType getOutputDataType(int32_t index, const nvinfer1::DataType* input_types,
                                       int32_t nb_inputs) const noexcept override {
    nvinfer1::DataType t = nvinfer1::DataType::kFLOAT;
    guarded(Op<P>::kName, "getOutputDataType", [&] { t = body_.output_type(index, input_types, nb_inputs); });
    return t;
  }

  // ------------------------------------------------ IPluginV2DynamicExt
  nvinfer1::IPluginV2DynamicExt* clone() const noexcept override {
    PluginV2* p = nullptr;
    guarded(Op<P>::kName, "clone", [&] {
      p = new PluginV2(body_.params);
      p->namespace_ = namespace_;
    });
    return p;
  }

  nvinfer1::DimsExprs getOutputDimensions(int32_t index, const nvinfer1::DimsExprs* inputs, int32_t nb_inputs,
                                          nvinfer1::IExprBuilder& eb) noexcept override {
    nvinfer1::DimsExprs out{};
    out.nbDims = -1;  // invalid: makes TensorRT fail the build if we cannot answer
    guarded(Op<P>::kName, "getOutputDimensions", [&] { out = body_.output_dims(index, inputs, nb_inputs, eb); });
    return out;
  }

  bool supportsFormatCombination(int32_t pos, const nvinfer1::PluginTensorDesc* in_out, int32_t nb_inputs,
                                 int32_t nb_outputs) noexcept override {
    bool ok = false;
    guarded(Op<P>::kName, "supportsFormatCombination", [&] { ok = body_.supports(pos, in_out, nb_inputs, nb_outputs); });
    return ok;
  }

  void configurePlugin(const nvinfer1::DynamicPluginTensorDesc* in, int32_t nb_inputs,
                       const nvinfer1::DynamicPluginTensorDesc* /*out*/, int32_t /*nb_outputs*/) noexcept override {
    guarded(Op<P>::kName, "configurePlugin", [&] {
      std::vector<host::Dims> dims;
      for (int i = 0; i < nb_inputs; ++i) dims.push_back(to_dims(in[i].desc.dims));
      body_.check(dims);
    });
  }

  size_t getWorkspaceSize(const nvinfer1::PluginTensorDesc* inputs, int32_t nb_inputs,
                          const nvinfer1::PluginTensorDesc* /*outputs*/, int32_t /*nb_outputs*/) const noexcept override {
    size_t n = 0;
    guarded(Op<P>::kName, "getWorkspaceSize", [&] { n = body_.workspace(Body<P>::dims_of(inputs, nb_inputs)); });
    return n;
  }

  int32_t enqueue(const nvinfer1::PluginTensorDesc* input_desc, const nvinfer1::PluginTensorDesc* /*output_desc*/,
                  const void* const* inputs, void* const* outputs, void* workspace,
                  cudaStream_t stream) noexcept override {
    return body_.enqueue_status(input_desc, inputs, outputs, workspace, stream);
  }

 private:
  Body<P> body_;
  std::string namespace_ = kPluginNamespace;
};

template <typename P>
class CreatorV2 final : public nvinfer1::IPluginCreator, private CreatorFields<P> {
 public:
  const char* getPluginName() const noexcept override { return Op<P>::kName; }
  const char* getPluginVersion() const noexcept override { return kPluginVersion; }
  const nvinfer1::PluginFieldCollection* getFieldNames() noexcept override { return field_names_.collection(); }

  nvinfer1::IPluginV2* createPlugin(const char* /*name*/, const nvinfer1::PluginFieldCollection* fc) noexcept override {
    PluginV2<P>* p = nullptr;
    guarded(Op<P>::kName, "createPlugin", [&] {
      p = new PluginV2<P>(host::parse_fields<P>(fields_from(fc, Op<P>::kName)));
      p->setPluginNamespace(namespace_.c_str());
    });
    return p;
  }

  nvinfer1::IPluginV2* deserializePlugin(const char* /*name*/, const void* data, size_t length) noexcept override {
    PluginV2<P>* p = nullptr;
    guarded(Op<P>::kName, "deserializePlugin", [&] {
      p = new PluginV2<P>(host::deserialize<P>(data, length));
      p->setPluginNamespace(namespace_.c_str());
    });
    return p;
  }

  void setPluginNamespace(const char* ns) noexcept override {
    guarded(Op<P>::kName, "setPluginNamespace", [&] { namespace_ = ns ? ns : ""; });
  }
  const char* getPluginNamespace() const noexcept override { return namespace_.c_str(); }

 private:
  using CreatorFields<P>::field_names_;
  std::string namespace_ = kPluginNamespace;
};

}  // namespace trt
}  // namespace mrcnn

#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
