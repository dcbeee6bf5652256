// Batch-norm building blocks shared by batchnorm.cu, residual.cu and tfe_head.cu (and the
// vector/cursor helpers by gap.cu). The GPU counterpart of bn_common.h, with the same
// numerics and the same per-channel formulas (one header for both, bn_math.h): statistics
// are sums of (x - K) and (x - K)^2 in double with the shift K = the channel's first
// element, the forward folds the float rounding of the mean into the shift (train_affine)
// and the backward recovers the exact mean from x (GradSums::sx).
//
// Two layouts, as on the CPU:
//  * "planes": x[N, C, HW] (BatchNorm2d, the residual epilogue). A channel is N strided
//    planes of HW floats. The channel count is small (16..80) and a channel large (up to
//    128 x 2304 values), so one block per channel would leave most of the GPU idle: each
//    channel is cut into `splits` fixed chunks, one block per (channel, chunk) writes a
//    double partial sum to scratch, a warp per channel adds its partials in chunk order,
//    and a flat elementwise pass applies the per-channel affine map. The number of chunks
//    and the block size depend only on the shape, so each sum has a fixed order and the
//    bits are the same run after run (no atomics anywhere).
//  * "columns": x[N, C] rows (BatchNorm1d, and the two halves of the TFE head's features,
//    which are separate arrays). A block owns 32 adjacent columns (one warp wide, so each
//    row read is coalesced) and 16 row groups; a channel's partials are combined in shared
//    memory in row-group order, so the block does statistics and output in one launch.
//
// The statistics kernels read x once; the planes forward reads it a second time in the
// apply pass (avoiding that would need a grid-wide barrier between statistics and output;
// when the tensor fits in L2, as the smaller stages' do, the second read is served there).
#pragma once
#include <cstdint>

#include "core/check.cuh"
#include "ops/bn_math.h"

namespace tfe::cuda::bn {

// ---- numerics: the per-channel formulas, shared with the CPU kernels (bn_math.h) ---------
using tfe::bn::Affine;
using tfe::bn::BackwardCoef;
using tfe::bn::backward_coef;
using tfe::bn::eval_scale;
using tfe::bn::finish_train_stats;
using tfe::bn::moments_from_shifted;
using tfe::bn::train_affine;

// ---- fixed-order reductions ------------------------------------------------------------

constexpr unsigned kFullMask = 0xffffffffu;

// Sum over the 32 lanes of a warp by a fixed shuffle tree; the total lands in lane 0.
// All 32 lanes must call it.
__device__ inline double warp_sum(double v) {
  for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(kFullMask, v, off);
  return v;
}

// Sums NS values over the block (blockDim.x a multiple of 32, blockDim.y == 1): a shuffle
// tree per warp, then warp 0 adds the warp totals by the same tree. The totals are valid in
// thread 0 only. Every thread of the block must call it, once per kernel (the shared
// buffer is not re-synchronised for a second use).
template <int NS>
__device__ inline void block_sum(double (&v)[NS]) {
  __shared__ double partial[NS][32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int nwarps = blockDim.x >> 5;
#pragma unroll
  for (int k = 0; k < NS; ++k) v[k] = warp_sum(v[k]);
  if (lane == 0) {
#pragma unroll
    for (int k = 0; k < NS; ++k) partial[k][warp] = v[k];
  }
  __syncthreads();
  if (warp == 0) {
#pragma unroll
    for (int k = 0; k < NS; ++k) v[k] = warp_sum(lane < nwarps ? partial[k][lane] : 0.0);
  }
}

// ---- vectorised access -------------------------------------------------------------------
// Kernels on the planes layout work in "units" of V floats (V = 4 when HW % 4 == 0 and
// every pointer involved is 16-byte aligned, else 1): one float4 load moves 16 bytes with
// one instruction, which matters because the statistics also spend double-precision work
// on every element.

inline bool aligned16(const void* p) {
  return p == nullptr || (reinterpret_cast<uintptr_t>(p) & 15u) == 0;
}

template <int V>
__device__ inline void load_unit(float (&r)[V], const float* p, long long unit) {
  if constexpr (V == 4) {
    const float4 t = reinterpret_cast<const float4*>(p)[unit];
    r[0] = t.x;
    r[1] = t.y;
    r[2] = t.z;
    r[3] = t.w;
  } else {
    static_assert(V == 1, "unit width is 1 or 4 floats");
    r[0] = p[unit];
  }
}

template <int V>
__device__ inline void store_unit(float* p, long long unit, const float (&r)[V]) {
  if constexpr (V == 4) {
    reinterpret_cast<float4*>(p)[unit] = make_float4(r[0], r[1], r[2], r[3]);
  } else {
    static_assert(V == 1, "unit width is 1 or 4 floats");
    p[unit] = r[0];
  }
}

// ---- index cursors (no division inside the loops) ------------------------------------------

// Walks the elements of ONE channel c of x[N, C, L] (L units per plane) in the channel's
// own order j = n * L + i, starting at j and advancing by `step`. Keeps (n, i) with
// 0 <= i < L by adding the precomputed quotient and remainder of step / L and carrying
// once (i + di < 2L).
struct ChannelCursor {
  long long j, n, i;
  long long L, step, dn, di;
  __device__ ChannelCursor(long long j0, long long L_, long long step_)
      : j(j0), n(j0 / L_), i(j0 - (j0 / L_) * L_), L(L_), step(step_), dn(step_ / L_),
        di(step_ - (step_ / L_) * L_) {}
  // Unit offset of the current element in x[N, C, L].
  __device__ long long unit(int c, int C) const { return (n * C + c) * L + i; }
  __device__ void next() {
    j += step;
    n += dn;
    i += di;
    if (i >= L) {
      i -= L;
      ++n;
    }
  }
};

// Walks flat unit indices u of x[P, L] (P = N * C planes of L units) from u0 by `step`,
// tracking the plane p = u / L, the position u % L and the channel p % C, again by adding
// the precomputed quotient/remainder of step and carrying once (pos + dpos < 2L,
// c + dc + 1 < 2C).
struct FlatCursor {
  long long u, plane, pos;
  int c;
  long long L, step, dplane, dpos;
  int C, dc;
  __device__ FlatCursor(long long u0, long long step_, long long L_, int C_)
      : u(u0), plane(u0 / L_), pos(u0 - (u0 / L_) * L_), c(static_cast<int>((u0 / L_) % C_)),
        L(L_), step(step_), dplane(step_ / L_), dpos(step_ - (step_ / L_) * L_), C(C_),
        dc(static_cast<int>((step_ / L_) % C_)) {}
  __device__ void next() {
    u += step;
    plane += dplane;
    pos += dpos;
    int cc = c + dc;
    if (pos >= L) {
      pos -= L;
      ++plane;
      ++cc;
    }
    if (cc >= C) cc -= C;
    c = cc;
  }
};

// Grid of a flat pass over `units` units with `threads` per block: enough blocks to keep
// the memory system busy, few enough that each thread handles a few units (so the cursor's
// set-up divisions are amortised). The result does not depend on it (pure maps).
inline unsigned flat_blocks(long long units, int threads) {
  long long b = (units + threads - 1) / threads;
  if (b > 2048) b = 2048;
  return static_cast<unsigned>(b < 1 ? 1 : b);
}

// ---- host-side launchers (batchnorm.cu) -----------------------------------------------------
// `op` names the public op in launch errors. All enqueue on stream() and never synchronise.

// Planes layout, training: per-channel batch statistics of x[N, C, HW]; writes save_mean,
// save_invstd, updates the running stats (nullable) and fills coef[3 * C] (device) with the
// affine map of each channel: mu[C], scale[C], shift[C].
void plane_train_stats(float* coef, float* save_mean, float* save_invstd, float* running_mean,
                       float* running_var, const float* x, const float* gamma,
                       const float* beta, int N, int C, int HW, float eps, float momentum,
                       const char* op);
// Planes layout, eval: coef[3 * C] = running_mean, gamma / sqrt(running_var + eps), beta.
void plane_eval_coef(float* coef, const float* gamma, const float* beta,
                     const float* running_mean, const float* running_var, int C, float eps,
                     const char* op);
// y = (x - mu) * scale + shift (+ shortcut, when not null) (then max(., 0) when relu).
void plane_forward_apply(float* y, const float* x, const float* shortcut, bool relu,
                         const float* coef, int N, int C, int HW, const char* op);
// Backward of the planes layout with g = dy, or g = dy * (mask > 0) when mask is not null
// (the residual epilogue's ReLU, mask = forward output y). g_out (nullable) receives g;
// dx (nullable) is assigned, dgamma/dbeta (nullable) accumulate.
void plane_backward(float* dx, float* g_out, float* dgamma, float* dbeta, const float* dy,
                    const float* mask, const float* x, const float* gamma,
                    const float* save_mean, const float* save_invstd, int N, int C, int HW,
                    const char* op);

// Columns layout: a logical [N, C] matrix stored as two row-major blocks side by side,
// columns [0, ca) in a[N, ca] and [ca, ca + cb) in b[N, cb] (BatchNorm1d: b unused, cb = 0;
// the TFE head: zi and ze).
struct Cols {
  const float* a;
  const float* b;
  int ca, cb;
  __device__ float at(long long n, int j) const {
    return j < ca ? a[n * ca + j] : b[n * cb + (j - ca)];
  }
};
struct ColsOut {
  float* a;
  float* b;
  int ca, cb;
  __device__ float* at(long long n, int j) const {
    return j < ca ? a + (n * ca + j) : b + (n * cb + (j - ca));
  }
};

// Training-mode BatchNorm1d over C = x.ca + x.cb columns: y[n * ldy + j]; writes
// save_mean/save_invstd[C], updates running stats (nullable).
void column_forward_train(float* y, int ldy, float* save_mean, float* save_invstd,
                          float* running_mean, float* running_var, Cols x, const float* gamma,
                          const float* beta, int N, float eps, float momentum, const char* op);
// Eval-mode BatchNorm1d with running statistics, same layout.
void column_forward_eval(float* y, int ldy, Cols x, const float* gamma, const float* beta,
                         const float* running_mean, const float* running_var, int N,
                         float eps, const char* op);
// Backward of column_forward_train: dx assigned (skipped when dx.a and dx.b are both
// null), dgamma/dbeta += (nullable). dx may alias dy element for element: pass 2 reads
// each element before the same thread overwrites it, and pass 1 only reads.
void column_backward(ColsOut dx, float* dgamma, float* dbeta, Cols dy, Cols x,
                     const float* gamma, const float* save_mean, const float* save_invstd,
                     int N, const char* op);

}  // namespace tfe::cuda::bn
