// CUDA kernels of the tfe engine: the same raw-pointer interface, argument order and
// semantics as the CPU kernels (both declared from the op table csrc/ops/ops.def), with
// every pointer in device memory of the current device.
//
// GPU-specific rules:
//  * every kernel is enqueued on tfe::cuda::stream() (check.cuh) and returns without
//    synchronising; host-side scalars (loss values) stay on the device;
//  * no allocation with cudaMalloc inside a kernel wrapper: scratch space comes from
//    tfe::cuda::Scratch (check.cuh), the caching allocator, so a captured CUDA graph
//    replays without host work;
//  * every launch is checked with TFE_CUDA_CHECK_LAUNCH("<op>");
//  * reductions (parameter gradients, batch statistics, the loss) run in a fixed order
//    (per-block partial sums, then one ordered pass; no floating-point atomics), so the
//    same inputs give the same bits run after run, as on the CPU;
//  * dropout draws the counter-based hash of cpu/dropout.cpp: the mask is bit-identical to
//    the CPU's for the same seed (outside CUDA graphs; see advance_dropout_offset).
#pragma once
#include <cstdint>

namespace tfe::cuda {

// The kernels of the op table (csrc/ops/ops.def, whose comments are the specification).
#define TFE_OP(name, kernel_params, ...) void name kernel_params;
#include "ops/ops.def"

// A captured graph replays its launch arguments, so a seed passed from the host would give
// the same mask every replay. The kernels therefore draw with seed + offset, where offset
// is a device-side counter that is 0 unless this call, captured at the start of a graph,
// advances it by one per replay (eager results stay bit-identical to the CPU).
void advance_dropout_offset();

}  // namespace tfe::cuda
