// Batch normalisation on the GPU (BatchNorm2d on x[N, C, H, W] viewed as [N, C, HW];
// BatchNorm1d on x[N, C], i.e. HW = 1), PyTorch semantics; see cpu/batchnorm.cpp for the
// formulas and bn_common.cuh for the layouts, the numerics and the reduction order.
//
// This file also holds the shared planes/columns machinery declared in bn_common.cuh
// (residual.cu and tfe_head.cu call it).
//
// Planes layout (HW > 1), training forward = 3 launches:
//   1. plane_stats_kernel, grid (C, splits) x 256 threads: block (c, s) sums x - K and
//      (x - K)^2 in double over chunk s of channel c (elements j = n * HW + i in
//      [s * chunk, (s + 1) * chunk)), fixed block tree, one partial pair to scratch;
//   2. plane_train_finish_kernel, one warp per channel: adds the `splits` partials
//      (lane-strided, then a shuffle tree), writes save_mean/save_invstd, running stats and
//      the channel's affine map to scratch;
//   3. plane_forward_apply_kernel, flat grid-stride pass: y = (x - mu) * scale + shift.
// The backward is the same shape: plane_grad_sums_kernel (sdy, sdx, sx), finish
// (dgamma/dbeta += and the dx coefficients), plane_backward_apply_kernel.
//
// Columns layout (HW == 1): one launch per call, see bn_common.cuh.
#include "ops/bn_common.cuh"
#include "ops/cuda_kernels.h"

namespace tfe::cuda {
namespace bn {
namespace {

constexpr int kStatThreads = 256;     // block of the per-chunk statistics kernels
constexpr long long kChunkUnits = 1024;  // target units per statistics block (4 per thread)
constexpr int kMaxSplits = 1024;      // cap on chunks per channel (bounds the scratch)
constexpr int kFinishThreads = 128;   // 4 channels (warps) per finish block
constexpr int kApplyThreads = 256;
constexpr int kColTile = 32;  // columns per block in the columns layout (one warp wide)
constexpr int kColRows = 16;  // row groups per block in the columns layout

// How a channel of N * L units is cut into chunks. Depends on the shape only, so the
// summation order (and hence the bits) is fixed for a given shape and unit width.
struct Split {
  long long chunk;  // units per chunk
  int splits;       // number of chunks
};
Split split_channel(long long units) {
  long long s = (units + kChunkUnits - 1) / kChunkUnits;
  if (s < 1) s = 1;
  if (s > kMaxSplits) s = kMaxSplits;
  const long long chunk = (units + s - 1) / s;
  // Recount so that no chunk is empty (chunk * (s - 1) < units).
  return {chunk, static_cast<int>((units + chunk - 1) / chunk)};
}

// ---- planes: statistics -----------------------------------------------------------------------

// part[k * C * splits + c * splits + s] = sum over chunk s of channel c of
//   k = 0: x - K,   k = 1: (x - K)^2,   K = x[0, c, 0] (the channel's first element).
template <int V>
__global__ void plane_stats_kernel(double* __restrict__ part, const float* __restrict__ x,
                                   int C, long long L, long long units, long long chunk,
                                   int splits) {
  const int c = blockIdx.x, s = blockIdx.y;
  const double K = x[static_cast<long long>(c) * L * V];
  double v[2] = {0.0, 0.0};
  const long long j0 = s * chunk;
  const long long j1 = j0 + chunk < units ? j0 + chunk : units;
  for (ChannelCursor cur(j0 + threadIdx.x, L, blockDim.x); cur.j < j1; cur.next()) {
    float r[V];
    load_unit<V>(r, x, cur.unit(c, C));
#pragma unroll
    for (int k = 0; k < V; ++k) {
      const double d = static_cast<double>(r[k]) - K;
      v[0] += d;
      v[1] += d * d;
    }
  }
  block_sum<2>(v);
  if (threadIdx.x == 0) {
    const long long cs = static_cast<long long>(C) * splits;
    part[static_cast<long long>(c) * splits + s] = v[0];
    part[cs + static_cast<long long>(c) * splits + s] = v[1];
  }
}

// Adds channel c's `splits` partials of sum k in a fixed order (lane-strided, then the warp
// tree). Called by a whole warp; the total is valid in lane 0.
__device__ double warp_sum_partials(const double* part, int k, int c, int C, int splits) {
  const double* p = part + (static_cast<long long>(k) * C + c) * splits;
  double t = 0.0;
  for (int s = threadIdx.x & 31; s < splits; s += 32) t += p[s];
  return warp_sum(t);
}

// One warp per channel: moments, saved/running stats, affine map -> coef[{0,1,2} * C + c].
__global__ void plane_train_finish_kernel(float* coef, float* save_mean, float* save_invstd,
                                          float* running_mean, float* running_var,
                                          const double* part, const float* x,
                                          const float* gamma, const float* beta, int C,
                                          int splits, long long HW, long long count, float eps,
                                          float momentum) {
  const long long gw = (blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x) >> 5;
  if (gw >= C) return;  // whole warps leave together (blockDim.x is a multiple of 32)
  const int c = static_cast<int>(gw);
  const double s1 = warp_sum_partials(part, 0, c, C, splits);
  const double s2 = warp_sum_partials(part, 1, c, C, splits);
  if ((threadIdx.x & 31) != 0) return;
  const double K = x[static_cast<long long>(c) * HW];
  double mean, var;
  moments_from_shifted(K, s1, s2, count, &mean, &var);
  const double is = finish_train_stats(mean, var, count, eps, momentum, save_mean + c,
                                       save_invstd + c, running_mean ? running_mean + c : nullptr,
                                       running_var ? running_var + c : nullptr);
  const Affine f = train_affine(mean, is, gamma[c], beta[c]);
  coef[c] = f.mu;
  coef[C + c] = f.scale;
  coef[2 * C + c] = f.shift;
}

__global__ void plane_eval_coef_kernel(float* coef, const float* gamma, const float* beta,
                                       const float* running_mean, const float* running_var,
                                       int C, float eps) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C) return;
  coef[c] = running_mean[c];
  coef[C + c] = eval_scale(gamma[c], running_var[c], eps);
  coef[2 * C + c] = beta[c];
}

// ---- planes: forward map ---------------------------------------------------------------------

// y = (x - mu) * scale + shift [+ shortcut] [then ReLU as v < 0 ? 0 : v, like the CPU, so
// a NaN propagates]. No __restrict__: y may alias x (each unit is read, then written, by
// one thread).
template <int V>
__global__ void plane_forward_apply_kernel(float* y, const float* x, const float* shortcut,
                                           bool relu, const float* coef, int C, long long L,
                                           long long total) {
  const long long step = static_cast<long long>(gridDim.x) * blockDim.x;
  for (FlatCursor cur(blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x, step, L,
                      C);
       cur.u < total; cur.next()) {
    const float mu = coef[cur.c], scale = coef[C + cur.c], shift = coef[2 * C + cur.c];
    float r[V], s[V];
    load_unit<V>(r, x, cur.u);
    if (shortcut) load_unit<V>(s, shortcut, cur.u);
#pragma unroll
    for (int k = 0; k < V; ++k) {
      float v = (r[k] - mu) * scale + shift;
      if (shortcut) v += s[k];
      if (relu) v = v < 0.0f ? 0.0f : v;
      r[k] = v;
    }
    store_unit<V>(y, cur.u, r);
  }
}

// ---- planes: backward ------------------------------------------------------------------------

// part[k][c][s] (as above) for k = 0: sum(g), 1: sum(g * (x - mu)), 2: sum(x - mu), with
// mu = save_mean[c] and g = dy, or dy masked by mask > 0; g is stored to g_out if given.
template <int V>
__global__ void plane_grad_sums_kernel(double* part, float* g_out, const float* dy,
                                       const float* mask, const float* x,
                                       const float* save_mean, int C, long long L,
                                       long long units, long long chunk, int splits) {
  const int c = blockIdx.x, s = blockIdx.y;
  const float mu = save_mean[c];
  const double m = mu;
  double v[3] = {0.0, 0.0, 0.0};
  const long long j0 = s * chunk;
  const long long j1 = j0 + chunk < units ? j0 + chunk : units;
  for (ChannelCursor cur(j0 + threadIdx.x, L, blockDim.x); cur.j < j1; cur.next()) {
    const long long u = cur.unit(c, C);
    float g[V], p[V];
    load_unit<V>(g, dy, u);
    load_unit<V>(p, x, u);
    if (mask) {
      float y[V];
      load_unit<V>(y, mask, u);
#pragma unroll
      for (int k = 0; k < V; ++k) g[k] = y[k] > 0.0f ? g[k] : 0.0f;
    }
    if (g_out) store_unit<V>(g_out, u, g);
#pragma unroll
    for (int k = 0; k < V; ++k) {
      const double gk = g[k];
      const double d = static_cast<double>(p[k]) - m;
      v[0] += gk;
      v[1] += gk * d;
      v[2] += d;
    }
  }
  block_sum<3>(v);
  if (threadIdx.x == 0) {
    const long long cs = static_cast<long long>(C) * splits;
    const long long o = static_cast<long long>(c) * splits + s;
    part[o] = v[0];
    part[cs + o] = v[1];
    part[2 * cs + o] = v[2];
  }
}

// One warp per channel: dgamma/dbeta += and the dx coefficients -> coef[{0,1,2} * C + c].
__global__ void plane_backward_finish_kernel(float* coef, float* dgamma, float* dbeta,
                                             const double* part, const float* gamma,
                                             const float* save_invstd, int C, int splits,
                                             long long count) {
  const long long gw = (blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x) >> 5;
  if (gw >= C) return;  // whole warps leave together
  const int c = static_cast<int>(gw);
  const double sdy = warp_sum_partials(part, 0, c, C, splits);
  const double sdx = warp_sum_partials(part, 1, c, C, splits);
  const double sx = warp_sum_partials(part, 2, c, C, splits);
  if ((threadIdx.x & 31) != 0) return;
  const BackwardCoef k = backward_coef(sdy, sdx, sx, count, gamma[c], save_invstd[c],
                                       dgamma ? dgamma + c : nullptr,
                                       dbeta ? dbeta + c : nullptr);
  coef[c] = k.a;
  coef[C + c] = k.b;
  coef[2 * C + c] = k.c;
}

// dx = a * g - b * (x - mu) - c, g read from g (masked by mask > 0 when mask is given).
// No __restrict__: dx may alias g.
template <int V>
__global__ void plane_backward_apply_kernel(float* dx, const float* g, const float* mask,
                                            const float* x, const float* save_mean,
                                            const float* coef, int C, long long L,
                                            long long total) {
  const long long step = static_cast<long long>(gridDim.x) * blockDim.x;
  for (FlatCursor cur(blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x, step, L,
                      C);
       cur.u < total; cur.next()) {
    const float mu = save_mean[cur.c];
    const float a = coef[cur.c], b = coef[C + cur.c], cc = coef[2 * C + cur.c];
    float gv[V], p[V];
    load_unit<V>(gv, g, cur.u);
    load_unit<V>(p, x, cur.u);
    if (mask) {
      float y[V];
      load_unit<V>(y, mask, cur.u);
#pragma unroll
      for (int k = 0; k < V; ++k) gv[k] = y[k] > 0.0f ? gv[k] : 0.0f;
    }
#pragma unroll
    for (int k = 0; k < V; ++k) gv[k] = a * gv[k] - b * (p[k] - mu) - cc;
    store_unit<V>(dx, cur.u, gv);
  }
}

// ---- columns ------------------------------------------------------------------------------------
// Block (kColTile, kColRows): thread (tx, ty) owns column j = blockIdx.x * kColTile + tx and
// the rows n = ty, ty + kColRows, ... (summed in that order); the kColRows partials of a
// column are then added in row-group order by thread (tx, 0).

__global__ void column_forward_train_kernel(float* y, int ldy, float* save_mean,
                                            float* save_invstd, float* running_mean,
                                            float* running_var, Cols x, const float* gamma,
                                            const float* beta, int N, float eps,
                                            float momentum) {
  __shared__ double sums[2][kColRows][kColTile];
  __shared__ float affine[3][kColTile];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int C = x.ca + x.cb;
  const int j = blockIdx.x * kColTile + tx;
  const bool active = j < C;
  double K = 0.0, s1 = 0.0, s2 = 0.0;
  if (active) {
    K = x.at(0, j);
    for (int n = ty; n < N; n += kColRows) {
      const double d = static_cast<double>(x.at(n, j)) - K;
      s1 += d;
      s2 += d * d;
    }
  }
  sums[0][ty][tx] = s1;
  sums[1][ty][tx] = s2;
  __syncthreads();
  if (ty == 0 && active) {
    double t1 = 0.0, t2 = 0.0;
    for (int r = 0; r < kColRows; ++r) {
      t1 += sums[0][r][tx];
      t2 += sums[1][r][tx];
    }
    double mean, var;
    moments_from_shifted(K, t1, t2, N, &mean, &var);
    const double is =
        finish_train_stats(mean, var, N, eps, momentum, save_mean + j, save_invstd + j,
                           running_mean ? running_mean + j : nullptr,
                           running_var ? running_var + j : nullptr);
    const Affine f = train_affine(mean, is, gamma[j], beta[j]);
    affine[0][tx] = f.mu;
    affine[1][tx] = f.scale;
    affine[2][tx] = f.shift;
  }
  __syncthreads();
  if (!active) return;
  const float mu = affine[0][tx], scale = affine[1][tx], shift = affine[2][tx];
  for (int n = ty; n < N; n += kColRows)
    y[static_cast<long long>(n) * ldy + j] = (x.at(n, j) - mu) * scale + shift;
}

// A pure map: blocks tile the columns (x) and the rows (y, grid-stride over row groups).
__global__ void column_forward_eval_kernel(float* y, int ldy, Cols x, const float* gamma,
                                           const float* beta, const float* running_mean,
                                           const float* running_var, int N, float eps) {
  const int j = blockIdx.x * kColTile + threadIdx.x;
  if (j >= x.ca + x.cb) return;
  const float mu = running_mean[j];
  const float scale = eval_scale(gamma[j], running_var[j], eps);
  const float shift = beta[j];
  for (long long n = static_cast<long long>(blockIdx.y) * kColRows + threadIdx.y; n < N;
       n += static_cast<long long>(gridDim.y) * kColRows)
    y[n * ldy + j] = (x.at(n, j) - mu) * scale + shift;
}

__global__ void column_backward_kernel(ColsOut dx, float* dgamma, float* dbeta, Cols dy,
                                       Cols x, const float* gamma, const float* save_mean,
                                       const float* save_invstd, int N) {
  __shared__ double sums[3][kColRows][kColTile];
  __shared__ float coef[3][kColTile];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int C = x.ca + x.cb;
  const int j = blockIdx.x * kColTile + tx;
  const bool active = j < C;
  double a = 0.0, b = 0.0, e = 0.0;
  float mu = 0.0f;
  if (active) {
    mu = save_mean[j];
    const double m = mu;
    for (int n = ty; n < N; n += kColRows) {
      const double g = dy.at(n, j);
      const double d = static_cast<double>(x.at(n, j)) - m;
      a += g;
      b += g * d;
      e += d;
    }
  }
  sums[0][ty][tx] = a;
  sums[1][ty][tx] = b;
  sums[2][ty][tx] = e;
  __syncthreads();
  if (ty == 0 && active) {
    double t0 = 0.0, t1 = 0.0, t2 = 0.0;
    for (int r = 0; r < kColRows; ++r) {
      t0 += sums[0][r][tx];
      t1 += sums[1][r][tx];
      t2 += sums[2][r][tx];
    }
    const BackwardCoef k = backward_coef(t0, t1, t2, N, gamma[j], save_invstd[j],
                                         dgamma ? dgamma + j : nullptr,
                                         dbeta ? dbeta + j : nullptr);
    coef[0][tx] = k.a;
    coef[1][tx] = k.b;
    coef[2][tx] = k.c;
  }
  __syncthreads();
  if (!active || (dx.a == nullptr && dx.b == nullptr)) return;
  const float A = coef[0][tx], B = coef[1][tx], Cc = coef[2][tx];
  for (int n = ty; n < N; n += kColRows) {
    const float g = dy.at(n, j);  // read before the (possibly aliasing) write below
    *dx.at(n, j) = A * g - B * (x.at(n, j) - mu) - Cc;
  }
}

}  // namespace

// ---- launchers (declared in bn_common.cuh) ---------------------------------------------------

void plane_train_stats(float* coef, float* save_mean, float* save_invstd, float* running_mean,
                       float* running_var, const float* x, const float* gamma,
                       const float* beta, int N, int C, int HW, float eps, float momentum,
                       const char* op) {
  const bool v4 = HW % 4 == 0 && aligned16(x);
  const int V = v4 ? 4 : 1;
  const long long L = HW / V;
  const long long units = static_cast<long long>(N) * L;
  const Split sp = split_channel(units);
  Scratch part(sizeof(double) * 2 * static_cast<size_t>(C) * sp.splits, op);
  const dim3 grid(static_cast<unsigned>(C), static_cast<unsigned>(sp.splits));
  if (v4)
    plane_stats_kernel<4><<<grid, kStatThreads, 0, stream()>>>(part.as<double>(), x, C, L,
                                                               units, sp.chunk, sp.splits);
  else
    plane_stats_kernel<1><<<grid, kStatThreads, 0, stream()>>>(part.as<double>(), x, C, L,
                                                               units, sp.chunk, sp.splits);
  TFE_CUDA_CHECK_LAUNCH(op);
  plane_train_finish_kernel<<<ceil_div(static_cast<long long>(C) * 32, kFinishThreads),
                              kFinishThreads, 0, stream()>>>(
      coef, save_mean, save_invstd, running_mean, running_var, part.as<double>(), x, gamma,
      beta, C, sp.splits, HW, static_cast<long long>(N) * HW, eps, momentum);
  TFE_CUDA_CHECK_LAUNCH(op);
}

void plane_eval_coef(float* coef, const float* gamma, const float* beta,
                     const float* running_mean, const float* running_var, int C, float eps,
                     const char* op) {
  plane_eval_coef_kernel<<<ceil_div(C, 128), 128, 0, stream()>>>(coef, gamma, beta,
                                                                 running_mean, running_var,
                                                                 C, eps);
  TFE_CUDA_CHECK_LAUNCH(op);
}

void plane_forward_apply(float* y, const float* x, const float* shortcut, bool relu,
                         const float* coef, int N, int C, int HW, const char* op) {
  const bool v4 = HW % 4 == 0 && aligned16(y) && aligned16(x) && aligned16(shortcut);
  const int V = v4 ? 4 : 1;
  const long long L = HW / V;
  const long long total = static_cast<long long>(N) * C * L;
  const unsigned blocks = flat_blocks(total, kApplyThreads);
  if (v4)
    plane_forward_apply_kernel<4><<<blocks, kApplyThreads, 0, stream()>>>(y, x, shortcut, relu,
                                                                         coef, C, L, total);
  else
    plane_forward_apply_kernel<1><<<blocks, kApplyThreads, 0, stream()>>>(y, x, shortcut, relu,
                                                                         coef, C, L, total);
  TFE_CUDA_CHECK_LAUNCH(op);
}

void plane_backward(float* dx, float* g_out, float* dgamma, float* dbeta, const float* dy,
                    const float* mask, const float* x, const float* gamma,
                    const float* save_mean, const float* save_invstd, int N, int C, int HW,
                    const char* op) {
  const bool v4 = HW % 4 == 0 && aligned16(dx) && aligned16(g_out) && aligned16(dy) &&
                  aligned16(mask) && aligned16(x);
  const int V = v4 ? 4 : 1;
  const long long L = HW / V;
  const long long units = static_cast<long long>(N) * L;
  const Split sp = split_channel(units);
  Scratch part(sizeof(double) * 3 * static_cast<size_t>(C) * sp.splits, op);
  Scratch coef(sizeof(float) * 3 * static_cast<size_t>(C), op);
  const dim3 grid(static_cast<unsigned>(C), static_cast<unsigned>(sp.splits));
  if (v4)
    plane_grad_sums_kernel<4><<<grid, kStatThreads, 0, stream()>>>(
        part.as<double>(), g_out, dy, mask, x, save_mean, C, L, units, sp.chunk, sp.splits);
  else
    plane_grad_sums_kernel<1><<<grid, kStatThreads, 0, stream()>>>(
        part.as<double>(), g_out, dy, mask, x, save_mean, C, L, units, sp.chunk, sp.splits);
  TFE_CUDA_CHECK_LAUNCH(op);
  plane_backward_finish_kernel<<<ceil_div(static_cast<long long>(C) * 32, kFinishThreads),
                                 kFinishThreads, 0, stream()>>>(
      coef.as<float>(), dgamma, dbeta, part.as<double>(), gamma, save_invstd, C, sp.splits,
      static_cast<long long>(N) * HW);
  TFE_CUDA_CHECK_LAUNCH(op);
  if (!dx) return;
  // Pass 2 reads the masked gradient back from g_out when it was stored (one read instead
  // of dy and the mask).
  const float* g = g_out ? g_out : dy;
  const float* m = g_out ? nullptr : mask;
  const long long total = static_cast<long long>(N) * C * L;
  const unsigned blocks = flat_blocks(total, kApplyThreads);
  if (v4)
    plane_backward_apply_kernel<4><<<blocks, kApplyThreads, 0, stream()>>>(
        dx, g, m, x, save_mean, coef.as<float>(), C, L, total);
  else
    plane_backward_apply_kernel<1><<<blocks, kApplyThreads, 0, stream()>>>(
        dx, g, m, x, save_mean, coef.as<float>(), C, L, total);
  TFE_CUDA_CHECK_LAUNCH(op);
}

void column_forward_train(float* y, int ldy, float* save_mean, float* save_invstd,
                          float* running_mean, float* running_var, Cols x, const float* gamma,
                          const float* beta, int N, float eps, float momentum, const char* op) {
  const int C = x.ca + x.cb;
  const dim3 block(kColTile, kColRows);
  column_forward_train_kernel<<<ceil_div(C, kColTile), block, 0, stream()>>>(
      y, ldy, save_mean, save_invstd, running_mean, running_var, x, gamma, beta, N, eps,
      momentum);
  TFE_CUDA_CHECK_LAUNCH(op);
}

void column_forward_eval(float* y, int ldy, Cols x, const float* gamma, const float* beta,
                         const float* running_mean, const float* running_var, int N,
                         float eps, const char* op) {
  const int C = x.ca + x.cb;
  // About 8 rows per thread; the y dimension of a grid is limited to 65535.
  int row_blocks = ceil_div(N, kColRows * 8);
  if (row_blocks > 65535) row_blocks = 65535;
  const dim3 grid(static_cast<unsigned>(ceil_div(C, kColTile)), static_cast<unsigned>(row_blocks));
  const dim3 block(kColTile, kColRows);
  column_forward_eval_kernel<<<grid, block, 0, stream()>>>(y, ldy, x, gamma, beta,
                                                           running_mean, running_var, N, eps);
  TFE_CUDA_CHECK_LAUNCH(op);
}

void column_backward(ColsOut dx, float* dgamma, float* dbeta, Cols dy, Cols x,
                     const float* gamma, const float* save_mean, const float* save_invstd,
                     int N, const char* op) {
  const int C = x.ca + x.cb;
  const dim3 block(kColTile, kColRows);
  column_backward_kernel<<<ceil_div(C, kColTile), block, 0, stream()>>>(
      dx, dgamma, dbeta, dy, x, gamma, save_mean, save_invstd, N);
  TFE_CUDA_CHECK_LAUNCH(op);
}

}  // namespace bn

// ---- the batch-norm ops ---------------------------------------------------------------------

void batchnorm_forward_train(float* y, float* save_mean, float* save_invstd,
                             float* running_mean, float* running_var, const float* x,
                             const float* gamma, const float* beta, int N, int C, int HW,
                             float eps, float momentum) {
  constexpr const char* op = "batchnorm_forward_train";
  if (N <= 0 || C <= 0 || HW <= 0) return;
  if (HW == 1) {
    bn::column_forward_train(y, C, save_mean, save_invstd, running_mean, running_var,
                             bn::Cols{x, nullptr, C, 0}, gamma, beta, N, eps, momentum, op);
    return;
  }
  Scratch coef(sizeof(float) * 3 * static_cast<size_t>(C), op);
  bn::plane_train_stats(coef.as<float>(), save_mean, save_invstd, running_mean, running_var, x,
                        gamma, beta, N, C, HW, eps, momentum, op);
  bn::plane_forward_apply(y, x, nullptr, false, coef.as<float>(), N, C, HW, op);
}

void batchnorm_forward_eval(float* y, const float* x, const float* gamma, const float* beta,
                            const float* running_mean, const float* running_var, int N, int C,
                            int HW, float eps) {
  constexpr const char* op = "batchnorm_forward_eval";
  if (N <= 0 || C <= 0 || HW <= 0) return;
  if (HW == 1) {
    bn::column_forward_eval(y, C, bn::Cols{x, nullptr, C, 0}, gamma, beta, running_mean,
                            running_var, N, eps, op);
    return;
  }
  Scratch coef(sizeof(float) * 3 * static_cast<size_t>(C), op);
  bn::plane_eval_coef(coef.as<float>(), gamma, beta, running_mean, running_var, C, eps, op);
  bn::plane_forward_apply(y, x, nullptr, false, coef.as<float>(), N, C, HW, op);
}

void batchnorm_backward(float* dx, float* dgamma, float* dbeta, const float* dy,
                        const float* x, const float* gamma, const float* save_mean,
                        const float* save_invstd, int N, int C, int HW) {
  constexpr const char* op = "batchnorm_backward";
  if (N <= 0 || C <= 0 || HW <= 0) return;
  if (!dx && !dgamma && !dbeta) return;
  if (HW == 1) {
    bn::column_backward(bn::ColsOut{dx, nullptr, C, 0}, dgamma, dbeta,
                        bn::Cols{dy, nullptr, C, 0}, bn::Cols{x, nullptr, C, 0}, gamma,
                        save_mean, save_invstd, N, op);
    return;
  }
  bn::plane_backward(dx, nullptr, dgamma, dbeta, dy, nullptr, x, gamma, save_mean, save_invstd,
                     N, C, HW, op);
}

}  // namespace tfe::cuda
