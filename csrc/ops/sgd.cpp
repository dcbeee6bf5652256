// One SGD step (PyTorch torch.optim.SGD semantics, dampening 0) over a list of tensors.
//
//   per element of tensor j (sizes[j] elements):
//     d = g + weight_decay * p
//     momentum != 0:  buf = momentum * buf + d       (buffers start at zero, so the first
//                                                     step gives buf = d, as PyTorch's clone)
//                     d = nesterov ? d + momentum * buf : buf
//     p -= lr * d
//   momentum == 0 never touches momentum_bufs (they may be nullptr).
//
// Parallelisation: one OpenMP team for the whole list; every tensor is split over the
// threads with a static `omp for nowait`, so a big weight tensor is shared evenly, the many
// tiny tensors (biases, BN parameters) cost no barrier each, and only one fork/join is paid
// per step. Purely elementwise, hence deterministic. Small totals stay on one thread.
#include <cstdint>

#include "ops/cpu_kernels.h"

namespace tfe::cpu {
namespace {
constexpr int64_t kParallelMin = 32768;
}  // namespace

void sgd_step(float* const* params, float* const* momentum_bufs, const float* const* grads,
              const int64_t* sizes, int count, float lr, float momentum, float weight_decay,
              bool nesterov) {
  int64_t total = 0;
  for (int j = 0; j < count; ++j) total += sizes[j];
  const bool use_mom = momentum != 0.0f;
#pragma omp parallel if (total >= kParallelMin) num_threads(num_threads())
  for (int j = 0; j < count; ++j) {
    float* p = params[j];
    const float* g = grads[j];
    const int64_t n = sizes[j];
    if (!use_mom) {
#pragma omp for simd schedule(static) nowait
      for (int64_t i = 0; i < n; ++i) p[i] -= lr * (g[i] + weight_decay * p[i]);
    } else {
      float* b = momentum_bufs[j];
      if (nesterov) {
#pragma omp for simd schedule(static) nowait
        for (int64_t i = 0; i < n; ++i) {
          const float d = g[i] + weight_decay * p[i];
          const float nb = momentum * b[i] + d;
          b[i] = nb;
          p[i] -= lr * (d + momentum * nb);
        }
      } else {
#pragma omp for simd schedule(static) nowait
        for (int64_t i = 0; i < n; ++i) {
          const float nb = momentum * b[i] + (g[i] + weight_decay * p[i]);
          b[i] = nb;
          p[i] -= lr * nb;
        }
      }
    }
  }
}

}  // namespace tfe::cpu
