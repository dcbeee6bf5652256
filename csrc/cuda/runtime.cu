// CUDA device management and memory for the engine (see cuda_api.h).
// The runtime is linked statically: with no driver or no GPU, cudaGetDeviceCount fails
// cleanly and device_count() reports 0 with the reason, instead of the import failing.
#include <mutex>

#include "check.cuh"
#include "cuda/cuda_api.h"

namespace tfe::cuda {

namespace {
struct Probe {
  int count = 0;
  std::string reason;
};
const Probe& probe() {
  static Probe p = [] {
    Probe r;
    cudaError_t e = cudaGetDeviceCount(&r.count);
    if (e != cudaSuccess) {
      r.count = 0;
      r.reason = std::string("no usable CUDA driver/GPU: ") + cudaGetErrorString(e);
      cudaGetLastError();  // clear the sticky-free error so later calls start clean
    } else if (r.count == 0) {
      r.reason = "no CUDA GPU found";
    }
    return r;
  }();
  return p;
}
}  // namespace

bool built() { return true; }
int device_count() { return probe().count; }
std::string unavailable_reason() { return probe().reason; }

void require_device(int index, const char* op) {
  if (device_count() == 0)
    throw Error(std::string("[") + op + "] CUDA is not available: " + unavailable_reason());
  if (index < 0 || index >= device_count())
    throw Error(std::string("[") + op + "] no CUDA device " + std::to_string(index) +
                " (found " + std::to_string(device_count()) + ")");
}

void* malloc(size_t nbytes, int device) {
  require_device(device, "cuda.malloc");
  TFE_CUDA_CHECK(cudaSetDevice(device), "cuda.malloc");
  void* p = nullptr;
  if (nbytes == 0) nbytes = 1;  // a valid, unique pointer for empty tensors
  TFE_CUDA_CHECK(cudaMalloc(&p, nbytes), "cuda.malloc");
  return p;
}

void free(void* p, int device) noexcept {
  // Called from destructors: never throws; a failure here leaks rather than aborts.
  if (p && cudaSetDevice(device) == cudaSuccess) cudaFree(p);
}

void memcpy(void* dst, const void* src, size_t nbytes, CopyKind kind) {
  cudaMemcpyKind k = kind == CopyKind::host_to_device   ? cudaMemcpyHostToDevice
                     : kind == CopyKind::device_to_host ? cudaMemcpyDeviceToHost
                                                        : cudaMemcpyDeviceToDevice;
  TFE_CUDA_CHECK(cudaMemcpy(dst, src, nbytes, k), "cuda.memcpy");
}

void memset_zero(void* p, size_t nbytes) {
  TFE_CUDA_CHECK(cudaMemset(p, 0, nbytes), "cuda.memset");
}

void synchronize(int device) {
  require_device(device, "cuda.synchronize");
  TFE_CUDA_CHECK(cudaSetDevice(device), "cuda.synchronize");
  TFE_CUDA_CHECK(cudaDeviceSynchronize(), "cuda.synchronize");
}

}  // namespace tfe::cuda
