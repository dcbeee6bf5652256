// The one place that switches on the device: each op takes already-validated tensors
// (outputs first, then inputs, then hyper-parameters; an undefined Tensor means "absent"),
// derives the sizes from their shapes and calls the CPU or the CUDA kernel.
// Shapes, dtypes and devices are checked by the caller (the Python binding); an op
// without a kernel for the tensors' device throws tfe::Error naming the op.
#pragma once
#include <cstdint>
#include <vector>

#include "tensor.h"

namespace tfe::ops {

void conv2d_forward(const Tensor& y, const Tensor& x, const Tensor& w, const Tensor& b,
                    int stride, int pad);
void conv2d_backward(const Tensor& dx, const Tensor& dw, const Tensor& db, const Tensor& dy,
                     const Tensor& x, const Tensor& w, int stride, int pad);

void batchnorm_forward_train(const Tensor& y, const Tensor& save_mean, const Tensor& save_invstd,
                             const Tensor& running_mean, const Tensor& running_var,
                             const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps,
                             float momentum);
void batchnorm_forward_eval(const Tensor& y, const Tensor& x, const Tensor& gamma,
                            const Tensor& beta, const Tensor& running_mean,
                            const Tensor& running_var, float eps);
void batchnorm_backward(const Tensor& dx, const Tensor& dgamma, const Tensor& dbeta,
                        const Tensor& dy, const Tensor& x, const Tensor& gamma,
                        const Tensor& save_mean, const Tensor& save_invstd);

void relu_forward(const Tensor& y, const Tensor& x);
void relu_backward(const Tensor& dx, const Tensor& dy, const Tensor& y);
void add_forward(const Tensor& y, const Tensor& a, const Tensor& b);

void maxpool2d_forward(const Tensor& y, const Tensor& argmax, const Tensor& x, int k,
                       int stride, int pad);
void maxpool2d_backward(const Tensor& dx, const Tensor& dy, const Tensor& argmax);
void gap_forward(const Tensor& y, const Tensor& x);
void gap_backward(const Tensor& dx, const Tensor& dy);

void linear_forward(const Tensor& y, const Tensor& x, const Tensor& w, const Tensor& b);
void linear_backward(const Tensor& dx, const Tensor& dw, const Tensor& db, const Tensor& dy,
                     const Tensor& x, const Tensor& w);

void dropout_forward(const Tensor& y, const Tensor& mask, const Tensor& x, float p,
                     uint64_t seed);
void dropout_backward(const Tensor& dx, const Tensor& dy, const Tensor& mask, float p);
// CUDA graphs: advances the device's dropout counter (see cuda/kernels.h).
void advance_dropout_offset(int cuda_device);

void concat_forward(const Tensor& y, const std::vector<Tensor>& xs);
void concat_backward(const std::vector<Tensor>& dxs, const Tensor& dy);

void cross_entropy_forward(const Tensor& loss, const Tensor& prob, const Tensor& logits,
                           const Tensor& labels);
void cross_entropy_backward(const Tensor& dlogits, const Tensor& prob, const Tensor& labels,
                            float dloss);
void cross_entropy_soft_forward(const Tensor& loss, const Tensor& prob, const Tensor& logits,
                                const Tensor& target);
void cross_entropy_soft_backward(const Tensor& dlogits, const Tensor& prob,
                                 const Tensor& target, float dloss);

void sgd_step(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
              const std::vector<Tensor>& momentum_bufs, float lr, float momentum,
              float weight_decay, bool nesterov);

void residual_forward_train(const Tensor& y, const Tensor& save_mean, const Tensor& save_invstd,
                            const Tensor& running_mean, const Tensor& running_var,
                            const Tensor& x, const Tensor& shortcut, const Tensor& gamma,
                            const Tensor& beta, float eps, float momentum);
void residual_forward_eval(const Tensor& y, const Tensor& x, const Tensor& shortcut,
                           const Tensor& gamma, const Tensor& beta, const Tensor& running_mean,
                           const Tensor& running_var, float eps);
void residual_backward(const Tensor& dx, const Tensor& dshortcut, const Tensor& dgamma,
                       const Tensor& dbeta, const Tensor& dy, const Tensor& y, const Tensor& x,
                       const Tensor& gamma, const Tensor& save_mean, const Tensor& save_invstd);

void tfe_head_forward_train(const Tensor& logits, const Tensor& z_hat, const Tensor& save_mean,
                            const Tensor& save_invstd, const Tensor& running_mean,
                            const Tensor& running_var, const Tensor& zi, const Tensor& ze,
                            const Tensor& gamma, const Tensor& beta, const Tensor& w,
                            const Tensor& b, float eps, float momentum);
void tfe_head_forward_eval(const Tensor& logits, const Tensor& z_hat, const Tensor& zi,
                           const Tensor& ze, const Tensor& gamma, const Tensor& beta,
                           const Tensor& running_mean, const Tensor& running_var,
                           const Tensor& w, const Tensor& b, float eps);
void tfe_head_backward(const Tensor& dzi, const Tensor& dze, const Tensor& dgamma,
                       const Tensor& dbeta, const Tensor& dw, const Tensor& db,
                       const Tensor& dlogits, const Tensor& zi, const Tensor& ze,
                       const Tensor& z_hat, const Tensor& gamma, const Tensor& save_mean,
                       const Tensor& save_invstd, const Tensor& w);

}  // namespace tfe::ops
