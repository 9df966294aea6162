// ProposalLayer: RPN scores + deltas + anchors -> NMS'd proposals.
// Semantics: plugins/opdefs.py; reference: model/ops.py proposal_layer.
//
// Tensors (all contiguous, row-major):
//   scores        [N, A] in `dtype` (foreground probability)
//   deltas        [N, A, 4] in `dtype` (raw, not yet multiplied by the std devs)
//   anchors       [A, 4] float32 pixels (y1, x1, y2, x2)
//   rois (out)    [N, post_nms_topk, 4] float32 normalized; rows >= count are 0
//   count (out)   [N] int32
//   anchor_index  (out, optional: may be nullptr) [N, post_nms_topk] int32:
//                 the anchor of each proposal, -1 in padded rows
// Steps per image: stable descending sort of the scores (ties: lower index
// first; NaN as -inf), keep k = min(pre_nms_topk, A); deltas * std; decode
// on the anchors (pixels); clip to [0, image_size]; greedy NMS with +1 areas
// (suppress when IoU > nms_threshold) stopping after post_nms_topk kept;
// divide by image_size.
//
// Include without CUDA: the CUDA launcher is declared only when compiling
// with nvcc or with MRCNN_WITH_CUDA defined.
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
size_t proposal_layer_cpu_workspace(const ProposalLayerParams& p);

// `p` must be valid. `workspace`: proposal_layer_cpu_workspace(p) bytes
// (16-byte aligned) or nullptr (allocated internally). `par`: optional thread
// pool (parallel over images).
void proposal_layer_cpu(const ProposalLayerParams& p, DType dtype, const void* scores, const void* deltas,
                        const float* anchors, float* rois, int32_t* count, int32_t* anchor_index,
                        void* workspace, const CpuParallel* par = nullptr);

// Greedy NMS (model/ops.py nms) on K boxes [K, 4] float32 with float32
// scores: writes the kept indices (descending score, ties by lower index,
// NaN as -inf) to keep[0..n) and returns n <= min(K, max_keep)
// (max_keep < 0: no limit). workspace: nms_cpu_workspace(K) bytes or nullptr.
size_t nms_cpu_workspace(int K);
int nms_cpu(const float* boxes, const float* scores, int K, float threshold, int max_keep, int32_t* keep,
            void* workspace);

// --------------------------------------------------------------- CUDA
#if defined(MRCNN_WITH_CUDA) || defined(__CUDACC__)
// Device pointers; same layouts and semantics as the CPU function
// (anchor_index may be nullptr).
size_t proposal_layer_cuda_workspace(const ProposalLayerParams& p);
cudaError_t proposal_layer_cuda(const ProposalLayerParams& p, DType dtype, const void* scores, const void* deltas,
                                const float* anchors, float* rois, int32_t* count, int32_t* anchor_index,
                                void* workspace, cudaStream_t stream);
#endif

}  // namespace mrcnn
