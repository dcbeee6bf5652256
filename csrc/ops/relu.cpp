// ReLU on a flat float32 array of n elements (any shape).
//
//   forward:  y = max(x, 0)            (NaN propagates, as in PyTorch/NumPy)
//   backward: dx = dy * (y > 0)        (uses the forward OUTPUT, so x need not be kept)
//
// Memory-bound maps: one pass, vectorised (omp simd), split over threads in static contiguous
// chunks only from 32768 elements on; below that the cost of waking the team exceeds the work.
#include <cstdint>

#include "ops/cpu_kernels.h"

namespace tfe::cpu {
namespace {
constexpr int64_t kParallelMin = 32768;
}  // namespace

void relu_forward(float* y, const float* x, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin) num_threads(num_threads())
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] < 0.0f ? 0.0f : x[i];
}

void relu_backward(float* dx, const float* dy, const float* y, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin) num_threads(num_threads())
  for (int64_t i = 0; i < n; ++i) {
    const float g = dy[i];  // unconditional load: lets the compiler use a blend, not a branch
    dx[i] = y[i] > 0.0f ? g : 0.0f;
  }
}

}  // namespace tfe::cpu
