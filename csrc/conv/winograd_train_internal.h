// Internal interface of the training Winograd F(2x2, 3x3) convolution (winograd_train.cpp):
// the entry points that conv2d.cpp calls for its 3x3 stride-1 pad-1 forward, input and
// weight gradient, and the per-ISA transforms (winograd_train_transforms.h compiled
// portable and for AVX2, winograd_train_avx512.cpp with intrinsics; reached only after
// run-time CPU detection chose the matching GEMM kernel).
//
// Tiles: a batch of N maps of H x W is cut into th x tw output tiles of 2 x 2 per image
// (th = ceil(H / 2), tw = ceil(W / 2)), numbered g = n * th * tw + ti * tw + tj over the
// whole batch, so that the small maps (12 x 12: 36 tiles an image) still fill the GEMM's
// register tile. A panel is nr consecutive tiles (nr = the micro-kernel's width), which may
// span images; a run is a piece of a panel within one tile row of one image.
#pragma once

namespace tfe::cpu::detail {

// The transforms of the tiles [g0, g1) (g1 - g0 <= nr) between the dense NCHW maps and the
// panel's 16 GEMM blocks (transform position p = 4 * row + column):
//   input : v[p * vstep + c * nr + (g - g0)] = (B^T d B)[p] for the 4 x 4 input patch d of
//           tile g in channel c of x[N][C][H][W] (rows 2ti - 1 .. 2ti + 2, columns
//           2tj - 1 .. 2tj + 2; outside the map: zero, the padding of 1);
//   output: y[n][k][2ti + a][2tj + b] = bias[k] + (A^T M A)[a][b] from
//           m[p * mstep + k * nr + (g - g0)], for the outputs inside the H x W map only
//           (bias may be null: 0).
// With B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1] and A^T = [1 1 1 0; 0 1 -1 -1], as the
// inference transforms (winograd_transforms.h), in the same order of operations.
struct WinogradTrainTransforms {
  void (*input)(float* v, const float* x, int C, int H, int W, int g0, int g1, int nr,
                long vstep);
  void (*output)(float* y, const float* m, const float* bias, int K, int H, int W, int g0,
                 int g1, int nr, long mstep);
  //   grad  : q[p * qstep + k * ld + (g - g0)] = (A dY A^T)[p] for the 2 x 2 tile dY of tile g
  //           in channel k of dy[N][K][H][W] (outputs outside the map: zero), the weight
  //           gradient's transform of dy (winograd_train.cpp).
  void (*grad)(float* q, const float* dy, int K, int H, int W, int g0, int g1, int ld,
               long qstep);
};

extern const WinogradTrainTransforms kWinogradTrainAvx2;    // winograd_train_avx2.cpp
extern const WinogradTrainTransforms kWinogradTrainAvx512;  // winograd_train_avx512.cpp
// The AVX2 build of the grad transform, which the AVX-512 table uses too.
void winograd_train_grad_avx2(float* q, const float* dy, int K, int H, int W, int g0, int g1,
                              int ld, long qstep);

// Whether conv2d takes the Winograd path for this forward or input gradient (x [N, C, H, W],
// w [K, C, k, k]): k = 3, stride 1, pad 1, and the environment variable TFE_CONV_WINOGRAD
// (read on every call, so that one process can compare both paths): "0" never, "1" or "2"
// always, anything else or unset: where it was measured to pay on the active kernel level
// (winograd_train.cpp). Depends on the shapes, the kernel level and the environment only,
// never on the thread count. For the input gradient, C and K swap roles.
bool winograd_train_applies(int C, int K, int H, int W, int k, int stride, int pad);
// The same for the weight gradient: only when TFE_CONV_WINOGRAD=2 (it does not pay, see
// winograd_train.cpp).
bool winograd_train_dw_applies(int C, int K, int H, int W, int k, int stride, int pad);

// Transformed, packed weights for y[N, K] = conv3x3(x[N, C], w) (winograd_pack's layout);
// transpose_flip: the weights w'[c, o] = flip(w[o, c]) of the input gradient instead
// (dx[N, C] = conv3x3(dy[N, K], w')), so the packed operand is [C] x [K]. Returns a
// per-thread buffer of the calling thread, valid until its next call with the same flag.
const float* winograd_train_pack(const float* w, int K, int C, bool transpose_flip);

// Panels of an N-image batch of H x W maps.
int winograd_train_panels(int N, int H, int W);

// y[N][M][H][W] = conv3x3(x[N][D][H][W], up) + bias (bias may be null), pad 1, for the
// outputs of panels [p0, p1), on the calling thread. Each output is computed by exactly one
// panel in a fixed order, so the result does not depend on how panels are split over threads.
void winograd_train_run(float* y, const float* x, const float* up, const float* bias, int N,
                        int D, int M, int H, int W, int p0, int p1);

// Weight gradient dw[K, C, 3, 3] += sum over the batch of the 3x3 stride-1 pad-1
// correlation of dy[N, K, H, W] with x[N, C, H, W], by Winograd:
//   dw[k, c] += G^T (sum over tiles t of (A dY_t[k] A^T) (.) (B^T d_t[c] B)) G,
// the transpose of the forward's Y = A^T (sum_c (G g G^T) (.) (B^T d B)) A. The tiles are
// cut into chunks of `chunk` tiles (from the shapes alone); slot s (of `slots`, a power of
// two <= 16, also from the shapes) sums a fixed range of chunks into its 16 x K x C partial
// by the dot-product kernel; the partials are added in slot order and transformed back
// (in double). So the bits do not depend on how slots are spread over threads.
struct WinogradDw {
  int N, C, K, H, W;
  int chunk, nchunks, slots;
  long part;  // floats per slot partial: 16 * K * C
};
WinogradDw winograd_dw_plan(int N, int C, int K, int H, int W);
// Slot s's partial part[16][K][C] (assigned) on the calling thread.
void winograd_dw_slot(float* part, const WinogradDw& d, const float* x, const float* dy, int s);
// dw[e] += the finished gradient for the (k, c) pairs e in [e0, e1) of K * C, from the slot
// partials parts[slots][16][K][C].
void winograd_dw_finish(float* dw, const float* parts, const WinogradDw& d, long e0, long e1);

}  // namespace tfe::cpu::detail
