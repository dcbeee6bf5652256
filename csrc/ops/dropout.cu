// Inverted dropout on the GPU with the counter-based hash of cpu/dropout.cpp, so masks are
// bit-identical to the CPU's (and the NumPy reference's) for the same seed:
//
//   mix(z) = splitmix64 finaliser (mod 2^64);  h = mix(mix(seed) + (i + 1) * 0x9E3779B97F4A7C15)
//   keep_i = (h >> 40) * 2^-24 >= p, decided on integers as (h >> 40) >= ceil(p * 2^24)
//   forward:  y = keep ? x / (1 - p) : 0, mask = keep;   p == 0 keeps all without drawing
//   backward: dx = mask ? dy / (1 - p) : 0
// 1 - p is rounded once to float from the double 1 - p, and the kernels divide (not multiply
// by a reciprocal) with IEEE division, as the CPU does. One thread per element in a
// grid-stride loop: each draw is a pure function of (seed, i), so no RNG state is shared.
//
// CUDA graphs: a captured launch replays its arguments, so a seed passed from the host would
// give the same mask at every replay. The forward therefore draws with seed + offset, where
// offset is g_dropout_offset, a __device__ counter of this module (one per device, 0 when the
// module loads) read by the kernel at run time. advance_dropout_offset() enqueues a one-thread
// kernel that adds 1 to it; tfe.cuda.graph captures that call at the start of every graph,
// so each replay draws fresh masks. Nothing else changes the counter and a capture only
// records the increment, so until a graph has been replayed on the device the counter is 0
// and eager results are bit-identical to the CPU's for the same seed (afterwards eager draws
// use seed + the number of replays so far).
#include <cmath>
#include <cstdint>

#include "core/check.cuh"
#include "ops/cuda_kernels.h"

namespace tfe::cuda {

namespace {
constexpr int kThreads = 256;

__device__ unsigned long long g_dropout_offset = 0;

__device__ __forceinline__ unsigned long long mix(unsigned long long z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

__global__ void dropout_keep_all_kernel(float* __restrict__ y, uint8_t* __restrict__ mask,
                                        const float* __restrict__ x, long long n) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
       i += (long long)gridDim.x * blockDim.x) {
    y[i] = x[i];
    mask[i] = 1;
  }
}

// thresh = ceil(p * 2^24) (clamped to [0, 2^24 + 1]); q = float(1 - double(p)).
__global__ void dropout_forward_kernel(float* __restrict__ y, uint8_t* __restrict__ mask,
                                       const float* __restrict__ x, long long n,
                                       unsigned long long seed, unsigned long long thresh,
                                       float q) {
  const unsigned long long ms = mix(seed + g_dropout_offset);
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
       i += (long long)gridDim.x * blockDim.x) {
    const unsigned long long h = mix(ms + ((unsigned long long)i + 1ULL) * 0x9E3779B97F4A7C15ULL);
    const bool keep = (h >> 40) >= thresh;
    y[i] = keep ? x[i] / q : 0.0f;
    mask[i] = keep ? 1 : 0;
  }
}

__global__ void dropout_backward_kernel(float* __restrict__ dx, const float* __restrict__ dy,
                                        const uint8_t* __restrict__ mask, long long n, float q) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
       i += (long long)gridDim.x * blockDim.x)
    dx[i] = mask[i] != 0 ? dy[i] / q : 0.0f;
}

__global__ void advance_dropout_offset_kernel() { g_dropout_offset += 1ULL; }

// 1 - p rounded once to float32, as the CPU and the reference compute it.
inline float keep_prob(float p) { return static_cast<float>(1.0 - static_cast<double>(p)); }
}  // namespace

void dropout_forward(float* y, uint8_t* mask, const float* x, int64_t n, float p,
                     uint64_t seed) {
  if (n <= 0) return;
  const unsigned blocks = elementwise_blocks(n, kThreads);
  if (p == 0.0f) {
    dropout_keep_all_kernel<<<blocks, kThreads, 0, stream()>>>(y, mask, x, n);
    TFE_CUDA_CHECK_LAUNCH("dropout_forward");
    return;
  }
  // u = (h >> 40) * 2^-24 is exact, so u >= p  <=>  (h >> 40) >= ceil(p * 2^24) (p * 2^24 is
  // exact in double): the CPU's integer form of the same decision.
  const double t = std::ceil(static_cast<double>(p) * 16777216.0);
  const unsigned long long thresh =
      t <= 0.0 ? 0ULL : (t >= 16777217.0 ? 16777217ULL : static_cast<unsigned long long>(t));
  dropout_forward_kernel<<<blocks, kThreads, 0, stream()>>>(y, mask, x, n, seed, thresh,
                                                            keep_prob(p));
  TFE_CUDA_CHECK_LAUNCH("dropout_forward");
}

void dropout_backward(float* dx, const float* dy, const uint8_t* mask, int64_t n, float p) {
  if (n <= 0) return;
  dropout_backward_kernel<<<elementwise_blocks(n, kThreads), kThreads, 0, stream()>>>(
      dx, dy, mask, n, keep_prob(p));
  TFE_CUDA_CHECK_LAUNCH("dropout_backward");
}

void advance_dropout_offset() {
  advance_dropout_offset_kernel<<<1, 1, 0, stream()>>>();
  TFE_CUDA_CHECK_LAUNCH("advance_dropout_offset");
}

}  // namespace tfe::cuda
