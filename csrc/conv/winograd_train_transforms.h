// Input, output and weight-gradient (dy) transforms of the training Winograd F(2x2, 3x3)
// convolution (contract and tile numbering in winograd_train_internal.h) as plain loops,
// compiled per instruction set: winograd_train.cpp (baseline x86-64) and
// winograd_train_avx2.cpp include this header (winograd_train_avx512.cpp has an intrinsics
// version of the input and output ones). Everything here has internal linkage and the header
// includes only winograd_transforms.h (under the same rule), so no function compiled with
// AVX instructions can be merged (ODR) with the portable one.
//
// Per run of tiles (one tile row of one image): the 4 input rows under the run are copied
// with their zero padding into a small buffer (the maps are dense, without a border), then
// transformed by the inference convolution's run transforms (winograd_transforms.h); the
// output rows are assembled in a buffer and stored clipped to the map.
#pragma once

#include "conv/winograd_transforms.h"

namespace {

// The run of tiles that starts at tile g (and ends before g1): image n, tile row ti, first
// tile column tj, cnt tiles.
struct WtRun {
  int n, ti, tj, cnt;
};
inline WtRun wt_run(int g, int g1, int H, int W) {
  const int tw = (W + 1) / 2, per_img = ((H + 1) / 2) * tw;
  const int n = g / per_img, gi = g - n * per_img, ti = gi / tw, tj = gi - ti * tw;
  return {n, ti, tj, wino_min(tw - tj, g1 - g)};
}

inline void wt_input_panel(float* __restrict v, const float* __restrict x, int C, int H, int W,
                           int g0, int g1, int nr, long vstep) {
  alignas(64) float buf[4][kWinoMaxW];
  alignas(64) float d[4][kWinoMaxW];
  const long plane = (long)H * W;
  for (int g = g0; g < g1;) {
    const auto [n, ti, tja, cnt] = wt_run(g, g1, H, W);
    const int w = 2 * cnt + 2, col0 = 2 * tja - 1;
    // Columns q of the buffer that lie inside the map: [qlo, qhi).
    const int qlo = col0 < 0 ? -col0 : 0, qhi = wino_min(w, W - col0);
    const int j0 = g - g0;
    for (int c = 0; c < C; ++c) {
      const float* xc = x + ((long)n * C + c) * plane;
      for (int r = 0; r < 4; ++r) {
        const int row = 2 * ti + r - 1;
        float* b = buf[r];
        if (row < 0 || row >= H) {
          for (int q = 0; q < w; ++q) b[q] = 0.0f;
          continue;
        }
        const float* src = xc + (long)row * W + col0;
        for (int q = 0; q < qlo; ++q) b[q] = 0.0f;
        for (int q = qlo; q < qhi; ++q) b[q] = src[q];
        for (int q = qhi; q < w; ++q) b[q] = 0.0f;
      }
      const float* rows[4] = {buf[0], buf[1], buf[2], buf[3]};
      wino_input_run(v + (long)c * nr + j0, vstep, rows, w, cnt, d);
    }
    g += cnt;
  }
}

inline void wt_output_panel(float* __restrict y, const float* __restrict m,
                            const float* __restrict bias, int K, int H, int W, int g0, int g1,
                            int nr, long mstep) {
  alignas(64) float o[2][kWinoMaxW];
  const long plane = (long)H * W;
  for (int g = g0; g < g1;) {
    const auto [n, ti, tja, cnt] = wt_run(g, g1, H, W);
    const int ow0 = 2 * tja, nout = wino_min(2 * cnt, W - ow0);
    for (int k = 0; k < K; ++k) {
      const float b = bias ? bias[k] : 0.0f;
      wino_output_run(o, m + (long)k * nr + (g - g0), mstep, cnt, b);
      float* yk = y + ((long)n * K + k) * plane + ow0;
      for (int a = 0; a < 2; ++a) {
        const int oh = 2 * ti + a;
        if (oh >= H) break;
        float* dst = yk + (long)oh * W;
        for (int q = 0; q < nout; ++q) dst[q] = o[a][q];
      }
    }
    g += cnt;
  }
}

// Weight gradient: Q = A dY A^T of the tiles [g0, g1) of dy[N][K][H][W], with A^T the output
// transform's [1 1 1 0; 0 1 -1 -1]: q[p * qstep + k * ld + (g - g0)] = Q[p] of tile g in
// channel k (dY outside the map: zero, those outputs do not exist).
inline void wt_grad_panel(float* __restrict q, const float* __restrict dy, int K, int H, int W,
                          int g0, int g1, int ld, long qstep) {
  alignas(64) float buf[2][kWinoMaxW];
  alignas(64) float r[4][kWinoMaxW];
  const long plane = (long)H * W;
  for (int g = g0; g < g1;) {
    const auto [n, ti, tja, cnt] = wt_run(g, g1, H, W);
    const int w = 2 * cnt, col0 = 2 * tja;
    const int qhi = wino_min(w, W - col0);  // buffer columns inside the map
    const int j0 = g - g0;
    for (int k = 0; k < K; ++k) {
      const float* yk = dy + ((long)n * K + k) * plane;
      for (int a = 0; a < 2; ++a) {
        const int row = 2 * ti + a;
        float* b = buf[a];
        const float* src = yk + (long)row * W + col0;
        const int hi = row < H ? qhi : 0;
        for (int c = 0; c < hi; ++c) b[c] = src[c];
        for (int c = hi; c < w; ++c) b[c] = 0.0f;
      }
      // Rows of A dY: y0, y0 + y1, y0 - y1, -y1.
      for (int c = 0; c < w; ++c) {
        const float y0 = buf[0][c], y1 = buf[1][c];
        r[0][c] = y0;
        r[1][c] = y0 + y1;
        r[2][c] = y0 - y1;
        r[3][c] = -y1;
      }
      // Columns: (A dY) A^T, tile j at columns 2j, 2j + 1.
      for (int i = 0; i < 4; ++i) {
        const float* e = r[i];
        float* o0 = q + (4 * i + 0) * qstep + (long)k * ld + j0;
        float* o1 = q + (4 * i + 1) * qstep + (long)k * ld + j0;
        float* o2 = q + (4 * i + 2) * qstep + (long)k * ld + j0;
        float* o3 = q + (4 * i + 3) * qstep + (long)k * ld + j0;
        for (int j = 0; j < cnt; ++j) {
          const float u0 = e[2 * j], u1 = e[2 * j + 1];
          o0[j] = u0;
          o1[j] = u0 + u1;
          o2[j] = u0 - u1;
          o3[j] = -u1;
        }
      }
    }
    g += cnt;
  }
}

}  // namespace
