// Shared by the CUDA sources: error checking (every runtime call and every launch goes
// through TFE_CUDA_CHECK / TFE_CUDA_CHECK_LAUNCH so a failure names the op), the engine
// stream, stream-ordered scratch memory and launch-shape helpers.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <string>

#include "core/tensor.h"

#define TFE_CUDA_CHECK(call, what)                                                      \
  do {                                                                                 \
    cudaError_t tfe_err_ = (call);                                                     \
    if (tfe_err_ != cudaSuccess)                                                       \
      throw ::tfe::Error(std::string("[") + (what) + "] CUDA error: " +                \
                         cudaGetErrorString(tfe_err_));                                \
  } while (0)

// After a kernel launch: catches bad launch configurations at once (asynchronous faults
// surface at the next synchronising call, which is checked too).
#define TFE_CUDA_CHECK_LAUNCH(what) TFE_CUDA_CHECK(cudaGetLastError(), what)

namespace tfe::cuda {

// The engine's stream on the current device: every kernel, copy, allocation and free of
// the engine is ordered on it (one stream per device; created on first use, non-blocking
// with respect to the legacy default stream).
cudaStream_t stream();

// Temporary device memory for one kernel call (per-block partial sums and the like), from
// the caching pool, ordered on stream(): released when the wrapper returns, reusable by
// the next kernel at once, and capturable in a CUDA graph.
class Scratch {
 public:
  Scratch(size_t nbytes, const char* op);
  ~Scratch();
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  template <class T>
  T* as() const { return static_cast<T*>(p_); }

 private:
  void* p_ = nullptr;
};

// Grid size for a 1-D elementwise kernel using a grid-stride loop.
inline unsigned elementwise_blocks(long long n, int threads) {
  long long b = (n + threads - 1) / threads;
  if (b > 65535LL * 16) b = 65535LL * 16;  // grid-stride loop covers the rest
  return static_cast<unsigned>(b < 1 ? 1 : b);
}

inline int ceil_div(long long a, long long b) { return static_cast<int>((a + b - 1) / b); }

}  // namespace tfe::cuda
