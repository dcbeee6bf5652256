// The Winograd transforms (winograd_transforms.h) compiled for AVX2 (file name suffix: see
// CMakeLists.txt); reached only after run-time detection chose the avx2 GEMM kernel.
#include "conv/winograd_internal.h"
#include "conv/winograd_transforms.h"

namespace tfe::cpu::detail {

extern const WinogradTransforms kWinogradAvx2 = {wino_input_panel, wino_output_panel};

}  // namespace tfe::cpu::detail
