// AVX-512 inner kernels of the GEMM / conv2d core (see gemm_internal.h for the contracts).
//
//  * micro-kernel 8 x 48: C tile of 8 rows x 3 zmm vectors = 24 zmm accumulators; per depth
//    step 3 vector loads of B and 8 broadcasts of A feed 24 FMAs, so the two 512-bit FMA ports
//    stay busy with loads to spare. MR = 8 divides the output-channel counts of the conv
//    layers (16, 32, 64, 80) and NR = 48 matches the 48-pixel rows of the 48x48 maps.
//  * dot tile 4 x 6: 24 zmm accumulators, 10 loads per 24 FMAs, for the conv weight gradient.
//  * FMA peak: 12 independent zmm FMA chains per thread for ~0.2 s.
//
// Compiled with -mavx512f ... (file name suffix); only reached after run-time detection.
// Single-threaded except the peak measurement, which runs its own OpenMP region.
#include <immintrin.h>
#include <omp.h>

#include "gemm/gemm_internal.h"

namespace tfe::cpu::detail {
namespace {

constexpr int kMR = 8;
constexpr int kNR = 48;

inline __mmask16 tail_mask(int n) {  // lanes [0, n) of a 16-lane vector, n clipped to [0, 16]
  return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1u);
}

inline void store_row(float* c, __m512 x0, __m512 x1, __m512 x2, float beta, __mmask16 m0,
                      __mmask16 m1, __mmask16 m2) {
  if (beta != 0.0f) {
    const __m512 vb = _mm512_set1_ps(beta);
    x0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, c), x0);
    x1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m1, c + 16), x1);
    x2 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m2, c + 32), x2);
  }
  _mm512_mask_storeu_ps(c, m0, x0);
  _mm512_mask_storeu_ps(c + 16, m1, x1);
  _mm512_mask_storeu_ps(c + 32, m2, x2);
}

// The 24 accumulators are named variables (not an array) so that they stay in registers.
#define TFE_ACC_ROW(i)                                                          \
  __m512 c##i##0 = _mm512_setzero_ps(), c##i##1 = _mm512_setzero_ps(),         \
         c##i##2 = _mm512_setzero_ps();
#define TFE_FMA_ROW(i)                        \
  {                                           \
    const __m512 ai = _mm512_set1_ps(a[i]);   \
    c##i##0 = _mm512_fmadd_ps(ai, b0, c##i##0); \
    c##i##1 = _mm512_fmadd_ps(ai, b1, c##i##1); \
    c##i##2 = _mm512_fmadd_ps(ai, b2, c##i##2); \
  }
#define TFE_BIAS_ROW(i)                                         \
  {                                                             \
    const __m512 bi = _mm512_set1_ps(i < m ? bias[i] : 0.0f);   \
    c##i##0 = bi, c##i##1 = bi, c##i##2 = bi;                   \
  }
#define TFE_STORE_ROW(i) \
  if (i < m) store_row(c + (i)*ldc, c##i##0, c##i##1, c##i##2, beta, m0, m1, m2);

template <bool kOff>
inline __attribute__((always_inline)) void micro_8x48(int kc, const float* a, const float* b,
                                                      const int* off, float* c, int ldc,
                                                      float beta, int m, int n,
                                                      const float* bias) {
  TFE_ACC_ROW(0) TFE_ACC_ROW(1) TFE_ACC_ROW(2) TFE_ACC_ROW(3)
  TFE_ACC_ROW(4) TFE_ACC_ROW(5) TFE_ACC_ROW(6) TFE_ACC_ROW(7)
  if (bias) {  // start the sums at the bias (rows >= m are never stored)
    TFE_BIAS_ROW(0) TFE_BIAS_ROW(1) TFE_BIAS_ROW(2) TFE_BIAS_ROW(3)
    TFE_BIAS_ROW(4) TFE_BIAS_ROW(5) TFE_BIAS_ROW(6) TFE_BIAS_ROW(7)
  }
  if (beta != 0.0f) {  // C will be read at the end: start fetching it now
    for (int i = 0; i < m; ++i) {
      _mm_prefetch((const char*)(c + i * ldc), _MM_HINT_T0);
      _mm_prefetch((const char*)(c + i * ldc + 16), _MM_HINT_T0);
      _mm_prefetch((const char*)(c + i * ldc + 32), _MM_HINT_T0);
      _mm_prefetch((const char*)(c + i * ldc + 47), _MM_HINT_T0);
    }
  }
  for (int t = 0; t < kc; ++t) {
    const float* bt = kOff ? b + off[t] : b + t * kNR;
    const __m512 b0 = _mm512_loadu_ps(bt);
    const __m512 b1 = _mm512_loadu_ps(bt + 16);
    const __m512 b2 = _mm512_loadu_ps(bt + 32);
    TFE_FMA_ROW(0) TFE_FMA_ROW(1) TFE_FMA_ROW(2) TFE_FMA_ROW(3)
    TFE_FMA_ROW(4) TFE_FMA_ROW(5) TFE_FMA_ROW(6) TFE_FMA_ROW(7)
    a += kMR;
  }
  const __mmask16 m0 = tail_mask(n), m1 = tail_mask(n - 16), m2 = tail_mask(n - 32);
  TFE_STORE_ROW(0) TFE_STORE_ROW(1) TFE_STORE_ROW(2) TFE_STORE_ROW(3)
  TFE_STORE_ROW(4) TFE_STORE_ROW(5) TFE_STORE_ROW(6) TFE_STORE_ROW(7)
}
#undef TFE_ACC_ROW
#undef TFE_FMA_ROW
#undef TFE_STORE_ROW
#undef TFE_BIAS_ROW

void ukr(int kc, const float* a, const float* b, float* c, int ldc, float beta, int m, int n) {
  micro_8x48<false>(kc, a, b, nullptr, c, ldc, beta, m, n, nullptr);
}

void ukr_off(int kc, const float* a, const float* b, const int* off, float* c, int ldc,
             const float* bias, int m) {
  micro_8x48<true>(kc, a, b, off, c, ldc, 0.0f, m, kNR, bias);
}

// Horizontal sum. Masked (zeroing) extracts: GCC 12's unmasked ones, and hence
// _mm512_reduce_add_ps, trip -Wuninitialized inside the compiler's own headers.
inline float hsum(__m512 v) {
  __m128 s = _mm_add_ps(_mm_add_ps(_mm512_maskz_extractf32x4_ps(0xF, v, 0),
                                   _mm512_maskz_extractf32x4_ps(0xF, v, 1)),
                        _mm_add_ps(_mm512_maskz_extractf32x4_ps(0xF, v, 2),
                                   _mm512_maskz_extractf32x4_ps(0xF, v, 3)));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

#define TFE_DOT_COL(j)                                   \
  {                                                      \
    const __m512 y = _mm512_loadu_ps(b##j + l);          \
    s0##j = _mm512_fmadd_ps(x0, y, s0##j);               \
    s1##j = _mm512_fmadd_ps(x1, y, s1##j);               \
    s2##j = _mm512_fmadd_ps(x2, y, s2##j);               \
    s3##j = _mm512_fmadd_ps(x3, y, s3##j);               \
  }
#define TFE_DOT_ZERO(i)                                                                   \
  __m512 s##i##0 = _mm512_setzero_ps(), s##i##1 = _mm512_setzero_ps(),                    \
         s##i##2 = _mm512_setzero_ps(), s##i##3 = _mm512_setzero_ps(),                    \
         s##i##4 = _mm512_setzero_ps(), s##i##5 = _mm512_setzero_ps();
#define TFE_DOT_OUT(i)                           \
  out[i * 6 + 0] = hsum(s##i##0); \
  out[i * 6 + 1] = hsum(s##i##1); \
  out[i * 6 + 2] = hsum(s##i##2); \
  out[i * 6 + 3] = hsum(s##i##3); \
  out[i * 6 + 4] = hsum(s##i##4); \
  out[i * 6 + 5] = hsum(s##i##5);

void dot_4x6(int L, const float* const* a, const float* const* b, float* out) {
  const float *a0 = a[0], *a1 = a[1], *a2 = a[2], *a3 = a[3];
  const float *b0 = b[0], *b1 = b[1], *b2 = b[2], *b3 = b[3], *b4 = b[4], *b5 = b[5];
  TFE_DOT_ZERO(0) TFE_DOT_ZERO(1) TFE_DOT_ZERO(2) TFE_DOT_ZERO(3)
  for (int l = 0; l < L; l += 16) {
    const __m512 x0 = _mm512_loadu_ps(a0 + l), x1 = _mm512_loadu_ps(a1 + l);
    const __m512 x2 = _mm512_loadu_ps(a2 + l), x3 = _mm512_loadu_ps(a3 + l);
    TFE_DOT_COL(0) TFE_DOT_COL(1) TFE_DOT_COL(2) TFE_DOT_COL(3) TFE_DOT_COL(4) TFE_DOT_COL(5)
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
    const __m512 x = _mm512_set1_ps(0.999f), y = _mm512_set1_ps(1e-3f);
    // Distinct starting values so the compiler cannot merge chains.
    __m512 v0 = _mm512_set1_ps(0.f), v1 = _mm512_set1_ps(1.f), v2 = _mm512_set1_ps(2.f);
    __m512 v3 = _mm512_set1_ps(3.f), v4 = _mm512_set1_ps(4.f), v5 = _mm512_set1_ps(5.f);
    __m512 v6 = _mm512_set1_ps(6.f), v7 = _mm512_set1_ps(7.f), v8 = _mm512_set1_ps(8.f);
    __m512 v9 = _mm512_set1_ps(9.f), v10 = _mm512_set1_ps(10.f), v11 = _mm512_set1_ps(11.f);
    long iters = 0;
    const double t0 = omp_get_wtime();
    double el = 0.0;
    do {
      for (int r = 0; r < 4096; ++r) {
        v0 = _mm512_fmadd_ps(v0, x, y), v1 = _mm512_fmadd_ps(v1, x, y);
        v2 = _mm512_fmadd_ps(v2, x, y), v3 = _mm512_fmadd_ps(v3, x, y);
        v4 = _mm512_fmadd_ps(v4, x, y), v5 = _mm512_fmadd_ps(v5, x, y);
        v6 = _mm512_fmadd_ps(v6, x, y), v7 = _mm512_fmadd_ps(v7, x, y);
        v8 = _mm512_fmadd_ps(v8, x, y), v9 = _mm512_fmadd_ps(v9, x, y);
        v10 = _mm512_fmadd_ps(v10, x, y), v11 = _mm512_fmadd_ps(v11, x, y);
      }
      iters += 4096;
      el = omp_get_wtime() - t0;
    } while (el < 0.2);
    asm volatile("" ::"v"(v0), "v"(v1), "v"(v2), "v"(v3), "v"(v4), "v"(v5), "v"(v6), "v"(v7),
                 "v"(v8), "v"(v9), "v"(v10), "v"(v11));
    total += iters * 12.0 * 16.0 * 2.0 / el * 1e-9;
  }
  return total;
}

}  // namespace

// Blocking: the 48-wide B micro-panel (kc x 48 floats = 48 KiB at kc 256) is re-read for
// every A micro-panel of the L2 block; A block mc x kc = 96 KiB-192 KiB lives in L2.
extern const KernelInfo kAvx512Kernel = {"avx512", kMR, kNR, 256, 192, 3072, 4, 6,
                                         ukr,      ukr_off, dot_4x6, peak};

}  // namespace tfe::cpu::detail
