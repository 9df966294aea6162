// Parallel-for hook for the CPU kernels: the caller supplies the thread pool
// (ONNX Runtime's intra-op pool, a std::thread pool in the Python module, or
// nothing = serial). Kept as a plain C function pointer so that no library's
// thread pool type leaks into the kernel headers.
#pragma once

#include <stdint.h>

#include <type_traits>

namespace mrcnn {

struct CpuParallel {
  // run(ctx, n, fn, arg) must call fn(arg, i) once for every i in [0, n),
  // possibly concurrently, and return when all calls have finished.
  void (*run)(void* ctx, int64_t n, void (*fn)(void* arg, int64_t i), void* arg) = nullptr;
  void* ctx = nullptr;
};

// Calls f(i) for i in [0, n) through `par` (serially when par or par->run is null).
template <typename F>
inline void parallel_for(const CpuParallel* par, int64_t n, F&& f) {
  if (n <= 0) return;
  if (par == nullptr || par->run == nullptr || n == 1) {
    for (int64_t i = 0; i < n; ++i) f(i);
    return;
  }
  using Fn = typename std::remove_reference<F>::type;
  par->run(par->ctx, n, [](void* arg, int64_t i) { (*static_cast<Fn*>(arg))(i); }, const_cast<void*>(static_cast<const void*>(&f)));
}

}  // namespace mrcnn
