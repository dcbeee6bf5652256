// CUDA kernels of the tfe engine: the same raw-pointer interface, argument order and
// semantics as the CPU kernels (cpu/kernels.h, whose comments are the specification), with
// every pointer in device memory of the current device.
//
// GPU-specific rules:
//  * every kernel is enqueued on tfe::cuda::stream() (check.cuh) and returns without
//    synchronising; host-side scalars (loss values) stay on the device;
//  * no allocation with cudaMalloc inside a kernel wrapper: scratch space comes from
//    tfe::cuda::Scratch (check.cuh), the caching allocator, so a captured CUDA graph
//    replays without host work;
//  * every launch is checked with TFE_CUDA_CHECK_LAUNCH("<op>");
//  * reductions (parameter gradients, batch statistics, the loss) run in a fixed order
//    (per-block partial sums, then one ordered pass; no floating-point atomics), so the
//    same inputs give the same bits run after run, as on the CPU;
//  * dropout draws the counter-based hash of cpu/dropout.cpp: the mask is bit-identical to
//    the CPU's for the same seed (outside CUDA graphs; see advance_dropout_offset).
#pragma once
#include <cstdint>

namespace tfe::cuda {

// ---- conv2d (conv2d.cu) ---------------------------------------------------------------
// y[N,K,Ho,Wo] = conv(x[N,C,H,W], w[K,C,k,k]) + b[K], square kernel k, symmetric zero
// padding pad, stride s: Ho = (H + 2*pad - k) / s + 1 (same for Wo).
void conv2d_forward(float* y, const float* x, const float* w, const float* b /*or nullptr*/,
                    int N, int C, int H, int W, int K, int k, int stride, int pad);
// dx = assigned (or nullptr to skip), dw += (or nullptr), db += (or nullptr).
void conv2d_backward(float* dx, float* dw, float* db, const float* dy, const float* x,
                     const float* w, int N, int C, int H, int W, int K, int k, int stride,
                     int pad);

// ---- batch norm 2d/1d (batchnorm.cu) ------------------------------------------------------
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

// ---- elementwise (relu.cu, add.cu) -------------------------------------------------------
void relu_forward(float* y, const float* x, int64_t n);
// dx = dy * (y > 0); uses the forward OUTPUT so x need not be kept.
void relu_backward(float* dx, const float* dy, const float* y, int64_t n);
// y = a + b (backward is the identity on both inputs: no kernel).
void add_forward(float* y, const float* a, const float* b, int64_t n);

// ---- pooling (maxpool.cu, gap.cu) --------------------------------------------------------
// Max pool, square window k, stride, implicit -inf padding pad. argmax[N,C,Ho,Wo] holds the
// flat index h*W + w of the chosen input inside its [H, W] plane (first max wins).
void maxpool2d_forward(float* y, int32_t* argmax, const float* x, int N, int C, int H, int W,
                       int k, int stride, int pad);
void maxpool2d_backward(float* dx, const float* dy, const int32_t* argmax, int N, int C, int H,
                        int W, int Ho, int Wo);
// Global average pool: y[N, C] = mean over HW of x[N, C, HW].
void gap_forward(float* y, const float* x, int N, int C, int HW);
void gap_backward(float* dx, const float* dy, int N, int C, int HW);

// ---- linear (linear.cu) ----------------------------------------------------------------
// y[N, O] = x[N, I] w[O, I]^T + b[O].
void linear_forward(float* y, const float* x, const float* w, const float* b /*or nullptr*/,
                    int N, int I, int O);
// dx assigned (or nullptr), dw += , db += (or nullptr).
void linear_backward(float* dx, float* dw, float* db, const float* dy, const float* x,
                     const float* w, int N, int I, int O);

// ---- dropout (dropout.cu) ----------------------------------------------------------------
// Inverted dropout. Element i is kept iff dropout_uniform(seed, i) >= p; kept elements are
// scaled by 1/(1-p). mask[i] = 1 (kept) or 0. The draw is a pure function of (seed, i),
// so the result does not depend on thread count or device.
void dropout_forward(float* y, uint8_t* mask, const float* x, int64_t n, float p,
                     uint64_t seed);
void dropout_backward(float* dx, const float* dy, const uint8_t* mask, int64_t n, float p);
// A captured graph replays its launch arguments, so a seed passed from the host would give
// the same mask every replay. The kernels therefore draw with seed + offset, where offset
// is a device-side counter that is 0 unless this call, captured at the start of a graph,
// advances it by one per replay (eager results stay bit-identical to the CPU).
void advance_dropout_offset();

// ---- concat along dim 1 (concat.cu) ----------------------------------------------------------
// y[N, sum(sizes[j]) * inner] from count inputs xs[j] of shape [N, sizes[j], inner].
void concat_forward(float* y, const float* const* xs, const int* sizes, int count, int N,
                    int inner);
// The inverse split: dxs[j] assigned.
void concat_backward(float* const* dxs, const float* dy, const int* sizes, int count, int N,
                     int inner);

// ---- softmax cross-entropy (cross_entropy.cu) -------------------------------------------
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

// ---- SGD (sgd.cu) -------------------------------------------------------------------------
// One step over `count` parameter tensors (PyTorch semantics, dampening 0):
//   d = grad + weight_decay * param
//   buf = momentum * buf + d                        (buf starts at zero)
//   d = nesterov ? d + momentum * buf : buf         (momentum == 0: d unchanged, buf unused)
//   param -= lr * d
void sgd_step(float* const* params, float* const* momentum_bufs, const float* const* grads,
              const int64_t* sizes, int count, float lr, float momentum, float weight_decay,
              bool nesterov);

// ---- fused residual-block epilogue (residual.cu) ---------------------------------------------
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

// ---- fused TFE head (tfe_head.cu) ---------------------------------------------------------
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

}  // namespace tfe::cuda
