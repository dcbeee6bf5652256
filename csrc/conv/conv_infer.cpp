// Inference convolution (contract in kernels.h): the implicit GEMM of conv2d.cpp without
// its per-call costs, for batch-1 latency in the C++ library.
//
// conv2d_forward packs the weights on every call, copies each input into a padded
// (phase-split) buffer, writes an extended output that a second pass compacts, and is
// followed by separate batch-norm, ReLU and residual passes. Here the caller packs the
// (batch-norm-folded) weights once, keeps its activations in the layout the consumer reads
// (so no copy is needed between stride-1 convolutions), and the epilogue (bias, residual,
// ReLU, discarding the extended columns) runs on an MR x NR tile that the micro-kernel has
// just written to a per-thread L1 buffer, storing only valid outputs: padding that the
// caller zeroed once is never touched, so it stays zero.
//
// Work item = (output tile of NR extended columns, MR-row panel of output channels), ordered
// tile-major so that consecutive items on one thread reuse the tile's input rows from L1/L2.
// Each output element is computed by one item with a fixed summation order, so the result
// does not depend on how the items are split over threads.
#include <algorithm>
#include <cstring>

#include "conv/conv_infer.h"
#include "conv/conv_infer_internal.h"
#include "gemm/gemm_internal.h"
#include "ops/cpu_kernels.h"

namespace tfe::cpu {
namespace {

using detail::KernelInfo;

inline int ceil_div(int a, int b) { return (a + b - 1) / b; }

int tiles(int Ho, int ldx, int nr) { return ceil_div(Ho * ldx, nr); }

thread_local detail::Scratch tls_tile;  // MR x NR micro-tile of this thread

// Bit j set iff extended column l0 + j (j < 48) is a real output pixel.
unsigned long long valid_mask(int l0, int lend, int ldx, int Wo) {
  unsigned long long mask = 0;
  int ow = l0 % ldx;
  for (int j = 0; j < 48 && l0 + j < lend; ++j) {
    if (ow < Wo) mask |= 1ull << j;
    if (++ow == ldx) ow = 0;
  }
  return mask;
}

}  // namespace

int conv_infer_items(int K, int Ho, int ldx) {
  const KernelInfo& kr = detail::active_kernel();
  return tiles(Ho, ldx, kr.nr) * ceil_div(K, kr.mr);
}

long conv_infer_span(int Ho, int ldx) {
  const KernelInfo& kr = detail::active_kernel();
  return (long)tiles(Ho, ldx, kr.nr) * kr.nr + 16;
}

long conv_infer_packed_size(int K, int T) {
  const KernelInfo& kr = detail::active_kernel();
  return (long)ceil_div(K, kr.mr) * kr.mr * T;
}

void conv_infer_pack(float* wp, const float* w, int K, int T) {
  detail::pack_a(detail::active_kernel(), false, K, T, 1.0f, w, T, wp);
}

void conv_infer_run(float* y, const float* x, const float* wp, const float* bias,
                    const float* res, const int* off, int K, int T, int Ho, int Wo, int ldx,
                    long y_plane, long y_base, int y_row, bool relu, int item0, int item1) {
  const KernelInfo& kr = detail::active_kernel();
  const int MR = kr.mr, NR = kr.nr, np = ceil_div(K, MR);
  const int lend_all = Ho * ldx;
  // AVX-512 and an output with the input's row stride (every padded map): the epilogue runs
  // in registers and stores straight into y, masked to the valid columns.
  static const bool fused_isa = std::strcmp(kr.name, "avx512") == 0 && MR == 8 && NR == 48;
  if (fused_isa && y_row == ldx) {
    int mask_tile = -1;
    unsigned long long mask = 0;
    for (int item = item0; item < item1; ++item) {
      const int t = item / np, mp = item % np;
      const int i0 = mp * MR, l0 = t * NR;
      if (t != mask_tile) mask = valid_mask(l0, lend_all, ldx, Wo), mask_tile = t;
      if (!mask) continue;
      const long at = (long)i0 * y_plane + y_base + l0;
      detail::conv_infer_ukr_avx512(T, wp + (long)mp * MR * T, x + l0, off, y + at, y_plane,
                                    res ? res + at : nullptr, bias + i0, std::min(MR, K - i0),
                                    mask, relu);
    }
    return;
  }
  float* tile = tls_tile.get((long)MR * NR);
  for (int item = item0; item < item1; ++item) {
    const int t = item / np, mp = item % np;
    const int i0 = mp * MR, m = std::min(MR, K - i0);
    const int l0 = t * NR;
    kr.ukr_off(T, wp + (long)mp * MR * T, x + l0, off, tile, NR, bias + i0, m);
    // Epilogue over the valid runs of the tile: pieces of output rows.
    const int lend = std::min(l0 + NR, lend_all);
    int l = l0;
    while (l < lend) {
      const int oh = l / ldx, ow = l - oh * ldx;
      if (ow >= Wo) {  // discarded columns up to the next row
        l += ldx - ow;
        continue;
      }
      const int len = std::min(lend - l, Wo - ow);
      const long at = y_base + (long)oh * y_row + ow;
      for (int i = 0; i < m; ++i) {
        const float* src = tile + i * NR + (l - l0);
        float* dst = y + (long)(i0 + i) * y_plane + at;
        const float* r = res ? res + (long)(i0 + i) * y_plane + at : nullptr;
        if (r && relu) {
          for (int j = 0; j < len; ++j) {
            const float v = src[j] + r[j];
            dst[j] = v < 0.0f ? 0.0f : v;  // as relu_forward (NaN passes)
          }
        } else if (r) {
          for (int j = 0; j < len; ++j) dst[j] = src[j] + r[j];
        } else if (relu) {
          for (int j = 0; j < len; ++j) dst[j] = src[j] < 0.0f ? 0.0f : src[j];
        } else {
          for (int j = 0; j < len; ++j) dst[j] = src[j];
        }
      }
      l += len;
    }
  }
}

}  // namespace tfe::cpu
