// Single-precision GEMM, the compute core under conv2d and linear.
//
//   C[M, N] = alpha * op(A)[M, K] * op(B)[K, N] + beta * C[M, N]
//
// Row-major storage with leading dimensions (BLAS argument order, as every GEMM user
// expects). trans_a: A is stored as [K, M] (lda >= M); otherwise [M, K] (lda >= K).
// trans_b: B is stored as [N, K] (ldb >= K); otherwise [K, N] (ldb >= N).
// beta == 0 means C is write-only (NaNs in C are not propagated).
#pragma once

namespace tfe::cpu {

// Uses tfe::cpu::num_threads() threads (each owns a slice of C; the bits do not depend on
// the thread count); runs on the calling thread alone inside a parallel region.
void sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A,
           int lda, const float* B, int ldb, float beta, float* C, int ldc);

// The same on the calling thread only: for use inside an already parallel region
// (e.g. conv2d parallel over images).
void sgemm_serial(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A,
                  int lda, const float* B, int ldb, float beta, float* C, int ldc);

// Which micro-kernel the run-time CPU detection chose: "avx512", "avx2" or "generic".
const char* sgemm_kernel_name();

// Measured single-precision FMA throughput of this machine in GFLOP/s with `threads`
// threads (independent FMA chains on the widest vectors the GEMM uses), for reporting the
// GEMM's share of peak.
double fma_peak_gflops(int threads);

}  // namespace tfe::cpu
