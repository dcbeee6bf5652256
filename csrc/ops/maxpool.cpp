// 2-d max pooling, square window k, stride s, implicit -inf padding pad (PyTorch semantics).
//
//   forward:  x[N, C, H, W] -> y[N, C, Ho, Wo], Ho = (H + 2*pad - k) / s + 1 (same for Wo);
//             argmax[N, C, Ho, Wo] (int32) = flat index h*W + w of the chosen input inside its
//             [H, W] plane. Windows are scanned row by row and the FIRST maximum wins; a NaN
//             wins over numbers and the first NaN is kept (NumPy argmax, PyTorch max_pool2d).
//   backward: dx[N, C, H, W] = scatter-add of dy through argmax (windows overlap when s < k,
//             so one input may receive several contributions).
//
// Parallelisation: over the N*C planes (OpenMP, static). A plane is read (forward) or
// written (backward) by exactly one thread, so the backward scatter needs no atomics and its
// sums have a fixed order; results do not depend on the thread count. Small calls
// (< 32768 input elements) stay on the calling thread.
// Within a plane the forward clips window rows once per output row; output columns whose
// window needs no column clipping (all but ~pad/stride at each border) are computed with the
// output columns as the SIMD lanes and branch-free selects (random data makes the max
// comparisons unpredictable: the branchy scalar scan was ~6x slower), strides 1 and 2
// specialised at compile time. The border columns take a scalar clipped path.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>

#include "ops/cpu_kernels.h"

namespace tfe::cpu {
namespace {
constexpr int64_t kParallelMin = 32768;

// One output whose window may be clipped by the padding (scanned row-major, first max wins,
// a NaN beats numbers and the first NaN is kept).
inline void window_clipped(float* out, int32_t* arg, const float* p, int W, int hs, int he,
                           int ow, int k, int stride, int pad) {
  const int w0 = ow * stride - pad;
  const int ws = w0 < 0 ? 0 : w0;
  const int we = w0 + k > W ? W : w0 + k;
  float best = -std::numeric_limits<float>::infinity();
  int32_t bi = hs * W + ws;  // all -inf window: its first element is "the first max"
  for (int h = hs; h < he; ++h) {
    for (int w = ws; w < we; ++w) {
      const float v = p[h * W + w];
      if (v > best || (v != v && best == best)) {
        best = v;
        bi = h * W + w;
      }
    }
  }
  *out = best;
  *arg = bi;
}

// Branch-free select on the bit patterns: c ? a : b. Random data makes the comparisons
// unpredictable (a branchy scan ran at ~3 ns per element), and GCC 12 does not if-convert
// the float/int pair of selects below by itself.
inline uint32_t mask_of(bool c) { return 0u - static_cast<uint32_t>(c); }
inline float blend(uint32_t m, float a, float b) {
  uint32_t ua, ub;
  std::memcpy(&ua, &a, 4);
  std::memcpy(&ub, &b, 4);
  const uint32_t r = (ua & m) | (ub & ~m);
  float out;
  std::memcpy(&out, &r, 4);
  return out;
}

// Outputs [lo, hi) of one output row, whose windows need no column clipping. The window is
// walked element by element in row-major order (so the first max still wins) with the
// output columns as the vectorised inner loop; the running max and argmax live in the
// output row itself. S: compile-time stride (1, 2), or 0 = use `stride`.
template <int S>
inline void interior_row(float* qr, int32_t* ar, const float* p, int W, int hs, int he, int lo,
                         int hi, int k, int stride, int pad) {
  const int s = S > 0 ? S : stride;
  for (int ow = lo; ow < hi; ++ow) {
    qr[ow] = -std::numeric_limits<float>::infinity();
    ar[ow] = hs * W + ow * s - pad;
  }
  for (int h = hs; h < he; ++h) {
    for (int j = 0; j < k; ++j) {
      const int base = h * W + j - pad;
#pragma omp simd
      for (int ow = lo; ow < hi; ++ow) {
        const int idx = base + ow * s;
        const float v = p[idx];
        const float best = qr[ow];
        const uint32_t m = mask_of((v > best) | ((v != v) & (best == best)));
        qr[ow] = blend(m, v, best);
        ar[ow] = static_cast<int32_t>((static_cast<uint32_t>(idx) & m) |
                                      (static_cast<uint32_t>(ar[ow]) & ~m));
      }
    }
  }
}
}  // namespace

void maxpool2d_forward(float* y, int32_t* argmax, const float* x, int N, int C, int H, int W,
                       int k, int stride, int pad) {
  const int Ho = (H + 2 * pad - k) / stride + 1;
  const int Wo = (W + 2 * pad - k) / stride + 1;
  const int64_t planes = static_cast<int64_t>(N) * C;
  const int64_t in_plane = static_cast<int64_t>(H) * W;
  const int64_t out_plane = static_cast<int64_t>(Ho) * Wo;
  // Output columns [ow_lo, ow_hi) have windows fully inside the row: w0 >= 0, w0 + k <= W.
  const int ow_lo = (pad + stride - 1) / stride;
  const int ow_hi = W >= k - pad ? (W - k + pad) / stride + 1 : 0;
  const bool par = planes * in_plane >= kParallelMin && planes > 1;
#pragma omp parallel for schedule(static) if (par) num_threads(num_threads())
  for (int64_t pl = 0; pl < planes; ++pl) {
    const float* p = x + pl * in_plane;
    float* q = y + pl * out_plane;
    int32_t* a = argmax + pl * out_plane;
    for (int oh = 0; oh < Ho; ++oh) {
      const int h0 = oh * stride - pad;
      const int hs = h0 < 0 ? 0 : h0;
      const int he = h0 + k > H ? H : h0 + k;
      float* qr = q + static_cast<int64_t>(oh) * Wo;
      int32_t* ar = a + static_cast<int64_t>(oh) * Wo;
      // Columns whose window lies inside [0, W) go through the unclipped, vectorised loop
      // (one SIMD lane per output column); the few border columns use the clipped scalar one.
      const int lo = ow_lo < Wo ? ow_lo : Wo;
      const int hi = ow_hi > lo ? ow_hi : lo;
      for (int ow = 0; ow < lo; ++ow)
        window_clipped(qr + ow, ar + ow, p, W, hs, he, ow, k, stride, pad);
      if (stride == 1)
        interior_row<1>(qr, ar, p, W, hs, he, lo, hi, k, 1, pad);
      else if (stride == 2)
        interior_row<2>(qr, ar, p, W, hs, he, lo, hi, k, 2, pad);
      else
        interior_row<0>(qr, ar, p, W, hs, he, lo, hi, k, stride, pad);
      for (int ow = hi; ow < Wo; ++ow)
        window_clipped(qr + ow, ar + ow, p, W, hs, he, ow, k, stride, pad);
    }
  }
}

void maxpool2d_backward(float* dx, const float* dy, const int32_t* argmax, int N, int C, int H,
                        int W, int Ho, int Wo) {
  const int64_t planes = static_cast<int64_t>(N) * C;
  const int64_t in_plane = static_cast<int64_t>(H) * W;
  const int64_t out_plane = static_cast<int64_t>(Ho) * Wo;
  const bool par = planes * in_plane >= kParallelMin && planes > 1;
#pragma omp parallel for schedule(static) if (par) num_threads(num_threads())
  for (int64_t pl = 0; pl < planes; ++pl) {
    float* q = dx + pl * in_plane;
    const float* g = dy + pl * out_plane;
    const int32_t* a = argmax + pl * out_plane;
    std::memset(q, 0, static_cast<size_t>(in_plane) * sizeof(float));
    for (int64_t i = 0; i < out_plane; ++i) q[a[i]] += g[i];
  }
}

}  // namespace tfe::cpu
