// ReLU on the GPU: y = max(x, 0); backward dx = dy * (y > 0).
// Flat [n] arrays, one thread per element in a grid-stride loop (memory bound: the
// launch shape only has to keep enough bytes in flight).
#include "core/check.cuh"
#include "ops/cuda_kernels.h"

namespace tfe::cuda {

namespace {
constexpr int kThreads = 256;

__global__ void relu_forward_kernel(float* __restrict__ y, const float* __restrict__ x,
                                    long long n) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
       i += (long long)gridDim.x * blockDim.x) {
    // The CPU's expression: a NaN propagates (fmaxf would return 0) and -0 stays -0.
    const float v = x[i];
    y[i] = v < 0.0f ? 0.0f : v;
  }
}

__global__ void relu_backward_kernel(float* __restrict__ dx, const float* __restrict__ dy,
                                     const float* __restrict__ y, long long n) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
       i += (long long)gridDim.x * blockDim.x)
    dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}
}  // namespace

void relu_forward(float* y, const float* x, int64_t n) {
  if (n == 0) return;
  relu_forward_kernel<<<elementwise_blocks(n, kThreads), kThreads, 0, stream()>>>(y, x, n);
  TFE_CUDA_CHECK_LAUNCH("relu_forward");
}

void relu_backward(float* dx, const float* dy, const float* y, int64_t n) {
  if (n == 0) return;
  relu_backward_kernel<<<elementwise_blocks(n, kThreads), kThreads, 0, stream()>>>(dx, dy, y,
                                                                                    n);
  TFE_CUDA_CHECK_LAUNCH("relu_backward");
}

}  // namespace tfe::cuda
