// Single-precision GEMM (contract in gemm.h):  C = alpha * op(A) op(B) + beta * C, row-major.
//
// Structure (BLIS / oneDNN style):
//   for jc over N in NC columns          B block kc x nc packed into NR-column panels (L3)
//     for pc over K in KC deep slices     (beta applies on the first slice only)
//       for ic over M in MC rows         A block mc x kc packed into MR-row panels (L2)
//         for jr over NR panels          B micro-panel kc x NR stays in L1
//           for ir over MR panels        micro-kernel: MR x NR register tile, kc FMAs deep
// Packing handles both transpositions, folds alpha into A and zero-pads partial panels, so
// the micro-kernel always runs full tiles; only the final store is clipped.
//
// The micro-kernel (and blocking sizes) come from the kernel chosen once at run time:
// gemm_avx512.cpp (8x48), gemm_avx2.cpp (4x24) or the portable 4x8 one below; the variable
// TFE_GEMM_KERNEL=generic|avx2|avx512 forces a lower one (for testing the fallbacks).
//
// Threads: sgemm splits C into one slice per thread (by columns when N has enough NR panels,
// else by rows) and runs the serial blocked algorithm on each, with per-thread packing
// buffers and no barrier inside the region; K is never split, so every element of C is summed
// in the same order whatever the thread count (bitwise identical results). Small products and
// calls from inside a parallel region run serially; sgemm_serial never opens a region.
#include "gemm/gemm.h"

#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "core/threads.h"
#include "gemm/gemm_internal.h"

namespace tfe::cpu {
namespace detail {

// ---- scratch ---------------------------------------------------------------------------
float* Scratch::get(long n) {
  if (n > cap) {
    std::free(p);
    long bytes = ((n * (long)sizeof(float)) + 63) / 64 * 64;
    p = static_cast<float*>(std::aligned_alloc(64, bytes));
    cap = bytes / (long)sizeof(float);
  }
  return p;
}
Scratch::~Scratch() { std::free(p); }

// ---- portable kernels ------------------------------------------------------------------
namespace {

constexpr int kGMR = 4;
constexpr int kGNR = 8;

template <bool kOff>
inline void generic_micro(int kc, const float* a, const float* b, const int* off, float* c,
                          int ldc, float beta, int m, int n, const float* bias) {
  float acc[kGMR][kGNR] = {};
  if (bias)
    for (int i = 0; i < m; ++i)
      for (int j = 0; j < kGNR; ++j) acc[i][j] = bias[i];
  for (int t = 0; t < kc; ++t) {
    const float* bt = kOff ? b + off[t] : b + t * kGNR;
    for (int i = 0; i < kGMR; ++i)
      for (int j = 0; j < kGNR; ++j) acc[i][j] += a[i] * bt[j];
    a += kGMR;
  }
  for (int i = 0; i < m; ++i) {
    float* ci = c + (long)i * ldc;
    if (beta == 0.0f) {
      for (int j = 0; j < n; ++j) ci[j] = acc[i][j];
    } else {
      for (int j = 0; j < n; ++j) ci[j] = acc[i][j] + beta * ci[j];
    }
  }
}

void generic_ukr(int kc, const float* a, const float* b, float* c, int ldc, float beta, int m,
                 int n) {
  generic_micro<false>(kc, a, b, nullptr, c, ldc, beta, m, n, nullptr);
}
void generic_ukr_off(int kc, const float* a, const float* b, const int* off, float* c,
                     int ldc, const float* bias, int m) {
  generic_micro<true>(kc, a, b, off, c, ldc, 0.0f, m, kGNR, bias);
}

// 4 explicit lanes per sum so the compiler can vectorise without reassociating.
void generic_dot(int L, const float* const* a, const float* const* b, float* out) {
  float s[4][2][4] = {};
  for (int l = 0; l < L; l += 4)
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < 2; ++j)
        for (int v = 0; v < 4; ++v) s[i][j][v] += a[i][l + v] * b[j][l + v];
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 2; ++j) out[i * 2 + j] = (s[i][j][0] + s[i][j][1]) + (s[i][j][2] + s[i][j][3]);
}

double generic_peak(int threads) {
  double total = 0.0;
#pragma omp parallel num_threads(threads) reduction(+ : total)
  {
    float v[12][4];
    for (int c = 0; c < 12; ++c)
      for (int l = 0; l < 4; ++l) v[c][l] = float(c + l);
    const float x = 0.999f, y = 1e-3f;
    long iters = 0;
    const double t0 = omp_get_wtime();
    double el = 0.0;
    do {
      for (int r = 0; r < 4096; ++r)
        for (int c = 0; c < 12; ++c)
          for (int l = 0; l < 4; ++l) v[c][l] = v[c][l] * x + y;
      asm volatile("" ::"m"(v));
      iters += 4096;
      el = omp_get_wtime() - t0;
    } while (el < 0.2);
    total += iters * 12.0 * 4.0 * 2.0 / el * 1e-9;
  }
  return total;
}

}  // namespace

extern const KernelInfo kGenericKernel = {"generic",   kGMR,        kGNR,        256, 128, 2048, 4, 2,
                                          generic_ukr, generic_ukr_off, generic_dot, generic_peak};

// ---- run-time selection ----------------------------------------------------------------
namespace {
const KernelInfo* choose_kernel() {
  __builtin_cpu_init();
  const bool has_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  const bool has_avx512 = has_avx2 && __builtin_cpu_supports("avx512f");
  int level = has_avx512 ? 2 : has_avx2 ? 1 : 0;
  if (const char* env = std::getenv("TFE_GEMM_KERNEL")) {
    int want = level;
    if (std::strcmp(env, "generic") == 0) want = 0;
    if (std::strcmp(env, "avx2") == 0) want = 1;
    if (std::strcmp(env, "avx512") == 0) want = 2;
    level = std::min(level, want);
  }
  return level == 2 ? &kAvx512Kernel : level == 1 ? &kAvx2Kernel : &kGenericKernel;
}
}  // namespace

const KernelInfo& active_kernel() {
  static const KernelInfo* k = choose_kernel();
  return *k;
}

// ---- packing ---------------------------------------------------------------------------
namespace {

template <int MR>
void pack_a_t(bool trans, int mc, int kc, float alpha, const float* a, int lda, float* dst) {
  for (int i0 = 0; i0 < mc; i0 += MR, dst += (long)MR * kc) {
    const int rows = std::min(MR, mc - i0);
    if (!trans) {  // element (i, p) at a[i * lda + p]
      const float* src[MR];
      for (int i = 0; i < MR; ++i) src[i] = a + (long)(i0 + std::min(i, rows - 1)) * lda;
      for (int p = 0; p < kc; ++p)
        for (int i = 0; i < MR; ++i) dst[p * MR + i] = i < rows ? alpha * src[i][p] : 0.0f;
    } else {  // element (i, p) at a[p * lda + i]
      for (int p = 0; p < kc; ++p) {
        const float* s = a + (long)p * lda + i0;
        float* d = dst + p * MR;
        if (rows == MR) {
          for (int i = 0; i < MR; ++i) d[i] = alpha * s[i];
        } else {
          for (int i = 0; i < MR; ++i) d[i] = i < rows ? alpha * s[i] : 0.0f;
        }
      }
    }
  }
}

template <int NR>
void pack_b_t(bool trans, int kc, int nc, const float* b, int ldb, float* dst) {
  for (int j0 = 0; j0 < nc; j0 += NR, dst += (long)kc * NR) {
    const int cols = std::min(NR, nc - j0);
    if (!trans) {  // element (p, j) at b[p * ldb + j]
      for (int p = 0; p < kc; ++p) {
        const float* s = b + (long)p * ldb + j0;
        float* d = dst + p * NR;
        if (cols == NR) {
          std::memcpy(d, s, NR * sizeof(float));
        } else {
          for (int j = 0; j < NR; ++j) d[j] = j < cols ? s[j] : 0.0f;
        }
      }
    } else {  // element (p, j) at b[j * ldb + p]: read rows of B, scatter into the panel
      for (int j = 0; j < NR; ++j) {
        if (j < cols) {
          const float* s = b + (long)(j0 + j) * ldb;
          for (int p = 0; p < kc; ++p) dst[p * NR + j] = s[p];
        } else {
          for (int p = 0; p < kc; ++p) dst[p * NR + j] = 0.0f;
        }
      }
    }
  }
}

}  // namespace

void pack_a(const KernelInfo& k, bool trans_a, int mc, int kc, float alpha, const float* a,
            int lda, float* dst) {
  switch (k.mr) {
    case 8: return pack_a_t<8>(trans_a, mc, kc, alpha, a, lda, dst);
    default: return pack_a_t<4>(trans_a, mc, kc, alpha, a, lda, dst);
  }
}

void pack_b(const KernelInfo& k, bool trans_b, int kc, int nc, const float* b, int ldb,
            float* dst) {
  switch (k.nr) {
    case 48: return pack_b_t<48>(trans_b, kc, nc, b, ldb, dst);
    case 24: return pack_b_t<24>(trans_b, kc, nc, b, ldb, dst);
    default: return pack_b_t<8>(trans_b, kc, nc, b, ldb, dst);
  }
}

}  // namespace detail

// ---- drivers ---------------------------------------------------------------------------
namespace {

using detail::KernelInfo;

struct GemmArgs {
  bool ta, tb;
  int M, N, K;
  float alpha;
  const float* A;
  int lda;
  const float* B;
  int ldb;
  float beta;
  float* C;
  int ldc;
  const float* a_at(int i, int p) const {
    return ta ? A + (long)p * lda + i : A + (long)i * lda + p;
  }
  const float* b_at(int p, int j) const {
    return tb ? B + (long)j * ldb + p : B + (long)p * ldb + j;
  }
};

// C = beta * C for the degenerate K == 0 / alpha == 0 cases (beta == 0 writes zeros).
void scale_c(const GemmArgs& g) {
  for (int i = 0; i < g.M; ++i) {
    float* c = g.C + (long)i * g.ldc;
    if (g.beta == 0.0f) {
      std::memset(c, 0, sizeof(float) * g.N);
    } else if (g.beta != 1.0f) {
      for (int j = 0; j < g.N; ++j) c[j] *= g.beta;
    }
  }
}

// Micro-kernels over the MR x NR tiles of panels [jp0, jp1) of a packed B block.
inline void macro_kernel(const KernelInfo& k, int mc, int nc, int kc, const float* ap,
                         const float* bp, int jp0, int jp1, float* c, int ldc, float beta) {
  for (int jp = jp0; jp < jp1; ++jp) {
    const int j = jp * k.nr;
    const int n = std::min(k.nr, nc - j);
    const float* b = bp + (long)jp * kc * k.nr;
    for (int i = 0; i < mc; i += k.mr) {
      k.ukr(kc, ap + (long)i * kc, b, c + (long)i * ldc + j, ldc, beta, std::min(k.mr, mc - i),
            n);
    }
  }
}

thread_local detail::Scratch tls_a;  // packed A block of this thread
thread_local detail::Scratch tls_b;  // packed B block of this thread

void gemm_serial_impl(const KernelInfo& k, const GemmArgs& g) {
  const int KC = k.kc, MC = k.mc, NC = k.nc;
  const int nc_max = std::min(NC, g.N), kc_max = std::min(KC, g.K), mc_max = std::min(MC, g.M);
  float* bp = tls_b.get((long)kc_max * ((nc_max + k.nr - 1) / k.nr) * k.nr);
  float* ap = tls_a.get((long)kc_max * ((mc_max + k.mr - 1) / k.mr) * k.mr);
  for (int jc = 0; jc < g.N; jc += NC) {
    const int nc = std::min(NC, g.N - jc);
    for (int pc = 0; pc < g.K; pc += KC) {
      const int kc = std::min(KC, g.K - pc);
      const float beta = pc == 0 ? g.beta : 1.0f;
      detail::pack_b(k, g.tb, kc, nc, g.b_at(pc, jc), g.ldb, bp);
      for (int ic = 0; ic < g.M; ic += MC) {
        const int mc = std::min(MC, g.M - ic);
        detail::pack_a(k, g.ta, mc, kc, g.alpha, g.a_at(ic, pc), g.lda, ap);
        macro_kernel(k, mc, nc, kc, ap, bp, 0, (nc + k.nr - 1) / k.nr,
                     g.C + (long)ic * g.ldc + jc, g.ldc, beta);
      }
    }
  }
}

// C split into nt independent slices, one serial blocked GEMM per thread: by columns when
// there are enough NR panels (each thread packs only its slice of B, and A redundantly,
// which costs ~nt/(2N) of the FLOPs), else by rows. No barrier inside the region, which
// matters on small, oversubscribed machines where a barrier can cost a scheduler quantum.
void gemm_parallel_impl(const KernelInfo& k, const GemmArgs& g, int nt) {
  const int npan_n = (g.N + k.nr - 1) / k.nr, npan_m = (g.M + k.mr - 1) / k.mr;
  const bool by_cols = npan_n >= 4 * nt || npan_n >= npan_m;
#pragma omp parallel num_threads(nt)
  {
    const int tid = omp_get_thread_num(), nth = omp_get_num_threads();
    GemmArgs s = g;
    if (by_cols) {
      const int j0 = std::min(g.N, (int)((long)npan_n * tid / nth) * k.nr);
      const int j1 = std::min(g.N, (int)((long)npan_n * (tid + 1) / nth) * k.nr);
      s.N = j1 - j0;
      s.B = g.b_at(0, j0);
      s.C = g.C + j0;
    } else {
      const int i0 = std::min(g.M, (int)((long)npan_m * tid / nth) * k.mr);
      const int i1 = std::min(g.M, (int)((long)npan_m * (tid + 1) / nth) * k.mr);
      s.M = i1 - i0;
      s.A = g.a_at(i0, 0);
      s.C = g.C + (long)i0 * g.ldc;
    }
    if (s.M > 0 && s.N > 0) gemm_serial_impl(k, s);
  }
}

}  // namespace

void sgemm_serial(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A,
                  int lda, const float* B, int ldb, float beta, float* C, int ldc) {
  if (M <= 0 || N <= 0) return;
  const GemmArgs g{trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc};
  if (K <= 0 || alpha == 0.0f) return scale_c(g);
  gemm_serial_impl(detail::active_kernel(), g);
}

void sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda,
           const float* B, int ldb, float beta, float* C, int ldc) {
  if (M <= 0 || N <= 0) return;
  const GemmArgs g{trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc};
  if (K <= 0 || alpha == 0.0f) return scale_c(g);
  const int nt = omp_in_parallel() ? 1 : num_threads();
  // Below ~1 M multiply-adds a fork/join costs more than it saves.
  if (nt <= 1 || (double)M * N * K < 1.0e6) return gemm_serial_impl(detail::active_kernel(), g);
  gemm_parallel_impl(detail::active_kernel(), g, nt);
}

const char* sgemm_kernel_name() { return detail::active_kernel().name; }

double fma_peak_gflops(int threads) {
  return detail::active_kernel().peak(threads < 1 ? 1 : threads);
}

}  // namespace tfe::cpu
