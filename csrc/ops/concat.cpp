// Concatenation along dim 1 and its inverse split.
//
//   forward:  y[N, S * inner] with S = sum_j sizes[j], from count inputs xs[j][N, sizes[j], inner]:
//             row n of y is xs[0][n] ++ xs[1][n] ++ ...   (inner = product of trailing dims)
//   backward: dxs[j][n] = the matching slice of dy[n]   (assigned)
//
// Pure copies: per (n, j) one contiguous memcpy of sizes[j] * inner floats. Parallelised over
// n (OpenMP, static) once the tensor has 32768 elements; each row is written by one thread.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "ops/cpu_kernels.h"

namespace tfe::cpu {
namespace {
constexpr int64_t kParallelMin = 32768;
}  // namespace

void concat_forward(float* y, const float* const* xs, const int* sizes, int count, int N,
                    int inner) {
  int64_t row = 0;
  for (int j = 0; j < count; ++j) row += static_cast<int64_t>(sizes[j]) * inner;
  const bool par = row * N >= kParallelMin && N > 1;
#pragma omp parallel for schedule(static) if (par) num_threads(num_threads())
  for (int n = 0; n < N; ++n) {
    float* out = y + n * row;
    for (int j = 0; j < count; ++j) {
      const int64_t len = static_cast<int64_t>(sizes[j]) * inner;
      if (len) std::memcpy(out, xs[j] + n * len, static_cast<size_t>(len) * sizeof(float));
      out += len;
    }
  }
}

void concat_backward(float* const* dxs, const float* dy, const int* sizes, int count, int N,
                     int inner) {
  int64_t row = 0;
  for (int j = 0; j < count; ++j) row += static_cast<int64_t>(sizes[j]) * inner;
  const bool par = row * N >= kParallelMin && N > 1;
#pragma omp parallel for schedule(static) if (par) num_threads(num_threads())
  for (int n = 0; n < N; ++n) {
    const float* in = dy + n * row;
    for (int j = 0; j < count; ++j) {
      const int64_t len = static_cast<int64_t>(sizes[j]) * inner;
      if (len && dxs[j])
        std::memcpy(dxs[j] + n * len, in, static_cast<size_t>(len) * sizeof(float));
      in += len;
    }
  }
}

}  // namespace tfe::cpu
