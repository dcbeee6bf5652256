// Stand-ins for the CUDA backend in a CPU-only build (TFE_CUDA=OFF or no nvcc): the engine
// links and runs, tfe.cuda.is_available() is False, and any attempt to use a GPU says why.
#include <string>

#include "core/cuda_api.h"
#include "core/tensor.h"

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
void set_device(int, const char* op) { not_built(op); }
void* malloc(size_t, int) { not_built("cuda.malloc"); }
void free(void*, int) noexcept {}
void memcpy(void*, const void*, size_t, CopyKind, int) { not_built("cuda.memcpy"); }
void memset_zero(void*, size_t, int) { not_built("cuda.memset"); }
void synchronize(int) { not_built("cuda.synchronize"); }
void* stream_handle(int) { not_built("cuda.stream"); }
MemoryStats memory_stats(int) { not_built("cuda.memory_stats"); }
void empty_cache(int) { not_built("cuda.empty_cache"); }
void capture_begin(int) { not_built("cuda.capture_begin"); }
void* capture_end(int) { not_built("cuda.capture_end"); }
void graph_replay(void*, int) { not_built("cuda.graph_replay"); }
void graph_destroy(void*) noexcept {}
bool capturing(int) { return false; }

}  // namespace tfe::cuda
