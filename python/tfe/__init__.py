"""tfe: facial expression recognition with identity and emotion joint learning.

The engine is native (``tfe._native``: C++ CPU kernels, CUDA kernels when built with
nvcc); ``tfe.reference`` holds the NumPy/CuPy executable specification of every op.
``tfe.Recognizer().detect_emotions(photo)`` and ``tfe.load_model()`` predict with the
packaged model (recognizer.py). ``tfe.as_tensor`` / ``tfe.from_dlpack`` / ``tfe.zeros`` make native tensors
(``tfe._native.Tensor``) that share memory with NumPy, PyTorch and CuPy arrays.
"""

from . import _native
from . import cuda
from ._native import (
    Device,
    as_tensor,
    empty,
    from_dlpack,
    get_num_threads,
    set_num_threads,
    zeros,
)

__version__ = _native.__version__



def __getattr__(name):
    # The prediction API loads lazily: ``import tfe`` stays light and free of cycles.
    if name in ("load_model", "Recognizer", "default_model_path"):
        from . import recognizer

        return getattr(recognizer, name)
    raise AttributeError(f"module 'tfe' has no attribute {name!r}")


__all__ = [
    "Device",
    "Recognizer",
    "as_tensor",
    "cuda",
    "default_model_path",
    "empty",
    "from_dlpack",
    "get_num_threads",
    "load_model",
    "set_num_threads",
    "zeros",
    "__version__",
]
