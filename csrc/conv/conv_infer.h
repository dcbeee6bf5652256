// The packed implicit-GEMM convolution: the C++ inference library's eval-mode convolution,
// and the panel product under the Winograd transforms of winograd.h (training and inference).
#pragma once

namespace tfe::cpu {

// ---- inference convolution (conv_infer.cpp) ----------------------------------------------
// The eval-mode convolution of the C++ inference library: an implicit GEMM over weights
// packed once (at model load), with the bias, an optional residual and an optional ReLU
// applied while the output tile is still in L1, and the result written straight into the
// consumer's layout (e.g. the zero-padded input of the next convolution). No allocation
// after a thread's first call; runs on the calling thread only, over the work items
// [item0, item1) of conv_infer_items, so a caller splits the items over its own team.
//
// Input: T taps, tap t of output position l reads x[off[t] + l]. Output position (oh, ow),
// oh < Ho, ow < Wo, has the "extended" index l = oh * ldx + ow (ldx >= Wo: the columns
// Wo..ldx-1 of each row are computed and discarded), and channel i < K is stored at
//   y[i * y_plane + y_base + oh * y_row + ow] =
//       act(bias[i] + sum_t w[i, t] * x[off[t] + l] + (res ? res[same index] : 0)),
// (bias: K floats, required; w as packed by conv_infer_pack),
// act = ReLU when relu, else the identity; res may alias y (each element is read before
// it is written, by the same thread). x is read up to conv_infer_span() floats past
// x + max(off): the caller keeps them allocated and finite.
int conv_infer_items(int K, int Ho, int ldx);
long conv_infer_span(int Ho, int ldx);
long conv_infer_packed_size(int K, int T);  // floats
void conv_infer_pack(float* wp, const float* w /*[K, T]*/, int K, int T);
void conv_infer_run(float* y, const float* x, const float* wp, const float* bias,
                    const float* res /*or nullptr*/, const int* off, int K, int T, int Ho,
                    int Wo, int ldx, long y_plane, long y_base, int y_row, bool relu,
                    int item0, int item1);

}  // namespace tfe::cpu
