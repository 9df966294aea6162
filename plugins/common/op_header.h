// What every op header (plugins/<folder>/<folder>.h) builds on: the params
// machinery and OpTraits (op_params.h), the CPU parallel hook, and the CUDA
// runtime types when compiling with nvcc or with MRCNN_WITH_CUDA defined (the
// CUDA launchers and OpTraits::cuda/cuda_workspace are declared only then), so
// an op header is includable without CUDA.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <string>

#include "cpu_parallel.h"
#include "op_params.h"

#if defined(MRCNN_WITH_CUDA) || defined(__CUDACC__)
#include <cuda_runtime_api.h>
#define MRCNN_OP_WITH_CUDA 1
#else
#define MRCNN_OP_WITH_CUDA 0
#endif
