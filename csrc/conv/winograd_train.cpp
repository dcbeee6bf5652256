// Winograd F(2x2, 3x3) for the 3x3 stride-1 pad-1 convolutions of training (conv2d.cpp):
// the forward y[N, K] = conv3x3(x[N, C], w) + b and the input gradient
// dx[N, C] = conv3x3(dy[N, K], w') with w'[c, o] = w[o, c] rotated by 180 degrees (the same
// forward, see conv2d.cpp's header). 2.25 times fewer multiplications than the direct
// implicit GEMM, which already runs near the FMA limit.
//
// Method, as the inference convolution (winograd.cpp), on dense NCHW batches:
//   * weights: U = G g G^T per (output, input) channel pair, computed in double and rounded
//     to float by winograd_pack, packed as 16 [M x D] A-operands of the GEMM micro-kernel;
//   * the batch's 2x2 output tiles are numbered across images (winograd_train_internal.h)
//     and cut into panels of nr tiles (nr = the micro-kernel's width: 48 with AVX-512, so a
//     12x12 map's 36 tiles do not leave a third of the register tile empty);
//   * per panel: the input transform writes V = B^T d B as 16 [D x nr] blocks straight in the
//     micro-kernel's packed-B layout, 16 x ceil(M / MR) micro-kernel calls of depth D give
//     the 16 products M = U V, and the output transform A^T M A adds the bias and stores the
//     outputs that lie inside the map. The panel's V and M (16 (D + M) nr floats, 384 KiB at
//     D = M = 64) stay in L2 between the three phases.
//
// The weight gradient (when forced, see winograd_train_dw_applies) is the transpose:
// dw[k, c] = G^T (sum over tiles of (A dY A^T)[k] (.) (B^T d B)[c]) G; per chunk of tiles the
// input transform above and the dy transform write 16 [C x chunk] and [K x chunk] blocks,
// and the dot-product kernel of conv2d's direct weight gradient adds their 16 products into
// a [16][K][C] partial per slot (a fixed range of chunks); slots are summed in order.
//
// Accuracy: the transforms have entries 0, +-1, +-1/2 (G, in double), so the float32 result
// differs from the direct convolution by a few ulps of the terms' magnitude (measured against
// float64 in tests/test_conv2d.py).
//
// Threads: each output is computed by exactly one panel (one transform, one fixed sequence of
// micro-kernel calls), and no panel reads another's results, so splitting the panels over
// threads in any way gives the same bits; the weight gradient's slots and chunks depend on
// the shapes alone. Which path (Winograd or direct) a convolution takes depends on its
// shapes and the environment only.
#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "conv/conv_infer.h"
#include "conv/winograd.h"
#include "conv/winograd_internal.h"
#include "conv/winograd_train_internal.h"
#include "conv/winograd_train_transforms.h"
#include "gemm/gemm_internal.h"
#include "ops/cpu_kernels.h"

namespace tfe::cpu::detail {
namespace {

thread_local Scratch tls_v, tls_m, tls_up_fwd, tls_up_dx, tls_wflip, tls_dv, tls_dq;

const WinogradTrainTransforms& transforms(const KernelInfo& kr) {
  static const WinogradTrainTransforms portable = {wt_input_panel, wt_output_panel,
                                                   wt_grad_panel};
  if (std::strcmp(kr.name, "avx512") == 0) return kWinogradTrainAvx512;
  if (std::strcmp(kr.name, "avx2") == 0) return kWinogradTrainAvx2;
  return portable;
}

}  // namespace

// TFE_CONV_WINOGRAD=auto: Winograd from 32 input and output channels on. Measured on a shared 2-core
// AVX-512 Xeon, 2 threads, batch 128, direct time / Winograd time, medians of alternating
// runs (benchmarks/winograd_vs_direct.py; ranges over four runs, the weight gradient
// direct in both): forward 1.14-1.27 and forward + backward 1.11-1.27 at 32 -> 32 on 24x24,
// 1.53-1.87 and 1.26-1.38 at 64 -> 64 on 12x12; but forward 0.96-1.11 and forward + backward
// 0.95-1.02 at 16 -> 16 on 48x48, forward 0.59-0.99 for the 1 -> 16 stem: with a GEMM depth
// of 16 or less the transforms (the input's above all, 0.5-1x the products' time) cost as
// much as the products save. The portable kernel level (TFE_GEMM_KERNEL=generic, or a CPU
// without AVX2) is another matter: its implicit-GEMM micro-kernel reads B through the offset
// table without vectorising well, while Winograd's packed-B one does, so there Winograd pays
// from 16 channels on (measured as above: forward 4.6x, backward with dx 1.7x at 16 -> 16 on
// 48x48; the 1 -> 16 stem still 0.93).
static int min_channels(const KernelInfo& kr) {
  return std::strcmp(kr.name, "generic") == 0 ? 16 : 32;
}

// Unset, training stays direct. A whole TFE18 step by Winograd is as accurate against float64
// as the direct one (tests/test_torch_mirrors.py), and it trains ResNet18 4-7 % faster; but
// whole runs with it have so far been compared with their direct twins once per data set
// (results/ckplus48-winograd, results/ferplus-winograd-ab: every difference within the noise
// of a new trajectory, most of them below the direct run). Until several seeds say it costs
// no accuracy, the measured dispatch stays opt-in: TFE_CONV_WINOGRAD=auto.
bool winograd_train_applies(int C, int K, int H, int W, int k, int stride, int pad) {
  if (k != 3 || stride != 1 || pad != 1) return false;
  const char* e = std::getenv("TFE_CONV_WINOGRAD");
  if (!e) return false;
  if (std::strcmp(e, "1") == 0 || std::strcmp(e, "2") == 0) return true;
  return std::strcmp(e, "auto") == 0 && std::min(C, K) >= min_channels(active_kernel());
}

// The weight gradient by Winograd is slower than the direct dot kernel at every ResNet18
// shape (measured as above, backward without dx, three runs: 0.77-0.89 at 16 -> 16 on 48x48,
// 0.75-0.85 at 32 -> 32 on 24x24, 0.64-0.83 at 64 -> 64 on 12x12; chunks of 128 to 2048
// tiles all lose): it transforms both x and dy for 16 products per tile where the direct
// kernel streams the padded input once. So it runs only when forced (TFE_CONV_WINOGRAD=2).
bool winograd_train_dw_applies(int C, int K, int H, int W, int k, int stride, int pad) {
  const char* e = std::getenv("TFE_CONV_WINOGRAD");
  return e && std::strcmp(e, "2") == 0 && winograd_train_applies(C, K, H, W, k, stride, pad);
}

const float* winograd_train_pack(const float* w, int K, int C, bool transpose_flip) {
  if (!transpose_flip) {
    float* up = tls_up_fwd.get(winograd_packed_size(K, C));
    winograd_pack(up, w, K, C);
    return up;
  }
  float* wf = tls_wflip.get((long)C * K * 9);
  for (int c = 0; c < C; ++c)
    for (int o = 0; o < K; ++o)
      for (int t = 0; t < 9; ++t) wf[((long)c * K + o) * 9 + t] = w[((long)o * C + c) * 9 + 8 - t];
  float* up = tls_up_dx.get(winograd_packed_size(C, K));
  winograd_pack(up, wf, C, K);
  return up;
}

int winograd_train_panels(int N, int H, int W) {
  const long tiles = (long)N * ((H + 1) / 2) * ((W + 1) / 2);
  const int nr = active_kernel().nr;
  return (int)((tiles + nr - 1) / nr);
}

void winograd_train_run(float* y, const float* x, const float* up, const float* bias, int N,
                        int D, int M, int H, int W, int p0, int p1) {
  const KernelInfo& kr = active_kernel();
  const WinogradTrainTransforms& tf = transforms(kr);
  const int nr = kr.nr;
  const int ntiles = N * ((H + 1) / 2) * ((W + 1) / 2);
  const long per = conv_infer_packed_size(M, D);
  // The 16 transform positions one cache line more apart than their blocks' size (at D or
  // M = 64 the blocks are 12 KiB, a multiple of 4 KiB: 16 streams into one L1 set).
  const long vstep = (long)D * nr + 16, mstep = (long)M * nr + 16;
  float* v = tls_v.get(16 * vstep);
  float* m = tls_m.get(16 * mstep);
  for (int panel = p0; panel < p1; ++panel) {
    const int g0 = panel * nr, g1 = std::min(g0 + nr, ntiles);
    tf.input(v, x, D, H, W, g0, g1, nr, vstep);
    winograd_panel_products(kr, up, per, v, vstep, m, mstep, D, M, g1 - g0, 0, M);
    tf.output(y, m, bias, M, H, W, g0, g1, nr, mstep);
  }
}

WinogradDw winograd_dw_plan(int N, int C, int K, int H, int W) {
  WinogradDw d;
  d.N = N, d.C = C, d.K = K, d.H = H, d.W = W;
  // Chunks of tiles whose V and Q (16 (C + K) chunk floats) take about 1 MiB, so that both
  // stay in L2 between the transforms and the dot products; a multiple of 16 (the dot
  // kernel's length unit), 64 to 1024 tiles.
  d.chunk = std::max(64, std::min(1024, 16384 / (C + K))) / 16 * 16;
  const long tiles = (long)N * ((H + 1) / 2) * ((W + 1) / 2);
  d.nchunks = (int)((tiles + d.chunk - 1) / d.chunk);
  d.slots = 1;
  while (2 * d.slots <= std::min(d.nchunks, 16)) d.slots *= 2;
  d.part = 16L * K * C;
  return d;
}

void winograd_dw_slot(float* part, const WinogradDw& d, const float* x, const float* dy, int s) {
  const KernelInfo& kr = active_kernel();
  const WinogradTrainTransforms& tf = transforms(kr);
  const int C = d.C, K = d.K, L = d.chunk, DR = kr.dr, DC = kr.dc;
  const int ntiles = d.N * ((d.H + 1) / 2) * ((d.W + 1) / 2);
  // One cache line more than the blocks' size apart (see winograd_train_run).
  const long vstep = (long)C * L + 16, qstep = (long)K * L + 16;
  float* v = tls_dv.get(16 * vstep);
  float* q = tls_dq.get(16 * qstep);
  std::memset(part, 0, sizeof(float) * d.part);
  const float* a[8];
  const float* b[8];
  float out[64];
  const int c0 = (int)((long)s * d.nchunks / d.slots);
  const int c1 = (int)((long)(s + 1) * d.nchunks / d.slots);
  for (int ch = c0; ch < c1; ++ch) {
    const int g0 = ch * L, g1 = std::min(g0 + L, ntiles), n = g1 - g0;
    tf.input(v, x, C, d.H, d.W, g0, g1, L, vstep);
    tf.grad(q, dy, K, d.H, d.W, g0, g1, L, qstep);
    const int len = (n + 15) / 16 * 16;
    if (n < len)  // the dot kernel runs over whole 16s: zero the tail
      for (int p = 0; p < 16; ++p) {
        for (int c = 0; c < C; ++c) std::fill_n(v + p * vstep + (long)c * L + n, len - n, 0.0f);
        for (int k = 0; k < K; ++k) std::fill_n(q + p * qstep + (long)k * L + n, len - n, 0.0f);
      }
    for (int p = 0; p < 16; ++p) {
      const float* vp = v + p * vstep;
      const float* qp = q + p * qstep;
      float* pp = part + (long)p * K * C;
      for (int i0 = 0; i0 < K; i0 += DR)
        for (int j0 = 0; j0 < C; j0 += DC) {
          for (int ii = 0; ii < DR; ++ii) a[ii] = qp + (long)std::min(i0 + ii, K - 1) * L;
          for (int jj = 0; jj < DC; ++jj) b[jj] = vp + (long)std::min(j0 + jj, C - 1) * L;
          kr.dot(len, a, b, out);
          const int ni = std::min(DR, K - i0), nj = std::min(DC, C - j0);
          for (int ii = 0; ii < ni; ++ii)
            for (int jj = 0; jj < nj; ++jj) pp[(long)(i0 + ii) * C + j0 + jj] += out[ii * DC + jj];
        }
    }
  }
}

void winograd_dw_finish(float* dw, const float* parts, const WinogradDw& d, long e0, long e1) {
  // dw = G^T dU G, G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1] (winograd_pack's).
  static const double G[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
  const long KC = (long)d.K * d.C;
  for (long e = e0; e < e1; ++e) {
    double u[16];
    for (int p = 0; p < 16; ++p) {
      float sum = parts[p * KC + e];
      for (int s = 1; s < d.slots; ++s) sum += parts[s * d.part + p * KC + e];
      u[p] = sum;
    }
    for (int a = 0; a < 3; ++a)
      for (int b = 0; b < 3; ++b) {
        double t = 0;
        for (int i = 0; i < 4; ++i)
          for (int j = 0; j < 4; ++j) t += G[i][a] * u[4 * i + j] * G[j][b];
        dw[e * 9 + 3 * a + b] += static_cast<float>(t);
      }
  }
}

}  // namespace tfe::cpu::detail
