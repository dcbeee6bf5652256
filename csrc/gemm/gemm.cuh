// Tiled FP32 GEMM core shared by the CUDA convolution and linear kernels.
//
//   C[m, n] = sum_{k in [kbeg, kend)} A(m, k) * B(k, n)      for m < M, n < N
//
// The operands are never materialised: a "problem" object (one per op, see conv2d.cu and
// linear.cu) supplies each element on demand, so an implicit-GEMM convolution gathers its
// im2col operand straight from the image, with zero padding, stride and phase handled by
// the gather. The problem also owns the epilogue (bias, assign, accumulate, or a store of
// a split-K partial result into scratch memory).
//
// Problem interface (all __device__, called by every thread of a block):
//   void bind(int z)                      select slice blockIdx.z (split-K chunk, dx phase);
//                                         sets the members M, N, kbeg, kend
//   AOuter a_outer(int m)   AInner a_inner(int k)   float a_load(AOuter, AInner)
//   BOuter b_outer(int n)   BInner b_inner(int k)   float b_load(BOuter, BInner)
//   CCol   c_col(int n)                   void store(int m, int n, const CCol&, float v)
// a_load / b_load are called only for m < M (n < N) and kbeg <= k < kend; out-of-range tile
// elements are zero-filled by the kernel. The outer/inner split lets a problem hoist the
// index arithmetic that depends only on m (n) out of the reduction loop and do the part that
// depends only on k once per tile row instead of once per element.
//
// Block tile BM x BN, reduction step BK; each thread owns a TM x TN register tile (rows
// ty*TM + i, columns tx*4 + j%4 + (j/4)*(BN/(TN/4)): groups of four spread across the tile
// so that the float4 shared-memory reads of a warp are contiguous). Operand tiles live in
// shared memory as [BK][BM] and [BK][BN] (k-major, so the inner product reads rows), double
// buffered: the global loads of tile t+1 go to registers before tile t is multiplied, and
// one __syncthreads per step separates the write of one buffer from the reads of the other.
// Each accumulator sums its k terms in increasing k order with fmaf, whatever the tile
// configuration, so results do not depend on the configuration a launch picks.
//
// Global->shared load mapping, per operand: KT threads along k and OT = NT/KT along the
// outer dimension (m for A, n for B). KF ("k fast") puts consecutive threads on consecutive
// k (coalesced when the operand is contiguous in k); otherwise consecutive threads take
// consecutive m / n.
#pragma once
#include <climits>
#include <cstdint>
#include <string>

#include "core/check.cuh"

namespace tfe::cuda {

// Division by a run-time constant d >= 1 for dividends 0 <= n < 2^31, as a multiply-high,
// an add and a shift (Granlund & Montgomery 1994, fig. 4.1, simplified for n < 2^31):
//   l = ceil(log2 d),  mul = floor(2^32 (2^l - d) / d) + 1,  q = (umulhi(n, mul) + n) >> l.
// umulhi(n, mul) <= n, so the sum stays below 2^32.
struct FastDiv {
  unsigned mul = 1, shift = 0;
  int d = 1;

  FastDiv() = default;
  explicit FastDiv(int divisor) : d(divisor < 1 ? 1 : divisor) {
    unsigned l = 0;
    while ((1ull << l) < static_cast<unsigned long long>(d)) ++l;
    shift = l;
    mul = static_cast<unsigned>(((1ull << 32) * ((1ull << l) - static_cast<unsigned long long>(d))) /
                                    static_cast<unsigned long long>(d) +
                                1ull);
  }
  __host__ __device__ __forceinline__ int div(int n) const {
#ifdef __CUDA_ARCH__
    const unsigned t = __umulhi(static_cast<unsigned>(n), mul);
#else
    const unsigned t =
        static_cast<unsigned>((static_cast<unsigned long long>(static_cast<unsigned>(n)) * mul) >> 32);
#endif
    return static_cast<int>((t + static_cast<unsigned>(n)) >> shift);
  }
};

// Tile configuration. A_KT / B_KT: threads along k in the global->shared load of A / B.
template <int BM_, int BN_, int BK_, int TM_, int TN_, bool AKF_, int A_KT_, bool BKF_, int B_KT_>
struct TileCfg {
  static constexpr int BM = BM_, BN = BN_, BK = BK_, TM = TM_, TN = TN_;
  static constexpr int NT = (BM / TM) * (BN / TN);  // threads per block
  static constexpr bool AKF = AKF_, BKF = BKF_;
  static constexpr int A_KT = A_KT_, A_OT = NT / A_KT_;  // A load: threads along k / m
  static constexpr int A_KL = BK / A_KT, A_OL = BM / A_OT;  // loads per thread along k / m
  static constexpr int B_KT = B_KT_, B_OT = NT / B_KT_;
  static constexpr int B_KL = BK / B_KT, B_OL = BN / B_OT;
  static constexpr int PAD = 4;  // keeps rows 16-byte aligned; spreads k-fast stores over banks

  static_assert(BM % TM == 0 && BN % TN == 0, "thread tile must divide the block tile");
  static_assert(TN % 4 == 0 && (BN / (TN / 4)) % 4 == 0, "columns are read as float4 groups");
  static_assert(TM == 1 || TM == 2 || TM % 4 == 0, "rows are read as float4, or singly");
  static_assert(NT % A_KT == 0 && BK % A_KT == 0 && BM % A_OT == 0, "A load mapping");
  static_assert(NT % B_KT == 0 && BK % B_KT == 0 && BN % B_OT == 0, "B load mapping");
  static_assert(A_KL * A_OL * NT == BM * BK && B_KL * B_OL * NT == BN * BK, "tile coverage");
  static_assert(NT <= 1024 && NT % 32 == 0, "block size");
};

template <class Cfg, class Prob>
__global__ void __launch_bounds__(Cfg::NT) gemm_tile_kernel(Prob prob, int mtiles) {
  constexpr int BM = Cfg::BM, BN = Cfg::BN, BK = Cfg::BK, TM = Cfg::TM, TN = Cfg::TN;
  constexpr int PAD = Cfg::PAD;
  constexpr int A_KT = Cfg::A_KT, A_OT = Cfg::A_OT, A_KL = Cfg::A_KL, A_OL = Cfg::A_OL;
  constexpr int B_KT = Cfg::B_KT, B_OT = Cfg::B_OT, B_KL = Cfg::B_KL, B_OL = Cfg::B_OL;
  constexpr int TX = BN / TN;         // threads along n in the compute layout
  constexpr int CG = BN / (TN / 4);   // column distance between a thread's float4 groups

  __shared__ __align__(16) float As[2][BK][BM + PAD];
  __shared__ __align__(16) float Bs[2][BK][BN + PAD];

  prob.bind(static_cast<int>(blockIdx.z));
  const int mt = static_cast<int>(blockIdx.x) % mtiles;
  const int nt = static_cast<int>(blockIdx.x) / mtiles;
  const int m0 = mt * BM, n0 = nt * BN;
  // The grid covers the largest slice; this block may lie outside its own slice. The test
  // is uniform over the block, so returning before any barrier is safe.
  if (m0 >= prob.M || n0 >= prob.N) return;
  const int M = prob.M, N = prob.N, kbeg = prob.kbeg, kend = prob.kend;

  const int t = static_cast<int>(threadIdx.x);
  // Load mapping: this thread fills tile elements (k = a_tk + i*A_KT, m = a_to + j*A_OT).
  const int a_tk = Cfg::AKF ? t % A_KT : t / A_OT;
  const int a_to = Cfg::AKF ? t / A_KT : t % A_OT;
  const int b_tk = Cfg::BKF ? t % B_KT : t / B_OT;
  const int b_to = Cfg::BKF ? t / B_KT : t % B_OT;

  // Outer (m / n) states are fixed for the whole reduction: computed once. Out-of-range
  // rows/columns get the state of row m0 / column n0 (always valid) and are masked.
  typename Prob::AOuter ao[A_OL];
  bool aok[A_OL];
#pragma unroll
  for (int j = 0; j < A_OL; ++j) {
    const int ml = a_to + j * A_OT;  // compared as offsets: no int overflow near INT_MAX
    aok[j] = ml < M - m0;
    ao[j] = prob.a_outer(aok[j] ? m0 + ml : m0);
  }
  typename Prob::BOuter bo[B_OL];
  bool bok[B_OL];
#pragma unroll
  for (int j = 0; j < B_OL; ++j) {
    const int nl = b_to + j * B_OT;
    bok[j] = nl < N - n0;
    bo[j] = prob.b_outer(bok[j] ? n0 + nl : n0);
  }

  float ra[A_KL][A_OL], rb[B_KL][B_OL];  // the next tile, in flight from global memory
  auto load_tile = [&](int k0) {
#pragma unroll
    for (int i = 0; i < A_KL; ++i) {
      const int kl = a_tk + i * A_KT;
      const bool kok = kl < kend - k0;  // k0 < kend, so no overflow
      const typename Prob::AInner ai = prob.a_inner(kok ? k0 + kl : kbeg);
#pragma unroll
      for (int j = 0; j < A_OL; ++j) ra[i][j] = (kok && aok[j]) ? prob.a_load(ao[j], ai) : 0.0f;
    }
#pragma unroll
    for (int i = 0; i < B_KL; ++i) {
      const int kl = b_tk + i * B_KT;
      const bool kok = kl < kend - k0;
      const typename Prob::BInner bi = prob.b_inner(kok ? k0 + kl : kbeg);
#pragma unroll
      for (int j = 0; j < B_OL; ++j) rb[i][j] = (kok && bok[j]) ? prob.b_load(bo[j], bi) : 0.0f;
    }
  };
  auto store_tile = [&](int buf) {
#pragma unroll
    for (int i = 0; i < A_KL; ++i)
#pragma unroll
      for (int j = 0; j < A_OL; ++j) As[buf][a_tk + i * A_KT][a_to + j * A_OT] = ra[i][j];
#pragma unroll
    for (int i = 0; i < B_KL; ++i)
#pragma unroll
      for (int j = 0; j < B_OL; ++j) Bs[buf][b_tk + i * B_KT][b_to + j * B_OT] = rb[i][j];
  };

  // Compute layout: thread (ty, tx) owns rows ty*TM + i and column groups tx*4 + g*CG.
  const int tx = t % TX, ty = t / TX;
  float acc[TM][TN];
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int j = 0; j < TN; ++j) acc[i][j] = 0.0f;

  const int klen = kend > kbeg ? kend - kbeg : 0;
  const int ntiles = klen / BK + (klen % BK != 0);
  if (ntiles > 0) {
    load_tile(kbeg);
    store_tile(0);
  }
  __syncthreads();
  for (int tile = 0; tile < ntiles; ++tile) {
    const int cur = tile & 1;
    const bool more = tile + 1 < ntiles;
    if (more) load_tile(kbeg + (tile + 1) * BK);  // overlaps the arithmetic below
#pragma unroll
    for (int kk = 0; kk < BK; ++kk) {
      float a[TM], b[TN];
      if constexpr (TM % 4 == 0) {
#pragma unroll
        for (int i = 0; i < TM; i += 4) {
          const float4 v = *reinterpret_cast<const float4*>(&As[cur][kk][ty * TM + i]);
          a[i] = v.x, a[i + 1] = v.y, a[i + 2] = v.z, a[i + 3] = v.w;
        }
      } else {
#pragma unroll
        for (int i = 0; i < TM; ++i) a[i] = As[cur][kk][ty * TM + i];
      }
#pragma unroll
      for (int g = 0; g < TN / 4; ++g) {
        const float4 v = *reinterpret_cast<const float4*>(&Bs[cur][kk][tx * 4 + g * CG]);
        b[4 * g] = v.x, b[4 * g + 1] = v.y, b[4 * g + 2] = v.z, b[4 * g + 3] = v.w;
      }
#pragma unroll
      for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
    // Buffer cur^1 was last read in the previous step, before the barrier that ended it.
    if (more) store_tile(cur ^ 1);
    __syncthreads();
  }

#pragma unroll
  for (int j = 0; j < TN; ++j) {
    const int nl = tx * 4 + (j / 4) * CG + (j % 4);
    if (nl >= N - n0) continue;
    const int n = n0 + nl;
    const typename Prob::CCol cc = prob.c_col(n);
#pragma unroll
    for (int i = 0; i < TM; ++i) {
      const int ml = ty * TM + i;
      if (ml < M - m0) prob.store(m0 + ml, n, cc, acc[i][j]);
    }
  }
}

// Launches the GEMM over slices z = 0..Z-1 whose extents are at most Mmax x Nmax (each
// slice's bind() sets its own). Blocks are numbered m-tile fastest, so the blocks that share
// a B column tile (the larger, gathered operand) run close together in time.
template <class Cfg, class Prob>
void launch_gemm(const Prob& prob, int Mmax, int Nmax, int Z, const char* op) {
  if (Mmax <= 0 || Nmax <= 0 || Z <= 0) return;
  const long long mtiles = (Mmax + Cfg::BM - 1) / Cfg::BM;
  const long long ntiles = (Nmax + Cfg::BN - 1) / Cfg::BN;
  if (mtiles * ntiles > INT_MAX || Z > 65535)
    throw Error(std::string("[") + op + "] problem too large for the CUDA GEMM grid");
  const dim3 grid(static_cast<unsigned>(mtiles * ntiles), 1, static_cast<unsigned>(Z));
  gemm_tile_kernel<Cfg, Prob><<<grid, Cfg::NT, 0, stream()>>>(prob, static_cast<int>(mtiles));
  TFE_CUDA_CHECK_LAUNCH(op);
}

// Blocks of a launch, for choosing a configuration or a split-K factor.
template <class Cfg>
inline long long gemm_blocks(int M, int N) {
  return static_cast<long long>((M + Cfg::BM - 1) / Cfg::BM) * ((N + Cfg::BN - 1) / Cfg::BN);
}

// Split-K factor for an M x N output with reduction length R: enough blocks to give every
// SM of a large GPU (~132) about `threads_per_sm` resident threads, each chunk a multiple of
// BK and at least min_chunk long. Depends on the shape only (never on the device), so a
// given shape always sums its partial results in the same order: reproducible bits.
template <class Cfg>
inline void split_k(int M, int N, int R, int min_chunk, int* chunks, int* chunk) {
  constexpr long long kThreads = 132LL * 1024;
  const long long tiles = gemm_blocks<Cfg>(M, N);
  long long want = (kThreads / Cfg::NT + tiles - 1) / tiles;
  if (want < 1) want = 1;
  if (want > 4096) want = 4096;
  long long c = (R + want - 1) / want;
  c = (c + Cfg::BK - 1) / Cfg::BK * Cfg::BK;
  if (c < min_chunk) c = min_chunk;
  if (c < 1) c = 1;
  *chunk = static_cast<int>(c);
  *chunks = static_cast<int>((R + c - 1) / c);
  if (*chunks < 1) *chunks = 1;
}

// Ordered reduction of split-K partials: out(m, n) = sum_{z = 0..S-1} part[z][m][n], summed
// in increasing z by one thread per (m, n), then handed to epi(m, n, value).
template <class Epi>
__global__ void splitk_reduce_kernel(const float* __restrict__ part, int S, int M, int N,
                                     Epi epi) {
  const long long total = static_cast<long long>(M) * N;
  for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<long long>(gridDim.x) * blockDim.x) {
    float s = 0.0f;
    for (int z = 0; z < S; ++z) s += part[z * total + i];
    const int m = static_cast<int>(i / N), n = static_cast<int>(i - static_cast<long long>(m) * N);
    epi(m, n, s);
  }
}

template <class Epi>
void splitk_reduce(const float* part, int S, int M, int N, const Epi& epi, const char* op) {
  constexpr int kThreads = 256;
  const long long total = static_cast<long long>(M) * N;
  if (total <= 0) return;
  splitk_reduce_kernel<Epi>
      <<<elementwise_blocks(total, kThreads), kThreads, 0, stream()>>>(part, S, M, N, epi);
  TFE_CUDA_CHECK_LAUNCH(op);
}

}  // namespace tfe::cuda
