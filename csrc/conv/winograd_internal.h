// Internal interface between winograd.cpp and its ISA-specific transforms
// (winograd_avx2.cpp, winograd_avx512.cpp: the loops of winograd_transforms.h compiled for
// that ISA; only called after run-time CPU detection chose the matching GEMM kernel), and
// the channel-split entry point below.
#pragma once

namespace tfe::cpu::detail {

struct WinogradTransforms {
  void (*input)(float* v, const float* x, long x_plane, int x_row, int C, int H, int nt,
                int g0, int g1, int nr, long vstep);
  void (*output)(float* y, const float* m, const float* bias, const float* res, int K, int H,
                 int nt, int g0, int g1, int nr, long mstep, long y_plane, long y_base, int y_row,
                 bool relu);
};

struct KernelInfo;  // gemm_internal.h

// The 16 products of a panel, M[p] = U[p] V[p] for p < 16: m[p * mstep + k * nr + j] for
// output channels k in [k0, k1) (k0 a multiple of the kernel's MR) from the packed weights
// up + p * per ([M x D] A-operands, winograd_pack) and the panel's transformed input
// v[p * vstep + c * nr + j] (c < D; columns j >= ncols are zeroed first), one micro-kernel
// call per (p, MR rows). Shared by the inference and the training (winograd_train.cpp) paths.
void winograd_panel_products(const KernelInfo& kr, const float* up, long per, float* v,
                             long vstep, float* m, long mstep, int D, int M, int ncols, int k0,
                             int k1);

extern const WinogradTransforms kWinogradAvx2;    // winograd_avx2.cpp
extern const WinogradTransforms kWinogradAvx512;  // winograd_avx512.cpp

// winograd_run restricted to output channels [k0, k1) (k0, and k1 unless it is K, multiples
// of winograd_channel_block()), for splitting one layer over threads when it has too few
// tile panels to share (the engine, graph.cpp): each output is still computed by the same
// micro-kernel call and output transform as in winograd_run, so the result is the same to
// the bit. Every caller transforms the whole input panel (cheap next to the GEMM).
int winograd_channel_block();
void winograd_run_channels(float* y, const float* x, long x_plane, int x_row, const float* up,
                           const float* bias, const float* res, int K, int C, int H,
                           long y_plane, long y_base, int y_row, bool relu, int item0,
                           int item1, int k0, int k1);

}  // namespace tfe::cpu::detail
