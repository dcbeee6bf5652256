// CUDA device management, the engine stream, memory and graphs (see cuda_api.h).
// The runtime is linked statically: with no driver or no GPU, cudaGetDeviceCount fails
// cleanly and device_count() reports 0 with the reason, instead of the import failing.
#include <cstdint>
#include <mutex>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/check.cuh"
#include "core/cuda_api.h"

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
      cudaGetLastError();  // clear the error so later calls start clean
    } else if (r.count == 0) {
      r.reason = "no CUDA GPU found";
    }
    return r;
  }();
  return p;
}

constexpr int kMaxDevices = 64;

// Per-device engine state, created on first use of the device.
struct DeviceState {
  cudaStream_t stream = nullptr;
  // Graph bookkeeping (see cuda_api.h): blocks allocated while capturing, blocks owned by
  // a live graph, and pre-capture blocks whose release waits for the capture's end.
  bool capturing = false;
  std::unordered_set<void*> captured_allocs;
  struct Owned {
    void* graph;     // the executable graph that allocates this block at each replay
    bool released;   // its tensor is gone: free it when the graph is destroyed
  };
  std::unordered_map<void*, Owned> graph_owned;
  std::vector<void*> deferred_frees;
};

std::mutex g_mutex;  // guards the states' bookkeeping (frees may come from any thread)
DeviceState g_states[kMaxDevices];
std::once_flag g_init[kMaxDevices];

int current_device() {
  int d = 0;
  TFE_CUDA_CHECK(cudaGetDevice(&d), "cuda.current_device");
  return d;
}

DeviceState& state(int device) {
  std::call_once(g_init[device], [device] {
    int previous = current_device();
    TFE_CUDA_CHECK(cudaSetDevice(device), "cuda.init");
    DeviceState& s = g_states[device];
    TFE_CUDA_CHECK(cudaStreamCreateWithFlags(&s.stream, cudaStreamNonBlocking), "cuda.init");
    // The pool keeps freed memory for reuse instead of returning it at each synchronise.
    cudaMemPool_t pool;
    TFE_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, device), "cuda.init");
    uint64_t keep = UINT64_MAX;
    TFE_CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep),
                   "cuda.init");
    TFE_CUDA_CHECK(cudaSetDevice(previous), "cuda.init");
  });
  return g_states[device];
}
}  // namespace

bool built() { return true; }
int device_count() { return probe().count; }
std::string unavailable_reason() { return probe().reason; }

void require_device(int index, const char* op) {
  if (device_count() == 0)
    throw Error(std::string("[") + op + "] CUDA is not available: " + unavailable_reason());
  if (index < 0 || index >= device_count() || index >= kMaxDevices)
    throw Error(std::string("[") + op + "] no CUDA device " + std::to_string(index) +
                " (found " + std::to_string(device_count()) + ")");
}

void set_device(int index, const char* op) {
  require_device(index, op);
  int d = -1;
  TFE_CUDA_CHECK(cudaGetDevice(&d), op);
  if (d != index) TFE_CUDA_CHECK(cudaSetDevice(index), op);
}

cudaStream_t stream() { return state(current_device()).stream; }

Scratch::Scratch(size_t nbytes, const char* op) {
  TFE_CUDA_CHECK(cudaMallocAsync(&p_, nbytes ? nbytes : 1, stream()), op);
}

Scratch::~Scratch() { cudaFreeAsync(p_, stream()); }

void* malloc(size_t nbytes, int device) {
  set_device(device, "cuda.malloc");
  DeviceState& s = state(device);
  void* p = nullptr;
  if (nbytes == 0) nbytes = 1;  // a valid, unique pointer for empty tensors
  TFE_CUDA_CHECK(cudaMallocAsync(&p, nbytes, s.stream), "cuda.malloc");
  std::lock_guard<std::mutex> lock(g_mutex);
  if (s.capturing) s.captured_allocs.insert(p);
  return p;
}

void free(void* p, int device) noexcept {
  // Called from destructors: never throws; a failure here leaks rather than aborts.
  if (!p || device < 0 || device >= kMaxDevices) return;
  int previous = -1;
  if (cudaGetDevice(&previous) != cudaSuccess) return;
  if (previous != device && cudaSetDevice(device) != cudaSuccess) return;
  DeviceState& s = g_states[device];
  bool release = true;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    auto owned = s.graph_owned.find(p);
    if (owned != s.graph_owned.end()) {
      owned->second.released = true;  // the live graph frees and re-creates it at each
      release = false;                // replay; graph_destroy frees it for good
    } else if (s.capturing) {
      if (s.captured_allocs.erase(p) == 0) {  // allocated before the capture: later
        s.deferred_frees.push_back(p);
        release = false;
      }
    }
  }
  if (release) cudaFreeAsync(p, s.stream);
  if (previous != device) cudaSetDevice(previous);
}

void memcpy(void* dst, const void* src, size_t nbytes, CopyKind kind, int device) {
  set_device(device, "cuda.memcpy");
  cudaMemcpyKind k = kind == CopyKind::host_to_device   ? cudaMemcpyHostToDevice
                     : kind == CopyKind::device_to_host ? cudaMemcpyDeviceToHost
                                                        : cudaMemcpyDeviceToDevice;
  cudaStream_t st = state(device).stream;
  TFE_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, k, st), "cuda.memcpy");
  // Host memory may be pageable and reused by the caller at once: wait for host copies.
  if (kind != CopyKind::device_to_device)
    TFE_CUDA_CHECK(cudaStreamSynchronize(st), "cuda.memcpy");
}

void memset_zero(void* p, size_t nbytes, int device) {
  set_device(device, "cuda.memset");
  TFE_CUDA_CHECK(cudaMemsetAsync(p, 0, nbytes, state(device).stream), "cuda.memset");
}

void synchronize(int device) {
  set_device(device, "cuda.synchronize");
  TFE_CUDA_CHECK(cudaStreamSynchronize(state(device).stream), "cuda.synchronize");
}

void* stream_handle(int device) {
  set_device(device, "cuda.stream");
  return state(device).stream;
}

MemoryStats memory_stats(int device) {
  set_device(device, "cuda.memory_stats");
  cudaMemPool_t pool;
  TFE_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, device), "cuda.memory_stats");
  MemoryStats m;
  TFE_CUDA_CHECK(cudaMemPoolGetAttribute(pool, cudaMemPoolAttrUsedMemCurrent, &m.in_use),
                 "cuda.memory_stats");
  TFE_CUDA_CHECK(cudaMemPoolGetAttribute(pool, cudaMemPoolAttrReservedMemCurrent, &m.reserved),
                 "cuda.memory_stats");
  return m;
}

void empty_cache(int device) {
  synchronize(device);
  cudaMemPool_t pool;
  TFE_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, device), "cuda.empty_cache");
  TFE_CUDA_CHECK(cudaMemPoolTrimTo(pool, 0), "cuda.empty_cache");
  TFE_CUDA_CHECK(cudaDeviceGraphMemTrim(device), "cuda.empty_cache");
}

bool capturing(int device) {
  if (device < 0 || device >= kMaxDevices) return false;
  std::lock_guard<std::mutex> lock(g_mutex);
  return g_states[device].capturing;
}

void capture_begin(int device) {
  set_device(device, "cuda.capture_begin");
  DeviceState& s = state(device);
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    if (s.capturing) throw Error("[cuda.capture_begin] a capture is already running on cuda:" +
                                 std::to_string(device));
    s.capturing = true;
    s.captured_allocs.clear();
  }
  cudaError_t e = cudaStreamBeginCapture(s.stream, cudaStreamCaptureModeThreadLocal);
  if (e != cudaSuccess) {
    std::lock_guard<std::mutex> lock(g_mutex);
    s.capturing = false;
  }
  TFE_CUDA_CHECK(e, "cuda.capture_begin");
}

void* capture_end(int device) {
  set_device(device, "cuda.capture_end");
  DeviceState& s = state(device);
  cudaGraph_t graph = nullptr;
  cudaError_t e = cudaStreamEndCapture(s.stream, &graph);
  std::vector<void*> deferred;
  std::unordered_set<void*> owned;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    s.capturing = false;
    deferred.swap(s.deferred_frees);
    owned.swap(s.captured_allocs);
  }
  for (void* p : deferred) cudaFreeAsync(p, s.stream);
  TFE_CUDA_CHECK(e, "cuda.capture_end");
  cudaGraphExec_t exec = nullptr;
  e = cudaGraphInstantiateWithFlags(&exec, graph, cudaGraphInstantiateFlagAutoFreeOnLaunch);
  cudaGraphDestroy(graph);
  TFE_CUDA_CHECK(e, "cuda.capture_end (instantiate)");
  std::lock_guard<std::mutex> lock(g_mutex);
  for (void* p : owned) s.graph_owned[p] = {exec, false};
  return exec;
}

void graph_replay(void* graph, int device) {
  set_device(device, "cuda.graph_replay");
  TFE_CUDA_CHECK(cudaGraphLaunch(static_cast<cudaGraphExec_t>(graph), state(device).stream),
                 "cuda.graph_replay");
}

void graph_destroy(void* graph) noexcept {
  if (!graph) return;
  // The blocks its last replay allocated stay allocated after the graph is gone: those
  // whose tensors are gone are freed here, the others become ordinary blocks that their
  // tensors free.
  std::lock_guard<std::mutex> lock(g_mutex);
  for (auto& s : g_states)
    for (auto it = s.graph_owned.begin(); it != s.graph_owned.end();) {
      if (it->second.graph != graph) {
        ++it;
        continue;
      }
      if (it->second.released) cudaFreeAsync(it->first, s.stream);
      it = s.graph_owned.erase(it);
    }
  cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(graph));
}

}  // namespace tfe::cuda
