// Internal interface between the portable GEMM/conv drivers (gemm.cpp, conv2d.cpp) and the
// ISA-specific inner kernels (gemm_avx2.cpp, gemm_avx512.cpp).
//
// The drivers own blocking, packing, threading and edge handling; an ISA file only provides
// the three register-blocked loops that dominate run time, behind plain function pointers:
//
//  * micro-kernel (BLIS style): C[MR x NR] = sum_t a[t*MR + i] * B_t[j] over t < kc, where
//    `a` is an MR-interleaved packed A panel and B row t is either the NR-interleaved packed
//    panel b + t*NR (ukr) or an arbitrary row b + off[t] (ukr_off: the "implicit GEMM" used by
//    conv2d, where B row t is a shifted view of the padded input image, so B is never packed).
//  * dot tile: out[i*DC + j] = sum_{l < L} a[i][l] * b[j][l] for DR x DC rows (conv2d weight
//    gradient, where both operands are stored with the reduction index contiguous).
//  * FMA peak: throughput of independent FMA chains on the kernel's vector width.
//
// The ISA files include nothing but <immintrin.h>/<omp.h> and this header, so that no inline
// library function can be instantiated with AVX code and then shared (ODR) with the portable
// code: such a merge would run AVX instructions on CPUs without them.
#pragma once

namespace tfe::cpu::detail {

// C tile store rule shared by the micro-kernels: beta == 0: C = AB (C not read);
// beta == 1: C += AB; otherwise C = AB + beta * C. Only the top-left m x n of the tile is
// stored (m <= MR, n <= NR).
using MicroKernel = void (*)(int kc, const float* a, const float* b, float* c, int ldc,
                             float beta, int m, int n);
// Implicit-B micro-kernel: B row t is b + off[t] (NR floats, unaligned). C = AB + bias[i]
// (bias may be null) for rows i < m, all NR columns; C is not read.
using MicroKernelOff = void (*)(int kc, const float* a, const float* b, const int* off,
                                float* c, int ldc, const float* bias, int m);
// out[i * DC + j] = sum_{l < L} a[i][l] * b[j][l]; L is a multiple of 16 (assigned).
using DotKernel = void (*)(int L, const float* const* a, const float* const* b, float* out);
using PeakFn = double (*)(int threads);

struct KernelInfo {
  const char* name;
  int mr, nr;      // register tile of the micro-kernels
  int kc, mc, nc;  // cache blocking of sgemm (depth, rows of A per L2 block, cols of B)
  int dr, dc;      // tile of the dot kernel
  MicroKernel ukr;
  MicroKernelOff ukr_off;
  DotKernel dot;
  PeakFn peak;
};

extern const KernelInfo kGenericKernel;  // gemm.cpp
extern const KernelInfo kAvx2Kernel;     // gemm_avx2.cpp
extern const KernelInfo kAvx512Kernel;   // gemm_avx512.cpp

// The kernel chosen once per process: the best the CPU supports, or the one named by the
// environment variable TFE_GEMM_KERNEL=generic|avx2|avx512 (never above what the CPU has).
const KernelInfo& active_kernel();

// Packing into the micro-kernel's panel layouts (zero-padded to full MR / NR).
// A block: rows [0, mc) and depth [0, kc) of op(A) starting at `a` (already offset to the
// block's origin), scaled by alpha: dst = ceil(mc/MR) panels of MR*kc floats.
void pack_a(const KernelInfo& k, bool trans_a, int mc, int kc, float alpha, const float* a,
            int lda, float* dst);
// B block: depth [0, kc) and columns [0, nc) of op(B): ceil(nc/NR) panels of kc*NR floats.
void pack_b(const KernelInfo& k, bool trans_b, int kc, int nc, const float* b, int ldb,
            float* dst);

// 64-byte aligned, grow-only scratch buffer (one per thread via thread_local in the users).
struct Scratch {
  float* p = nullptr;
  long cap = 0;
  float* get(long n);  // contents are NOT preserved when it grows
  ~Scratch();
};

}  // namespace tfe::cpu::detail
