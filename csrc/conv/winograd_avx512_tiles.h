// The F(2x2, 3x3) tile arithmetic on 16 tiles per vector (lane j = tile j of a run), shared by
// the inference (winograd_avx512.cpp) and training (winograd_train_avx512.cpp) transforms,
// which differ only in where their inputs and outputs lie (padded square maps vs dense NCHW
// batches). Include only from files compiled for AVX-512; everything here has internal
// linkage (see winograd_transforms.h for why).
#pragma once

#include <immintrin.h>

namespace {

// One patch row of 16 tiles: p[q] = column q of the run (tile j at columns 2j .. 2j+3),
// loaded under masks k0..k3 (columns 0-15, 16-31, 2-17, 18-33; masked lanes read zero).
// e/o: columns 2j, 2j + 1 of tile j; e1/o1: 2j + 2, 2j + 3.
inline void wino512_load_row(const float* p, __mmask16 k0, __mmask16 k1, __mmask16 k2,
                             __mmask16 k3, __m512& e, __m512& o, __m512& e1, __m512& o1) {
  const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i od = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  const __m512 a = _mm512_maskz_loadu_ps(k0, p), b = _mm512_maskz_loadu_ps(k1, p + 16);
  const __m512 a2 = _mm512_maskz_loadu_ps(k2, p + 2), b2 = _mm512_maskz_loadu_ps(k3, p + 18);
  e = _mm512_permutex2var_ps(a, ev, b);
  o = _mm512_permutex2var_ps(a, od, b);
  e1 = _mm512_permutex2var_ps(a2, ev, b2);
  o1 = _mm512_permutex2var_ps(a2, od, b2);
}

// V = B^T d B of the 16 tiles whose patch rows r are (e[r], o[r], e1[r], o1[r]): V[p] stored
// at out + p * vstep for the lanes in ks.
inline void wino512_input_store(float* out, long vstep, __mmask16 ks, const __m512* e,
                                const __m512* o, const __m512* e1, const __m512* o1) {
  auto row = [&](int i, __m512 E, __m512 O, __m512 E1, __m512 O1) {
    float* q = out + (long)(4 * i) * vstep;
    _mm512_mask_storeu_ps(q, ks, _mm512_sub_ps(E, E1));
    _mm512_mask_storeu_ps(q + vstep, ks, _mm512_add_ps(O, E1));
    _mm512_mask_storeu_ps(q + 2 * vstep, ks, _mm512_sub_ps(E1, O));
    _mm512_mask_storeu_ps(q + 3 * vstep, ks, _mm512_sub_ps(O, O1));
  };
  // Rows of B^T d: d0 - d2, d1 + d2, d2 - d1, d1 - d3.
  row(0, _mm512_sub_ps(e[0], e[2]), _mm512_sub_ps(o[0], o[2]), _mm512_sub_ps(e1[0], e1[2]),
      _mm512_sub_ps(o1[0], o1[2]));
  row(1, _mm512_add_ps(e[1], e[2]), _mm512_add_ps(o[1], o[2]), _mm512_add_ps(e1[1], e1[2]),
      _mm512_add_ps(o1[1], o1[2]));
  row(2, _mm512_sub_ps(e[2], e[1]), _mm512_sub_ps(o[2], o[1]), _mm512_sub_ps(e1[2], e1[1]),
      _mm512_sub_ps(o1[2], o1[1]));
  row(3, _mm512_sub_ps(e[1], e[3]), _mm512_sub_ps(o[1], o[3]), _mm512_sub_ps(e1[1], e1[3]),
      _mm512_sub_ps(o1[1], o1[3]));
}

// Y = b + A^T M A of the 16 tiles with M[p] at mk + p * step (lanes in kn; others read zero):
// out[a][0], out[a][1] = output row a of the 16 tiles, columns interleaved (the row's first
// 16 and next 16 outputs).
inline void wino512_output(const float* mk, long step, __mmask16 kn, __m512 b, __m512 out[2][2]) {
  // Interleave tiles' two output columns: lo = tiles 0..7, hi = tiles 8..15.
  const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i hi =
      _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  __m512 t0[4], t1[4];
  for (int s = 0; s < 4; ++s) {
    const __m512 m0 = _mm512_maskz_loadu_ps(kn, mk + s * step);
    const __m512 m1 = _mm512_maskz_loadu_ps(kn, mk + (4 + s) * step);
    const __m512 m2 = _mm512_maskz_loadu_ps(kn, mk + (8 + s) * step);
    const __m512 m3 = _mm512_maskz_loadu_ps(kn, mk + (12 + s) * step);
    t0[s] = _mm512_add_ps(_mm512_add_ps(m0, m1), m2);
    t1[s] = _mm512_sub_ps(_mm512_sub_ps(m1, m2), m3);
  }
  for (int a = 0; a < 2; ++a) {
    const __m512* t = a ? t1 : t0;
    const __m512 c0 = _mm512_add_ps(b, _mm512_add_ps(_mm512_add_ps(t[0], t[1]), t[2]));
    const __m512 c1 = _mm512_add_ps(b, _mm512_sub_ps(_mm512_sub_ps(t[1], t[2]), t[3]));
    out[a][0] = _mm512_permutex2var_ps(c0, lo, c1);
    out[a][1] = _mm512_permutex2var_ps(c0, hi, c1);
  }
}

}  // namespace
