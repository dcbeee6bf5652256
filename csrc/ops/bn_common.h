// Batch-norm building blocks shared by batchnorm.cpp, residual.cpp and tfe_head.cpp (private
// to the CPU kernels; not part of the kernel interface).
//
// Two layouts occur:
//  * "planes": x[N, C, HW] with HW > 1 (BatchNorm2d). A channel is N strided planes of HW
//    contiguous floats; one channel is reduced by one thread, vectorised along HW.
//  * "columns": x[N, C] rows with a leading dimension (BatchNorm1d, and the two halves of the
//    TFE head's concatenated features, which live at column offsets of one [N, D] array).
//    A channel is a strided column, so a thread takes a block of adjacent columns and walks
//    the rows, vectorised along the columns.
//
// Statistics: per channel, sums of (x - K) and (x - K)^2 in double with the shift K = the
// channel's first element (the "shifted data" algorithm). Shifting removes the cancellation
// of the textbook E[x^2] - E[x]^2 when |mean| >> std, and double accumulation keeps the sums
// of ~3e5 elements (128 x 48 x 48) exact to ~1e-13 relative; it costs one read of x, like
// Welford, but vectorises. Each channel is reduced in a fixed order (n, then hw) by exactly
// one thread, so results do not depend on the thread count at all. The forward folds the
// float rounding of the mean into the shift (train_affine) and the backward recovers the
// exact mean from x in its reduction pass (GradSums::sx), so y, dx and dgamma stay accurate
// even for |mean| / std ~ 1e4 (measured: ~1e-7 relative vs float64, instead of ~1e-1).
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

#include "ops/bn_math.h"
#include "ops/cpu_kernels.h"

namespace tfe::cpu::bn {

// Below this many elements a BN call is run on the calling thread: forking a team costs
// a few microseconds, more than the whole kernel at these sizes.
constexpr int64_t kParallelMin = 32768;

// Columns handled per task on the column layout: 64 doubles of each accumulator stay in L1.
constexpr int kColBlock = 64;

// The per-channel formulas, shared with the CUDA kernels (bn_math.h).
using tfe::bn::Affine;
using tfe::bn::BackwardCoef;
using tfe::bn::backward_coef;
using tfe::bn::eval_scale;
using tfe::bn::finish_train_stats;
using tfe::bn::moments_from_shifted;
using tfe::bn::train_affine;

// ---- planes layout: x[N, C, HW] --------------------------------------------------------------

// Mean and biased variance of channel c.
inline void plane_moments(const float* x, int N, int C, int64_t HW, int c, double* mean,
                          double* var) {
  const double K = x[static_cast<int64_t>(c) * HW];
  double s1 = 0.0, s2 = 0.0;
  for (int n = 0; n < N; ++n) {
    const float* p = x + (static_cast<int64_t>(n) * C + c) * HW;
#pragma omp simd reduction(+ : s1, s2)
    for (int64_t i = 0; i < HW; ++i) {
      const double d = static_cast<double>(p[i]) - K;
      s1 += d;
      s2 += d * d;
    }
  }
  moments_from_shifted(K, s1, s2, static_cast<int64_t>(N) * HW, mean, var);
}

// The reductions of the backward for one channel, all relative to mu = save_mean (float):
//   sdy = sum(g),  sdx = sum(g * (x - mu)),  sx = sum(x - mu).
// sx recovers the part of the exact batch mean that save_mean lost to float rounding
// (mean = mu + sx / count), so the backward uses the same mean as the forward did (see
// train_affine) at the cost of one more add in the same pass. Matters when |mean| >> std.
struct GradSums {
  double sdy = 0.0, sdx = 0.0, sx = 0.0;
};

// One channel of the planes layout; g(offset) yields the incoming gradient at a flat offset
// (it may also store: the residual epilogue writes dshortcut = dy * relu_mask from inside it).
template <class G>
inline GradSums plane_grad_sums(G g, const float* x, float mu, int N, int C, int64_t HW, int c) {
  double a = 0.0, b = 0.0, e = 0.0;
  const double m = mu;
  for (int n = 0; n < N; ++n) {
    const int64_t base = (static_cast<int64_t>(n) * C + c) * HW;
    const float* p = x + base;
#pragma omp simd reduction(+ : a, b, e)
    for (int64_t i = 0; i < HW; ++i) {
      const double gi = g(base + i);
      const double d = static_cast<double>(p[i]) - m;
      a += gi;
      b += gi * d;
      e += d;
    }
  }
  return {a, b, e};
}

// The input-gradient coefficients of one channel from its reductions (bn_math.h).
inline BackwardCoef backward_coef(const GradSums& s, int64_t count, float gamma, float invstd,
                                  float* dgamma, float* dbeta) {
  return backward_coef(s.sdy, s.sdx, s.sx, count, gamma, invstd, dgamma, dbeta);
}

// ---- columns layout: x[N, C] with row stride ldx -------------------------------------------

// Training-mode BatchNorm1d over C columns: y[n, c] (row stride ldy) from x[n, c] (row stride
// ldx). Writes save_mean/save_invstd[C], updates running stats (nullable).
inline void column_forward_train(float* y, int64_t ldy, float* save_mean, float* save_invstd,
                                 float* running_mean, float* running_var, const float* x,
                                 int64_t ldx, const float* gamma, const float* beta, int N,
                                 int C, float eps, float momentum) {
  const int nblocks = (C + kColBlock - 1) / kColBlock;
  const bool par = static_cast<int64_t>(N) * C >= kParallelMin && nblocks > 1;
#pragma omp parallel for schedule(static) if (par) num_threads(tfe::cpu::num_threads())
  for (int blk = 0; blk < nblocks; ++blk) {
    const int c0 = blk * kColBlock;
    const int nc = C - c0 < kColBlock ? C - c0 : kColBlock;
    double K[kColBlock], s1[kColBlock], s2[kColBlock];
    float scale[kColBlock], shift[kColBlock], mu[kColBlock];
    for (int j = 0; j < nc; ++j) {
      K[j] = x[c0 + j];
      s1[j] = 0.0;
      s2[j] = 0.0;
    }
    for (int n = 0; n < N; ++n) {
      const float* row = x + n * ldx + c0;
#pragma omp simd
      for (int j = 0; j < nc; ++j) {
        const double d = static_cast<double>(row[j]) - K[j];
        s1[j] += d;
        s2[j] += d * d;
      }
    }
    for (int j = 0; j < nc; ++j) {
      const int c = c0 + j;
      double mean, var;
      moments_from_shifted(K[j], s1[j], s2[j], N, &mean, &var);
      const double is =
          finish_train_stats(mean, var, N, eps, momentum, save_mean + c, save_invstd + c,
                             running_mean ? running_mean + c : nullptr,
                             running_var ? running_var + c : nullptr);
      const Affine f = train_affine(mean, is, gamma[c], beta[c]);
      mu[j] = f.mu;
      scale[j] = f.scale;
      shift[j] = f.shift;
    }
    for (int n = 0; n < N; ++n) {
      const float* row = x + n * ldx + c0;
      float* out = y + n * ldy + c0;
#pragma omp simd
      for (int j = 0; j < nc; ++j) out[j] = (row[j] - mu[j]) * scale[j] + shift[j];
    }
  }
}

// Eval-mode BatchNorm1d with running statistics, same layout as above.
inline void column_forward_eval(float* y, int64_t ldy, const float* x, int64_t ldx,
                                const float* gamma, const float* beta, const float* running_mean,
                                const float* running_var, int N, int C, float eps) {
  std::vector<float> scale(C);
  for (int c = 0; c < C; ++c)
    scale[c] = eval_scale(gamma[c], running_var[c], eps);
  const float* sc = scale.data();
  const bool par = static_cast<int64_t>(N) * C >= kParallelMin;
#pragma omp parallel for schedule(static) if (par) num_threads(tfe::cpu::num_threads())
  for (int n = 0; n < N; ++n) {
    const float* row = x + n * ldx;
    float* out = y + n * ldy;
#pragma omp simd
    for (int c = 0; c < C; ++c) out[c] = (row[c] - running_mean[c]) * sc[c] + beta[c];
  }
}

// Backward of column_forward_train: dx (row stride lddx) assigned, dgamma/dbeta += . dx may
// alias dy (same stride): each element is read before it is written, in the same iteration.
inline void column_backward(float* dx, int64_t lddx, float* dgamma, float* dbeta,
                            const float* dy, int64_t lddy, const float* x, int64_t ldx,
                            const float* gamma, const float* save_mean, const float* save_invstd,
                            int N, int C) {
  const int nblocks = (C + kColBlock - 1) / kColBlock;
  const bool par = static_cast<int64_t>(N) * C >= kParallelMin && nblocks > 1;
#pragma omp parallel for schedule(static) if (par) num_threads(tfe::cpu::num_threads())
  for (int blk = 0; blk < nblocks; ++blk) {
    const int c0 = blk * kColBlock;
    const int nc = C - c0 < kColBlock ? C - c0 : kColBlock;
    double sdy[kColBlock], sdx[kColBlock], sx[kColBlock], mu[kColBlock];
    for (int j = 0; j < nc; ++j) {
      sdy[j] = 0.0;
      sdx[j] = 0.0;
      sx[j] = 0.0;
      mu[j] = save_mean[c0 + j];
    }
    for (int n = 0; n < N; ++n) {
      const float* g = dy + n * lddy + c0;
      const float* row = x + n * ldx + c0;
#pragma omp simd
      for (int j = 0; j < nc; ++j) {
        const double gj = g[j];
        const double d = static_cast<double>(row[j]) - mu[j];
        sdy[j] += gj;
        sdx[j] += gj * d;
        sx[j] += d;
      }
    }
    float A[kColBlock], B[kColBlock], Cc[kColBlock], muf[kColBlock];
    for (int j = 0; j < nc; ++j) {
      const int c = c0 + j;
      const BackwardCoef k = backward_coef({sdy[j], sdx[j], sx[j]}, N, gamma[c], save_invstd[c],
                                           dgamma ? dgamma + c : nullptr,
                                           dbeta ? dbeta + c : nullptr);
      A[j] = k.a;
      B[j] = k.b;
      Cc[j] = k.c;
      muf[j] = save_mean[c];
    }
    if (!dx) continue;
    for (int n = 0; n < N; ++n) {
      const float* g = dy + n * lddy + c0;
      const float* row = x + n * ldx + c0;
      float* out = dx + n * lddx + c0;
#pragma omp simd
      for (int j = 0; j < nc; ++j) out[j] = A[j] * g[j] - B[j] * (row[j] - muf[j]) - Cc[j];
    }
  }
}

}  // namespace tfe::cpu::bn
