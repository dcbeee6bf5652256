// AVX-512 micro-kernel of the inference convolution (contract in conv_infer_internal.h).
//
// The same 8 x 48 register tile and inner loop as the GEMM core's implicit-B kernel
// (gemm_avx512.cpp: 24 zmm accumulators, 3 loads of B and 8 broadcasts of A per depth step),
// with the epilogue (bias, residual add, ReLU, discarding the extended columns) applied in
// registers and masked stores going straight to the consumer's zero-padded map: the output
// of a convolution never makes a second trip through memory.
//
// Compiled with -mavx512f ... (file name suffix); only reached after run-time detection.
#include <immintrin.h>

#include "conv/conv_infer_internal.h"

namespace tfe::cpu::detail {

#define TFE_ACC_ROW(i) __m512 c##i##0, c##i##1, c##i##2;
#define TFE_INIT_ROW(i)                                              \
  {                                                                  \
    const __m512 bi = _mm512_set1_ps(i < m ? bias[i] : 0.0f);        \
    c##i##0 = bi, c##i##1 = bi, c##i##2 = bi;                        \
  }
#define TFE_FMA_ROW(i)                          \
  {                                             \
    const __m512 ai = _mm512_set1_ps(a[i]);     \
    c##i##0 = _mm512_fmadd_ps(ai, b0, c##i##0); \
    c##i##1 = _mm512_fmadd_ps(ai, b1, c##i##1); \
    c##i##2 = _mm512_fmadd_ps(ai, b2, c##i##2); \
  }
#define TFE_STORE_ROW(i) \
  if (i < m) store_row(c + (i)*ldc, res ? res + (i)*ldc : nullptr, c##i##0, c##i##1, c##i##2, m0, m1, m2, relu);

namespace {

inline void store_row(float* c, const float* r, __m512 x0, __m512 x1, __m512 x2, __mmask16 m0,
                      __mmask16 m1, __mmask16 m2, bool relu) {
  if (r) {
    x0 = _mm512_add_ps(x0, _mm512_maskz_loadu_ps(m0, r));
    x1 = _mm512_add_ps(x1, _mm512_maskz_loadu_ps(m1, r + 16));
    x2 = _mm512_add_ps(x2, _mm512_maskz_loadu_ps(m2, r + 32));
  }
  if (relu) {  // max(0, x): the second operand is returned for NaN, so NaN passes
    const __m512 z = _mm512_setzero_ps();
    x0 = _mm512_max_ps(z, x0);
    x1 = _mm512_max_ps(z, x1);
    x2 = _mm512_max_ps(z, x2);
  }
  _mm512_mask_storeu_ps(c, m0, x0);
  _mm512_mask_storeu_ps(c + 16, m1, x1);
  _mm512_mask_storeu_ps(c + 32, m2, x2);
}

}  // namespace

void conv_infer_ukr_avx512(int kc, const float* a, const float* b, const int* off, float* c,
                           long ldc, const float* res, const float* bias, int m,
                           unsigned long long mask, bool relu) {
  TFE_ACC_ROW(0) TFE_ACC_ROW(1) TFE_ACC_ROW(2) TFE_ACC_ROW(3)
  TFE_ACC_ROW(4) TFE_ACC_ROW(5) TFE_ACC_ROW(6) TFE_ACC_ROW(7)
  TFE_INIT_ROW(0) TFE_INIT_ROW(1) TFE_INIT_ROW(2) TFE_INIT_ROW(3)
  TFE_INIT_ROW(4) TFE_INIT_ROW(5) TFE_INIT_ROW(6) TFE_INIT_ROW(7)
  for (int t = 0; t < kc; ++t) {
    const float* bt = b + off[t];
    const __m512 b0 = _mm512_loadu_ps(bt);
    const __m512 b1 = _mm512_loadu_ps(bt + 16);
    const __m512 b2 = _mm512_loadu_ps(bt + 32);
    TFE_FMA_ROW(0) TFE_FMA_ROW(1) TFE_FMA_ROW(2) TFE_FMA_ROW(3)
    TFE_FMA_ROW(4) TFE_FMA_ROW(5) TFE_FMA_ROW(6) TFE_FMA_ROW(7)
    a += 8;
  }
  const __mmask16 m0 = (__mmask16)(mask & 0xFFFF), m1 = (__mmask16)((mask >> 16) & 0xFFFF),
                  m2 = (__mmask16)((mask >> 32) & 0xFFFF);
  TFE_STORE_ROW(0) TFE_STORE_ROW(1) TFE_STORE_ROW(2) TFE_STORE_ROW(3)
  TFE_STORE_ROW(4) TFE_STORE_ROW(5) TFE_STORE_ROW(6) TFE_STORE_ROW(7)
}

#undef TFE_ACC_ROW
#undef TFE_INIT_ROW
#undef TFE_FMA_ROW
#undef TFE_STORE_ROW

}  // namespace tfe::cpu::detail
