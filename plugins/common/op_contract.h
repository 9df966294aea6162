// GENERATED from plugins/opdefs.py (the op contract) by
//   python plugins/opdefs.py --write-cpp
// Do not edit: change opdefs.py and regenerate; tests/test_op_contract.py fails
// when the two disagree. Consumers: common/op_params.h (params structs, attribute
// tables, set_attr/get_attr) and host/plugin_host.cpp (tensor specs, shape rules).
#pragma once

#define MRCNN_CONTRACT_DOMAIN "mrcnn"
#define MRCNN_CONTRACT_OP_VERSION 1
#define MRCNN_CONTRACT_PLUGIN_VERSION "1"
#define MRCNN_CONTRACT_PLUGIN_NAMESPACE ""

// X(Op, torch_name) for every op.
#define MRCNN_CONTRACT_OPS(X) X(PyramidROIAlign, pyramid_roi_align) X(ProposalLayer, proposal_layer) X(DetectionLayer, detection_layer)

// Attributes, in table order:
//   X(name, AttrType, length, has_range, min, max, doc, default values...)
// Tensors (inputs, outputs, kernel-only extra outputs):
//   T(name, Role, rank, dims...) with dims MRCNN_DIM_CONST(value), MRCNN_DIM_ATTR(attribute),
//   MRCNN_DIM_SYM(index, symbol); symbols are bound by the inputs:
//   S(symbol, minimum size)

// PyramidROIAlign: Crop every normalized box from its FPN level (TF crop_and_resize, bilinear).
#define MRCNN_PyramidROIAlign_ATTRS(X) \
  X(pooled_size, kInt, 1, true, 2, 64, "output crop size P (7 box head, 14 mask head)", 7) \
  X(image_size, kInt, 1, true, 64, 8192, "side of the padded square network input in pixels", 1024) \
  X(canonical_size, kFloat, 1, true, 1.0, 8192.0, "ROI side (pixels) that maps to canonical_level", 224.0) \
  X(canonical_level, kInt, 1, true, 2, 5, "FPN level k0 of a canonical_size ROI", 4)
#define MRCNN_PyramidROIAlign_SYMBOLS(S) \
  S(N, 0) \
  S(R, 0) \
  S(C, 0) \
  S(H2, 1) \
  S(W2, 1) \
  S(H3, 1) \
  S(W3, 1) \
  S(H4, 1) \
  S(W4, 1) \
  S(H5, 1) \
  S(W5, 1)
#define MRCNN_PyramidROIAlign_INPUTS(T) \
  T(boxes, kF32, 3, MRCNN_DIM_SYM(0, N), MRCNN_DIM_SYM(1, R), MRCNN_DIM_CONST(4)) \
  T(P2, kData, 4, MRCNN_DIM_SYM(0, N), MRCNN_DIM_SYM(2, C), MRCNN_DIM_SYM(3, H2), MRCNN_DIM_SYM(4, W2)) \
  T(P3, kData, 4, MRCNN_DIM_SYM(0, N), MRCNN_DIM_SYM(2, C), MRCNN_DIM_SYM(5, H3), MRCNN_DIM_SYM(6, W3)) \
  T(P4, kData, 4, MRCNN_DIM_SYM(0, N), MRCNN_DIM_SYM(2, C), MRCNN_DIM_SYM(7, H4), MRCNN_DIM_SYM(8, W4)) \
  T(P5, kData, 4, MRCNN_DIM_SYM(0, N), MRCNN_DIM_SYM(2, C), MRCNN_DIM_SYM(9, H5), MRCNN_DIM_SYM(10, W5))
#define MRCNN_PyramidROIAlign_OUTPUTS(T) \
  T(crops, kData, 5, MRCNN_DIM_SYM(0, N), MRCNN_DIM_SYM(1, R), MRCNN_DIM_SYM(2, C), MRCNN_DIM_ATTR(pooled_size), MRCNN_DIM_ATTR(pooled_size))
#define MRCNN_PyramidROIAlign_EXTRA_OUTPUTS(T)

// ProposalLayer: RPN proposals: sort, decode, clip, NMS; zero-padded.
#define MRCNN_ProposalLayer_ATTRS(X) \
  X(pre_nms_topk, kInt, 1, true, 1, 1048576, "boxes kept by score before NMS (min with A)", 6000) \
  X(post_nms_topk, kInt, 1, true, 1, 65536, "proposals kept after NMS (output rows)", 1000) \
  X(nms_threshold, kFloat, 1, true, 0.0, 1.0, "IoU above which a box is suppressed", 0.7) \
  X(rpn_bbox_std_dev, kFloats, 4, false, 0, 0, "delta scale (dy, dx, dh, dw)", 0.1, 0.1, 0.2, 0.2) \
  X(image_size, kInt, 1, true, 64, 8192, "clip range and normalizer (pixels)", 1024)
#define MRCNN_ProposalLayer_SYMBOLS(S) \
  S(N, 0) \
  S(A, 0)
#define MRCNN_ProposalLayer_INPUTS(T) \
  T(scores, kData, 2, MRCNN_DIM_SYM(0, N), MRCNN_DIM_SYM(1, A)) \
  T(deltas, kData, 3, MRCNN_DIM_SYM(0, N), MRCNN_DIM_SYM(1, A), MRCNN_DIM_CONST(4)) \
  T(anchors, kF32, 2, MRCNN_DIM_SYM(1, A), MRCNN_DIM_CONST(4))
#define MRCNN_ProposalLayer_OUTPUTS(T) \
  T(rois, kF32, 3, MRCNN_DIM_SYM(0, N), MRCNN_DIM_ATTR(post_nms_topk), MRCNN_DIM_CONST(4)) \
  T(count, kI32, 1, MRCNN_DIM_SYM(0, N))
#define MRCNN_ProposalLayer_EXTRA_OUTPUTS(T) \
  T(anchor_index, kI32, 2, MRCNN_DIM_SYM(0, N), MRCNN_DIM_ATTR(post_nms_topk))

// DetectionLayer: Refine, filter and per-class NMS the classifier output.
#define MRCNN_DetectionLayer_ATTRS(X) \
  X(num_classes, kInt, 1, true, 2, 4096, "classes including background (K)", 81) \
  X(min_confidence, kFloat, 1, true, 0.0, 1.0, "minimum score; 0 turns the filter off", 0.7) \
  X(nms_threshold, kFloat, 1, true, 0.0, 1.0, "per-class NMS IoU threshold", 0.3) \
  X(max_instances, kInt, 1, true, 1, 65536, "detections kept (output rows)", 100) \
  X(bbox_std_dev, kFloats, 4, false, 0, 0, "delta scale (dy, dx, dh, dw)", 0.1, 0.1, 0.2, 0.2) \
  X(image_size, kInt, 1, true, 64, 8192, "normalized -> pixel factor", 1024)
#define MRCNN_DetectionLayer_SYMBOLS(S) \
  S(N, 0) \
  S(R, 0)
#define MRCNN_DetectionLayer_INPUTS(T) \
  T(rois, kF32, 3, MRCNN_DIM_SYM(0, N), MRCNN_DIM_SYM(1, R), MRCNN_DIM_CONST(4)) \
  T(roi_count, kI32, 1, MRCNN_DIM_SYM(0, N)) \
  T(probs, kData, 3, MRCNN_DIM_SYM(0, N), MRCNN_DIM_SYM(1, R), MRCNN_DIM_ATTR(num_classes)) \
  T(deltas, kData, 4, MRCNN_DIM_SYM(0, N), MRCNN_DIM_SYM(1, R), MRCNN_DIM_ATTR(num_classes), MRCNN_DIM_CONST(4)) \
  T(window, kF32, 2, MRCNN_DIM_SYM(0, N), MRCNN_DIM_CONST(4))
#define MRCNN_DetectionLayer_OUTPUTS(T) \
  T(detections, kF32, 3, MRCNN_DIM_SYM(0, N), MRCNN_DIM_ATTR(max_instances), MRCNN_DIM_CONST(6)) \
  T(count, kI32, 1, MRCNN_DIM_SYM(0, N))
#define MRCNN_DetectionLayer_EXTRA_OUTPUTS(T)
