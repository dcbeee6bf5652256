// Host emulation of the CUDA subset used by the CUDA kernels of csrc, so the real kernel sources compile
// with a plain C++ compiler and run on the CPU (see README.md).
//
// Execution model. A launch runs its blocks one after another. The threads of a block are
// fibers (ucontext) on the calling OS thread: a fiber runs until it reaches __syncthreads or
// a warp intrinsic, then yields, and a barrier releases its fibers only when every thread it
// is waiting for has arrived. Fibers instead of OS threads make a launch cheap (no kernel
// scheduling, no futex storm on a 2-core machine) and deterministic, so a failure
// reproduces. To still expose missing barriers and order assumptions, the order in which
// fibers are resumed and the order of the blocks change from launch to launch (forward,
// reverse, shuffled): code that reads shared memory another thread writes without a
// barrier in between sees stale data under some of these orders.
//
// Checked here, reported as a fault of the launch (the wrapper's TFE_CUDA_CHECK_LAUNCH then
// throws, and the test of the call also reports the fault): invalid launch configurations and
// parameter blocks over 4 KB (set as the "last error", as the CUDA runtime does),
// __syncthreads reached after some threads of the block returned or a thread returning
// while others wait at one, warp intrinsics whose mask names absent/returned lanes or
// disagrees between lanes, shuffles reading a lane outside the mask, and deadlocks.
//
// Only what the kernels use is provided; anything else fails to compile, which is the
// intended signal (e.g. floating-point atomics, which the kernels must not use).
#pragma once

#include <ucontext.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

// ---- qualifiers --------------------------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
// All fibers of a block share one object: a function-local static. Blocks run one at a time,
// so a static is exactly one block's shared memory (it is not reset between blocks).
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))
#define __launch_bounds__(...)

// ---- vector types and built-in variables ----------------------------------------------------
struct uint3 {
  unsigned x, y, z;
};
struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1) : x(vx), y(vy), z(vz) {}
  constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
};
struct alignas(16) float4 {
  float x, y, z, w;
};
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
struct alignas(8) float2 {
  float x, y;
};
inline float2 make_float2(float x, float y) { return {x, y}; }

// Set by the scheduler before it resumes a fiber (the compiler reloads them after every
// yield, which is an opaque call).
inline uint3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;
constexpr int warpSize = 32;

// ---- runtime API stand-ins -------------------------------------------------------------------
struct CUstream_st;
typedef CUstream_st* cudaStream_t;
enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorLaunchFailure = 719,
};
enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4,
};

namespace emu {
inline cudaError_t g_last_error = cudaSuccess;
// Every fault (launch or in-kernel) since the last take_faults() (exports.cpp, after every call).
inline std::vector<std::string> g_faults;
inline long long g_launches = 0;

inline std::vector<std::string> take_faults() {
  std::vector<std::string> f;
  f.swap(g_faults);
  return f;
}
}  // namespace emu

inline const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument (emulated)";
    case cudaErrorMemoryAllocation: return "out of memory (emulated)";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument (emulated)";
    case cudaErrorLaunchFailure: return "unspecified launch failure (emulated kernel fault)";
  }
  return "unknown error (emulated)";
}
inline cudaError_t cudaGetLastError() {
  const cudaError_t e = emu::g_last_error;
  emu::g_last_error = cudaSuccess;
  return e;
}
inline cudaError_t cudaPeekAtLastError() { return emu::g_last_error; }
// Device memory is host memory; the stream is ignored (launches are synchronous).
inline cudaError_t cudaMallocAsync(void** p, size_t n, cudaStream_t) {
  *p = std::malloc(n ? n : 1);
  return *p ? cudaSuccess : cudaErrorMemoryAllocation;
}
template <class T>
cudaError_t cudaMallocAsync(T** p, size_t n, cudaStream_t s) {
  return cudaMallocAsync(reinterpret_cast<void**>(p), n, s);
}
inline cudaError_t cudaFreeAsync(void* p, cudaStream_t) {
  std::free(p);
  return cudaSuccess;
}
inline cudaError_t cudaMemsetAsync(void* p, int v, size_t n, cudaStream_t = nullptr) {
  std::memset(p, v, n);
  return cudaSuccess;
}
inline cudaError_t cudaMemcpyAsync(void* d, const void* s, size_t n, cudaMemcpyKind,
                                   cudaStream_t = nullptr) {
  std::memmove(d, s, n);
  return cudaSuccess;
}
inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
template <class F>
cudaError_t cudaFuncSetAttribute(F, int, int) {
  return cudaSuccess;
}

// ---- arithmetic intrinsics -------------------------------------------------------------------
// The _rn forms exist so that nvcc does not contract them into FMAs; the volatile store keeps
// the host compiler (run with -ffp-contract=fast to mimic nvcc's default --fmad=true) from
// contracting them either.
inline float __fadd_rn(float a, float b) { volatile float r = a + b; return r; }
inline float __fsub_rn(float a, float b) { volatile float r = a - b; return r; }
inline float __fmul_rn(float a, float b) { volatile float r = a * b; return r; }
inline float __fdiv_rn(float a, float b) { volatile float r = a / b; return r; }
inline double __dadd_rn(double a, double b) { volatile double r = a + b; return r; }
inline double __dsub_rn(double a, double b) { volatile double r = a - b; return r; }
inline double __dmul_rn(double a, double b) { volatile double r = a * b; return r; }
inline double __ddiv_rn(double a, double b) { volatile double r = a / b; return r; }
inline unsigned __umulhi(unsigned a, unsigned b) {
  return static_cast<unsigned>((static_cast<unsigned long long>(a) * b) >> 32);
}
template <class T>
inline T __ldg(const T* p) { return *p; }
// CUDA's overloaded device min/max for the integer types (float: fminf/fmaxf from <cmath>).
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }

// Integer atomics: fibers never interleave inside one call, so plain read-modify-write is
// atomic here.
template <class T>
inline T emu_atomic_min(T* p, T v) { const T o = *p; if (v < o) *p = v; return o; }
template <class T>
inline T emu_atomic_max(T* p, T v) { const T o = *p; if (v > o) *p = v; return o; }
inline int atomicMin(int* p, int v) { return emu_atomic_min(p, v); }
inline unsigned atomicMin(unsigned* p, unsigned v) { return emu_atomic_min(p, v); }
inline long long atomicMin(long long* p, long long v) { return emu_atomic_min(p, v); }
inline int atomicMax(int* p, int v) { return emu_atomic_max(p, v); }
inline unsigned atomicMax(unsigned* p, unsigned v) { return emu_atomic_max(p, v); }
inline long long atomicMax(long long* p, long long v) { return emu_atomic_max(p, v); }
inline int atomicAdd(int* p, int v) { const int o = *p; *p = o + v; return o; }
inline unsigned atomicAdd(unsigned* p, unsigned v) { const unsigned o = *p; *p = o + v; return o; }
inline unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) {
  const unsigned long long o = *p;
  *p = o + v;
  return o;
}

// ---- the fiber scheduler ---------------------------------------------------------------------
namespace emu {

constexpr size_t kStackBytes = 256 * 1024;

struct Fiber {
  ucontext_t ctx;
  char* stack = nullptr;
  uint3 tid{0, 0, 0};
  unsigned linear = 0;
  bool done = false;
  const unsigned* wait_on = nullptr;  // resumed once *wait_on != wait_gen
  unsigned wait_gen = 0;
};

struct Barrier {
  unsigned count = 0, gen = 0;
};

struct WarpState {
  Barrier bar;
  unsigned mask = 0;     // mask of the exchange in progress
  unsigned exists = 0;   // lanes that exist (a partial last warp has fewer)
  unsigned alive = 0;    // lanes that have not returned
  uint64_t slot[32] = {};
};

struct Grid {
  ucontext_t sched;
  std::vector<Fiber> fibers;
  std::vector<WarpState> warps;
  Barrier block_bar;
  unsigned nthreads = 0, exited = 0;
  bool abort = false;
  Fiber* cur = nullptr;
  void (*body)(void*) = nullptr;
  void* body_arg = nullptr;
  std::string kernel;
};
inline Grid g;

inline std::string where() {
  char buf[160];
  std::snprintf(buf, sizeof buf, " [launch at %s, block (%u,%u,%u), thread (%u,%u,%u)]",
                g.kernel.c_str(), blockIdx.x, blockIdx.y, blockIdx.z, threadIdx.x,
                threadIdx.y, threadIdx.z);
  return buf;
}

// Records a fault and abandons the launch: the fiber never resumes (its stack is reused).
[[noreturn]] inline void fault(const std::string& what) {
  g_faults.push_back(what + where());
  g_last_error = cudaErrorLaunchFailure;
  g.abort = true;
  Fiber* f = g.cur;
  for (;;) swapcontext(&f->ctx, &g.sched);
}

inline void wait(const unsigned* gen_ptr, unsigned gen) {
  Fiber* f = g.cur;
  f->wait_on = gen_ptr;
  f->wait_gen = gen;
  swapcontext(&f->ctx, &g.sched);
}

inline void arrive(Barrier& b, unsigned expected) {
  const unsigned gen = b.gen;
  if (++b.count == expected) {
    b.count = 0;
    ++b.gen;
    return;
  }
  wait(&b.gen, gen);
}

inline void block_barrier() {
  if (g.exited)
    fault("__syncthreads reached after " + std::to_string(g.exited) +
          " thread(s) of the block returned");
  arrive(g.block_bar, g.nthreads);
}

inline void fiber_entry() {
  g.body(g.body_arg);
  Fiber* f = g.cur;
  f->done = true;
  ++g.exited;
  WarpState& w = g.warps[f->linear / 32];
  w.alive &= ~(1u << (f->linear % 32));
  if (g.block_bar.count)
    fault("thread returned while " + std::to_string(g.block_bar.count) +
          " thread(s) wait at __syncthreads");
  if (w.bar.count && (w.mask >> (f->linear % 32) & 1u))
    fault("thread returned while its warp waits for it in a warp intrinsic");
  // returning resumes uc_link, the scheduler
}

// Warp exchange: every lane of `mask` publishes `mine`; returns the value of lane `src`
// (a lane in the mask). Two barriers: one before the reads, one before the slots may be
// overwritten by the next exchange.
inline uint64_t exchange(unsigned mask, uint64_t mine, int src) {
  Fiber* f = g.cur;
  const unsigned lane = f->linear % 32;
  WarpState& w = g.warps[f->linear / 32];
  if (!(mask >> lane & 1u)) fault("warp intrinsic called by a lane outside its mask");
  if (mask & ~w.exists) fault("warp intrinsic mask names lanes that do not exist");
  if (mask & ~w.alive) fault("warp intrinsic mask names lanes that have returned");
  if (w.bar.count == 0)
    w.mask = mask;
  else if (w.mask != mask)
    fault("lanes of a warp call a warp intrinsic with different masks");
  w.slot[lane] = mine;
  const unsigned n = static_cast<unsigned>(__builtin_popcount(mask));
  arrive(w.bar, n);
  if (src < 0 || src > 31 || !(mask >> src & 1u))
    fault("shuffle reads lane " + std::to_string(src) + ", outside the mask");
  const uint64_t r = w.slot[src];
  if (w.bar.count == 0) w.mask = mask;
  arrive(w.bar, n);
  return r;
}

inline unsigned lane_id() { return g.cur->linear % 32; }

template <class T>
inline uint64_t to_bits(T v) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>, "shuffle of a <= 8-byte value");
  uint64_t b = 0;
  std::memcpy(&b, &v, sizeof(T));
  return b;
}
template <class T>
inline T from_bits(uint64_t b) {
  T v;
  std::memcpy(&v, &b, sizeof(T));
  return v;
}

inline std::vector<char*>& stacks() {
  static std::vector<char*> s;
  return s;
}

// Resume order of the fibers / blocks for launch number `launch`: forward, reverse, shuffled.
inline std::vector<unsigned> order(unsigned n, long long launch, unsigned salt) {
  std::vector<unsigned> p(n);
  for (unsigned i = 0; i < n; ++i) p[i] = i;
  const int mode = static_cast<int>(launch % 3);
  if (mode == 1) std::reverse(p.begin(), p.end());
  if (mode == 2) {
    std::mt19937 r(static_cast<unsigned>(launch) * 2654435761u + salt);
    std::shuffle(p.begin(), p.end(), r);
  }
  return p;
}

inline void run_block(const std::vector<unsigned>& perm) {
  const dim3 b = blockDim;
  for (unsigned i = 0; i < g.nthreads; ++i) {
    Fiber& f = g.fibers[i];
    f.tid = {i % b.x, (i / b.x) % b.y, i / (b.x * b.y)};
    f.linear = i;
    f.done = false;
    f.wait_on = nullptr;
    getcontext(&f.ctx);
    f.ctx.uc_stack.ss_sp = f.stack;
    f.ctx.uc_stack.ss_size = kStackBytes;
    f.ctx.uc_link = &g.sched;
    makecontext(&f.ctx, fiber_entry, 0);
  }
  g.block_bar = Barrier{};
  g.exited = 0;
  const unsigned nwarps = (g.nthreads + 31) / 32;
  g.warps.assign(nwarps, WarpState{});
  for (unsigned w = 0; w < nwarps; ++w) {
    const unsigned lanes = std::min(32u, g.nthreads - 32 * w);
    g.warps[w].exists = g.warps[w].alive = lanes == 32 ? ~0u : (1u << lanes) - 1u;
  }
  for (;;) {
    bool progress = false, pending = false;
    for (unsigned i : perm) {
      Fiber& f = g.fibers[i];
      if (f.done) continue;
      if (f.wait_on && *f.wait_on == f.wait_gen) {
        pending = true;
        continue;
      }
      f.wait_on = nullptr;
      g.cur = &f;
      threadIdx = f.tid;
      swapcontext(&g.sched, &f.ctx);
      if (g.abort) return;
      progress = true;
      if (!f.done) pending = true;
    }
    if (!pending) return;
    if (!progress) {
      g_faults.push_back("deadlock: every live thread waits at a barrier that cannot complete"
                         " [launch at " + g.kernel + "]");
      g_last_error = cudaErrorLaunchFailure;
      g.abort = true;
      return;
    }
  }
}

inline bool valid_config(dim3 gr, dim3 bl) {
  const unsigned long long nt = 1ull * bl.x * bl.y * bl.z;
  return nt >= 1 && nt <= 1024 && bl.x <= 1024 && bl.y <= 1024 && bl.z <= 64 && gr.x >= 1 &&
         gr.x <= 2147483647u && gr.y >= 1 && gr.y <= 65535 && gr.z >= 1 && gr.z <= 65535;
}

inline void run_grid(dim3 gr, dim3 bl, const char* name) {
  ++g_launches;
  g.kernel = name;
  g.abort = false;
  g.nthreads = bl.x * bl.y * bl.z;
  auto& st = stacks();
  while (st.size() < g.nthreads) st.push_back(static_cast<char*>(std::malloc(kStackBytes)));
  g.fibers.resize(std::max<size_t>(g.fibers.size(), g.nthreads));
  for (unsigned i = 0; i < g.nthreads; ++i) g.fibers[i].stack = st[i];
  gridDim = gr;
  blockDim = bl;
  const std::vector<unsigned> perm = order(g.nthreads, g_launches, 1);
  const unsigned long long nblocks = 1ull * gr.x * gr.y * gr.z;
  // Emulated grids are small (the tests' shapes); a shuffled order of a huge grid would
  // only cost memory, so shuffle at most the first million blocks' worth.
  const std::vector<unsigned> bperm =
      order(static_cast<unsigned>(std::min<unsigned long long>(nblocks, 1u << 20)), g_launches, 2);
  for (unsigned long long base = 0; base < nblocks; base += bperm.size()) {
    for (unsigned k : bperm) {
      const unsigned long long lin = base + k;
      if (lin >= nblocks) continue;
      blockIdx = {static_cast<unsigned>(lin % gr.x), static_cast<unsigned>(lin / gr.x % gr.y),
                  static_cast<unsigned>(lin / (1ull * gr.x * gr.y))};
      run_block(perm);
      if (g.abort) return;
    }
  }
}

// ---- launches ------------------------------------------------------------------------------
// convert.py rewrites   kernel<<<grid, block, smem, stream>>>(args...)
// into                  kernel + ::emu::LaunchCfg("file.cu:line", grid, block, smem, stream)(args...)
// so the kernel expression (a template-id included) stays as written: LaunchCfg(...)(args)
// evaluates the arguments once, on the host, and `+` launches with the kernel's function
// pointer, converting the arguments to its parameter types as a launch does.
template <class... A>
struct Bound;

struct LaunchCfg {
  const char* where;  // "file.cu:line" of the launch
  dim3 grid, block;
  size_t smem;
  LaunchCfg(const char* w, dim3 gr, dim3 bl, size_t sm = 0, cudaStream_t = nullptr)
      : where(w), grid(gr), block(bl), smem(sm) {}
  template <class... A>
  Bound<std::decay_t<A>...> operator()(A&&... a) const;
};

template <class... A>
struct Bound {
  LaunchCfg cfg;
  std::tuple<A...> args;
};

template <class... A>
Bound<std::decay_t<A>...> LaunchCfg::operator()(A&&... a) const {
  return {*this, std::tuple<std::decay_t<A>...>(std::forward<A>(a)...)};
}

template <class... P>
constexpr size_t param_bytes() {
  size_t off = 0;
  ((off = (off + alignof(P) - 1) / alignof(P) * alignof(P) + sizeof(P)), ...);
  return off;
}

template <class... P, class... A, size_t... I>
void launch(void (*k)(P...), const Bound<A...>& b, std::index_sequence<I...>) {
  static_assert(sizeof...(P) == sizeof...(A), "kernel launched with a wrong argument count");
  if (!valid_config(b.cfg.grid, b.cfg.block)) {
    g_last_error = cudaErrorInvalidConfiguration;
    char buf[200];
    std::snprintf(buf, sizeof buf, "%s: invalid launch configuration grid (%u,%u,%u) block (%u,%u,%u)",
                  b.cfg.where, b.cfg.grid.x, b.cfg.grid.y, b.cfg.grid.z, b.cfg.block.x, b.cfg.block.y,
                  b.cfg.block.z);
    g_faults.push_back(buf);
    return;
  }
  if (b.cfg.smem > 48 * 1024) {
    g_last_error = cudaErrorInvalidValue;
    g_faults.push_back(std::string(b.cfg.where) + ": dynamic shared memory over 48 KB");
    return;
  }
  if (param_bytes<P...>() > 4096) {
    g_last_error = cudaErrorInvalidValue;
    g_faults.push_back(std::string(b.cfg.where) + ": kernel parameters exceed 4 KB: " +
                       std::to_string(param_bytes<P...>()));
    return;
  }
  struct Ctx {
    void (*k)(P...);
    const std::tuple<A...>* args;
  } ctx{k, &b.args};
  g.body = [](void* p) {
    const Ctx* c = static_cast<const Ctx*>(p);
    c->k(std::get<I>(*c->args)...);
  };
  g.body_arg = &ctx;
  run_grid(b.cfg.grid, b.cfg.block, b.cfg.where);
}

template <class... P, class... A>
void operator+(void (*k)(P...), const Bound<A...>& b) {
  launch(k, b, std::index_sequence_for<A...>{});
}

}  // namespace emu

// ---- barriers and warp intrinsics ----------------------------------------------------------
inline void __syncthreads() { emu::block_barrier(); }

inline void __syncwarp(unsigned mask = 0xffffffffu) {
  emu::exchange(mask, 0, static_cast<int>(emu::lane_id()));
}

template <class T>
inline T __shfl_sync(unsigned mask, T v, int src, int width = 32) {
  const int lane = static_cast<int>(emu::lane_id());
  const int s = lane / width * width + (src % width);
  return emu::from_bits<T>(emu::exchange(mask, emu::to_bits(v), s));
}
template <class T>
inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  const int lane = static_cast<int>(emu::lane_id());
  const int s = lane % width + static_cast<int>(delta) < width ? lane + static_cast<int>(delta) : lane;
  return emu::from_bits<T>(emu::exchange(mask, emu::to_bits(v), s));
}
template <class T>
inline T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  const int lane = static_cast<int>(emu::lane_id());
  const int s = lane % width >= static_cast<int>(delta) ? lane - static_cast<int>(delta) : lane;
  return emu::from_bits<T>(emu::exchange(mask, emu::to_bits(v), s));
}
template <class T>
inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
  const int lane = static_cast<int>(emu::lane_id());
  int s = lane ^ lane_mask;
  if (s >= (lane / width + 1) * width) s = lane;
  return emu::from_bits<T>(emu::exchange(mask, emu::to_bits(v), s));
}
inline unsigned __ballot_sync(unsigned mask, int pred) {
  // Each lane publishes its predicate; the ballot is read from every lane of the mask.
  const int lane = static_cast<int>(emu::lane_id());
  unsigned r = 0;
  for (int l = 0; l < 32; ++l)
    if (mask >> l & 1u) r |= (emu::exchange(mask, pred != 0, l) ? 1u : 0u) << l;
  (void)lane;
  return r;
}
