// The Winograd transforms (contract in winograd_transforms.h) for AVX-512, written with
// intrinsics: 16 tiles of one tile row per vector. The portable loops of
// winograd_transforms.h need stride-2 accesses (tile j starts at column 2j) that the compiler
// turns into slow gathers and scalar code; here the even and odd columns are split with two
// permutes per pair of loads, and masked loads/stores handle the ends of a run, the zero
// columns past an odd map and the slack of the panel.
//
// Compiled with -mavx512f ... (file name suffix); only reached after run-time detection.
#include <immintrin.h>

#include "winograd_internal.h"

namespace tfe::cpu::detail {
namespace {

inline int imin(int a, int b) { return a < b ? a : b; }

// Bits q of the 16 lanes with o + q < lim.
inline __mmask16 lanes(int lim, int o) {
  const int n = lim - o;
  return n <= 0 ? 0 : n >= 16 ? 0xFFFF : (__mmask16)((1u << n) - 1);
}

void input_panel(float* v, const float* x, long x_plane, int x_row, int C, int H, int nt,
                 int g0, int g1, int nr, long vstep) {
  const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i od = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  const __m512 zero = _mm512_setzero_ps();
  for (int c = 0; c < C; ++c) {
    const float* xc = x + c * x_plane;
    for (int g = g0; g < g1;) {
      const int ti = g / nt, tja = g - ti * nt, cnt = imin(nt - tja, g1 - g);
      for (int j0 = 0; j0 < cnt; j0 += 16) {
        const int n = imin(16, cnt - j0), cb = 2 * (tja + j0);
        const int lim = imin(2 * n + 2, H + 2 - cb);  // columns that exist (else zero)
        const __mmask16 k0 = lanes(lim, 0), k1 = lanes(lim, 16), k2 = lanes(lim, 2),
                        k3 = lanes(lim, 18);
        // e/o: columns 2j, 2j + 1 of tile j; e1/o1: 2j + 2, 2j + 3 (padded rows 2ti + r).
        __m512 e[4], o[4], e1[4], o1[4];
        for (int r = 0; r < 4; ++r) {
          const int pr = 2 * ti + r;
          if (pr > H + 1) {
            e[r] = o[r] = e1[r] = o1[r] = zero;
            continue;
          }
          const float* p = xc + (long)pr * x_row + cb;
          const __m512 a = _mm512_maskz_loadu_ps(k0, p), b = _mm512_maskz_loadu_ps(k1, p + 16);
          const __m512 a2 = _mm512_maskz_loadu_ps(k2, p + 2),
                       b2 = _mm512_maskz_loadu_ps(k3, p + 18);
          e[r] = _mm512_permutex2var_ps(a, ev, b);
          o[r] = _mm512_permutex2var_ps(a, od, b);
          e1[r] = _mm512_permutex2var_ps(a2, ev, b2);
          o1[r] = _mm512_permutex2var_ps(a2, od, b2);
        }
        const __mmask16 ks = lanes(n, 0);
        float* base = v + (long)c * nr + (g - g0) + j0;
        const long pstep = vstep;
        auto row = [&](int i, __m512 E, __m512 O, __m512 E1, __m512 O1) {
          float* q = base + (long)(4 * i) * pstep;
          _mm512_mask_storeu_ps(q, ks, _mm512_sub_ps(E, E1));
          _mm512_mask_storeu_ps(q + pstep, ks, _mm512_add_ps(O, E1));
          _mm512_mask_storeu_ps(q + 2 * pstep, ks, _mm512_sub_ps(E1, O));
          _mm512_mask_storeu_ps(q + 3 * pstep, ks, _mm512_sub_ps(O, O1));
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
      g += cnt;
    }
  }
}

inline __m512 epilogue(__m512 t, const float* r, __mmask16 k, bool relu) {
  if (r) t = _mm512_add_ps(t, _mm512_maskz_loadu_ps(k, r));
  // max(0, x): NaN passes. (The zero-masked form: the plain one trips a false
  // -Wmaybe-uninitialized in GCC 12 headers.)
  if (relu) t = _mm512_maskz_max_ps(0xFFFF, _mm512_setzero_ps(), t);
  return t;
}

void output_panel(float* y, const float* m, const float* bias, const float* res, int K, int H,
                  int nt, int g0, int g1, int nr, long mstep, long y_plane, long y_base,
                  int y_row, bool relu) {
  // Interleave tiles' two output columns: lo = tiles 0..7, hi = tiles 8..15.
  const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i hi =
      _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  const long step = mstep;  // transform position p to p + 1
  for (int k = 0; k < K; ++k) {
    const __m512 b = _mm512_set1_ps(bias[k]);
    for (int g = g0; g < g1;) {
      const int ti = g / nt, tja = g - ti * nt, cnt = imin(nt - tja, g1 - g);
      for (int j0 = 0; j0 < cnt; j0 += 16) {
        const int n = imin(16, cnt - j0);
        const __mmask16 kn = lanes(n, 0);
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
        const int ow0 = 2 * (tja + j0), nout = imin(2 * n, H - ow0);
        const __mmask16 ka = lanes(nout, 0), kb = lanes(nout, 16);
        for (int a = 0; a < 2; ++a) {
          const int oh = 2 * ti + a;
          if (oh >= H) break;
          const __m512* t = a ? t1 : t0;
          const __m512 c0 = _mm512_add_ps(b, _mm512_add_ps(_mm512_add_ps(t[0], t[1]), t[2]));
          const __m512 c1 = _mm512_add_ps(b, _mm512_sub_ps(_mm512_sub_ps(t[1], t[2]), t[3]));
          const long at = (long)k * y_plane + y_base + (long)oh * y_row + ow0;
          const float* r = res ? res + at : nullptr;
          const __m512 v0 = epilogue(_mm512_permutex2var_ps(c0, lo, c1), r, ka, relu);
          const __m512 v1 = epilogue(_mm512_permutex2var_ps(c0, hi, c1), r ? r + 16 : nullptr, kb, relu);
          _mm512_mask_storeu_ps(y + at, ka, v0);
          _mm512_mask_storeu_ps(y + at + 16, kb, v1);
        }
      }
      g += cnt;
    }
  }
}

}  // namespace

extern const WinogradTransforms kWinogradAvx512 = {input_panel, output_panel};

}  // namespace tfe::cpu::detail
