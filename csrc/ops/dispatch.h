// The one place that switches on the device: each op takes already-validated tensors
// (outputs first, then inputs, then hyper-parameters; an undefined Tensor means "absent"),
// derives the sizes from their shapes and calls the CPU or the CUDA kernel.
// Shapes, dtypes and devices are checked by the caller (the Python binding); an op
// without a kernel for the tensors' device throws tfe::Error naming the op.
#pragma once
#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace tfe::ops {

// tfe::ops::name(tensor_params) for every entry of the op table.
#define TFE_OP(name, kernel_params, tensor_params, ...) void name tensor_params;
#include "ops/ops.def"

// CUDA graphs: advances the device's dropout counter (see ops/cuda_kernels.h).
void advance_dropout_offset(int cuda_device);

}  // namespace tfe::ops
