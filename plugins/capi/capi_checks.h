// Debug checks of libmrcnn_cuda_ops.so (CMake -DMRCNN_CAPI_CHECKS=ON; tools/sim_check.sh
// builds the library so): host-side argument and bounds checks around every
// mrcnn_cuda_run, for the faults that neither the launchers' own checks nor a
// functional simulator (GPGPU-Sim: no memory checker, no race detector) would report.
//
//   before the launch  every tensor pointer is aligned to its element size; no output
//                      and no workspace byte range overlaps another tensor;
//   the launch         writes into staged copies of the outputs and of the workspace:
//                      each with a guard band of kGuard bytes on both sides, filled with
//                      kGuardByte; the staged outputs start as 0xFF bytes (NaN, -1), so an
//                      element the kernels forget to write shows up in any comparison;
//                      the inputs are copied to the host first;
//   after the launch   (synchronous: the stream is synchronized) every guard band is
//                      intact (else: the kernels wrote out of bounds; which tensor, which
//                      side, how many bytes), the inputs are unchanged (the kernels must
//                      not write them); then the staged outputs go to the caller's.
//
// A failed check throws CheckError (mrcnn_cuda_run returns kCheckFailed, -2, with the
// message). Release builds compile none of this. Host code; CUDA runtime API only.
#pragma once

#include <cuda_runtime_api.h>
#include <stdint.h>
#include <string.h>

#include <string>
#include <vector>

namespace mrcnn {
namespace capi_checks {

constexpr int kCheckFailed = -2;
constexpr size_t kGuard = 1024;             // bytes on each side of a staged buffer
constexpr unsigned char kGuardByte = 0xA7;  // no float, half or int the kernels produce is all 0xA7 bytes

struct CheckError {
  std::string msg;
};

class Launch {
 public:
  explicit Launch(std::string op) : op_(std::move(op)) {}
  Launch(const Launch&) = delete;
  Launch& operator=(const Launch&) = delete;
  ~Launch() {
    for (Staged& s : staged_)
      if (s.base != nullptr) cudaFree(s.base);
  }

  // Register the tensors (device pointers; bytes may be 0 for an empty tensor).
  void input(const std::string& name, const void* p, size_t bytes, size_t elem) {
    spans_.push_back({"input", name, (uintptr_t)p, bytes, elem, false});
  }
  void output(const std::string& name, void* p, size_t bytes, size_t elem) {
    spans_.push_back({"output", name, (uintptr_t)p, bytes, elem, true});
  }
  void workspace(void* p, size_t bytes) { spans_.push_back({"workspace", "", (uintptr_t)p, bytes, 1, true}); }

  // Checks alignment and overlaps, stages the written tensors, snapshots the inputs.
  // Afterwards staged(p) maps a registered output/workspace pointer to the pointer the
  // kernels get.
  void before() {
    for (const Span& s : spans_) {
      if (s.bytes == 0) continue;
      if (s.ptr == 0) fail(s, "is null");
      if (s.ptr % s.elem != 0) fail(s, "is not aligned to its " + std::to_string(s.elem) + "-byte elements");
    }
    for (size_t a = 0; a < spans_.size(); ++a)
      for (size_t b = a + 1; b < spans_.size(); ++b) {
        const Span &x = spans_[a], &y = spans_[b];
        if (x.bytes == 0 || y.bytes == 0 || (!x.written && !y.written)) continue;
        if (x.ptr < y.ptr + y.bytes && y.ptr < x.ptr + x.bytes)
          fail(x, "overlaps " + label(y) + " (" + std::to_string(x.bytes) + " and " + std::to_string(y.bytes) +
                      " bytes " + std::to_string((long long)(y.ptr - x.ptr)) + " apart)");
      }
    for (const Span& s : spans_) {
      if (s.bytes == 0) continue;
      if (!s.written) {
        snapshots_.emplace_back(s.bytes);
        cuda(cudaMemcpy(snapshots_.back().data(), (const void*)s.ptr, s.bytes, cudaMemcpyDeviceToHost),
             "copying " + label(s) + " to the host");
        continue;
      }
      Staged st;
      st.span = &s;
      cuda(cudaMalloc((void**)&st.base, s.bytes + 2 * kGuard), "allocating the staged " + label(s));
      staged_.push_back(st);
      cuda(cudaMemset(st.base, kGuardByte, kGuard), "filling a guard band");
      cuda(cudaMemset(st.base + kGuard, 0xFF, s.bytes), "filling the staged " + label(s));
      cuda(cudaMemset(st.base + kGuard + s.bytes, kGuardByte, kGuard), "filling a guard band");
    }
  }

  void* staged(void* p) const {
    for (const Staged& s : staged_)
      if (s.span->ptr == (uintptr_t)p) return s.base + kGuard;
    return p;
  }

  // After a successful launch: guard bands, inputs, then the results to the caller.
  void after(cudaStream_t stream) {
    cuda(cudaStreamSynchronize(stream), "synchronizing the stream");
    cuda(cudaGetLastError(), "the kernels");
    std::vector<unsigned char> band(kGuard);
    for (const Staged& s : staged_) {
      for (int side = 0; side < 2; ++side) {
        const unsigned char* src = side == 0 ? s.base : s.base + kGuard + s.span->bytes;
        cuda(cudaMemcpy(band.data(), src, kGuard, cudaMemcpyDeviceToHost), "reading a guard band");
        size_t bad = 0, first = kGuard, last = 0;
        for (size_t i = 0; i < kGuard; ++i)
          if (band[i] != kGuardByte) {
            ++bad;
            first = i < first ? i : first;
            last = i;
          }
        if (bad == 0) continue;
        // Distance from the tensor: bytes before its start / past its end.
        const size_t near = side == 0 ? kGuard - last : first + 1;
        const size_t far = side == 0 ? kGuard - first : last + 1;
        fail(*s.span, "was written out of bounds: " + std::to_string(bad) + " bytes " +
                          (side == 0 ? "before its start" : "past its end") + " (from " + std::to_string(near) +
                          " to " + std::to_string(far) + " bytes " + (side == 0 ? "before" : "past") + ")");
      }
    }
    size_t k = 0;
    std::vector<unsigned char> now;
    for (const Span& s : spans_) {
      if (s.written || s.bytes == 0) continue;
      now.resize(s.bytes);
      cuda(cudaMemcpy(now.data(), (const void*)s.ptr, s.bytes, cudaMemcpyDeviceToHost), "reading " + label(s));
      if (memcmp(now.data(), snapshots_[k++].data(), s.bytes) != 0) fail(s, "was modified by the kernels");
    }
    for (const Staged& s : staged_)
      cuda(cudaMemcpy((void*)s.span->ptr, s.base + kGuard, s.span->bytes, cudaMemcpyDeviceToDevice),
           "copying the staged " + label(*s.span));
  }

 private:
  struct Span {
    const char* kind;
    std::string name;
    uintptr_t ptr;
    size_t bytes, elem;
    bool written;
  };
  struct Staged {
    const Span* span = nullptr;
    unsigned char* base = nullptr;
  };

  static std::string label(const Span& s) { return s.name.empty() ? s.kind : std::string(s.kind) + " " + s.name; }
  [[noreturn]] void fail(const Span& s, const std::string& what) const {
    throw CheckError{op_ + ": debug check: " + label(s) + " " + what};
  }
  void cuda(cudaError_t e, const std::string& what) const {
    if (e != cudaSuccess)
      throw CheckError{op_ + ": debug check: " + what + ": " + cudaGetErrorName(e) + ": " + cudaGetErrorString(e)};
  }

  std::string op_;
  std::vector<Span> spans_;  // not resized after before(): Staged points into it
  std::vector<Staged> staged_;
  std::vector<std::vector<unsigned char>> snapshots_;
};

}  // namespace capi_checks
}  // namespace mrcnn
