// AVX2 + FMA inner kernels of the GEMM / conv2d core (see gemm_internal.h for the contracts).
//
//  * micro-kernel 4 x 24: C tile of 4 rows x 3 ymm vectors = 12 accumulators, 3 B loads and
//    4 broadcasts per depth step (16 ymm registers in all). 4 x 24 rather than 6 x 16 because
//    the conv layers have 16/20/32/40/64/80 output channels (multiples of 4, not of 6) and
//    pixel rows of 48/24/12 (multiples of 24 or halves of it), so edge tiles waste nothing.
//  * dot tile 4 x 3: 12 accumulators, 7 loads per 12 FMAs (conv weight gradient).
//  * FMA peak: 12 independent ymm FMA chains per thread for ~0.2 s.
//
// Compiled with -mavx2 -mfma (file name suffix); only reached after run-time detection.
// Single-threaded except the peak measurement, which runs its own OpenMP region.
#include <immintrin.h>
#include <omp.h>

#include "gemm/gemm_internal.h"

namespace tfe::cpu::detail {
namespace {

constexpr int kMR = 4;
constexpr int kNR = 24;

#define TFE_ACC_ROW(i) \
  __m256 c##i##0 = _mm256_setzero_ps(), c##i##1 = _mm256_setzero_ps(), c##i##2 = _mm256_setzero_ps();
#define TFE_FMA_ROW(i)                          \
  {                                             \
    const __m256 ai = _mm256_broadcast_ss(a + i); \
    c##i##0 = _mm256_fmadd_ps(ai, b0, c##i##0);   \
    c##i##1 = _mm256_fmadd_ps(ai, b1, c##i##1);   \
    c##i##2 = _mm256_fmadd_ps(ai, b2, c##i##2);   \
  }

#define TFE_BIAS_ROW(i)                                       \
  {                                                           \
    const __m256 bi = _mm256_set1_ps(i < m ? bias[i] : 0.0f); \
    c##i##0 = bi, c##i##1 = bi, c##i##2 = bi;                 \
  }

inline void store_full_row(float* c, __m256 x0, __m256 x1, __m256 x2, float beta) {
  if (beta != 0.0f) {
    const __m256 vb = _mm256_set1_ps(beta);
    x0 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(c), x0);
    x1 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(c + 8), x1);
    x2 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(c + 16), x2);
  }
  _mm256_storeu_ps(c, x0);
  _mm256_storeu_ps(c + 8, x1);
  _mm256_storeu_ps(c + 16, x2);
}

template <bool kOff>
inline __attribute__((always_inline)) void micro_4x24(int kc, const float* a, const float* b,
                                                      const int* off, float* c, int ldc,
                                                      float beta, int m, int n,
                                                      const float* bias) {
  TFE_ACC_ROW(0) TFE_ACC_ROW(1) TFE_ACC_ROW(2) TFE_ACC_ROW(3)
  if (bias) {  // start the sums at the bias (rows >= m are never stored)
    TFE_BIAS_ROW(0) TFE_BIAS_ROW(1) TFE_BIAS_ROW(2) TFE_BIAS_ROW(3)
  }
  if (beta != 0.0f) {
    for (int i = 0; i < m; ++i) {
      _mm_prefetch((const char*)(c + i * ldc), _MM_HINT_T0);
      _mm_prefetch((const char*)(c + i * ldc + 23), _MM_HINT_T0);
    }
  }
  for (int t = 0; t < kc; ++t) {
    const float* bt = kOff ? b + off[t] : b + t * kNR;
    const __m256 b0 = _mm256_loadu_ps(bt);
    const __m256 b1 = _mm256_loadu_ps(bt + 8);
    const __m256 b2 = _mm256_loadu_ps(bt + 16);
    TFE_FMA_ROW(0) TFE_FMA_ROW(1) TFE_FMA_ROW(2) TFE_FMA_ROW(3)
    a += kMR;
  }
  if (m == kMR && n == kNR) {
    store_full_row(c, c00, c01, c02, beta);
    store_full_row(c + ldc, c10, c11, c12, beta);
    store_full_row(c + 2 * ldc, c20, c21, c22, beta);
    store_full_row(c + 3 * ldc, c30, c31, c32, beta);
    return;
  }
  // Edge tile: spill to a local tile and store the valid part only.
  alignas(32) float tile[kMR * kNR];
  store_full_row(tile, c00, c01, c02, 0.0f);
  store_full_row(tile + kNR, c10, c11, c12, 0.0f);
  store_full_row(tile + 2 * kNR, c20, c21, c22, 0.0f);
  store_full_row(tile + 3 * kNR, c30, c31, c32, 0.0f);
  for (int i = 0; i < m; ++i) {
    float* ci = c + i * ldc;
    const float* ti = tile + i * kNR;
    if (beta == 0.0f) {
      for (int j = 0; j < n; ++j) ci[j] = ti[j];
    } else {
      for (int j = 0; j < n; ++j) ci[j] = ti[j] + beta * ci[j];
    }
  }
}
#undef TFE_ACC_ROW
#undef TFE_FMA_ROW
#undef TFE_BIAS_ROW

void ukr(int kc, const float* a, const float* b, float* c, int ldc, float beta, int m, int n) {
  micro_4x24<false>(kc, a, b, nullptr, c, ldc, beta, m, n, nullptr);
}

void ukr_off(int kc, const float* a, const float* b, const int* off, float* c, int ldc,
             const float* bias, int m) {
  micro_4x24<true>(kc, a, b, off, c, ldc, 0.0f, m, kNR, bias);
}

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

#define TFE_DOT_COL(j)                          \
  {                                             \
    const __m256 y = _mm256_loadu_ps(b##j + l); \
    s0##j = _mm256_fmadd_ps(x0, y, s0##j);      \
    s1##j = _mm256_fmadd_ps(x1, y, s1##j);      \
    s2##j = _mm256_fmadd_ps(x2, y, s2##j);      \
    s3##j = _mm256_fmadd_ps(x3, y, s3##j);      \
  }
#define TFE_DOT_ZERO(i) \
  __m256 s##i##0 = _mm256_setzero_ps(), s##i##1 = _mm256_setzero_ps(), s##i##2 = _mm256_setzero_ps();
#define TFE_DOT_OUT(i)              \
  out[i * 3 + 0] = hsum(s##i##0); \
  out[i * 3 + 1] = hsum(s##i##1); \
  out[i * 3 + 2] = hsum(s##i##2);

void dot_4x3(int L, const float* const* a, const float* const* b, float* out) {
  const float *a0 = a[0], *a1 = a[1], *a2 = a[2], *a3 = a[3];
  const float *b0 = b[0], *b1 = b[1], *b2 = b[2];
  TFE_DOT_ZERO(0) TFE_DOT_ZERO(1) TFE_DOT_ZERO(2) TFE_DOT_ZERO(3)
  for (int l = 0; l < L; l += 8) {
    const __m256 x0 = _mm256_loadu_ps(a0 + l), x1 = _mm256_loadu_ps(a1 + l);
    const __m256 x2 = _mm256_loadu_ps(a2 + l), x3 = _mm256_loadu_ps(a3 + l);
    TFE_DOT_COL(0) TFE_DOT_COL(1) TFE_DOT_COL(2)
  }
  TFE_DOT_OUT(0) TFE_DOT_OUT(1) TFE_DOT_OUT(2) TFE_DOT_OUT(3)
}
#undef TFE_DOT_COL
#undef TFE_DOT_ZERO
#undef TFE_DOT_OUT

double peak(int threads) {
  double total = 0.0;
#pragma omp parallel num_threads(threads) reduction(+ : total)
  {
    const __m256 x = _mm256_set1_ps(0.999f), y = _mm256_set1_ps(1e-3f);
    // Distinct starting values so the compiler cannot merge chains.
    __m256 v0 = _mm256_set1_ps(0.f), v1 = _mm256_set1_ps(1.f), v2 = _mm256_set1_ps(2.f);
    __m256 v3 = _mm256_set1_ps(3.f), v4 = _mm256_set1_ps(4.f), v5 = _mm256_set1_ps(5.f);
    __m256 v6 = _mm256_set1_ps(6.f), v7 = _mm256_set1_ps(7.f), v8 = _mm256_set1_ps(8.f);
    __m256 v9 = _mm256_set1_ps(9.f), v10 = _mm256_set1_ps(10.f), v11 = _mm256_set1_ps(11.f);
    long iters = 0;
    const double t0 = omp_get_wtime();
    double el = 0.0;
    do {
      for (int r = 0; r < 4096; ++r) {
        v0 = _mm256_fmadd_ps(v0, x, y), v1 = _mm256_fmadd_ps(v1, x, y);
        v2 = _mm256_fmadd_ps(v2, x, y), v3 = _mm256_fmadd_ps(v3, x, y);
        v4 = _mm256_fmadd_ps(v4, x, y), v5 = _mm256_fmadd_ps(v5, x, y);
        v6 = _mm256_fmadd_ps(v6, x, y), v7 = _mm256_fmadd_ps(v7, x, y);
        v8 = _mm256_fmadd_ps(v8, x, y), v9 = _mm256_fmadd_ps(v9, x, y);
        v10 = _mm256_fmadd_ps(v10, x, y), v11 = _mm256_fmadd_ps(v11, x, y);
      }
      iters += 4096;
      el = omp_get_wtime() - t0;
    } while (el < 0.2);
    asm volatile("" ::"x"(v0), "x"(v1), "x"(v2), "x"(v3), "x"(v4), "x"(v5), "x"(v6), "x"(v7),
                 "x"(v8), "x"(v9), "x"(v10), "x"(v11));
    total += iters * 12.0 * 8.0 * 2.0 / el * 1e-9;
  }
  return total;
}

}  // namespace

// Blocking: B micro-panel kc x 24 floats = 24 KiB at kc 256 stays in a 32 KiB (Zen 3) or
// 48 KiB L1 while the A micro-panels of an mc x kc block (96 KiB) stream from L2.
extern const KernelInfo kAvx2Kernel = {"avx2", kMR, kNR, 256, 96, 2400, 4, 3,
                                       ukr,    ukr_off, dot_4x3, peak};

}  // namespace tfe::cpu::detail
