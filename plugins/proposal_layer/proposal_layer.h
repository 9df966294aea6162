// ProposalLayer: RPN scores + deltas + anchors -> NMS'd proposals.
// Semantics: plugins/opdefs.py; reference: plugins/proposal_layer/reference.py.
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

#include "../common/op_header.h"

namespace mrcnn {

// ------------------------------------------------------------- params
// Attributes (contract) + runtime sizes (from the input shapes).
struct ProposalLayerParams {
  MRCNN_OP_ATTR_MEMBERS(ProposalLayer)
  MRCNN_OP_SIZE_MEMBERS(ProposalLayer)
};
MRCNN_OP_ATTR_ACCESS(ProposalLayer)

// Runtime sizes (call after the attributes validate): "" when valid.
inline std::string validate_sizes(const ProposalLayerParams& p) {
  if (p.N < 0 || p.A < 0) return "ProposalLayer: negative size";
  return std::string();
}

// ---------------------------------------------------------------- CPU
size_t proposal_layer_cpu_workspace(const ProposalLayerParams& p);

// `p` must be valid. `workspace`: proposal_layer_cpu_workspace(p) bytes
// (16-byte aligned) or nullptr (allocated internally). `par`: optional thread
// pool (parallel over images).
void proposal_layer_cpu(const ProposalLayerParams& p, DType dtype, const void* scores, const void* deltas,
                        const float* anchors, float* rois, int32_t* count, int32_t* anchor_index,
                        void* workspace, const CpuParallel* par = nullptr);

// Greedy NMS (plugins/reference.py nms) on K boxes [K, 4] float32 with float32
// scores: writes the kept indices (descending score, ties by lower index,
// NaN as -inf) to keep[0..n) and returns n <= min(K, max_keep)
// (max_keep < 0: no limit). workspace: nms_cpu_workspace(K) bytes or nullptr.
size_t nms_cpu_workspace(int K);
int nms_cpu(const float* boxes, const float* scores, int K, float threshold, int max_keep, int32_t* keep,
            void* workspace);

// --------------------------------------------------------------- CUDA
#if MRCNN_OP_WITH_CUDA
// Device pointers; same layouts and semantics as the CPU function
// (anchor_index may be nullptr).
size_t proposal_layer_cuda_workspace(const ProposalLayerParams& p);
cudaError_t proposal_layer_cuda(const ProposalLayerParams& p, DType dtype, const void* scores, const void* deltas,
                                const float* anchors, float* rois, int32_t* count, int32_t* anchor_index,
                                void* workspace, cudaStream_t stream);
#endif


// ---------------------------------------------------------- op traits
// The uniform per-op interface (common/op_params.h OpTraits).
template <>
struct OpTraits<ProposalLayerParams> {
  using Params = ProposalLayerParams;
  MRCNN_OP_SET_SIZES(ProposalLayer)
  // inputs: scores, deltas, anchors; outputs: rois, count, anchor_index (may be nullptr).
  static size_t cpu_workspace(const Params& p) { return proposal_layer_cpu_workspace(p); }
  static void cpu(const Params& p, DType dt, const void* const* in, void* const* out, void* ws,
                  const CpuParallel* par) {
    proposal_layer_cpu(p, dt, in[0], in[1], static_cast<const float*>(in[2]), static_cast<float*>(out[0]),
                       static_cast<int32_t*>(out[1]), static_cast<int32_t*>(out[2]), ws, par);
  }
#if MRCNN_OP_WITH_CUDA
  static size_t cuda_workspace(const Params& p) { return proposal_layer_cuda_workspace(p); }
  static cudaError_t cuda(const Params& p, DType dt, const void* const* in, void* const* out, void* ws,
                          cudaStream_t stream) {
    return proposal_layer_cuda(p, dt, in[0], in[1], static_cast<const float*>(in[2]), static_cast<float*>(out[0]),
                               static_cast<int32_t*>(out[1]), static_cast<int32_t*>(out[2]), ws, stream);
  }
#endif
};

}  // namespace mrcnn
