// The CUDA side of the engine as the rest of it sees it: device management, memory, CUDA
// graphs. Implemented by runtime.cu when tfe is built with CUDA, and by no_cuda.cpp (which
// reports "built without CUDA") otherwise. The kernels themselves are declared in
// ops/cuda_kernels.h (called from dispatch.cpp only).
//
// Every CUDA call is checked; failures throw tfe::Error naming the op.
//
// Memory: device tensors come from CUDA's stream-ordered pool (cudaMallocAsync) with its
// release threshold raised to "never", i.e. a caching allocator: after the first training
// step no call reaches the driver's allocator. Allocation and free are ordered on the
// engine stream of the device, so a freed block is reused only by later work.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace tfe::cuda {

bool built();                      // true when compiled with the CUDA backend
int device_count();                // 0 when there is no usable driver or GPU; never throws
std::string unavailable_reason();  // why device_count() is 0 ("" when it is not)
void require_device(int index, const char* op);  // throws tfe::Error with a clear message
void set_device(int index, const char* op);      // require_device + make it current

void* malloc(size_t nbytes, int device);
void free(void* p, int device) noexcept;
enum class CopyKind { host_to_device, device_to_host, device_to_device };
// Ordered on the engine stream; returns when a device-to-host copy has landed.
void memcpy(void* dst, const void* src, size_t nbytes, CopyKind kind, int device);
void memset_zero(void* p, size_t nbytes, int device);
void synchronize(int device);
// The engine stream of `device` (a cudaStream_t), for DLPack exchange with other libraries.
void* stream_handle(int device);

struct MemoryStats {
  uint64_t in_use = 0;    // bytes held by live tensors
  uint64_t reserved = 0;  // bytes the pool holds from the driver
};
MemoryStats memory_stats(int device);
void empty_cache(int device);  // returns unused pool memory to the driver

// ---- CUDA graphs ------------------------------------------------------------------------
// capture_begin .. capture_end records every engine call on the device's stream (thread
// local mode: other threads may keep using CUDA). Blocks allocated during the capture
// belong to the graph: a later replay reuses the same addresses, so tensors created in the
// capture (the step's loss, gradients) are valid after each replay until the next one.
// Blocks from before the capture that are released during it are freed after capture_end.
void capture_begin(int device);
void* capture_end(int device);  // an executable graph handle
void graph_replay(void* graph, int device);
void graph_destroy(void* graph) noexcept;
bool capturing(int device);

}  // namespace tfe::cuda
