// Shared declarations of the pybind11 module tfe._native: the argument checker every op
// binding uses (validate once, here, so kernels can trust their inputs) and the
// registration functions of the other binding files.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "core/tensor.h"

namespace tfe::binding {
namespace py = pybind11;

// Ops take tensors of fewer than 2^31 elements (kernels index with int).
constexpr int64_t kMaxOpElements = (int64_t(1) << 31) - 1;
int64_t bounded_numel(const Shape& shape, int64_t limit);

// Raises ValueError("[op] message").
[[noreturn]] void fail(const char* op, const std::string& message);

// Zero-copy conversion of a NumPy array or DLPack producer (or a tfe.Tensor) to a Tensor.
// Errors name the op and argument: "[conv2d_forward] x: expected float32, got float64".
Tensor to_tensor(py::handle obj, const char* op, const char* name);
Tensor from_dlpack(py::handle obj, const char* op);
Device parse_device(const std::string& s, const char* op);
// A tfe.Device or a device name ('cpu', 'cuda', 'cuda:N').
Device device_arg(py::handle obj, const char* op);
DType parse_dtype(const std::string& s, const char* op);

// Validates the arguments of one op call: every tensor the call sees must be float32 (or
// the stated dtype), of the stated rank, and on one device; outputs are allocated there.
class Args {
 public:
  explicit Args(const char* op) : op_(op) {}
  const char* op() const { return op_; }

  Tensor tensor(py::handle obj, const char* name, int rank = -1, DType dtype = DType::f32);
  // None -> an undefined Tensor.
  Tensor optional(py::handle obj, const char* name, int rank = -1, DType dtype = DType::f32);
  // A tensor the op writes into (running statistics, parameters, gradient accumulators).
  Tensor inout(py::handle obj, const char* name, int rank = -1);

  void expect_shape(const Tensor& t, const char* name, const Shape& shape) const;
  void require(bool ok, const std::string& message) const {
    if (!ok) fail(op_, message);
  }
  Device device() const { return device_; }
  // Outputs on the call's device; a shape whose size overflows or exceeds any memory is
  // a ValueError, not a wrapped-around allocation.
  Tensor out(const Shape& shape, DType dtype = DType::f32) const {
    check_size(shape);
    return Tensor::empty(shape, dtype, device_);
  }
  Tensor zeros(const Shape& shape) const {
    check_size(shape);
    return Tensor::zeros(shape, DType::f32, device_);
  }

 private:
  void admit(const Tensor& t, const char* name, int rank, DType dtype);
  void check_size(const Shape& shape) const;
  const char* op_;
  bool have_device_ = false;
  Device device_{};
  std::string device_arg_;
};

// Wraps a Tensor for Python (tfe.Tensor); defined in tensor_py.cpp.
py::object wrap(const Tensor& t);

void bind_tensor(py::module_& m);
void bind_ops(py::module_& m);
void bind_runtime(py::module_& m);

}  // namespace tfe::binding
