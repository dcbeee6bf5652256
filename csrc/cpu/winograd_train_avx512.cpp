// The training Winograd transforms (contract in winograd_train_internal.h) for AVX-512,
// written with intrinsics: 16 tiles of one tile row per vector, as winograd_avx512.cpp does
// for inference. The maps are dense (no zero border), so the padding is made by the load
// masks: a lane whose column lies outside [0, W), or a row outside [0, H), reads zero.
// Masked-off lanes are never accessed (AVX-512 fault suppression), which also lets the first
// column's load start one float before the row. Even and odd columns are split with two
// permutes per pair of loads; masked stores clip the ends of a run and of the map.
//
// Compiled with -mavx512f ... (file name suffix); only reached after run-time detection.
#include <immintrin.h>

#include "winograd_train_internal.h"

namespace tfe::cpu::detail {
namespace {

inline int imin(int a, int b) { return a < b ? a : b; }
inline int imax(int a, int b) { return a > b ? a : b; }

// Bits q of the 16 lanes with lo <= q < hi.
inline __mmask16 span(int lo, int hi) {
  lo = imax(lo, 0), hi = imin(hi, 16);
  if (hi <= lo) return 0;
  const unsigned full = hi >= 16 ? 0xFFFFu : (1u << hi) - 1;
  return (__mmask16)(full & ~((1u << lo) - 1));
}

// Lanes q whose column s + q lies in [0, W).
inline __mmask16 cols(int s, int W) { return span(-s, W - s); }

void input_panel(float* v, const float* x, int C, int H, int W, int g0, int g1, int nr,
                 long vstep) {
  const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i od = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  const __m512 zero = _mm512_setzero_ps();
  const int th = (H + 1) / 2, tw = (W + 1) / 2, per_img = th * tw;
  const long plane = (long)H * W;
  for (int g = g0; g < g1;) {
    const int n = g / per_img, gi = g - n * per_img, ti = gi / tw, tja = gi - ti * tw;
    const int cnt = imin(tw - tja, g1 - g);
    for (int j0 = 0; j0 < cnt; j0 += 16) {
      const int nt = imin(16, cnt - j0), cb = 2 * (tja + j0) - 1;  // map column of lane 0
      const __mmask16 k0 = cols(cb, W), k1 = cols(cb + 16, W), k2 = cols(cb + 2, W),
                      k3 = cols(cb + 18, W), ks = span(0, nt);
      const float* xn = x + (long)n * C * plane;
      float* base = v + (g - g0) + j0;
      for (int c = 0; c < C; ++c) {
        const float* xc = xn + c * plane;
        // e/o: columns 2j, 2j + 1 of tile j's patch; e1/o1: 2j + 2, 2j + 3 (patch row r).
        __m512 e[4], o[4], e1[4], o1[4];
        for (int r = 0; r < 4; ++r) {
          const int row = 2 * ti + r - 1;
          if (row < 0 || row >= H) {
            e[r] = o[r] = e1[r] = o1[r] = zero;
            continue;
          }
          const float* p = xc + (long)row * W + cb;
          const __m512 a = _mm512_maskz_loadu_ps(k0, p), b = _mm512_maskz_loadu_ps(k1, p + 16);
          const __m512 a2 = _mm512_maskz_loadu_ps(k2, p + 2),
                       b2 = _mm512_maskz_loadu_ps(k3, p + 18);
          e[r] = _mm512_permutex2var_ps(a, ev, b);
          o[r] = _mm512_permutex2var_ps(a, od, b);
          e1[r] = _mm512_permutex2var_ps(a2, ev, b2);
          o1[r] = _mm512_permutex2var_ps(a2, od, b2);
        }
        float* bc = base + (long)c * nr;
        auto row = [&](int i, __m512 E, __m512 O, __m512 E1, __m512 O1) {
          float* q = bc + (long)(4 * i) * vstep;
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
    }
    g += cnt;
  }
}

void output_panel(float* y, const float* m, const float* bias, int K, int H, int W, int g0,
                  int g1, int nr, long mstep) {
  // Interleave tiles' two output columns: lo = tiles 0..7, hi = tiles 8..15.
  const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i hi =
      _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  const int th = (H + 1) / 2, tw = (W + 1) / 2, per_img = th * tw;
  const long plane = (long)H * W;
  const long step = mstep;  // transform position p to p + 1
  for (int g = g0; g < g1;) {
    const int n = g / per_img, gi = g - n * per_img, ti = gi / tw, tja = gi - ti * tw;
    const int cnt = imin(tw - tja, g1 - g);
    for (int j0 = 0; j0 < cnt; j0 += 16) {
      const int nt = imin(16, cnt - j0);
      const __mmask16 kn = span(0, nt);
      const int ow0 = 2 * (tja + j0), nout = imin(2 * nt, W - ow0);
      const __mmask16 ka = span(0, nout), kb = span(0, nout - 16);
      for (int k = 0; k < K; ++k) {
        const __m512 b = _mm512_set1_ps(bias ? bias[k] : 0.0f);
        const float* mk = m + (long)k * nr + (g - g0) + j0;
        __m512 t0[4], t1[4];
        for (int s = 0; s < 4; ++s) {
          const __m512 m0 = _mm512_maskz_loadu_ps(kn, mk + s * step);
          const __m512 m1 = _mm512_maskz_loadu_ps(kn, mk + (4 + s) * step);
          const __m512 m2 = _mm512_maskz_loadu_ps(kn, mk + (8 + s) * step);
          const __m512 m3 = _mm512_maskz_loadu_ps(kn, mk + (12 + s) * step);
          t0[s] = _mm512_add_ps(_mm512_add_ps(m0, m1), m2);
          t1[s] = _mm512_sub_ps(_mm512_sub_ps(m1, m2), m3);
        }
        float* yk = y + ((long)n * K + k) * plane + ow0;
        for (int a = 0; a < 2; ++a) {
          const int oh = 2 * ti + a;
          if (oh >= H) break;
          const __m512* t = a ? t1 : t0;
          const __m512 c0 = _mm512_add_ps(b, _mm512_add_ps(_mm512_add_ps(t[0], t[1]), t[2]));
          const __m512 c1 = _mm512_add_ps(b, _mm512_sub_ps(_mm512_sub_ps(t[1], t[2]), t[3]));
          float* dst = yk + (long)oh * W;
          _mm512_mask_storeu_ps(dst, ka, _mm512_permutex2var_ps(c0, lo, c1));
          _mm512_mask_storeu_ps(dst + 16, kb, _mm512_permutex2var_ps(c0, hi, c1));
        }
      }
    }
    g += cnt;
  }
}

}  // namespace

extern const WinogradTrainTransforms kWinogradTrainAvx512 = {input_panel, output_panel};

}  // namespace tfe::cpu::detail
