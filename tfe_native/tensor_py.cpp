// tfe.Tensor in Python, and every conversion between it and other array libraries.
//
// NumPy: a CPU Tensor exposes the buffer protocol and __array__, so np.asarray(t) is a view
// (the array keeps the Tensor alive); a C-contiguous NumPy array of a supported dtype becomes
// a Tensor without a copy (the Tensor keeps the array alive).
// DLPack: __dlpack__ / __dlpack_device__ export (np.from_dlpack, torch.from_dlpack,
// cupy.from_dlpack), from_dlpack imports from any producer; neither copies.
#include <cstring>
#include <limits>

#include "bindings.h"
#include "core/cuda_api.h"
#include "dlpack.h"

namespace tfe::binding {

void fail(const char* op, const std::string& message) {
  throw py::value_error(std::string("[") + op + "] " + message);
}

namespace {

// ---- dtypes ---------------------------------------------------------------------------------
bool dtype_from_numpy(const py::dtype& d, DType* out) {
  if (d.equal(py::dtype::of<float>())) *out = DType::f32;
  else if (d.equal(py::dtype::of<int64_t>())) *out = DType::i64;
  else if (d.equal(py::dtype::of<int32_t>())) *out = DType::i32;
  else if (d.equal(py::dtype::of<uint8_t>())) *out = DType::u8;
  else return false;
  return true;
}

py::dtype numpy_dtype(DType t) {
  switch (t) {
    case DType::f32: return py::dtype::of<float>();
    case DType::i64: return py::dtype::of<int64_t>();
    case DType::i32: return py::dtype::of<int32_t>();
    case DType::u8: return py::dtype::of<uint8_t>();
  }
  return py::dtype::of<float>();
}

DLDataType dl_dtype(DType t) {
  switch (t) {
    case DType::f32: return {kDLFloat, 32, 1};
    case DType::i64: return {kDLInt, 64, 1};
    case DType::i32: return {kDLInt, 32, 1};
    case DType::u8: return {kDLUInt, 8, 1};
  }
  return {kDLFloat, 32, 1};
}

bool dtype_from_dl(DLDataType d, DType* out) {
  if (d.lanes != 1) return false;
  if (d.code == kDLFloat && d.bits == 32) *out = DType::f32;
  else if (d.code == kDLInt && d.bits == 64) *out = DType::i64;
  else if (d.code == kDLInt && d.bits == 32) *out = DType::i32;
  else if (d.code == kDLUInt && d.bits == 8) *out = DType::u8;
  else return false;
  return true;
}

std::vector<py::ssize_t> byte_strides(const Tensor& t) {
  std::vector<py::ssize_t> s(t.dim());
  py::ssize_t step = static_cast<py::ssize_t>(dtype_size(t.dtype()));
  for (int i = t.dim() - 1; i >= 0; --i) {
    s[i] = step;
    step *= static_cast<py::ssize_t>(t.size(i));
  }
  return s;
}

// Releases a Python reference from whatever thread drops the last Tensor copy.
std::function<void()> keep_alive(py::handle owner) {
  PyObject* raw = owner.ptr();
  Py_INCREF(raw);
  return [raw] {
    py::gil_scoped_acquire gil;
    Py_DECREF(raw);
  };
}

Tensor from_numpy(const py::array& a, const char* op, const char* name) {
  DType dt;
  if (!dtype_from_numpy(a.dtype(), &dt))
    fail(op, std::string(name) + ": unsupported dtype " + py::str(a.dtype()).cast<std::string>() +
                 " (tfe takes float32, int64, int32 or uint8)");
  if (!(a.flags() & py::array::c_style))
    fail(op, std::string(name) + ": array is not C-contiguous (use np.ascontiguousarray)");
  Shape shape(a.shape(), a.shape() + a.ndim());
  void* data = const_cast<void*>(a.data());
  auto storage = std::make_shared<Storage>(data, a.nbytes(), Device{}, keep_alive(a));
  return Tensor(storage, shape, dt);
}

// ---- DLPack export ---------------------------------------------------------------------------
struct ExportCtx {
  std::shared_ptr<Storage> storage;
  Shape shape;
  DLManagedTensor managed;
};

void export_deleter(DLManagedTensor* self) { delete static_cast<ExportCtx*>(self->manager_ctx); }

void capsule_destructor(PyObject* capsule) {
  // Only an unconsumed capsule still owns its tensor; a consumer renames it "used_dltensor".
  if (PyCapsule_IsValid(capsule, "dltensor")) {
    auto* m = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(capsule, "dltensor"));
    if (m && m->deleter) m->deleter(m);
  }
}

py::capsule to_dlpack(const Tensor& t) {
  auto* ctx = new ExportCtx{t.storage(), t.shape(), {}};
  DLTensor& d = ctx->managed.dl_tensor;
  d.data = t.raw();
  d.device = {t.device().is_cuda() ? kDLCUDA : kDLCPU, t.device().index};
  d.ndim = t.dim();
  d.dtype = dl_dtype(t.dtype());
  d.shape = ctx->shape.data();
  d.strides = nullptr;  // compact row-major
  d.byte_offset = 0;
  ctx->managed.manager_ctx = ctx;
  ctx->managed.deleter = export_deleter;
  PyObject* cap = PyCapsule_New(&ctx->managed, "dltensor", capsule_destructor);
  if (!cap) {
    delete ctx;
    throw py::error_already_set();
  }
  return py::reinterpret_steal<py::capsule>(cap);
}

// ---- DLPack import ---------------------------------------------------------------------------
Tensor from_capsule(py::handle capsule, const char* op) {
  if (!PyCapsule_IsValid(capsule.ptr(), "dltensor"))
    fail(op, "not an unconsumed DLPack capsule (a capsule can be imported only once)");
  auto* m = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(capsule.ptr(), "dltensor"));
  const DLTensor& d = m->dl_tensor;
  DType dt;
  if (!dtype_from_dl(d.dtype, &dt))
    fail(op, "unsupported DLPack dtype (code " + std::to_string(d.dtype.code) + ", " +
                 std::to_string(d.dtype.bits) + " bits); tfe takes float32, int64, int32, uint8");
  Device dev;
  if (d.device.device_type == kDLCPU || d.device.device_type == kDLCUDAHost)
    dev = Device{DeviceType::cpu, 0};
  else if (d.device.device_type == kDLCUDA)
    dev = Device{DeviceType::cuda, d.device.device_id};
  else
    fail(op, "unsupported DLPack device type " + std::to_string(d.device.device_type));
  Shape shape(d.shape, d.shape + d.ndim);
  if (d.strides) {
    int64_t expect = 1;
    for (int i = d.ndim - 1; i >= 0; --i) {
      if (shape[i] != 1 && d.strides[i] != expect)
        fail(op, "DLPack tensor is not C-contiguous (make it contiguous first)");
      expect *= shape[i];
    }
  }
  // From here on the capsule's tensor is ours: rename so the producer does not free it.
  PyCapsule_SetName(capsule.ptr(), "used_dltensor");
  void* data = static_cast<char*>(d.data) + d.byte_offset;
  size_t nbytes = static_cast<size_t>(shape_numel(shape)) * dtype_size(dt);
  auto release = [m] {
    py::gil_scoped_acquire gil;  // producers' deleters may touch Python objects
    if (m->deleter) m->deleter(m);
  };
  return Tensor(std::make_shared<Storage>(data, nbytes, dev, release), shape, dt);
}

std::string type_name(py::handle obj) {
  return py::str(py::type::handle_of(obj).attr("__name__"));
}

py::tuple dlpack_device(const Tensor& t) {
  return py::make_tuple(t.device().is_cuda() ? int(kDLCUDA) : int(kDLCPU), t.device().index);
}

py::array as_numpy(const Tensor& t, py::handle owner) {
  if (t.device().is_cuda())
    throw py::value_error("tensor is on " + t.device().str() +
                          "; copy it to the host first with .cpu()");
  std::vector<py::ssize_t> shape(t.shape().begin(), t.shape().end());
  return py::array(numpy_dtype(t.dtype()), shape, byte_strides(t), t.raw(), owner);
}

}  // namespace

Tensor from_dlpack(py::handle obj, const char* op) {
  if (PyCapsule_CheckExact(obj.ptr())) return from_capsule(obj, op);
  if (!py::hasattr(obj, "__dlpack__"))
    fail(op, "object of type " + type_name(obj) + " does not support DLPack (__dlpack__)");
  py::object capsule;
  py::tuple dev = obj.attr("__dlpack_device__")();
  if (dev[0].cast<int>() == kDLCUDA) {
    // The producer makes its pending work visible to our engine stream before handing over.
    auto handle = reinterpret_cast<uintptr_t>(cuda::stream_handle(dev[1].cast<int>()));
    capsule = obj.attr("__dlpack__")(py::arg("stream") = handle);
  } else {
    capsule = obj.attr("__dlpack__")();
  }
  return from_capsule(capsule, op);
}

Tensor to_tensor(py::handle obj, const char* op, const char* name) {
  if (py::isinstance<Tensor>(obj)) return obj.cast<Tensor>();
  if (py::isinstance<py::array>(obj))
    return from_numpy(py::reinterpret_borrow<py::array>(obj), op, name);
  if (py::hasattr(obj, "__dlpack__")) return from_dlpack(obj, op);
  fail(op, std::string(name) + ": expected a NumPy array or tfe.Tensor, got " + type_name(obj));
}

Device parse_device(const std::string& s, const char* op) {
  if (s == "cpu") return Device{DeviceType::cpu, 0};
  if (s == "cuda") return Device{DeviceType::cuda, 0};
  if (s.rfind("cuda:", 0) == 0 && s.size() > 5 &&
      s.find_first_not_of("0123456789", 5) == std::string::npos)
    return Device{DeviceType::cuda, std::stoi(s.substr(5))};
  fail(op, "unknown device '" + s + "' (expected 'cpu', 'cuda' or 'cuda:N')");
}

Device device_arg(py::handle obj, const char* op) {
  if (py::isinstance<Device>(obj)) return obj.cast<Device>();
  if (py::isinstance<py::str>(obj)) return parse_device(obj.cast<std::string>(), op);
  fail(op, "device: expected a tfe.Device or 'cpu', 'cuda', 'cuda:N', got " + type_name(obj));
}

DType parse_dtype(const std::string& s, const char* op) {
  for (DType t : {DType::f32, DType::i64, DType::i32, DType::u8})
    if (s == dtype_name(t)) return t;
  fail(op, "unknown dtype '" + s + "' (expected float32, int64, int32 or uint8)");
}

// ---- Args ------------------------------------------------------------------------------------
void Args::admit(const Tensor& t, const char* name, int rank, DType dtype) {
  // Kernels index planes and sizes with int: larger tensors would be silently truncated.
  if (bounded_numel(t.shape(), kMaxOpElements) < 0)
    fail(op_, std::string(name) + ": shape " + shape_str(t.shape()) +
                  " is too large (ops take fewer than 2^31 elements per tensor)");
  if (t.dtype() != dtype)
    fail(op_, std::string(name) + ": expected " + dtype_name(dtype) + ", got " +
                  dtype_name(t.dtype()));
  if (rank >= 0 && t.dim() != rank)
    fail(op_, std::string(name) + ": expected " + std::to_string(rank) + "-d, got shape " +
                  shape_str(t.shape()));
  if (!have_device_) {
    have_device_ = true;
    device_ = t.device();
    device_arg_ = name;
  } else if (t.device() != device_) {
    fail(op_, std::string(name) + " is on " + t.device().str() + " but " + device_arg_ +
                  " is on " + device_.str());
  }
}

Tensor Args::tensor(py::handle obj, const char* name, int rank, DType dtype) {
  if (obj.is_none()) fail(op_, std::string(name) + ": required, got None");
  Tensor t = to_tensor(obj, op_, name);
  admit(t, name, rank, dtype);
  return t;
}

Tensor Args::optional(py::handle obj, const char* name, int rank, DType dtype) {
  if (obj.is_none()) return Tensor();
  return tensor(obj, name, rank, dtype);
}

Tensor Args::inout(py::handle obj, const char* name, int rank) {
  if (py::isinstance<py::array>(obj) &&
      !py::reinterpret_borrow<py::array>(obj).writeable())
    fail(op_, std::string(name) + ": is updated in place but the array is read-only");
  return tensor(obj, name, rank);
}

// Element count of `shape`, or -1 when it exceeds `limit` (or a dimension is negative);
// computed without overflow.
int64_t bounded_numel(const Shape& shape, int64_t limit) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0 || (d > 0 && n > limit / d)) return -1;
    n *= d;
  }
  return n;
}

void Args::check_size(const Shape& shape) const {
  if (bounded_numel(shape, kMaxOpElements) < 0)
    fail(op_, "output of shape " + shape_str(shape) + " is too large (ops take fewer than 2^31 "
              "elements per tensor)");
}

void Args::expect_shape(const Tensor& t, const char* name, const Shape& shape) const {
  if (t.shape() != shape)
    fail(op_, std::string(name) + ": expected shape " + shape_str(shape) + ", got " +
                  shape_str(t.shape()));
}

py::object wrap(const Tensor& t) { return py::cast(t); }

// ---- the Python class --------------------------------------------------------------------------
void bind_device(py::module_& m) {
  py::class_<Device>(m, "Device", R"doc(
Where a tensor lives: tfe.Device("cpu"), tfe.Device("cuda"), tfe.Device("cuda:1").

Parsed once where a device name enters (a command line, a config) and passed down as it is;
it compares equal to its name (Device("cuda") == "cuda:0").)doc")
      .def(py::init([](py::handle name) { return device_arg(name, "Device"); }), py::arg("name"))
      .def_property_readonly("type",
                             [](const Device& d) { return d.is_cuda() ? "cuda" : "cpu"; })
      .def_readonly("index", &Device::index, "CUDA device number (0 for the CPU)")
      .def_property_readonly("is_cuda", &Device::is_cuda)
      .def("__str__", &Device::str)
      .def("__repr__", [](const Device& d) { return "tfe.Device('" + d.str() + "')"; })
      .def("__eq__",
           [](const Device& d, py::handle other) {
             if (py::isinstance<Device>(other)) return d == other.cast<Device>();
             if (!py::isinstance<py::str>(other)) return false;
             try {
               return d == parse_device(other.cast<std::string>(), "Device");
             } catch (const py::value_error&) {
               return false;  // not a device name: simply not equal
             }
           })
      .def("__hash__", [](const Device& d) { return py::hash(py::str(d.str())); })
      .def(py::pickle([](const Device& d) { return d.str(); },
                      [](const std::string& name) { return parse_device(name, "Device"); }));
}

void bind_tensor(py::module_& m) {
  bind_device(m);
  py::class_<Tensor>(m, "Tensor", py::buffer_protocol(), R"doc(
A contiguous float32/int64/int32/uint8 array on the CPU or a CUDA device.

Zero-copy exchange: np.asarray(t) (CPU), np.from_dlpack / torch.from_dlpack /
cupy.from_dlpack (any device). Create with tfe.as_tensor, tfe.from_dlpack, tfe.zeros.)doc")
      .def_buffer([](Tensor& t) -> py::buffer_info {
        if (t.device().is_cuda())
          throw py::buffer_error("tensor is on " + t.device().str() + "; use .cpu() first");
        std::vector<py::ssize_t> shape(t.shape().begin(), t.shape().end());
        std::string fmt = py::str(numpy_dtype(t.dtype()).attr("char"));
        return py::buffer_info(t.raw(), static_cast<py::ssize_t>(dtype_size(t.dtype())), fmt,
                               t.dim(), shape, byte_strides(t));
      })
      .def_property_readonly("shape", [](const Tensor& t) {
        py::tuple s(t.dim());
        for (int i = 0; i < t.dim(); ++i) s[i] = t.size(i);
        return s;
      })
      .def_property_readonly("dtype", [](const Tensor& t) { return dtype_name(t.dtype()); })
      .def_property_readonly("device", &Tensor::device)
      .def_property_readonly("ndim", &Tensor::dim)
      .def_property_readonly(
          "data_ptr", [](const Tensor& t) { return reinterpret_cast<uintptr_t>(t.raw()); },
          "Address of the first element (host or device memory)")
      .def_property_readonly("size", &Tensor::numel)
      .def_property_readonly("nbytes", &Tensor::nbytes)
      .def("numpy", [](py::object self) { return as_numpy(self.cast<Tensor>(), self); },
           "A NumPy view of a CPU tensor (no copy).")
      .def("__array__",
           [](py::object self, py::object dtype, py::object copy) -> py::object {
             py::array a = as_numpy(self.cast<Tensor>(), self);
             if (!dtype.is_none()) return a.attr("astype")(dtype);
             if (!copy.is_none() && copy.cast<bool>()) return a.attr("copy")();
             return std::move(a);
           },
           py::arg("dtype") = py::none(), py::arg("copy") = py::none())
      .def("__dlpack__",
           [](const Tensor& t, py::object stream, py::object max_version, py::object dl_device,
              py::object copy) {
             // Our kernels run on the engine stream; a consumer on another stream
             // must see finished data, so synchronise before handing device memory over.
             if (t.device().is_cuda()) cuda::synchronize(t.device().index);
             return to_dlpack(t);
           },
           py::arg("stream") = py::none(), py::arg("max_version") = py::none(),
           py::arg("dl_device") = py::none(), py::arg("copy") = py::none())
      .def("__dlpack_device__", &dlpack_device)
      .def("to",
           [](const Tensor& t, py::handle device) {
             Device d = device_arg(device, "Tensor.to");
             if (d.is_cuda()) cuda::require_device(d.index, "Tensor.to");
             py::gil_scoped_release nogil;
             return t.to(d);
           },
           py::arg("device"), "A copy on `device` ('cpu', 'cuda', 'cuda:N'); self if already there.")
      .def("reshape",
           [](const Tensor& t, std::vector<int64_t> shape) {
             // Contiguous storage: any shape with the same element count is a view.
             int64_t infer = -1, known = 1;
             for (size_t i = 0; i < shape.size(); ++i) {
               if (shape[i] == -1 && infer < 0) infer = static_cast<int64_t>(i);
               else if (shape[i] < 0) fail("reshape", "invalid shape " + shape_str(shape));
               else known *= shape[i];
             }
             if (infer >= 0 && known > 0 && t.numel() % known == 0) shape[infer] = t.numel() / known;
             if (shape_numel(shape) != t.numel() || (infer >= 0 && known == 0))
               fail("reshape", "cannot view " + std::to_string(t.numel()) + " elements as " +
                                   shape_str(shape));
             return Tensor(t.storage(), shape, t.dtype());
           },
           py::arg("shape"), "A view with another shape (one dimension may be -1)")
      .def("copy_",
           [](Tensor& t, py::object src_obj) {
             Tensor src = to_tensor(src_obj, "Tensor.copy_", "src");
             if (src.shape() != t.shape() || src.dtype() != t.dtype())
               fail("Tensor.copy_", "src is " + std::string(dtype_name(src.dtype())) + " " +
                                        shape_str(src.shape()) + ", self is " +
                                        dtype_name(t.dtype()) + " " + shape_str(t.shape()));
             py::gil_scoped_release nogil;
             t.copy_from(src);
           },
           py::arg("src"),
           "Copies src (a tensor, NumPy array or DLPack producer of the same shape and dtype, "
           "any device) into this tensor's memory; the storage (and its address) is kept.")
      .def("cpu", [](const Tensor& t) { return t.to(Device{}); })
      .def("cuda",
           [](const Tensor& t, int index) {
             cuda::require_device(index, "Tensor.cuda");
             return t.to(Device{DeviceType::cuda, index});
           },
           py::arg("index") = 0)
      .def("__len__", [](const Tensor& t) {
        if (t.dim() == 0) throw py::type_error("len() of a 0-d tensor");
        return t.size(0);
      })
      .def("__repr__", [](const Tensor& t) {
        std::string dev = t.device().is_cuda() ? ", device='" + t.device().str() + "'" : "";
        return "tfe.Tensor(shape=" + shape_str(t.shape()) + ", dtype=" + dtype_name(t.dtype()) +
               dev + ")";
      });

  m.def("as_tensor", [](py::object obj) { return to_tensor(obj, "as_tensor", "obj"); },
        py::arg("obj"),
        "A Tensor sharing memory with a C-contiguous NumPy array or DLPack producer.");
  m.def("from_dlpack", [](py::object obj) { return from_dlpack(obj, "from_dlpack"); },
        py::arg("obj"), "Import any DLPack producer (or capsule) without copying.");
  m.def("empty",
        [](std::vector<int64_t> shape, const std::string& dtype, py::handle device) {
          if (bounded_numel(shape, int64_t(1) << 40) < 0)
            fail("empty", "shape " + shape_str(shape) + " is negative or too large");
          Device dev = device_arg(device, "empty");
          if (dev.is_cuda()) cuda::require_device(dev.index, "empty");
          return Tensor::empty(shape, parse_dtype(dtype, "empty"), dev);
        },
        py::arg("shape"), py::arg("dtype") = "float32", py::arg("device") = "cpu");
  m.def("zeros",
        [](std::vector<int64_t> shape, const std::string& dtype, py::handle device) {
          if (bounded_numel(shape, int64_t(1) << 40) < 0)
            fail("zeros", "shape " + shape_str(shape) + " is negative or too large");
          Device dev = device_arg(device, "zeros");
          if (dev.is_cuda()) cuda::require_device(dev.index, "zeros");
          return Tensor::zeros(shape, parse_dtype(dtype, "zeros"), dev);
        },
        py::arg("shape"), py::arg("dtype") = "float32", py::arg("device") = "cpu");
}

}  // namespace tfe::binding
