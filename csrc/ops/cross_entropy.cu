// Softmax cross-entropy on the GPU against labels (int64) or probabilities (float), one op
// as on the CPU (see cross_entropy.cpp, whose numerics these kernels follow):
//
//   forward:  prob[N, K] = softmax(logits) per row; with mx = row max and
//             s = sum_k exp(l_k - mx) (accumulated in double, k in order), lse = log(s):
//             labels: row loss = lse - (l[label] - mx)
//             target: row loss = sum_k t_k * (lse - (l_k - mx))      (double, k in order)
//             loss[0] = float(sum_n row_loss[n] / N)  (0 when N == 0)
//   backward: labels: dlogits = (prob - onehot(label)) * (dloss / N)
//             target: dlogits = (prob * sum_k t_k - t) * (dloss / N)
//
// Forward: one thread per row computes max, exponentials, normalisation and the row loss
// sequentially over k, in the CPU's order (K = 8 for the expression classifiers; any K works,
// a wide row only runs slower). Row losses go to a scratch array of doubles; then ONE block
// sums them in a fixed order (thread t adds rows t, t + 256, ... in turn, then a shared-memory
// tree), so the loss bits are the same run after run (no atomics).
// exp is evaluated in double and rounded to float (in effect the correctly rounded float
// exp; the CPU's expf agrees with it except for about one element in a thousand, by one
// ulp); the log-sum-exp, sums and loss follow the CPU's double arithmetic. Products that the CPU rounds separately use the
// explicitly rounded intrinsics (__dmul_rn, __fmul_rn, ...), which nvcc never contracts into
// FMAs. The loss's final sum order (a tree instead of the CPU's running sum) can change the
// last double bits, almost never the float result.
#include <cstdint>

#include "core/check.cuh"
#include "ops/cuda_kernels.h"

namespace tfe::cuda {

namespace {
constexpr int kRowThreads = 128;
constexpr int kReduceThreads = 256;  // a power of two (tree reduction)
constexpr int kThreads = 256;

// prob row = softmax(l); returns mx and lse = log(sum exp(l - mx)) so that
// log softmax(l)_k = (l_k - mx) - lse. A NaN logit propagates as on the CPU.
__device__ __forceinline__ void softmax_row(float* __restrict__ prob,
                                            const float* __restrict__ l, int K, float* mx_out,
                                            double* lse_out) {
  float mx = l[0];
  for (int k = 1; k < K; ++k) mx = l[k] > mx ? l[k] : mx;
  double s = 0.0;
  for (int k = 0; k < K; ++k) {
    const float e = static_cast<float>(exp(static_cast<double>(l[k] - mx)));
    prob[k] = e;
    s += e;
  }
  const float inv = static_cast<float>(1.0 / s);
  for (int k = 0; k < K; ++k) prob[k] = __fmul_rn(prob[k], inv);
  *mx_out = mx;
  *lse_out = log(s);
}

// kSoft = false: labels used, target ignored; true: the reverse.
template <bool kSoft>
__global__ void cross_entropy_rows_kernel(double* __restrict__ row_loss,
                                          float* __restrict__ prob,
                                          const float* __restrict__ logits,
                                          const int64_t* __restrict__ labels,
                                          const float* __restrict__ target, int N, int K) {
  for (int n = blockIdx.x * blockDim.x + threadIdx.x; n < N; n += gridDim.x * blockDim.x) {
    const float* l = logits + static_cast<long long>(n) * K;
    float mx;
    double lse;
    softmax_row(prob + static_cast<long long>(n) * K, l, K, &mx, &lse);
    if (kSoft) {
      const float* t = target + static_cast<long long>(n) * K;
      double s = 0.0;
      for (int k = 0; k < K; ++k)
        s = __dadd_rn(s, __dmul_rn(static_cast<double>(t[k]),
                                   __dsub_rn(lse, static_cast<double>(l[k] - mx))));
      row_loss[n] = s;
    } else {
      row_loss[n] = lse - static_cast<double>(l[labels[n]] - mx);
    }
  }
}

// One block: loss[0] = float(sum of row_loss / N), summed in a fixed order.
__global__ void cross_entropy_mean_kernel(float* __restrict__ loss,
                                          const double* __restrict__ row_loss, int N) {
  __shared__ double part[kReduceThreads];
  const int tid = threadIdx.x;
  double acc = 0.0;
  for (int i = tid; i < N; i += kReduceThreads) acc += row_loss[i];
  part[tid] = acc;
  __syncthreads();
  for (int stride = kReduceThreads / 2; stride > 0; stride >>= 1) {
    if (tid < stride) part[tid] += part[tid + stride];
    __syncthreads();
  }
  if (tid == 0) loss[0] = N > 0 ? static_cast<float>(part[0] / static_cast<double>(N)) : 0.0f;
}

// Element (n, k) = flat i: d = (prob - onehot(label)) * scale.
__global__ void cross_entropy_backward_kernel(float* __restrict__ dlogits,
                                              const float* __restrict__ prob,
                                              const int64_t* __restrict__ labels, long long total,
                                              int K, float scale) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
       i += (long long)gridDim.x * blockDim.x) {
    const long long n = i / K;
    const int k = static_cast<int>(i - n * K);
    const float one = k == labels[n] ? 1.0f : 0.0f;
    dlogits[i] = __fmul_rn(__fsub_rn(prob[i], one), scale);
  }
}

// One thread per row: tsum = float(sum_k t_k in double, k in order), then
// d = (prob * tsum - t) * scale, each product rounded separately as on the CPU.
__global__ void cross_entropy_soft_backward_kernel(float* __restrict__ dlogits,
                                                   const float* __restrict__ prob,
                                                   const float* __restrict__ target, int N,
                                                   int K, float scale) {
  for (int n = blockIdx.x * blockDim.x + threadIdx.x; n < N; n += gridDim.x * blockDim.x) {
    const long long base = static_cast<long long>(n) * K;
    const float* p = prob + base;
    const float* t = target + base;
    float* d = dlogits + base;
    double ts = 0.0;
    for (int k = 0; k < K; ++k) ts += t[k];
    const float tsum = static_cast<float>(ts);
    for (int k = 0; k < K; ++k)
      d[k] = __fmul_rn(__fsub_rn(__fmul_rn(p[k], tsum), t[k]), scale);
  }
}

template <bool kSoft>
void forward(const char* op, float* loss, float* prob, const float* logits,
             const int64_t* labels, const float* target, int N, int K) {
  Scratch s(static_cast<size_t>(N > 0 ? N : 1) * sizeof(double), op);
  double* row_loss = s.as<double>();
  if (N > 0) {
    cross_entropy_rows_kernel<kSoft><<<elementwise_blocks(N, kRowThreads), kRowThreads, 0,
                                       stream()>>>(row_loss, prob, logits, labels, target, N, K);
    TFE_CUDA_CHECK_LAUNCH(op);
  }
  // Runs even when N == 0, to write the CPU's loss of 0.
  cross_entropy_mean_kernel<<<1, kReduceThreads, 0, stream()>>>(loss, row_loss, N);
  TFE_CUDA_CHECK_LAUNCH(op);
}
}  // namespace

void cross_entropy_forward(float* loss, float* prob, const float* logits,
                           const int64_t* labels, const float* target, int N, int K) {
  if (labels)
    forward<false>("cross_entropy_forward", loss, prob, logits, labels, nullptr, N, K);
  else
    forward<true>("cross_entropy_forward", loss, prob, logits, nullptr, target, N, K);
}

void cross_entropy_backward(float* dlogits, const float* prob, const int64_t* labels,
                            const float* target, int N, int K, float dloss) {
  const long long total = static_cast<long long>(N) * K;
  if (total <= 0) return;
  const float scale = dloss / static_cast<float>(N);  // rounded once, as on the CPU
  if (labels) {
    cross_entropy_backward_kernel<<<elementwise_blocks(total, kThreads), kThreads, 0,
                                    stream()>>>(dlogits, prob, labels, total, K, scale);
  } else {
    cross_entropy_soft_backward_kernel<<<elementwise_blocks(N, kRowThreads), kRowThreads, 0,
                                         stream()>>>(dlogits, prob, target, N, K, scale);
  }
  TFE_CUDA_CHECK_LAUNCH("cross_entropy_backward");
}

}  // namespace tfe::cuda
