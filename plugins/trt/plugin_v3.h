// IPluginV3 (IPluginV3OneCore/Build/Runtime) + IPluginCreatorV3One adapters
// for TensorRT >= 10. Serialization goes through getFieldsToSerialize(): the
// attribute fields plus "mrcnn_format_version", which createPlugin checks in
// the runtime phase.
#pragma once

#include "trt_common.h"

#if MRCNN_TRT_HAS_V3

namespace mrcnn {
namespace trt {

template <typename P>
class PluginV3 final : public nvinfer1::IPluginV3,
                       public nvinfer1::IPluginV3OneCore,
                       public nvinfer1::IPluginV3OneBuild,
                       public nvinfer1::IPluginV3OneRuntime {
 public:
  explicit PluginV3(const P& params) { body_.params = params; }

  // ----------------------------------------------------------- IPluginV3
  nvinfer1::IPluginCapability* getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept override {
    switch (type) {
      case nvinfer1::PluginCapabilityType::kCORE: return static_cast<nvinfer1::IPluginV3OneCore*>(this);
      case nvinfer1::PluginCapabilityType::kBUILD: return static_cast<nvinfer1::IPluginV3OneBuild*>(this);
      case nvinfer1::PluginCapabilityType::kRUNTIME: return static_cast<nvinfer1::IPluginV3OneRuntime*>(this);
    }
    return nullptr;
  }

  nvinfer1::IPluginV3* clone() noexcept override {
    PluginV3* p = nullptr;
    guarded(Op<P>::kName, "clone", [&] { p = new PluginV3(body_.params); });
    return p;
  }

  // ---------------------------------------------------- IPluginV3OneCore
  const char* getPluginName() const noexcept override { return Op<P>::kName; }
  const char* getPluginVersion() const noexcept override { return kPluginVersion; }
  const char* getPluginNamespace() const noexcept override { return kPluginNamespace; }

  // --------------------------------------------------- IPluginV3OneBuild
  int32_t configurePlugin(const nvinfer1::DynamicPluginTensorDesc* in, int32_t nb_inputs,
                          const nvinfer1::DynamicPluginTensorDesc* /*out*/, int32_t /*nb_outputs*/) noexcept override {
    const bool ok = guarded(Op<P>::kName, "configurePlugin", [&] {
      std::vector<host::Dims> dims;
      for (int i = 0; i < nb_inputs; ++i) dims.push_back(to_dims(in[i].desc.dims));
      body_.check(dims);
    });
    return ok ? 0 : 1;
  }

  int32_t getOutputDataTypes(nvinfer1::DataType* output_types, int32_t nb_outputs, const nvinfer1::DataType* input_types,
                             int32_t nb_inputs) const noexcept override {
    const bool ok = guarded(Op<P>::kName, "getOutputDataTypes", [&] {
      if (nb_outputs != host::op_io<P>().nb_outputs) throw host::HostError("wrong number of outputs");
      for (int i = 0; i < nb_outputs; ++i) output_types[i] = body_.output_type(i, input_types, nb_inputs);
    });
    return ok ? 0 : 1;
  }

  int32_t getOutputShapes(const nvinfer1::DimsExprs* inputs, int32_t nb_inputs, const nvinfer1::DimsExprs* /*shape_inputs*/,
                          int32_t /*nb_shape_inputs*/, nvinfer1::DimsExprs* outputs, int32_t nb_outputs,
                          nvinfer1::IExprBuilder& eb) noexcept override {
    const bool ok = guarded(Op<P>::kName, "getOutputShapes", [&] {
      if (nb_outputs != host::op_io<P>().nb_outputs) throw host::HostError("wrong number of outputs");
      for (int i = 0; i < nb_outputs; ++i) outputs[i] = body_.output_dims(i, inputs, nb_inputs, eb);
    });
    return ok ? 0 : 1;
  }

  bool supportsFormatCombination(int32_t pos, const nvinfer1::DynamicPluginTensorDesc* in_out, int32_t nb_inputs,
                                 int32_t nb_outputs) noexcept override {
    bool ok = false;
    guarded(Op<P>::kName, "supportsFormatCombination", [&] {
      const int n = nb_inputs + nb_outputs;
      if (pos < 0 || pos >= n || n > 16) return;
      nvinfer1::PluginTensorDesc d[16];
      for (int i = 0; i <= pos; ++i) d[i] = in_out[i].desc;
      ok = body_.supports(pos, d, nb_inputs, nb_outputs);
    });
    return ok;
  }

  int32_t getNbOutputs() const noexcept override { return host::op_io<P>().nb_outputs; }

  size_t getWorkspaceSize(const nvinfer1::DynamicPluginTensorDesc* inputs, int32_t nb_inputs,
                          const nvinfer1::DynamicPluginTensorDesc* /*outputs*/,
                          int32_t /*nb_outputs*/) const noexcept override {
    size_t n = 0;
    guarded(Op<P>::kName, "getWorkspaceSize", [&] {
      std::vector<host::Dims> dims;  // the largest shapes of the optimization profile
      for (int i = 0; i < nb_inputs; ++i) dims.push_back(to_dims(inputs[i].max));
      n = body_.workspace(dims);
    });
    return n;
  }

  // ------------------------------------------------- IPluginV3OneRuntime
  int32_t onShapeChange(const nvinfer1::PluginTensorDesc* in, int32_t nb_inputs, const nvinfer1::PluginTensorDesc* /*out*/,
                        int32_t /*nb_outputs*/) noexcept override {
    const bool ok = guarded(Op<P>::kName, "onShapeChange", [&] { body_.check(Body<P>::dims_of(in, nb_inputs)); });
    return ok ? 0 : 1;
  }

  int32_t enqueue(const nvinfer1::PluginTensorDesc* input_desc, const nvinfer1::PluginTensorDesc* /*output_desc*/,
                  const void* const* inputs, void* const* outputs, void* workspace,
                  cudaStream_t stream) noexcept override {
    return body_.enqueue_status(input_desc, inputs, outputs, workspace, stream);
  }

  nvinfer1::IPluginV3* attachToContext(nvinfer1::IPluginResourceContext* /*context*/) noexcept override { return clone(); }

  const nvinfer1::PluginFieldCollection* getFieldsToSerialize() noexcept override {
    const nvinfer1::PluginFieldCollection* fc = nullptr;
    guarded(Op<P>::kName, "getFieldsToSerialize", [&] {
      serial_fields_.set(host::to_fields(body_.params, /*with_format_field=*/true));
      fc = serial_fields_.collection();
    });
    return fc;
  }

 private:
  Body<P> body_;
  FieldStore serial_fields_;
};

template <typename P>
class CreatorV3 final : public nvinfer1::IPluginCreatorV3One, private CreatorFields<P> {
 public:
  const char* getPluginName() const noexcept override { return Op<P>::kName; }
  const char* getPluginVersion() const noexcept override { return kPluginVersion; }
  const char* getPluginNamespace() const noexcept override { return kPluginNamespace; }
  const nvinfer1::PluginFieldCollection* getFieldNames() noexcept override { return field_names_.collection(); }

  nvinfer1::IPluginV3* createPlugin(const char* /*name*/, const nvinfer1::PluginFieldCollection* fc,
                                    nvinfer1::TensorRTPhase phase) noexcept override {
    PluginV3<P>* p = nullptr;
    guarded(Op<P>::kName, "createPlugin", [&] {
      const std::vector<host::FieldValue> fields = fields_from(fc, Op<P>::kName);
      if (phase == nvinfer1::TensorRTPhase::kRUNTIME) {
        bool has_format = false;
        for (const auto& f : fields) has_format = has_format || f.name == host::kFormatField;
        if (!has_format)
          throw host::HostError("serialized fields lack " + std::string(host::kFormatField) +
                                " (engine built with another plugin library); rebuild the engine");
      }
      p = new PluginV3<P>(host::parse_fields<P>(fields, /*allow_format_field=*/true));
    });
    return p;
  }

 private:
  using CreatorFields<P>::field_names_;
};

}  // namespace trt
}  // namespace mrcnn

#endif  // MRCNN_TRT_HAS_V3
