// 2-D convolution on the GPU, NCHW, square kernel (contract in ops/cuda_kernels.h):
//   forward   y[n,o,oh,ow] = b[o] + sum_{c,kh,kw} w[o,c,kh,kw] * x[n,c,oh*s-p+kh,ow*s-p+kw]
//   backward  dx (assigned), dw += , db +=
//
// Every product is an implicit GEMM on the tiled core of gemm.cuh; im2col is never
// materialised, the gathers below compute operand elements from the tensors directly
// (out-of-image taps read as zero).
//
//  * forward: C[o, col] = sum_t w[o, t] * X(t, col), t = (c, kh, kw) (the OIHW order of w),
//    col = (n, oh, ow) over all images: M = K, N = batch*Ho*Wo, reduction C*k*k.
//  * dx: the transposed convolution, split into the s*s output phases (ih % s, iw % s).
//    dx[n,c,ih,iw] receives w[o,c,kh,kw] * dy[n,o,oh,ow] exactly when ih + p - kh = oh*s, so
//    inside the phase rh = ih % s only the taps kh = kh0 + s*j, kh0 = (rh + p) % s, hit, with
//    oh = a + qh - j for ih = rh + s*a, qh = (rh + p - kh0) / s (and likewise for columns).
//    Each phase is then a dense GEMM: M = C, N = batch*Ha*Wa, reduction K*nkh*nkw, with no
//    work wasted on taps that miss (a stride-2 dx would otherwise multiply 3/4 zeros).
//    A phase that no tap reaches (e.g. 1x1 kernel, stride 2, odd rows) has an empty reduction
//    and stores zeros, so dx is fully assigned.
//  * dw and db: C[o, t] = sum_{(n,oh,ow)} dy[n,o,oh,ow] * X(t, (n,oh,ow)), with one extra
//    column of ones when db is wanted (that column sums dy). The long reduction over the
//    batch and pixels is split into a shape-determined number of chunks; each chunk's result
//    goes to scratch and one ordered pass adds the sum of the chunks into dw / db. No
//    atomics: the same inputs give the same bits.
//
// Integer indexing: offsets inside one image (x: C*H*W, y: K*Ho*Wo), the weight count and
// the GEMM column count (batch*Ho*Wo) are int, checked against INT_MAX here; per-image base
// pointers are formed with 64-bit products.
#include <algorithm>
#include <climits>
#include <string>

#include "core/check.cuh"
#include "ops/cuda_kernels.h"
#include "gemm/gemm.cuh"

namespace tfe::cuda {

namespace {

// ---- tile configurations -----------------------------------------------------------------
// Forward and dx: A = weights (contiguous along the reduction: k-fast loads), B = the
// gathered image / dy (contiguous along the output pixels: n-fast loads). The block tile's
// M side follows the channel count (16 / 32 / 64) so narrow layers do not waste rows.
using CfgF16 = TileCfg<16, 256, 16, 4, 4, true, 16, false, 4>;
using CfgF32 = TileCfg<32, 128, 16, 4, 4, true, 16, false, 4>;
using CfgF64 = TileCfg<64, 128, 16, 8, 4, true, 16, false, 4>;
using CfgFS = TileCfg<32, 64, 16, 4, 4, true, 16, false, 2>;  // small problems: more blocks
// dw: both operands run along the pixel reduction: k-fast loads on both sides.
using CfgD16 = TileCfg<16, 64, 16, 2, 4, true, 16, true, 8>;
using CfgD32 = TileCfg<32, 64, 16, 4, 4, true, 16, true, 8>;
using CfgD64 = TileCfg<64, 64, 16, 4, 4, true, 16, true, 16>;

// Fewer blocks than about two waves on a large GPU: take the small-tile configuration.
constexpr long long kMinBlocks = 264;

template <class Prob>
void launch_conv_gemm(const Prob& p, int M, int Ncols, const char* op) {
  if (M <= 16 && gemm_blocks<CfgF16>(M, Ncols) >= kMinBlocks)
    launch_gemm<CfgF16>(p, M, Ncols, 1, op);
  else if (M > 16 && M <= 32 && gemm_blocks<CfgF32>(M, Ncols) >= kMinBlocks)
    launch_gemm<CfgF32>(p, M, Ncols, 1, op);
  else if (M > 32 && gemm_blocks<CfgF64>(M, Ncols) >= kMinBlocks)
    launch_gemm<CfgF64>(p, M, Ncols, 1, op);
  else
    launch_gemm<CfgFS>(p, M, Ncols, 1, op);
}

struct Geom {
  int C, H, W, K, KS, stride, pad, Ho, Wo;
  int HW, P, KK, T;  // H*W, Ho*Wo, k*k, C*k*k
  long long xs, ys;  // floats per image of x (C*H*W) and of y (K*Ho*Wo)
};

Geom make_geom(int N, int C, int H, int W, int K, int k, int stride, int pad, const char* op) {
  Geom g;
  g.C = C, g.H = H, g.W = W, g.K = K, g.KS = k, g.stride = stride, g.pad = pad;
  g.Ho = (H + 2 * pad - k) / stride + 1;
  g.Wo = (W + 2 * pad - k) / stride + 1;
  const long long HW = static_cast<long long>(H) * W, P = static_cast<long long>(g.Ho) * g.Wo;
  g.xs = static_cast<long long>(C) * HW;
  g.ys = static_cast<long long>(K) * P;
  const long long T = static_cast<long long>(C) * k * k;
  if (g.xs > INT_MAX || g.ys > INT_MAX || T * K > INT_MAX || static_cast<long long>(N) * P > INT_MAX ||
      static_cast<long long>(N) * HW > INT_MAX)
    throw Error(std::string("[") + op + "] tensor too large for the CUDA convolution");
  g.HW = static_cast<int>(HW);
  g.P = static_cast<int>(P);
  g.KK = k * k;
  g.T = static_cast<int>(T);
  return g;
}

// ---- forward ------------------------------------------------------------------------------
struct ConvFwdProb {
  const float* x;
  const float* w;
  const float* b;  // or nullptr
  float* y;
  int H, W, KS, stride, pad, Wo, P, HW, KK, T;
  long long xs, ys;
  FastDiv fdP, fdWo, fdKK, fdKS;
  int M, N, kbeg, kend;

  __device__ void bind(int) {}

  // A(o, t) = w[o*T + t].
  using AOuter = int;
  using AInner = int;
  __device__ int a_outer(int o) const { return o * T; }
  __device__ int a_inner(int t) const { return t; }
  __device__ float a_load(int ro, int t) const { return __ldg(w + (ro + t)); }

  // B(t, col) = x[n, c, ih0 + kh, iw0 + kw] with ih0 = oh*s - p, iw0 = ow*s - p.
  struct BOuter {
    const float* img;  // x + n*C*H*W
    int pix;           // ih0*W + iw0 (may be negative; only used when the tap is inside)
    int ih0, iw0;
  };
  struct BInner {
    int off;  // c*H*W + kh*W + kw
    int kh, kw;
  };
  __device__ BOuter b_outer(int col) const {
    const int n = fdP.div(col), q = col - n * P;
    const int oh = fdWo.div(q), ow = q - oh * Wo;
    const int ih0 = oh * stride - pad, iw0 = ow * stride - pad;
    return {x + n * xs, ih0 * W + iw0, ih0, iw0};
  }
  __device__ BInner b_inner(int t) const {
    const int c = fdKK.div(t), r = t - c * KK;
    const int kh = fdKS.div(r), kw = r - kh * KS;
    return {c * HW + kh * W + kw, kh, kw};
  }
  __device__ float b_load(const BOuter& o, const BInner& i) const {
    const int ih = o.ih0 + i.kh, iw = o.iw0 + i.kw;
    const bool inside = static_cast<unsigned>(ih) < static_cast<unsigned>(H) &&
                        static_cast<unsigned>(iw) < static_cast<unsigned>(W);
    return inside ? __ldg(o.img + (o.pix + i.off)) : 0.0f;
  }

  // y[n, o, oh, ow] = acc + b[o].
  using CCol = float*;
  __device__ float* c_col(int col) const {
    const int n = fdP.div(col), q = col - n * P;
    return y + n * ys + q;
  }
  __device__ void store(int o, int, float* yc, float v) const {
    yc[o * P] = b ? v + __ldg(b + o) : v;
  }
};

// ---- dx, one output phase ----------------------------------------------------------------------
struct ConvDxProb {
  const float* dy;
  const float* w;
  float* dx;
  int H, W, KS, stride, Ho, Wo, P, HW, KK, CKK;
  long long xs, ys;
  // The phase: rows ih = rh + s*a (a < Ha), taps kh = kh0 + s*j (j < nkh), oh = a + qh - j;
  // columns likewise. Reduction index r = (o, j, jw), o major: T = nkh*nkw taps per o.
  int rh, rw, kh0, kw0, qh, qw, nkw, T, Wa, HaWa;
  FastDiv fdHaWa, fdWa, fdT, fdNkw;
  int M, N, kbeg, kend;

  __device__ void bind(int) {}

  struct Red {
    int o, j, jw;
  };
  __device__ Red split(int r) const {
    const int o = fdT.div(r), tap = r - o * T;
    const int j = fdNkw.div(tap), jw = tap - j * nkw;
    return {o, j, jw};
  }

  // A(c, r) = w[o, c, kh, kw] = w[o*C*k*k + c*k*k + kh*k + kw].
  using AOuter = int;
  using AInner = int;
  __device__ int a_outer(int c) const { return c * KK; }
  __device__ int a_inner(int r) const {
    const Red d = split(r);
    return d.o * CKK + (kh0 + stride * d.j) * KS + (kw0 + stride * d.jw);
  }
  __device__ float a_load(int co, int ri) const { return __ldg(w + (co + ri)); }

  // B(r, col) = dy[n, o, th - j, tw - jw] with th = a + qh, tw = b + qw (zero outside).
  struct BOuter {
    const float* img;  // dy + n*K*Ho*Wo
    int th, tw;
  };
  struct BInner {
    int ooff;  // o*Ho*Wo
    int j, jw;
  };
  __device__ BOuter b_outer(int col) const {
    const int n = fdHaWa.div(col), q = col - n * HaWa;
    const int a = fdWa.div(q), bc = q - a * Wa;
    return {dy + n * ys, a + qh, bc + qw};
  }
  __device__ BInner b_inner(int r) const {
    const Red d = split(r);
    return {d.o * P, d.j, d.jw};
  }
  __device__ float b_load(const BOuter& o, const BInner& i) const {
    const int oh = o.th - i.j, ow = o.tw - i.jw;
    const bool inside = static_cast<unsigned>(oh) < static_cast<unsigned>(Ho) &&
                        static_cast<unsigned>(ow) < static_cast<unsigned>(Wo);
    return inside ? __ldg(o.img + (i.ooff + oh * Wo + ow)) : 0.0f;
  }

  // dx[n, c, rh + s*a, rw + s*b] = acc (assigned).
  using CCol = float*;
  __device__ float* c_col(int col) const {
    const int n = fdHaWa.div(col), q = col - n * HaWa;
    const int a = fdWa.div(q), bc = q - a * Wa;
    return dx + n * xs + ((rh + stride * a) * W + (rw + stride * bc));
  }
  __device__ void store(int c, int, float* xc, float v) const { xc[c * HW] = v; }
};

// ---- dw / db, one chunk of the pixel reduction per blockIdx.z ----------------------------
struct ConvDwProb {
  const float* dy;
  const float* x;
  float* part;  // [chunks][K][ncols]
  int H, W, KS, stride, pad, Wo, P, HW, KK;
  int T;      // weight columns (C*k*k, or 0 without dw); column T is the ones column (db)
  int ncols;  // T + (db ? 1 : 0)
  int R, chunk;
  long long xs, ys;
  FastDiv fdP, fdWo, fdKK, fdKS;
  int z, M, N, kbeg, kend;

  __device__ void bind(int zz) {
    z = zz;
    kbeg = zz * chunk;  // < R: the launch has ceil(R / chunk) slices
    kend = R - kbeg < chunk ? R : kbeg + chunk;
  }

  // A(o, pix) = dy[n, o, oh, ow], pix = (n, oh, ow).
  using AOuter = int;
  using AInner = const float*;
  __device__ int a_outer(int o) const { return o * P; }
  __device__ const float* a_inner(int pix) const {
    const int n = fdP.div(pix), q = pix - n * P;
    return dy + n * ys + q;
  }
  __device__ float a_load(int oo, const float* p) const { return __ldg(p + oo); }

  // B(pix, t) = x[n, c, oh*s - p + kh, ow*s - p + kw] for t = (c, kh, kw) < T; 1 for t == T.
  struct BOuter {
    int off;  // c*H*W + kh*W + kw
    int kh, kw;
    bool one;
  };
  struct BInner {
    const float* img;  // x + n*C*H*W
    int pix;           // ih0*W + iw0
    int ih0, iw0;
  };
  __device__ BOuter b_outer(int t) const {
    if (t >= T) return {0, 0, 0, true};
    const int c = fdKK.div(t), r = t - c * KK;
    const int kh = fdKS.div(r), kw = r - kh * KS;
    return {c * HW + kh * W + kw, kh, kw, false};
  }
  __device__ BInner b_inner(int pix) const {
    const int n = fdP.div(pix), q = pix - n * P;
    const int oh = fdWo.div(q), ow = q - oh * Wo;
    const int ih0 = oh * stride - pad, iw0 = ow * stride - pad;
    return {x + n * xs, ih0 * W + iw0, ih0, iw0};
  }
  __device__ float b_load(const BOuter& o, const BInner& i) const {
    if (o.one) return 1.0f;
    const int ih = i.ih0 + o.kh, iw = i.iw0 + o.kw;
    const bool inside = static_cast<unsigned>(ih) < static_cast<unsigned>(H) &&
                        static_cast<unsigned>(iw) < static_cast<unsigned>(W);
    return inside ? __ldg(i.img + (i.pix + o.off)) : 0.0f;
  }

  using CCol = int;
  __device__ int c_col(int) const { return 0; }
  __device__ void store(int o, int t, int, float v) const {
    part[(static_cast<long long>(z) * M + o) * ncols + t] = v;
  }
};

// Final pass of dw / db: the ordered sum of the chunks, added into the parameter gradients.
struct ConvDwEpi {
  float* dw;  // [K][T] or nullptr (then T == 0)
  float* db;  // [K] or nullptr (then there is no column T)
  int T;
  __device__ void operator()(int o, int t, float v) const {
    if (t < T)
      dw[o * T + t] += v;
    else
      db[o] += v;
  }
};

}  // namespace

void conv2d_forward(float* y, const float* x, const float* w, const float* b, int N, int C,
                    int H, int W, int K, int k, int stride, int pad) {
  if (N <= 0 || K <= 0) return;
  const Geom g = make_geom(N, C, H, W, K, k, stride, pad, "conv2d_forward");
  ConvFwdProb p;
  p.x = x, p.w = w, p.b = b, p.y = y;
  p.H = H, p.W = W, p.KS = k, p.stride = stride, p.pad = pad, p.Wo = g.Wo;
  p.P = g.P, p.HW = g.HW, p.KK = g.KK, p.T = g.T, p.xs = g.xs, p.ys = g.ys;
  p.fdP = FastDiv(g.P), p.fdWo = FastDiv(g.Wo), p.fdKK = FastDiv(g.KK), p.fdKS = FastDiv(k);
  p.M = K, p.N = N * g.P, p.kbeg = 0, p.kend = g.T;
  launch_conv_gemm(p, p.M, p.N, "conv2d_forward");
}

void conv2d_backward(float* dx, float* dw, float* db, const float* dy, const float* x,
                     const float* w, int N, int C, int H, int W, int K, int k, int stride,
                     int pad) {
  if (N <= 0 || C <= 0 || K <= 0) return;
  const Geom g = make_geom(N, C, H, W, K, k, stride, pad, "conv2d_backward");

  if (dw || db) {
    ConvDwProb p;
    p.dy = dy, p.x = x, p.part = nullptr;
    p.H = H, p.W = W, p.KS = k, p.stride = stride, p.pad = pad, p.Wo = g.Wo;
    p.P = g.P, p.HW = g.HW, p.KK = g.KK;
    p.T = dw ? g.T : 0;
    p.ncols = p.T + (db ? 1 : 0);
    p.xs = g.xs, p.ys = g.ys;
    p.fdP = FastDiv(g.P), p.fdWo = FastDiv(g.Wo), p.fdKK = FastDiv(g.KK), p.fdKS = FastDiv(k);
    p.z = 0, p.M = K, p.N = p.ncols, p.kbeg = 0, p.kend = 0;
    const int R = N * g.P;
    // The tile configuration depends on K only, and the chunking is chosen for the full
    // C*k*k + 1 columns whichever of dw / db is requested: each chunk sums the same pixels in
    // the same order either way, so db has the same bits with or without dw (and vice versa).
    int chunks = 1, chunk = 1;
    auto run = [&](auto cfg_tag) {
      using Cfg = decltype(cfg_tag);
      split_k<Cfg>(K, g.T + 1, R, 8 * Cfg::BK, &chunks, &chunk);
      p.R = R;
      p.chunk = chunk;
      Scratch part(sizeof(float) * static_cast<size_t>(chunks) * K * p.ncols, "conv2d_backward");
      p.part = part.as<float>();
      launch_gemm<Cfg>(p, K, p.ncols, chunks, "conv2d_backward");
      splitk_reduce(p.part, chunks, K, p.ncols, ConvDwEpi{dw, db, p.T}, "conv2d_backward");
    };
    if (K <= 16)
      run(CfgD16{});
    else if (K <= 32)
      run(CfgD32{});
    else
      run(CfgD64{});
  }

  if (dx) {
    const int s = stride;
    ConvDxProb p;
    p.dy = dy, p.w = w, p.dx = dx;
    p.H = H, p.W = W, p.KS = k, p.stride = s, p.Ho = g.Ho, p.Wo = g.Wo;
    p.P = g.P, p.HW = g.HW, p.KK = g.KK, p.CKK = g.T;
    p.xs = g.xs, p.ys = g.ys;
    p.M = C, p.kbeg = 0;
    for (int rh = 0; rh < s; ++rh) {
      const int Ha = rh < H ? (H - rh + s - 1) / s : 0;
      const int kh0 = (rh + pad) % s;
      const int nkh = kh0 < k ? (k - kh0 + s - 1) / s : 0;
      for (int rw = 0; rw < s; ++rw) {
        const int Wa = rw < W ? (W - rw + s - 1) / s : 0;
        if (Ha == 0 || Wa == 0) continue;  // no dx pixel in this phase
        const int kw0 = (rw + pad) % s;
        const int nkw = kw0 < k ? (k - kw0 + s - 1) / s : 0;
        p.rh = rh, p.rw = rw, p.kh0 = kh0, p.kw0 = kw0;
        p.qh = (rh + pad - kh0) / s, p.qw = (rw + pad - kw0) / s;
        p.nkw = nkw, p.T = nkh * nkw, p.Wa = Wa, p.HaWa = Ha * Wa;
        p.fdHaWa = FastDiv(Ha * Wa), p.fdWa = FastDiv(Wa), p.fdT = FastDiv(p.T);
        p.fdNkw = FastDiv(nkw);
        p.N = N * Ha * Wa;   // <= N*H*W, checked in make_geom
        p.kend = K * p.T;    // <= K*C*k*k, checked; 0 when no tap reaches the phase
        launch_conv_gemm(p, C, p.N, "conv2d_backward");
      }
    }
  }
}

}  // namespace tfe::cuda
