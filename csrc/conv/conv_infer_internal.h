// Internal interface between conv_infer.cpp and its ISA-specific fused micro-kernel
// (conv_infer_avx512.cpp), kept apart from gemm_internal.h so that the GEMM core is untouched.
#pragma once

namespace tfe::cpu::detail {

// The 8 x 48 implicit-GEMM tile of the AVX-512 GEMM kernel (B row t = b + off[t]) with the
// inference epilogue fused into its store: for rows i < m and the columns j whose bit is set
// in `mask` (bit j of a 48-bit mask),
//   c[i * ldc + j] = act(bias[i] + sum_t a[t * 8 + i] * b[off[t] + j] + (res ? res[i * ldc + j] : 0))
// with act = max(0, .) when relu (NaN passes, as relu_forward). Columns not in the mask are
// neither read nor written. a is an 8-row packed panel (pack_a).
void conv_infer_ukr_avx512(int kc, const float* a, const float* b, const int* off, float* c,
                           long ldc, const float* res, const float* bias, int m,
                           unsigned long long mask, bool relu);

}  // namespace tfe::cpu::detail
