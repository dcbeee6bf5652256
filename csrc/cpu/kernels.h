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

// ---- conv2d (conv2d.cpp) ---------------------------------------------------------------
// y[N,K,Ho,Wo] = conv(x[N,C,H,W], w[K,C,k,k]) + b[K], square kernel k, symmetric zero
// padding pad, stride s: Ho = (H + 2*pad - k) / s + 1 (same for Wo).
void conv2d_forward(float* y, const float* x, const float* w, const float* b /*or nullptr*/,
                    int N, int C, int H, int W, int K, int k, int stride, int pad);
// dx = assigned (or nullptr to skip), dw += (or nullptr), db += (or nullptr).
void conv2d_backward(float* dx, float* dw, float* db, const float* dy, const float* x,
                     const float* w, int N, int C, int H, int W, int K, int k, int stride,
                     int pad);

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

// ---- batch norm 2d/1d (batchnorm.cpp) ------------------------------------------------------
// x viewed as [N, C, HW] (HW = 1 for BatchNorm1d on [N, C]). Training mode normalises with
// the biased batch variance and writes save_mean[C], save_invstd[C] = 1/sqrt(var + eps);
// running stats update in place: r = (1 - momentum) * r + momentum * batch_stat, with the
// UNBIASED variance (count/(count-1)) for running_var, as PyTorch does.
void batchnorm_forward_train(float* y, float* save_mean, float* save_invstd,
                             float* running_mean, float* running_var, const float* x,
                             const float* gamma, const float* beta, int N, int C, int HW,
                             float eps, float momentum);
void batchnorm_forward_eval(float* y, const float* x, const float* gamma, const float* beta,
                            const float* running_mean, const float* running_var, int N, int C,
                            int HW, float eps);
// Backward of the training-mode forward: dx assigned, dgamma += , dbeta += (each may be
// nullptr). Training mode needs N*HW > 1 (checked at the binding).
void batchnorm_backward(float* dx, float* dgamma, float* dbeta, const float* dy,
                        const float* x, const float* gamma, const float* save_mean,
                        const float* save_invstd, int N, int C, int HW);

// ---- elementwise (relu.cpp, add.cpp) -------------------------------------------------------
void relu_forward(float* y, const float* x, int64_t n);
// dx = dy * (y > 0); uses the forward OUTPUT so x need not be kept.
void relu_backward(float* dx, const float* dy, const float* y, int64_t n);
// y = a + b (backward is the identity on both inputs: no kernel).
void add_forward(float* y, const float* a, const float* b, int64_t n);

// ---- pooling (maxpool.cpp, gap.cpp) --------------------------------------------------------
// Max pool, square window k, stride, implicit -inf padding pad. argmax[N,C,Ho,Wo] holds the
// flat index h*W + w of the chosen input inside its [H, W] plane (first max wins).
void maxpool2d_forward(float* y, int32_t* argmax, const float* x, int N, int C, int H, int W,
                       int k, int stride, int pad);
void maxpool2d_backward(float* dx, const float* dy, const int32_t* argmax, int N, int C, int H,
                        int W, int Ho, int Wo);
// Global average pool: y[N, C] = mean over HW of x[N, C, HW].
void gap_forward(float* y, const float* x, int N, int C, int HW);
void gap_backward(float* dx, const float* dy, int N, int C, int HW);

// ---- linear (linear.cpp) ----------------------------------------------------------------
// y[N, O] = x[N, I] w[O, I]^T + b[O].
void linear_forward(float* y, const float* x, const float* w, const float* b /*or nullptr*/,
                    int N, int I, int O);
// dx assigned (or nullptr), dw += , db += (or nullptr).
void linear_backward(float* dx, float* dw, float* db, const float* dy, const float* x,
                     const float* w, int N, int I, int O);

// ---- dropout (dropout.cpp) ----------------------------------------------------------------
// Inverted dropout. Element i is kept iff dropout_uniform(seed, i) >= p; kept elements are
// scaled by 1/(1-p). mask[i] = 1 (kept) or 0. The draw is a pure function of (seed, i),
// so the result does not depend on thread count or device.
float dropout_uniform(uint64_t seed, uint64_t i);
void dropout_forward(float* y, uint8_t* mask, const float* x, int64_t n, float p,
                     uint64_t seed);
void dropout_backward(float* dx, const float* dy, const uint8_t* mask, int64_t n, float p);

// ---- concat along dim 1 (concat.cpp) ----------------------------------------------------------
// y[N, sum(sizes[j]) * inner] from count inputs xs[j] of shape [N, sizes[j], inner].
void concat_forward(float* y, const float* const* xs, const int* sizes, int count, int N,
                    int inner);
// The inverse split: dxs[j] assigned.
void concat_backward(float* const* dxs, const float* dy, const int* sizes, int count, int N,
                     int inner);

// ---- softmax cross-entropy (cross_entropy.cpp) -------------------------------------------
// loss[0] = mean over the batch of -log softmax(logits)[label]; prob[N, K] saved for the
// backward. Labels are int64 in [0, K) (validated at the binding).
void cross_entropy_forward(float* loss, float* prob, const float* logits,
                           const int64_t* labels, int N, int K);
// dlogits = (prob - onehot(label)) * dloss / N.
void cross_entropy_backward(float* dlogits, const float* prob, const int64_t* labels, int N,
                            int K, float dloss);
// Soft targets: loss[0] = mean over the batch of -sum_k target[n,k] log softmax(logits)[n,k].
void cross_entropy_soft_forward(float* loss, float* prob, const float* logits,
                                const float* target, int N, int K);
// dlogits = (prob * sum_k target[n,k] - target) * dloss / N.
void cross_entropy_soft_backward(float* dlogits, const float* prob, const float* target, int N,
                                 int K, float dloss);

// ---- SGD (sgd.cpp) -------------------------------------------------------------------------
// One step over `count` parameter tensors (PyTorch semantics, dampening 0):
//   d = grad + weight_decay * param
//   buf = momentum * buf + d                        (buf starts at zero)
//   d = nesterov ? d + momentum * buf : buf         (momentum == 0: d unchanged, buf unused)
//   param -= lr * d
void sgd_step(float* const* params, float* const* momentum_bufs, const float* const* grads,
              const int64_t* sizes, int count, float lr, float momentum, float weight_decay,
              bool nesterov);

// ---- fused residual-block epilogue (residual.cpp) ---------------------------------------------
// y = relu(batchnorm(x) + shortcut), x and shortcut [N, C, HW]; BN semantics as above.
void residual_forward_train(float* y, float* save_mean, float* save_invstd,
                            float* running_mean, float* running_var, const float* x,
                            const float* shortcut, const float* gamma, const float* beta,
                            int N, int C, int HW, float eps, float momentum);
void residual_forward_eval(float* y, const float* x, const float* shortcut, const float* gamma,
                           const float* beta, const float* running_mean,
                           const float* running_var, int N, int C, int HW, float eps);
// dx, dshortcut assigned (either may be nullptr); dgamma, dbeta += (or nullptr).
// y is the forward output (its sign is the ReLU mask).
void residual_backward(float* dx, float* dshortcut, float* dgamma, float* dbeta,
                       const float* dy, const float* y, const float* x, const float* gamma,
                       const float* save_mean, const float* save_invstd, int N, int C, int HW);

// ---- fused TFE head (tfe_head.cpp) ---------------------------------------------------------
// z = BatchNorm1d(concat(zi[N, Di], ze[N, De])) over D = Di + De features (per-feature BN,
// so this equals BN1d(zi) ++ BN1d(ze)); logits[N, O] = z w[O, D]^T + b[O].
// z_hat[N, D] (the normalised, affine-transformed features) is saved for the backward.
void tfe_head_forward_train(float* logits, float* z_hat, float* save_mean, float* save_invstd,
                            float* running_mean, float* running_var, const float* zi,
                            const float* ze, const float* gamma, const float* beta,
                            const float* w, const float* b, int N, int Di, int De, int O,
                            float eps, float momentum);
void tfe_head_forward_eval(float* logits, float* z_hat, const float* zi, const float* ze,
                           const float* gamma, const float* beta, const float* running_mean,
                           const float* running_var, const float* w, const float* b, int N,
                           int Di, int De, int O, float eps);
// dzi, dze assigned (required: they are the GEMM's output buffers); dgamma, dbeta, dw, db
// += . Backward of the training-mode forward.
void tfe_head_backward(float* dzi, float* dze, float* dgamma, float* dbeta, float* dw,
                       float* db, const float* dlogits, const float* zi, const float* ze,
                       const float* z_hat, const float* gamma, const float* save_mean,
                       const float* save_invstd, const float* w, int N, int Di, int De, int O);

}  // namespace tfe::cpu
