// Error checking shared by the CUDA sources: every runtime call and every launch goes
// through TFE_CUDA_CHECK / TFE_CUDA_CHECK_LAUNCH so a failure names the op.
#pragma once
#include <cuda_runtime.h>

#include <string>

#include "tensor.h"

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
// Grid size for a 1-D elementwise kernel using a grid-stride loop.
inline unsigned elementwise_blocks(long long n, int threads) {
  long long b = (n + threads - 1) / threads;
  if (b > 65535LL * 16) b = 65535LL * 16;  // grid-stride loop covers the rest
  return static_cast<unsigned>(b < 1 ? 1 : b);
}
}  // namespace tfe::cuda
