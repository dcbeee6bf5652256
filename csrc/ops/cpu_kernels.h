// CPU kernels of the tfe engine: the raw-pointer interface every op implements.
//
// Conventions (see ../../README.md, "Engine conventions"):
//  * float32, contiguous, NCHW activations; weights of conv2d are [K, C, k, k] (OIHW),
//    of linear [out, in] (as PyTorch stores them).
//  * argument order: outputs, const inputs, sizes, hyper-parameters.
//  * parameter gradients ACCUMULATE (+=) into their buffers; activation gradients ASSIGN (=).
//  * a nullable pointer (marked "or nullptr") skips that output or input.
//  * kernels trust their inputs: shapes and pointers are validated once, at the binding.
//  * kernels parallelise with OpenMP and honour tfe::cpu::num_threads() (core/threads.h).
//  * results do not depend on the thread count: every reduction (over the batch, a channel,
//    a GEMM's K) is split in a way fixed by the shapes alone and summed in a fixed order, so
//    the same inputs give the same bits run after run, on any number of threads.
#pragma once
#include <cstdint>

#include "core/threads.h"

namespace tfe::cpu {

// ---- the training ops: declared from the op table (csrc/ops/ops.def, whose comments specify
// each kernel) ---------------------------------------------------------------------------
#define TFE_OP(name, kernel_params, ...) void name kernel_params;
#include "ops/ops.def"

// Element i of dropout_forward is kept iff dropout_uniform(seed, i) >= p (the CUDA kernels
// draw the same hash): a pure function of (seed, i), so the mask does not depend on the
// thread count or the device.
float dropout_uniform(uint64_t seed, uint64_t i);

}  // namespace tfe::cpu
