// Fused residual-block epilogue on the GPU: y = relu(batchnorm(x) + shortcut), x, shortcut,
// y [N, C, HW]; semantics and formulas as cpu/residual.cpp. Built from the planes-layout
// machinery of bn_common.cuh (kernels in batchnorm.cu), which takes the shortcut, the ReLU
// and the backward's mask as arguments, so the epilogue costs what a plain batch norm does:
//
//   forward (train): statistics of x (one read), then one pass reading x and shortcut and
//     writing y (plus a per-channel finish kernel in between);
//   forward (eval): one pass (after a C-element coefficient kernel);
//   backward: pass 1 reads dy, y (the ReLU mask) and x, does the three reductions and
//     writes dshortcut = g = dy * (y > 0); pass 2 reads g back from dshortcut (or, when
//     dshortcut is not wanted, dy and y again) and x, and writes dx.
//
// HW == 1 ([N, C] inputs) uses the same planes path, as the CPU does.
#include "ops/bn_common.cuh"
#include "ops/cuda_kernels.h"

namespace tfe::cuda {

void residual_forward_train(float* y, float* save_mean, float* save_invstd,
                            float* running_mean, float* running_var, const float* x,
                            const float* shortcut, const float* gamma, const float* beta,
                            int N, int C, int HW, float eps, float momentum) {
  constexpr const char* op = "residual_forward_train";
  if (N <= 0 || C <= 0 || HW <= 0) return;
  Scratch coef(sizeof(float) * 3 * static_cast<size_t>(C), op);
  bn::plane_train_stats(coef.as<float>(), save_mean, save_invstd, running_mean, running_var, x,
                        gamma, beta, N, C, HW, eps, momentum, op);
  bn::plane_forward_apply(y, x, shortcut, true, coef.as<float>(), N, C, HW, op);
}

void residual_forward_eval(float* y, const float* x, const float* shortcut, const float* gamma,
                           const float* beta, const float* running_mean,
                           const float* running_var, int N, int C, int HW, float eps) {
  constexpr const char* op = "residual_forward_eval";
  if (N <= 0 || C <= 0 || HW <= 0) return;
  Scratch coef(sizeof(float) * 3 * static_cast<size_t>(C), op);
  bn::plane_eval_coef(coef.as<float>(), gamma, beta, running_mean, running_var, C, eps, op);
  bn::plane_forward_apply(y, x, shortcut, true, coef.as<float>(), N, C, HW, op);
}

void residual_backward(float* dx, float* dshortcut, float* dgamma, float* dbeta,
                       const float* dy, const float* y, const float* x, const float* gamma,
                       const float* save_mean, const float* save_invstd, int N, int C, int HW) {
  constexpr const char* op = "residual_backward";
  if (N <= 0 || C <= 0 || HW <= 0) return;
  if (!dx && !dshortcut && !dgamma && !dbeta) return;
  // g = dy * (y > 0) is the gradient reaching the batch norm; it is stored in dshortcut
  // (when wanted) during the reduction pass.
  bn::plane_backward(dx, dshortcut, dgamma, dbeta, dy, y, x, gamma, save_mean, save_invstd, N,
                     C, HW, op);
}

}  // namespace tfe::cuda
