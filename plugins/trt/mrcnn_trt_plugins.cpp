// libmrcnn_trt_plugins.so: one TensorRT plugin per op of the contract, named
// as the op (version "1", namespace ""; plugins/opdefs.py).
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
// Also exported (plain C, for the Python checks and tools):
//   const char* mrcnn_trt_plugins_info(void);       JSON: family + version, TensorRT headers, API, archs
//   const char* mrcnn_trt_plugins_cuda_archs(void); "sass:50,52,... ptx:86"
//   void mrcnn_trt_plugins_capture_errors(int on);  keep error messages instead of printing them
//   const char* mrcnn_trt_plugins_errors(void);     kept messages ("\n"-separated; valid until the next call)
//   void mrcnn_trt_plugins_clear_errors(void);
// and, readable without loading the library, the string
//   "mrcnn_trt_plugins_build: family=rtx family_version=1.7.1.116 tensorrt_headers=11.1.0 cuda_archs=sass:89 ptx:89;"
//
// Family: MRCNN_TRT_FAMILY ("tensorrt" by default, "rtx" for TensorRT for
// RTX) and MRCNN_TRT_FAMILY_VERSION (the library linked against; default:
// the headers' version) are set by the build (mrcnn-build-plugins) so that
// a library is never used with another TensorRT family or release.
#include "plugin_v2.h"
#include "plugin_v3.h"

#ifndef MRCNN_TRT_CUDA_ARCHS
#define MRCNN_TRT_CUDA_ARCHS ""
#endif
#define MRCNN_STR2(x) #x
#define MRCNN_STR(x) MRCNN_STR2(x)
#define MRCNN_TRT_HEADERS_VERSION MRCNN_STR(NV_TENSORRT_MAJOR) "." MRCNN_STR(NV_TENSORRT_MINOR) "." MRCNN_STR(NV_TENSORRT_PATCH)
#ifndef MRCNN_TRT_FAMILY
#define MRCNN_TRT_FAMILY "tensorrt"
#endif
#ifndef MRCNN_TRT_FAMILY_VERSION
#define MRCNN_TRT_FAMILY_VERSION MRCNN_TRT_HEADERS_VERSION
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
template <typename Params>
using Creator = CreatorV3<Params>;
using CreatorBase = nvinfer1::IPluginCreatorInterface;
constexpr const char* kApi = "IPluginV3";
#else
template <typename Params>
using Creator = CreatorV2<Params>;
using CreatorBase = nvinfer1::IPluginCreator;
constexpr const char* kApi = "IPluginV2DynamicExt";
#endif

// The creators handed out by getPluginCreators()/getCreators(), one per op of
// the contract (the static registrars below own their own instances).
inline CreatorBase* const* exported_creators(int32_t& n) {
#define MRCNN_CREATOR(Op, torch_name) static Creator<Op##Params> creator_##Op;
#define MRCNN_CREATOR_PTR(Op, torch_name) &creator_##Op,
  MRCNN_CONTRACT_OPS(MRCNN_CREATOR)
  static CreatorBase* const creators[] = {MRCNN_CONTRACT_OPS(MRCNN_CREATOR_PTR)};
#undef MRCNN_CREATOR_PTR
#undef MRCNN_CREATOR
  n = (int32_t)array_len(creators);
  return creators;
}

// ["PyramidROIAlign", ...]: the ops' names as a JSON list.
inline std::string op_names_json() {
  std::string s = "[";
  for_each_op([&](auto tag) { s += (s.size() > 1 ? ", \"" : "\"") + std::string(op_name(tag)) + "\""; });
  return s + "]";
}

}  // namespace trt
}  // namespace mrcnn

#if MRCNN_TRT_STATIC_REGISTRATION
// REGISTER_TENSORRT_PLUGIN pastes the type name into an identifier: plain
// aliases (MrcnnPyramidROIAlignCreator, ...), one per op of the contract.
#define MRCNN_REGISTER_CREATOR(Op, torch_name)                      \
  using Mrcnn##Op##Creator = mrcnn::trt::Creator<mrcnn::Op##Params>; \
  REGISTER_TENSORRT_PLUGIN(Mrcnn##Op##Creator);
MRCNN_CONTRACT_OPS(MRCNN_REGISTER_CREATOR)
#undef MRCNN_REGISTER_CREATOR
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

// The same facts as one plain string in the file, so that tools can check a
// library before loading it (loading runs the static registration, which
// must not happen in a TensorRT it was not built for).
extern "C" __attribute__((used)) const char mrcnn_trt_plugins_build_tag[] =
    "mrcnn_trt_plugins_build: family=" MRCNN_TRT_FAMILY " family_version=" MRCNN_TRT_FAMILY_VERSION
    " tensorrt_headers=" MRCNN_TRT_HEADERS_VERSION " cuda_archs=" MRCNN_TRT_CUDA_ARCHS ";";

MRCNN_EXPORT const char* mrcnn_trt_plugins_cuda_archs(void) { return MRCNN_TRT_CUDA_ARCHS; }

MRCNN_EXPORT const char* mrcnn_trt_plugins_info(void) {
  static const std::string info =
      std::string("{\"library\": \"mrcnn_trt_plugins\", \"family\": \"") + MRCNN_TRT_FAMILY +
      "\", \"family_version\": \"" + MRCNN_TRT_FAMILY_VERSION + "\", \"tensorrt_headers\": \"" +
      MRCNN_TRT_HEADERS_VERSION + "\", \"plugin_api\": \"" + mrcnn::trt::kApi + "\", \"plugin_version\": \"" +
      mrcnn::kPluginVersion + "\", \"serial_format_version\": " + std::to_string(mrcnn::host::kSerialFormatVersion) +
      ", \"cuda_archs\": \"" + MRCNN_TRT_CUDA_ARCHS + "\", \"ops\": " + mrcnn::trt::op_names_json() + "}";
  return info.c_str();
}

MRCNN_EXPORT void mrcnn_trt_plugins_capture_errors(int on) {
  mrcnn::trt::ErrorLog& log = mrcnn::trt::error_log();
  std::lock_guard<std::mutex> lock(log.mutex);
  log.capture = on != 0;
}

MRCNN_EXPORT const char* mrcnn_trt_plugins_errors(void) {
  static std::string copy;  // stable until the next call
  mrcnn::trt::ErrorLog& log = mrcnn::trt::error_log();
  std::lock_guard<std::mutex> lock(log.mutex);
  copy = log.text;
  return copy.c_str();
}

MRCNN_EXPORT void mrcnn_trt_plugins_clear_errors(void) {
  mrcnn::trt::ErrorLog& log = mrcnn::trt::error_log();
  std::lock_guard<std::mutex> lock(log.mutex);
  log.text.clear();
}
