// Global average pooling.
//
//   forward:  y[N, C] = mean over HW of x[N, C, HW]
//   backward: dx[N, C, HW] = dy[N, C] / HW (broadcast)
//
// Parallelisation: over the N*C planes (OpenMP, static), each plane's sum done by one thread
// in a fixed order (vectorised, accumulated in double so large maps lose nothing), hence
// thread-count independent bits. Small calls (< 32768 elements) stay on the calling thread.
#include <cstdint>

#include "ops/cpu_kernels.h"

namespace tfe::cpu {
namespace {
constexpr int64_t kParallelMin = 32768;
}  // namespace

void gap_forward(float* y, const float* x, int N, int C, int HW) {
  const int64_t planes = static_cast<int64_t>(N) * C;
  const int64_t hw = HW;
  const double inv = 1.0 / static_cast<double>(HW);
#pragma omp parallel for schedule(static) if (planes * hw >= kParallelMin) \
    num_threads(num_threads())
  for (int64_t pl = 0; pl < planes; ++pl) {
    const float* p = x + pl * hw;
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < hw; ++i) s += p[i];
    y[pl] = static_cast<float>(s * inv);
  }
}

void gap_backward(float* dx, const float* dy, int N, int C, int HW) {
  const int64_t planes = static_cast<int64_t>(N) * C;
  const int64_t hw = HW;
  const float div = static_cast<float>(HW);
#pragma omp parallel for schedule(static) if (planes * hw >= kParallelMin) \
    num_threads(num_threads())
  for (int64_t pl = 0; pl < planes; ++pl) {
    const float v = dy[pl] / div;  // division, not *1/HW: same rounding as the reference
    float* q = dx + pl * hw;
#pragma omp simd
    for (int64_t i = 0; i < hw; ++i) q[i] = v;
  }
}

}  // namespace tfe::cpu
