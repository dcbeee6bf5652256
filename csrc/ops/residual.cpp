// Fused residual-block epilogue: y = relu(batchnorm(x) + shortcut), x, shortcut, y [N, C, HW];
// without a shortcut, relu(batchnorm(x)) (a block's first batch norm and the stem's).
// BatchNorm semantics as in batchnorm.cpp (training: batch statistics, save_mean/save_invstd,
// running stats updated in place; eval: running statistics).
//
//   backward, with g = dy * (y > 0) (the ReLU mask read from the forward output):
//     dshortcut = g
//     dbeta += sum(g),  dgamma += sum(g * xhat)
//     dx = gamma*invstd * (g - sum(g)/M - xhat * sum(g * xhat)/M),  M = N*HW
//
// Why fused: unfused, BN + add + ReLU cost 3 output passes and 2 intermediate tensors. Here
// the forward reads x once for the statistics and writes y in one pass that reads x and
// shortcut. The backward's first pass reads dy, y, x, does both reductions and writes
// dshortcut = g; the second pass reads dshortcut (as g) and x and writes dx. So the masked
// gradient is materialised only in dshortcut, which is an output anyway.
//
// Parallelisation: one OpenMP task per channel (as batchnorm.cpp): a channel's reductions
// have a fixed order on one thread, so the bits do not depend on the thread count, and its
// second pass follows its first while the data is still warm in cache. Eval is a pure map,
// parallel over (n, c) planes. Small calls (< bn::kParallelMin elements) stay on one thread.
#include <cmath>
#include <cstdint>
#include <cstring>

#include "ops/bn_common.h"
#include "ops/cpu_kernels.h"

namespace tfe::cpu {
namespace {
// cond ? v : +0.0f as a bit mask. GCC 12 does not if-convert a float select feeding the double
// accumulators of the backward reduction (the loop stays scalar, 5x slower); the mask form
// vectorises and gives the same bits.
inline float keep_if(bool cond, float v) {
  uint32_t b;
  std::memcpy(&b, &v, sizeof b);
  b &= 0u - static_cast<uint32_t>(cond);
  float r;
  std::memcpy(&r, &b, sizeof r);
  return r;
}

// y = max((x - mu) * scale + shift + s, 0) over one plane of hw elements; without a
// shortcut (s = nullptr) y = max((x - mu) * scale + shift, 0), batchnorm.cpp's expression
// followed by relu_forward's, so the bits are those of the two ops in turn.
inline void epilogue_plane(float* q, const float* p, const float* s, int64_t hw, float mu,
                           float scale, float shift) {
  if (!s) {
#pragma omp simd
    for (int64_t i = 0; i < hw; ++i) {
      const float v = (p[i] - mu) * scale + shift;
      q[i] = v < 0.0f ? 0.0f : v;
    }
    return;
  }
#pragma omp simd
  for (int64_t i = 0; i < hw; ++i) {
    const float v = (p[i] - mu) * scale + shift + s[i];
    q[i] = v < 0.0f ? 0.0f : v;
  }
}
}  // namespace

void residual_forward_train(float* y, float* save_mean, float* save_invstd,
                            float* running_mean, float* running_var, const float* x,
                            const float* shortcut, const float* gamma, const float* beta,
                            int N, int C, int HW, float eps, float momentum) {
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
      epilogue_plane(y + base, x + base, shortcut ? shortcut + base : nullptr, hw, f.mu,
                     f.scale, f.shift);
    }
  }
}

void residual_forward_eval(float* y, const float* x, const float* shortcut, const float* gamma,
                           const float* beta, const float* running_mean,
                           const float* running_var, int N, int C, int HW, float eps) {
  const int64_t hw = HW;
  const int64_t planes = static_cast<int64_t>(N) * C;
  const bool par = planes * hw >= bn::kParallelMin;
#pragma omp parallel for schedule(static) if (par) num_threads(num_threads())
  for (int64_t nc = 0; nc < planes; ++nc) {
    const int c = static_cast<int>(nc % C);
    const float scale = bn::eval_scale(gamma[c], running_var[c], eps);
    epilogue_plane(y + nc * hw, x + nc * hw, shortcut ? shortcut + nc * hw : nullptr, hw,
                   running_mean[c], scale, beta[c]);
  }
}

void residual_backward(float* dx, float* dshortcut, float* dgamma, float* dbeta,
                       const float* dy, const float* y, const float* x, const float* gamma,
                       const float* save_mean, const float* save_invstd, int N, int C, int HW) {
  const int64_t hw = HW;
  const int64_t count = static_cast<int64_t>(N) * hw;
  const bool par = count * C >= bn::kParallelMin && C > 1;
#pragma omp parallel for schedule(static) if (par) num_threads(num_threads())
  for (int c = 0; c < C; ++c) {
    const float mu = save_mean[c];
    bn::GradSums s;
    if (dshortcut) {
      // Pass 1 stores the masked gradient in dshortcut; pass 2 reads it back as g.
      s = bn::plane_grad_sums(
          [=](int64_t o) {
            const float g = keep_if(y[o] > 0.0f, dy[o]);
            dshortcut[o] = g;
            return static_cast<double>(g);
          },
          x, mu, N, C, hw, c);
    } else {
      s = bn::plane_grad_sums(
          [=](int64_t o) { return static_cast<double>(keep_if(y[o] > 0.0f, dy[o])); },
          x, mu, N, C, hw, c);
    }
    const bn::BackwardCoef k = bn::backward_coef(s, count, gamma[c], save_invstd[c],
                                                 dgamma ? dgamma + c : nullptr,
                                                 dbeta ? dbeta + c : nullptr);
    if (!dx) continue;
    for (int n = 0; n < N; ++n) {
      const int64_t base = (static_cast<int64_t>(n) * C + c) * hw;
      const float* p = x + base;
      float* q = dx + base;
      if (dshortcut) {
        const float* g = dshortcut + base;
#pragma omp simd
        for (int64_t i = 0; i < hw; ++i) q[i] = k.a * g[i] - k.b * (p[i] - mu) - k.c;
      } else {
        const float* g = dy + base;
        const float* m = y + base;
#pragma omp simd
        for (int64_t i = 0; i < hw; ++i) {
          const float gi = keep_if(m[i] > 0.0f, g[i]);
          q[i] = k.a * gi - k.b * (p[i] - mu) - k.c;
        }
      }
    }
  }
}

}  // namespace tfe::cpu
