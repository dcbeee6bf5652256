// The batch-norm formulas of one channel, written once for the CPU kernels (bn_common.h)
// and the CUDA kernels (bn_common.cuh): both compile this header, so the statistics, the
// running-stat update, the forward's affine map and the backward's coefficients are the
// same expressions in the same order on both devices (the part of CPU/GPU bit parity that
// does not depend on how the sums were reduced).
//
// Statistics are sums of (x - K) and (x - K)^2 in double with the shift K = the channel's
// first element (the "shifted data" algorithm); see bn_common.h for why.
#pragma once
#include <cmath>
#include <cstdint>

#ifdef __CUDACC__
#define TFE_BN_HD __host__ __device__
#else
#define TFE_BN_HD
#endif

namespace tfe::bn {

// Biased mean/variance from shifted sums s1 = sum(x - K), s2 = sum((x - K)^2).
TFE_BN_HD inline void moments_from_shifted(double K, double s1, double s2, int64_t count,
                                           double* mean, double* var) {
  const double m1 = s1 / static_cast<double>(count);
  *mean = K + m1;
  const double v = s2 / static_cast<double>(count) - m1 * m1;
  *var = v > 0.0 ? v : 0.0;
}

// Turns one channel's batch moments into the saved statistics and updates the running ones
// (PyTorch semantics: running_var gets the unbiased variance; each pointer may be null for
// the running ones). Returns invstd.
TFE_BN_HD inline double finish_train_stats(double mean, double var, int64_t count, float eps,
                                           float momentum, float* save_mean,
                                           float* save_invstd, float* running_mean,
                                           float* running_var) {
  const double invstd = 1.0 / sqrt(var + static_cast<double>(eps));
  *save_mean = static_cast<float>(mean);
  *save_invstd = static_cast<float>(invstd);
  const double m = momentum;
  // count == 1 has no unbiased variance; the bindings reject it for training (as PyTorch
  // does), so the NaN this would give never reaches a user. Keep the biased 0 instead.
  const double unbiased =
      count > 1 ? var * static_cast<double>(count) / static_cast<double>(count - 1) : var;
  if (running_mean) *running_mean = static_cast<float>((1.0 - m) * *running_mean + m * mean);
  if (running_var) *running_var = static_cast<float>((1.0 - m) * *running_var + m * unbiased);
  return invstd;
}

// The forward map of one channel, y = (x - mu) * scale + shift, with mu = float(mean) (what
// save_mean holds). The part of the double mean lost in that rounding is folded into shift,
// so y is as accurate as float arithmetic allows even when |mean| >> std: x - mu is then
// nearly exact, and the rounding of mu costs nothing.
struct Affine {
  float mu, scale, shift;
};
TFE_BN_HD inline Affine train_affine(double mean, double invstd, float gamma, float beta) {
  const float mu = static_cast<float>(mean);
  const double scale = static_cast<double>(gamma) * invstd;
  return {mu, static_cast<float>(scale),
          static_cast<float>(static_cast<double>(beta) -
                             (mean - static_cast<double>(mu)) * scale)};
}

// Eval-mode scale gamma / sqrt(running_var + eps), rounded once.
TFE_BN_HD inline float eval_scale(float gamma, float running_var, float eps) {
  return static_cast<float>(static_cast<double>(gamma) /
                            sqrt(static_cast<double>(running_var) + static_cast<double>(eps)));
}

// The backward of one channel from its reductions relative to mu = save_mean (float):
//   sdy = sum(g), sdx_mu = sum(g * (x - mu)), sx = sum(x - mu),
// where sx recovers the part of the exact batch mean that save_mean lost to rounding
// (mean = mu + sx / count). Accumulates dgamma += sum(g * xhat), dbeta += sum(g) (each
// nullable) and returns dx = a * g - b * (x - mu) - c, i.e. with xhat = (x - mean) * invstd
// and delta = mean - mu:
//   a = gamma * invstd, b = a * invstd^2 * sum(g * (x - mean)) / count,
//   c = a * sum(g) / count - b * delta.
struct BackwardCoef {
  float a, b, c;
};
TFE_BN_HD inline BackwardCoef backward_coef(double sdy, double sdx_mu, double sx,
                                            int64_t count, float gamma, float invstd,
                                            float* dgamma, float* dbeta) {
  const double is = invstd;
  const double inv_count = 1.0 / static_cast<double>(count);
  const double delta = sx * inv_count;      // exact mean - mu
  const double sdx = sdx_mu - delta * sdy;  // sum(g * (x - mean))
  if (dgamma) *dgamma += static_cast<float>(sdx * is);
  if (dbeta) *dbeta += static_cast<float>(sdy);
  const double A = static_cast<double>(gamma) * is;
  const double B = A * is * is * sdx * inv_count;
  return {static_cast<float>(A), static_cast<float>(B),
          static_cast<float>(A * sdy * inv_count - B * delta)};
}

}  // namespace tfe::bn

#undef TFE_BN_HD
