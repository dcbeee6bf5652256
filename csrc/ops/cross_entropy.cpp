// Softmax cross-entropy over K classes, against labels (int64) or probabilities (float):
// one op, the kernel gets exactly one of the two (see ops.def).
//
//   forward:  prob[N, K] = softmax(logits[N, K]) per row (saved for the backward)
//             labels: loss[0] = mean_n ( logsumexp(l_n) - l_n[label_n] )
//             target: loss[0] = mean_n sum_k t_nk ( logsumexp(l_n) - l_nk )
//   backward: labels: dlogits = (prob - onehot(label)) * dloss / N
//             target: dlogits = (prob * sum_k t_nk - t) * dloss / N
//
// Numerically stable: each row subtracts its max before exp, and the loss is formed as
// log(sum) - (l - max) (never log of a rounded-to-zero probability). Row sums and the batch
// mean are accumulated in double. Parallel over rows (OpenMP, static) only for large N*K
// (a 10,575-way identity classifier): per-row losses go to a buffer and are summed serially
// in row order, so the loss bits do not depend on the thread count.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "ops/cpu_kernels.h"

namespace tfe::cpu {
namespace {
constexpr int64_t kParallelMin = 32768;

// prob row = softmax(l); returns (row max, log of the shifted exp-sum) so that
// log softmax(l)_k = (l_k - mx) - lse.
inline void softmax_row(float* prob, const float* l, int K, float* mx_out, double* lse_out) {
  float mx = l[0];
  for (int k = 1; k < K; ++k) mx = l[k] > mx ? l[k] : mx;
  double s = 0.0;
  for (int k = 0; k < K; ++k) {
    const float e = std::exp(l[k] - mx);
    prob[k] = e;
    s += e;
  }
  const float inv = static_cast<float>(1.0 / s);
  for (int k = 0; k < K; ++k) prob[k] *= inv;
  *mx_out = mx;
  *lse_out = std::log(s);
}

// Mean of the per-row losses in row order (thread-count independent).
inline float batch_mean(const std::vector<double>& row_loss) {
  double s = 0.0;
  for (double v : row_loss) s += v;
  return static_cast<float>(s / static_cast<double>(row_loss.size()));
}
}  // namespace

void cross_entropy_forward(float* loss, float* prob, const float* logits,
                           const int64_t* labels, const float* target, int N, int K) {
  std::vector<double> row_loss(static_cast<size_t>(N));
  const bool par = static_cast<int64_t>(N) * K >= kParallelMin && N > 1;
#pragma omp parallel for schedule(static) if (par) num_threads(num_threads())
  for (int n = 0; n < N; ++n) {
    const float* l = logits + static_cast<int64_t>(n) * K;
    float mx;
    double lse;
    softmax_row(prob + static_cast<int64_t>(n) * K, l, K, &mx, &lse);
    if (labels) {
      row_loss[n] = lse - static_cast<double>(l[labels[n]] - mx);
    } else {
      const float* t = target + static_cast<int64_t>(n) * K;
      double s = 0.0;
      for (int k = 0; k < K; ++k)
        s += static_cast<double>(t[k]) * (lse - static_cast<double>(l[k] - mx));
      row_loss[n] = s;
    }
  }
  loss[0] = N > 0 ? batch_mean(row_loss) : 0.0f;
}

void cross_entropy_backward(float* dlogits, const float* prob, const int64_t* labels,
                            const float* target, int N, int K, float dloss) {
  const float scale = dloss / static_cast<float>(N);
  const bool par = static_cast<int64_t>(N) * K >= kParallelMin && N > 1;
#pragma omp parallel for schedule(static) if (par) num_threads(num_threads())
  for (int n = 0; n < N; ++n) {
    const float* p = prob + static_cast<int64_t>(n) * K;
    float* d = dlogits + static_cast<int64_t>(n) * K;
    if (labels) {
      const int64_t lab = labels[n];
#pragma omp simd
      for (int k = 0; k < K; ++k) d[k] = (p[k] - (k == lab ? 1.0f : 0.0f)) * scale;
      continue;
    }
    const float* t = target + static_cast<int64_t>(n) * K;
    double ts = 0.0;
    for (int k = 0; k < K; ++k) ts += t[k];
    const float tsum = static_cast<float>(ts);
#pragma omp simd
    for (int k = 0; k < K; ++k) d[k] = (p[k] * tsum - t[k]) * scale;
  }
}

}  // namespace tfe::cpu
