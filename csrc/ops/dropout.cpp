// Inverted dropout with a counter-based RNG (bit-identical to the NumPy and CUDA versions).
//
//   u_i = dropout_uniform(seed, i) in [0, 1), i the flat element index:
//         mix(z) = splitmix64 finaliser: z = (z ^ z>>30) * 0xBF58476D1CE4E5B9;
//                  z = (z ^ z>>27) * 0x94D049BB133111EB; z ^ z>>31          (all mod 2^64)
//         h = mix(mix(seed) + (i + 1) * 0x9E3779B97F4A7C15);  u = float(h >> 40) * 2^-24
//   forward:  keep_i = u_i >= p;  y = keep ? x / (1 - p) : 0;  mask = keep (uint8 0/1)
//             p == 0 keeps everything (y = x), without drawing.
//   backward: dx = mask ? dy / (1 - p) : 0
// Shapes: flat arrays of n elements (any shape).
//
// Parallelisation: each draw is a pure function of (seed, i), so the elements are split over
// threads in static contiguous chunks with no RNG state to share, and the result cannot
// depend on the thread count or the device. The hash costs a few ns per element, so threads
// pay from smaller sizes (16384) than for plain maps. u is a multiple of 2^-24 below 1, so it is
// exact in float32 and the comparison with p (float) is exact. Division (not multiplication
// by 1/(1-p)) matches the reference's rounding.
#include <cmath>
#include <cstdint>
#include <cstring>

#include "ops/cpu_kernels.h"

namespace tfe::cpu {
namespace {
constexpr int64_t kParallelMin = 16384;

inline uint64_t mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// Uniform from the pre-mixed seed ms = mix(seed).
inline float uniform_from(uint64_t ms, uint64_t i) {
  const uint64_t h = mix(ms + (i + 1) * 0x9E3779B97F4A7C15ULL);
  return static_cast<float>(h >> 40) * 0x1p-24f;
}

// c ? v : +0.0f on the bit pattern. GCC 12 leaves `c ? v : 0.0f` here as a branch (and
// the loop scalar); the mask form vectorises and gives the same bits.
inline float keep_if(bool c, float v) {
  uint32_t b;
  std::memcpy(&b, &v, sizeof b);
  b &= 0u - static_cast<uint32_t>(c);
  float r;
  std::memcpy(&r, &b, sizeof r);
  return r;
}

// 1 - p rounded once to float32, as the reference computes it from p.
inline float keep_prob(float p) { return static_cast<float>(1.0 - static_cast<double>(p)); }
}  // namespace

float dropout_uniform(uint64_t seed, uint64_t i) { return uniform_from(mix(seed), i); }

void dropout_forward(float* y, uint8_t* mask, const float* x, int64_t n, float p,
                     uint64_t seed) {
  if (p == 0.0f) {
#pragma omp parallel for simd schedule(static) if (n >= 4 * kParallelMin) \
    num_threads(num_threads())
    for (int64_t i = 0; i < n; ++i) {
      y[i] = x[i];
      mask[i] = 1;
    }
    return;
  }
  const uint64_t ms = mix(seed);
  const float q = keep_prob(p);
  // u = (h >> 40) * 2^-24 is exact, so u >= p  <=>  (h >> 40) >= ceil(p * 2^24): the same
  // decision as the float comparison, made on integers (p * 2^24 is exact in double).
  const double t = std::ceil(static_cast<double>(p) * 16777216.0);
  const uint64_t thresh = t <= 0.0 ? 0 : (t >= 16777217.0 ? 16777217 : static_cast<uint64_t>(t));
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin) num_threads(num_threads())
  for (int64_t i = 0; i < n; ++i) {
    const uint64_t h = mix(ms + (static_cast<uint64_t>(i) + 1) * 0x9E3779B97F4A7C15ULL);
    const bool keep = (h >> 40) >= thresh;
    y[i] = keep_if(keep, x[i] / q);
    mask[i] = static_cast<uint8_t>(keep);
  }
}

void dropout_backward(float* dx, const float* dy, const uint8_t* mask, int64_t n, float p) {
  const float q = keep_prob(p);
#pragma omp parallel for simd schedule(static) if (n >= 4 * kParallelMin) \
    num_threads(num_threads())
  for (int64_t i = 0; i < n; ++i) dx[i] = keep_if(mask[i] != 0, dy[i] / q);
}

}  // namespace tfe::cpu
