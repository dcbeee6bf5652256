// Fully connected layer, PyTorch layout.
//
//   forward:  y[N, O] = x[N, I] w[O, I]^T + b[O]                 (b may be nullptr)
//   backward: dx[N, I] = dy[N, O] w[O, I]                         (assigned; dx may be nullptr)
//             dw[O, I] += dy^T x                                  (GEMM with beta = 1)
//             db[O]    += column sums of dy                       (db may be nullptr)
//
// Parallelisation: the three products are sgemm calls (gemm.h), which thread and block
// themselves. The bias is folded into the forward GEMM by pre-filling y with b and using
// beta = 1 (one pass less than adding it afterwards). The bias gradient is a small reduction
// over the batch (O values from N*O, N ~ 128): done serially in double, n in order, so it is
// deterministic and exact enough; threading it would cost more than it does.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "gemm/gemm.h"
#include "ops/cpu_kernels.h"

namespace tfe::cpu {

void linear_forward(float* y, const float* x, const float* w, const float* b, int N, int I,
                    int O) {
  if (N <= 0 || O <= 0) return;
  if (b) {
    for (int n = 0; n < N; ++n) {
      float* row = y + static_cast<int64_t>(n) * O;
#pragma omp simd
      for (int o = 0; o < O; ++o) row[o] = b[o];
    }
  }
  if (I == 0) {  // empty product: y = b (or 0); not every GEMM accepts K = 0
    if (!b)
      for (int64_t i = 0; i < static_cast<int64_t>(N) * O; ++i) y[i] = 0.0f;
    return;
  }
  sgemm(false, true, N, O, I, 1.0f, x, I, w, I, b ? 1.0f : 0.0f, y, O);
}

void linear_backward(float* dx, float* dw, float* db, const float* dy, const float* x,
                     const float* w, int N, int I, int O) {
  if (dx && N > 0 && I > 0) {
    if (O > 0)
      sgemm(false, false, N, I, O, 1.0f, dy, O, w, I, 0.0f, dx, I);
    else
      for (int64_t i = 0; i < static_cast<int64_t>(N) * I; ++i) dx[i] = 0.0f;
  }
  if (dw && O > 0 && I > 0 && N > 0) sgemm(true, false, O, I, N, 1.0f, dy, O, x, I, 1.0f, dw, I);
  if (db && O > 0) {
    std::vector<double> acc(static_cast<size_t>(O), 0.0);
    double* s = acc.data();
    for (int n = 0; n < N; ++n) {
      const float* row = dy + static_cast<int64_t>(n) * O;
#pragma omp simd
      for (int o = 0; o < O; ++o) s[o] += row[o];
    }
    for (int o = 0; o < O; ++o) db[o] += static_cast<float>(s[o]);
  }
}

}  // namespace tfe::cpu
