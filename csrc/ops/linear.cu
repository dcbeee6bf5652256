// Fully connected layer on the GPU, PyTorch layout (contract in ops/cuda_kernels.h):
//
//   forward:  y[N, O]  = x[N, I] w[O, I]^T + b[O]       GEMM M = N, N = O, reduction I
//   backward: dx[N, I] = dy[N, O] w[O, I]   (assigned)  GEMM M = N, N = I, reduction O
//             dw[O, I] += dy^T x                        GEMM M = O, N = I, reduction N
//             db[O]    += column sums of dy             one thread per o, n in order
//
// The three products run on the tiled core of gemm.cuh; the transposes are folded into the
// element gathers (each operand is read in place, k-fast where it is contiguous along the
// reduction, m/n-fast where it is contiguous along the output). These layers are small
// (at most 1680 x 160 at batch 128), so the output alone gives few blocks: the reduction is
// split into a shape-determined number of chunks whose partial products go to scratch and
// are then summed in chunk order by one pass that also applies the epilogue (bias, assign or
// accumulate). With a single chunk the GEMM applies the epilogue itself.
#include <climits>
#include <string>

#include "core/check.cuh"
#include "ops/cuda_kernels.h"
#include "gemm/gemm.cuh"

namespace tfe::cuda {

namespace {

using CfgLinKK = TileCfg<32, 64, 16, 4, 4, true, 16, true, 16>;   // A k-fast, B k-fast
using CfgLinKN = TileCfg<32, 64, 16, 4, 4, true, 16, false, 2>;   // A k-fast, B n-fast
using CfgLinMN = TileCfg<32, 64, 16, 4, 4, false, 4, false, 2>;   // A m-fast, B n-fast

// The three final epilogues, shared by the GEMM (one chunk) and the split-K reduction.
enum class Mode { kBias, kAssign, kAccumulate };
template <Mode mode>
struct Out {
  float* c;        // row-major [M][ldc]
  const float* b;  // bias over columns (kBias; may be nullptr)
  int ldc;
  __device__ void operator()(int m, int n, float v) const {
    float* p = c + static_cast<long long>(m) * ldc + n;
    if constexpr (mode == Mode::kBias)
      *p = b ? v + __ldg(b + n) : v;
    else if constexpr (mode == Mode::kAssign)
      *p = v;
    else
      *p += v;
  }
};

// Reduction slice and output handling common to the three products.
template <Mode mode>
struct LinBase {
  Out<mode> out;
  float* part;  // [chunks][M][N] when the reduction is split, else nullptr
  int R, chunk;
  int z, M, N, kbeg, kend;

  __device__ void bind(int zz) {
    z = zz;
    kbeg = zz * chunk;  // < R (or 0 when R == 0): the launch has ceil(R / chunk) slices
    kend = R - kbeg < chunk ? R : kbeg + chunk;
  }
  using CCol = int;
  __device__ int c_col(int) const { return 0; }
  __device__ void store(int m, int n, int, float v) const {
    if (part)
      part[(static_cast<long long>(z) * M + m) * N + n] = v;
    else
      out(m, n, v);
  }
};

// y = x w^T + b: A(m, i) = x[m*I + i], B(i, o) = w[o*I + i].
struct LinFwdProb : LinBase<Mode::kBias> {
  const float* x;
  const float* w;
  int I;
  using AOuter = const float*;
  using AInner = int;
  __device__ const float* a_outer(int m) const { return x + static_cast<long long>(m) * I; }
  __device__ int a_inner(int i) const { return i; }
  __device__ float a_load(const float* row, int i) const { return __ldg(row + i); }
  using BOuter = const float*;
  using BInner = int;
  __device__ const float* b_outer(int o) const { return w + static_cast<long long>(o) * I; }
  __device__ int b_inner(int i) const { return i; }
  __device__ float b_load(const float* row, int i) const { return __ldg(row + i); }
};

// dx = dy w: A(m, o) = dy[m*O + o], B(o, i) = w[o*I + i].
struct LinDxProb : LinBase<Mode::kAssign> {
  const float* dy;
  const float* w;
  int I, O;
  using AOuter = const float*;
  using AInner = int;
  __device__ const float* a_outer(int m) const { return dy + static_cast<long long>(m) * O; }
  __device__ int a_inner(int o) const { return o; }
  __device__ float a_load(const float* row, int o) const { return __ldg(row + o); }
  using BOuter = int;
  using BInner = const float*;
  __device__ int b_outer(int i) const { return i; }
  __device__ const float* b_inner(int o) const { return w + static_cast<long long>(o) * I; }
  __device__ float b_load(int i, const float* row) const { return __ldg(row + i); }
};

// dw += dy^T x: A(o, n) = dy[n*O + o], B(n, i) = x[n*I + i].
struct LinDwProb : LinBase<Mode::kAccumulate> {
  const float* dy;
  const float* x;
  int I, O;
  using AOuter = int;
  using AInner = const float*;
  __device__ int a_outer(int o) const { return o; }
  __device__ const float* a_inner(int n) const { return dy + static_cast<long long>(n) * O; }
  __device__ float a_load(int o, const float* row) const { return __ldg(row + o); }
  using BOuter = int;
  using BInner = const float*;
  __device__ int b_outer(int i) const { return i; }
  __device__ const float* b_inner(int n) const { return x + static_cast<long long>(n) * I; }
  __device__ float b_load(int i, const float* row) const { return __ldg(row + i); }
};

// Runs one product: chooses the split, and either lets the GEMM apply the epilogue (one
// chunk) or writes partials to scratch and reduces them in order.
template <class Cfg, class Prob>
void run(Prob p, int M, int N, int R, const char* op) {
  if (M <= 0 || N <= 0) return;
  int chunks = 1, chunk = 1;
  // Chunks of at least 8 tiles: shorter ones cost more in scratch traffic than they gain.
  split_k<Cfg>(M, N, R, 8 * Cfg::BK, &chunks, &chunk);
  p.M = M, p.N = N, p.R = R, p.chunk = chunk;
  p.z = 0, p.kbeg = 0, p.kend = 0;
  if (chunks == 1) {
    p.part = nullptr;
    launch_gemm<Cfg>(p, M, N, 1, op);
    return;
  }
  Scratch part(sizeof(float) * static_cast<size_t>(chunks) * M * N, op);
  p.part = part.as<float>();
  launch_gemm<Cfg>(p, M, N, chunks, op);
  splitk_reduce(p.part, chunks, M, N, p.out, op);
}

// db[o] += sum_n dy[n, o]: one thread per o (coalesced across o), n in order, in double as
// on the CPU.
__global__ void bias_grad_kernel(float* __restrict__ db, const float* __restrict__ dy, int N,
                                 int O) {
  const int o = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (o >= O) return;
  double s = 0.0;
  for (int n = 0; n < N; ++n) s += static_cast<double>(dy[static_cast<long long>(n) * O + o]);
  db[o] += static_cast<float>(s);
}

}  // namespace

void linear_forward(float* y, const float* x, const float* w, const float* b, int N, int I,
                    int O) {
  if (N <= 0 || O <= 0) return;
  LinFwdProb p;
  p.out = {y, b, O};
  p.x = x, p.w = w, p.I = I;
  run<CfgLinKK>(p, N, O, I < 0 ? 0 : I, "linear_forward");
}

void linear_backward(float* dx, float* dw, float* db, const float* dy, const float* x,
                     const float* w, int N, int I, int O) {
  if (dx && N > 0 && I > 0) {
    LinDxProb p;
    p.out = {dx, nullptr, I};
    p.dy = dy, p.w = w, p.I = I, p.O = O;
    run<CfgLinKN>(p, N, I, O < 0 ? 0 : O, "linear_backward");  // O == 0: dx = 0
  }
  if (dw && O > 0 && I > 0 && N > 0) {
    LinDwProb p;
    p.out = {dw, nullptr, I};
    p.dy = dy, p.x = x, p.I = I, p.O = O;
    run<CfgLinMN>(p, O, I, N, "linear_backward");
  }
  if (db && O > 0 && N > 0) {
    constexpr int kThreads = 128;
    bias_grad_kernel<<<ceil_div(O, kThreads), kThreads, 0, stream()>>>(db, dy, N, O);
    TFE_CUDA_CHECK_LAUNCH("linear_backward");
  }
}

}  // namespace tfe::cuda
