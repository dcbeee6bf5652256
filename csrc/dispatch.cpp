// Device dispatch (see dispatch.h). CPU kernels live in cpu/, CUDA kernels in cuda/; this
// file only turns tensors into pointers and sizes and picks the kernel for the device.
#include "dispatch.h"

#include <string>

#include "cpu/kernels.h"
#include "cuda/cuda_api.h"
#if TFE_CUDA
#include "cuda/kernels.h"
#endif

namespace tfe::ops {

namespace {

// Data pointer of an optional float tensor (nullptr when absent).
float* F(const Tensor& t) { return t.defined() ? t.data<float>() : nullptr; }
int I(int64_t v) { return static_cast<int>(v); }

// The tensors of one call share a device (checked at the binding); this picks it and
// makes it the current CUDA device (a CPU-only build throws "built without CUDA" here).
bool on_cuda(const Tensor& t, const char* op) {
  if (!t.device().is_cuda()) return false;
  cuda::set_device(t.device().index, op);
  return true;
}

}  // namespace

// KERNEL(op, device_tensor, args...): cuda::op(args...) when device_tensor is on a GPU,
// else cpu::op(args...). Both kernel sets share one signature per op (cpu/kernels.h).
#if TFE_CUDA
#define KERNEL(op, t, ...) (on_cuda(t, #op) ? cuda::op(__VA_ARGS__) : cpu::op(__VA_ARGS__))
#else
#define KERNEL(op, t, ...) (on_cuda(t, #op), cpu::op(__VA_ARGS__))
#endif

namespace {

// [N, C, rest...] -> (N, C, prod(rest)).
struct NCS {
  int N, C, S;
};
NCS ncs(const Tensor& x) {
  int64_t s = 1;
  for (int i = 2; i < x.dim(); ++i) s *= x.size(i);
  return {I(x.size(0)), I(x.size(1)), I(s)};
}

}  // namespace

void conv2d_forward(const Tensor& y, const Tensor& x, const Tensor& w, const Tensor& b, int stride,
                    int pad) {
  KERNEL(conv2d_forward, x, F(y), F(x), F(w), F(b), I(x.size(0)), I(x.size(1)), I(x.size(2)),
         I(x.size(3)), I(w.size(0)), I(w.size(2)), stride, pad);
}

void conv2d_backward(const Tensor& dx, const Tensor& dw, const Tensor& db, const Tensor& dy,
                     const Tensor& x, const Tensor& w, int stride, int pad) {
  KERNEL(conv2d_backward, x, F(dx), F(dw), F(db), F(dy), F(x), F(w), I(x.size(0)), I(x.size(1)),
         I(x.size(2)), I(x.size(3)), I(w.size(0)), I(w.size(2)), stride, pad);
}

void batchnorm_forward_train(const Tensor& y, const Tensor& save_mean, const Tensor& save_invstd,
                             const Tensor& running_mean, const Tensor& running_var, const Tensor& x,
                             const Tensor& gamma, const Tensor& beta, float eps, float momentum) {
  NCS s = ncs(x);
  KERNEL(batchnorm_forward_train, x, F(y), F(save_mean), F(save_invstd), F(running_mean),
         F(running_var), F(x), F(gamma), F(beta), s.N, s.C, s.S, eps, momentum);
}

void batchnorm_forward_eval(const Tensor& y, const Tensor& x, const Tensor& gamma,
                            const Tensor& beta, const Tensor& running_mean,
                            const Tensor& running_var, float eps) {
  NCS s = ncs(x);
  KERNEL(batchnorm_forward_eval, x, F(y), F(x), F(gamma), F(beta), F(running_mean), F(running_var),
         s.N, s.C, s.S, eps);
}

void batchnorm_backward(const Tensor& dx, const Tensor& dgamma, const Tensor& dbeta,
                        const Tensor& dy, const Tensor& x, const Tensor& gamma,
                        const Tensor& save_mean, const Tensor& save_invstd) {
  NCS s = ncs(x);
  KERNEL(batchnorm_backward, x, F(dx), F(dgamma), F(dbeta), F(dy), F(x), F(gamma), F(save_mean),
         F(save_invstd), s.N, s.C, s.S);
}

void relu_forward(const Tensor& y, const Tensor& x) {
  KERNEL(relu_forward, x, F(y), F(x), x.numel());
}

void relu_backward(const Tensor& dx, const Tensor& dy, const Tensor& y) {
  KERNEL(relu_backward, y, F(dx), F(dy), F(y), y.numel());
}

void add_forward(const Tensor& y, const Tensor& a, const Tensor& b) {
  KERNEL(add_forward, a, F(y), F(a), F(b), a.numel());
}

void maxpool2d_forward(const Tensor& y, const Tensor& argmax, const Tensor& x, int k, int stride,
                       int pad) {
  KERNEL(maxpool2d_forward, x, F(y), argmax.data<int32_t>(), F(x), I(x.size(0)), I(x.size(1)),
         I(x.size(2)), I(x.size(3)), k, stride, pad);
}

void maxpool2d_backward(const Tensor& dx, const Tensor& dy, const Tensor& argmax) {
  KERNEL(maxpool2d_backward, dy, F(dx), F(dy), argmax.data<int32_t>(), I(dx.size(0)), I(dx.size(1)),
         I(dx.size(2)), I(dx.size(3)), I(dy.size(2)), I(dy.size(3)));
}

void gap_forward(const Tensor& y, const Tensor& x) {
  NCS s = ncs(x);
  KERNEL(gap_forward, x, F(y), F(x), s.N, s.C, s.S);
}

void gap_backward(const Tensor& dx, const Tensor& dy) {
  NCS s = ncs(dx);
  KERNEL(gap_backward, dy, F(dx), F(dy), s.N, s.C, s.S);
}

void linear_forward(const Tensor& y, const Tensor& x, const Tensor& w, const Tensor& b) {
  KERNEL(linear_forward, x, F(y), F(x), F(w), F(b), I(x.size(0)), I(x.size(1)), I(w.size(0)));
}

void linear_backward(const Tensor& dx, const Tensor& dw, const Tensor& db, const Tensor& dy,
                     const Tensor& x, const Tensor& w) {
  KERNEL(linear_backward, x, F(dx), F(dw), F(db), F(dy), F(x), F(w), I(x.size(0)), I(x.size(1)),
         I(w.size(0)));
}

void dropout_forward(const Tensor& y, const Tensor& mask, const Tensor& x, float p, uint64_t seed) {
  KERNEL(dropout_forward, x, F(y), mask.data<uint8_t>(), F(x), x.numel(), p, seed);
}

void dropout_backward(const Tensor& dx, const Tensor& dy, const Tensor& mask, float p) {
  KERNEL(dropout_backward, dy, F(dx), F(dy), mask.data<uint8_t>(), dy.numel(), p);
}

void advance_dropout_offset(int cuda_device) {
  cuda::set_device(cuda_device, "advance_dropout_offset");
#if TFE_CUDA
  cuda::advance_dropout_offset();
#endif
}

namespace {
// Inner size of [N, C, rest...] tensors and the per-input channel counts for concat.
int concat_inner(const Tensor& t) { return ncs(t).S; }
}  // namespace

void concat_forward(const Tensor& y, const std::vector<Tensor>& xs) {
  std::vector<const float*> ptrs;
  std::vector<int> sizes;
  for (const Tensor& t : xs) {
    ptrs.push_back(F(t));
    sizes.push_back(I(t.size(1)));
  }
  KERNEL(concat_forward, y, F(y), ptrs.data(), sizes.data(), I(xs.size()), I(y.size(0)),
         concat_inner(y));
}

void concat_backward(const std::vector<Tensor>& dxs, const Tensor& dy) {
  std::vector<float*> ptrs;
  std::vector<int> sizes;
  for (const Tensor& t : dxs) {
    ptrs.push_back(F(t));
    sizes.push_back(I(t.size(1)));
  }
  KERNEL(concat_backward, dy, ptrs.data(), F(dy), sizes.data(), I(dxs.size()), I(dy.size(0)),
         concat_inner(dy));
}

void cross_entropy_forward(const Tensor& loss, const Tensor& prob, const Tensor& logits,
                           const Tensor& labels) {
  KERNEL(cross_entropy_forward, logits, F(loss), F(prob), F(logits), labels.data<int64_t>(),
         I(logits.size(0)), I(logits.size(1)));
}

void cross_entropy_backward(const Tensor& dlogits, const Tensor& prob, const Tensor& labels,
                            float dloss) {
  KERNEL(cross_entropy_backward, prob, F(dlogits), F(prob), labels.data<int64_t>(), I(prob.size(0)),
         I(prob.size(1)), dloss);
}

void cross_entropy_soft_forward(const Tensor& loss, const Tensor& prob, const Tensor& logits,
                                const Tensor& target) {
  KERNEL(cross_entropy_soft_forward, logits, F(loss), F(prob), F(logits), F(target),
         I(logits.size(0)), I(logits.size(1)));
}

void cross_entropy_soft_backward(const Tensor& dlogits, const Tensor& prob, const Tensor& target,
                                 float dloss) {
  KERNEL(cross_entropy_soft_backward, prob, F(dlogits), F(prob), F(target), I(prob.size(0)),
         I(prob.size(1)), dloss);
}

void sgd_step(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
              const std::vector<Tensor>& momentum_bufs, float lr, float momentum,
              float weight_decay, bool nesterov) {
  std::vector<float*> p, m;
  std::vector<const float*> g;
  std::vector<int64_t> sizes;
  for (size_t i = 0; i < params.size(); ++i) {
    p.push_back(F(params[i]));
    g.push_back(F(grads[i]));
    m.push_back(momentum_bufs.empty() ? nullptr : F(momentum_bufs[i]));
    sizes.push_back(params[i].numel());
  }
  if (params.empty()) return;
  KERNEL(sgd_step, params[0], p.data(), m.data(), g.data(), sizes.data(), I(params.size()), lr,
         momentum, weight_decay, nesterov);
}

void residual_forward_train(const Tensor& y, const Tensor& save_mean, const Tensor& save_invstd,
                            const Tensor& running_mean, const Tensor& running_var, const Tensor& x,
                            const Tensor& shortcut, const Tensor& gamma, const Tensor& beta,
                            float eps, float momentum) {
  NCS s = ncs(x);
  KERNEL(residual_forward_train, x, F(y), F(save_mean), F(save_invstd), F(running_mean),
         F(running_var), F(x), F(shortcut), F(gamma), F(beta), s.N, s.C, s.S, eps, momentum);
}

void residual_forward_eval(const Tensor& y, const Tensor& x, const Tensor& shortcut,
                           const Tensor& gamma, const Tensor& beta, const Tensor& running_mean,
                           const Tensor& running_var, float eps) {
  NCS s = ncs(x);
  KERNEL(residual_forward_eval, x, F(y), F(x), F(shortcut), F(gamma), F(beta), F(running_mean),
         F(running_var), s.N, s.C, s.S, eps);
}

void residual_backward(const Tensor& dx, const Tensor& dshortcut, const Tensor& dgamma,
                       const Tensor& dbeta, const Tensor& dy, const Tensor& y, const Tensor& x,
                       const Tensor& gamma, const Tensor& save_mean, const Tensor& save_invstd) {
  NCS s = ncs(x);
  KERNEL(residual_backward, x, F(dx), F(dshortcut), F(dgamma), F(dbeta), F(dy), F(y), F(x),
         F(gamma), F(save_mean), F(save_invstd), s.N, s.C, s.S);
}

void tfe_head_forward_train(const Tensor& logits, const Tensor& z_hat, const Tensor& save_mean,
                            const Tensor& save_invstd, const Tensor& running_mean,
                            const Tensor& running_var, const Tensor& zi, const Tensor& ze,
                            const Tensor& gamma, const Tensor& beta, const Tensor& w,
                            const Tensor& b, float eps, float momentum) {
  KERNEL(tfe_head_forward_train, zi, F(logits), F(z_hat), F(save_mean), F(save_invstd),
         F(running_mean), F(running_var), F(zi), F(ze), F(gamma), F(beta), F(w), F(b),
         I(zi.size(0)), I(zi.size(1)), I(ze.size(1)), I(w.size(0)), eps, momentum);
}

void tfe_head_forward_eval(const Tensor& logits, const Tensor& z_hat, const Tensor& zi,
                           const Tensor& ze, const Tensor& gamma, const Tensor& beta,
                           const Tensor& running_mean, const Tensor& running_var, const Tensor& w,
                           const Tensor& b, float eps) {
  KERNEL(tfe_head_forward_eval, zi, F(logits), F(z_hat), F(zi), F(ze), F(gamma), F(beta),
         F(running_mean), F(running_var), F(w), F(b), I(zi.size(0)), I(zi.size(1)), I(ze.size(1)),
         I(w.size(0)), eps);
}

void tfe_head_backward(const Tensor& dzi, const Tensor& dze, const Tensor& dgamma,
                       const Tensor& dbeta, const Tensor& dw, const Tensor& db,
                       const Tensor& dlogits, const Tensor& zi, const Tensor& ze,
                       const Tensor& z_hat, const Tensor& gamma, const Tensor& save_mean,
                       const Tensor& save_invstd, const Tensor& w) {
  KERNEL(tfe_head_backward, zi, F(dzi), F(dze), F(dgamma), F(dbeta), F(dw), F(db), F(dlogits),
         F(zi), F(ze), F(z_hat), F(gamma), F(save_mean), F(save_invstd), F(w), I(zi.size(0)),
         I(zi.size(1)), I(ze.size(1)), I(w.size(0)));
}

}  // namespace tfe::ops
