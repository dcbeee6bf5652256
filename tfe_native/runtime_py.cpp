// Runtime information and controls: threads, CUDA availability, the GEMM core (exposed for
// tests and benchmarks of its own, since conv2d and linear stand on it).
#include "bindings.h"
#include "gemm/gemm.h"
#include "ops/cpu_kernels.h"
#include "core/cuda_api.h"
#include "ops/dispatch.h"

namespace tfe::binding {

namespace {
using namespace pybind11::literals;

Tensor sgemm(py::object a_, py::object b_, bool trans_a, bool trans_b, double alpha) {
  Args a("sgemm");
  Tensor A = a.tensor(a_, "a", 2), B = a.tensor(b_, "b", 2);
  a.require(!A.device().is_cuda(), "CPU tensors only");
  int64_t M = trans_a ? A.size(1) : A.size(0), K = trans_a ? A.size(0) : A.size(1);
  int64_t Kb = trans_b ? B.size(1) : B.size(0), N = trans_b ? B.size(0) : B.size(1);
  a.require(K == Kb, "inner dimensions differ: op(a) is " + std::to_string(M) + "x" +
                         std::to_string(K) + ", op(b) is " + std::to_string(Kb) + "x" +
                         std::to_string(N));
  Tensor C = a.zeros({M, N});
  py::gil_scoped_release nogil;
  cpu::sgemm(trans_a, trans_b, int(M), int(N), int(K), float(alpha), A.data<float>(),
             int(A.size(1)), B.data<float>(), int(B.size(1)), 0.0f, C.data<float>(), int(N));
  return C;
}

// An instantiated CUDA graph (see cuda_api.h); destroyed with the Python object.
class Graph {
 public:
  Graph(void* exec, int device) : exec_(exec), device_(device) {}
  ~Graph() { cuda::graph_destroy(exec_); }
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;
  void replay() const { cuda::graph_replay(exec_, device_); }
  int device() const { return device_; }

 private:
  void* exec_;
  int device_;
};
}  // namespace

void bind_runtime(py::module_& m) {
  m.def("set_num_threads",
        [](int n) {
          if (n < 1 || n > cpu::kMaxThreads)
            fail("set_num_threads", "n must be between 1 and " +
                                        std::to_string(cpu::kMaxThreads) + ", got " +
                                        std::to_string(n));
          cpu::set_num_threads(n);
        },
        "n"_a, "Threads used by the CPU kernels (default: OMP_NUM_THREADS or all cores)");
  m.def("get_num_threads", &cpu::num_threads);
  m.attr("MAX_NUM_THREADS") = cpu::kMaxThreads;
  m.def("empty_host_cache", &empty_host_cache,
        "Return the host memory kept for reuse by freed tensors to the system");
  m.def("cuda_built", &cuda::built, "True when this build has the CUDA backend");
  m.def("cuda_device_count", &cuda::device_count, "Usable CUDA GPUs (0 without driver/GPU)");
  m.def("cuda_unavailable_reason", &cuda::unavailable_reason);
  m.def("cuda_synchronize",
        [](int device) {
          py::gil_scoped_release nogil;
          cuda::synchronize(device);
        },
        "device"_a = 0);
  m.def("cuda_memory_stats",
        [](int device) {
          cuda::MemoryStats s = cuda::memory_stats(device);
          return py::dict("in_use"_a = s.in_use, "reserved"_a = s.reserved);
        },
        "device"_a = 0, "Bytes held by live tensors and by the caching pool");
  m.def("cuda_empty_cache", &cuda::empty_cache, "device"_a = 0,
        "Returns the pool's unused device memory to the driver");
  m.def("cuda_advance_dropout_offset", &ops::advance_dropout_offset, "device"_a = 0);
  py::class_<Graph>(m, "CudaGraph", "A captured, instantiated CUDA graph")
      .def("replay",
           [](const Graph& g) {
             py::gil_scoped_release nogil;
             g.replay();
           },
           "Enqueues the recorded work on the engine stream (does not wait for it)")
      .def_property_readonly("device", &Graph::device);
  m.def("cuda_capture_begin", &cuda::capture_begin, "device"_a = 0,
        "Starts recording the engine's work on `device` into a CUDA graph");
  m.def("cuda_capture_end",
        [](int device) { return std::make_unique<Graph>(cuda::capture_end(device), device); },
        "device"_a = 0, "Ends the recording: the instantiated CudaGraph");
  m.def("cuda_capturing", &cuda::capturing, "device"_a = 0);
  m.def("gemm_kernel", &cpu::sgemm_kernel_name,
        "The GEMM micro-kernel chosen for this CPU: avx512, avx2 or generic");
  m.def("fma_peak_gflops",
        [](int threads) {
          if (threads < 1) fail("fma_peak_gflops", "threads must be >= 1");
          py::gil_scoped_release nogil;
          return cpu::fma_peak_gflops(threads);
        },
        "threads"_a, "Measured FMA throughput (GFLOP/s) of this machine");
  m.def("sgemm", &sgemm, "a"_a, "b"_a, "trans_a"_a = false, "trans_b"_a = false,
        "alpha"_a = 1.0, "alpha * op(a) @ op(b) with tfe's GEMM core (float32, CPU)");
}

}  // namespace tfe::binding
