"""tfe: facial expression recognition with identity and emotion joint learning.

The engine is native (``tfe._native``: C++ CPU kernels, CUDA kernels when built with
nvcc); ``tfe.reference`` holds the NumPy/CuPy executable specification of every op.
``tfe.as_tensor`` / ``tfe.from_dlpack`` / ``tfe.zeros`` make native tensors
(``tfe._native.Tensor``) that share memory with NumPy, PyTorch and CuPy arrays.
"""

from . import _native
from . import cuda
from ._native import (
    as_tensor,
    empty,
    from_dlpack,
    get_num_threads,
    set_num_threads,
    zeros,
)

__version__ = _native.__version__

__all__ = [
    "as_tensor",
    "cuda",
    "empty",
    "from_dlpack",
    "get_num_threads",
    "set_num_threads",
    "zeros",
    "__version__",
]
