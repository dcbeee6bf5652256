// Stand-in for the CUDA runtime header: csrc/core/check.cuh includes <cuda_runtime.h>, and
// this directory comes first on the emulation build's include path, so the real check.cuh
// (stream(), Scratch, TFE_CUDA_CHECK_LAUNCH) is used unchanged on top of the emulation.
#pragma once
#include "../emulate.h"
