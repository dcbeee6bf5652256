// Winograd F(2x2, 3x3) inference convolution (contract in kernels.h) for the 3x3 stride-1
// pad-1 layers of the C++ library: 2.25 times fewer multiplications than the direct implicit
// GEMM of conv_infer.cpp, which already runs near the FMA limit.
//
// Weights: U = G g G^T per (k, c), computed once (double, rounded to float) and packed as 16
// [K x C] A-operands of the GEMM micro-kernel. Per panel of nr output tiles (nr = the
// micro-kernel's width, 48 with AVX-512): the input transform writes V as 16 [C x nr] blocks
// already in the micro-kernel's packed-B layout (so no packing copy), 16 x ceil(K/MR)
// micro-kernel calls give M = U V (depth C <= a few hundred: one call covers it), and the
// output transform applies the bias (+ residual) (+ ReLU) epilogue while storing only valid
// outputs into the consumer's padded map. The panel's V and M (16 (C + K) nr floats, 384 KiB
// at C = K = 64) stay in L2 between the three phases.
//
// F(2x2, 3x3) only: its transforms have entries 0, +-1, +-1/2, so the float result differs
// from the direct convolution by a few ulps of the sum's magnitude (measured in
// tests/test_cpp_library.py). F(4x4, 3x3) would cut the multiplications further, but its
// transforms have entries up to 8 and a much larger float error.
//
// Each output is computed by one work item (panel) with a fixed order, so the result does not
// depend on how the items, or the output channels (winograd_run_channels), are split over
// threads.
#include <algorithm>
#include <cstring>
#include <vector>

#include "conv/conv_infer.h"
#include "conv/winograd.h"
#include "conv/winograd_internal.h"
#include "conv/winograd_transforms.h"
#include "gemm/gemm_internal.h"
#include "ops/cpu_kernels.h"

namespace tfe::cpu {
namespace {

using detail::KernelInfo;

thread_local detail::Scratch tls_v, tls_m;

int tiles_per_side(int H) { return (H + 1) / 2; }

const detail::WinogradTransforms& transforms(const KernelInfo& kr) {
  static const detail::WinogradTransforms portable = {wino_input_panel, wino_output_panel};
  if (std::strcmp(kr.name, "avx512") == 0) return detail::kWinogradAvx512;
  if (std::strcmp(kr.name, "avx2") == 0) return detail::kWinogradAvx2;
  return portable;
}

}  // namespace

int winograd_items(int H) {
  const int nr = detail::active_kernel().nr, t = tiles_per_side(H);
  return (t * t + nr - 1) / nr;
}

long winograd_packed_size(int K, int C) { return 16 * conv_infer_packed_size(K, C); }

void winograd_pack(float* up, const float* w, int K, int C) {
  // U = G g G^T, G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1].
  static const double G[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
  std::vector<float> u(16 * (size_t)K * C);
  for (int k = 0; k < K; ++k)
    for (int c = 0; c < C; ++c) {
      const float* g = w + ((size_t)k * C + c) * 9;
      double t[4][3];  // G g
      for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 3; ++j)
          t[i][j] = G[i][0] * g[j] + G[i][1] * g[3 + j] + G[i][2] * g[6 + j];
      for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 4; ++j) {
          const double v = t[i][0] * G[j][0] + t[i][1] * G[j][1] + t[i][2] * G[j][2];
          u[((size_t)(4 * i + j) * K + k) * C + c] = static_cast<float>(v);
        }
    }
  const long per = conv_infer_packed_size(K, C);
  for (int p = 0; p < 16; ++p) conv_infer_pack(up + p * per, u.data() + (size_t)p * K * C, K, C);
}

void winograd_run(float* y, const float* x, long x_plane, int x_row, const float* up,
                  const float* bias, const float* res, int K, int C, int H, long y_plane,
                  long y_base, int y_row, bool relu, int item0, int item1) {
  detail::winograd_run_channels(y, x, x_plane, x_row, up, bias, res, K, C, H, y_plane, y_base,
                                y_row, relu, item0, item1, 0, K);
}

namespace detail {

int winograd_channel_block() { return active_kernel().mr; }

void winograd_panel_products(const KernelInfo& kr, const float* up, long per, float* v,
                             long vstep, float* m, long mstep, int D, int M, int ncols, int k0,
                             int k1) {
  const int MR = kr.mr, nr = kr.nr;
  if (ncols < nr)  // the micro-kernel computes all nr columns: keep the unused ones finite
    for (int p = 0; p < 16; ++p)
      for (int c = 0; c < D; ++c)
        std::fill(v + p * vstep + (long)c * nr + ncols, v + p * vstep + (long)(c + 1) * nr, 0.0f);
  for (int p = 0; p < 16; ++p)
    for (int i0 = k0; i0 < k1; i0 += MR)
      kr.ukr(D, up + p * per + (long)i0 * D, v + p * vstep, m + p * mstep + (long)i0 * nr, nr,
             0.0f, std::min(MR, M - i0), nr);
}

void winograd_run_channels(float* y, const float* x, long x_plane, int x_row, const float* up,
                           const float* bias, const float* res, int K, int C, int H,
                           long y_plane, long y_base, int y_row, bool relu, int item0,
                           int item1, int k0, int k1) {
  const KernelInfo& kr = detail::active_kernel();
  const detail::WinogradTransforms& tf = transforms(kr);
  const int nr = kr.nr, nt = tiles_per_side(H), ntiles = nt * nt;
  const long per = conv_infer_packed_size(K, C);
  // The 16 transform positions of V and M are one cache line more apart than their blocks'
  // size: at C or K = 64 the blocks are 12 KiB, a multiple of 4 KiB, and the transforms'
  // 16 streams would all fall into one L1 set.
  const long vstep = (long)C * nr + 16, mstep = (long)K * nr + 16;
  float* v = tls_v.get(16 * vstep);
  float* m = tls_m.get(16 * mstep);
  for (int item = item0; item < item1; ++item) {
    const int g0 = item * nr, g1 = std::min(g0 + nr, ntiles);
    tf.input(v, x, x_plane, x_row, C, H, nt, g0, g1, nr, vstep);
    winograd_panel_products(kr, up, per, v, vstep, m, mstep, C, K, g1 - g0, k0, k1);
    const long yk = (long)k0 * y_plane;
    tf.output(y + yk, m + (long)k0 * nr, bias + k0, res ? res + yk : nullptr, k1 - k0, H, nt, g0,
              g1, nr, mstep, y_plane, y_base, y_row, relu);
  }
}

}  // namespace detail

}  // namespace tfe::cpu
