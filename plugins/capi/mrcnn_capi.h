/* C ABI of the CUDA kernels (libmrcnn_cuda_ops.so), for the PyTorch operators
 * (plugins/torch_ops.py calls it through ctypes with tensor pointers and the
 * current CUDA stream). Plain C types only: the library does not depend on
 * PyTorch's C++ ABI, so one build serves every PyTorch version.
 *
 * Every op is named by its contract name ("PyramidROIAlign", "ProposalLayer",
 * "DetectionLayer"; plugins/opdefs.py). Its attributes are passed as the
 * values of the contract's attribute table in table order, flattened (an int
 * or float attribute is one value, a floats attribute `length` values), its
 * inputs as ranks + concatenated dims; the host layer (plugins/host) checks
 * both exactly as for the ONNX Runtime ops and the TensorRT plugins.
 *
 * Functions return 0 on success; otherwise a non-zero code (a cudaError_t
 * value for CUDA failures, -1 for invalid arguments, -2 for a failed debug
 * check of a build with MRCNN_CAPI_CHECKS: plugins/capi/capi_checks.h) and
 * mrcnn_capi_last_error() returns one line saying what went wrong (per
 * thread, valid until the next call on that thread).
 */
#ifndef MRCNN_CAPI_H_
#define MRCNN_CAPI_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MRCNN_CAPI_VERSION 1
#define MRCNN_CAPI_EXPORT __attribute__((visibility("default")))

/* The ABI version (MRCNN_CAPI_VERSION of the build). */
MRCNN_CAPI_EXPORT int mrcnn_capi_version(void);

/* Message of the last failing call on this thread ("" if none). */
MRCNN_CAPI_EXPORT const char* mrcnn_capi_last_error(void);

/* Build facts as JSON: {"capi_version", "cuda_runtime_version" (of the build),
 * "archs" ("sass:75,86 ptx:86"), "debug_checks" (built with MRCNN_CAPI_CHECKS),
 * "contract" (host::contract_json)}. */
MRCNN_CAPI_EXPORT const char* mrcnn_capi_info(void);

/* Output shapes for these attributes and input shapes: writes the rank of
 * each output (node outputs then kernel-only outputs) to out_ranks and the
 * dims, concatenated, to out_dims (room for max_outputs * 5 values). */
MRCNN_CAPI_EXPORT int mrcnn_output_shapes(const char* op, const double* attrs, int n_attr_values, int n_inputs,
                                          const int* ranks, const int64_t* dims, int max_outputs, int* n_outputs,
                                          int* out_ranks, int64_t* out_dims);

/* Workspace bytes the CUDA launcher needs for these attributes and inputs. */
MRCNN_CAPI_EXPORT int mrcnn_cuda_workspace_size(const char* op, const double* attrs, int n_attr_values, int n_inputs,
                                                const int* ranks, const int64_t* dims, size_t* bytes);

/* Runs the op's CUDA launcher on `stream` (a cudaStream_t; NULL = the legacy
 * default stream) of device `device` (>= 0: made current first).
 *   dtype     0 = float32, 1 = float16 (the data tensors; geometry float32, counts int32)
 *   inputs    n_inputs device pointers, contiguous, in contract order
 *   outputs   n_outputs device pointers: the node outputs, then optionally the
 *             kernel-only outputs (NULL: not computed)
 *   workspace device memory of at least mrcnn_cuda_workspace_size bytes (may be
 *             NULL when that is 0)
 * Returns after the launches (asynchronous); launch errors are reported, later
 * device faults surface at the next synchronization. A debug build
 * (MRCNN_CAPI_CHECKS) synchronizes the stream and checks bounds first. */
MRCNN_CAPI_EXPORT int mrcnn_cuda_run(const char* op, const double* attrs, int n_attr_values, int n_inputs,
                                     const int* ranks, const int64_t* dims, int dtype, const void* const* inputs,
                                     int n_outputs, void* const* outputs, void* workspace, size_t workspace_bytes,
                                     int device, void* stream);

#ifdef __cplusplus
}
#endif

#endif /* MRCNN_CAPI_H_ */
