// Batch normalisation (BatchNorm2d on x[N, C, H, W] viewed as [N, C, HW]; BatchNorm1d on
// x[N, C], i.e. HW = 1), PyTorch semantics.
//
//   train:    mean_c, var_c = batch moments over N*HW (biased var), invstd_c = 1/sqrt(var + eps)
//             y = (x - mean_c) * gamma_c * invstd_c + beta_c; save_mean/save_invstd [C];
//             running_mean/var [C] updated in place (unbiased variance for running_var)
//   eval:     the same with running statistics
//   backward: dbeta += sum(dy), dgamma += sum(dy * xhat),
//             dx = gamma*invstd * (dy - sum(dy)/M - xhat * sum(dy * xhat)/M),  M = N*HW
//
// Parallelisation: HW > 1: one OpenMP task per channel. A thread does the channel's
// statistics (one read of x, in double, see bn_common.h) and then immediately its output
// pass, so the second read of the channel's N planes often still hits L2/L3; likewise the
// backward does both reductions in one read and dx in a second. A channel belongs to one
// thread, so every reduction has a fixed order and the bits do not depend on the thread
// count. HW == 1 (BatchNorm1d) uses the column layout of bn_common.h (blocks of adjacent
// features, vectorised along features). Eval is a pure map, parallel over (n, c) planes.
// Small calls (< bn::kParallelMin elements) stay on the calling thread.
#include <cmath>
#include <cstdint>

#include "ops/bn_common.h"
#include "ops/cpu_kernels.h"

namespace tfe::cpu {

void batchnorm_forward_train(float* y, float* save_mean, float* save_invstd,
                             float* running_mean, float* running_var, const float* x,
                             const float* gamma, const float* beta, int N, int C, int HW,
                             float eps, float momentum) {
  if (HW == 1) {
    bn::column_forward_train(y, C, save_mean, save_invstd, running_mean, running_var, x, C,
                             gamma, beta, N, C, eps, momentum);
    return;
  }
  const int64_t hw = HW;
  const int64_t count = static_cast<int64_t>(N) * hw;
  const bool par = count * C >= bn::kParallelMin && C > 1;
#pragma omp parallel for schedule(static) if (par) num_threads(num_threads())
  for (int c = 0; c < C; ++c) {
    double mean, var;
    bn::plane_moments(x, N, C, hw, c, &mean, &var);
    const double is = bn::finish_train_stats(mean, var, count, eps, momentum, save_mean + c,
                                             save_invstd + c,
                                             running_mean ? running_mean + c : nullptr,
                                             running_var ? running_var + c : nullptr);
    const bn::Affine f = bn::train_affine(mean, is, gamma[c], beta[c]);
    for (int n = 0; n < N; ++n) {
      const int64_t base = (static_cast<int64_t>(n) * C + c) * hw;
      const float* p = x + base;
      float* q = y + base;
#pragma omp simd
      for (int64_t i = 0; i < hw; ++i) q[i] = (p[i] - f.mu) * f.scale + f.shift;
    }
  }
}

void batchnorm_forward_eval(float* y, const float* x, const float* gamma, const float* beta,
                            const float* running_mean, const float* running_var, int N, int C,
                            int HW, float eps) {
  if (HW == 1) {
    bn::column_forward_eval(y, C, x, C, gamma, beta, running_mean, running_var, N, C, eps);
    return;
  }
  const int64_t hw = HW;
  const int64_t planes = static_cast<int64_t>(N) * C;
  const bool par = planes * hw >= bn::kParallelMin;
#pragma omp parallel for schedule(static) if (par) num_threads(num_threads())
  for (int64_t nc = 0; nc < planes; ++nc) {
    const int c = static_cast<int>(nc % C);
    const float mu = running_mean[c];
    const float scale = bn::eval_scale(gamma[c], running_var[c], eps);
    const float shift = beta[c];
    const float* p = x + nc * hw;
    float* q = y + nc * hw;
#pragma omp simd
    for (int64_t i = 0; i < hw; ++i) q[i] = (p[i] - mu) * scale + shift;
  }
}

void batchnorm_backward(float* dx, float* dgamma, float* dbeta, const float* dy,
                        const float* x, const float* gamma, const float* save_mean,
                        const float* save_invstd, int N, int C, int HW) {
  if (HW == 1) {
    bn::column_backward(dx, C, dgamma, dbeta, dy, C, x, C, gamma, save_mean, save_invstd, N,
                        C);
    return;
  }
  const int64_t hw = HW;
  const int64_t count = static_cast<int64_t>(N) * hw;
  const bool par = count * C >= bn::kParallelMin && C > 1;
#pragma omp parallel for schedule(static) if (par) num_threads(num_threads())
  for (int c = 0; c < C; ++c) {
    const float mu = save_mean[c];
    const bn::GradSums s = bn::plane_grad_sums(
        [dy](int64_t o) { return static_cast<double>(dy[o]); }, x, mu, N, C, hw, c);
    const bn::BackwardCoef k = bn::backward_coef(s, count, gamma[c], save_invstd[c],
                                                 dgamma ? dgamma + c : nullptr,
                                                 dbeta ? dbeta + c : nullptr);
    if (!dx) continue;
    for (int n = 0; n < N; ++n) {
      const int64_t base = (static_cast<int64_t>(n) * C + c) * hw;
      const float* g = dy + base;
      const float* p = x + base;
      float* q = dx + base;
#pragma omp simd
      for (int64_t i = 0; i < hw; ++i) q[i] = k.a * g[i] - k.b * (p[i] - mu) - k.c;
    }
  }
}

}  // namespace tfe::cpu
