// libmrcnn_trt_plugins.so: TensorRT plugins "PyramidROIAlign",
// "ProposalLayer" and "DetectionLayer" (version "1", namespace "").
//
// Interface (compile time, NV_TENSORRT_MAJOR of the headers):
//   * TensorRT 8.5 / 8.6: IPluginV2DynamicExt + IPluginCreator;
//   * TensorRT >= 10: IPluginV3 + IPluginCreatorV3One, unless
//     MRCNN_TRT_PLUGIN_V2 is defined (cmake -DMRCNN_TRT_PLUGIN_API=v2).
// Registration: static (REGISTER_TENSORRT_PLUGIN) when the library is loaded
// with dlopen/ctypes (mrcnn_trt.plugins.load(), trtexec --plugins /
// --staticPlugins), and the exported getPluginCreators()/getCreators()/
// setLoggerFinder() for IPluginRegistry::loadLibrary (trtexec
// --dynamicPlugins); build with -DMRCNN_TRT_STATIC_REGISTRATION=OFF for the
// latter to avoid double registration.
//
// Also exported (plain C, for the Python checks):
//   const char* mrcnn_trt_plugins_info(void);       JSON: TensorRT headers, API, archs
//   const char* mrcnn_trt_plugins_cuda_archs(void); "sass:50,52,... ptx:86"
#include "plugin_v2.h"
#include "plugin_v3.h"

#ifndef MRCNN_TRT_CUDA_ARCHS
#define MRCNN_TRT_CUDA_ARCHS ""
#endif
#ifndef MRCNN_TRT_STATIC_REGISTRATION
#define MRCNN_TRT_STATIC_REGISTRATION 1
#endif

#if MRCNN_TRT_HAS_V3 && !defined(MRCNN_TRT_PLUGIN_V2)
#define MRCNN_TRT_USE_V3 1
#else
#define MRCNN_TRT_USE_V3 0
#endif

#define MRCNN_EXPORT extern "C" __attribute__((visibility("default")))

#if defined(__GNUC__)
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#endif

namespace mrcnn {
namespace trt {

#if MRCNN_TRT_USE_V3
using RoiAlignCreator = CreatorV3<PyramidROIAlignParams>;
using ProposalCreator = CreatorV3<ProposalLayerParams>;
using DetectionCreator = CreatorV3<DetectionLayerParams>;
using CreatorBase = nvinfer1::IPluginCreatorInterface;
constexpr const char* kApi = "IPluginV3";
#else
using RoiAlignCreator = CreatorV2<PyramidROIAlignParams>;
using ProposalCreator = CreatorV2<ProposalLayerParams>;
using DetectionCreator = CreatorV2<DetectionLayerParams>;
using CreatorBase = nvinfer1::IPluginCreator;
constexpr const char* kApi = "IPluginV2DynamicExt";
#endif

// The creators handed out by getPluginCreators()/getCreators() (the static
// registrars below own their own instances).
inline CreatorBase* const* exported_creators(int32_t& n) {
  static RoiAlignCreator roi_align;
  static ProposalCreator proposal;
  static DetectionCreator detection;
  static CreatorBase* const creators[] = {&roi_align, &proposal, &detection};
  n = 3;
  return creators;
}

}  // namespace trt
}  // namespace mrcnn

#if MRCNN_TRT_STATIC_REGISTRATION
// REGISTER_TENSORRT_PLUGIN pastes the type name into an identifier: plain aliases.
using MrcnnPyramidROIAlignCreator = mrcnn::trt::RoiAlignCreator;
using MrcnnProposalLayerCreator = mrcnn::trt::ProposalCreator;
using MrcnnDetectionLayerCreator = mrcnn::trt::DetectionCreator;
REGISTER_TENSORRT_PLUGIN(MrcnnPyramidROIAlignCreator);
REGISTER_TENSORRT_PLUGIN(MrcnnProposalLayerCreator);
REGISTER_TENSORRT_PLUGIN(MrcnnDetectionLayerCreator);
#endif

#if MRCNN_TRT_HAS_LOGGER_FINDER
MRCNN_EXPORT void setLoggerFinder(nvinfer1::ILoggerFinder* finder) { mrcnn::trt::logger_finder() = finder; }
#endif

#if MRCNN_TRT_USE_V3
MRCNN_EXPORT nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators) {
  return mrcnn::trt::exported_creators(nbCreators);
}
#else
MRCNN_EXPORT nvinfer1::IPluginCreator* const* getPluginCreators(int32_t& nbCreators) {
  return mrcnn::trt::exported_creators(nbCreators);
}
#endif

#define MRCNN_STR2(x) #x
#define MRCNN_STR(x) MRCNN_STR2(x)

MRCNN_EXPORT const char* mrcnn_trt_plugins_cuda_archs(void) { return MRCNN_TRT_CUDA_ARCHS; }

MRCNN_EXPORT const char* mrcnn_trt_plugins_info(void) {
  static const std::string info = std::string("{\"library\": \"mrcnn_trt_plugins\", \"tensorrt_headers\": \"") +
                                  MRCNN_STR(NV_TENSORRT_MAJOR) "." MRCNN_STR(NV_TENSORRT_MINOR) "." MRCNN_STR(
                                      NV_TENSORRT_PATCH) "\", \"plugin_api\": \"" +
                                  mrcnn::trt::kApi + "\", \"plugin_version\": \"" + mrcnn::kPluginVersion +
                                  "\", \"serial_format_version\": " +
                                  std::to_string(mrcnn::host::kSerialFormatVersion) + ", \"cuda_archs\": \"" +
                                  MRCNN_TRT_CUDA_ARCHS + "\", \"ops\": [\"" + mrcnn::kPyramidROIAlign + "\", \"" +
                                  mrcnn::kProposalLayer + "\", \"" + mrcnn::kDetectionLayer + "\"]}";
  return info.c_str();
}
