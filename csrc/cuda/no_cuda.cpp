// Stand-ins for the CUDA backend in a CPU-only build (TFE_CUDA=OFF or no nvcc): the engine
// links and runs, tfe.cuda.is_available() is False, and any attempt to use a GPU says why.
#include <string>

#include "cuda/cuda_api.h"
#include "tensor.h"

namespace tfe::cuda {

namespace {
[[noreturn]] void not_built(const char* op) {
  throw Error(std::string("[") + op +
              "] tfe was built without CUDA (rebuild where nvcc is found, or with TFE_CUDA=ON)");
}
}  // namespace

bool built() { return false; }
int device_count() { return 0; }
std::string unavailable_reason() { return "tfe was built without CUDA"; }
void require_device(int, const char* op) { not_built(op); }
void* malloc(size_t, int) { not_built("cuda.malloc"); }
void free(void*, int) noexcept {}
void memcpy(void*, const void*, size_t, CopyKind) { not_built("cuda.memcpy"); }
void memset_zero(void*, size_t) { not_built("cuda.memset"); }
void synchronize(int) { not_built("cuda.synchronize"); }
void relu_forward(float*, const float*, int64_t, void*) { not_built("relu_forward"); }
void relu_backward(float*, const float*, const float*, int64_t, void*) {
  not_built("relu_backward");
}

}  // namespace tfe::cuda
