// The training Winograd transforms (winograd_train_transforms.h) compiled for AVX2 (file name
// suffix: see CMakeLists.txt); reached only after run-time detection chose the avx2 GEMM kernel.
#include "conv/winograd_train_internal.h"
#include "conv/winograd_train_transforms.h"

namespace tfe::cpu::detail {

void winograd_train_grad_avx2(float* q, const float* dy, int K, int H, int W, int g0, int g1,
                              int ld, long qstep) {
  wt_grad_panel(q, dy, K, H, W, g0, g1, ld, qstep);
}

extern const WinogradTrainTransforms kWinogradTrainAvx2 = {wt_input_panel, wt_output_panel,
                                                         winograd_train_grad_avx2};

}  // namespace tfe::cpu::detail
