// The training Winograd transforms (contract in winograd_train_internal.h) for AVX-512,
// written with intrinsics: 16 tiles of one tile row per vector, as winograd_avx512.cpp does
// for inference. The maps are dense (no zero border), so the padding is made by the load
// masks: a lane whose column lies outside [0, W), or a row outside [0, H), reads zero.
// Masked-off lanes are never accessed (AVX-512 fault suppression), which also lets the first
// column's load start one float before the row. The tile arithmetic (even and odd columns
// split by permutes, the butterflies) is the inference's (winograd_avx512_tiles.h); masked
// stores clip the ends of a run and of the map.
//
// Compiled with -mavx512f ... (file name suffix); only reached after run-time detection.
#include <immintrin.h>

#include "conv/winograd_avx512_tiles.h"
#include "conv/winograd_train_internal.h"

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
        __m512 e[4], o[4], e1[4], o1[4];  // patch row r (wino512_load_row)
        for (int r = 0; r < 4; ++r) {
          const int row = 2 * ti + r - 1;
          if (row < 0 || row >= H) {
            e[r] = o[r] = e1[r] = o1[r] = zero;
            continue;
          }
          wino512_load_row(xc + (long)row * W + cb, k0, k1, k2, k3, e[r], o[r], e1[r], o1[r]);
        }
        wino512_input_store(base + (long)c * nr, vstep, ks, e, o, e1, o1);
      }
    }
    g += cnt;
  }
}

void output_panel(float* y, const float* m, const float* bias, int K, int H, int W, int g0,
                  int g1, int nr, long mstep) {
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
        __m512 out[2][2];
        wino512_output(m + (long)k * nr + (g - g0) + j0, step, kn, b, out);
        float* yk = y + ((long)n * K + k) * plane + ow0;
        for (int a = 0; a < 2; ++a) {
          const int oh = 2 * ti + a;
          if (oh >= H) break;
          float* dst = yk + (long)oh * W;
          _mm512_mask_storeu_ps(dst, ka, out[a][0]);
          _mm512_mask_storeu_ps(dst + 16, kb, out[a][1]);
        }
      }
    }
    g += cnt;
  }
}

}  // namespace

// The weight gradient's dy transform: the AVX2 build of the portable loops (a small share of
// the work; AVX-512 machines have AVX2).
extern const WinogradTrainTransforms kWinogradTrainAvx512 = {input_panel, output_panel,
                                                           winograd_train_grad_avx2};

}  // namespace tfe::cpu::detail
