// Concatenation along dim 1 on the GPU and its inverse split (see cpu/concat.cpp).
//
//   forward:  y[N, S * inner], S = sum_j sizes[j], from xs[j][N, sizes[j], inner]:
//             y[n*row + col_j + e] = xs[j][n*len_j + e],  len_j = sizes[j] * inner,
//             row = S * inner, col_j = sum_{i<j} len_i, e in [0, len_j)
//   backward: dxs[j][n*len_j + e] = dy[n*row + col_j + e]  (assigned; a null dxs[j] is
//             skipped, as on the CPU)
//
// Multi-tensor launches: xs / dxs are host arrays of device pointers. Copying them to the
// device would need a host-to-device memcpy (not capturable in a CUDA graph), so up to
// kMaxTensors tensors are passed BY VALUE in a kernel-parameter struct (about 1 KB, well
// under the 4 KB parameter limit), launching again for further tensors. Each tensor's
// N * len_j elements are cut into chunks of kChunk; chunk_begin[t] is the first block of
// table entry t, so every block finds its tensor by a short scan of the table and copies
// one contiguous run of the source (no idle blocks, big and small tensors share a launch).
// Pure copies: no arithmetic, so the result is exactly the CPU's.
#include <cstdint>

#include "core/check.cuh"
#include "ops/cuda_kernels.h"

namespace tfe::cuda {

namespace {
constexpr int kThreads = 256;
constexpr int kMaxTensors = 32;
constexpr long long kChunk = kThreads * 16;  // elements per block
constexpr long long kMaxBlocks = 1LL << 30;  // per launch, below the grid's 2^31 - 1 limit

// P is const float* (forward: the inputs) or float* (backward: the gradients).
template <class P>
struct Table {
  P ptr[kMaxTensors];
  long long len[kMaxTensors];              // sizes[j] * inner
  long long col[kMaxTensors];              // offset of the slice inside a row of y / dy
  long long chunk_begin[kMaxTensors + 1];  // first block of each entry; [count] = total
  int count;
};

// Block b -> table entry t with chunk_begin[t] <= b < chunk_begin[t + 1] (every entry has at
// least one chunk, so chunk_begin is strictly increasing).
template <class P>
__device__ __forceinline__ int find_entry(const Table<P>& tab, long long b) {
  int t = 0;
  while (t + 1 < tab.count && tab.chunk_begin[t + 1] <= b) ++t;
  return t;
}

__global__ void concat_forward_kernel(float* __restrict__ y, long long N, long long row,
                                      const Table<const float*> tab) {
  const long long b = blockIdx.x;
  const int t = find_entry(tab, b);
  const float* __restrict__ x = tab.ptr[t];
  const long long len = tab.len[t];
  const long long col = tab.col[t];
  const long long total = N * len;
  const long long start = (b - tab.chunk_begin[t]) * kChunk;
  const long long end = start + kChunk < total ? start + kChunk : total;
  for (long long i = start + threadIdx.x; i < end; i += blockDim.x) {
    const long long n = i / len;
    const long long e = i - n * len;
    y[n * row + col + e] = x[i];
  }
}

__global__ void concat_backward_kernel(const float* __restrict__ dy, long long N, long long row,
                                       const Table<float*> tab) {
  const long long b = blockIdx.x;
  const int t = find_entry(tab, b);
  float* __restrict__ dx = tab.ptr[t];
  const long long len = tab.len[t];
  const long long col = tab.col[t];
  const long long total = N * len;
  const long long start = (b - tab.chunk_begin[t]) * kChunk;
  const long long end = start + kChunk < total ? start + kChunk : total;
  for (long long i = start + threadIdx.x; i < end; i += blockDim.x) {
    const long long n = i / len;
    const long long e = i - n * len;
    dx[i] = dy[n * row + col + e];
  }
}

// Walks the tensors in order, fills tables of up to kMaxTensors non-empty entries and calls
// launch(table, blocks) for each. P: pointer type of the per-tensor arrays.
template <class P, class Launch>
void for_each_table(P const* ptrs, const int* sizes, int count, int N, int inner,
                    Launch launch) {
  Table<P> tab{};
  int nt = 0;
  long long blocks = 0;
  long long col = 0;
  auto flush = [&] {
    if (nt == 0) return;
    tab.count = nt;
    tab.chunk_begin[nt] = blocks;
    launch(tab, blocks);
    nt = 0;
    blocks = 0;
  };
  for (int j = 0; j < count; ++j) {
    const long long len = static_cast<long long>(sizes[j]) * inner;
    const long long total = static_cast<long long>(N) * len;
    if (total > 0 && ptrs[j] != nullptr) {
      const long long chunks = (total + kChunk - 1) / kChunk;
      if (nt == kMaxTensors || blocks + chunks > kMaxBlocks) flush();
      tab.ptr[nt] = ptrs[j];
      tab.len[nt] = len;
      tab.col[nt] = col;
      tab.chunk_begin[nt] = blocks;
      blocks += chunks;
      ++nt;
    }
    col += len;
  }
  flush();
}

long long row_of(const int* sizes, int count, int inner) {
  long long row = 0;
  for (int j = 0; j < count; ++j) row += static_cast<long long>(sizes[j]) * inner;
  return row;
}
}  // namespace

void concat_forward(float* y, const float* const* xs, const int* sizes, int count, int N,
                    int inner) {
  const long long row = row_of(sizes, count, inner);
  for_each_table(xs, sizes, count, N, inner,
                 [&](const Table<const float*>& tab, long long blocks) {
                   concat_forward_kernel<<<static_cast<unsigned>(blocks), kThreads, 0,
                                           stream()>>>(y, N, row, tab);
                   TFE_CUDA_CHECK_LAUNCH("concat_forward");
                 });
}

void concat_backward(float* const* dxs, const float* dy, const int* sizes, int count, int N,
                     int inner) {
  const long long row = row_of(sizes, count, inner);
  for_each_table(dxs, sizes, count, N, inner, [&](const Table<float*>& tab, long long blocks) {
    concat_backward_kernel<<<static_cast<unsigned>(blocks), kThreads, 0, stream()>>>(dy, N, row,
                                                                                     tab);
    TFE_CUDA_CHECK_LAUNCH("concat_backward");
  });
}

}  // namespace tfe::cuda
