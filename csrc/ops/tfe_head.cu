// Fused TFE head on the GPU: concat + BatchNorm1d + linear (semantics as cpu/tfe_head.cpp).
//
//   z_hat[N, D] = BatchNorm1d(concat(zi[N, Di], ze[N, De])),  D = Di + De
//   logits[N, O] = z_hat w[O, D]^T + b[O]
//   backward: dw += dlogits^T z_hat, db += column sums of dlogits, dz_hat = dlogits w,
//             dzi ++ dze = BN1d backward of dz_hat (dgamma, dbeta +=)
//
// As on the CPU, the concatenation is never materialised: the columns-layout batch norm of
// bn_common.cuh reads zi and ze in place as the two column blocks of one logical [N, D]
// matrix and writes z_hat[N, D] (kept for dw); the backward writes dz_hat straight into dzi
// and dze and runs the BN backward in place on them.
//
// The matrices are tiny (N = 128, D = 224, O = 8), so the products are simple fixed-order
// kernels instead of a general GEMM:
//   logits: one warp per (n, o): lane-strided dot product over D, then the shuffle tree;
//   dw, db: block (32 columns, 8 row groups) per output row o: each thread sums its rows in
//           double, the 8 partials are added in row-group order (the bias is column D of
//           the same pass, with factor 1);
//   dz_hat: one thread per (n, j), sum over o in order.
// Launch order on the stream: dw/db read z_hat and dlogits only; dz_hat then the BN
// backward (which reads dz_hat from dzi/dze and overwrites it in place).
#include "ops/bn_common.cuh"
#include "ops/cuda_kernels.h"

namespace tfe::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kTile = 32;       // columns per block of the weight-gradient kernel
constexpr int kRowGroups = 8;   // row groups per block of the weight-gradient kernel

// logits[n, o] = sum_j z_hat[n, j] w[o, j] (+ b[o]); warp gw = n * O + o.
__global__ void head_logits_kernel(float* __restrict__ logits, const float* __restrict__ z_hat,
                                   const float* __restrict__ w, const float* __restrict__ b,
                                   int N, int D, int O) {
  const long long gw = (blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x) >> 5;
  if (gw >= static_cast<long long>(N) * O) return;  // whole warps leave together
  const long long n = gw / O;
  const int o = static_cast<int>(gw - n * O);
  const int lane = threadIdx.x & 31;
  const float* zr = z_hat + n * D;
  const float* wr = w + static_cast<long long>(o) * D;
  float acc = 0.0f;
  for (int j = lane; j < D; j += 32) acc += zr[j] * wr[j];
  for (int off = 16; off > 0; off >>= 1) acc += __shfl_down_sync(bn::kFullMask, acc, off);
  if (lane == 0) logits[gw] = b ? acc + b[o] : acc;
}

// Column jj of output row o = blockIdx.y: jj < D gives dw[o, jj] += sum_n dlogits[n, o] *
// z_hat[n, jj]; jj == D gives db[o] += sum_n dlogits[n, o]. Columns [col0, col_end) are
// computed (col0 = D when only db is wanted, col_end = D when db is not).
__global__ void head_param_grad_kernel(float* dw, float* db, const float* __restrict__ dlogits,
                                       const float* __restrict__ z_hat, int N, int D, int O,
                                       int col0, int col_end) {
  __shared__ double sums[kRowGroups][kTile];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int o = blockIdx.y;
  const int jj = col0 + blockIdx.x * kTile + tx;
  const bool active = jj < col_end;
  double s = 0.0;
  if (active) {
    for (int n = ty; n < N; n += kRowGroups) {
      const double g = dlogits[static_cast<long long>(n) * O + o];
      s += jj < D ? g * static_cast<double>(z_hat[static_cast<long long>(n) * D + jj]) : g;
    }
  }
  sums[ty][tx] = s;
  __syncthreads();
  if (ty != 0 || !active) return;
  double t = 0.0;
  for (int r = 0; r < kRowGroups; ++r) t += sums[r][tx];
  if (jj < D)
    dw[static_cast<long long>(o) * D + jj] += static_cast<float>(t);
  else
    db[o] += static_cast<float>(t);
}

// dz_hat[n, j] = sum_o dlogits[n, o] w[o, j], written to dzi[n, j] (j < Di) or
// dze[n, j - Di].
__global__ void head_dz_kernel(float* __restrict__ dzi, float* __restrict__ dze,
                               const float* __restrict__ dlogits, const float* __restrict__ w,
                               int N, int Di, int De, int O) {
  const int D = Di + De;
  const long long total = static_cast<long long>(N) * D;
  for (long long idx = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x;
       idx < total; idx += static_cast<long long>(gridDim.x) * blockDim.x) {
    const long long n = idx / D;
    const int j = static_cast<int>(idx - n * D);
    const float* g = dlogits + n * O;
    float acc = 0.0f;
    for (int o = 0; o < O; ++o) acc += g[o] * w[static_cast<long long>(o) * D + j];
    if (j < Di)
      dzi[n * Di + j] = acc;
    else
      dze[n * De + (j - Di)] = acc;
  }
}

void launch_logits(float* logits, const float* z_hat, const float* w, const float* b, int N,
                   int D, int O, const char* op) {
  if (O <= 0) return;
  const long long threads = static_cast<long long>(N) * O * 32;
  head_logits_kernel<<<ceil_div(threads, kThreads), kThreads, 0, stream()>>>(logits, z_hat, w,
                                                                            b, N, D, O);
  TFE_CUDA_CHECK_LAUNCH(op);
}

}  // namespace

void tfe_head_forward_train(float* logits, float* z_hat, float* save_mean, float* save_invstd,
                            float* running_mean, float* running_var, const float* zi,
                            const float* ze, const float* gamma, const float* beta,
                            const float* w, const float* b, int N, int Di, int De, int O,
                            float eps, float momentum) {
  constexpr const char* op = "tfe_head_forward_train";
  if (N <= 0) return;
  const int D = Di + De;
  if (D > 0)
    bn::column_forward_train(z_hat, D, save_mean, save_invstd, running_mean, running_var,
                             bn::Cols{zi, ze, Di, De}, gamma, beta, N, eps, momentum, op);
  launch_logits(logits, z_hat, w, b, N, D, O, op);
}

void tfe_head_forward_eval(float* logits, float* z_hat, const float* zi, const float* ze,
                           const float* gamma, const float* beta, const float* running_mean,
                           const float* running_var, const float* w, const float* b, int N,
                           int Di, int De, int O, float eps) {
  constexpr const char* op = "tfe_head_forward_eval";
  if (N <= 0) return;
  const int D = Di + De;
  if (D > 0)
    bn::column_forward_eval(z_hat, D, bn::Cols{zi, ze, Di, De}, gamma, beta, running_mean,
                            running_var, N, eps, op);
  launch_logits(logits, z_hat, w, b, N, D, O, op);
}

void tfe_head_backward(float* dzi, float* dze, float* dgamma, float* dbeta, float* dw,
                       float* db, const float* dlogits, const float* zi, const float* ze,
                       const float* z_hat, const float* gamma, const float* save_mean,
                       const float* save_invstd, const float* w, int N, int Di, int De, int O) {
  constexpr const char* op = "tfe_head_backward";
  if (N <= 0) return;
  const int D = Di + De;
  // Classifier parameter gradients (need only dlogits and the saved z_hat).
  const int col0 = dw && D > 0 ? 0 : D;
  const int col_end = db ? D + 1 : (dw ? D : 0);
  if (O > 0 && col_end > col0) {
    const dim3 grid(static_cast<unsigned>(ceil_div(col_end - col0, kTile)),
                    static_cast<unsigned>(O));
    head_param_grad_kernel<<<grid, dim3(kTile, kRowGroups), 0, stream()>>>(
        dw, db, dlogits, z_hat, N, D, O, col0, col_end);
    TFE_CUDA_CHECK_LAUNCH(op);
  }
  if (D <= 0) return;
  // dz_hat straight into dzi / dze (all zero when O == 0), then the BN1d backward in place.
  head_dz_kernel<<<elementwise_blocks(static_cast<long long>(N) * D, kThreads), kThreads, 0,
                   stream()>>>(dzi, dze, dlogits, w, N, Di, De, O);
  TFE_CUDA_CHECK_LAUNCH(op);
  bn::column_backward(bn::ColsOut{dzi, dze, Di, De}, dgamma, dbeta, bn::Cols{dzi, dze, Di, De},
                      bn::Cols{zi, ze, Di, De}, gamma, save_mean, save_invstd, N, op);
}

}  // namespace tfe::cuda
