// The entry points of the emulation library that tests/emulated.py loads with ctypes: the
// CPU kernel and the emulated CUDA kernel of every op of csrc/ops/ops.def, as one table of
// {name, cpu, cuda} function pointers expanded from the op table (so no op is named here),
// and what the emulation reports after a call.
//
// Each pointer is a trampoline with the kernel's own signature that catches what the kernel
// throws (a CUDA wrapper's TFE_CUDA_CHECK_LAUNCH after a faulty launch): an exception must
// not unwind through the ctypes frames. Its message waits for tfe_emu_take_report().
#include <exception>
#include <string>

#include "emulate.h"
#include "ops/cpu_kernels.h"
#include "ops/cuda_kernels.h"

namespace {

std::string g_thrown;  // messages of the exceptions caught since the last report

template <auto F>
struct Caught;

template <class... A, void (*F)(A...)>
struct Caught<F> {
  static void call(A... a) noexcept {
    try {
      F(a...);
    } catch (const std::exception& e) {
      g_thrown += std::string(g_thrown.empty() ? "" : "; ") + e.what();
    } catch (...) {
      g_thrown += std::string(g_thrown.empty() ? "" : "; ") + "an exception of unknown type";
    }
  }
};

}  // namespace

extern "C" {

struct TfeEmuOp {
  const char* name;
  void* cpu;   // tfe::cpu::name
  void* cuda;  // tfe::cuda::name, running under emulate.h
};

const TfeEmuOp* tfe_emu_ops(int* count) {
#define TFE_OP(name, ...)                                                  \
  {#name, reinterpret_cast<void*>(&Caught<&tfe::cpu::name>::call),         \
   reinterpret_cast<void*>(&Caught<&tfe::cuda::name>::call)},
  static const TfeEmuOp table[] = {
#include "ops/ops.def"
  };
  *count = static_cast<int>(sizeof table / sizeof table[0]);
  return table;
}

// The device-side counter of the dropout kernels (see ops/cuda_kernels.h).
void tfe_emu_advance_dropout_offset() { Caught<&tfe::cuda::advance_dropout_offset>::call(); }

// The CPU kernels are deterministic for a given thread count; one thread keeps the reference
// cheap on a shared machine.
void tfe_emu_set_cpu_threads(int n) { tfe::cpu::set_num_threads(n); }

long long tfe_emu_launches() { return emu::g_launches; }

// What went wrong since the last report, one line each, or "" if nothing: exceptions the
// kernels threw, the faults the emulation recorded (invalid launches, barrier and warp
// misuse, deadlocks, scratch written out of bounds), and a CUDA error left pending. Reading
// it clears it. The string lives until the next call.
const char* tfe_emu_take_report() {
  static std::string report;
  report.clear();
  if (!g_thrown.empty()) report += "threw: " + g_thrown + "\n";
  g_thrown.clear();
  for (const std::string& f : emu::take_faults()) report += "emulation fault: " + f + "\n";
  if (cudaGetLastError() != cudaSuccess) report += "a CUDA error was left pending\n";
  return report.c_str();
}

}  // extern "C"
