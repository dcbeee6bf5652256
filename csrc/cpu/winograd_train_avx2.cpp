// The training Winograd transforms (winograd_train_transforms.h) compiled for AVX2 (file name
// suffix: see CMakeLists.txt); reached only after run-time detection chose the avx2 GEMM kernel.
#include "winograd_train_internal.h"
#include "winograd_train_transforms.h"

namespace tfe::cpu::detail {

extern const WinogradTrainTransforms kWinogradTrainAvx2 = {wt_input_panel, wt_output_panel};

}  // namespace tfe::cpu::detail
