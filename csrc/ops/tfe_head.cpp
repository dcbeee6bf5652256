// Fused TFE head: concat + BatchNorm1d + linear.
//
//   z = concat(zi[N, Di], ze[N, De]) along features, D = Di + De
//   z_hat[N, D] = BatchNorm1d(z) (affine applied; per feature, so = BN1d(zi) ++ BN1d(ze))
//   logits[N, O] = z_hat w[O, D]^T + b[O]
//   backward: dz_hat = dlogits w; dw += dlogits^T z_hat; db += column sums of dlogits;
//             dzi ++ dze = BN1d backward of dz_hat (dgamma, dbeta += over D features)
//
// Why fused: the concatenated input z is never materialised. The batch-norm helper of
// bn_common.h reads zi and ze in place (as column blocks with their own row strides) and
// writes the two halves of z_hat at column offsets 0 and Di of the [N, D] array, which is
// exactly the GEMM operand of the classifier and is kept for its weight gradient. In the
// backward, the GEMM dz_hat = dlogits w is computed directly into dzi and dze (the two
// column blocks of w, ldb = D), and the BN backward then runs in place on dzi / dze, so there
// is no [N, D] temporary either.
//
// Parallelisation: the GEMMs thread themselves (gemm.h); the BN parts are column-blocked and
// threaded only when large (see bn_common.h), with fixed-order per-feature reductions; the
// bias gradient is a serial double reduction in row order. Deterministic for any thread count
// given a deterministic GEMM.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "ops/bn_common.h"
#include "gemm/gemm.h"
#include "ops/cpu_kernels.h"

namespace tfe::cpu {
namespace {
// logits = z_hat w^T + b: b is pre-filled so that the GEMM adds onto it (beta = 1).
void classifier_forward(float* logits, const float* z_hat, const float* w, const float* b,
                        int N, int D, int O) {
  if (N <= 0 || O <= 0) return;
  if (b) {
    for (int n = 0; n < N; ++n) {
      float* row = logits + static_cast<int64_t>(n) * O;
#pragma omp simd
      for (int o = 0; o < O; ++o) row[o] = b[o];
    }
  } else if (D == 0) {
    for (int64_t i = 0; i < static_cast<int64_t>(N) * O; ++i) logits[i] = 0.0f;
  }
  if (D > 0) sgemm(false, true, N, O, D, 1.0f, z_hat, D, w, D, b ? 1.0f : 0.0f, logits, O);
}
}  // namespace

void tfe_head_forward_train(float* logits, float* z_hat, float* save_mean, float* save_invstd,
                            float* running_mean, float* running_var, const float* zi,
                            const float* ze, const float* gamma, const float* beta,
                            const float* w, const float* b, int N, int Di, int De, int O,
                            float eps, float momentum) {
  const int D = Di + De;
  if (Di > 0)
    bn::column_forward_train(z_hat, D, save_mean, save_invstd, running_mean, running_var, zi,
                             Di, gamma, beta, N, Di, eps, momentum);
  if (De > 0)
    bn::column_forward_train(z_hat + Di, D, save_mean + Di, save_invstd + Di,
                             running_mean ? running_mean + Di : nullptr,
                             running_var ? running_var + Di : nullptr, ze, De, gamma + Di,
                             beta + Di, N, De, eps, momentum);
  classifier_forward(logits, z_hat, w, b, N, D, O);
}

void tfe_head_forward_eval(float* logits, float* z_hat, const float* zi, const float* ze,
                           const float* gamma, const float* beta, const float* running_mean,
                           const float* running_var, const float* w, const float* b, int N,
                           int Di, int De, int O, float eps) {
  const int D = Di + De;
  if (Di > 0)
    bn::column_forward_eval(z_hat, D, zi, Di, gamma, beta, running_mean, running_var, N, Di,
                            eps);
  if (De > 0)
    bn::column_forward_eval(z_hat + Di, D, ze, De, gamma + Di, beta + Di, running_mean + Di,
                            running_var + Di, N, De, eps);
  classifier_forward(logits, z_hat, w, b, N, D, O);
}

void tfe_head_backward(float* dzi, float* dze, float* dgamma, float* dbeta, float* dw,
                       float* db, const float* dlogits, const float* zi, const float* ze,
                       const float* z_hat, const float* gamma, const float* save_mean,
                       const float* save_invstd, const float* w, int N, int Di, int De, int O) {
  const int D = Di + De;
  if (N <= 0) return;
  // Classifier parameter gradients (need only dlogits and the saved z_hat).
  if (dw && O > 0 && D > 0)
    sgemm(true, false, O, D, N, 1.0f, dlogits, O, z_hat, D, 1.0f, dw, D);
  if (db && O > 0) {
    std::vector<double> acc(static_cast<size_t>(O), 0.0);
    double* s = acc.data();
    for (int n = 0; n < N; ++n) {
      const float* row = dlogits + static_cast<int64_t>(n) * O;
#pragma omp simd
      for (int o = 0; o < O; ++o) s[o] += row[o];
    }
    for (int o = 0; o < O; ++o) db[o] += static_cast<float>(s[o]);
  }
  // dz_hat straight into dzi / dze (column blocks of w), then BN1d backward in place.
  struct Half {
    float* dz;
    const float* z;
    int off, width;
  };
  const Half halves[2] = {{dzi, zi, 0, Di}, {dze, ze, Di, De}};
  for (const Half& h : halves) {
    if (h.width <= 0) continue;
    const int64_t len = static_cast<int64_t>(N) * h.width;
    if (O > 0)
      sgemm(false, false, N, h.width, O, 1.0f, dlogits, O, w + h.off, D, 0.0f, h.dz, h.width);
    else
      for (int64_t i = 0; i < len; ++i) h.dz[i] = 0.0f;
    bn::column_backward(h.dz, h.width, dgamma ? dgamma + h.off : nullptr,
                        dbeta ? dbeta + h.off : nullptr, h.dz, h.width, h.z, h.width,
                        gamma + h.off, save_mean + h.off, save_invstd + h.off, N, h.width);
  }
}

}  // namespace tfe::cpu
