// The Winograd transforms (contract in winograd_transforms.h) for AVX-512, written with
// intrinsics: 16 tiles of one tile row per vector. The portable loops of
// winograd_transforms.h need stride-2 accesses (tile j starts at column 2j) that the compiler
// turns into slow gathers and scalar code; here the even and odd columns are split with two
// permutes per pair of loads, and masked loads/stores handle the ends of a run, the zero
// columns past an odd map and the slack of the panel.
//
// Compiled with -mavx512f ... (file name suffix); only reached after run-time detection.
#include <immintrin.h>

#include "conv/winograd_avx512_tiles.h"
#include "conv/winograd_internal.h"

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
        __m512 e[4], o[4], e1[4], o1[4];  // padded rows 2ti + r (wino512_load_row)
        for (int r = 0; r < 4; ++r) {
          const int pr = 2 * ti + r;
          if (pr > H + 1) {
            e[r] = o[r] = e1[r] = o1[r] = zero;
            continue;
          }
          wino512_load_row(xc + (long)pr * x_row + cb, k0, k1, k2, k3, e[r], o[r], e1[r], o1[r]);
        }
        wino512_input_store(v + (long)c * nr + (g - g0) + j0, vstep, lanes(n, 0), e, o, e1, o1);
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
  const long step = mstep;  // transform position p to p + 1
  for (int k = 0; k < K; ++k) {
    const __m512 b = _mm512_set1_ps(bias[k]);
    for (int g = g0; g < g1;) {
      const int ti = g / nt, tja = g - ti * nt, cnt = imin(nt - tja, g1 - g);
      for (int j0 = 0; j0 < cnt; j0 += 16) {
        const int n = imin(16, cnt - j0);
        const __mmask16 kn = lanes(n, 0);
        __m512 out[2][2];
        wino512_output(m + (long)k * nr + (g - g0) + j0, step, kn, b, out);
        const int ow0 = 2 * (tja + j0), nout = imin(2 * n, H - ow0);
        const __mmask16 ka = lanes(nout, 0), kb = lanes(nout, 16);
        for (int a = 0; a < 2; ++a) {
          const int oh = 2 * ti + a;
          if (oh >= H) break;
          const long at = (long)k * y_plane + y_base + (long)oh * y_row + ow0;
          const float* r = res ? res + at : nullptr;
          const __m512 v0 = epilogue(out[a][0], r, ka, relu);
          const __m512 v1 = epilogue(out[a][1], r ? r + 16 : nullptr, kb, relu);
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
