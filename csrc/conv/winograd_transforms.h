// Input and output transforms of the Winograd F(2x2, 3x3) convolution (winograd.cpp) as plain
// loops, compiled per instruction set: winograd.cpp (baseline x86-64) and winograd_avx2.cpp
// include this header (winograd_avx512.cpp has its own intrinsics version of the same
// contract). Everything here has internal linkage and the header includes no library header,
// so no function compiled with AVX instructions can be merged (ODR) with the portable one and
// run on a CPU without them.
//
// Tiles: output tile g = ti * nt + tj (nt = ceil(H / 2) tiles a side) covers output rows
// 2ti, 2ti+1 and columns 2tj, 2tj+1, and reads padded rows 2ti..2ti+3, padded columns
// 2tj..2tj+3 of every input channel (padded coordinates: 0 is the top/left zero border). A
// panel is the tiles [g0, g1), g1 - g0 <= nr (the GEMM micro-kernel's column count), split
// into runs of consecutive tiles within one tile row.
//
// With B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1] and A^T = [1 1 1 0; 0 1 -1 -1]:
//   V = B^T d B per input tile d (4x4), Y = A^T M A per output tile, M = sum_c U[k][c] . V[c].
#pragma once

namespace {

constexpr int kWinoMaxNr = 64;                  // panel width bound (every kernel's nr <= 48)
constexpr int kWinoMaxW = 2 * kWinoMaxNr + 2;   // padded columns under one run of tiles

inline int wino_min(int a, int b) { return a < b ? a : b; }

// V = B^T d B of the cnt tiles of a run whose 4 input rows (w = 2 cnt + 2 columns, tile j
// at columns 2j .. 2j+3) are rows[0..3]: V[p] of tile j at out[p * vstep + j]. d: scratch.
inline void wino_input_run(float* __restrict out, long vstep, const float* const* rows, int w,
                           int cnt, float (*d)[kWinoMaxW]) {
  // Rows of B^T d.
  const float *r0 = rows[0], *r1 = rows[1], *r2 = rows[2], *r3 = rows[3];
  float *d0 = d[0], *d1 = d[1], *d2 = d[2], *d3 = d[3];
  for (int q = 0; q < w; ++q) {
    d0[q] = r0[q] - r2[q];
    d1[q] = r1[q] + r2[q];
    d2[q] = r2[q] - r1[q];
    d3[q] = r1[q] - r3[q];
  }
  // Columns: (B^T d) B.
  for (int i = 0; i < 4; ++i) {
    const float* e = d[i];
    float* o0 = out + (4 * i + 0) * vstep;
    float* o1 = out + (4 * i + 1) * vstep;
    float* o2 = out + (4 * i + 2) * vstep;
    float* o3 = out + (4 * i + 3) * vstep;
    for (int j = 0; j < cnt; ++j) {
      const float a0 = e[2 * j], a1 = e[2 * j + 1], a2 = e[2 * j + 2], a3 = e[2 * j + 3];
      o0[j] = a0 - a2;
      o1[j] = a1 + a2;
      o2[j] = a2 - a1;
      o3[j] = a1 - a3;
    }
  }
}

// Y = b + A^T M A of the cnt tiles of a run, M[p] of tile j at mk[p * step + j]: output row a
// of the run (2 cnt columns) into o[a].
inline void wino_output_run(float (*o)[kWinoMaxW], const float* __restrict mk, long step,
                            int cnt, float b) {
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
}

// v[p * vstep + c * nr + (g - g0)] = V[p] (p = 4 * row + column of the 4x4 transform) of tile g
// of channel c, for g in [g0, g1). x is padded coordinate (0, 0) of channel 0: padded pixel
// (r, q) of channel c at x[c * x_plane + r * x_row + q], for r, q <= H + 1 (the caller keeps
// those allocated; padded rows/columns past H + 1, reached when H is odd, are taken as zero).
inline void wino_input_panel(float* __restrict v, const float* __restrict x, long x_plane,
                             int x_row, int C, int H, int nt, int g0, int g1, int nr, long vstep) {
  alignas(64) float buf[4][kWinoMaxW];
  alignas(64) float d[4][kWinoMaxW];
  for (int c = 0; c < C; ++c) {
    const float* xc = x + c * x_plane;
    for (int g = g0; g < g1;) {
      const int ti = g / nt, tja = g - ti * nt;
      const int cnt = wino_min(nt - tja, g1 - g), w = 2 * cnt + 2, col0 = 2 * tja;
      const float* rows[4];
      for (int r = 0; r < 4; ++r) {
        const int pr = 2 * ti + r;
        const float* src = xc + (long)pr * x_row + col0;
        if (pr <= H + 1 && col0 + w <= H + 2) {
          rows[r] = src;  // whole run inside the padded map: read in place
        } else {
          const int n = pr <= H + 1 ? wino_min(w, H + 2 - col0) : 0;
          for (int q = 0; q < n; ++q) buf[r][q] = src[q];
          for (int q = n; q < w; ++q) buf[r][q] = 0.0f;
          rows[r] = buf[r];
        }
      }
      wino_input_run(v + (long)c * nr + (g - g0), vstep, rows, w, cnt, d);
      g += cnt;
    }
  }
}

// Output transform of the panel's tiles from m[p * mstep + k * nr + (g - g0)] (the 16 GEMM
// results), with the epilogue of conv_infer_run: output (oh, ow) of channel k, oh, ow < H, at
//   y[k * y_plane + y_base + oh * y_row + ow] = act(bias[k] + Y + (res ? res[same] : 0)).
// Outputs past H (odd H) are neither read nor written; res may alias y (read, then written).
inline void wino_output_panel(float* y, const float* __restrict m, const float* __restrict bias,
                              const float* res, int K, int H, int nt, int g0, int g1, int nr,
                              long mstep, long y_plane, long y_base, int y_row, bool relu) {
  alignas(64) float o[2][kWinoMaxW];
  for (int k = 0; k < K; ++k) {
    const float b = bias[k];
    for (int g = g0; g < g1;) {
      const int ti = g / nt, tja = g - ti * nt;
      const int cnt = wino_min(nt - tja, g1 - g);
      wino_output_run(o, m + (long)k * nr + (g - g0), mstep, cnt, b);
      const int ow0 = 2 * tja, n = wino_min(2 * cnt, H - ow0);
      for (int a = 0; a < 2; ++a) {
        const int oh = 2 * ti + a;
        if (oh >= H) break;
        const long at = (long)k * y_plane + y_base + (long)oh * y_row + ow0;
        float* dst = y + at;
        const float* src = o[a];
        if (res) {
          const float* r = res + at;
          if (relu) {
            for (int q = 0; q < n; ++q) {
              const float t = src[q] + r[q];
              dst[q] = t < 0.0f ? 0.0f : t;  // as relu_forward (NaN passes)
            }
          } else {
            for (int q = 0; q < n; ++q) dst[q] = src[q] + r[q];
          }
        } else if (relu) {
          for (int q = 0; q < n; ++q) dst[q] = src[q] < 0.0f ? 0.0f : src[q];
        } else {
          for (int q = 0; q < n; ++q) dst[q] = src[q];
        }
      }
      g += cnt;
    }
  }
}

}  // namespace
