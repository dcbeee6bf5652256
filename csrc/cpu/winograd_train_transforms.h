// Input and output transforms of the training Winograd F(2x2, 3x3) convolution
// (contract and tile numbering in winograd_train_internal.h) as plain loops, compiled per
// instruction set: winograd_train.cpp (baseline x86-64) and winograd_train_avx2.cpp include
// this header (winograd_train_avx512.cpp has an intrinsics version of the same contract).
// Everything here has internal linkage and the header includes no library header, so no
// function compiled with AVX instructions can be merged (ODR) with the portable one.
//
// Per run of tiles (one tile row of one image): the 4 input rows under the run are copied
// with their zero padding into a small buffer (the maps are dense, without a border), then
// transformed exactly as in winograd_transforms.h; the output rows are assembled in a
// buffer and stored clipped to the map.
#pragma once

namespace {

constexpr int kWtMaxNr = 64;                 // panel width bound (every kernel's nr <= 48)
constexpr int kWtMaxW = 2 * kWtMaxNr + 2;    // input columns under one run of tiles

inline int wt_min(int a, int b) { return a < b ? a : b; }

void wt_input_panel(float* __restrict v, const float* __restrict x, int C, int H, int W,
                    int g0, int g1, int nr, long vstep) {
  alignas(64) float buf[4][kWtMaxW];
  alignas(64) float d[4][kWtMaxW];
  const int th = (H + 1) / 2, tw = (W + 1) / 2, per_img = th * tw;
  const long plane = (long)H * W;
  for (int g = g0; g < g1;) {
    const int n = g / per_img, gi = g - n * per_img, ti = gi / tw, tja = gi - ti * tw;
    const int cnt = wt_min(tw - tja, g1 - g), w = 2 * cnt + 2, col0 = 2 * tja - 1;
    // Columns q of the buffer that lie inside the map: [qlo, qhi).
    const int qlo = col0 < 0 ? -col0 : 0, qhi = wt_min(w, W - col0);
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
      // Rows of B^T d.
      const float *r0 = buf[0], *r1 = buf[1], *r2 = buf[2], *r3 = buf[3];
      float *d0 = d[0], *d1 = d[1], *d2 = d[2], *d3 = d[3];
      for (int q = 0; q < w; ++q) {
        d0[q] = r0[q] - r2[q];
        d1[q] = r1[q] + r2[q];
        d2[q] = r2[q] - r1[q];
        d3[q] = r1[q] - r3[q];
      }
      // Columns: (B^T d) B, tile j of the run at buffer columns 2j .. 2j+3.
      for (int i = 0; i < 4; ++i) {
        const float* e = d[i];
        float* o0 = v + (4 * i + 0) * vstep + (long)c * nr + j0;
        float* o1 = v + (4 * i + 1) * vstep + (long)c * nr + j0;
        float* o2 = v + (4 * i + 2) * vstep + (long)c * nr + j0;
        float* o3 = v + (4 * i + 3) * vstep + (long)c * nr + j0;
        for (int j = 0; j < cnt; ++j) {
          const float a0 = e[2 * j], a1 = e[2 * j + 1], a2 = e[2 * j + 2], a3 = e[2 * j + 3];
          o0[j] = a0 - a2;
          o1[j] = a1 + a2;
          o2[j] = a2 - a1;
          o3[j] = a1 - a3;
        }
      }
    }
    g += cnt;
  }
}

void wt_output_panel(float* __restrict y, const float* __restrict m,
                     const float* __restrict bias, int K, int H, int W, int g0, int g1, int nr,
                     long mstep) {
  alignas(64) float o[2][kWtMaxW];
  const int th = (H + 1) / 2, tw = (W + 1) / 2, per_img = th * tw;
  const long plane = (long)H * W;
  for (int g = g0; g < g1;) {
    const int n = g / per_img, gi = g - n * per_img, ti = gi / tw, tja = gi - ti * tw;
    const int cnt = wt_min(tw - tja, g1 - g);
    const int ow0 = 2 * tja, nout = wt_min(2 * cnt, W - ow0);
    for (int k = 0; k < K; ++k) {
      const float b = bias ? bias[k] : 0.0f;
      const float* mk = m + (long)k * nr + (g - g0);
      const long step = mstep;  // from transform position p to p + 1
      float *o0 = o[0], *o1 = o[1];
      for (int j = 0; j < cnt; ++j) {
        float t0[4], t1[4];
        for (int s = 0; s < 4; ++s) {
          const float m0 = mk[(0 + s) * step + j], m1 = mk[(4 + s) * step + j],
                      m2 = mk[(8 + s) * step + j], m3 = mk[(12 + s) * step + j];
          t0[s] = m0 + m1 + m2;
          t1[s] = m1 - m2 - m3;
        }
        o0[2 * j] = b + (t0[0] + t0[1] + t0[2]);
        o0[2 * j + 1] = b + (t0[1] - t0[2] - t0[3]);
        o1[2 * j] = b + (t1[0] + t1[1] + t1[2]);
        o1[2 * j + 1] = b + (t1[1] - t1[2] - t1[3]);
      }
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

}  // namespace
