// DetectionLayer: refine, filter and per-class NMS the classifier output.
// Semantics: plugins/opdefs.py; reference: plugins/detection_layer/reference.py.
//
// Tensors (all contiguous, row-major; K = num_classes):
//   rois       [N, R, 4] float32 normalized proposals
//   roi_count  [N] int32; rows >= roi_count[i] are ignored (clamped to [0, R])
//   probs      [N, R, K] in `dtype`
//   deltas     [N, R, K, 4] in `dtype` (raw, not yet multiplied by the std devs)
//   window     [N, 4] float32 pixels (y1, x1, y2, x2) of the image in the padded input
//   detections (out) [N, max_instances, 6] float32 (y1, x1, y2, x2, class, score),
//              rows >= count are 0
//   count (out) [N] int32
// Steps per image: class = argmax(probs) (first max; NaN wins as in torch),
// score = probs[class]; deltas of that class * std; decode on the normalized
// roi; * image_size; clip to window; round half to even; keep class > 0 and
// (score >= min_confidence if min_confidence > 0); per class ascending:
// stable descending sort by score, NMS(nms_threshold, +1 areas, IoU >
// threshold suppresses); union; top max_instances by score (stable, ties by
// lower ROI index).
#pragma once

#include "../common/op_header.h"

namespace mrcnn {

// ------------------------------------------------------------- params
// Attributes (contract) + runtime sizes (from the input shapes; K = num_classes).
struct DetectionLayerParams {
  MRCNN_OP_ATTR_MEMBERS(DetectionLayer)
  MRCNN_OP_SIZE_MEMBERS(DetectionLayer)
};
MRCNN_OP_ATTR_ACCESS(DetectionLayer)

// Runtime sizes (call after the attributes validate): "" when valid.
inline std::string validate_sizes(const DetectionLayerParams& p) {
  if (p.N < 0 || p.R < 0) return "DetectionLayer: negative size";
  return std::string();
}

// ---------------------------------------------------------------- CPU
size_t detection_layer_cpu_workspace(const DetectionLayerParams& p);

// `p` must be valid. `workspace`: detection_layer_cpu_workspace(p) bytes
// (16-byte aligned) or nullptr (allocated internally). `par`: optional thread
// pool (parallel over images).
void detection_layer_cpu(const DetectionLayerParams& p, DType dtype, const float* rois, const int32_t* roi_count,
                         const void* probs, const void* deltas, const float* window, float* detections,
                         int32_t* count, void* workspace, const CpuParallel* par = nullptr);

// --------------------------------------------------------------- CUDA
#if MRCNN_OP_WITH_CUDA
size_t detection_layer_cuda_workspace(const DetectionLayerParams& p);
cudaError_t detection_layer_cuda(const DetectionLayerParams& p, DType dtype, const float* rois,
                                 const int32_t* roi_count, const void* probs, const void* deltas,
                                 const float* window, float* detections, int32_t* count, void* workspace,
                                 cudaStream_t stream);
#endif


// ---------------------------------------------------------- op traits
// The uniform per-op interface (common/op_params.h OpTraits).
template <>
struct OpTraits<DetectionLayerParams> {
  using Params = DetectionLayerParams;
  MRCNN_OP_SET_SIZES(DetectionLayer)
  // inputs: rois, roi_count, probs, deltas, window; outputs: detections, count.
  static size_t cpu_workspace(const Params& p) { return detection_layer_cpu_workspace(p); }
  static void cpu(const Params& p, DType dt, const void* const* in, void* const* out, void* ws,
                  const CpuParallel* par) {
    detection_layer_cpu(p, dt, static_cast<const float*>(in[0]), static_cast<const int32_t*>(in[1]), in[2], in[3],
                        static_cast<const float*>(in[4]), static_cast<float*>(out[0]), static_cast<int32_t*>(out[1]),
                        ws, par);
  }
#if MRCNN_OP_WITH_CUDA
  static size_t cuda_workspace(const Params& p) { return detection_layer_cuda_workspace(p); }
  static cudaError_t cuda(const Params& p, DType dt, const void* const* in, void* const* out, void* ws,
                          cudaStream_t stream) {
    return detection_layer_cuda(p, dt, static_cast<const float*>(in[0]), static_cast<const int32_t*>(in[1]), in[2],
                                in[3], static_cast<const float*>(in[4]), static_cast<float*>(out[0]),
                                static_cast<int32_t*>(out[1]), ws, stream);
  }
#endif
};

}  // namespace mrcnn
