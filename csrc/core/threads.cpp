// Process-wide thread count of the CPU kernels (tfe::cpu::set_num_threads / num_threads).
//
// Until set_num_threads is called the count follows OpenMP's default, omp_get_max_threads()
// (i.e. OMP_NUM_THREADS, else the number of cores). The value is kept in an atomic rather than
// only in OpenMP's per-thread ICV, because omp_set_num_threads affects just the calling thread
// and the kernels may be called from other (Python) threads; every kernel passes
// num_threads() explicitly in its num_threads clause. set_num_threads also forwards to
// omp_set_num_threads so that plain parallel regions on the calling thread agree.
#include <omp.h>

#include <algorithm>
#include <atomic>

#include "core/threads.h"

namespace tfe::cpu {
namespace {
std::atomic<int> g_num_threads{0};  // 0: not set, follow omp_get_max_threads()
}  // namespace

void set_num_threads(int n) {
  if (n < 1) n = 1;
  g_num_threads.store(n, std::memory_order_relaxed);
  omp_set_num_threads(n);
}

int num_threads() {
  const int n = g_num_threads.load(std::memory_order_relaxed);
  return n > 0 ? n : std::min(omp_get_max_threads(), kMaxThreads);
}

}  // namespace tfe::cpu
