// A minimal CpuParallel implementation on std::thread (used by the Python
// module; ONNX Runtime supplies its own pool). Threads are started per call:
// the kernels are coarse (boxes / images), so the ~50 us start cost is small.
#pragma once

#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

#include "cpu_parallel.h"

namespace mrcnn {

class StdThreadParallel {
 public:
  explicit StdThreadParallel(int threads) : threads_(std::max(1, threads)) {
    par_.ctx = this;
    par_.run = &StdThreadParallel::run;
  }
  const CpuParallel* get() const { return threads_ > 1 ? &par_ : nullptr; }

 private:
  static void run(void* ctx, int64_t n, void (*fn)(void*, int64_t), void* arg) {
    const auto* self = static_cast<const StdThreadParallel*>(ctx);
    const int64_t t = std::min<int64_t>(self->threads_, n);
    std::atomic<int64_t> next{0};
    auto worker = [&]() {
      for (int64_t i = next.fetch_add(1); i < n; i = next.fetch_add(1)) fn(arg, i);
    };
    std::vector<std::thread> pool;
    pool.reserve((size_t)(t - 1));
    for (int64_t k = 1; k < t; ++k) pool.emplace_back(worker);
    worker();
    for (auto& th : pool) th.join();
  }
  int threads_;
  CpuParallel par_;
};

}  // namespace mrcnn
