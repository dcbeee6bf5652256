// The engine runtime pieces the kernel wrappers need (declared in csrc/core/check.cuh), for
// the host emulation: there is one "stream" (launches run synchronously), and scratch memory
// is host memory filled with 0xFF bytes (NaN as float or double, -1 as an integer), so a
// kernel that reads scratch it never wrote produces NaNs the comparison catches. Guard
// bytes on both sides are checked when the scratch is released: a write out of bounds is
// reported as a fault of the op.
#include <cstdlib>
#include <cstring>
#include <string>

#include "core/check.cuh"

namespace tfe::cuda {
namespace {
constexpr size_t kGuard = 64;  // bytes on each side; keeps the data 16-byte aligned
constexpr unsigned char kGuardByte = 0xA5;

struct ScratchHeader {
  size_t nbytes;
  const char* op;
};
}  // namespace

cudaStream_t stream() { return nullptr; }

Scratch::Scratch(size_t nbytes, const char* op) {
  unsigned char* base = static_cast<unsigned char*>(std::malloc(nbytes + 2 * kGuard));
  if (!base) throw Error(std::string("[") + op + "] emulated scratch allocation failed");
  std::memset(base, kGuardByte, nbytes + 2 * kGuard);
  const ScratchHeader h{nbytes, op};
  std::memcpy(base, &h, sizeof h);
  std::memset(base + kGuard, 0xFF, nbytes);
  p_ = base + kGuard;
}

Scratch::~Scratch() {
  unsigned char* base = static_cast<unsigned char*>(p_) - kGuard;
  ScratchHeader h;
  std::memcpy(&h, base, sizeof h);
  bool ok = true;
  for (size_t i = sizeof h; i < kGuard; ++i) ok = ok && base[i] == kGuardByte;
  for (size_t i = 0; i < kGuard; ++i) ok = ok && base[kGuard + h.nbytes + i] == kGuardByte;
  if (!ok)
    emu::g_faults.push_back(std::string(h.op) + ": scratch memory written out of bounds (" +
                            std::to_string(h.nbytes) + " bytes allocated)");
  std::free(base);
}

}  // namespace tfe::cuda
