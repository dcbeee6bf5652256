// Device dispatch (see dispatch.h). Each op's CPU kernel is <op>.cpp, its CUDA kernel <op>.cu;
// this file only turns tensors into pointers and sizes and picks the kernel for the device.
#include "ops/dispatch.h"

#include <string>

#include "ops/cpu_kernels.h"
#include "core/cuda_api.h"
#if TFE_CUDA
#include "ops/cuda_kernels.h"
#endif

namespace tfe::ops {

namespace {

// Data pointer of an optional float tensor (nullptr when absent).
float* F(const Tensor& t) { return t.defined() ? t.data<float>() : nullptr; }
int I(int64_t v) { return static_cast<int>(v); }
// A cross-entropy target is class labels (int64) or class probabilities (float32): the
// kernels take one pointer of each kind, the other nullptr.
const int64_t* labels_of(const Tensor& t) {
  return t.dtype() == DType::i64 ? t.data<int64_t>() : nullptr;
}
const float* probabilities_of(const Tensor& t) {
  return t.dtype() == DType::f32 ? t.data<float>() : nullptr;
}

// The tensors of one call share a device (checked at the binding); this picks it and
// makes it the current CUDA device (a CPU-only build throws "built without CUDA" here).
bool on_cuda(const Tensor& t, const char* op) {
  if (!t.device().is_cuda()) return false;
  cuda::set_device(t.device().index, op);
  return true;
}

}  // namespace

// KERNEL(op, device_tensor, args...): cuda::op(args...) when device_tensor is on a GPU,
// else cpu::op(args...). Both kernel sets share one signature per op (ops/cpu_kernels.h).
#if TFE_CUDA
#define KERNEL(op, t, ...) (on_cuda(t, #op) ? cuda::op(__VA_ARGS__) : cpu::op(__VA_ARGS__))
#else
#define KERNEL(op, t, ...) (on_cuda(t, #op), cpu::op(__VA_ARGS__))
#endif

namespace {

// Product of the sizes after the first two: the HW of [N, C, H, W], 1 for [N, C].
int inner(const Tensor& t) {
  int64_t s = 1;
  for (int i = 2; i < t.dim(); ++i) s *= t.size(i);
  return I(s);
}

// Per-tensor arrays of the ops over a list of tensors (concat, sgd_step). They are
// temporaries of the KERNEL expression, so they live until the kernel has returned.
std::vector<float*> ptrs(const std::vector<Tensor>& ts) {
  std::vector<float*> out;
  for (const Tensor& t : ts) out.push_back(F(t));
  return out;
}
std::vector<const float*> cptrs(const std::vector<Tensor>& ts) {
  std::vector<const float*> out;
  for (const Tensor& t : ts) out.push_back(F(t));
  return out;
}
// n pointers, all nullptr when ts is empty (sgd_step without momentum buffers).
std::vector<float*> ptrs_or_null(const std::vector<Tensor>& ts, size_t n) {
  return ts.empty() ? std::vector<float*>(n, nullptr) : ptrs(ts);
}
std::vector<int> channels(const std::vector<Tensor>& ts) {
  std::vector<int> out;
  for (const Tensor& t : ts) out.push_back(I(t.size(1)));
  return out;
}
std::vector<int64_t> numels(const std::vector<Tensor>& ts) {
  std::vector<int64_t> out;
  for (const Tensor& t : ts) out.push_back(t.numel());
  return out;
}
// The first tensor of a list; an empty list gives an undefined tensor, whose device is the
// CPU, where a call over zero tensors is a no-op.
Tensor first(const std::vector<Tensor>& ts) { return ts.empty() ? Tensor() : ts[0]; }

}  // namespace

#define TFE_UNPAREN(...) __VA_ARGS__
#define TFE_OP(name, kernel_params, tensor_params, device_tensor, kernel_args, ...) \
  void name tensor_params { KERNEL(name, device_tensor, TFE_UNPAREN kernel_args); }
#include "ops/ops.def"

void advance_dropout_offset(int cuda_device) {
  cuda::set_device(cuda_device, "advance_dropout_offset");
#if TFE_CUDA
  cuda::advance_dropout_offset();
#endif
}

}  // namespace tfe::ops
