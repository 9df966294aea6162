// DetectionLayer: refine, filter and per-class NMS the classifier output.
// Semantics: plugins/opdefs.py; reference: model/ops.py detection_layer.
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

#include <stddef.h>
#include <stdint.h>

#include "../common/cpu_parallel.h"
#include "../common/op_params.h"

#if defined(MRCNN_WITH_CUDA) || defined(__CUDACC__)
#include <cuda_runtime_api.h>
#endif

namespace mrcnn {

// ---------------------------------------------------------------- CPU
size_t detection_layer_cpu_workspace(const DetectionLayerParams& p);

// `p` must be valid. `workspace`: detection_layer_cpu_workspace(p) bytes
// (16-byte aligned) or nullptr (allocated internally). `par`: optional thread
// pool (parallel over images).
void detection_layer_cpu(const DetectionLayerParams& p, DType dtype, const float* rois, const int32_t* roi_count,
                         const void* probs, const void* deltas, const float* window, float* detections,
                         int32_t* count, void* workspace, const CpuParallel* par = nullptr);

// --------------------------------------------------------------- CUDA
#if defined(MRCNN_WITH_CUDA) || defined(__CUDACC__)
size_t detection_layer_cuda_workspace(const DetectionLayerParams& p);
cudaError_t detection_layer_cuda(const DetectionLayerParams& p, DType dtype, const float* rois,
                                 const int32_t* roi_count, const void* probs, const void* deltas,
                                 const float* window, float* detections, int32_t* count, void* workspace,
                                 cudaStream_t stream);
#endif

}  // namespace mrcnn
