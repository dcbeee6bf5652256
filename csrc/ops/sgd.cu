// One SGD step on the GPU over a list of tensors (PyTorch torch.optim.SGD semantics,
// dampening 0; see cpu/sgd.cpp):
//
//   d = g + weight_decay * p
//   momentum != 0:  buf = momentum * buf + d;  d = nesterov ? d + momentum * buf : buf
//   p -= lr * d
//   momentum == 0 never touches momentum_bufs (their entries may be null).
//
// Multi-tensor apply: params / grads / momentum_bufs are host arrays of device pointers.
// Copying them to the device would need a host-to-device memcpy (not capturable in a CUDA
// graph), so up to kMaxTensors tensors go BY VALUE in a kernel-parameter struct (about
// 1.3 KB, under the 4 KB parameter limit), launching again for further tensors. Each tensor
// is cut into chunks of kChunk elements, one block per chunk; chunk_begin[t] is the first
// block of table entry t, so big and small tensors share a launch with no idle blocks.
//
// Every element is independent, so the result is deterministic. The arithmetic uses the
// explicitly rounded intrinsics (__fmul_rn, __fadd_rn, __fsub_rn), which nvcc never fuses
// into FMAs: the operations and their roundings are exactly the CPU loop's, so the updated
// parameters and buffers are bit-identical to the CPU's.
#include <cstdint>

#include "core/check.cuh"
#include "ops/cuda_kernels.h"

namespace tfe::cuda {

namespace {
constexpr int kThreads = 256;
constexpr int kMaxTensors = 32;
constexpr long long kChunk = kThreads * 16;  // elements per block
constexpr long long kMaxBlocks = 1LL << 30;  // per launch, below the grid's 2^31 - 1 limit

struct Table {
  float* p[kMaxTensors];
  float* buf[kMaxTensors];  // unused (may be null) when momentum == 0
  const float* g[kMaxTensors];
  long long n[kMaxTensors];
  long long chunk_begin[kMaxTensors + 1];  // first block of each entry; [count] = total
  int count;
};

enum Mode { kPlain = 0, kMomentum = 1, kNesterov = 2 };

template <int kMode>
__global__ void sgd_kernel(const Table tab, float lr, float momentum, float weight_decay) {
  const long long b = blockIdx.x;
  // Entry t with chunk_begin[t] <= b < chunk_begin[t + 1] (every entry has at least one
  // chunk, so chunk_begin is strictly increasing).
  int t = 0;
  while (t + 1 < tab.count && tab.chunk_begin[t + 1] <= b) ++t;
  float* __restrict__ p = tab.p[t];
  float* __restrict__ buf = tab.buf[t];
  const float* __restrict__ g = tab.g[t];
  const long long n = tab.n[t];
  const long long start = (b - tab.chunk_begin[t]) * kChunk;
  const long long end = start + kChunk < n ? start + kChunk : n;
  for (long long i = start + threadIdx.x; i < end; i += blockDim.x) {
    const float pv = p[i];
    const float d = __fadd_rn(g[i], __fmul_rn(weight_decay, pv));  // g + wd * p
    if (kMode == kPlain) {
      p[i] = __fsub_rn(pv, __fmul_rn(lr, d));  // p -= lr * d
    } else {
      const float nb = __fadd_rn(__fmul_rn(momentum, buf[i]), d);  // momentum * buf + d
      buf[i] = nb;
      if (kMode == kNesterov)
        p[i] = __fsub_rn(pv, __fmul_rn(lr, __fadd_rn(d, __fmul_rn(momentum, nb))));
      else
        p[i] = __fsub_rn(pv, __fmul_rn(lr, nb));
    }
  }
}
}  // namespace

void sgd_step(float* const* params, float* const* momentum_bufs, const float* const* grads,
              const int64_t* sizes, int count, float lr, float momentum, float weight_decay,
              bool nesterov) {
  const int mode = momentum == 0.0f ? kPlain : (nesterov ? kNesterov : kMomentum);
  Table tab{};
  int nt = 0;
  long long blocks = 0;
  auto flush = [&] {
    if (nt == 0) return;
    tab.count = nt;
    tab.chunk_begin[nt] = blocks;
    const unsigned grid = static_cast<unsigned>(blocks);
    if (mode == kPlain)
      sgd_kernel<kPlain><<<grid, kThreads, 0, stream()>>>(tab, lr, momentum, weight_decay);
    else if (mode == kMomentum)
      sgd_kernel<kMomentum><<<grid, kThreads, 0, stream()>>>(tab, lr, momentum, weight_decay);
    else
      sgd_kernel<kNesterov><<<grid, kThreads, 0, stream()>>>(tab, lr, momentum, weight_decay);
    TFE_CUDA_CHECK_LAUNCH("sgd_step");
    nt = 0;
    blocks = 0;
  };
  for (int j = 0; j < count; ++j) {
    const long long n = sizes[j];
    if (n <= 0) continue;
    const long long chunks = (n + kChunk - 1) / kChunk;
    if (nt == kMaxTensors || blocks + chunks > kMaxBlocks) flush();
    tab.p[nt] = params[j];
    tab.buf[nt] = mode == kPlain ? nullptr : momentum_bufs[j];
    tab.g[nt] = grads[j];
    tab.n[nt] = n;
    tab.chunk_begin[nt] = blocks;
    blocks += chunks;
    ++nt;
  }
  flush();
}

}  // namespace tfe::cuda
