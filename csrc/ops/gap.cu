// Global average pooling on the GPU (semantics as cpu/gap.cpp).
//
//   forward:  y[N, C] = mean over HW of x[N, C, HW]
//   backward: dx[N, C, HW] = dy[N, C] / HW (broadcast)
//
// Forward: a group of G lanes per plane, G = the smallest power of two >= HW, at most 32
// (HW is 9..144 at the end of the network, so a full warp per plane would mostly idle).
// Lane l sums elements l, l + G, ... of its plane in double, then the group adds its lanes
// with a shuffle tree inside the group (width G); y = float(sum * (1.0 / HW)), as the CPU
// rounds it. G depends on HW only, so the order of every sum is fixed.
// Backward: a flat pass over dx in units of 4 floats when HW % 4 == 0 and the pointer is
// aligned (else single floats), the plane of each unit tracked by a cursor (no division in
// the loop); the value dy / HW is a float division, the CPU's rounding.
#include "ops/bn_common.cuh"
#include "ops/cuda_kernels.h"

namespace tfe::cuda {
namespace {

constexpr int kThreads = 256;  // a multiple of 32, so groups never straddle warps

// Thread t belongs to plane t >> log2G (lane t & (G - 1) within it). The loop runs over
// block-uniform bases, so every lane of a warp reaches the shuffles together.
__global__ void gap_forward_kernel(float* __restrict__ y, const float* __restrict__ x,
                                   long long planes, long long HW, int log2G, double inv) {
  const int G = 1 << log2G;
  const long long total = planes << log2G;
  const long long stride = static_cast<long long>(gridDim.x) * blockDim.x;
  for (long long base = static_cast<long long>(blockIdx.x) * blockDim.x; base < total;
       base += stride) {
    const long long t = base + threadIdx.x;
    const long long p = t >> log2G;
    const int lane = static_cast<int>(t & (G - 1));
    double s = 0.0;
    if (p < planes) {
      const float* q = x + p * HW;
      for (long long i = lane; i < HW; i += G) s += q[i];
    }
    for (int off = G >> 1; off > 0; off >>= 1) s += __shfl_down_sync(bn::kFullMask, s, off, G);
    if (lane == 0 && p < planes) y[p] = static_cast<float>(s * inv);
  }
}

template <int V>
__global__ void gap_backward_kernel(float* __restrict__ dx, const float* __restrict__ dy,
                                    int C, long long L, long long total, float div) {
  const long long step = static_cast<long long>(gridDim.x) * blockDim.x;
  for (bn::FlatCursor cur(blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x, step,
                          L, C);
       cur.u < total; cur.next()) {
    const float v = dy[cur.plane] / div;
    float r[V];
#pragma unroll
    for (int k = 0; k < V; ++k) r[k] = v;
    bn::store_unit<V>(dx, cur.u, r);
  }
}

}  // namespace

void gap_forward(float* y, const float* x, int N, int C, int HW) {
  const long long planes = static_cast<long long>(N) * C;
  if (planes <= 0) return;
  int log2G = 0;
  while (log2G < 5 && (1LL << log2G) < HW) ++log2G;
  const long long threads = planes << log2G;
  gap_forward_kernel<<<elementwise_blocks(threads, kThreads), kThreads, 0, stream()>>>(
      y, x, planes, HW, log2G, 1.0 / static_cast<double>(HW));
  TFE_CUDA_CHECK_LAUNCH("gap_forward");
}

void gap_backward(float* dx, const float* dy, int N, int C, int HW) {
  if (N <= 0 || C <= 0 || HW <= 0) return;
  const bool v4 = HW % 4 == 0 && bn::aligned16(dx);
  const long long L = v4 ? HW / 4 : HW;
  const long long total = static_cast<long long>(N) * C * L;
  const unsigned blocks = bn::flat_blocks(total, kThreads);
  const float div = static_cast<float>(HW);
  if (v4)
    gap_backward_kernel<4><<<blocks, kThreads, 0, stream()>>>(dx, dy, C, L, total, div);
  else
    gap_backward_kernel<1><<<blocks, kThreads, 0, stream()>>>(dx, dy, C, L, total, div);
  TFE_CUDA_CHECK_LAUNCH("gap_backward");
}

}  // namespace tfe::cuda
