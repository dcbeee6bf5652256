// 2-D convolution, NCHW, square kernel (contract in kernels.h):
//   forward   y[n,o,oh,ow] = b[o] + sum_{c,kh,kw} w[o,c,kh,kw] * x[n,c,oh*s-p+kh,ow*s-p+kw]
//   backward  dw += sum_n dY[n] col(x[n])^T,  db += sum dy,  dx = conv^T(dy, w)
//
// Method: implicit GEMM on a "phase-split" padded copy of each input image, so that im2col
// is never materialised and the GEMM's B operand is never packed.
//   The padded image xp[c, r, q] (zero border p) is stored as s*s phase planes
//   X[c, r%s, q%s][r/s, q/s] of size Hq x Wq (Hq = ceil((H+2p)/s)). Then the input under
//   tap t = (c, kh, kw) for output pixel (oh, ow) is
//     X[c, kh%s, kw%s][oh + kh/s, ow + kw/s] = X_flat[off[t] + oh*Wq + ow],
//   a pure shift: with output pixels indexed in the "extended" row-major layout l = oh*Wq+ow
//   (Wq >= Wo, the extra Wq-Wo columns per row are computed and discarded), row t of the
//   im2col matrix is the contiguous vector X_flat + off[t]. So
//   * forward: Yext[K, Ho*Wq] = Wpacked[K, CKK] * B with B row t = X_flat + off[t]: the
//     micro-kernel (ukr_off, MR x NR register tile) loads its B rows straight from the image
//     (L1/L2 resident) via the offset table; Yext is then compacted into y (+ bias). The
//     discarded columns cost (Wq-Wo)/Wq: 2 % at 48x48 pad 1, 4 % at 24x24, 8 % at 12x12
//     (stride 1 rows share their padding, see make_implicit).
//   * weight gradient: dw[o, t] += sum_l dYext[o, l] * X_flat[off[t] + l], with dYext = dy
//     scattered into the extended layout with zeros in the discarded columns: a dot-product
//     tile kernel (DR x DC accumulators, both operands contiguous in l), no transposition.
//   * input gradient, stride 1 (pad <= k-1): dx is the forward convolution of dy with the
//     transposed, flipped kernel w'[c, o, kh, kw] = w[o, c, k-1-kh, k-1-kw] and padding
//     k-1-pad, so it reuses the forward path. Stride > 1: by output phase (StridedDx).
// Weights are packed once per call (MR-row panels), not per image.
// 3x3 stride-1 pad-1 convolutions can take Winograd F(2x2, 3x3) instead (winograd_train.cpp:
// 2.25x fewer multiplications) for the forward and the input gradient: TFE_CONV_WINOGRAD=auto
// where it was measured to pay, =1 for every such layer, =2 for the weight gradient too;
// unset or =0, the direct path (unset is opt-in for now: see winograd_train_applies).
//
// Threads: forward and dx are split over groups of images (or, with fewer images than
// threads in the forward, over the pixel tiles of each image); every output element is
// computed by one thread in a fixed order. The weight gradient is a sum over the batch: it is
// accumulated in a fixed number of partial sums ("slots", each a contiguous range of image
// groups, chosen from the shapes alone), the slots are shared among the threads, then reduced
// in slot order. Group size and slots never depend on the thread count, so dw/db are bitwise
// identical for any number of threads (and no atomics are used anywhere).
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "gemm/gemm.h"
#include "gemm/gemm_internal.h"
#include "ops/cpu_kernels.h"
#include "conv/winograd_train_internal.h"

namespace tfe::cpu {
namespace {

using detail::KernelInfo;
using detail::Scratch;

inline int ceil_div(int a, int b) { return (a + b - 1) / b; }
inline int round_up(int a, int b) { return ceil_div(a, b) * b; }

// Geometry of one implicit-GEMM convolution input for a group of G images (see the header
// comment). Buffer layout [c][phase][image][Hq][Wq]: images of a group sit next to each other
// in every (channel, phase), so output column l = n*plane + oh*Wq + ow of image n is again a
// pure shift of X_flat, and one GEMM / one long dot product covers the whole group. Small
// maps thus still give long rows (fewer partial tiles, fewer horizontal sums).
struct Implicit {
  int Cin, Hin, Win, k, s, p;
  int Ho, Wo;         // true output size
  int Hq, Wq, plane;  // phase plane
  int U;              // used phases per axis: min(k, s)
  int G;              // images per group
  int T;              // taps Cin*k*k
  int ldy;            // row stride of Yext: ntile(G) * NR
  long buf;           // floats of the phase buffer including zeroed slack for over-reads
  std::vector<int> off;
  int lext(int g) const { return (g - 1) * plane + Ho * Wq; }  // extended output columns
  int ntile(int g, int nr) const { return ceil_div(lext(g), nr); }
  int ld(int g) const { return round_up(lext(g), 16); }  // dot length (zero tail)
};

Implicit make_implicit(int Cin, int Hin, int Win, int k, int s, int p, int G, int nr) {
  Implicit g;
  g.Cin = Cin, g.Hin = Hin, g.Win = Win, g.k = k, g.s = s, g.p = p, g.G = G;
  const int Hp = Hin + 2 * p, Wp = Win + 2 * p;
  g.Ho = (Hp - k) / s + 1;
  g.Wo = (Wp - k) / s + 1;
  // Stride 1: neighbouring rows (and images) share their zero padding: the right pad of a
  // row is read from the next row's left pad, the bottom pad of an image from the next
  // image's top pad (or the zeroed slack), so a row needs only Win + p slots. This cuts the
  // discarded extended columns, e.g. 12x12 maps: 13/12 x 13/12 instead of 14/12 x 14/12.
  const bool share = s == 1 && p <= k - 1;
  g.Hq = share ? Hin + p : ceil_div(Hp, s);
  g.Wq = share ? Win + p : ceil_div(Wp, s);
  g.plane = g.Hq * g.Wq;
  g.U = std::min(k, s);  // phases (kh % s) that some tap uses; the others are never stored
  g.T = Cin * k * k;
  g.off.resize(g.T);
  int max_off = 0;
  for (int c = 0, t = 0; c < Cin; ++c)
    for (int kh = 0; kh < k; ++kh)
      for (int kw = 0; kw < k; ++kw, ++t) {
        g.off[t] = ((c * g.U + kh % s) * g.U + kw % s) * G * g.plane + (kh / s) * g.Wq + kw / s;
        max_off = std::max(max_off, g.off[t]);
      }
  g.ldy = g.ntile(G, nr) * nr;
  const long data = (long)Cin * g.U * g.U * G * g.plane;
  g.buf = std::max(data, (long)max_off + std::max(g.ldy, g.ld(G))) + 16;
  return g;
}

// Images per group: enough columns (~1024+) to amortise tile edges and horizontal sums,
// a phase buffer that stays L2-sized, and at least `min_groups` groups (one per thread in the
// forward; kDwSlots in the backward, whose sums must not depend on the thread count).
int choose_group(int N, int min_groups, int Cin, int Hin, int Win, int k, int s, int p) {
  const bool share = s == 1 && p <= k - 1;  // as in make_implicit
  const int Hq = share ? Hin + p : ceil_div(Hin + 2 * p, s);
  const int Wq = share ? Win + p : ceil_div(Win + 2 * p, s);
  const long per_image = (long)Cin * std::min(k, s) * std::min(k, s) * Hq * Wq;
  int G = ceil_div(1024, Hq * Wq);
  G = std::min<long>(G, std::max<long>(1, 262144 / per_image));
  G = std::min(G, ceil_div(N, min_groups));
  return std::max(G, 1);
}

// X_flat from gact images src[n][Cin][Hin][Win] (image stride Cin*Hin*Win): zero border,
// phase split (used phases only); unused group slots and the slack zeroed so that over-reads see zeros.
void fill_phase(const Implicit& g, const float* src, int gact, float* dst) {
  const int s = g.s, p = g.p, Hin = g.Hin, Win = g.Win, Wq = g.Wq;
  const long img = (long)g.Cin * Hin * Win;
  float* d = dst;
  for (int c = 0; c < g.Cin; ++c)
    for (int ph = 0; ph < g.U; ++ph)
      for (int pw = 0; pw < g.U; ++pw) {
        // Columns j whose source q = j*s + pw - p lies inside the row.
        const int jlo = std::min(Wq, std::max(0, ceil_div(p - pw, s)));
        const int jhi = std::max(jlo, std::min(Wq, ceil_div(Win + p - pw, s)));
        for (int n = 0; n < g.G; ++n) {
          if (n >= gact) {
            std::memset(d, 0, sizeof(float) * g.plane);
            d += g.plane;
            continue;
          }
          const float* sc = src + n * img + (long)c * Hin * Win;
          for (int i = 0; i < g.Hq; ++i, d += Wq) {
            const int r = i * s + ph - p;
            if (r < 0 || r >= Hin) {
              std::memset(d, 0, sizeof(float) * Wq);
              continue;
            }
            const float* row = sc + (long)r * Win + (jlo * s + pw - p);
            for (int j = 0; j < jlo; ++j) d[j] = 0.0f;
            if (s == 1) {
              std::memcpy(d + jlo, row, sizeof(float) * (jhi - jlo));
            } else if (s == 2) {  // constant stride: vectorisable
              for (int j = 0; j < jhi - jlo; ++j) d[jlo + j] = row[2 * j];
            } else {
              for (int j = 0; j < jhi - jlo; ++j) d[jlo + j] = row[j * s];
            }
            for (int j = jhi; j < Wq; ++j) d[j] = 0.0f;
          }
        }
      }
  const long data = d - dst;
  std::memset(d, 0, sizeof(float) * (g.buf - data));
}

// Yext[M][ldy] tiles [t0, t1) = Wpacked[M][T] * B, B row t = base + off[t] (+ tile column).
// Tile-outer order: the tile's B rows (a few KiB of the image) stay in L1 for all M panels.
void run_tiles(const KernelInfo& kr, int T, const int* off, const float* base, const float* wp,
               int M, float* yext, int ldy, int t0, int t1) {
  const int np = ceil_div(M, kr.mr);
  const long panel = (long)kr.mr * T;
  for (int tile = t0; tile < t1; ++tile) {
    const float* b = base + (long)tile * kr.nr;
    for (int mp = 0; mp < np; ++mp)
      kr.ukr_off(T, wp + mp * panel, b, off, yext + (long)mp * kr.mr * ldy + (long)tile * kr.nr,
                 ldy, nullptr, kr.mr);
  }
}

void implicit_tiles(const KernelInfo& kr, const Implicit& g, const float* xph, const float* wp,
                    int M, float* yext, int t0, int t1) {
  run_tiles(kr, g.T, g.off.data(), xph, wp, M, yext, g.ldy, t0, t1);
}

// Row mode (one image per group, Wo a multiple of NR, e.g. the 48-wide maps): tiles are
// NR-pixel pieces of output rows that the micro-kernel stores straight into y[M][Ho*Wo]
// with the bias, so there is no Yext and no compaction pass.
bool row_mode(const Implicit& g, int nr) { return g.G == 1 && g.Wo % nr == 0; }
int row_tiles(const Implicit& g, int nr) { return g.Ho * (g.Wo / nr); }

void row_tiles_run(const KernelInfo& kr, const Implicit& g, const float* xph, const float* wp,
                   int M, const float* bias, float* y, int t0, int t1) {
  const int per_row = g.Wo / kr.nr, P = g.Ho * g.Wo, np = ceil_div(M, kr.mr);
  const long panel = (long)kr.mr * g.T;
  for (int tile = t0; tile < t1; ++tile) {
    const int oh = tile / per_row, j = (tile % per_row) * kr.nr;
    const float* b = xph + (long)oh * g.Wq + j;
    for (int mp = 0; mp < np; ++mp) {
      const int i0 = mp * kr.mr;
      kr.ukr_off(g.T, wp + mp * panel, b, g.off.data(), y + (long)i0 * P + oh * g.Wo + j, P,
                 bias ? bias + i0 : nullptr, std::min(kr.mr, M - i0));
    }
  }
}

// y[n][c0..c1)[Ho*Wo] (n < gact, y at the group's first image, M channels) = Yext + bias.
void compact(const Implicit& g, const float* yext, const float* bias, int M, int gact, float* y,
             int c0, int c1) {
  const int Ho = g.Ho, Wo = g.Wo, Wq = g.Wq;
  for (int n = 0; n < gact; ++n)
    for (int i = c0; i < c1; ++i) {
      const float bi = bias ? bias[i] : 0.0f;
      const float* src = yext + (long)i * g.ldy + (long)n * g.plane;
      float* dst = y + ((long)n * M + i) * Ho * Wo;
      for (int oh = 0; oh < Ho; ++oh)
        for (int ow = 0; ow < Wo; ++ow) dst[oh * Wo + ow] = src[oh * Wq + ow] + bi;
    }
}

// Sum of n floats in 16 explicit lanes (vectorisable without reassociation, fixed order).
float sum_lanes(const float* v, int n) {
  float lane[16] = {};
  int i = 0;
  for (; i + 16 <= n; i += 16)
    for (int l = 0; l < 16; ++l) lane[l] += v[i + l];
  float s = 0.0f;
  for (; i < n; ++i) s += v[i];
  for (int l = 0; l < 16; ++l) s += lane[l];
  return s;
}

// dy of gact images [n][K][Ho*Wo] -> dYext[K][ld] (zeros in discarded columns and tail);
// db[K] += row sums of dy on the way (db may be null).
void extend_dy(const Implicit& g, const float* dy, int K, int gact, float* dyext, float* db) {
  const int Ho = g.Ho, Wo = g.Wo, Wq = g.Wq, ld = g.ld(gact);
  for (int i = 0; i < K; ++i) {
    float* dst = dyext + (long)i * ld;
    std::memset(dst, 0, sizeof(float) * ld);
    for (int n = 0; n < gact; ++n) {
      const float* src = dy + ((long)n * K + i) * Ho * Wo;
      for (int oh = 0; oh < Ho; ++oh)
        std::memcpy(dst + n * g.plane + oh * Wq, src + oh * Wo, sizeof(float) * Wo);
      if (db) db[i] += sum_lanes(src, Ho * Wo);
    }
  }
}

// Dot length per pass: long enough to amortise the DR*DC horizontal sums (measured: 512 is
// ~15 % slower, 1536-2560 equal), short enough to keep the DR dYext rows near L1.
constexpr int kDotChunk = 1536;

// dw[K][T] += dYext * X_flat-rows^T over dot tiles [j0, j1) (tile = ib * nj + jb).
void dw_tiles(const KernelInfo& kr, const Implicit& g, const float* xph, const float* dyext,
              int K, int gact, float* dw, int j0, int j1) {
  const int DR = kr.dr, DC = kr.dc, T = g.T, ld = g.ld(gact);
  const int nj = ceil_div(T, DC);
  const int nch = ceil_div(ld, kDotChunk);  // chunks keep DR rows of dYext in L1
  const int LC = round_up(ceil_div(ld, nch), 16);
  const float* a[8];
  const float* b[8];
  float out[64];
  for (int l0 = 0; l0 < ld; l0 += LC) {
    const int len = std::min(LC, ld - l0);
    for (int tile = j0; tile < j1; ++tile) {
      const int i0 = (tile / nj) * DR, t0 = (tile % nj) * DC;
      for (int ii = 0; ii < DR; ++ii) a[ii] = dyext + (long)std::min(i0 + ii, K - 1) * ld + l0;
      for (int jj = 0; jj < DC; ++jj) b[jj] = xph + g.off[std::min(t0 + jj, T - 1)] + l0;
      kr.dot(len, a, b, out);
      const int ni = std::min(DR, K - i0), nt = std::min(DC, T - t0);
      for (int ii = 0; ii < ni; ++ii)
        for (int jj = 0; jj < nt; ++jj) dw[(long)(i0 + ii) * T + t0 + jj] += out[ii * DC + jj];
    }
  }
}

// Input gradient for stride s > 1 by output phase (sub-pixel decomposition): for
// ih = s*a + rh, only taps with kh = rh + p (mod s) reach dx, from dy row a + e(kh),
// e(kh) = (rh + p - kh) / s. So each of the s*s phases of dx is a stride-1 correlation of a
// zero-padded dy (top/left pad Pt) with a sub-kernel, i.e. the same implicit GEMM as the
// forward, with its own tap offsets and packed weights; no FLOPs are wasted on zeros and no
// col2im scatter-add is needed. Phases no tap reaches (k < s) are zero.
struct StridedDx {
  struct Phase {
    int rh, rw, Ha, Wa, T;
    std::vector<int> off;
    long wofs;  // offset of the phase's packed weights
  };
  int K, Ho, Wo, Pt, Hd, Wd, plane, G, ldy;
  long buf, wsize;
  std::vector<Phase> ph;
  int ntile(const Phase& f, int g, int nr) const {
    return ceil_div((g - 1) * plane + f.Ha * Wd, nr);
  }
};

StridedDx make_strided_dx(const KernelInfo& kr, const float* w, int C, int H, int W, int K,
                          int k, int s, int p, int Ho, int Wo, int G, Scratch& wbuf,
                          std::vector<float>& tmp) {
  StridedDx d;
  d.K = K, d.Ho = Ho, d.Wo = Wo, d.G = G;
  auto hits = [&](int r, int kh) { return ((r + p - kh) % s + s) % s == 0; };
  // Pass 1: padding and padded size.
  int emin = 0, hneed = Ho, wneed = Wo;
  for (int r = 0; r < s; ++r)
    for (int kh = 0; kh < k; ++kh)
      if (hits(r, kh)) emin = std::min(emin, (r + p - kh) / s);
  d.Pt = -emin;
  for (int r = 0; r < s; ++r) {
    const int Ha = r < H ? ceil_div(H - r, s) : 0, Wa = r < W ? ceil_div(W - r, s) : 0;
    for (int kh = 0; kh < k; ++kh) {
      if (!hits(r, kh)) continue;
      const int e = (r + p - kh) / s;
      hneed = std::max(hneed, Ha + e);
      wneed = std::max(wneed, Wa + e);
    }
  }
  d.Hd = d.Pt + hneed;
  d.Wd = d.Pt + wneed;
  d.plane = d.Hd * d.Wd;
  // Pass 2: phases, offsets, packed weights.
  d.ldy = 0;
  d.wsize = 0;
  int max_off = 0;
  for (int rh = 0; rh < s; ++rh)
    for (int rw = 0; rw < s; ++rw) {
      StridedDx::Phase f;
      f.rh = rh, f.rw = rw;
      f.Ha = rh < H ? ceil_div(H - rh, s) : 0;
      f.Wa = rw < W ? ceil_div(W - rw, s) : 0;
      for (int o = 0; o < K; ++o)
        for (int kh = 0; kh < k; ++kh)
          for (int kw = 0; kw < k; ++kw)
            if (hits(rh, kh) && hits(rw, kw)) {
              const int o2 = o * G * d.plane + ((rh + p - kh) / s + d.Pt) * d.Wd +
                             (rw + p - kw) / s + d.Pt;
              f.off.push_back(o2);
              max_off = std::max(max_off, o2);
            }
      f.T = (int)f.off.size();
      f.wofs = d.wsize;
      d.wsize += (long)round_up(C, kr.mr) * f.T;
      if (f.T > 0 && f.Ha > 0 && f.Wa > 0) d.ldy = std::max(d.ldy, d.ntile(f, G, kr.nr) * kr.nr);
      d.ph.push_back(std::move(f));
    }
  d.buf = std::max((long)K * G * d.plane, (long)max_off + d.ldy) + 16;
  float* wp = wbuf.get(std::max(d.wsize, 1L));
  for (const auto& f : d.ph) {
    if (f.T == 0) continue;
    tmp.assign((size_t)C * f.T, 0.0f);
    for (int c = 0; c < C; ++c) {
      int t = 0;
      for (int o = 0; o < K; ++o)
        for (int kh = 0; kh < k; ++kh)
          for (int kw = 0; kw < k; ++kw)
            if (hits(f.rh, kh) && hits(f.rw, kw))
              tmp[(size_t)c * f.T + t++] = w[(((long)o * C + c) * k + kh) * k + kw];
    }
    detail::pack_a(kr, false, C, f.T, 1.0f, tmp.data(), f.T, wp + f.wofs);
  }
  return d;
}

// dx of a group of gact images (dy at the group's first image, dx likewise).
void strided_dx_group(const KernelInfo& kr, const StridedDx& d, const float* wp, int C, int H,
                      int W, int s, const float* dy, int gact, float* dx, float* dyp,
                      float* yext) {
  const long ys = (long)d.K * d.Ho * d.Wo;
  float* q = dyp;
  for (int o = 0; o < d.K; ++o)
    for (int n = 0; n < d.G; ++n, q += d.plane) {
      std::memset(q, 0, sizeof(float) * d.plane);
      if (n >= gact) continue;
      const float* src = dy + n * ys + (long)o * d.Ho * d.Wo;
      for (int r = 0; r < d.Ho; ++r)
        std::memcpy(q + (r + d.Pt) * d.Wd + d.Pt, src + r * d.Wo, sizeof(float) * d.Wo);
    }
  std::memset(q, 0, sizeof(float) * (d.buf - (q - dyp)));
  for (const auto& f : d.ph) {
    if (f.Ha == 0 || f.Wa == 0) continue;
    const bool zero = f.T == 0;
    if (!zero) {
      run_tiles(kr, f.T, f.off.data(), dyp, wp + f.wofs, C, yext, d.ldy, 0,
                d.ntile(f, gact, kr.nr));
    }
    for (int n = 0; n < gact; ++n)
      for (int c = 0; c < C; ++c) {
        const float* src = yext + (long)c * d.ldy + (long)n * d.plane;
        float* dst = dx + ((long)n * C + c) * H * W;
        for (int a = 0; a < f.Ha; ++a) {
          float* drow = dst + (long)(a * s + f.rh) * W + f.rw;
          const float* srow = src + a * d.Wd;
          for (int b = 0; b < f.Wa; ++b) drow[b * s] = zero ? 0.0f : srow[b];
        }
      }
  }
}

// Partial sums of the weight gradient: at most kDwSlots, a power of two (so 2 or 4 threads
// share them evenly), never more than there are groups. Partials are K*T + K floats each.
constexpr int kDwSlots = 16;
int dw_slots(int ngroups) {
  int s = 1;
  while (2 * s <= std::min(ngroups, kDwSlots)) s *= 2;
  return s;
}

// Per-thread working buffers.
thread_local Scratch tls_xph, tls_yext, tls_dyext, tls_dyph, tls_dxext;
// Per-call buffers owned by the calling thread and shared (read-only or partitioned) by the team.
thread_local Scratch tls_wpack, tls_wtpack, tls_wt, tls_part, tls_wino_part, tls_sh_x, tls_sh_y;
thread_local std::vector<float> tls_wtmp;

// One group of `gact` images on the calling thread: copy src into the padded/phase layout,
// then either write output rows straight into dst (rows mode) or compute the extended tiles
// and compact them. Serves the forward (x -> y) and the stride-1 dx (dy -> dx) alike.
void group_conv(const KernelInfo& kr, const Implicit& g, const float* src, int gact,
                const float* wp, int M, const float* bias, float* dst, bool rows,
                Scratch& phase, Scratch& ext, long ext_size) {
  float* ph = phase.get(g.buf);
  fill_phase(g, src, gact, ph);
  if (rows) {
    row_tiles_run(kr, g, ph, wp, M, bias, dst, 0, row_tiles(g, kr.nr));
  } else {
    float* e = ext.get(ext_size);
    implicit_tiles(kr, g, ph, wp, M, e, 0, g.ntile(gact, kr.nr));
    compact(g, e, bias, M, gact, dst, 0, M);
  }
}

float* packed_weights(const KernelInfo& kr, const float* w, int K, int T) {
  float* wp = tls_wpack.get((long)round_up(K, kr.mr) * T);
  detail::pack_a(kr, false, K, T, 1.0f, w, T, wp);
  return wp;
}

}  // namespace

void conv2d_forward(float* y, const float* x, const float* w, const float* b, int N, int C, int H,
                    int W, int K, int k, int stride, int pad) {
  const KernelInfo& kr = detail::active_kernel();
  const int nt = omp_in_parallel() ? 1 : num_threads();
  if (detail::winograd_train_applies(C, K, H, W, k, stride, pad)) {
    const float* up = detail::winograd_train_pack(w, K, C, false);
    const int np = detail::winograd_train_panels(N, H, W);
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
      const int tid = omp_get_thread_num(), nth = omp_get_num_threads();
      detail::winograd_train_run(y, x, up, b, N, C, K, H, W, (int)((long)np * tid / nth),
                                 (int)((long)np * (tid + 1) / nth));
    }
    return;
  }
  const bool by_group = N >= nt;
  const int Wo = (W + 2 * pad - k) / stride + 1;
  const int G = by_group && Wo % kr.nr != 0 ? choose_group(N, nt, C, H, W, k, stride, pad) : 1;
  const Implicit g = make_implicit(C, H, W, k, stride, pad, G, kr.nr);
  const bool rows = row_mode(g, kr.nr);
  const float* wp = packed_weights(kr, w, K, g.T);
  const long xs = (long)C * H * W, ys = (long)K * g.Ho * g.Wo;
  const long yext_size = rows ? 1 : (long)round_up(K, kr.mr) * g.ldy;
  if (by_group) {
    const int ngroups = ceil_div(N, G);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int gi = 0; gi < ngroups; ++gi) {
      const int n0 = gi * G, gact = std::min(G, N - n0);
      group_conv(kr, g, x + n0 * xs, gact, wp, K, b, y + n0 * ys, rows, tls_xph, tls_yext,
                 yext_size);
    }
    return;
  }
  float* xph = tls_sh_x.get(g.buf);
  float* yext = tls_sh_y.get(yext_size);
  const int ntile = rows ? row_tiles(g, kr.nr) : g.ntile(1, kr.nr);
  for (int n = 0; n < N; ++n) {
    fill_phase(g, x + n * xs, 1, xph);
#pragma omp parallel num_threads(nt)
    {
      const int tid = omp_get_thread_num(), nth = omp_get_num_threads();
      const int t0 = ntile * tid / nth, t1 = ntile * (tid + 1) / nth;
      if (rows) {
        row_tiles_run(kr, g, xph, wp, K, b, y + n * ys, t0, t1);
      } else {
        implicit_tiles(kr, g, xph, wp, K, yext, t0, t1);
#pragma omp barrier
        compact(g, yext, b, K, 1, y + n * ys, K * tid / nth, K * (tid + 1) / nth);
      }
    }
  }
}

void conv2d_backward(float* dx, float* dw_out, float* db, const float* dy, const float* x,
                     const float* w, int N, int C, int H, int W, int K, int k, int stride,
                     int pad) {
  const KernelInfo& kr = detail::active_kernel();
  // Weight gradient by Winograd (3x3, stride 1, pad 1: winograd_train.cpp), or below by the
  // dot kernel (dw: the direct path's target, null when Winograd computes it).
  const bool dw_wino = dw_out && detail::winograd_train_dw_applies(C, K, H, W, k, stride, pad);
  float* dw = dw_wino ? nullptr : dw_out;
  detail::WinogradDw wd{};
  float* wparts = nullptr;
  if (dw_wino) {
    wd = detail::winograd_dw_plan(N, C, K, H, W);
    wparts = tls_wino_part.get(wd.part * wd.slots);
  }
  const int nt = omp_in_parallel() ? 1 : num_threads();
  const int G = choose_group(N, kDwSlots, C, H, W, k, stride, pad);
  const Implicit g = make_implicit(C, H, W, k, stride, pad, G, kr.nr);
  const int T = g.T, Ho = g.Ho, Wo = g.Wo, P = Ho * Wo;
  const long xs = (long)C * H * W, ys = (long)K * P;
  const int ndot = ceil_div(K, kr.dr) * ceil_div(T, kr.dc);

  // dx path: stride 1 as a forward convolution of dy with the flipped, transposed kernel,
  // by Winograd (3x3, pad 1: winograd_train.cpp) or the implicit GEMM.
  const bool dx_wino = dx && detail::winograd_train_applies(K, C, Ho, Wo, k, stride, pad);
  const float* wup = dx_wino ? detail::winograd_train_pack(w, K, C, true) : nullptr;
  const int dx_panels = dx_wino ? detail::winograd_train_panels(N, H, W) : 0;
  const bool dx_implicit = dx && !dx_wino && stride == 1 && pad <= k - 1;
  Implicit gd;
  const float* wtp = nullptr;
  if (dx_implicit) {
    gd = make_implicit(K, Ho, Wo, k, 1, k - 1 - pad, G, kr.nr);
    const int Tt = K * k * k;
    float* wt = tls_wt.get((long)C * Tt);
    for (int c = 0; c < C; ++c)
      for (int o = 0; o < K; ++o)
        for (int kh = 0; kh < k; ++kh)
          for (int kw = 0; kw < k; ++kw)
            wt[(long)c * Tt + (o * k + kh) * k + kw] =
                w[(((long)o * C + c) * k + (k - 1 - kh)) * k + (k - 1 - kw)];
    float* p = tls_wtpack.get((long)round_up(C, kr.mr) * Tt);
    detail::pack_a(kr, false, C, Tt, 1.0f, wt, Tt, p);
    wtp = p;
  }
  long dxext_size = dx_implicit ? (long)round_up(C, kr.mr) * gd.ldy : 0;
  const bool dx_rows = dx_implicit && row_mode(gd, kr.nr);
  const bool dx_strided = dx && !dx_wino && !dx_implicit;
  StridedDx sd;
  const float* sdw = nullptr;  // packed phase weights (the caller's buffer, shared by the team)
  if (dx_strided) {
    sd = make_strided_dx(kr, w, C, H, W, K, k, stride, pad, Ho, Wo, G, tls_wtpack, tls_wtmp);
    sdw = tls_wtpack.p;
    dxext_size = (long)round_up(C, kr.mr) * sd.ldy;
  }

  const int ngroups = ceil_div(N, G);
  const int slots = dw_slots(ngroups);
  const long psz = (long)K * T + K;
  float* part = (dw || db) ? tls_part.get(psz * slots) : nullptr;
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    // Weight and bias gradient: slot s sums the groups [s*ngroups/slots, (s+1)*ngroups/slots).
    if (dw || db) {
#pragma omp for schedule(static) nowait
      for (int s = 0; s < slots; ++s) {
        float* pw = part + s * psz;
        float* pb = pw + (long)K * T;
        std::memset(pw, 0, sizeof(float) * psz);
        for (int gi = (int)((long)s * ngroups / slots); gi < (int)((long)(s + 1) * ngroups / slots);
             ++gi) {
          const int n0 = gi * G, gact = std::min(G, N - n0);
          const float* dyn = dy + n0 * ys;
          if (dw) {
            float* xph = tls_xph.get(g.buf);
            float* dyext = tls_dyext.get((long)K * g.ld(G));
            fill_phase(g, x + n0 * xs, gact, xph);
            extend_dy(g, dyn, K, gact, dyext, db ? pb : nullptr);
            dw_tiles(kr, g, xph, dyext, K, gact, pw, 0, ndot);
          } else {
            for (int n = 0; n < gact; ++n)
              for (int i = 0; i < K; ++i) pb[i] += sum_lanes(dyn + n * ys + (long)i * P, P);
          }
        }
      }
    }
    if (dw_wino) {
#pragma omp for schedule(static) nowait
      for (int s = 0; s < wd.slots; ++s)
        detail::winograd_dw_slot(wparts + s * wd.part, wd, x, dy, s);
    }
    // Input gradient: every panel or group on its own (no reduction).
    if (dx_wino) {
#pragma omp for schedule(static) nowait
      for (int pi = 0; pi < dx_panels; ++pi)
        detail::winograd_train_run(dx, dy, wup, nullptr, N, K, C, H, W, pi, pi + 1);
    } else if (dx) {
#pragma omp for schedule(static) nowait
      for (int gi = 0; gi < ngroups; ++gi) {
        const int n0 = gi * G, gact = std::min(G, N - n0);
        const float* dyn = dy + n0 * ys;
        if (dx_implicit) {
          group_conv(kr, gd, dyn, gact, wtp, C, nullptr, dx + n0 * xs, dx_rows, tls_dyph,
                     tls_dxext, dxext_size);
        } else {
          strided_dx_group(kr, sd, sdw, C, H, W, stride, dyn, gact, dx + n0 * xs,
                           tls_dyph.get(sd.buf), tls_dxext.get(dxext_size));
        }
      }
    }
#pragma omp barrier
    // (all partials are complete) Reduce them in slot order.
    if (dw_wino) {
      const long KC = (long)K * C;
#pragma omp for schedule(static) nowait
      for (long e = 0; e < KC; e += 64)
        detail::winograd_dw_finish(dw_out, wparts, wd, e, std::min(e + 64, KC));
    }
    if (dw) {
#pragma omp for schedule(static) nowait
      for (long e = 0; e < (long)K * T; ++e) {
        float s = part[e];
        for (int t = 1; t < slots; ++t) s += part[t * psz + e];
        dw[e] += s;
      }
    }
    if (db) {
#pragma omp single nowait
      for (int i = 0; i < K; ++i) {
        float s = part[(long)K * T + i];
        for (int t = 1; t < slots; ++t) s += part[t * psz + (long)K * T + i];
        db[i] += s;
      }
    }
  }
}

}  // namespace tfe::cpu
