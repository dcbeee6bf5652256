// The thread count of the CPU kernels: process-wide, set once (tfe.set_num_threads,
// tfe_set_num_threads) and passed by every kernel to its OpenMP regions (threads.cpp).
#pragma once

namespace tfe::cpu {

// At most kMaxThreads: more than the hardware threads of any current machine (two 192-core
// sockets with SMT give 768), and each one is an OS thread with its own stack, so OpenMP
// asked for 100000 fails to create them and crashes. Callers refuse larger counts.
constexpr int kMaxThreads = 1024;
void set_num_threads(int n);   // 1 <= n <= kMaxThreads
int num_threads();             // an OMP_NUM_THREADS above kMaxThreads is capped

}  // namespace tfe::cpu
