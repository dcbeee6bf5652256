// The CUDA side of the engine as the rest of it sees it: device management, memory and the
// kernels built so far. Implemented by runtime.cu and <op>.cu when tfe is built with CUDA,
// and by no_cuda.cpp (which reports "built without CUDA") otherwise, so no other file
// needs #ifdef TFE_CUDA.
//
// Every CUDA call and kernel launch is checked; failures throw tfe::Error naming the op.
// `stream` is a cudaStream_t passed as void* so this header needs no CUDA headers.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace tfe::cuda {

bool built();                      // true when compiled with the CUDA backend
int device_count();                // 0 when there is no usable driver or GPU; never throws
std::string unavailable_reason();  // why device_count() is 0 ("" when it is not)
void require_device(int index, const char* op);  // throws tfe::Error with a clear message

void* malloc(size_t nbytes, int device);
void free(void* p, int device) noexcept;
enum class CopyKind { host_to_device, device_to_host, device_to_device };
void memcpy(void* dst, const void* src, size_t nbytes, CopyKind kind);
void memset_zero(void* p, size_t nbytes);
void synchronize(int device);

// ---- kernels (one file per op stem: relu.cu, ...) -------------------------------------------
void relu_forward(float* y, const float* x, int64_t n, void* stream);
void relu_backward(float* dx, const float* dy, const float* y, int64_t n, void* stream);

}  // namespace tfe::cuda
