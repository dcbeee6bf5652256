// tfe._native: the engine's Python face. Tensors (NumPy/DLPack exchange), every op's
// forward and backward, threads and device information.
#include "bindings.h"

PYBIND11_MODULE(_native, m) {
  m.doc() = "tfe native engine: C++/CUDA kernels for identity-emotion joint learning";
  m.attr("__version__") = TFE_VERSION;
  tfe::binding::bind_tensor(m);
  tfe::binding::bind_ops(m);
  tfe::binding::bind_runtime(m);
}
