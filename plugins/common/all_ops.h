// Every op of the contract, for the layers that serve them all (ONNX Runtime
// ops, pybind11 module, C-ABI library, TensorRT plugins, plugin host): each
// op's header (its params struct and OpTraits, plugins/<folder>/<folder>.h)
// and generic iteration over MRCNN_CONTRACT_OPS, so that those layers name no
// op. A new op adds its contract entry (plugins/opdefs.py, which regenerates the
// include list op_headers.h) and its folder; a missing header fails to compile
// below, naming the op.
#pragma once

#include <string.h>

#include <string>

#include "op_headers.h"
#include "op_params.h"

namespace mrcnn {

#define MRCNN_OP_HAS_TRAITS(Op, torch_name) \
  static_assert(sizeof(OpTraits<Op##Params>) > 0, #Op ": include plugins/" #torch_name "/" #torch_name ".h above");
MRCNN_CONTRACT_OPS(MRCNN_OP_HAS_TRAITS)
#undef MRCNN_OP_HAS_TRAITS

// fn(XParams{}) for every op, in contract order.
template <typename Fn>
inline void for_each_op(Fn&& fn) {
#define MRCNN_CALL_OP(Op, torch_name) fn(Op##Params{});
  MRCNN_CONTRACT_OPS(MRCNN_CALL_OP)
#undef MRCNN_CALL_OP
}

// fn(XParams{}) for the op named `name` (contract name); false when no op has it.
template <typename Fn>
inline bool with_op(const char* name, Fn&& fn) {
  bool found = false;
  for_each_op([&](auto tag) {
    if (!found && name != nullptr && strcmp(name, op_name(tag)) == 0) {
      found = true;
      fn(tag);
    }
  });
  return found;
}

// "PyramidROIAlign, ProposalLayer, DetectionLayer": the op names for messages.
inline std::string op_names(const char* sep = ", ") {
  std::string s;
  for_each_op([&](auto tag) { s += (s.empty() ? "" : sep) + std::string(op_name(tag)); });
  return s;
}

}  // namespace mrcnn
