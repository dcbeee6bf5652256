// The engine's tensor: a contiguous, row-major block of float32 (activations, weights) or
// integer (labels, indices, masks) elements on the CPU or a CUDA device.
//
// Activations are NCHW: with im2col + GEMM the GEMM's wide dimension is then H*W (2304, 576
// and 144 at the paper's 48x48 input), which fills vector registers far better than the
// 16-64 channels that an NHWC layout would put there. See README "Engine conventions".
//
// Storage is shared (copies of a Tensor alias the same memory) and may be owned by another
// library (a NumPy array, a DLPack producer): the release callback then hands it back.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace tfe {

// Errors raised by the engine (CUDA failures, missing backends). Bad user input is
// rejected earlier, at the binding boundary, as ValueError.
struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

enum class DType : uint8_t { f32, i64, i32, u8 };
size_t dtype_size(DType t);
const char* dtype_name(DType t);

enum class DeviceType : uint8_t { cpu, cuda };
struct Device {
  DeviceType type = DeviceType::cpu;
  int index = 0;
  bool operator==(const Device& o) const { return type == o.type && index == o.index; }
  bool operator!=(const Device& o) const { return !(*this == o); }
  bool is_cuda() const { return type == DeviceType::cuda; }
  std::string str() const;
};

class Storage {
 public:
  // Owns `data` and calls `release` on destruction (may be empty for memory we allocated).
  Storage(void* data, size_t nbytes, Device device, std::function<void()> release);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  static std::shared_ptr<Storage> allocate(size_t nbytes, Device device);

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }

 private:
  void* data_;
  size_t nbytes_;
  Device device_;
  std::function<void()> release_;
};

// Frees the host blocks kept for reuse (see Storage::allocate).
void empty_host_cache();

using Shape = std::vector<int64_t>;
int64_t shape_numel(const Shape& s);
std::string shape_str(const Shape& s);

class Tensor {
 public:
  Tensor() = default;
  Tensor(std::shared_ptr<Storage> storage, Shape shape, DType dtype);

  static Tensor empty(const Shape& shape, DType dtype = DType::f32, Device device = {});
  static Tensor zeros(const Shape& shape, DType dtype = DType::f32, Device device = {});

  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  int64_t size(int i) const { return shape_.at(i < 0 ? i + dim() : i); }
  int dim() const { return static_cast<int>(shape_.size()); }
  int64_t numel() const { return shape_numel(shape_); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype_); }
  DType dtype() const { return dtype_; }
  Device device() const { return storage_ ? storage_->device() : Device{}; }
  const std::shared_ptr<Storage>& storage() const { return storage_; }

  void* raw() const { return storage_ ? storage_->data() : nullptr; }
  template <class T>
  T* data() const { return static_cast<T*>(raw()); }

  // A copy on `device` (the same Tensor when already there).
  Tensor to(Device device) const;
  // Element-wise copy from a tensor of the same shape and dtype (any devices).
  void copy_from(const Tensor& src);
  void zero_();

 private:
  std::shared_ptr<Storage> storage_;
  Shape shape_;
  DType dtype_ = DType::f32;
};

}  // namespace tfe
