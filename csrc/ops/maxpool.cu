// 2-d max pooling on the GPU, square window k, stride, implicit -inf padding pad (PyTorch
// semantics; see cpu/maxpool.cpp, whose results these kernels reproduce bit for bit).
//
//   forward:  x[N, C, H, W] -> y[N, C, Ho, Wo], Ho = (H + 2*pad - k) / stride + 1 (same for
//             Wo); argmax[N, C, Ho, Wo] (int32) = flat index h*W + w of the chosen input in
//             its [H, W] plane. One thread per output: the window, clipped to the plane (the
//             padding is -inf and never chosen), is scanned row by row and the FIRST maximum
//             wins; a NaN beats numbers and the first NaN is kept. A window whose inputs are
//             all -inf reports its first in-plane element, as the CPU does.
//   backward: dx[N, C, H, W] ASSIGNED: dx[p] = sum of dy[o] over the outputs o of the same
//             plane with argmax[o] == p, summed in increasing o, starting from +0.0f (exactly
//             the CPU's memset-then-scatter order, so the bits match).
//
// The backward receives no window geometry (k, stride, pad), only Ho and Wo, so it cannot
// enumerate the windows that contain an input. It stays deterministic without floating-point
// atomics in three passes:
//   1. init:   first[p] = INT_MAX, last[p] = -1 for every input element p;
//   2. mark:   one thread per output o (in-plane index i) does atomicMin(first[argmax[o]], i)
//              and atomicMax(last[argmax[o]], i). Integer min/max commute, so the result
//              does not depend on the order in which the threads run;
//   3. gather: one thread per input p scans the outputs first[p]..last[p] of its plane in
//              increasing order and adds dy[o] where argmax[o] == p.
// All outputs that point at p have windows containing p, so [first, last] spans at most
// about (k / stride) output rows: one element when windows do not overlap (stride >= k),
// about Wo + 2 for k = 3, stride = 2. Inputs no window chose have last < first: dx = 0.
#include <climits>
#include <cstdint>

#include "core/check.cuh"
#include "ops/cuda_kernels.h"

namespace tfe::cuda {

namespace {
constexpr int kThreads = 256;

__global__ void maxpool2d_forward_kernel(float* __restrict__ y, int32_t* __restrict__ argmax,
                                         const float* __restrict__ x, long long total, int H,
                                         int W, int Ho, int Wo, int k, int stride, int pad) {
  const long long in_plane = (long long)H * W;
  for (long long o = blockIdx.x * (long long)blockDim.x + threadIdx.x; o < total;
       o += (long long)gridDim.x * blockDim.x) {
    const int ow = (int)(o % Wo);
    const long long t = o / Wo;
    const int oh = (int)(t % Ho);
    const long long pl = t / Ho;  // plane index n*C + c
    const float* p = x + pl * in_plane;
    // Window rows [h0, h0 + k) and columns [w0, w0 + k), clipped to the plane.
    const int h0 = oh * stride - pad;
    const int w0 = ow * stride - pad;
    const int hs = h0 < 0 ? 0 : h0;
    const int he = h0 + k > H ? H : h0 + k;
    const int ws = w0 < 0 ? 0 : w0;
    const int we = w0 + k > W ? W : w0 + k;
    float best = -INFINITY;
    int bi = hs * W + ws;  // an all -inf window: its first element is "the first max"
    for (int h = hs; h < he; ++h) {
      for (int w = ws; w < we; ++w) {
        const float v = p[h * W + w];
        // Strictly greater keeps the first of equal maxima; the NaN clause lets the first
        // NaN win over numbers and keeps it against later NaNs (best != best then).
        if (v > best || (v != v && best == best)) {
          best = v;
          bi = h * W + w;
        }
      }
    }
    y[o] = best;
    argmax[o] = bi;
  }
}

__global__ void maxpool2d_backward_init_kernel(int32_t* __restrict__ first,
                                               int32_t* __restrict__ last, long long n) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
       i += (long long)gridDim.x * blockDim.x) {
    first[i] = INT_MAX;
    last[i] = -1;
  }
}

// first/last are indexed by the global input element (plane * in_plane + argmax) and hold
// in-plane output indices.
__global__ void maxpool2d_backward_mark_kernel(int32_t* __restrict__ first,
                                               int32_t* __restrict__ last,
                                               const int32_t* __restrict__ argmax,
                                               long long total_out, long long in_plane,
                                               long long out_plane) {
  for (long long o = blockIdx.x * (long long)blockDim.x + threadIdx.x; o < total_out;
       o += (long long)gridDim.x * blockDim.x) {
    const long long pl = o / out_plane;
    const int i = (int)(o - pl * out_plane);
    const long long target = pl * in_plane + argmax[o];
    atomicMin(first + target, i);
    atomicMax(last + target, i);
  }
}

__global__ void maxpool2d_backward_gather_kernel(float* __restrict__ dx,
                                                 const float* __restrict__ dy,
                                                 const int32_t* __restrict__ argmax,
                                                 const int32_t* __restrict__ first,
                                                 const int32_t* __restrict__ last,
                                                 long long total_in, long long in_plane,
                                                 long long out_plane) {
  for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < total_in;
       e += (long long)gridDim.x * blockDim.x) {
    const long long pl = e / in_plane;
    const int32_t local = (int32_t)(e - pl * in_plane);  // this input's h*W + w
    const int32_t* a = argmax + pl * out_plane;
    const float* g = dy + pl * out_plane;
    const int32_t lo = first[e];
    const int32_t hi = last[e];  // -1 when no window chose this input: the loop is empty
    float s = 0.0f;
    for (int32_t i = lo; i <= hi; ++i)
      if (a[i] == local) s += g[i];
    dx[e] = s;
  }
}
}  // namespace

void maxpool2d_forward(float* y, int32_t* argmax, const float* x, int N, int C, int H, int W,
                       int k, int stride, int pad) {
  const int Ho = (H + 2 * pad - k) / stride + 1;
  const int Wo = (W + 2 * pad - k) / stride + 1;
  const long long total = (long long)N * C * Ho * Wo;
  if (total <= 0) return;
  maxpool2d_forward_kernel<<<elementwise_blocks(total, kThreads), kThreads, 0, stream()>>>(
      y, argmax, x, total, H, W, Ho, Wo, k, stride, pad);
  TFE_CUDA_CHECK_LAUNCH("maxpool2d_forward");
}

void maxpool2d_backward(float* dx, const float* dy, const int32_t* argmax, int N, int C, int H,
                        int W, int Ho, int Wo) {
  const long long in_plane = (long long)H * W;
  const long long out_plane = (long long)Ho * Wo;
  const long long total_in = (long long)N * C * in_plane;
  const long long total_out = (long long)N * C * out_plane;
  if (total_in <= 0) return;
  Scratch s(2 * (size_t)total_in * sizeof(int32_t), "maxpool2d_backward");
  int32_t* first = s.as<int32_t>();
  int32_t* last = first + total_in;
  const unsigned in_blocks = elementwise_blocks(total_in, kThreads);
  maxpool2d_backward_init_kernel<<<in_blocks, kThreads, 0, stream()>>>(first, last, total_in);
  TFE_CUDA_CHECK_LAUNCH("maxpool2d_backward");
  if (total_out > 0) {
    maxpool2d_backward_mark_kernel<<<elementwise_blocks(total_out, kThreads), kThreads, 0,
                                     stream()>>>(first, last, argmax, total_out, in_plane,
                                                 out_plane);
    TFE_CUDA_CHECK_LAUNCH("maxpool2d_backward");
  }
  maxpool2d_backward_gather_kernel<<<in_blocks, kThreads, 0, stream()>>>(
      dx, dy, argmax, first, last, total_in, in_plane, out_plane);
  TFE_CUDA_CHECK_LAUNCH("maxpool2d_backward");
}

}  // namespace tfe::cuda
