// CPU kernels of the tfe engine: the raw-pointer interface every op implements.
//
// Conventions (see ../../README.md, "Engine conventions"):
//  * float32, contiguous, NCHW activations; weights of conv2d are [K, C, k, k] (OIHW),
//    of linear [out, in] (as PyTorch stores them).
//  * argument order: outputs, const inputs, sizes, hyper-parameters.
//  * parameter gradients ACCUMULATE (+=) into their buffers; activation gradients ASSIGN (=).
//  * a nullable pointer (marked "or nullptr") skips that output or input.
//  * kernels trust their inputs: shapes and pointers are validated once, at the binding.
//  * kernels parallelise with OpenMP and honour tfe::cpu::num_threads().
//  * results do not depend on the thread count: every reduction (over the batch, a channel,
//    a GEMM's K) is split in a way fixed by the shapes alone and summed in a fixed order, so
//    the same inputs give the same bits run after run, on any number of threads.
#pragma once
#include <cstdint>

namespace tfe::cpu {

// ---- threads -------------------------------------------------------------------------
// At most kMaxThreads: more than the hardware threads of any current machine (two 192-core
// sockets with SMT give 768), and each one is an OS thread with its own stack, so OpenMP
// asked for 100000 fails to create them and crashes. Callers refuse larger counts.
constexpr int kMaxThreads = 1024;
void set_num_threads(int n);   // 1 <= n <= kMaxThreads
int num_threads();             // an OMP_NUM_THREADS above kMaxThreads is capped

// ---- the training ops: declared from the op table (csrc/ops.def, whose comments specify
// each kernel) ---------------------------------------------------------------------------
#define TFE_OP(name, kernel_params, ...) void name kernel_params;
#include "ops.def"

// Element i of dropout_forward is kept iff dropout_uniform(seed, i) >= p (the CUDA kernels
// draw the same hash): a pure function of (seed, i), so the mask does not depend on the
// thread count or the device.
float dropout_uniform(uint64_t seed, uint64_t i);

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

// ---- Winograd F(2x2, 3x3) inference convolution (winograd.cpp) -------------------------
// The 3x3 stride-1 pad-1 case of the inference convolution with 2.25x fewer multiplications
// (results differ from conv_infer_run by float rounding only). Input: C channels of an H x H
// map whose padded pixel (r, q), 0 <= r, q <= H + 1 (0: the zero border, which the caller
// keeps zero), is x[c * x_plane + r * x_row + q]; x is read up to
// x + (C - 1) * x_plane + (H + 1) * x_row + H + 1. Weights w[K, C, 3, 3] (bias folded
// separately) are transformed and packed once by winograd_pack. Output (oh, ow) of channel k
// is stored at y[k * y_plane + y_base + oh * y_row + ow] = act(bias[k] + conv + res[same]),
// as conv_infer_run (res may alias y; outputs only, padding untouched). Runs the work items
// [item0, item1) of winograd_items on the calling thread; no allocation after its first call.
int winograd_items(int H);
long winograd_packed_size(int K, int C);  // floats
void winograd_pack(float* up, const float* w /*[K, C, 3, 3]*/, int K, int C);
void winograd_run(float* y, const float* x, long x_plane, int x_row, const float* up,
                  const float* bias, const float* res /*or nullptr*/, int K, int C, int H,
                  long y_plane, long y_base, int y_row, bool relu, int item0, int item1);

}  // namespace tfe::cpu
