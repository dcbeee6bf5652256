// Internal interface between winograd.cpp and its ISA-specific transforms
// (winograd_avx2.cpp, winograd_avx512.cpp: the loops of winograd_transforms.h compiled for
// that ISA; only called after run-time CPU detection chose the matching GEMM kernel).
#pragma once

namespace tfe::cpu::detail {

struct WinogradTransforms {
  void (*input)(float* v, const float* x, long x_plane, int x_row, int C, int H, int nt,
                int g0, int g1, int nr, long vstep);
  void (*output)(float* y, const float* m, const float* bias, const float* res, int K, int H,
                 int nt, int g0, int g1, int nr, long mstep, long y_plane, long y_base, int y_row,
                 bool relu);
};

extern const WinogradTransforms kWinogradAvx2;    // winograd_avx2.cpp
extern const WinogradTransforms kWinogradAvx512;  // winograd_avx512.cpp

}  // namespace tfe::cpu::detail
