// Tensor storage: 64-byte aligned host memory (full cache lines, aligned vector loads) or
// device memory from the CUDA backend; copies between them.
#include "core/tensor.h"

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <sstream>
#include <unordered_map>

#include "core/cuda_api.h"

namespace tfe {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::f32: return 4;
    case DType::i64: return 8;
    case DType::i32: return 4;
    case DType::u8: return 1;
  }
  return 0;
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "float32";
    case DType::i64: return "int64";
    case DType::i32: return "int32";
    case DType::u8: return "uint8";
  }
  return "?";
}

std::string Device::str() const {
  return is_cuda() ? "cuda:" + std::to_string(index) : std::string("cpu");
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

std::string shape_str(const Shape& s) {
  std::ostringstream o;
  o << "(";
  for (size_t i = 0; i < s.size(); ++i) o << (i ? ", " : "") << s[i];
  if (s.size() == 1) o << ",";
  o << ")";
  return o.str();
}

Storage::Storage(void* data, size_t nbytes, Device device, std::function<void()> release)
    : data_(data), nbytes_(nbytes), device_(device), release_(std::move(release)) {}

Storage::~Storage() {
  if (release_) release_();
}

namespace {

// Host blocks of 64 KiB and more are recycled instead of returned to the C library: a
// training step allocates the same activation sizes every step, and glibc serves (and
// frees) such sizes with fresh mmaps, so every step would page-fault through every
// activation again (thousands of faults per 20 MB tensor). Blocks are kept by exact
// (page-rounded) size, up to a cap on the bytes held idle; empty_host_cache() frees them.
class HostCache {
 public:
  static constexpr size_t kMinBytes = 64 << 10;
  static constexpr size_t kMaxIdleBytes = size_t(2) << 30;

  void* get(size_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = idle_.find(bytes);
      if (it != idle_.end()) {
        void* p = it->second;
        idle_.erase(it);
        idle_bytes_ -= bytes;
        return p;
      }
    }
    return std::aligned_alloc(64, bytes);
  }

  void put(void* p, size_t bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    if (idle_bytes_ + bytes > kMaxIdleBytes) {
      std::free(p);
      return;
    }
    idle_.emplace(bytes, p);
    idle_bytes_ += bytes;
  }

  void clear() {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& kv : idle_) std::free(kv.second);
    idle_.clear();
    idle_bytes_ = 0;
  }

 private:
  std::mutex mu_;
  std::unordered_multimap<size_t, void*> idle_;
  size_t idle_bytes_ = 0;
};

// Never destroyed: tensors released during interpreter shutdown may still return blocks.
HostCache& host_cache() {
  static HostCache* cache = new HostCache;
  return *cache;
}

}  // namespace

void empty_host_cache() { host_cache().clear(); }

std::shared_ptr<Storage> Storage::allocate(size_t nbytes, Device device) {
  if (device.is_cuda()) {
    void* p = cuda::malloc(nbytes, device.index);
    int idx = device.index;
    return std::make_shared<Storage>(p, nbytes, device, [p, idx] { cuda::free(p, idx); });
  }
  // 64-byte aligned (full cache lines, aligned vector loads); aligned_alloc needs a size
  // that is a multiple of the alignment, and a non-null pointer is wanted even when empty.
  size_t padded = ((nbytes + 63) / 64) * 64;
  if (padded == 0) padded = 64;
  void* p;
  std::function<void()> release;
  if (padded >= HostCache::kMinBytes) {
    padded = ((padded + 4095) / 4096) * 4096;
    p = host_cache().get(padded);
    release = [p, padded] { host_cache().put(p, padded); };
  } else {
    p = std::aligned_alloc(64, padded);
    release = [p] { std::free(p); };
  }
  if (!p) throw Error("out of host memory allocating " + std::to_string(nbytes) + " bytes");
  return std::make_shared<Storage>(p, nbytes, device, std::move(release));
}

Tensor::Tensor(std::shared_ptr<Storage> storage, Shape shape, DType dtype)
    : storage_(std::move(storage)), shape_(std::move(shape)), dtype_(dtype) {}

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  size_t nbytes = static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype);
  return Tensor(Storage::allocate(nbytes, device), shape, dtype);
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  t.zero_();
  return t;
}

void Tensor::zero_() {
  if (nbytes() == 0) return;
  if (device().is_cuda())
    cuda::memset_zero(raw(), nbytes(), device().index);
  else
    std::memset(raw(), 0, nbytes());
}

Tensor Tensor::to(Device device) const {
  if (device == this->device()) return *this;
  Tensor out = empty(shape_, dtype_, device);
  out.copy_from(*this);
  return out;
}

void Tensor::copy_from(const Tensor& src) {
  if (src.shape() != shape_ || src.dtype() != dtype_)
    throw Error("copy_from: shape/dtype mismatch");
  size_t n = nbytes();
  if (n == 0) return;
  bool src_gpu = src.device().is_cuda(), dst_gpu = device().is_cuda();
  if (!src_gpu && !dst_gpu)
    std::memcpy(raw(), src.raw(), n);
  else if (!src_gpu)
    cuda::memcpy(raw(), src.raw(), n, cuda::CopyKind::host_to_device, device().index);
  else if (!dst_gpu)
    cuda::memcpy(raw(), src.raw(), n, cuda::CopyKind::device_to_host, src.device().index);
  else
    cuda::memcpy(raw(), src.raw(), n, cuda::CopyKind::device_to_device, device().index);
}

}  // namespace tfe
